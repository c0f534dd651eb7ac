"""Executors: where the image sets of a run are processed.

- :class:`SerialExecutor`: in this process, one set after another (debugging, tiny runs).
- :class:`LocalExecutor`: a pool of worker processes on this machine (the default); each
  process loads the models once, when it starts.
- :class:`DaskExecutor`: a Dask distributed cluster, either a ``LocalCluster`` it starts
  (``workers=N``) or an existing scheduler (``scheduler="tcp://host:8786"``); each worker loads
  the models on its first image set and keeps them.

Every executor keeps only a window of tasks in flight (a few per worker), so the driver's memory
and the scheduler's task graph stay the same size whether a run has a hundred image sets or a
million. A worker that dies while processing a set (killed, out of memory) is replaced and the
set retried (Dask does this itself; the local pool is rebuilt); a set that kills its worker twice
comes back as :class:`WorkerLost` and becomes an error row.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from deepscope.errors import ConfigError, DeepscopeError
from deepscope.pipeline.steps import Task, TaskResult, init_worker
from deepscope.predict.runner import default_jobs

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "WorkerLost", "WorkerStartError",
           "SchedulerError",
           "default_jobs", "connect"]

logger = logging.getLogger(__name__)

TaskFn = Callable[[str, Task], TaskResult]
Outcome = tuple[Task, "TaskResult | BaseException"]


class SchedulerError(DeepscopeError, ConnectionError):
    """The Dask scheduler cannot be reached (or was lost)."""


class WorkerLost(DeepscopeError, RuntimeError):
    """The worker processing an image set died (more than once) before it could report."""


class WorkerStartError(DeepscopeError, RuntimeError):
    """Worker processes died while starting (loading the pipeline or its models), before any image."""


def _ping() -> int:
    return os.getpid()


class Executor:
    """Base class: runs ``fn(job_json, task)`` for every task and yields ``(task, result or exception)``.

    Use as a context manager (``with executor: ...``) around :meth:`map_unordered`; the runner
    does. Subclasses implement :meth:`_start`, :meth:`_submit`, :meth:`_wait` and :meth:`close`.
    """

    #: Short description for logs and the run summary.
    name = "executor"

    def __init__(self) -> None:
        self._job: str | None = None

    def open(self) -> None:
        """Check the executor can run now, before any work (a Dask scheduler is connected here)."""

    @property
    def started(self) -> bool:
        """Whether :meth:`start` was called."""
        return self._job is not None

    def start(self, job_json: str) -> None:
        """Start workers for a job (called once before :meth:`map_unordered`)."""
        self._job = job_json
        self._start(job_json)

    def _start(self, job_json: str) -> None:
        pass

    def close(self) -> None:
        """Stop the workers this executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def slots(self) -> int:
        """How many tasks run at once."""
        return 1

    def map_unordered(self, fn: TaskFn, tasks: Iterable[Task], *, window: int | None = None) -> Iterator[Outcome]:
        """Run ``fn(job_json, task)`` for each task, keeping at most ``window`` in flight.

        Yields ``(task, TaskResult)``, or ``(task, exception)`` when the task could not run to the
        end (:class:`WorkerLost`, or an exception ``fn`` raised), in completion order.
        """
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class SerialExecutor(Executor):
    """Process image sets one after another in this process.

    Examples
    --------
    >>> ex = SerialExecutor()
    >>> ex.describe()
    'serial (this process)'
    """

    name = "serial"

    def map_unordered(self, fn: TaskFn, tasks: Iterable[Task], *, window: int | None = None) -> Iterator[Outcome]:
        assert self._job is not None, "start() first"
        for t in tasks:
            try:
                yield t, fn(self._job, t)
            except Exception as exc:  # reported to the runner, which decides
                yield t, exc

    def describe(self) -> str:
        return "serial (this process)"


