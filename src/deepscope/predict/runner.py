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

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from deepscope.errors import DeepscopeError

__all__ = ["BatchRunner", "Outcome", "Decoded", "PER_IMAGE_ERRORS", "Progress", "error_text"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``progress(done, total)``, called after each item.
Progress = Callable[[int, int], None]
#: Errors that fail one image of a batch (an error row) rather than the whole run.
PER_IMAGE_ERRORS: tuple[type[BaseException], ...] = (DeepscopeError, OSError, ValueError, RuntimeError,
                                                     MemoryError)


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


@dataclass
class Outcome:
    """What :meth:`BatchRunner.run` did: one row per item in input order, the files written, the inputs read."""

    rows: list[dict[str, Any]]
    outputs: list[str]
    inputs: list[Any]

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

    def _fail(self, item: T, row: dict[str, Any], exc: BaseException) -> None:
        row["error"] = self.describe(exc)
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

    def run(self, items: Sequence[T]) -> Outcome:
        """Process every item; never raises for an item's failure (see ``errors``)."""
        items = list(items)
        rows = [self.row(it) for it in items]
        outputs: list[str] = []
        inputs: list[Any] = []
        pending: list[tuple[int, Future[list[str]], dict[str, Any]]] = []
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
                        inputs.extend(d.inputs)
                    except self.errors as exc:
                        self._fail(items[i], rows[i], exc)
                for i in range(start, stop):
                    done += 1
                    if self.progress is not None:
                        self.progress(done, len(items))
        finally:
            if writer is not None:
                writer.shutdown(wait=True)
        for i, fut, reset in pending:
            try:
                outputs.extend(fut.result())
            except OSError as exc:  # e.g. disk full: this item failed, the others stand
                rows[i].update(reset)
                self._fail(items[i], rows[i], exc)
        return Outcome(rows, outputs, inputs)
