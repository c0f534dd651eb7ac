"""Every command of docs/bioimageio.md runs as written (see _harness.py for the stand-in data), and gives what
the page says: a package that the bioimage.io validator calls valid-format, holding TorchScript and ONNX
weights, a test input and output, a cover image, a README and the deepscope card."""

from __future__ import annotations

import zipfile

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("bioimageio.spec")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402


@pytest.mark.skipif(not {"nuclei-fluo"} <= {m.name for m in list_models()}, reason="the page uses the shipped models")
def test_bioimageio_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/bioimageio.md", tmp_path, monkeypatch)
    assert "valid-format" in run.output("deepscope models export nuclei-fluo")
    with zipfile.ZipFile(run.project / "nuclei-fluo.zip") as z:
        names = z.namelist()
        rdf = next(n for n in names if n.endswith(("rdf.yaml", "bioimageio.yaml")))
        text = z.read(rdf).decode()
    lower = [n.lower() for n in names]
    assert any(n.endswith(".pt") or "torchscript" in n for n in lower) and any(n.endswith(".onnx") for n in lower), names
    assert any(n.endswith(".npy") and "input" in n for n in lower) and any(n.endswith(".npy") and "output" in n for n in lower)
    assert any(n.endswith(".md") for n in lower) and any(n.endswith((".png", ".jpg")) for n in lower), names
    assert "deepscope" in text and "scale_range" in text  # the card under config.deepscope; percentile preprocessing
