"""The one batch runner: files in, rows and outputs out.

Every batch command (``deepscope count``, ``segment``, ``restore``) and every pipeline step
(``deepscope run`` / ``analyze``, one image set per call) goes through :class:`BatchRunner`:

decode -> infer -> write, per item
    ``decode(item)`` reads the file(s) and selects what the model takes; ``infer(decoded list)`` runs
    the model on a batch of them (a batch that fails is rerun image by image, so only the bad image
    fails); ``write(item, decoded, result)`` makes the item's row and its outputs, each recorded in
    the lineage run (:mod:`deepscope.provenance.lineage`). Slow writes can be deferred to a writer
    thread (zlib releases the GIL) while the next image runs.
failures as rows
    An item that fails at any stage gets its ``error`` and the run goes on; a deferred write that
    fails (disk full) marks its row failed, the others stand.
progress
    ``progress(done, total)`` after each item.
"""

from __future__ import annotations

import errno
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from deepscope.errors import DeepscopeError

__all__ = ["BatchRunner", "Outcome", "Decoded", "InputFile", "PER_IMAGE_ERRORS", "TRANSIENT_ERRNOS", "Progress",
           "error_text", "is_transient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``progress(done, total)``, called after each item.
Progress = Callable[[int, int], None]
#: Errors that fail one image of a batch (an error row) rather than the whole run.
PER_IMAGE_ERRORS: tuple[type[BaseException], ...] = (DeepscopeError, OSError, ValueError, RuntimeError,
                                                     MemoryError)


#: ``errno`` values of failures that come from the machine, not the input (disk full, quota, I/O error, out of
#: memory, read-only or vanished file system): an item that failed so is processed again on a plain rerun.
TRANSIENT_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EIO", "ENOMEM", "EROFS", "ESTALE",
                                                          "ENOLCK", "EAGAIN", "ETIMEDOUT") if hasattr(errno, n))


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is an environmental failure (:data:`TRANSIENT_ERRNOS`).

    Examples
    --------
    >>> is_transient(OSError(28, "No space left on device")), is_transient(FileNotFoundError(2, "gone"))
    (True, False)
    """
    seen = 0
    e: BaseException | None = exc
    while e is not None and seen < 10:
        if isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno in TRANSIENT_ERRNOS):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def error_text(exc: BaseException) -> str:
    """The ``error`` of a failed item: deepscope's messages as they are, others with their type."""
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, DeepscopeError) else f"{type(exc).__name__}: {text}"


@dataclass
class Decoded:
    """A decoded item: what the model takes (``data``), the images read (lineage inputs) and anything else."""

    data: Any
    inputs: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputFile:
    """What a batch keeps of an input once it is processed: its path and SHA-256, never its pixels."""

    path: str
    sha256: str | None = None

    @classmethod
    def of(cls, item: Any) -> Any:
        """The path and SHA-256 of an :class:`~deepscope.io.Image` (or anything with a ``meta`` that has
        them); other items (lineage InputRefs) as they are."""
        meta = getattr(item, "meta", None)
        if meta is not None and hasattr(meta, "path") and hasattr(meta, "sha256"):
            return cls(str(meta.path), meta.sha256 or None)
        return item


@dataclass
class Outcome:
    """What :meth:`BatchRunner.run` did: one row per item in input order, the files written, the inputs read
    (as :class:`InputFile`), and the items that failed for an environmental reason (:data:`TRANSIENT_ERRNOS`:
    a full disk, an I/O error), which are worth retrying as they are."""

    rows: list[dict[str, Any]]
    outputs: list[str]
    inputs: list[Any]
    transient: set[int] = field(default_factory=set)

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.rows if r.get("error"))


