"""Shared fixtures: paths to the real data beside the project (skipped cleanly when absent)."""

from __future__ import annotations

import os
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
