"""bioimage.io packages: every shipped model's package passes the bioimage.io spec validator, and its
weights reproduce its test output (what bioimage.io's test runner checks)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("bioimageio.spec")
pytest.importorskip("onnxruntime")

from deepscope.cli.app import app  # noqa: E402
from deepscope.models import list_models, load_model  # noqa: E402
from deepscope.predict.bioimageio import export_bioimageio, validate_bioimageio  # noqa: E402

SHIPPED = [m.name for m in list_models()]


@pytest.mark.parametrize("name", [n for n in SHIPPED if n in ("count-bbbc005", "nuclei", "deblur-bbbc005")])
def test_package_validates_and_reproduces_its_test_output(name, tmp_path):
    import io

    import onnxruntime as ort
    import torch

    path = export_bioimageio(load_model(name, device="cpu"), tmp_path / f"{name}.zip")
    status, errors = validate_bioimageio(path)
    assert status == "valid-format" and errors == []
    with zipfile.ZipFile(path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        x = np.load(io.BytesIO(zf.read("test_input.npy")))
        y = np.load(io.BytesIO(zf.read("test_output.npy")))
        onnx_bytes = zf.read("weights.onnx")
        ts = torch.jit.load(io.BytesIO(zf.read("weights.pt")))
    assert rdf["config"]["deepscope"]["card"]["name"] == name
    tol = rdf["config"]["bioimageio"]["reproducibility_tolerance"][0]["absolute_tolerance"]
    got_onnx = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got_ts = ts(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got_onnx - y).max() <= tol and np.abs(got_ts - y).max() <= tol


def test_export_command_writes_a_valid_package(tmp_path):
    if "nuclei-fluo" not in SHIPPED:
        pytest.skip("needs nuclei-fluo")
    r = CliRunner().invoke(app, ["models", "export", "nuclei-fluo", "--format", "bioimageio", "-o",
                                 str(tmp_path / "n.zip")])
    assert r.exit_code == 0, r.output
    assert "bioimage.io spec validation: valid-format" in " ".join(r.output.split())
