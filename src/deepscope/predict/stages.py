"""Where a batch spends its time: seconds per stage, summed over the threads that ran it.

A :class:`StageClock` is thread-safe; :func:`stage` records into every clock that is active (the
batch runner activates its own while it runs), so code deep inside inference (a backend's network
call) is timed without being handed the clock. With no clock active, :func:`stage` costs one check.

Examples
--------
>>> clock = StageClock()
>>> with active(clock):
...     with stage("network"):
...         pass
>>> sorted(clock.as_dict())
['network']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["StageClock", "stage", "active"]

_ACTIVE: list[StageClock] = []
_LOCK = threading.Lock()


class StageClock:
    """Seconds and calls per stage name (summed over threads: two workers busy for 1 s each add 2 s)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def as_dict(self) -> dict[str, float]:
        """``{stage: seconds}`` rounded to the millisecond."""
        with self._lock:
            return {k: round(v, 3) for k, v in self.seconds.items()}


@contextmanager
def active(clock: StageClock) -> Iterator[StageClock]:
    """Make :func:`stage` record into ``clock`` while the block runs."""
    with _LOCK:
        _ACTIVE.append(clock)
    try:
        yield clock
    finally:
        with _LOCK:
            _ACTIVE.remove(clock)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` in every active clock (nothing when none is active)."""
    if not _ACTIVE:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        for clock in list(_ACTIVE):
            clock.add(name, dt)
