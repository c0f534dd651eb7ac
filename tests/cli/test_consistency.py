"""One CLI: the same option names, no recursion unless asked, exit codes, progress lines, readable help."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli._common import LineProgress  # noqa: E402
from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import write_dataset  # noqa: E402
from deepscope.io import write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, SegmentModel  # noqa: E402

runner = CliRunner()

#: Every command and sub-command, as typed after ``deepscope``.
COMMANDS = ["", "inspect", "count", "segment", "restore", "analyze", "run", "report", "train", "train count",
            "train segment", "train restore", "models", "models show", "catalog", "catalog add", "catalog query",
            "catalog export", "catalog check", "lineage", "evaluate", "evaluate count", "evaluate segment",
            "evaluate restore", "synth"]
#: Commands that write files: all take --out/-o (and the hidden --output alias).
WRITERS = ["count", "segment", "restore", "analyze", "run", "train count", "train segment", "train restore",
           "catalog export", "synth"]
#: Commands that scan folders: none descends into sub-folders unless --recursive.
SCANNERS = ["inspect", "count", "segment", "restore", "analyze", "train count", "train segment", "train restore",
            "catalog add", "evaluate count", "evaluate restore"]


def _help(command: str) -> str:
    r = runner.invoke(app, [*command.split(), "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_without_type_noise(command):
    text = _help(command)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "<bool>" not in text and "[/" not in text  # no flag types, no unrendered markup


@pytest.mark.parametrize("command", WRITERS)
def test_every_writer_takes_out_and_hides_the_output_alias(command):
    text = _help(command)
    assert re.search(r"-o, --out\b", text), text
    assert "--output" not in text


@pytest.mark.parametrize("command", SCANNERS)
def test_every_scanner_offers_recursive_off_by_default(command):
    text = " ".join(_help(command).split())
    assert "-r, --recursive / --no-recursive" in text and "(off by default" in text


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    """What `deepscope synth` writes: images beside a masks/ folder."""
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, counts=[3, 5], stains=1, size=(96, 128), seed=0)
    assert len(list(out.glob("*.TIF"))) == 2 and len(list((out / "masks").iterdir())) == 2
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d / "count")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "seg")
    return d


def test_count_reads_the_images_not_the_masks_unless_recursive(synth_folder, tiny, tmp_path):
    out = tmp_path / "c.csv"
    r = runner.invoke(app, ["count", str(synth_folder), "-m", str(tiny / "count"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(out)) == 2
    r = runner.invoke(app, ["count", str(synth_folder), "-m", str(tiny / "count"), "-o", str(out), "-r"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(out)) == 2  # sub-folders scanned, but masks/ holds label images: left out, said
    assert "left out 2 file(s) that look like label images" in " ".join(r.output.split())
    r = runner.invoke(app, ["count", str(synth_folder), "-m", str(tiny / "count"), "-o", str(out), "-r",
                            "--include-labels"])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(out)) == 4  # asked for: the masks too
    r = runner.invoke(app, ["count", str(synth_folder), "-m", str(tiny / "count"), "--output", str(tmp_path / "d.csv")])
    assert r.exit_code == 0 and len(pd.read_csv(tmp_path / "d.csv")) == 2  # the old spelling still works


def test_segment_on_images_beside_masks_writes_each_image_once(synth_folder, tiny, tmp_path):
    r = runner.invoke(app, ["segment", str(synth_folder), "-m", str(tiny / "seg"), "-o", str(tmp_path / "seg")])
    assert r.exit_code == 0, r.output
    counts = pd.read_csv(tmp_path / "seg" / "counts.csv", keep_default_na=False)
    assert len(counts) == 2 and (counts["error"] == "").all()
    r = runner.invoke(app, ["segment", str(synth_folder), "-m", str(tiny / "seg")])
    assert r.exit_code == 2 and "--out" in r.output


@pytest.fixture
def broken(tmp_path) -> Path:
    d = tmp_path / "broken"
    d.mkdir()
    for i in range(2):
        (d / f"bad{i}.tif").write_bytes(b"II*\x00 not really a tiff")
    return d


@pytest.mark.parametrize("command", ["count", "segment", "analyze"])
def test_every_batch_command_exits_1_when_every_input_failed(command, broken, tiny, tmp_path):
    args = {"count": ["-m", str(tiny / "count")], "segment": ["-m", str(tiny / "seg")],
            "analyze": ["-m", "otsu-watershed", "-j", "0"]}[command]
    r = runner.invoke(app, [command, str(broken), "-o", str(tmp_path / "out"), *args])
    assert r.exit_code == 1, r.output
    assert "bad0.tif" in r.output


def test_analyze_channel_picks_a_plane_of_colour_images(tmp_path):
    from deepscope.data.synth import generate_field

    d = tmp_path / "rgb"
    d.mkdir()
    for i in range(2):
        f = generate_field(4, size=(96, 128), seed=i)
        rgb = np.dstack([np.zeros((96, 128), np.uint8), f.image(1), f.image(2)])  # 3 distinct channels
        write_tiff(d / f"rgb{i}.tif", rgb)
    r = runner.invoke(app, ["analyze", str(d), "-o", str(tmp_path / "a"), "-m", "otsu-watershed", "-j", "0"])
    assert r.exit_code == 1, r.output  # all failed, and the error says what to pass
    flat = " ".join(r.output.split())
    assert "--channel N" in flat
    r = runner.invoke(app, ["analyze", str(d), "-o", str(tmp_path / "b"), "-m", "otsu-watershed", "-j", "0",
                            "--channel", "1"])
    assert r.exit_code == 0, r.output
    images = pd.read_csv(tmp_path / "b" / "images.csv")
    assert (images["status"] == "ok").all() and images["Count_Nuclei"].gt(0).all()
    r = runner.invoke(app, ["analyze", str(d), "-o", str(tmp_path / "c"), "-m", "otsu-watershed", "-j", "0",
                            "--channel", "5"])
    assert r.exit_code == 1 and "channel 5" in r.output


def test_line_progress_writes_a_line_at_start_every_tenth_and_end():
    buf = io.StringIO()
    ticks = iter(range(1000))
    report = LineProgress("count", stream=buf, every=3600, clock=lambda: float(next(ticks)))  # 1 s per image
    for done in range(1, 101):
        report(done, 100, failed=1 if done > 50 else 0)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("count: 1/100 images (1%)")
    assert len(lines) == 11 and lines[-1].startswith("count: 100/100 images (100%)")
    assert "1 failed" in lines[-1] and "ETA" not in lines[-1]
    assert lines[1] == "count: 10/100 images (10%), 1.0 images/s, 10s elapsed, ETA 1m30s"


def test_progress_lines_when_stderr_is_not_a_terminal(synth_folder, tiny, tmp_path):
    r = runner.invoke(app, ["count", str(synth_folder), "-m", str(tiny / "count"), "-o", str(tmp_path / "c.csv")],
                      env={"DEEPSCOPE_PROGRESS_SECONDS": "0"})
    assert r.exit_code == 0, r.output
    assert "count: 1/2 images (50%)" in r.output and "count: 2/2 images (100%)" in r.output


def test_inspect_never_cuts_file_names(tmp_path):
    d = tmp_path / "long"
    d.mkdir()
    names = [f"SIMCEPImages_A0{i}_C1{i}_F48_s0{i}_w1_with_a_long_experiment_suffix.TIF" for i in range(1, 4)]
    for n in names:
        write_tiff(d / n, np.zeros((8, 8), np.uint8))
    for extra in ([], ["--pattern", "bbbc005"]):
        r = runner.invoke(app, ["inspect", str(d), *extra], terminal_width=80)
        assert r.exit_code == 0, r.output
        for n in names:
            assert n in r.output
        assert "…" not in r.output and "..." not in r.output
