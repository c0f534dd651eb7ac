"""Issue 30, finding 8 (low): what file names and pixel values can do to the terminal, to spreadsheets, to the
models, and what a full disk leaves behind."""

from __future__ import annotations

import errno
import io
import re
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli._common import SafeConsole, setup_logging, visible  # noqa: E402
from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.data.transforms import check_image  # noqa: E402
from deepscope.errors import InputError, OutputError  # noqa: E402
from deepscope.io import check_output, csv_arrow, csv_cell, csv_plain, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, SegmentModel  # noqa: E402

runner = CliRunner()
SIZE = (64, 80)
EVIL = "x\x1b]0;pwned\x07\x1b[2J.tif"  # sets the window title, then clears the screen
EVIL_SHOWN = "x\\x1b]0;pwned\\x07\\x1b[2J.tif"


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("m")
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d / "count")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "segment")
    return d


def _good(path: Path, seed: int = 0) -> Path:
    return write_tiff(path, generate_field(3, size=SIZE, stains=1, seed=seed).image(1))


# --------------------------------------------------------------------------- a) control characters


@pytest.mark.parametrize("command", ["count", "segment", "inspect", "analyze"])
def test_control_characters_of_a_file_name_never_reach_the_terminal(command, models, tmp_path):
    folder = tmp_path / "in"
    _good(folder / "good.tif")
    (folder / EVIL).write_bytes(b"II*\x00 not a tiff")  # corrupt: its name is printed with the error
    args = {"count": ["count", str(folder), "-o", str(tmp_path / "c.csv"), "-m", str(models / "count"),
                      "--device", "cpu"],
            "segment": ["segment", str(folder), "-o", str(tmp_path / "seg"), "-m", str(models / "segment"),
                        "--device", "cpu"],
            "inspect": ["inspect", str(folder)],
            "analyze": ["analyze", str(folder), "-o", str(tmp_path / "run"), "--model", "otsu-watershed", "-j", "0"],
            }[command]
    r = runner.invoke(app, args)
    assert "\x1b" not in r.output and "\x07" not in r.output and "\x9b" not in r.output
    assert EVIL_SHOWN in r.output.replace("\n", "").replace(" ", ""), r.output


def test_consoles_logs_and_warnings_show_control_characters_as_escapes(capsys):
    out = io.StringIO()
    con = SafeConsole(file=out, force_terminal=True, width=200, highlight=False)
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("file")
    table.add_row(EVIL)
    con.print(table)
    con.print(f"[bold]{EVIL}[/] \x9b2J \u202egnp.exe")
    con.print(Text(EVIL))
    text = out.getvalue()
    assert "\x1b[1m" in text  # rich's own styles still work on a terminal
    plain = re.sub("\x1b\\[[0-9;]*m", "", text)
    assert "\x1b" not in plain and "\x07" not in plain and "\x9b" not in plain and "\u202e" not in plain
    assert EVIL_SHOWN in plain and "\\x9b2J" in plain and "\\u202egnp.exe" in plain
    setup_logging(0)
    logging.getLogger("deepscope.test").warning("reading %s", EVIL)
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and EVIL_SHOWN in err
    shown = warnings.formatwarning(f"{EVIL} looks odd", UserWarning, "f.py", 1, line="")
    assert "\x1b" not in shown and EVIL_SHOWN in shown
    rec = logging.LogRecord("tifffile", logging.WARNING, "f.py", 1, "<TiffFile %r>", (EVIL,), None)
    assert "\x1b" not in logging.lastResort.format(rec)  # other libraries' warnings too
    assert visible("a\nb\tc\rd\x7f") == "a\nb\tc\\x0dd\\x7f"  # newlines and tabs lay out plain output


# --------------------------------------------------------------------------- b) CSV formulas


def test_csv_cells_that_start_like_a_formula_get_a_quote_and_numbers_stay_numbers():
    assert [csv_cell(t) for t in ("=1+2", "+cmd", "-x", "@SUM(A1)", "\tx", "\rx", "a=b", "", "'=q")] == [
        "'=1+2", "'+cmd", "'-x", "'@SUM(A1)", "'\tx", "'\rx", "a=b", "", "'=q"]
    assert [csv_cell(t) for t in ("-1.5", "+3", "-2e-3", ".5")] == ["-1.5", "+3", "-2e-3", ".5"]
    assert csv_plain(csv_cell("=1+2.tif")) == "=1+2.tif" and csv_plain(csv_cell(csv_cell("-x"))) == "-x"
    import pyarrow as pa

    t = csv_arrow(pa.table({"name": ["=1+2.tif", "-1.5", None, "ok"], "v": [-1.5, -2.0, 0.0, 1e-9]}))
    assert t.column("name").to_pylist() == ["'=1+2.tif", "-1.5", None, "ok"]
    assert t.column("v").to_pylist() == [-1.5, -2.0, 0.0, 1e-9] and t.schema.field("v").type == pa.float64()


