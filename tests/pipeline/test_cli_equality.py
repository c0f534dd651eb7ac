"""The same model and options give the same labels through ``deepscope segment`` and through a pipeline
(``deepscope run``): one overlap rule for ``tile`` (before, ``tile: 128`` failed every image of a pipeline
with cells-bbbc005, "tile=128 must be larger than 2 * overlap=320", while the command worked) and the
``backend`` option on both."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_field
from deepscope.io import read_image, write_tiff

CASES = {
    "cells-tile128": ("cells-bbbc005", {"tile": 128}),  # 128 x 160 images: tiled, the card's overlap shrunk
    "nuclei-default": ("nuclei", {}),  # the generalist, every option from its card
    "cells-onnx-tile128": ("cells-bbbc005", {"tile": 128, "backend": "onnx"}),
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("equality") / "images"
    folder.mkdir()
    for i in range(2):
        write_tiff(folder / f"img_{i}.tif", generate_field(6 + 2 * i, size=(128, 160), stains=1, seed=i).image(1))
    return folder


@pytest.mark.parametrize("case", list(CASES))
def test_segment_and_run_give_identical_labels(images, tmp_path, case):
    model, options = CASES[case]
    if options.get("backend") == "onnx":
        pytest.importorskip("onnxruntime")
    runner = CliRunner()
    cli_args = [a for k, v in options.items() for a in (f"--{k}", str(v))]
    r = runner.invoke(app, ["segment", str(images), "--model", model, "--out", str(tmp_path / "seg"),
                            "--no-overlay", "--jobs", "1", *cli_args])
    assert r.exit_code == 0, r.output
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"inputs": {"paths": [str(images)]},
                                    "steps": [{"segment": {"model": model, **options}}],
                                    "outputs": {"labels": True, "overlays": False}}))
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--jobs", "0"])
    assert r.exit_code == 0, r.output
    for i in range(2):
        by_cli = read_image(tmp_path / "seg" / f"img_{i}.labels.tif").data
        by_run = read_image(tmp_path / "run" / "labels" / f"img_{i}.Nuclei.tif").data
        assert by_cli.max() > 0, "nothing segmented: the comparison would be empty"
        np.testing.assert_array_equal(by_cli, by_run)


def test_pipeline_backend_is_checked_against_the_backends():
    from deepscope.errors import ConfigError
    from deepscope.pipeline import Pipeline

    with pytest.raises(ConfigError, match=r"steps\[0\]\.segment\.backend: 'tvm' is not one of auto, torch, onnx"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"segment": {"model": "nuclei", "backend": "tvm"}}]})
    with pytest.raises(ConfigError, match="backend is for trained models; otsu-watershed runs no network"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]},
                            "steps": [{"segment": {"model": "otsu-watershed", "backend": "onnx"}}]})
    p = Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"segment": {"model": "nuclei"}}]})
    q = Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"segment": {"model": "nuclei", "backend": "onnx"}}]})
    assert "backend" not in p.to_dict()["steps"][0]["segment"]  # a pipeline without it keeps its hash
    assert q.steps[0].backend == "onnx" and q.to_dict()["steps"][0]["segment"]["backend"] == "onnx"


def test_diameter_message_names_the_shipped_generalists():
    """The message lists the generalists of the zoo (it named a 'nuclei-fast' that never shipped)."""
    from deepscope.errors import ConfigError
    from deepscope.models import list_models
    from deepscope.pipeline import Pipeline
    from deepscope.tasks.segment.pipeline_step import generalist_models

    assert generalist_models() == ["nuclei-fast", "nuclei"]
    assert set(generalist_models()) <= {m.name for m in list_models("segment")}
    with pytest.raises(ConfigError, match=r"diameter is for the generalist models \(nuclei-fast, nuclei\);"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]},
                            "steps": [{"segment": {"model": "otsu-watershed", "diameter": 20}}]})


@pytest.mark.parametrize("key, bad, choices, good", [
    ("backend", "tvm", "auto, torch, onnx", "onnx"),
    ("tta", "mirror", "none, transpose, diagonal, flips, d8", "none"),
])
def test_pipeline_count_options_are_checked_and_kept(key, bad, choices, good):
    """The count step takes ``backend`` and ``tta`` as ``deepscope count --backend/--tta`` do (a count model
    only), and a pipeline that gives neither keeps its hash."""
    from deepscope.errors import ConfigError
    from deepscope.pipeline import Pipeline

    def spec(**count):
        return {"inputs": {"paths": ["x"]}, "steps": [{"segment": {"model": "otsu-watershed"}}, {"count": count}]}

    with pytest.raises(ConfigError, match=rf"steps\[1\]\.count\.{key}: '{bad}' is not one of {choices}"):
        Pipeline.from_dict(spec(model="count-bbbc005", **{key: bad}))
    with pytest.raises(ConfigError, match=f"{key} is for count models; model: objects runs no network"):
        Pipeline.from_dict(spec(objects="Nuclei", **{key: good}))
    p = Pipeline.from_dict(spec(model="count-bbbc005"))
    q = Pipeline.from_dict(spec(model="count-bbbc005", **{key: good}))
    assert key not in p.to_dict()["steps"][1]["count"]
    assert getattr(q.steps[1], key) == good and Pipeline.from_dict(q.to_dict()) == q and q.hash() != p.hash()


def test_count_and_run_give_identical_counts_on_onnx(images, tmp_path, monkeypatch):
    """``count: {backend: onnx}`` in a pipeline runs the network where ``deepscope count --backend onnx`` does."""
    import pandas as pd

    from deepscope.predict import inputs

    pytest.importorskip("onnxruntime")
    backends: list = []
    resolve = inputs.resolve_model

    def spy(model, **kw):
        backends.append((kw.get("task"), kw.get("backend")))
        return resolve(model, **kw)

    runner = CliRunner()
    model = "count-bbbc005-fast"
    r = runner.invoke(app, ["count", str(images), "--model", model, "--backend", "onnx", "--out",
                            str(tmp_path / "counts.csv"), "--jobs", "1"])
    assert r.exit_code == 0, r.output
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"inputs": {"paths": [str(images)]},
                                    "steps": [{"count": {"model": model, "name": "Cells", "backend": "onnx"}}],
                                    "outputs": {"labels": False, "overlays": False}}))
    monkeypatch.setattr(inputs, "resolve_model", spy)  # from here, the pipeline's calls only
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--jobs", "0"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "counts.csv")
    by_cli = table.set_index(table["path"].map(lambda s: s.rsplit("/", 1)[-1]))["count"].sort_index()
    run = pd.read_parquet(tmp_path / "run" / "images.parquet")
    name_col = next(c for c in run.columns if c.startswith("FileName_"))
    by_run = run.set_index(name_col)["Count_Cells"].sort_index()
    assert list(by_cli.index) == list(by_run.index) == ["img_0.tif", "img_1.tif"]
    np.testing.assert_allclose(by_cli.to_numpy(), by_run.to_numpy(), rtol=1e-6)
    # the unrounded estimate too: counts.csv's count_estimate is the run's Count_Cells_Estimate
    est_cli = table.set_index(table["path"].map(lambda s: s.rsplit("/", 1)[-1]))["count_estimate"].sort_index()
    np.testing.assert_allclose(est_cli.to_numpy(), run.set_index(name_col)["Count_Cells_Estimate"].sort_index(),
                               rtol=1e-6)
    assert (run["Count_Cells"] == np.floor(run["Count_Cells_Estimate"] + 0.5)).all()
    assert ("count", "onnx") in backends  # the pipeline's model was put on ONNX Runtime


def test_count_tta_gives_the_counts_of_count_tta(images, tmp_path):
    """``count: {tta: ...}`` in a pipeline gives the counts of ``deepscope count --tta``."""
    import pandas as pd

    runner = CliRunner()
    by_cli = {}
    for tta in ("none", "transpose"):  # count-bbbc005-fast's card says none: transpose gives other counts
        out = tmp_path / f"counts_{tta}.csv"
        r = runner.invoke(app, ["count", str(images), "--model", "count-bbbc005-fast", "--tta", tta, "--out", str(out),
                                "--jobs", "1", "--no-report"])
        assert r.exit_code == 0, r.output
        t = pd.read_csv(out)
        by_cli[tta] = t.set_index(t["path"].map(lambda s: s.rsplit("/", 1)[-1]))[["count", "count_estimate"]].sort_index()
    assert not np.allclose(by_cli["none"]["count_estimate"].to_numpy(), by_cli["transpose"]["count_estimate"].to_numpy())
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"inputs": {"paths": [str(images)]},
                                 "steps": [{"count": {"model": "count-bbbc005-fast", "name": "Cells", "tta": "transpose"}}],
                                 "outputs": {"labels": False, "overlays": False}}))
    r = runner.invoke(app, ["run", str(f), "--out", str(tmp_path / "run"), "--jobs", "0", "--no-report"])
    assert r.exit_code == 0, r.output
    run = pd.read_parquet(tmp_path / "run" / "images.parquet")
    name_col = next(c for c in run.columns if c.startswith("FileName_"))
    by_run = run.set_index(name_col)["Count_Cells"].sort_index()
    np.testing.assert_allclose(by_cli["transpose"]["count"].to_numpy(), by_run.to_numpy(), rtol=1e-6)
