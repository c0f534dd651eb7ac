"""Counting on any image ``deepscope count`` accepts (issue 16): general images, out-of-domain pictures,
restored images, and the whole-process speed against Otsu + watershed.

    .venv/bin/python benchmarks/bench_count_general.py [--skip-speed] [--files 120]

With the default ``count-bbbc005`` and no options, as a new user runs it:
- general images: the held-out test parts of DSB2018 (grey fluorescence of other sizes, 38 images) and
  of ``dsb2018_other`` (H&E 11, brightfield 2); never used in training or calibration. Count MAPE and MAE
  against the number of labelled nuclei, coverage of the 95% interval, and which method counted each
  image (``density``: the BBBC005 network; ``instances``: the generalist segmenter);
- out-of-domain pictures (the photographs and generated pictures of ``bench_domain.py``): share with
  ``in_domain`` false and no interval;
- restored images: held-out F48 (most blurred) BBBC005 test fields deblurred by ``deblur-bbbc005``,
  counting MAE raw vs restored (and on the in-focus F1 image of the same field);
- speed: ``deepscope count FILES -o counts.csv`` as a whole process (start-up, reading, counting, the
  CSV) vs a Python process that reads the same files and counts the objects of ``otsu_watershed``
  (the classical counter), on 520 x 696 BBBC005 test images, one run each, as a ratio.
Result: ``benchmarks/results/count_general.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402

OTSU = r"""
import sys
from deepscope.io import read_image
from deepscope.predict.classical import otsu_watershed
n = 0
for f in open(sys.argv[1]).read().split("\n"):
    if f:
        n += int(otsu_watershed(read_image(f).data).max() > 0)
print(n)
"""


def general(model) -> dict:  # type: ignore[no-untyped-def]
    from finalize import general_count_eval, generalist_sets

    return general_count_eval(model, generalist_sets("test"))


def out_of_domain(model) -> dict:  # type: ignore[no-untyped-def]
    from bench_domain import PHOTOS, generated_pictures, skimage_pictures

    pics = {**skimage_pictures(PHOTOS), **generated_pictures()}
    res = model.count_images(list(pics.values()))
    flagged = [r.in_domain is False and not np.isfinite(r.low) for r in res]
    return {"n": len(pics), "flagged_without_interval": float(np.mean(flagged)),
            "missed": sorted(k for k, f in zip(pics, flagged) if not f),
            "methods": {m: int(sum(r.method == m for r in res)) for m in sorted({r.method for r in res})}}


def restored(model) -> dict:  # type: ignore[no-untyped-def]
    from deepscope.models import load_model
    from finalize import restore_pairs

    deblur = load_model("deblur-bbbc005", device="cpu")
    raw, rest, focus = [], [], []
    for x, y, m in restore_pairs("deblur", "test"):
        if m["blur"] != 48:
            continue
        r_raw, r_rest, r_focus = model.count_images([x, deblur.predict_image(x), y])
        raw.append(abs(r_raw.count - m["count"]))
        rest.append(abs(r_rest.count - m["count"]))
        focus.append(abs(r_focus.count - m["count"]))
    return {"n_f48_images": len(raw), "mae_raw": float(np.mean(raw)), "mae_restored": float(np.mean(rest)),
            "mae_in_focus_f1": float(np.mean(focus))}


def speed(n_files: int) -> dict:
    from pack_data import bbbc005_split

    ds, part = bbbc005_split()
    files = [p for p, pt in zip(ds.paths, part) if pt == "test"][:n_files]
    exe = Path(sys.executable).parent / "deepscope"
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "files.txt"
        lst.write_text("\n".join(str(f) for f in files))
        for f in files:  # page cache warm for both
            Path(f).read_bytes()
        t = time.perf_counter()
        subprocess.run([str(exe), "count", *map(str, files), "-o", str(Path(tmp) / "counts.csv"), "--no-report"],
                       check=True, capture_output=True)
        ours = time.perf_counter() - t
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", OTSU, str(lst)], check=True, capture_output=True)
        otsu = time.perf_counter() - t
    return {"files": len(files), "deepscope_count_images_per_s": len(files) / ours,
            "otsu_watershed_images_per_s": len(files) / otsu, "ratio_vs_otsu": otsu / ours}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="count-bbbc005")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--files", type=int, default=120)
    args = ap.parse_args(argv)
    if not start("bbbc005", "dsb2018"):
        return 0
    from deepscope.models import load_model

    model = load_model(args.model, device="cpu")
    result: dict = {"model": args.model}
    if not args.skip_speed:
        result["speed_whole_process"] = speed(args.files)
    result["general_test"] = general(model)
    result["out_of_domain"] = out_of_domain(model)
    result["restored_f48"] = restored(model)
    report("count_general", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