def test_count_and_analyze_write_formula_like_names_as_text(models, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    name = '=HYPERLINK("x.example")+1.tif'
    _good(folder / name)
    _good(folder / "plain.tif", seed=3)
    monkeypatch.chdir(folder)  # the path column then starts with the name itself
    r = runner.invoke(app, ["count", name, "plain.tif", "-o", str(tmp_path / "c.csv"), "-m", str(models / "count"),
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    raw = (tmp_path / "c.csv").read_text()
    assert '"\'=HYPERLINK(""x.example"")+1.tif"' in raw and "\n=" not in raw
    table = pd.read_csv(tmp_path / "c.csv", keep_default_na=False)
    assert table["path"].tolist() == ["'" + name, "plain.tif"]
    assert pd.api.types.is_float_dtype(table["count"])
    r = runner.invoke(app, ["analyze", str(folder), "-o", str(tmp_path / "run"), "--model", "otsu-watershed",
                            "-j", "0"])
    assert r.exit_code == 0, r.output
    csv = pd.read_csv(tmp_path / "run" / "images.csv")
    parquet = pd.read_parquet(tmp_path / "run" / "images.parquet")
    assert csv["set_id"].tolist() == ["'" + name, "plain.tif"] and parquet["set_id"].tolist() == [name, "plain.tif"]
    assert csv["FileName_Image"].tolist() == ["'" + name, "plain.tif"]
    slope = "ImageQuality_PowerLogLogSlope_Image"  # a negative number: written as a number, not as text
    assert pd.api.types.is_float_dtype(csv[slope]) and (csv[slope] < 0).all()
    np.testing.assert_allclose(csv[slope], parquet[slope], rtol=1e-12)
    from deepscope.report.data import load_results

    assert load_results(tmp_path / "c.csv").images["path"].tolist() == [name, "plain.tif"]  # read back as named


# --------------------------------------------------------------------------- c, d) tiny and float64 images


def test_images_under_two_pixels_and_float32_overflow_are_clear_error_rows(models, tmp_path):
    folder = tmp_path / "in"
    _good(folder / "good.tif")
    write_tiff(folder / "dot.tif", np.full((1, 1), 9, np.uint8))
    write_tiff(folder / "line.tif", np.arange(50, dtype=np.uint8)[None, :])
    big = np.ones(SIZE, np.float64)
    big[10:20, 10:20] = -3e300
    write_tiff(folder / "big.tif", big)
    for command, out, model in (("segment", tmp_path / "seg", ["-m", str(models / "segment"), "--device", "cpu"]),
                                ("count", tmp_path / "c.csv", ["-m", str(models / "count"), "--device", "cpu"]),
                                ("analyze", tmp_path / "run", ["--model", "otsu-watershed", "-j", "0"])):
        r = runner.invoke(app, [command, str(folder), "-o", str(out), *model])
        assert r.exit_code == 0, r.output
        text = _out(r)
        assert "Traceback" not in r.output and "numerical gradient" not in text
        assert "dot.tif" in text and "the image is 1 x 1 pixels (shape (1, 1)); at least 2 x 2 are needed" in text
        assert "the image is 1 x 50 pixels" in text
        assert ("pixel values beyond float32's range (largest magnitude 3e+300; float32 holds up to 3.403e+38)"
                in text) and "Rescale the image" in text
    images = pd.read_parquet(tmp_path / "run" / "images.parquet").set_index("set_id")
    assert images["status"].tolist().count("failed") == 3 and images.loc["good.tif", "status"] == "ok"
    check_image(np.zeros((2, 2), np.uint8))  # the smallest image every model and the watershed take
    check_image(np.full((4, 4), 3e38, np.float64))  # within float32's range
    with pytest.raises(InputError, match=r"a\.tif: the image is 2 x 1 pixels \(shape \(2, 1, 3\)\)"):
        check_image(np.zeros((2, 1, 3)), path="a.tif")


def test_a_count_model_names_the_smallest_image_it_takes(models, tmp_path):
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=3, pool_input=4))
    with pytest.raises(InputError, match=r"20 x 40 pixels is smaller than the model's 4x4 binning and "
                                         r"down-sampling need \(32 x 32 pixels\)"):
        m.predict_image(np.zeros((20, 40), np.uint8))


# --------------------------------------------------------------------------- e) full disk


@pytest.mark.parametrize("command", ["count", "segment"])
def test_a_full_disk_says_what_was_and_was_not_written(command, models, tmp_path, monkeypatch):
    import deepscope.io

    folder = tmp_path / "in"
    _good(folder / "a.tif")
    _good(folder / "b.tif", seed=1)
    real = deepscope.io.write_text

    def full(path, text):
        if str(path).endswith(".csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, text)

    monkeypatch.setattr(deepscope.io, "write_text", full)
    out = tmp_path / ("c.csv" if command == "count" else "seg")
    r = runner.invoke(app, [command, str(folder), "-o", str(out), "-m", str(models / command), "--device", "cpu"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    text = _out(r)
    table = out if command == "count" else out / "counts.csv"
    assert f"could not write the table '{table}' (No space left on device): it was not written" in text
    assert not table.exists() and not list(table.parent.glob(".*.part*"))
    if command == "count":
        assert "nothing else was written, so the results of this run are lost" in text
        assert "kept" not in text
    else:
        assert "the 4 other output(s) written before it (label images, overlays ...) are kept" in text
        assert len(list(out.glob("*.labels.tif"))) == 2


def test_the_disk_check_leaves_no_folder_it_made(tmp_path, monkeypatch):
    import shutil

    class Usage:
        free = 1 << 20

    monkeypatch.setattr(shutil, "disk_usage", lambda d: Usage())
    with pytest.raises(OutputError, match=r"only 1\.0 MiB free on its disk .*; nothing was created"):
        check_output(tmp_path / "new" / "run")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()
    with pytest.raises(OutputError, match="MiB free"):
        check_output(tmp_path / "mine" / "counts.csv", folder=False)
    assert (tmp_path / "mine").is_dir()  # a folder that was there before stays
    _good(tmp_path / "mine" / "a.tif")
    r = runner.invoke(app, ["analyze", str(tmp_path / "mine"), "-o", str(tmp_path / "out" / "run"), "--model",
                            "otsu-watershed", "-j", "0"])
    assert r.exit_code == 2 and "MiB free" in _out(r) and not (tmp_path / "out").exists()