class LocalExecutor(Executor):
    """A pool of ``jobs`` worker processes on this machine (``concurrent.futures``).

    Each process loads the models once, in its initializer. Processes never inherit the driver's
    threads or locks: they are forked from a *forkserver* that has imported numpy, scikit-image,
    pyarrow (and torch when the pipeline has a deep model) once, or, where there is no
    forkserver (Windows), started with *spawn*.

    Parameters
    ----------
    jobs : int, optional
        Worker processes; default :func:`default_jobs`.
    start_method : {"forkserver", "spawn", "fork"}, optional
        How worker processes start; default forkserver where available. ``fork`` is what
        :func:`~deepscope.pipeline.run_pipeline` uses for a script that calls it without a
        ``__main__`` guard (forked workers do not import the script again).

    Raises
    ------
    deepscope.errors.ConfigError
        If ``jobs`` < 1 or the start method is not available.

    Examples
    --------
    >>> LocalExecutor(2).describe()
    'local, 2 processes'
    """

    name = "local"

    def __init__(self, jobs: int | None = None, *, start_method: str | None = None) -> None:
        import multiprocessing as mp

        super().__init__()
        jobs = default_jobs() if jobs is None else jobs
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ConfigError(f"jobs={jobs!r}: give a number of worker processes >= 1")
        methods = [m for m in ("forkserver", "spawn", "fork") if m in mp.get_all_start_methods()]
        if start_method is None:
            start_method = methods[0]
        elif start_method not in methods:
            raise ConfigError(f"start_method={start_method!r} is not one of {methods} on this system")
        self.jobs = jobs
        self.start_method = start_method
        self._pool: Any = None

    @property
    def slots(self) -> int:
        return self.jobs

    def _new_pool(self) -> Any:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        assert self._job is not None
        if self.start_method == "forkserver":
            # the server imports the heavy libraries once; each worker is a fork of it (cheap), so N
            # workers do not each spend seconds of CPU importing the same modules at start-up
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(_preload(self._job))
        else:
            ctx = mp.get_context(self.start_method)
        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=init_worker,
                                   initargs=(self._job, os.getpid()))  # workers die with this driver

    def _start(self, job_json: str) -> None:
        from concurrent.futures.process import BrokenProcessPool

        self._pool = self._new_pool()
        try:  # one worker starts (imports, loads the models) and answers before any image is sent
            self._pool.submit(_ping).result()
        except BrokenProcessPool:
            self.close()
            raise WorkerStartError(
                "the worker processes could not start: they died while loading the pipeline or its models (the "
                "error is printed above). If you call run_pipeline from a script, put the call under "
                "`if __name__ == \"__main__\":` (worker processes import the script that started them); or run "
                "with jobs=0 (in this process) to see the error directly") from None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:  # a Ctrl-C does not wait for a long image to finish
                if p.is_alive():
                    p.terminate()
            for p in procs:
                p.join(timeout=5)

    def map_unordered(self, fn: TaskFn, tasks: Iterable[Task], *, window: int | None = None) -> Iterator[Outcome]:
        """See :meth:`Executor.map_unordered`.

        When a worker process dies, every task in flight is lost with the pool. The pool is rebuilt
        and the lost tasks are rerun one at a time, alone, so the one that kills its worker is
        identified without blaming the others: it is retried once more, then reported as
        :class:`WorkerLost`.
        """
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        assert self._pool is not None, "start() first"
        window = window or 4 * self.jobs
        source = iter(tasks)
        suspects: deque[Task] = deque()
        deaths: dict[str, int] = {}
        pending: dict[Any, Task] = {}

        def fill() -> None:
            if suspects:  # isolation: one suspect at a time, nothing else running
                if not pending:
                    t = suspects.popleft()
                    pending[self._pool.submit(fn, self._job, t)] = t
                return
            while len(pending) < window:
                t = next(source, None)
                if t is None:
                    return
                pending[self._pool.submit(fn, self._job, t)] = t

        fill()
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            broken: list[Task] = []
            for fut in finished:
                t = pending.pop(fut)
                try:
                    yield t, fut.result()
                except BrokenProcessPool:
                    broken.append(t)
                except Exception as exc:
                    yield t, exc
            if broken:
                lost = broken + list(pending.values())
                pending.clear()
                self.close()
                self._pool = self._new_pool()
                if len(lost) == 1:  # it ran alone: it killed its worker
                    t = lost[0]
                    deaths[t.key] = deaths.get(t.key, 0) + 1
                    if deaths[t.key] >= 2:
                        yield t, WorkerLost(f"the worker process died twice while processing {t.set_id} alone "
                                            "(out of memory, or a crash in a library); it was not retried again")
                    else:
                        suspects.appendleft(t)
                else:
                    logger.warning("a worker process died; rerunning the %d image set(s) it held one at a time",
                                   len(lost))
                    suspects.extend(lost)
            fill()

    def describe(self) -> str:
        return f"local, {self.jobs} process{'es' if self.jobs != 1 else ''}"


