"""Every command and Python block of docs/segmentation.md runs as written (see _harness.py for the stand-in
data), and gives what the page says: the files written per input and their form (int32 labels of the
input's size), the columns of counts.csv with the diameter used and its source, object counts equal to
the fields' true counts, and the evaluation's F1 on the stand-in DSB2018 images."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

pytest.importorskip("torch")

from ._harness import run_document, true_count  # noqa: E402


def test_segmentation_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/segmentation.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace
    inputs = sorted((project / "nuclei").iterdir())

    # "counts.csv lists path,count,error per input ... `nuclei` adds diameter, diameter_source, in_domain and
    # domain_score"; `--diameter 30` is recorded as given, the estimate as estimated
    for out, source in (("out30", "given"), ("fiji", "estimated")):
        t = pd.read_csv(project / out / "counts.csv")
        assert {"path", "count", "error", "diameter", "diameter_source", "in_domain", "domain_score"} <= set(t.columns)
        assert list(t["diameter_source"]) == [source] * len(inputs) and t["in_domain"].all()
        # the sample fields' objects are found: the count is the true count (the page: F1@0.5 0.90)
        assert all(abs(c - true_count(p)) <= 2 for p, c in zip(t["path"], t["count"])), t
    assert (pd.read_csv(project / "out30" / "counts.csv")["diameter"] == 30).all()

    # IMG.labels.tif: int32, the input's height and width; IMG.overlay.png; with --rois IMG.rois.zip
    for src in inputs:
        labels = tifffile.imread(project / "fiji" / f"{src.stem}.labels.tif")
        assert labels.dtype == np.int32 and labels.shape == tifffile.imread(src).shape[:2]
        assert (project / "fiji" / f"{src.stem}.rois.zip").is_file()
        assert (project / "fiji" / f"{src.stem}.overlay.png").is_file()
    assert not list((project / "out30").glob("*.rois.zip"))  # only with --rois
    cells = pd.read_csv(project / "cells" / "counts.csv")
    assert list(cells.columns[:3]) == ["path", "count", "error"] and len(cells) == 24 and cells["path"].str.endswith("_w2.TIF").all()

    # the first Python block: segment_paths' table; labels of the image's size, the diameter estimated, the
    # image in domain
    first = run.after_block[0]
    assert len(first["res"].table) == len(list((project / "images").iterdir()))  # type: ignore[attr-defined]
    assert all(abs(c - true_count(p)) <= 2 for p, c in zip(first["res"].table["path"], first["res"].table["count"]))  # type: ignore[attr-defined]
    image = first["image"].data  # type: ignore[attr-defined]
    assert first["labels"].dtype == np.int32 and first["labels"].shape == image.shape[:2]  # type: ignore[attr-defined]
    assert first["info"].diameter_source == "estimated" and first["domain"].in_domain is True  # type: ignore[attr-defined]

    # evaluate segment: precision, recall, F1, AP and PQ from IoU 0.5 to 0.95 and the DSB score
    scores = json.loads((project / "scores.json").read_text())
    assert scores["thresholds"] == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    summary = scores["summary"]
    assert summary["n_images"] == 2 and summary["n_failed"] == 0
    assert summary["f1@0.5"] >= 0.9 and 0 < summary["dsb_score"] <= summary["f1@0.5"]

    # "Trading precision for recall": the thresholds used are in the lineage; the lenient run finds at least as
    # many objects as the strict one
    from deepscope.provenance import lineage

    rec = lineage.read(project / "strict" / f"{inputs[0].stem}.labels.tif")
    assert (rec.params["flow_threshold"], rec.params["min_size"], rec.params["prob_threshold"]) == (0.4, 60, 0.45)
    strict, lenient = (pd.read_csv(project / d / "counts.csv")["count"] for d in ("strict", "lenient"))
    assert (lenient >= strict).all() and lenient.sum() > 0

    # training: run folders, and one int32 label image per test image from the Python API
    for run_dir in ("runs/seg", "runs/cells"):
        assert (project / run_dir / "model.safetensors").is_file(), run_dir
    labels = ns["labels"]  # "one int32 label image per test image"
    assert len(labels) == len(ns["test"]) > 0 and all(lab.dtype == np.int32 for lab in labels)  # type: ignore[arg-type,attr-defined]
