"""The int8 ONNX Runtime backend (``--backend onnx-int8``, issue 29): it runs through the CLI and the pipeline
parsers, gives counts and labels close to float, its shipped networks belong to the shipped weights, and a
model without one is calibrated on its first batch."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import ConfigError, InputError, ModelError  # noqa: E402
from deepscope.io import read_image, write_tiff  # noqa: E402
from deepscope.models import list_models, load_model  # noqa: E402
from deepscope.predict.backends import (BACKENDS, OnnxInt8Backend, TorchBackend, auto_backend,  # noqa: E402
                                        backend_of, export_onnx_int8, inference_backend, int8_file, weights_digest)

SHIPPED = [m.name for m in list_models()]
WITH_INT8 = [n for n in SHIPPED if load_model(n, device="cpu").card.get("int8")]
runner = CliRunner()


def _counter_field(folder, n=1):
    """Seeded 520 x 696 synthetic nuclear-stain fields: BBBC005-like, so the counter counts them by density."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        f = generate_field(30 + 15 * i, size=(520, 696), seed=7 + i, stains=(1,))
        write_tiff(folder / f"f{i}.tif", f.images[(1, 1)])
    return folder


def _small_fields(folder, n=2):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        f = generate_field(10 + 8 * i, size=(200, 260), seed=40 + i, stains=(1,))
        write_tiff(folder / f"f{i}.tif", f.images[(1, 1)])
    return folder


def test_backend_registry_lists_onnx_int8():
    assert BACKENDS == ("auto", "torch", "onnx", "onnx-int8")


@pytest.mark.skipif("count-bbbc005-fast" not in WITH_INT8, reason="needs the shipped counter's int8 network")
def test_count_cli_onnx_int8_is_close_to_float(tmp_path):
    import pandas as pd

    folder = _counter_field(tmp_path / "in", n=2)
    tables = {}
    for backend in ("torch", "onnx-int8"):
        out = tmp_path / f"{backend}.csv"
        r = runner.invoke(app, ["count", str(folder), "-m", "count-bbbc005-fast", "--device", "cpu", "--backend",
                                backend, "-o", str(out), "--no-report"])
        assert r.exit_code == 0, r.output
        tables[backend] = pd.read_csv(out, keep_default_na=False)
    t, q = tables["torch"], tables["onnx-int8"]
    assert list(q["method"]) == ["density", "density"] == list(t["method"])  # the network counted them
    # tolerance: half a cell (int8 moved counts by 0.02 cells on average on the BBBC005 test fields)
    assert np.abs(q["count"].to_numpy() - t["count"].to_numpy()).max() <= 0.5


@pytest.mark.skipif("nuclei-fluo" not in WITH_INT8, reason="needs the shipped nuclei-fluo int8 network")
def test_segment_cli_onnx_int8_labels_close_to_float(tmp_path):
    from deepscope.evaluate import match_instances

    folder = _small_fields(tmp_path / "in")
    for backend in ("torch", "onnx-int8"):
        r = runner.invoke(app, ["segment", str(folder), "-m", "nuclei-fluo", "--device", "cpu", "--backend", backend,
                                "--no-overlay", "-o", str(tmp_path / backend)])
        assert r.exit_code == 0, r.output
    for i in range(2):
        a = read_image(tmp_path / "torch" / f"f{i}.labels.tif").data
        b = read_image(tmp_path / "onnx-int8" / f"f{i}.labels.tif").data
        m = match_instances(a, b)
        k = int(np.argmin(np.abs(m.thresholds - 0.5)))
        # tolerance: the int8 objects match the float ones at IoU 0.5 with F1 >= 0.9, and >= 97% of pixels agree
        assert a.max() > 5 and m.f1[k] >= 0.9 and np.mean((a > 0) == (b > 0)) >= 0.97


