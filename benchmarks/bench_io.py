"""Read throughput on the shared BBBC005 folder: deepscope vs plain tifffile.imread (same run).

    .venv/bin/python benchmarks/bench_io.py [--repeats 3]

Reads every image of ../shared/data/bbbc005/images with (a) ``tifffile.imread``, (b)
``deepscope.io.read_image`` (decode + SHA-256 of the file bytes) and (c) iterating a lazy
``ImageDataset`` from ``ImageLoader(pattern="bbbc005")``. Each method runs ``repeats`` times in
interleaved order after one warm-up pass (OS file cache warm for all); the best pass is reported.
"""

from __future__ import annotations

import argparse
import sys
import time

import tifffile

from _util import SHARED, write_result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    folder = SHARED / "bbbc005" / "images"
    if not folder.exists():
        print(f"shared data not found at {folder}; nothing to benchmark")
        return 0
    from deepscope.data import ImageLoader
    from deepscope.io import read_image

    files = sorted(folder.glob("*.TIF"))
    ds = ImageLoader(pattern="bbbc005", labels="count").load(folder)

    def plain() -> None:
        for f in files:
            tifffile.imread(f)

    def ours() -> None:
        for f in files:
            read_image(f)

    def ours_nohash() -> None:
        for f in files:
            read_image(f, checksum=False)

    def dataset() -> None:
        for i in range(len(ds)):
            ds.get_image(i)

    methods = {"tifffile.imread": plain, "deepscope.read_image": ours,
               "deepscope.read_image(checksum=False)": ours_nohash, "ImageDataset.get_image": dataset}
    plain()  # warm the page cache
    best = {k: float("inf") for k in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    rates = {k: len(files) / v for k, v in best.items()}
    ref = rates["tifffile.imread"]
    res = {"n_images": len(files), "images_per_s": rates,
           "relative_to_tifffile": {k: v / ref for k, v in rates.items()}}
    for k, v in rates.items():
        print(f"{k:40s} {v:8.1f} images/s  ({v / ref:.2f} x tifffile)")
    print("wrote", write_result("io", res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
