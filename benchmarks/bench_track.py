"""Time-lapse tracking (issue 28): CTC measures of ``deepscope track`` on synthetic movies with exact ground truth.

    nice -n 10 .venv/bin/python benchmarks/bench_track.py [--movies 5] [--quick]

Movies from :func:`deepscope.data.synth.generate_movie` (moving nuclei with persistence, divisions, cells entering
and leaving, blinking, camera noise), scored by py-ctcmetrics (:func:`deepscope.tasks.track.evaluate_ctc`):

* ``standard``: 256 x 256, 40 frames, 20-30 nuclei at the start and up to 60 (many divisions), seeds 0..N-1;
* ``hard``: the same with a third of the signal-to-noise, twice the speed, less persistence and crowding (nuclei
  may touch; sisters are born touching);
* ``colony`` (linking alone): 512 x 512, 40 frames, 150 nuclei growing to 400 (hundreds of divisions).

Two pipelines per movie: *linking alone* (the true masks with ids scrambled per frame: ``deepscope track --masks``)
and *segmentation + linking* (each frame segmented by the shipped ``nuclei`` model, then linked: ``deepscope track``),
each through :func:`deepscope.tasks.track.track_movie`, the command's code path. Frames/s counts the whole
pipeline (segmentation + linking, or detection + linking) in wall-clock time on this CPU, torch on 2 threads;
``cpu_s_per_frame`` is the process's CPU time per frame (less sensitive to other work on a shared machine).
Result: ``benchmarks/results/track.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _util import report


def scramble(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros_like(labels)
    for t in range(len(labels)):
        ids = np.unique(labels[t])
        ids = ids[ids > 0]
        lut = np.zeros(int(labels[t].max()) + 1, np.int32)
        lut[ids] = rng.permutation(len(ids)) + 1
        out[t] = lut[labels[t]]
    return out


def score(movie: Any, masks: np.ndarray | None, model: Any, tmp: Path, name: str) -> dict[str, float]:
    from deepscope.io.ctc import write_ctc_result
    from deepscope.tasks.track import Movie, evaluate_ctc, track_movie

    gt = movie.write_ctc(tmp / name)
    mv = Movie(movie.frames, tmp / f"{name}.tif", movie.pixel_size, movie.frame_interval)
    t0, c0 = time.perf_counter(), time.process_time()
    res = track_movie(mv, masks=masks, model=model)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    write_ctc_result(tmp / name / "res", res.labels, res.tracks)
    e = evaluate_ctc(tmp / name / "res", gt)
    return {"DET": e["DET"], "SEG": e["SEG"], "TRA": e["TRA"], "BC(0)": e["BC(0)"], "gt_divisions": e["gt_divisions"],
            "tp_div": e["tp_div(0)"], "fp_div": e["fp_div(0)"], "fps": len(movie.frames) / dt,
            "cpu_s_per_frame": cpu / len(movie.frames),
            "cells_max": int(max(len(np.unique(lab)) - 1 for lab in movie.labels)),
            # the movie's scale check (segmentation only): "estimate" = each frame at its own size estimate
            **({"scale": res.info["scale"]} if "scale" in res.info else {})}


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    out = {k: float(np.mean([r[k] for r in rows])) for k in ("DET", "SEG", "TRA", "BC(0)", "fps", "cpu_s_per_frame")}
    out["TRA_min"] = float(min(r["TRA"] for r in rows))
    out["BC(0)_min"] = float(min(r["BC(0)"] for r in rows))
    out["divisions"] = int(sum(r["gt_divisions"] for r in rows))
    out["divisions_found"] = int(sum(r["tp_div"] for r in rows))
    out["false_divisions"] = int(sum(r["fp_div"] for r in rows))
    out["movies"] = len(rows)
    out["cells_max"] = int(max(r["cells_max"] for r in rows))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--movies", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 standard movies, no hard set, a smaller colony")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    from deepscope.data.synth import generate_movie
    from deepscope.models import load_model

    n = 2 if args.quick else args.movies
    model = load_model("nuclei", device="cpu")
    sets: dict[str, list[Any]] = {
        "standard": [generate_movie(20 + 5 * (s % 3), frames=40, size=(256, 256), max_cells=60, seed=s)
                     for s in range(n)],
        "hard": [] if args.quick else [
            generate_movie(20 + 5 * (s % 3), frames=40, size=(256, 256), max_cells=60, snr=4.0, speed=3.0,
                           persistence=0.6, spacing=1.0, seed=100 + s) for s in range(max(n // 2, 1))],
    }
    colony = generate_movie(150 if not args.quick else 60, frames=40, size=(512, 512) if not args.quick else (256, 256),
                            max_cells=400 if not args.quick else 150, cycle=(12, 30), enter_rate=0.3, seed=7)
    result: dict[str, Any] = {"command": "nice -n 10 .venv/bin/python benchmarks/bench_track.py"
                              + (" --quick" if args.quick else f" --movies {n}")}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, movies in sets.items():
            if not movies:
                continue
            link_rows = [score(m, scramble(m.labels, i), None, tmp, f"{name}{i}l") for i, m in enumerate(movies)]
            seg_rows = [score(m, None, model, tmp, f"{name}{i}s") for i, m in enumerate(movies)]
            for k, v in summarise(link_rows).items():
                result[f"{name}.link.{k}"] = v
            for k, v in summarise(seg_rows).items():
                result[f"{name}.seg+link.{k}"] = v
            result[f"{name}.per_movie"] = {"link": link_rows, "seg+link": seg_rows}
        row = score(colony, scramble(colony.labels, 1), None, tmp, "colony")
        for k, v in summarise([row]).items():
            result[f"colony.link.{k}"] = v
    report("track", result)


if __name__ == "__main__":
    main()
