"""Throughput of `deepscope count`, `segment` and `restore` over files (reading, inference, writing), CPU.

    .venv/bin/python benchmarks/bench_batch.py [--n 48] [--threads 2]

Runs :func:`deepscope.predict.files.count_paths`, :func:`segment_paths` and :func:`restore_paths`
(what the commands call) on ``n`` real BBBC005 images (696 x 520 uint8; the bundled samples when
``../shared`` is absent), next to plain ``tifffile.imread`` of the same files, after one warm-up
image. Each uses the shipped model when it is installed (``count-bbbc005``, ``cells-bbbc005``,
``deblur-bbbc005``), else an untrained model of the default architecture (same arithmetic: the
speed does not depend on the weights); the JSON says which. Everything written (CSV, label
images, overlays, restored images, lineage) goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import ROOT, SHARED, write_result


def _model(name: str, fallback: Any) -> tuple[Any, str]:
    from deepscope.models import list_models, load_model

    if name in [m.name for m in list_models()]:
        return load_model(name, device="cpu"), name
    return fallback, f"untrained {type(fallback).__name__} (default architecture; {name} not installed)"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48, help="images per command")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    import tifffile
    import torch

    from deepscope.models import CountModel, RestoreModel, SegmentModel
    from deepscope.predict.files import count_paths, restore_paths, segment_paths

    torch.set_num_threads(args.threads)
    folder = SHARED / "bbbc005" / "images"
    if not folder.exists():
        folder = ROOT / "src" / "deepscope" / "samples"
    files = sorted(folder.glob("*.TIF"))
    step = max(1, len(files) // args.n)
    files = files[::step][: args.n]
    load = os.getloadavg()[0]

    t = time.perf_counter()
    for f in files:
        tifffile.imread(f)
    read_s = time.perf_counter() - t

    counter, count_name = _model("count-bbbc005", CountModel())
    segmenter, seg_name = _model("cells-bbbc005", SegmentModel())
    restorer, rest_name = _model("deblur-bbbc005", RestoreModel())
    rows: dict[str, Any] = {"tifffile.imread": {"seconds": read_s, "images_per_s": len(files) / read_s}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        jobs = {
            "count": (lambda fs: count_paths(fs, model=counter, output=out / "counts.csv", device="cpu"), count_name),
            "segment": (lambda fs: segment_paths(fs, out / "seg", model=segmenter, device="cpu"), seg_name),
            "segment --no-overlay": (lambda fs: segment_paths(fs, out / "seg2", model=segmenter, device="cpu",
                                                              overlay=False), seg_name),
            "restore": (lambda fs: restore_paths(fs, out / "rest", model=restorer, device="cpu"), rest_name),
        }
        for name, (fn, model_name) in jobs.items():
            fn(files[:1])  # warm-up: first-call allocations, lazy imports
            t = time.perf_counter()
            res = fn(files)
            s = time.perf_counter() - t
            rows[name] = {"seconds": s, "images_per_s": len(files) / s, "failed": res.n_failed, "model": model_name}
    result = {"n_images": len(files), "image_shape": list(tifffile.imread(files[0]).shape), "folder": str(folder),
              "torch_threads": args.threads, "load_average_1min_at_start": load, "results": rows}
    path = write_result("batch", result)
    print(f"{len(files)} images {result['image_shape']} from {folder} (load average {load:.1f})")
    for name, r in rows.items():
        extra = f"  [{r['model']}]" if "model" in r else ""
        print(f"  {name:22s} {r['images_per_s']:7.1f} images/s ({r['seconds']:.2f} s){extra}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
