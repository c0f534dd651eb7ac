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

    # one stain of a plate: the nuclear-stain fields are counted by `density+objects` (the table: MAE 0.89
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


def test_the_counters_figures_are_the_cards_and_the_benchmarks():
    """The shipped counters' table (MAE 0.89 and 1.33), their worst blur level (1.05 and 1.37), the rounding figures
    (0.875 against 0.957 on the test fields, 0.918 -> 0.892 on the validation fields) and int8 (0.892 float and
    0.875 int8): the cards, benchmarks/results/count_rounding_*.json and int8.json."""
    import json
    from pathlib import Path

    from deepscope.models import model_card

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "counting.md").read_text()
    res = root / "benchmarks" / "results"
    cards = {n: model_card(n).metrics["bbbc005_test_fields"] for n in ("count-bbbc005", "count-bbbc005-fast")}
    main_row = next(ln for ln in text.splitlines() if ln.startswith("| `count-bbbc005` (default)"))
    fast_row = next(ln for ln in text.splitlines() if ln.startswith("| `count-bbbc005-fast`"))
    assert f"| {cards['count-bbbc005']['overall']['mae']:.2f} |" in main_row
    assert f"| {cards['count-bbbc005-fast']['overall']['mae']:.2f} |" in fast_row
    worst = {n: max(v["mae"] for k, v in c.items() if k.startswith("blur=")) for n, c in cards.items()}
    assert (f"{worst['count-bbbc005']:.2f} cells (F48) for `count-bbbc005` and {worst['count-bbbc005-fast']:.2f} for "
            "`count-bbbc005-fast`") in " ".join(text.split())
    test = json.loads((res / "count_rounding_test.json").read_text())["count-bbbc005"]
    valid = json.loads((res / "count_rounding_valid.json").read_text())["count-bbbc005"]
    flat = " ".join(text.split())
    assert (f"MAE of `count-bbbc005` is {test['count']['mae']:.3f} rounded against {test['estimate']['mae']:.3f} for "
            "the estimates") in flat
    assert f"from {valid['estimate']['mae']:.3f} to {valid['count']['mae']:.3f}" in flat
    int8 = json.loads((res / "int8.json").read_text())["count-bbbc005"]["accuracy"]
    assert f"MAE {int8['torch']['mae']:.3f} float and {int8['onnx-int8']['mae']:.3f} int8" in flat


def test_the_interval_figures_are_the_cards():
    """"100% of true counts fell inside the intervals (mean width 9.9 cells ...), and 100% in each third of the count
    range: 1-33 cells (width 6.3), 34-66 (9.3), 67-100 (12.6)": count-bbbc005's card."""
    from pathlib import Path

    from deepscope.models import model_card

    m = model_card("count-bbbc005").metrics["bbbc005_test_fields"]
    flat = " ".join((Path(__file__).resolve().parents[2] / "docs" / "counting.md").read_text().split())
    assert all(m[k]["coverage"] == 1.0 for k in ("overall", "count=1-33", "count=34-66", "count=67-100"))
    assert f"fell inside the intervals (mean width {m['overall']['mean_width']:.1f} cells" in flat
    widths = [f"{m[k]['mean_width']:.1f}" for k in ("count=1-33", "count=34-66", "count=67-100")]
    assert f"1-33 cells (width {widths[0]}), 34-66 ({widths[1]}), 67-100 ({widths[2]})" in flat
