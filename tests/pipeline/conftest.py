"""Fixtures of the pipeline tests: tiny seeded synthetic image folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._data import write_nuclei, write_plate


@pytest.fixture
def nuclei_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_nuclei(folder, 6)
    return folder


@pytest.fixture
def plate_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plate"
    write_plate(folder, ["A01", "A02", "B01"])
    return folder
