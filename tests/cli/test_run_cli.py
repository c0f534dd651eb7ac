"""``deepscope run`` and ``deepscope analyze``."""

from __future__ import annotations

import re
import socket

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import deepscope.demo
from deepscope.cli.app import app
from deepscope.pipeline.spec import zoo_dir

from ..pipeline._data import segment_pipeline, write_nuclei

runner = CliRunner()


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def spec(tmp_path):
    write_nuclei(tmp_path / "images", 5)
    p = tmp_path / "p.yaml"
    d = segment_pipeline(tmp_path / "images")
    d["inputs"]["paths"] = ["images"]  # relative to the YAML file
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def test_analyze_bundled_samples(tmp_path):
    out = tmp_path / "demo_out"
    r = runner.invoke(app, ["analyze", str(deepscope.demo.sample_dir()), "--out", str(out), "--model",
                            "otsu-watershed", "--pattern", "bbbc005", "-j", "0"])
    assert r.exit_code == 0, r.output
    assert "10 image sets (10 processed now, 0 already done)" in _flat(r.output) and "0 failed" in r.output
    images = pd.read_csv(out / "images.csv")
    assert len(images) == 10 and not images["path"].str.contains("/masks/").any()  # masks are not images
    assert images["Metadata_count"].tolist()[:3] == [5, 5, 18] and images["Count_Nuclei"].gt(0).all()
    objects = pd.read_parquet(out / "objects.parquet")
    assert len(objects) == images["Count_Nuclei"].sum()
    assert len(list((out / "overlays").glob("*.png"))) == 10 and len(list((out / "labels").glob("*.tif"))) == 10
    assert yaml.safe_load((out / "pipeline.yaml").read_text())["steps"][0]["segment"]["model"] == "otsu-watershed"


def test_analyze_falls_back_to_otsu_with_a_warning_when_no_nuclei_model(tmp_path, monkeypatch):
    import deepscope.pipeline.runner as pipeline_runner

    if (zoo_dir() / "nuclei.json").is_file():  # installed: pretend the default is a model that is not
        monkeypatch.setattr(pipeline_runner, "DEFAULT_SEGMENT_MODEL", "nuclei-not-installed")
    write_nuclei(tmp_path / "images", 2)
    r = runner.invoke(app, ["analyze", str(tmp_path / "images"), "--out", str(tmp_path / "out"), "-j", "0",
                            "--no-overlays"])
    assert r.exit_code == 0, r.output
    assert re.search(r"warning: the shipped '[a-z-]+' model is not installed; segmenting with the classical "
                     "otsu-watershed", _flat(r.output))
    assert not (tmp_path / "out" / "overlays").exists()
    assert pd.read_parquet(tmp_path / "out" / "images.parquet")["Model_Nuclei"].eq("otsu-watershed").all()


def test_run_then_resume_and_refuse_another_pipeline(spec, tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", str(spec), "--out", str(out), "-j", "0"])
    assert r.exit_code == 0, r.output
    assert "5 image sets (5 processed now, 0 already done)" in _flat(r.output)
    r = runner.invoke(app, ["run", str(spec), "--out", str(out), "-j", "0"])
    assert r.exit_code == 0 and "5 image sets (0 processed now, 5 already done)" in _flat(r.output)
    other = yaml.safe_load(spec.read_text())
    other["steps"][2]["measure"]["pixel_size"] = 0.5
    spec.write_text(yaml.safe_dump(other))
    r = runner.invoke(app, ["run", str(spec), "--out", str(out), "-j", "0"])
    assert r.exit_code == 2 and "holds the results of another pipeline" in _flat(r.output)
    r = runner.invoke(app, ["run", str(spec), "--out", str(out), "-j", "0", "--on-change", "rerun"])
    assert r.exit_code == 0, r.output
    assert "AreaShape_Area_um2" in pd.read_parquet(out / "objects.parquet").columns


def test_run_reports_failed_images(spec, tmp_path):
    (tmp_path / "images" / "img_01.tif").write_bytes(b"broken")
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "-j", "0"])
    assert r.exit_code == 0, r.output
    assert "1 failed" in r.output and "failed img_01.tif: ImageReadError" in _flat(r.output)


def test_run_on_a_local_cluster(spec, tmp_path):
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "(dask LocalCluster, 1 worker)" in _flat(r.output)
    assert len(pd.read_parquet(tmp_path / "run" / "images.parquet")) == 5


def test_bad_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("inputs: [images]\nsteps:\n  - segment: {model: otsu-watershed, tile: huge}\n")
    r = runner.invoke(app, ["run", str(p), "--out", str(tmp_path / "run")])
    assert r.exit_code == 2
    assert "bad.yaml, line 3: steps[0].segment.tile: expected an integer >= 64; got text 'huge'" in _flat(r.output)


def test_unreachable_scheduler_and_bad_options(spec, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--scheduler",
                            f"tcp://127.0.0.1:{port}", "--connect-timeout", "1"])
    assert r.exit_code == 2 and "could not reach the Dask scheduler" in _flat(r.output)
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--on-change", "maybe"])
    assert r.exit_code == 2 and "--on-change must be one of refuse, rerun" in _flat(r.output)
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "-j", "2", "--workers", "2"])
    assert r.exit_code == 2 and "give one of jobs" in _flat(r.output)
