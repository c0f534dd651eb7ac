from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data import ImageLoader, PairRule
from deepscope.data.synth import LABEL_COLUMNS, MASK_TEMPLATE
from deepscope.io import read_image

runner = CliRunner()


def test_synth_writes_bbbc005_named_files(tmp_path):
    out = tmp_path / "set"
    r = runner.invoke(app, ["synth", "--out", str(out), "--counts", "1,5", "--blur", "1,23", "--sites", "2",
                            "--stains", "1,2", "--seed", "0", "--size", "160x200"])
    assert r.exit_code == 0, r.output
    assert "wrote 16 images, 8 masks" in r.output
    table = pd.read_csv(out / "labels.csv")
    assert tuple(table.columns) == LABEL_COLUMNS and len(table) == 16
    assert (out / "SIMCEPImages_H02_C5_F23_s02_w2.TIF").exists()
    assert (out / "masks" / "SIMCEPImages_A02_C5_F1_s02_w2.TIF").exists()
    img = read_image(out / "SIMCEPImages_A01_C1_F1_s01_w1.TIF").data
    assert img.dtype == np.uint8 and img.shape == (160, 200)


def test_synth_preset_loads_with_counts_and_masks(tmp_path):
    """The issue's "done when": the BBBC005 preset (here with fewer counts, sites and a small size)."""
    out = tmp_path / "bbbc"
    r = runner.invoke(app, ["synth", "--out", str(out), "--preset", "bbbc005", "--counts", "1,10", "--blur", "1,48",
                            "--sites", "1", "--size", "180x240", "--bit-depth", "16", "--workers", "1"])
    assert r.exit_code == 0, r.output
    ds = ImageLoader(pattern="bbbc005", labels="count",
                     masks=PairRule(out / "masks", template=MASK_TEMPLATE)).load(out)
    assert len(ds) == 8  # 2 counts x 2 blurs x 1 site x 2 stains (the preset's)
    assert set(ds.metadata.well) == {"A01", "A03", "P01", "P03"}  # C10 is BBBC005's column 03, F48 row P
    for rec in ds.metadata.itertuples():
        assert read_image(rec.path).data.dtype == np.uint16
        assert len(np.unique(read_image(rec.mask_path).data)) - 1 == rec.count


def test_synth_dry_run_shows_the_full_preset(tmp_path):
    r = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--preset", "bbbc005", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "19200 images (24 counts x 16 blur levels x 25 sites x 2 stains), 1200 masks" in r.output
    assert "SIMCEPImages_P24_C100_F48_s25_w2.TIF" in r.output
    assert not (tmp_path / "x").exists()


def test_synth_refuses_a_folder_of_another_run_unless_overwrite(tmp_path):
    args = ["synth", "--out", str(tmp_path), "--counts", "2", "--size", "160x200", "--stains", "1"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0  # same arguments: nothing to do
    r = runner.invoke(app, args + ["--seed", "1"])
    assert r.exit_code == 2 and "already holds files of a run with other arguments" in " ".join(r.output.split())
    r = runner.invoke(app, args + ["--seed", "1", "--overwrite"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("extra, message", [
    (["--counts", "-3"], "cell count must be >= 0"),
    (["--counts", "2", "--blur", "0"], "blur index must be >= 1"),
    (["--counts", "2", "--stains", "3"], "unknown stain 3"),
    (["--counts", "2", "--size", "big"], "is not ROWSxCOLS"),
    (["--counts", "500", "--size", "160x200"], "too small to hold 500 cells"),
    (["--counts", "2", "--bit-depth", "12"], "bit_depth must be one of"),
    (["--counts", "2", "--preset", "bbbc006"], "unknown preset 'bbbc006'"),
    ([], "give --counts"),
])
def test_synth_bad_input(tmp_path, extra, message):
    r = runner.invoke(app, ["synth", "--out", str(tmp_path / "o")] + extra)
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())
