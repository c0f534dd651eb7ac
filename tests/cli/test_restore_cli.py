"""`deepscope restore` and `deepscope evaluate restore` with tiny untrained models saved in tmp_path."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field, image_name  # noqa: E402
from deepscope.evaluate import psnr, ssim  # noqa: E402
from deepscope.io import read_image, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, RestoreModel, SegmentModel  # noqa: E402
from deepscope.provenance import lineage  # noqa: E402

runner = CliRunner()
SIZE = (128, 160)


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("m")
    RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2)).save(d / "deblur")
    RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2), upscale=2).save(d / "sr")
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d / "count")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "seg")
    return d


@pytest.fixture(scope="module")
def bbbc(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bbbc")
    for count, site in ((2, 1), (3, 2)):
        f = generate_field(count, size=SIZE, blurs=(1, 48), stains=(1, 2), seed=count)
        for (stain, blur), img in f.images.items():
            write_tiff(folder / image_name(count, blur, site, stain, row={1: 0, 48: 15}[blur], column=count), img)
    return folder


def test_restore_keeps_dtype_writes_lineage_and_float32_on_request(tmp_path, bbbc, models):
    out = tmp_path / "out"
    r = runner.invoke(app, ["restore", str(bbbc), "--include", "*_F48_*", "--model", str(models / "deblur"),
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    written = sorted(out.glob("*.restored.tif"))
    assert len(written) == 4 and all("_F48_" in p.name for p in written)
    img = read_image(written[0]).data
    assert img.dtype == np.uint8 and img.shape == SIZE
    rec = lineage.read(written[0])
    assert rec.command == "restore" and rec.params["dtype"] == "input"
    assert Path(rec.inputs[0].path).name == written[0].name.replace(".restored.tif", ".TIF")
    src = bbbc / Path(rec.inputs[0].path).name
    r = runner.invoke(app, ["restore", str(src), "--model", str(models / "deblur"), "-o", str(tmp_path / "f"),
                            "--float32"])
    assert r.exit_code == 0, r.output
    assert read_image(next((tmp_path / "f").glob("*.tif"))).data.dtype == np.float32


def test_restore_16_bit_odd_size_and_super_resolution(tmp_path, models):
    img = generate_field(3, size=SIZE, seed=0).images[(1, 1)]
    f = write_tiff(tmp_path / "u16.tif", img[:99, :131].astype(np.uint16) * 257)
    r = runner.invoke(app, ["restore", str(f), "--model", str(models / "deblur"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    out = read_image(tmp_path / "o" / "u16.restored.tif").data
    assert out.dtype == np.uint16 and out.shape == (99, 131)
    r = runner.invoke(app, ["restore", str(f), "--model", str(models / "sr"), "-o", str(tmp_path / "sr")])
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "sr" / "u16.restored.tif").data.shape == (198, 262)


def test_restore_refuses_a_non_restoration_model_and_needs_model_and_output(tmp_path, bbbc, models):
    r = runner.invoke(app, ["restore", str(bbbc), "--model", str(models / "count"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "is a count model; this command needs a restore model" in _out(r)
    r = runner.invoke(app, ["restore", str(bbbc), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--model" in _out(r)


def test_evaluate_restore_psnr_ssim_and_downstream(tmp_path, bbbc, models):
    js, csv = tmp_path / "r.json", tmp_path / "r.csv"
    r = runner.invoke(app, ["evaluate", "restore", "--data", str(bbbc), "--pattern", "bbbc005", "--input", "blur=48",
                            "--target", "blur=1", "--model", str(models / "deblur"), "--count-model",
                            str(models / "count"), "--segment-model", str(models / "seg"), "--json", str(js),
                            "--csv", str(csv), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "PSNR (dB)" in r.output and "count MAE vs true count" in _out(r) and "object-count MAE" in _out(r)
    assert "invented objects" in _out(r)
    doc = json.loads(js.read_text())
    s, pairs = doc["summary"], doc["pairs"]
    assert s["n_pairs"] == 4 and s["n_failed"] == 0
    first = pairs[0]
    assert "_F48_" in first["input"] and "_F1_" in first["target"]
    a, b = Path(first["input"]).name.split("_"), Path(first["target"]).name.split("_")
    assert (a[2], a[4], a[5]) == (b[2], b[4], b[5])  # same count, site and stain: the same field
    raw = read_image(first["input"]).data
    tgt = read_image(first["target"]).data
    assert first["psnr_raw"] == pytest.approx(psnr(tgt, raw, data_range=255))
    assert first["ssim_raw"] == pytest.approx(ssim(tgt, raw, data_range=255))
    table = pd.read_csv(csv)
    assert s["count_mae_restored"] == pytest.approx((table["count_restored"] - table["true"]).abs().mean())


def test_evaluate_restore_super_resolution_against_bicubic(tmp_path, bbbc, models):
    js = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", "restore", "--data", str(bbbc), "--pattern", "bbbc005", "--target", "blur=1",
                            "--model", str(models / "sr"), "--count-model", "none", "--limit", "2", "--json", str(js)])
    assert r.exit_code == 0, r.output
    assert "bicubic" in r.output
    s = json.loads(js.read_text())["summary"]
    assert s["upscale"] == 2 and s["n_pairs"] == 2 and "count_mae_raw" not in s


def test_evaluate_restore_rule_errors(tmp_path, bbbc, models):
    base = ["evaluate", "restore", "--data", str(bbbc), "--pattern", "bbbc005", "--model", str(models / "deblur"),
            "--count-model", "none"]
    r = runner.invoke(app, base + ["--input", "blur=48", "--target", "blur=23"])
    assert r.exit_code == 2 and "target rule 'blur=23' matches none of the 8 images" in _out(r)
    r = runner.invoke(app, base + ["--target", "blur=1"])
    assert r.exit_code == 2 and "--input is required" in _out(r)
    r = runner.invoke(app, base + ["--input", "48", "--target", "blur=1"])
    assert r.exit_code == 2 and "--input: '48' is not a rule" in _out(r)


def test_a_model_applied_to_another_modality_warns(tmp_path, models):
    model = RestoreModel.load(models / "deblur")
    model.card = {**model.card, "input_stats": {"mean": 0.1, "mean_min": 0.05, "mean_max": 0.15, "std": 0.2,
                                                "std_min": 0.15, "std_max": 0.25, "frac_high": 0.05,
                                                "frac_high_min": 0.0, "frac_high_max": 0.1}}
    model.save(tmp_path / "picky")
    # a bright-field-like image: bright everywhere, unlike dark fluorescence training images
    rng = np.random.default_rng(0)
    f = write_tiff(tmp_path / "bright.tif", (200 + rng.integers(0, 40, SIZE)).astype(np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = runner.invoke(app, ["restore", str(f), "--model", str(tmp_path / "picky"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "warning:" in _out(r) and "looks unlike the training data" in _out(r)
