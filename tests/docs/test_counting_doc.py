"""Every command and Python block of docs/counting.md runs as written (see _harness.py for the stand-in data),
and gives what the page says: the columns of counts.csv, counts of the BBBC005-like sample fields within a
cell or two of their true count and inside their 95% interval, the summary line, the evaluation's
metrics per stratum and the files of a run folder."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

pytest.importorskip("torch")

from ._harness import run_document, true_count  # noqa: E402

#: The columns of counts.csv, in the page's table's order.
COLUMNS = ["path", "count", "count_low", "count_high", "count_estimate", "std", "method", "in_domain", "error"]


def test_counting_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/counting.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace

    # one stain of a plate: the nuclear-stain fields are counted by `density+objects` (the table: MAE 0.96
    # cells, 100% of true counts inside the 95% interval); count_low is never below 0
    w1 = pd.read_csv(project / "w1_counts.csv")
    assert list(w1.columns) == COLUMNS
    assert sorted(w1["path"]) == list(w1["path"]) and len(w1) == 3  # one row per input file, in input order
    for _, row in w1.iterrows():
        n = true_count(row["path"])
        assert row["method"] == "density+objects" and row["in_domain"], row["path"]
        assert abs(row["count"] - n) <= 2 and row["count_low"] <= n <= row["count_high"], (row["path"], row["count"])
        assert row["count_low"] >= 0 and row["error"] != row["error"]  # empty error cell

    # the Python block: count_paths' summary ("1191 of 1191 image(s) done, 0 failed") and table
    n_plate = len(list((project / "plate1").iterdir()))
    assert re.search(rf"\b{n_plate} of {n_plate} image\(s\) done, 0 failed", run.python_output())
    table = ns["result"].table  # type: ignore[attr-defined]
    assert len(table) == n_plate and (table["count_low"].dropna() >= 0).all()

    # evaluate count: MAE, RMSE, bias, exact, coverage and mean width, overall and per blur and stain,
    # on the held-out fields only
    scores = json.loads((project / "scores.json").read_text())
    per_image = pd.read_csv(project / "per_image.csv")
    assert scores["n_images"] == len(per_image) > 0 and scores["n_failed"] == 0
    assert {"mae", "rmse", "bias", "exact", "coverage", "mean_width"} <= set(scores["overall"])
    assert {s["stratum"] for s in scores["strata"]} == {"blur", "stain"}
    assert scores["overall"]["mae"] == pytest.approx((per_image["count"] - per_image["true"]).abs().mean())
    # `--subset test` scores the held-out fields of the split train makes with the same --split/--seed, which is
    # the Python block's GroupSplitter(by="field") split: no scored field was trained on
    scored = {re.search(r"_C(\d+)_F\d+_s(\d+)", p).groups() for p in per_image["path"]}
    held_out = {tuple(str(int(x)) for x in re.findall(r"\d+", f)) for f in ns["test"].metadata["field"]}  # type: ignore[attr-defined]
    trained = {tuple(str(int(x)) for x in re.findall(r"\d+", f)) for f in ns["train"].metadata["field"]}  # type: ignore[attr-defined]
    assert {(c, str(int(s))) for c, s in scored} == held_out and not held_out & trained

    # the run folder holds what the page lists
    for f in ("model.safetensors", "model.json", "checkpoint.pt", "best.safetensors", "metrics.jsonl", "train.yaml",
              "run.yaml", "split.csv"):
        assert (project / "runs" / "count" / f).is_file(), f
    # the book-shaped Python API: one float count per test image
    assert len(ns["pred"]) == len(ns["test"]) > 0  # type: ignore[arg-type]
