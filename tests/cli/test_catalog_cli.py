from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.io import write_tiff
from deepscope.provenance import lineage
from deepscope.provenance.catalog import Catalog

runner = CliRunner()


def _text(r) -> str:
    """Output with the console's line wrapping undone."""
    return " ".join(r.output.split())

BBBC005_DEFAULTS = """\
instrument: {microscope: SIMCEP simulation, modality: widefield}
rules:
  - match: {stain: 1}
    set: {channels: [{name: w1, stain: nuclei, fluor: Hoechst 33342}]}
  - match: {stain: 2}
    set: {channels: [{name: w2, stain: cell body, fluor: phalloidin}]}
"""


def _bbbc_like(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    out = []
    for row, blur in (("A", 1), ("P", 48)):
        for site in (1, 2):
            for stain in (1, 2):
                p = folder / f"SIMCEPImages_{row}07_C22_F{blur}_s{site:02d}_w{stain}.TIF"
                tifffile.imwrite(p, rng.integers(0, 255, (5, 6), dtype=np.uint8))
                out.append(p)
    return out


def test_bbbc005_catalogued_and_queried_by_blur(bbbc005_dir, tmp_path):
    """The 'done when' of issue 4 on the real BBBC005 images."""
    meta = tmp_path / "bbbc005.yaml"
    meta.write_text(BBBC005_DEFAULTS)
    db = str(tmp_path / "deepscope.db")
    r = runner.invoke(app, ["catalog", "add", str(bbbc005_dir), "--pattern", "bbbc005", "--meta", str(meta),
                            "--db", db])
    assert r.exit_code == 0, r.output
    files = sorted(p for p in bbbc005_dir.iterdir() if p.suffix.upper() == ".TIF")
    assert f"{len(files)} file(s): {len(files)} added, 0 unchanged" in r.stdout
    r = runner.invoke(app, ["catalog", "query", "--where", "blur=48", "--db", db])
    assert r.exit_code == 0, r.output
    want = {str(p.resolve()) for p in files if "_F48_" in p.name}
    assert len(want) > 300 and set(r.stdout.split("\n")) - {""} == want
    r = runner.invoke(app, ["catalog", "query", "-w", "blur=48", "-w", "stain=nuclei", "--db", db])
    assert set(r.stdout.split()) == {p for p in want if p.endswith("_w1.TIF")}


def test_add_list_show_query_export_check_and_lineage(tmp_path):
    imgs = _bbbc_like(tmp_path / "imgs")
    meta = tmp_path / "d.yaml"
    meta.write_text(BBBC005_DEFAULTS + "objective: {na: 0.3}\npixel_size_um: 1.0\n")
    db = str(tmp_path / "c.db")
    r = runner.invoke(app, ["catalog", "add", str(tmp_path / "imgs"), "-p", "bbbc005", "-m", str(meta), "--db", db])
    assert r.exit_code == 0 and "8 added" in r.stdout, r.output
    r = runner.invoke(app, ["catalog", "list", "--db", db])
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 8 and "5x6" in lines[0] and lines[0].endswith("SIMCEPImages_A07_C22_F1_s01_w1.TIF")
    r = runner.invoke(app, ["catalog", "list", "--json", "--db", db, "-n", "2"])
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 2 and rows[0]["extras.blur"] == 1 and rows[0]["channels.0.stain"] == "nuclei"
    sha = rows[0]["sha256"]
    r = runner.invoke(app, ["catalog", "show", sha[:8], "--db", db])
    assert r.exit_code == 0 and "channels.0.stain = nuclei    [yaml]" in r.stdout
    assert "extras.blur = 1    [pattern]" in r.stdout
    r = runner.invoke(app, ["catalog", "query", "-w", "stain=cell*", "-w", "site=2", "--long", "--db", db])
    assert len(r.stdout.splitlines()) == 2 and all("\t" in x and "site=2" in x for x in r.stdout.splitlines())
    out = tmp_path / "meta.csv"
    r = runner.invoke(app, ["catalog", "export", "--format", "csv", "--output", str(out), "-w", "blur=1", "--db", db])
    assert r.exit_code == 0 and "4 image(s)" in r.stdout
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 4 and set(df["extras.blur"]) == {1} and "instrument.microscope" in df.columns
    r = runner.invoke(app, ["catalog", "check", "--require", "objective.na,channels.stain,sample.organism",
                            "--db", db])
    assert r.exit_code == 0 and "8 with issues (8 missing-field)" in r.stdout
    assert "missing required field sample.organism" in r.stdout and "objective.na" not in r.stdout.split("checked")[0]
    r = runner.invoke(app, ["catalog", "check", "--strict", "--db", db, "-r", "channels.emission_wavelength_nm"])
    assert r.exit_code == 1
    # the exported table traces back to its inputs, from the file alone and from the catalog
    r = runner.invoke(app, ["lineage", str(out)])
    assert r.exit_code == 0 and "command    catalog export" in r.stdout and "inputs     4" in r.stdout
    r = runner.invoke(app, ["lineage", str(out), "--db", db, "--json"])
    data = json.loads(r.stdout)
    (run,) = data["runs"]
    assert run["command"] == "catalog export" and run["status"] == "ok"
    assert {i["meta"]["extras.blur"] for i in run["inputs"]} == {1} and all(i["catalogued"] for i in run["inputs"])
    assert {i["path"] for i in run["inputs"]} == {str(p.resolve()) for p in imgs if "_F1_" in p.name}


def test_output_of_a_later_command_traces_back_to_catalogued_inputs(tmp_path):
    imgs = _bbbc_like(tmp_path / "imgs")
    db = str(tmp_path / "c.db")
    assert runner.invoke(app, ["catalog", "add", str(tmp_path / "imgs"), "-p", "bbbc005", "--db", db]).exit_code == 0
    # a later command (here: a stand-in for `segment`) writes a label image with a lineage record
    from deepscope.io import read_image

    with Catalog(db) as cat, lineage.Run.start(command="segment", params={"model": "nuclei", "tile": 256},
                                               models=[lineage.ModelRef("nuclei", "ef" * 32)], catalog=cat) as run:
        src = read_image(imgs[-1])
        out = tmp_path / "out" / "labels.tif"
        write_tiff(out, np.zeros((5, 6), np.int32))
        lineage.attach(out, run.record(out, inputs=[src]))
    r = runner.invoke(app, ["lineage", str(out), "--db", db])
    assert r.exit_code == 0, r.output
    assert "command    segment" in r.stdout and f"model      nuclei  weights sha256 {'ef' * 32}" in r.stdout
    assert src.meta.sha256 in r.stdout and "extras.blur=48" in r.stdout and '"tile": 256' in r.stdout
    # the input moved since: the catalog knows where it is now
    moved = tmp_path / "moved.TIF"
    imgs[-1].rename(moved)
    runner.invoke(app, ["catalog", "add", str(moved), "-p", "bbbc005", "--db", db])
    r = runner.invoke(app, ["lineage", str(out), "--db", db])
    assert f"(now at {moved.resolve()})" in r.stdout


def test_cli_errors(tmp_path):
    db = str(tmp_path / "c.db")
    r = runner.invoke(app, ["catalog", "add", str(tmp_path / "missing"), "--db", db])
    assert r.exit_code == 2 and "No such file or folder" in _text(r)
    r = runner.invoke(app, ["catalog", "query", "-w", "blur", "--db", db])
    assert r.exit_code == 2 and "must be KEY=VALUE" in _text(r)
    r = runner.invoke(app, ["catalog", "show", "abcdef12", "--db", db])
    assert r.exit_code == 2 and "no image 'abcdef12'" in _text(r)
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective: {na: 3}\n")
    (tmp_path / "a.tif").write_bytes(b"")
    r = runner.invoke(app, ["catalog", "add", str(tmp_path / "a.tif"), "-m", str(bad), "--db", db])
    assert r.exit_code == 2 and "out of range" in _text(r)
    r = runner.invoke(app, ["catalog", "add", str(tmp_path / "a.tif"), "--db", db])
    assert r.exit_code == 1 and "failed     " in r.stdout and "empty" in r.stdout
    r = runner.invoke(app, ["catalog", "export", "-o", str(tmp_path / "x.csv"), "-f", "xlsx", "--db", db])
    assert r.exit_code == 2 and "format='xlsx'" in _text(r)
    plain = tmp_path / "plain.csv"
    plain.write_text("a\n")
    r = runner.invoke(app, ["lineage", str(plain)])
    assert r.exit_code == 2 and "carries no provenance record" in _text(r)
    r = runner.invoke(app, ["lineage", str(plain), "--db", db])
    assert r.exit_code == 2 and "is not an output of any run" in _text(r)
    r = runner.invoke(app, ["catalog", "list", "--db", "mysql://x/y"])
    assert r.exit_code == 2 and "not supported" in _text(r)


def test_db_from_environment(tmp_path, monkeypatch):
    make = tmp_path / "x.tif"
    tifffile.imwrite(make, np.ones((3, 3), np.uint8))
    monkeypatch.setenv("DEEPSCOPE_DB", str(tmp_path / "env.db"))
    assert runner.invoke(app, ["catalog", "add", str(make)]).exit_code == 0
    assert (tmp_path / "env.db").exists()
    r = runner.invoke(app, ["catalog", "list"])
    assert r.stdout.strip().endswith(str(make.resolve()))


@pytest.mark.parametrize("args", [["catalog", "--help"], ["lineage", "--help"]])
def test_help(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and ("query" in r.output or "--db" in r.output)