def test_bad_backend_names_list_the_choices(tmp_path):
    folder = _small_fields(tmp_path / "in", n=1)
    r = runner.invoke(app, ["count", str(folder), "--backend", "int8", "-o", str(tmp_path / "c.csv")])
    assert r.exit_code != 0 and "backend 'int8' is not one of auto, torch, onnx, onnx-int8" in " ".join(r.output.split())
    from deepscope.predict.inputs import resolve_model

    with pytest.raises(InputError, match="not one of auto, torch, onnx, onnx-int8"):
        resolve_model("nuclei-fluo", task="segment", backend="tensorrt")
    model = load_model("nuclei-fluo", device="cpu")
    model.backend = "openvino"
    with pytest.raises(ConfigError, match="not one of auto, torch, onnx, onnx-int8"):
        inference_backend(model)


def test_pipeline_steps_accept_onnx_int8():
    from deepscope.pipeline import Pipeline

    spec = {"inputs": {"paths": ["/d"]}, "steps": [
        {"segment": {"model": "nuclei", "objects": "Nuclei", "backend": "onnx-int8"}},
        {"count": {"model": "count-bbbc005", "name": "Cells", "backend": "onnx-int8"}}]}
    p = Pipeline.from_dict(spec)
    assert [s.backend for s in p.steps] == ["onnx-int8", "onnx-int8"]
    spec["steps"][1]["count"]["backend"] = "int8"
    with pytest.raises(ValueError, match="onnx-int8"):
        Pipeline.from_dict(spec)


@pytest.mark.parametrize("name", WITH_INT8)
def test_shipped_int8_networks_belong_to_the_shipped_weights(name):
    model = load_model(name, device="cpu")
    entry = model.card["int8"]
    path = int8_file(model)
    assert path is not None and path.name == entry["file"]
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) < 3e6
    assert entry["weights_digest"] == weights_digest(model), f"stale: rerun recipes/finalize.py --only {name} --int8"
    assert "train part" in entry["calibration"] and "test" not in entry["calibration"]
    model.backend = "onnx-int8"
    be = inference_backend(model)
    assert isinstance(be, OnnxInt8Backend) and be.info["weights_digest"] == entry["weights_digest"]
    assert inference_backend(model) is be  # made once, cached


@pytest.mark.parametrize("name", SHIPPED)
def test_auto_runs_int8_on_a_cpu_exactly_where_the_card_allows_it(name):
    model = load_model(name, device="cpu")
    entry = model.card.get("int8") or {}
    assert model.backend == "auto"
    want = "onnx-int8" if entry.get("cpu_default") is True else "torch"
    assert auto_backend(model) == backend_of(model) == want
    be = inference_backend(model)
    assert isinstance(be, OnnxInt8Backend if want == "onnx-int8" else TorchBackend)
    if entry:  # the decision's evidence: float and int8 on validation images, within issue 29's rule
        ag = entry["agreement"]
        assert "validation" in ag["images"] and "test" not in ag["images"]
        ok = all(c <= 0.05 if k.startswith("mae") else c >= -0.005 for k, c in ag["changes"].items())
        assert ag["within_rule"] is ok is entry["cpu_default"]


@pytest.mark.skipif("nuclei-fluo" not in WITH_INT8, reason="needs the shipped nuclei-fluo int8 network")
def test_auto_falls_back_to_torch_for_other_weights_a_card_that_says_no_or_no_onnxruntime(tmp_path, monkeypatch):
    import sys

    import torch

    zoo = int8_file(load_model("nuclei-fluo", device="cpu")).parent
    for suffix in (".json", ".safetensors", ".int8.onnx"):
        shutil.copy(zoo / f"nuclei-fluo{suffix}", tmp_path / f"nuclei-fluo{suffix}")
    model = load_model(tmp_path / "nuclei-fluo.json", device="cpu")
    assert backend_of(model) == "onnx-int8"
    with torch.no_grad():  # fine-tuned: the int8 file was made for other weights; no warning, no calibration
        next(model.net.parameters()).mul_(1.01)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backend_of(model) == "torch" and isinstance(inference_backend(model), TorchBackend)
    card = json.loads((tmp_path / "nuclei-fluo.json").read_text())
    card["int8"]["cpu_default"] = False
    (tmp_path / "nuclei-fluo.json").write_text(json.dumps(card))
    assert backend_of(load_model(tmp_path / "nuclei-fluo.json", device="cpu")) == "torch"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    assert backend_of(load_model("nuclei-fluo", device="cpu")) == "torch"


