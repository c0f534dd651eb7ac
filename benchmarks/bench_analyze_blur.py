"""``deepscope analyze`` on blurred fields (issue 31): Count_Nuclei per focus level of BBBC005, before and after.

    nice -n 10 .venv/bin/python benchmarks/bench_analyze_blur.py [--fields 10]

On blurred fields the nuclei that ``analyze`` segments merge and fade, so its per-image ``Count_Nuclei`` was
9-12 cells low on BBBC005's most blurred fields (F48) while ``deepscope count`` was within about one. Now the
count step of ``analyze`` takes the counter's estimate (``count-bbbc005``) on images the image QC finds blurred
(power-log-log slope <= :data:`deepscope.report.qc.BLUR_SLOPE`) and in the counter's domain, and the objects'
count elsewhere (:func:`deepscope.pipeline.steps.route_count`).

This runs the pipeline of ``deepscope analyze`` (:func:`deepscope.pipeline.default_pipeline` +
:func:`deepscope.pipeline.run_pipeline`, the code path of the command, in this process) on the nuclear-stain
(w1) images of BBBC005's held-out test fields (the project's split by field of view: ``GroupSplitter(by="field")``
80/10/10, seed 0, as ``recipes/pack_data.py`` ``bbbc005_split``), ``--fields`` fields per focus level (F1, F23,
F48; default all). "before" is ``Count_Nuclei_Objects`` of the same run: the number of segmented nuclei, which
was ``Count_Nuclei`` before (the segmentation is unchanged). The rule was chosen on training fields only.
Result: ``benchmarks/results/analyze_blur.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

from _util import SHARED, report, start


def test_images(fields_per_level: int | None) -> pd.DataFrame:
    """The w1 images of the test fields: path, true count, blur level (``fields_per_level`` fields per level)."""
    from deepscope.data import GroupSplitter, ImageLoader

    ds = ImageLoader(pattern="bbbc005", labels="count").load(SHARED / "bbbc005" / "images")
    _, _, te = GroupSplitter(by="field").split(ds, 0.8, 0.1, 0.1, seed=0)  # recipes/pack_data.py bbbc005_split
    meta = ds.metadata.iloc[np.asarray(te)].reset_index(drop=True)
    meta = meta[meta["stain"].astype(str).str.lower().isin(["w1", "1"])]
    picked = []
    for _, g in meta.groupby("blur"):
        fields = sorted(g["field"].unique())
        if fields_per_level is not None:
            fields = fields[:fields_per_level]
        picked.append(g[g["field"].isin(fields)])
    return pd.concat(picked, ignore_index=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=None, help="test fields per focus level (default: all)")
    args = ap.parse_args()
    if not start("bbbc005", threads=1):
        return 0
    from deepscope.pipeline import default_pipeline, run_pipeline

    imgs = test_images(args.fields)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pipe = default_pipeline([str(p) for p in imgs["path"]], pattern="bbbc005", overlays=False, labels=False)
        run = run_pipeline(pipe, f"{tmp}/run", jobs=0)
        seconds = time.perf_counter() - t0
        table = pd.read_parquet(run.tables["images.parquet"])
    table = table[table["status"] == "ok"]
    true = pd.to_numeric(table["Metadata_count"])
    result: dict[str, object] = {
        "data": "BBBC005 nuclear stain (w1), held-out test fields (split by field, 80/10/10, seed 0)",
        "fields_per_level": args.fields or "all", "images": int(len(table)), "failed": int(run.n_failed),
        "command": "deepscope analyze (default_pipeline + run_pipeline, jobs=0)", "seconds": round(seconds, 1)}
    for blur, g in table.groupby(pd.to_numeric(table["Metadata_blur"])):
        t = true[g.index]
        key = f"F{int(blur)}"
        result[f"{key}_images"] = int(len(g))
        result[f"{key}_mae_before_objects"] = float(np.mean(np.abs(g["Count_Nuclei_Objects"] - t)))
        result[f"{key}_mae_after"] = float(np.mean(np.abs(g["Count_Nuclei"] - t)))
        result[f"{key}_bias_after"] = float(np.mean(g["Count_Nuclei"] - t))
        result[f"{key}_share_counter"] = float(np.mean(g["Count_Nuclei_Method"] == "counter"))
    report("analyze_blur", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
