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

    with pytest.raises(ConfigError, match=r"steps\[0\]\.segment\.backend: 'tvm' is not one of torch, onnx"):
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
    from deepscope.pipeline.spec import generalist_models

    assert generalist_models() == ["nuclei"]
    assert set(generalist_models()) <= {m.name for m in list_models("segment")}
    with pytest.raises(ConfigError, match=r"diameter is for the generalist models \(nuclei\);"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]},
                            "steps": [{"segment": {"model": "otsu-watershed", "diameter": 20}}]})
