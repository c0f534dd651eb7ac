"""Segmentation accuracy, speed and memory: the shipped ``nuclei`` (generalist) and ``nuclei-fluo``
(fluorescence specialist) models vs Otsu + watershed, same run.

    .venv/bin/python benchmarks/bench_segment.py [--skip-large] [--large-size 10000] [--speed-only]

Accuracy, per kind of image, on the held-out test parts of the development sets (never used in
training, tuning or calibration; splits in recipes/pack_data.py): DSB2018 fluorescence (38 images),
H&E tiles (11, split by tissue appearance group) and brightfield (2) of ``dsb2018_other``. Each image is
given as it is (grey or RGB, no options): F1 at IoU 0.5 / 0.75 / 0.9 (mean over images and pooled over
objects), DSB score (mean over images of AP averaged over IoU 0.50:0.95), PQ, the share of images
the domain check accepted and the median error of the estimated object diameter. Otsu + watershed
gets grey input, inverted for H&E and brightfield (dark nuclei).
Speed: 520 x 696 images (the BBBC005 w1 test images, nucleus stain) through
``deepscope.predict.files.segment_paths`` without overlays (reading, network, post-processing, writing
the label TIFF) vs ``otsu_watershed`` with reading, 2-core CPU.
Memory: a 10,000 x 10,000 uint8 image (real DSB2018 test images tiled) segmented tile by tile by
``nuclei`` in a subprocess; its peak RSS is reported.
Also the shipped ``cells-bbbc005`` model: synthetic test fields with exact masks, and object counts
against the file-name counts of real BBBC005 test images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from _util import SHARED, write_result  # noqa: E402

LARGE = r"""
import resource, sys, time, numpy as np
from deepscope.models import load_model
n = int(sys.argv[1]); tile_src = np.load(sys.argv[2])
reps = (n // tile_src.shape[0] + 1, n // tile_src.shape[1] + 1)
img = np.tile(tile_src, reps)[:n, :n]
del tile_src
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
m = load_model("nuclei", device="cpu")
t = time.perf_counter()
out = np.lib.format.open_memmap(sys.argv[3], mode="w+", dtype=np.int32, shape=img.shape)
m.predict_image(img, tile=1024, out=out)
out.flush()
print({"seconds": time.perf_counter() - t, "objects": int(out.max()),
       "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "rss_before_model_mb": base / 1024, "image_mb": img.nbytes / 2**20})
"""


def _speed(models, otsu_watershed):  # type: ignore[no-untyped-def]
    """Images/s on 40 BBBC005 w1 test images (520 x 696): segment_paths without overlays (each model) vs Otsu +
    watershed."""
    import tifffile

    from deepscope.io import read_image
    from deepscope.predict.files import segment_paths
    from pack_data import bbbc005_split

    bds, bpart = bbbc005_split()
    files = [Path(p) for p, s, pt in zip(bds.paths, bds.metadata.stain, bpart) if s == 1 and pt == "test"][:40]
    for f in files:
        tifffile.imread(f)
    t = time.perf_counter()
    for f in files:
        otsu_watershed(read_image(f).data)
    otsu_s = time.perf_counter() - t
    out = {"images": len(files), "otsu_watershed_images_per_s": len(files) / otsu_s}
    for name, model in models.items():
        with tempfile.TemporaryDirectory() as tmp:
            segment_paths(files[:2], tmp, model=model, overlay=False, device="cpu")  # warm-up
            t = time.perf_counter()
            res = segment_paths(files, tmp, model=model, overlay=False, device="cpu")
            ours_s = time.perf_counter() - t
        out[name] = {"images_per_s": len(files) / ours_s, "time_ratio_vs_otsu": ours_s / otsu_s,
                     "share_of_otsu_rate": otsu_s / ours_s, "failed": int(res.n_failed)}
    return out


def _grey_eval(segment, sets, *, invert_dark: bool):  # type: ignore[no-untyped-def]
    """``segment(grey image)`` per kind: colour averaged to grey (as ``--channel`` cannot pick one for H&E),
    inverted where nuclei are dark (H&E, brightfield) when ``invert_dark``."""
    from deepscope.data.transforms import to_grey
    from deepscope.evaluate import match_instances
    from finalize import instance_summary

    out = {}
    for kind, (images, labels) in sets.items():
        rs = []
        for im, lab in zip(images, labels):
            g = np.asarray(to_grey(im, rule="mean"), np.float32)
            if invert_dark and kind != "fluorescence":
                g = g.max() - g
            rs.append(match_instances(lab, segment(g)))
        out[kind] = instance_summary(rs)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--large-size", type=int, default=10000)
    ap.add_argument("--speed-only", action="store_true",
                    help="only the 520 x 696 speed figures, merged into the existing results/segment.json")
    args = ap.parse_args()
    if not (SHARED / "dsb2018").exists():
        print("shared data not found; nothing to benchmark")
        return 0
    import torch

    from deepscope.models import load_model
    from deepscope.predict.classical import otsu_watershed
    from finalize import cells_eval, generalist_eval, generalist_sets, real_bbbc005_object_counts, synth_fields

    torch.set_num_threads(2)
    results: dict = {}
    models = {"nuclei": load_model("nuclei", device="cpu"), "nuclei-fluo": load_model("nuclei-fluo", device="cpu")}
    if args.speed_only:
        from _util import RESULTS

        old = json.loads((RESULTS / "segment.json").read_text())
        results = {k: v for k, v in old.items() if k not in ("topic", "date", "machine")}
        results["speed_520x696"] = _speed(models, otsu_watershed)
        print(json.dumps(results["speed_520x696"], indent=1))
        print("wrote", write_result("segment", results))
        return 0
    sets = generalist_sets("test")
    results["test"] = {"n_images": {k: len(v[0]) for k, v in sets.items()},
                       "nuclei": generalist_eval(models["nuclei"], sets),
                       "nuclei-fluo (grey)": _grey_eval(models["nuclei-fluo"].predict_image, sets,
                                                         invert_dark=False),
                       "otsu_watershed (grey, inverted for H&E and brightfield)":
                           _grey_eval(otsu_watershed, sets, invert_dark=True)}
    results["speed_520x696"] = _speed(models, otsu_watershed)

    if not args.skip_large:
        fluo = sets["fluorescence"][0]
        src = max(fluo, key=lambda im: im.size)  # the largest test image as the tile source
        src = src if src.ndim == 2 else src[..., 0]
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "src.npy", src)
            out = subprocess.run([sys.executable, "-c", LARGE, str(args.large_size), str(Path(tmp) / "src.npy"),
                                  str(Path(tmp) / "labels.npy")], capture_output=True, text=True, check=True)
            results["large_image"] = {"size": args.large_size, **eval(out.stdout.strip().splitlines()[-1])}  # noqa: S307

    cells = load_model("cells-bbbc005", device="cpu")
    results["cells-bbbc005"] = {"synthetic_test_fields_seed303": cells_eval(cells, synth_fields(12, seed=303)),
                                "bbbc005_test_object_counts": real_bbbc005_object_counts(cells, "test")}
    for k in [k for k in results["test"] if k != "n_images"]:
        for kind, r in results["test"][k].items():
            print(f"{k[:16]:16s} {kind:13s} F1@0.5 {r['f1@0.5_mean']:.3f} (pooled {r['f1@0.5_pooled']:.3f})  "
                  f"DSB {r['dsb_score']:.3f}  F1@0.9 {r['f1@0.9_mean']:.3f}")
    print(json.dumps({k: results[k] for k in ("speed_520x696",) + (("large_image",) if "large_image" in results
                                                                    else ())}, indent=1))
    print("wrote", write_result("segment", results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
