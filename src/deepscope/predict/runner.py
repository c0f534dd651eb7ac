"""The one batch runner: files in, rows and outputs out.

Every batch command (``deepscope count``, ``segment``, ``restore``) and every pipeline step
(``deepscope run`` / ``analyze``, one image set per call) goes through :class:`BatchRunner`:

decode -> infer -> write, per batch of items
    ``decode(item)`` reads the file(s) and selects what the model takes; ``infer(decoded list)`` runs
    the model on a batch of them (a batch that fails is rerun image by image, so only the bad image
    fails); ``write(item, decoded, result)`` makes the item's row and its outputs, each recorded in
    the lineage run (:mod:`deepscope.provenance.lineage`). Slow writes can be deferred to a writer
    thread (zlib releases the GIL) while the next image runs.
the engine: ``jobs`` workers
    With ``jobs > 1`` batches are decoded and inferred by a pool of worker threads (reading, the
    network and most post-processing release the GIL) while the calling thread writes the finished
    ones in input order: a bounded window of batches in flight (``window``, default ``2 * jobs``) keeps
    memory flat whatever the number of items, and the outputs, rows and lineage are those of a serial
    run (``jobs=1``, everything in the calling thread). The first batch runs alone, so the model's
    caches are built once. Dask and the pipeline's process pool run this engine inside each worker.
failures as rows
    An item that fails at any stage gets its ``error`` and the run goes on; a deferred write that
    fails (disk full) marks its row failed, the others stand. An unexpected exception (a bug met by one
    odd image) fails only its item too, logged with its traceback; Ctrl-C stops the run after the
    batches being computed, with every output already written intact (writes are atomic).
progress and time
    ``progress(done, total)`` after each item; :attr:`Outcome.stages` has the seconds spent reading,
    inferring (of which the network), writing and waiting (:mod:`deepscope.predict.stages`).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from deepscope.errors import DeepscopeError
from deepscope.predict.stages import StageClock, active

__all__ = ["BatchRunner", "Outcome", "Decoded", "InputFile", "PER_IMAGE_ERRORS", "TRANSIENT_ERRNOS", "Progress",
           "error_text", "is_transient", "default_jobs"]

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


def default_jobs() -> int:
    """Workers by default (batch commands' threads, the pipeline's processes): the CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


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
    #: Seconds per stage, summed over threads (``read``, ``infer``, ``network`` within it, ``write``,
    #: ``write_deferred`` on the writer thread, ``wait``: the calling thread waiting for workers) and ``wall``.
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(1 for r in self.rows if r.get("error"))


class _Work:
    """What a worker made of one batch: the items decoded, their results, and the items that failed."""

    __slots__ = ("n", "idx", "decoded", "results", "failures")

    def __init__(self, n: int) -> None:
        self.n = n
        self.idx: list[int] = []
        self.decoded: list[Decoded] = []
        self.results: list[Any] = []
        self.failures: dict[int, BaseException] = {}


