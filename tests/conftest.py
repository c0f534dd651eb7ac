"""Shared fixtures: paths to the real data beside the project (skipped cleanly when absent)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPSCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not available at {path}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def bbbc005_dir() -> Path:
    return _need(SHARED / "bbbc005" / "images")


@pytest.fixture(scope="session")
def bbbc005_labels() -> Path:
    return _need(SHARED / "bbbc005" / "labels.csv")


@pytest.fixture(scope="session")
def dsb_dir() -> Path:
    return _need(SHARED / "dsb2018")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return _need(SHARED / "samples")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """Give each test the torch thread count the session started with. A pipeline run in this process
    (``jobs=0``) sets torch's threads for its workers (cores // slots) and keeps them set: every later test
    of that pytest worker then ran with 2 threads next to the other worker's, which took 2-4x the CPU."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None:
        if threads is None:
            threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or None
        if threads and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