def _preload(job_json: str) -> list[str]:
    """Modules the forkserver imports before forking workers (torch only for deep models, or for the task
    registry that a task's own step, such as ``segment``, is parsed by in each worker)."""
    import json

    from deepscope.pipeline.spec import GENERIC_STEP_KINDS

    mods = ["deepscope.pipeline.steps", "deepscope.measure", "deepscope.predict.classical", "deepscope.io",
            "pandas", "pyarrow.parquet", "scipy.ndimage", "skimage.filters", "skimage.segmentation",
            "skimage.measure", "skimage.feature", "skimage.morphology"]
    steps = json.loads(job_json).get("pipeline", {}).get("steps", [])
    if {k for st in steps if isinstance(st, dict) for k in st} - {*GENERIC_STEP_KINDS, "normalise"}:
        mods.append("deepscope.tasks")  # imported once here rather than once per worker
    models = {opts.get("model") for st in steps for opts in st.values() if isinstance(opts, dict)}
    if models - {None, "otsu-watershed", "objects"}:
        mods += ["torch", "safetensors.torch", "deepscope.models", "deepscope.models.networks",
                 "deepscope.predict.predictor", "deepscope.tasks.segment.instances", "deepscope.tasks"]
    return mods


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Start processes that ignore Ctrl-C: the terminal sends SIGINT to the whole process group, and the
    driver alone handles it (one line, the finished image sets kept); Dask's worker processes would each
    print a traceback. A process started while SIGINT is ignored keeps ignoring it after exec."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _normalise_address(address: str) -> str:
    a = address.strip()
    if not re.match(r"^[a-z]+://", a):
        a = "tcp://" + a
    if not re.match(r"^(tcp|tls|ucx|inproc|ws|wss)://[^\s/]+(:\d+)?/?$", a):
        raise ConfigError(f"scheduler address {address!r} is not like tcp://HOST:8786")
    return a


def connect(address: str, *, timeout: float = 10.0) -> Any:
    """Connect a Dask client to a running scheduler, failing within ``timeout`` seconds.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT`` (``HOST:PORT`` is taken as TCP).
    timeout : float
        Seconds to wait for the connection.

    Returns
    -------
    distributed.Client

    Raises
    ------
    SchedulerError
        If no scheduler answers at ``address`` within ``timeout``.
    deepscope.errors.ConfigError
        If ``address`` is not a scheduler address.
    """
    addr = _normalise_address(address)
    from distributed import Client

    try:
        return Client(addr, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"could not reach the Dask scheduler at {addr} within {timeout:g} s ({exc}). Check "
                             "that `dask scheduler` runs there and the port is open, or leave out --scheduler to "
                             "run on this machine") from None