class BatchRunner(Generic[T]):
    """Run decode -> infer -> write over items, with error rows, deferred writes, workers and progress.

    Parameters
    ----------
    row : callable
        ``row(item) -> dict``: the row of an item before it is processed (its columns with empty
        values, and ``error`` = ``""``).
    decode : callable
        ``decode(item) -> Decoded`` (called in worker threads when ``jobs > 1``).
    infer : callable
        ``infer(list of Decoded) -> list of results`` (one per decoded item; worker threads when ``jobs > 1``).
    write : callable
        ``write(item, decoded, result, row) -> list of writes`` (always in the calling thread, in input
        order): updates ``row`` and returns ``(fn, reset)`` pairs, ``fn() -> list of paths written`` (run
        on the writer thread when ``deferred``, else at once); when ``fn`` fails with an ``OSError`` the
        row gets the error and the fields of the mapping ``reset``.
    batch_size : int
        Items decoded and inferred together.
    errors : tuple of exception types
        The expected failures of an item (its ``error`` is ``describe(exc)``); any other exception also
        fails only its item, logged with its traceback as an internal error.
    progress : callable, optional
    deferred : bool
        Run deferred writes on one writer thread (else at once).
    label : callable, optional
        ``label(item) -> str``: how the log names a failed item.
    describe : callable, optional
        ``describe(exception) -> str``: the ``error`` of a failed item (default :func:`error_text`).
    jobs : int, default 1
        Worker threads decoding and inferring batches (1: all in the calling thread).
    window : int, optional
        Batches in flight at most (default ``2 * jobs``): what bounds memory.
    """

    def __init__(self, *, row: Callable[[T], dict[str, Any]], decode: Callable[[T], Decoded],
                 infer: Callable[[list[Decoded]], list[Any]], write: Callable[..., list[Any]],
                 batch_size: int = 1, errors: tuple[type[BaseException], ...] = PER_IMAGE_ERRORS,
                 progress: Progress | None = None, deferred: bool = False,
                 label: Callable[[T], str] = str, describe: Callable[[BaseException], str] = error_text,
                 jobs: int = 1, window: int | None = None) -> None:
        from deepscope.errors import InputError

        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise InputError(f"jobs={jobs!r}: give a number of workers >= 1")
        self.row, self.decode, self.infer, self.write = row, decode, infer, write
        self.batch_size = max(1, int(batch_size))
        self.errors = errors
        self.progress = progress
        self.deferred = deferred
        self.label = label
        self.describe = describe
        self.jobs = jobs
        self.window = max(1, int(window)) if window else 2 * jobs

    #: Deferred writes that may wait for the writer thread before the next item waits for them.
    max_pending = 2

    def _fail(self, item: T, row: dict[str, Any], exc: BaseException) -> None:
        expected = isinstance(exc, self.errors)
        row["error"] = self.describe(exc) if expected else f"internal error (please report it): {error_text(exc)}"
        if is_transient(exc):
            self._transient.add(id(row))
        name = self.label(item)
        msg = row["error"] if name in row["error"] else f"{name}: {row['error']}"
        if expected:  # the row says it; the caller reports failed rows (the CLI prints each once)
            logger.info("%s", msg)
        else:
            logger.error("%s", msg, exc_info=(type(exc), exc, exc.__traceback__))

    def _work(self, idx: list[int], items: Sequence[T]) -> _Work:
        """Decode and infer one batch (in a worker thread when ``jobs > 1``): no row is touched here."""
        w = _Work(len(idx))
        for i in idx:
            try:
                with self._clock("read"):
                    w.decoded.append(self.decode(items[i]))
                w.idx.append(i)
            except Exception as exc:
                w.failures[i] = exc
        if not w.decoded:
            return w
        with self._clock("infer"):
            try:
                w.results = list(self.infer(w.decoded))
            except Exception as exc:
                if len(w.decoded) == 1:
                    w.failures[w.idx[0]] = exc
                    w.results = [None]
                    return w
                w.results = []
                for d, i in zip(w.decoded, w.idx):  # isolate the item that failed
                    try:
                        w.results.append(self.infer([d])[0])
                    except Exception as exc1:
                        w.failures[i] = exc1
                        w.results.append(None)
        return w

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

    def _deferred(self, fn: Callable[[], list[str]]) -> list[str]:
        with self._clock("write_deferred"):
            return fn()

    def _written(self, w: _Work, items: Sequence[T], rows: list[dict[str, Any]], outputs: list[str],
                 inputs: list[Any], pending: deque[Any], writer: ThreadPoolExecutor | None) -> None:
        """The calling thread's part of a finished batch, in input order: rows, lineage, outputs."""
        for i, exc in w.failures.items():
            self._fail(items[i], rows[i], exc)
        with self._clock("write"):
            for i, d, r in zip(w.idx, w.decoded, w.results):
                if rows[i]["error"]:
                    continue
                try:
                    for fn, reset in self.write(items[i], d, r, rows[i]):
                        if writer is None:
                            outputs.extend(fn())
                        else:
                            pending.append((i, writer.submit(self._deferred, fn), dict(reset)))
                    inputs.extend(InputFile.of(x) for x in d.inputs)
                except Exception as exc:
                    self._fail(items[i], rows[i], exc)
        self._collect(pending, items, rows, outputs, keep=self.max_pending)

    def run(self, items: Sequence[T]) -> Outcome:
        """Process every item; never raises for an item's failure (see ``errors``).

        Memory holds at most ``window`` batches, the deferred writes not yet done (at most
        :attr:`max_pending`) and, per processed item, its row and :class:`InputFile`: never the pixels of
        items already written.
        """
        t0 = time.perf_counter()
        items = list(items)
        rows = [self.row(it) for it in items]
        self._transient: set[int] = set()
        self._clock = StageClock()
        outputs: list[str] = []
        inputs: list[Any] = []
        pending: deque[tuple[int, Future[list[str]], dict[str, Any]]] = deque()
        batches = [list(range(s, min(s + self.batch_size, len(items)))) for s in range(0, len(items), self.batch_size)]
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepscope-writer") if self.deferred else None
        pool = (ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="deepscope-worker")
                if self.jobs > 1 and len(batches) > 1 else None)
        inflight: deque[Future[_Work]] = deque()
        done = 0
        try:
            with active(self._clock):
                nxt = 0
                while nxt < len(batches) or inflight:
                    if pool is None or nxt == 0:  # serial, or the first batch alone (it builds the caches)
                        w = self._work(batches[nxt], items)
                        nxt += 1
                    else:
                        while nxt < len(batches) and len(inflight) < self.window:
                            inflight.append(pool.submit(self._work, batches[nxt], items))
                            nxt += 1
                        with self._clock("wait"):
                            w = inflight.popleft().result()
                    self._written(w, items, rows, outputs, inputs, pending, writer)
                    n = w.n
                    del w
                    for _ in range(n):
                        done += 1
                        if self.progress is not None:
                            self.progress(done, len(items))
        except BaseException:
            if pool is not None:  # Ctrl-C: nothing new starts; what is written stays written
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            if writer is not None:
                writer.shutdown(wait=True)
        self._collect(pending, items, rows, outputs, keep=0)
        transient = {i for i, r in enumerate(rows) if id(r) in self._transient}
        stages = self._clock.as_dict()
        stages["wall"] = round(time.perf_counter() - t0, 3)
        return Outcome(rows, outputs, inputs, transient, stages)
