"""Segmenting an OME-Zarr image larger than memory, tile by tile (issue 18): time and peak memory by image size.

    .venv/bin/python benchmarks/bench_large.py [--sizes 5000,20000] [--model nuclei]

For each size, a synthetic OME-Zarr image (uint8, BBBC005-like nuclei, 1024 x 1024 chunks, written
block by block from 2,000 x 2,000 fields made by ``deepscope.data.synth``: the benchmark never holds the
whole image) is segmented by ``deepscope segment IMAGE.zarr -o OUT --no-overlay --no-report`` in a fresh
process (with ``DEEPSCOPE_OUT_OF_CORE_PIXELS=1e6``, so the small size goes tile by tile too), which writes the labels into the image's ``labels/<model>`` group tile by tile
(``deepscope.predict.large``). Reported: wall time, megapixels/s, the peak RSS of the process, and the
objects found against the objects drawn (objects cut by block seams of the synthetic image count
as drawn in each block). Flat peak RSS from the small to the large size = memory bounded by the tile.
Result: ``benchmarks/results/large.json``; the stores are written under ``--work`` (default: a temporary
folder on the disk of this checkout, removed afterwards; 20,000 x 20,000 takes about 0.5 GB).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _util import report  # noqa: E402

BLOCK = 2000


def make_store(path: Path, side: int, *, cells_per_block: int = 260, variants: int = 6) -> int:
    """A ``side`` x ``side`` OME-Zarr 0.5 image of synthetic nuclei, written block by block; the objects drawn."""
    import numpy as np
    import zarr

    from deepscope.data.synth import generate_field

    fields = [generate_field(cells_per_block, size=(BLOCK, BLOCK), seed=100 + v, stains=(1,)) for v in range(variants)]
    root = zarr.open_group(str(path), mode="w")
    root.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [0.65, 0.65]}]}]}]}
    arr = root.create_array("s0", shape=(side, side), dtype="uint8", chunks=(1024, 1024), fill_value=0)
    drawn = 0
    k = 0
    for r in range(0, side, BLOCK):
        for c in range(0, side, BLOCK):
            f = fields[k % variants]
            k += 1
            h, w = min(BLOCK, side - r), min(BLOCK, side - c)
            arr[r:r + h, c:c + w] = f.images[(1, 1)][:h, :w]
            drawn += len(np.unique(f.labels(1)[:h, :w])) - 1
    return drawn


def run(side: int, model: str, work: Path) -> dict:
    store = work / f"img{side}.zarr"
    t = time.perf_counter()
    drawn = make_store(store, side)
    made = time.perf_counter() - t
    exe = str(Path(sys.executable).parent / "deepscope")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    env = {**os.environ, "DEEPSCOPE_OUT_OF_CORE_PIXELS": "1e6"}  # every size tile by tile (default: over 50 Mpx)
    # the pixel limit (250 Mpx by default) bounds the work of the tiled path too: 20,000 x 20,000 is over it
    limit = float(env.get("DEEPSCOPE_MAX_PIXELS") or 250e6)
    if limit:  # 0 = no limit
        env["DEEPSCOPE_MAX_PIXELS"] = str(int(max(limit, side * side)))
    proc = subprocess.run([exe, "segment", str(store), "-o", str(work / f"out{side}"), "--model", model,
                           "--no-overlay", "--no-report"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"segment of {store} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    import numpy as np
    import pandas as pd

    row = pd.read_csv(work / f"out{side}" / "counts.csv").iloc[0]
    out = {"side": side, "megapixels": round(side * side / 1e6, 1), "store_made_s": round(made, 1),
           "wall_s": round(wall, 1), "megapixels_per_s": round(side * side / 1e6 / wall, 2),
           "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
           "max_rss_mb": round(after.ru_maxrss / 1024, 1), "objects_found": int(row["count"]),
           "objects_drawn": drawn, "diameter": float(row.get("diameter", float("nan"))),
           "error": str(row.get("error", "")) if isinstance(row.get("error"), str) else ""}
    import zarr

    lab = zarr.open_group(str(store / "labels" / model), mode="r")["0"]
    out["labels_shape"] = list(lab.shape)
    out["labels_max_in_store"] = int(max(np.asarray(lab[r:r + 4096]).max() for r in range(0, side, 4096)))
    shutil.rmtree(store, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="5000,20000")
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-large-", dir=HERE.parent))
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": args.model, "runs": []}
    try:
        # ru_maxrss of children is the largest child so far: smallest size first
        for side in sorted(int(s) for s in args.sizes.split(",")):
            r = run(side, args.model, work)
            result["runs"].append(r)
            print(r, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report("large", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