@pytest.mark.skipif("nuclei-fluo" not in WITH_INT8, reason="needs the shipped nuclei-fluo int8 network")
def test_a_run_records_the_backend_auto_chose(tmp_path):
    folder = _small_fields(tmp_path / "in", n=1)
    out = tmp_path / "seg"
    r = runner.invoke(app, ["segment", str(folder), "-m", "nuclei-fluo", "--device", "cpu", "--no-overlay",
                            "-o", str(out), "--no-report"])
    assert r.exit_code == 0, r.output
    text = "\n".join(p.read_text() for p in out.rglob("*") if p.suffix in (".json", ".yaml", ".csv"))
    assert "onnx-int8" in text and "auto" not in text.replace("auto_", "")


@pytest.mark.skipif("nuclei-fluo" not in WITH_INT8, reason="needs the shipped nuclei-fluo int8 network")
def test_changed_weights_calibrate_on_the_first_batch_and_a_damaged_file_is_refused(tmp_path):
    import torch

    zoo = int8_file(load_model("nuclei-fluo", device="cpu")).parent
    for suffix in (".json", ".safetensors", ".int8.onnx"):
        shutil.copy(zoo / f"nuclei-fluo{suffix}", tmp_path / f"nuclei-fluo{suffix}")
    model = load_model(tmp_path / "nuclei-fluo.json", device="cpu")
    with torch.no_grad():
        next(model.net.parameters()).mul_(1.01)  # "fine-tuned": the shipped int8 file is not for these weights
    model.backend = "onnx-int8"
    with pytest.warns(UserWarning, match="first batch"):
        be = inference_backend(model)
    x = np.random.default_rng(0).random((1, 1, 96, 128), dtype=np.float32)
    model.backend = "torch"
    ref = inference_backend(model).forward(x)
    got = be.forward(x)
    assert got.shape == ref.shape and np.abs(got - ref).mean() < 0.05 * np.abs(ref).mean()
    assert be.info["calibration_inputs"] == 1
    # a damaged int8 file (its sha256 is in the card) is an error, never used
    path = tmp_path / "nuclei-fluo.int8.onnx"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    model = load_model(tmp_path / "nuclei-fluo.json", device="cpu")
    model.backend = "onnx-int8"
    with pytest.raises(ModelError, match="sha256"):
        inference_backend(model)


def test_export_onnx_int8_records_its_calibration(tmp_path):
    model = load_model("nuclei-fluo", device="cpu")
    images = [generate_field(12, size=(128, 160), seed=s, stains=(1,)).images[(1, 1)] for s in (1, 2)]
    data = export_onnx_int8(model, images, tmp_path / "m.int8.onnx", calibration="two synthetic fields")
    assert (tmp_path / "m.int8.onnx").read_bytes() == data
    info = OnnxInt8Backend(data).info
    assert info["calibration"] == "two synthetic fields" and info["calibration_images"] == 2
    assert info["format"] == "qdq" and info["weights_digest"] == weights_digest(model)
    with pytest.raises(ConfigError, match="calibration images"):
        export_onnx_int8(model, [])
    assert json.loads(json.dumps(info)) == info


def test_export_command_writes_an_int8_network_a_saved_model_then_runs(tmp_path):
    cal = _small_fields(tmp_path / "cal", n=2)
    model = load_model("nuclei-fluo", device="cpu")
    model.save(tmp_path / "mine.json")
    r = runner.invoke(app, ["models", "export", str(tmp_path / "mine.json"), "--format", "onnx-int8", "--calibration",
                            str(cal), "-o", str(tmp_path / "mine.int8.onnx")])
    assert r.exit_code == 0, r.output
    assert "int8, calibrated on 2 images" in " ".join(r.output.split())
    mine = load_model(tmp_path / "mine.json", device="cpu")
    assert int8_file(mine) == tmp_path / "mine.int8.onnx"
    mine.backend = "onnx-int8"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own int8 file: no first-batch calibration
        be = inference_backend(mine)
    assert be.info["calibration"] == f"2 images of {cal}"
    r = runner.invoke(app, ["models", "export", "nuclei-fluo", "--format", "onnx-int8", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--calibration" in r.output