class DaskExecutor(Executor):
    """Run image sets on Dask distributed: a new ``LocalCluster`` or an existing scheduler.

    The run folder and the input files must be visible to every worker at the same paths
    (a shared file system), and the workers need the same deepscope installed.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:8786``).
    workers : int, optional
        Without ``scheduler``: start a ``LocalCluster`` of this many single-threaded worker
        processes (default :func:`default_jobs`).
    client : distributed.Client, optional
        Use this client (and its cluster) instead; it is not closed by :meth:`close`.
    connect_timeout : float, default 10
        Seconds to wait for the scheduler before :class:`SchedulerError`.
    processes : bool, default True
        ``LocalCluster`` workers as processes (False: threads of this process, for tests).

    Raises
    ------
    deepscope.errors.ConfigError
        If both ``scheduler`` and ``workers`` or ``client`` are given, or ``workers`` < 1.

    Examples
    --------
    >>> DaskExecutor(workers=2).describe()
    'dask LocalCluster, 2 workers'
    """

    name = "dask"

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None, client: Any = None,
                 connect_timeout: float = 10.0, processes: bool = True) -> None:
        super().__init__()
        if sum(x is not None for x in (scheduler, workers, client)) > 1:
            raise ConfigError("give one of scheduler= (an existing cluster), workers= (a new LocalCluster) or "
                              "client=")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigError(f"workers={workers!r}: give a number of Dask workers >= 1")
        if scheduler is not None:
            _normalise_address(scheduler)
        self.scheduler = scheduler
        self.workers = workers
        self.connect_timeout = connect_timeout
        self.processes = processes
        self.client = client
        self._own_client = client is None
        self._cluster: Any = None

    def open(self) -> None:
        if self.client is None and self.scheduler is not None:
            self.client = connect(self.scheduler, timeout=self.connect_timeout)

    def _start(self, job_json: str) -> None:
        self.open()
        if self.client is not None:
            return
        from distributed import Client, LocalCluster

        import dask

        n = self.workers or default_jobs()
        # the workers' statistical profiler samples every thread's stack every 10 ms, holding the
        # GIL: measurable on short image sets, and there is no dashboard to show it here
        with dask.config.set({"distributed.worker.profile.enabled": False}), _children_ignore_sigint():
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=self.processes,
                                         dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self._cluster, set_as_default=False)

    @property
    def slots(self) -> int:
        if self.client is None:
            return self.workers or 1
        return max(1, sum(self.client.nthreads().values()))

    def close(self) -> None:
        if self._own_client and self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            cluster.close()

    def map_unordered(self, fn: TaskFn, tasks: Iterable[Task], *, window: int | None = None) -> Iterator[Outcome]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        assert self.client is not None, "start() first"
        window = window or 4 * self.slots
        source = iter(tasks)
        futures: dict[str, Task] = {}

        def submit() -> Any:
            t = next(source, None)
            if t is None:
                return None
            fut = self.client.submit(fn, self._job, t, key=f"deepscope-{t.key}-{uuid.uuid4().hex[:8]}", pure=False)
            futures[fut.key] = t
            return fut

        first = [f for f in (submit() for _ in range(window)) if f is not None]
        if not first:
            return
        ac = as_completed(first, loop=self.client.loop)
        for fut in ac:
            t = futures.pop(fut.key)
            try:
                yield t, fut.result()
            except KilledWorker as exc:
                yield t, WorkerLost(f"Dask workers died repeatedly while processing {t.set_id} (out of memory, "
                                    f"or a crash in a library; {type(exc).__name__})")
            except (OSError, TimeoutError) as exc:
                raise SchedulerError(f"lost the Dask cluster while processing {t.set_id} ({exc}); the results "
                                     "written so far are kept: run the same command again to finish") from exc
            except Exception as exc:
                yield t, exc
            finally:
                fut.release()
            nxt = submit()
            if nxt is not None:
                ac.add(nxt)

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"dask scheduler {_normalise_address(self.scheduler)}"
        if self.client is not None and self._cluster is None:
            return "dask (given client)"
        n = self.workers or default_jobs()
        return f"dask LocalCluster, {n} worker{'s' if n != 1 else ''}"
