"""Tiny seeded synthetic images and pipeline specs for the pipeline and CLI tests (no shared data needed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

import numpy as np

from deepscope.data.synth import generate_field
from deepscope.io import write_tiff

SIZE = (128, 160)


def write_nuclei(folder: Path, n: int, *, seed: int = 0, prefix: str = "img") -> list[Path]:
    """``n`` single-channel nuclei images ``<prefix>_00.tif`` ... (uint8, seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        f = generate_field(3 + i % 5, size=SIZE, stains=1, seed=seed + i)
        out.append(write_tiff(folder / f"{prefix}_{i:02d}.tif", f.image(1)))
    return out


def write_plate(folder: Path, wells: list[str], *, sites: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Two-channel fields named ``plate1_<well>_s<site>_w<1|2>.tif`` (w1 nuclei, w2 cell bodies)."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for k, well in enumerate(wells):
        for s in range(1, sites + 1):
            f = generate_field(4 + k, size=SIZE, seed=seed + 10 * k + s)
            write_tiff(folder / f"plate1_{well}_s{s}_w1.tif", f.image(1))
            write_tiff(folder / f"plate1_{well}_s{s}_w2.tif", f.image(2))
            truth[f"{well}_s{s}"] = f.cells
    return truth


def segment_pipeline(folder: Path, **outputs: object) -> dict:
    """A small pipeline dict: otsu-watershed nuclei, count, measure."""
    return {"name": "test", "inputs": {"paths": [str(folder)]},
            "steps": [{"segment": {"model": "otsu-watershed"}}, {"count": {}}, {"measure": {}}],
            "outputs": {"labels": True, "overlays": False, **outputs}}


def wait_until(done: Callable[[], bool], *, seconds: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``done`` until it holds; fail with ``what`` after ``seconds`` or when ``alive`` stops holding."""
    deadline = time.monotonic() + seconds
    while not done():
        assert alive() and time.monotonic() < deadline, what
        time.sleep(0.02)


def start_run(tmp_path: Path, *, n: int, jobs: int) -> tuple[Any, Path]:
    """Start ``deepscope run`` on ``n`` nuclei images in a new session (its own process group): (process, RUN_DIR)."""
    import subprocess
    import sys

    import yaml

    folder = tmp_path / "images"
    write_nuclei(folder, n)
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump(segment_pipeline(folder)))
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "deepscope.cli.app", "run", str(spec), "--out", str(run), "-j",
                             str(jobs)], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, run
