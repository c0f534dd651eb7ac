"""`deepscope segment` with tiny untrained models saved in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.io import read_image, write_png, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, SegmentModel  # noqa: E402
from deepscope.provenance import lineage  # noqa: E402

runner = CliRunner()
SIZE = (128, 160)


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("m")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "seg")
    bg = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    with torch.no_grad():
        bg.net.head.bias[0] = -30.0  # finds no foreground anywhere
    bg.save(d / "background")
    two = SegmentModel(ArchConfig("unet", 1, 4, base=4, depth=2), n_classes=2, class_names=["rod", "coccus"])
    with torch.no_grad():
        two.net.head.bias[0] = 30.0  # everything is foreground: one object per image, with a class
    two.save(d / "two")
    return d


@pytest.fixture()
def images(tmp_path) -> Path:
    f = generate_field(4, size=SIZE, stains=(1, 2), seed=5)
    folder = tmp_path / "in"
    write_tiff(folder / "w1.tif", f.images[(1, 1)])
    write_tiff(folder / "odd.tif", f.images[(2, 1)][:101, :77])
    write_png(folder / "rgb.png", np.dstack([f.images[(1, 1)], f.images[(2, 1)], f.images[(1, 1)]]))
    (folder / "empty.tif").write_bytes(b"")
    return folder


def test_segment_writes_labels_overlays_counts(tmp_path, images, models):
    out = tmp_path / "out"
    r = runner.invoke(app, ["segment", str(images), "--output", str(out), "--model", str(models / "seg"),
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "2 of 4 image(s) done, 2 failed" in _out(r)
    assert "rgb.png has 3 distinct channels" in _out(r) and "--channel N" in _out(r)
    assert "empty.tif" in _out(r)
    for stem, shape in (("w1", SIZE), ("odd", (101, 77))):
        lab = read_image(out / f"{stem}.labels.tif").data
        assert lab.dtype == np.int32 and lab.shape == shape and lab.min() >= 0
        ov = read_image(out / f"{stem}.overlay.png").data
        assert ov.shape == shape + (3,) and ov.dtype == np.uint8
    counts = pd.read_csv(out / "counts.csv", keep_default_na=False)
    assert list(counts.columns) == ["path", "count", "error"]
    by = {Path(p).name: row for p, row in zip(counts["path"], counts.to_dict("records"))}
    lab = read_image(out / "w1.labels.tif").data
    assert int(by["w1.tif"]["count"]) == len(np.setdiff1d(np.unique(lab), [0]))
    assert by["rgb.png"]["count"] == "" and "--channel" in by["rgb.png"]["error"]
    rec = lineage.read(out / "w1.labels.tif")
    assert rec.command == "segment" and Path(rec.inputs[0].path).name == "w1.tif"


def test_segment_channel_tile_tta_and_no_overlay(tmp_path, images, models):
    out = tmp_path / "out"
    r = runner.invoke(app, ["segment", str(images / "rgb.png"), "-o", str(out), "--model", str(models / "seg"),
                            "--channel", "1", "--tile", "64", "--tta", "d8", "--no-overlay"])
    assert r.exit_code == 0, r.output
    assert read_image(out / "rgb.labels.tif").data.shape == SIZE
    assert not (out / "rgb.overlay.png").exists()
    rec = lineage.read(out / "rgb.labels.tif")
    assert rec.params["tile"] == 64 and rec.params["overlap"] == 16 and rec.params["tta"] == "d8"
    r = runner.invoke(app, ["segment", str(images / "rgb.png"), "-o", str(out), "--model", str(models / "seg"),
                            "--tta", "rot"])
    assert r.exit_code == 2 and "tta='rot' is not one of" in _out(r)


def test_all_black_image_has_no_objects(tmp_path, models):
    f = write_tiff(tmp_path / "black.tif", np.zeros(SIZE, np.uint16))
    r = runner.invoke(app, ["segment", str(f), "-o", str(tmp_path / "o"), "--model", str(models / "background")])
    assert r.exit_code == 0, r.output
    assert "black.tif: 0 object(s)" in _out(r)
    assert read_image(tmp_path / "o" / "black.labels.tif").data.max() == 0


def test_images_smaller_than_the_network_stride(tmp_path, models):
    f = write_tiff(tmp_path / "tiny.tif", np.arange(15, dtype=np.uint8).reshape(3, 5))
    r = runner.invoke(app, ["segment", str(f), "-o", str(tmp_path / "o"), "--model", str(models / "seg")])
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "o" / "tiny.labels.tif").data.shape == (3, 5)


def test_multi_class_counts_per_class(tmp_path, images, models):
    out = tmp_path / "o"
    r = runner.invoke(app, ["segment", str(images / "w1.tif"), "-o", str(out), "--model", str(models / "two")])
    assert r.exit_code == 0, r.output
    counts = pd.read_csv(out / "counts.csv", keep_default_na=False)
    assert list(counts.columns) == ["path", "count", "count_rod", "count_coccus", "error"]
    row = counts.iloc[0]
    assert int(row["count"]) >= 1 and int(row["count_rod"]) + int(row["count_coccus"]) == int(row["count"])


def test_segment_needs_a_segmentation_model(tmp_path, images, models):
    from deepscope.models import CountModel

    CountModel().save(tmp_path / "counter")
    r = runner.invoke(app, ["segment", str(images), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "counter")])
    assert r.exit_code == 2 and "is a count model; this command needs a segment model" in _out(r)
    r = runner.invoke(app, ["segment", str(tmp_path / "nowhere.tif"), "-o", str(tmp_path / "o"),
                            "--model", str(models / "seg" / "model.json")])
    assert r.exit_code == 2 and "No such file or folder" in _out(r) and "nowhere.tif" in _out(r)  # before any work
