"""Functions run inside pipeline workers by the fault tests (importable by spawned worker processes)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from typing import Any

from deepscope.pipeline import DaskExecutor, LocalExecutor


def kill_first_worker(marker: str, fn: Any, job_json: str, task: Any) -> Any:
    """The first task to run anywhere kills its worker process (once: the marker file says it happened)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return fn(job_json, task)
    os.write(fd, f"{os.getpid()} {task.set_id}\n".encode())
    os.close(fd)
    os._exit(1)


class KillOnceDaskExecutor(DaskExecutor):
    """A Dask executor whose first task kills the worker running it."""

    def __init__(self, marker: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.marker = marker

    def map_unordered(self, fn: Any, tasks: Iterable[Any], *, window: int | None = None) -> Iterator[Any]:
        return super().map_unordered(functools.partial(kill_first_worker, self.marker, fn), tasks, window=window)


def kill_on(victim: str, fn: Any, job_json: str, task: Any) -> Any:
    """Kill the worker process whenever it is given the image set ``victim`` (a poisonous image)."""
    if task.set_id == victim:
        os._exit(1)
    return fn(job_json, task)


class PoisonLocalExecutor(LocalExecutor):
    """A local process pool in which one image set always kills its worker."""

    def __init__(self, victim: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.victim = victim

    def map_unordered(self, fn: Any, tasks: Iterable[Any], *, window: int | None = None) -> Iterator[Any]:
        return super().map_unordered(functools.partial(kill_on, self.victim, fn), tasks, window=window)
