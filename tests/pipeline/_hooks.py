"""Functions run inside pipeline workers by the fault tests (importable by spawned worker processes)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from typing import Any

from deepscope.pipeline import DaskExecutor


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