class BatchRunner(Generic[T]):
    """Run decode -> infer -> write over items, with error rows, deferred writes and progress.

    Parameters
    ----------
    row : callable
        ``row(item) -> dict``: the row of an item before it is processed (its columns with empty
        values, and ``error`` = ``""``).
    decode : callable
        ``decode(item) -> Decoded``.
    infer : callable
        ``infer(list of Decoded) -> list of results`` (one per decoded item).
    write : callable
        ``write(item, decoded, result, row) -> list of writes``: updates ``row`` and returns
        ``(fn, reset)`` pairs, ``fn() -> list of paths written`` (run on the writer thread when
        ``deferred``, else at once); when ``fn`` fails with an ``OSError`` the row gets the error and
        the fields of the mapping ``reset``.
    batch_size : int
        Items decoded and inferred together.
    errors : tuple of exception types
        What fails one item instead of the run.
    progress : callable, optional
    deferred : bool
        Run deferred writes on one writer thread (else at once).
    label : callable, optional
        ``label(item) -> str``: how the log names a failed item.
    describe : callable, optional
        ``describe(exception) -> str``: the ``error`` of a failed item (default :func:`error_text`).
    """

    def __init__(self, *, row: Callable[[T], dict[str, Any]], decode: Callable[[T], Decoded],
                 infer: Callable[[list[Decoded]], list[Any]], write: Callable[..., list[Any]],
                 batch_size: int = 1, errors: tuple[type[BaseException], ...] = PER_IMAGE_ERRORS,
                 progress: Progress | None = None, deferred: bool = False,
                 label: Callable[[T], str] = str, describe: Callable[[BaseException], str] = error_text) -> None:
        self.row, self.decode, self.infer, self.write = row, decode, infer, write
        self.batch_size = max(1, int(batch_size))
        self.errors = errors
        self.progress = progress
        self.deferred = deferred
        self.label = label
        self.describe = describe

    #: Deferred writes that may wait for the writer thread before the next item waits for them.
    max_pending = 2

    def _fail(self, item: T, row: dict[str, Any], exc: BaseException) -> None:
        row["error"] = self.describe(exc)
        if is_transient(exc):
            self._transient.add(id(row))
        name = self.label(item)
        logger.warning("%s", row["error"] if name in row["error"] else f"{name}: {row['error']}")

    def _infer(self, decoded: list[Decoded], idx: list[int], items: Sequence[T],
               rows: list[dict[str, Any]]) -> list[Any]:
        try:
            return list(self.infer(decoded))
        except self.errors:
            if len(decoded) == 1:
                raise
        results = []  # isolate the item that failed
        for d, i in zip(decoded, idx):
            try:
                results.append(self.infer([d])[0])
            except self.errors as exc:
                self._fail(items[i], rows[i], exc)
                results.append(None)
        return results

    def _collect(self, pending: deque[tuple[int, Future[list[str]], dict[str, Any]]], items: Sequence[T],
                 rows: list[dict[str, Any]], outputs: list[str], *, keep: int) -> None:
        """Take the finished deferred writes (and wait for the oldest until at most ``keep`` are pending), so the
        arrays they hold are freed as soon as they are written."""
        while pending and (len(pending) > keep or pending[0][1].done()):
            i, fut, reset = pending.popleft()
            try:
                outputs.extend(fut.result())
            except OSError as exc:  # e.g. disk full: this item failed, the others stand
                rows[i].update(reset)
                self._fail(items[i], rows[i], exc)

    def run(self, items: Sequence[T]) -> Outcome:
        """Process every item; never raises for an item's failure (see ``errors``).

        Memory holds one batch, the deferred writes not yet done (at most :attr:`max_pending`) and, per
        processed item, its row and :class:`InputFile`: never the pixels of items already written.
        """
        items = list(items)
        rows = [self.row(it) for it in items]
        self._transient: set[int] = set()
        outputs: list[str] = []
        inputs: list[Any] = []
        pending: deque[tuple[int, Future[list[str]], dict[str, Any]]] = deque()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepscope-writer") if self.deferred else None
        done = 0
        try:
            for start in range(0, len(items), self.batch_size):
                stop = min(start + self.batch_size, len(items))
                idx, decoded = [], []
                for i in range(start, stop):
                    try:
                        decoded.append(self.decode(items[i]))
                        idx.append(i)
                    except self.errors as exc:
                        self._fail(items[i], rows[i], exc)
                results: list[Any] = []
                if decoded:
                    try:
                        results = self._infer(decoded, idx, items, rows)
                    except self.errors as exc:
                        self._fail(items[idx[0]], rows[idx[0]], exc)
                        results = [None]
                for i, d, r in zip(idx, decoded, results):
                    if rows[i]["error"]:
                        continue
                    try:
                        for fn, reset in self.write(items[i], d, r, rows[i]):
                            if writer is None:
                                outputs.extend(fn())
                            else:
                                pending.append((i, writer.submit(fn), dict(reset)))
                        inputs.extend(InputFile.of(x) for x in d.inputs)
                    except self.errors as exc:
                        self._fail(items[i], rows[i], exc)
                del decoded, results
                self._collect(pending, items, rows, outputs, keep=self.max_pending)
                for i in range(start, stop):
                    done += 1
                    if self.progress is not None:
                        self.progress(done, len(items))
        finally:
            if writer is not None:
                writer.shutdown(wait=True)
        self._collect(pending, items, rows, outputs, keep=0)
        transient = {i for i, r in enumerate(rows) if id(r) in self._transient}
        return Outcome(rows, outputs, inputs, transient)
