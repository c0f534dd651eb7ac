from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.io import write_labels, write_png

runner = CliRunner()


def _out(result):
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _labels(seed, shape=(48, 64), n=6):
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    for k in range(n):
        r, c = 6 + 12 * (k // 4), 6 + 14 * (k % 4)
        h, w = rng.integers(4, 8, 2)
        lab[r:r + h, c:c + w] = 10 * (k + 1)  # non-consecutive ids
    return lab


def _setup(tmp_path, names=("a", "b", "c")):
    pred, truth = tmp_path / "out", tmp_path / "truth"
    for i, name in enumerate(names):
        t = _labels(i)
        write_png(truth / f"{name}.png", t.astype(np.uint16))  # truth as uint16 PNG, like DSB2018
        p = t if i == 0 else np.roll(t, i, axis=1)  # a: perfect, b: 1 px shift, c: 2 px shift
        write_labels(pred / f"{name}.labels.tif", p)
    return pred, truth


def test_segment_reports_table_json_and_csv(tmp_path):
    pred, truth = _setup(tmp_path)
    js, csv = tmp_path / "r.json", tmp_path / "r.csv"
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(pred), "--truth", str(truth),
                            "--json", str(js), "--csv", str(csv)])
    assert r.exit_code == 0, r.output
    assert "DSB score" in r.output and "F1@0.75" in r.output
    doc = json.loads(js.read_text())
    images = {rec["image"]: rec for rec in doc["images"]}
    assert set(images) == {"a", "b", "c"}
    assert images["a"]["mean_ap"] == 1.0 and images["a"]["f1@0.9"] == 1.0
    assert images["c"]["mean_ap"] < images["b"]["mean_ap"] < 1.0
    assert doc["summary"]["n_images"] == 3 and doc["summary"]["n_failed"] == 0
    assert doc["summary"]["dsb_score"] == np.mean([rec["mean_ap"] for rec in doc["images"]])
    assert doc["thresholds"][0] == 0.5 and len(doc["per_threshold"]) == 10
    table = pd.read_csv(csv)
    assert table["image"].tolist() == ["a", "b", "c"] and (table["count_error"] == 0).all()


def test_unpaired_files_are_named(tmp_path):
    pred, truth = _setup(tmp_path)
    write_labels(pred / "orphan.labels.tif", _labels(9))
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(pred), "--truth", str(truth)])
    assert r.exit_code == 2 and "orphan.labels.tif" in _out(r) and "no truth image" in _out(r)
    (pred / "orphan.labels.tif").unlink()
    (pred / "c.labels.tif").unlink()
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(pred), "--truth", str(truth)])
    assert r.exit_code == 2 and "c.png" in _out(r) and "--subset" in _out(r)
    js = tmp_path / "sub.json"
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(pred), "--truth", str(truth), "--subset",
                            "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert [rec["image"] for rec in json.loads(js.read_text())["images"]] == ["a", "b"]


def test_shape_mismatch_is_an_error_row_and_others_are_scored(tmp_path):
    pred, truth = _setup(tmp_path)
    write_labels(pred / "b.labels.tif", np.zeros((40, 40), np.int32))
    js = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(pred), "--truth", str(truth), "--json", str(js)])
    assert r.exit_code == 1
    assert "has shape (40, 40)" in _out(r) and "(48, 64)" in _out(r)
    doc = json.loads(js.read_text())
    assert doc["summary"]["n_failed"] == 1 and [e["image"] for e in doc["errors"]] == ["b"]
    assert "b.labels.tif" in doc["errors"][0]["error"] and "b.png" in doc["errors"][0]["error"]
    assert [rec["image"] for rec in doc["images"]] == ["a", "c"]


def test_missing_folders_and_empty_predictions(tmp_path):
    pred, truth = _setup(tmp_path)
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(tmp_path / "nope"), "--truth", str(truth)])
    assert r.exit_code == 2 and "No such prediction folder" in _out(r)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(empty), "--truth", str(truth)])
    assert r.exit_code == 2 and "no '*.labels.tif' files" in _out(r)
    r = runner.invoke(app, ["evaluate", "--help"])
    assert r.exit_code == 0 and "segment" in r.output


def test_real_dsb_images_with_classical_predictions(tmp_path, dsb_dir):
    from deepscope.io import read_image
    from deepscope.predict.classical import otsu_watershed

    pred = tmp_path / "out"
    files = sorted((dsb_dir / "images").glob("*.png"))[:3]
    for f in files:
        write_labels(pred / f"{f.stem}.labels.tif", otsu_watershed(read_image(f).data))
    js = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", "segment", "--pred", str(pred), "--truth", str(dsb_dir / "labels"),
                            "--subset", "--json", str(js)])
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    assert doc["summary"]["n_images"] == 3 and doc["summary"]["f1@0.5"] > 0.6
