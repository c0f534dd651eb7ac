"""Issue 14 at the command line: one error row per bad file, limits with clear errors, text shown as text."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.io import write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, SegmentModel  # noqa: E402

from ..io.test_limits import big_tiff  # noqa: E402

runner = CliRunner()
SIZE = (96, 128)


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("m")
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d / "count")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "seg")
    return d


@pytest.fixture()
def bad(tmp_path) -> Path:
    """Two good images and one of each kind of bad file."""
    folder = tmp_path / "in"
    for i in range(2):
        write_tiff(folder / f"good{i}.tif", generate_field(3, size=SIZE, stains=1, seed=i).image(1))
    with pytest.warns(UserWarning):
        write_tiff(folder / "zero.tif", np.zeros((0, 0), np.uint8))
    nan = generate_field(3, size=SIZE, stains=1, seed=7).image(1).astype(np.float32)
    nan[5, 6] = np.nan
    write_tiff(folder / "nan.tif", nan)
    write_tiff(folder / "complex.tif", np.ones(SIZE, np.complex64))
    (folder / "loop1.tif").symlink_to(folder / "loop2.tif")
    (folder / "loop2.tif").symlink_to(folder / "loop1.tif")
    write_tiff(folder / os.fsdecode(b"caf\xe9.tif"), generate_field(2, size=SIZE, stains=1, seed=9).image(1))
    (folder / "a[1].tif").write_bytes(b"II*\x00 not a tiff")
    return folder


@pytest.mark.parametrize("command", ["count", "segment"])
def test_each_bad_file_is_one_error_row_and_the_batch_goes_on(command, bad, models, tmp_path):
    out = tmp_path / ("counts.csv" if command == "count" else "seg")
    r = runner.invoke(app, [command, str(bad), "-o", str(out), "-m", str(models / command[:5].replace("segme", "seg")),
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    text = _out(r)
    assert "3 of 9 image(s) done, 6 failed" in text
    for why in ("zero.tif: holds no pixels", "nan.tif: 1 pixel(s) are NaN or infinite (the first at row 5, col 6)",
                "complex.tif: holds complex values", "loop1.tif: is a symbolic link that leads nowhere",
                "a[1].tif: TIFF holds no image data"):  # '[1]' shown, not taken as rich markup
        assert why in text, why
    table = pd.read_csv(out if command == "count" else out / "counts.csv", keep_default_na=False)
    assert len(table) == 9 and (table["error"] != "").sum() == 6
    assert table["path"].str.endswith("caf\\xe9.tif").any()


def test_a_header_declared_huge_image_is_one_clear_error_row(tmp_path, models):
    big = big_tiff(tmp_path / "big.tif")
    r = runner.invoke(app, ["count", str(big), "-o", str(tmp_path / "c.csv"), "-m", str(models / "count"),
                            "--device", "cpu"])
    assert r.exit_code == 1  # every image failed
    assert "the image is 30000 x 30000 = 900,000,000 values, over the limit of 250,000,000" in _out(r)
    r = runner.invoke(app, ["inspect", str(big), "--json"])  # headers only
    assert r.exit_code == 0 and json.loads(r.output)[0]["shape"] == [30000, 30000]


def test_max_pixels_option_and_zip_bomb(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSCOPE_MAX_PIXELS", "")  # so that the value --max-pixels sets is undone afterwards
    img = tmp_path / "small.tif"
    write_tiff(img, np.zeros((40, 50), np.uint8))
    r = runner.invoke(app, ["--max-pixels", "1000", "count", str(img), "-o", str(tmp_path / "c.csv")])
    assert "40 x 50 = 2,000 values, over the limit of 1,000" in _out(r)
    monkeypatch.setenv("DEEPSCOPE_MAX_PIXELS", "")
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.tif", bytes(8 << 20))
    r = runner.invoke(app, ["inspect", str(z)])
    assert r.exit_code == 2 and "a zip bomb? Nothing was extracted" in _out(r)


def test_crafted_card_and_unwritable_output_are_one_line_errors(tmp_path, models):
    card = json.loads((models / "count" / "model.json").read_text())
    card["architecture"].update(base=4096, depth=6)
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    (crafted / "model.json").write_text(json.dumps(card))
    (crafted / "model.safetensors").write_bytes((models / "count" / "model.safetensors").read_bytes())
    img = tmp_path / "a.tif"
    write_tiff(img, np.zeros((40, 50), np.uint8))
    r = runner.invoke(app, ["count", str(img), "-o", str(tmp_path / "c.csv"), "-m", str(crafted), "--device", "cpu"])
    assert r.exit_code == 2 and "parameters, over the limit of 250,000,000" in _out(r)
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["count", str(img), "-o", str(tmp_path), "-m", str(models / "count"), "--device", "cpu"])
    assert r.exit_code == 2 and "is a folder; give a file name" in _out(r)


def test_catalog_keeps_a_name_that_is_not_utf8(bad, tmp_path):
    db = tmp_path / "cat.db"
    r = runner.invoke(app, ["catalog", "add", str(bad), "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "9 file(s): 4 added, 0 unchanged, 5 failed" in _out(r)  # the catalog reads headers: nan.tif is added
    r = runner.invoke(app, ["catalog", "list", "--db", str(db)])
    assert "caf\\xe9.tif" in _out(r)
