"""The absolute blur flag of image QC (issue 31): the power-log-log slope of in-focus and blurred images.

    .venv/bin/python benchmarks/bench_blur_qc.py [--per-group 60]

The report flagged blur only relative to the run's median, so a run where most fields were blurred
flagged none of them. :data:`deepscope.report.qc.BLUR_SLOPE` is an absolute threshold on
``ImageQuality_PowerLogLogSlope`` (the first channel), chosen here on development images:

- BBBC005, sampled per blur level (F1 in focus, F23, F48) and stain (w1 nuclei, w2 cells), fields of the
  training part only (the split of ``recipes/zoo.py``: by field, seed 0);
- DSB2018 fluorescence, H&E and brightfield images (all in focus), whose slopes must stay above it.

It prints the slope percentiles per group and, for the threshold in force, the share of images of each
group flagged. Result: ``benchmarks/results/blur_qc.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from _util import SHARED, report, start


def slope(path: Path) -> float:
    from deepscope.io import read_image
    from deepscope.measure.quality import power_log_log_slope

    im = read_image(path).data
    if im.ndim == 3:  # colour (H&E): the mean of the channels, as the grey a person sees
        im = im[..., :3].astype(np.float32).mean(axis=2)
    return float(power_log_log_slope(im))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-group", type=int, default=60, help="images per BBBC005 blur level and stain")
    args = ap.parse_args()
    if not start("bbbc005", "dsb2018", "dsb2018_other"):
        return 0
    from deepscope.report.qc import BLUR_SLOPE

    lab = pd.read_csv(SHARED / "bbbc005" / "labels.csv")
    fields = sorted(lab["field"].unique())
    rng = np.random.default_rng(0)
    train_fields = set(rng.permutation(fields)[: int(0.8 * len(fields))])  # development fields only
    lab = lab[lab["field"].isin(train_fields)]
    groups: dict[str, list[float]] = {}
    for (blur, stain), g in lab.groupby(["blur", "stain"]):
        pick = g.sample(min(args.per_group, len(g)), random_state=0)
        groups[f"bbbc005 F{blur} {stain}"] = [slope(SHARED / "bbbc005" / "images" / f) for f in pick["filename"]]
    groups["dsb2018 fluorescence"] = [slope(p) for p in sorted((SHARED / "dsb2018" / "images").glob("*.png"))[:150]]
    other = pd.read_csv(SHARED / "dsb2018_other" / "counts.csv")
    for kind, g in other.groupby("kind"):
        groups[f"dsb2018 {kind}"] = [slope(SHARED / "dsb2018_other" / "images" / f) for f in g["image"]]
    result: dict[str, object] = {"threshold": BLUR_SLOPE}
    for name, vals in groups.items():
        v = np.asarray(vals)
        p1, p5, p50, p95 = np.percentile(v, [1, 5, 50, 95])
        result[f"{name}: n"] = len(v)
        result[f"{name}: slope p1/p5/p50/p95"] = f"{p1:.2f} / {p5:.2f} / {p50:.2f} / {p95:.2f}"
        result[f"{name}: flagged"] = float(np.mean(v <= BLUR_SLOPE))
    report("blur_qc", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
