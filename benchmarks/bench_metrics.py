"""Speed of the object metrics and measurements on synthetic images with thousands of objects.

    .venv/bin/python benchmarks/bench_metrics.py [--objects 5000] [--size 2000] [--repeats 3]

A seeded label image of ``objects`` touching blobs (Voronoi cells cut to discs of radius 12) on a
``size`` x ``size`` canvas, and a prediction = the same objects shifted by 2 columns with other
ids. Times (best of ``repeats``):

* ``match_instances`` at the ten DSB thresholds (sparse IoU + optimal matching), and
  ``label_overlap`` alone;
* ``measure_objects`` (shape + one intensity channel) next to scikit-image's
  ``regionprops_table`` computing the same shape properties on the same labels.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _util import write_result


def _labels(n: int, size: int, seed: int = 0) -> np.ndarray:
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.int32)
    pts = rng.integers(0, size, (n, 2))
    lab[pts[:, 0], pts[:, 1]] = rng.permutation(np.arange(1, n + 1)) * 3 + 7  # non-consecutive ids
    return expand_labels(lab, 12)


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=5000)
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from skimage.measure import regionprops_table

    from deepscope.evaluate import count_instances, label_overlap, match_instances
    from deepscope.measure import measure_objects

    true = _labels(args.objects, args.size)
    pred = np.roll(true, 2, axis=1)
    pred[pred > 0] += 100
    img = np.random.default_rng(1).random(true.shape).astype(np.float32)
    n_true = count_instances(true)
    match_instances(true, pred)  # warm-up (imports)
    res: dict = {"image": f"{args.size}x{args.size}", "n_objects": n_true}
    res["match_instances_s"] = _best(lambda: match_instances(true, pred), args.repeats)
    res["label_overlap_s"] = _best(lambda: label_overlap(true, pred), args.repeats)
    r = match_instances(true, pred, thresholds=(0.5,))
    res["f1@0.5"] = float(r.f1[0])
    res["measure_objects_s"] = _best(lambda: measure_objects(true, {"I": img}), args.repeats)
    props = ("label", "area", "perimeter", "eccentricity", "solidity", "extent", "axis_major_length",
             "axis_minor_length", "orientation", "centroid", "bbox", "intensity_mean", "intensity_max",
             "intensity_min", "intensity_std")
    res["regionprops_table_s"] = _best(lambda: regionprops_table(true, intensity_image=img, properties=props), 1)
    print(f"{n_true} objects on {res['image']} pixels")
    print(f"match_instances (10 thresholds)  {res['match_instances_s']:.3f} s   "
          f"(label_overlap {res['label_overlap_s']:.3f} s)")
    print(f"measure_objects (shape + 1 ch.)  {res['measure_objects_s']:.3f} s   "
          f"(skimage regionprops_table, same features: {res['regionprops_table_s']:.2f} s)")
    print("wrote", write_result("metrics", res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
