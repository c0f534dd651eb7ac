from __future__ import annotations

import json

import numpy as np
import tifffile
from typer.testing import CliRunner

from deepscope.cli.app import app

runner = CliRunner()


def test_version_and_help():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("deepscope ")
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0 and "inspect" in r.output


def test_inspect_json(tmp_path):
    tifffile.imwrite(tmp_path / "SIMCEPImages_A01_C1_F1_s01_w1.TIF", np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    (tmp_path / "broken.tif").write_text("nope")
    r = runner.invoke(app, ["inspect", str(tmp_path), "--pattern", "bbbc005", "--json"])
    assert r.exit_code == 0, r.output
    recs = {rec["path"].split("/")[-1]: rec for rec in json.loads(r.output)}
    good = recs["SIMCEPImages_A01_C1_F1_s01_w1.TIF"]
    assert good["shape"] == [3, 8, 8] and good["dtype"] == "uint16" and good["metadata"]["count"] == 1
    assert "error" in recs["broken.tif"]


def test_inspect_table_and_missing(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    r = runner.invoke(app, ["inspect", str(tmp_path / "a.tif")])
    assert r.exit_code == 0 and "a.tif" in r.output
    r = runner.invoke(app, ["inspect", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "No such file" in r.output
