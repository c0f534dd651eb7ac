"""ONNX export and the ONNX Runtime backend: every shipped network matches PyTorch, and the batch
commands give the same counts and labels on either backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import InputError  # noqa: E402
from deepscope.io import read_image, write_tiff  # noqa: E402
from deepscope.models import list_models, load_model  # noqa: E402
from deepscope.predict.backends import OnnxBackend, TorchBackend, export_onnx, inference_backend  # noqa: E402

SHIPPED = [m.name for m in list_models()]
runner = CliRunner()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_network_matches_pytorch(name, tmp_path):
    model = load_model(name, device="cpu")
    data = export_onnx(model, tmp_path / f"{name}.onnx")
    assert (tmp_path / f"{name}.onnx").read_bytes() == data
    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert json.loads(meta["deepscope_card"])["name"] == name and meta["deepscope_opset"] == "17"
    rng = np.random.default_rng(0)
    for shape in ((1, model.arch.in_channels, 64, 96), (3, model.arch.in_channels, 160, 128)):  # any N, H, W
        x = rng.random(shape, dtype=np.float32)
        ref = TorchBackend(model.net, device="cpu").forward(x)
        got = OnnxBackend(data).forward(x)
        assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4


def _fields(folder, n=3):
    for i in range(n):
        f = generate_field(10 + 8 * i, size=(200, 260), seed=40 + i, stains=(1,))
        write_tiff(folder / f"f{i}.tif", f.images[(1, 1)])
    return folder


@pytest.mark.skipif("count-bbbc005" not in SHIPPED, reason="needs the shipped counter")
def test_count_is_the_same_on_both_backends(tmp_path):
    from deepscope.predict.files import count_paths

    folder = _fields(tmp_path / "in")
    t = count_paths([folder], model="count-bbbc005", backend="torch").table
    o = count_paths([folder], model="count-bbbc005", backend="onnx").table
    assert (o["error"] == "").all() and list(o["method"]) == list(t["method"])
    # the estimates agree to 1e-3; the whole numbers made of them (count, interval ends) within one
    assert np.allclose(o["count_estimate"], t["count_estimate"], atol=1e-3)
    assert (abs(o["count"] - t["count"]) <= 1).all() and (abs(o["count_high"] - t["count_high"]) <= 1).all()
    model = load_model("count-bbbc005")
    model.backend = "onnx"
    assert isinstance(inference_backend(model), OnnxBackend)
    assert inference_backend(model) is inference_backend(model)  # exported once, cached


@pytest.mark.skipif("nuclei-fluo" not in SHIPPED, reason="needs the shipped nuclei-fluo")
def test_segment_labels_are_the_same_on_both_backends(tmp_path):
    from deepscope.predict.files import segment_paths

    folder = _fields(tmp_path / "in", n=2)
    segment_paths([folder], tmp_path / "torch", model="nuclei-fluo", overlay=False, backend="torch")
    res = segment_paths([folder], tmp_path / "onnx", model="nuclei-fluo", overlay=False, backend="onnx")
    assert (res.table["error"] == "").all()
    for i in range(2):
        a = read_image(tmp_path / "torch" / f"f{i}.labels.tif").data
        b = read_image(tmp_path / "onnx" / f"f{i}.labels.tif").data
        assert a.max() > 5 and np.mean(a == b) > 0.999


def test_export_command_and_errors(tmp_path):
    name = "nuclei-fluo" if "nuclei-fluo" in SHIPPED else None
    if name is None:
        pytest.skip("needs a shipped model")
    r = runner.invoke(app, ["models", "export", name, "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 0, r.output
    assert "max abs difference" in " ".join(r.output.split()) and (tmp_path / "m.onnx").stat().st_size > 1e5
    r = runner.invoke(app, ["models", "export", name, "--format", "tflite", "-o", str(tmp_path / "m.tflite")])
    assert r.exit_code == 2 and "not one of onnx, onnx-int8, bioimageio" in " ".join(r.output.split())
    r = runner.invoke(app, ["count", str(_fields(tmp_path / "in", n=1)), "--backend", "tensorrt", "-o",
                            str(tmp_path / "c.csv")])
    assert r.exit_code != 0 and "backend 'tensorrt' is not one of auto, torch, onnx" in " ".join(r.output.split())
    from deepscope.predict.inputs import resolve_model

    with pytest.raises(InputError, match="not one of auto, torch, onnx"):
        resolve_model(name, task="segment", backend="tvm")
