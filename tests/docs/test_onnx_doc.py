"""Every command of docs/onnx.md runs as written (see _harness.py for the stand-in data)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402


@pytest.mark.skipif(not {"count-bbbc005", "nuclei"} <= {m.name for m in list_models()}, reason="the page uses the shipped models")
def test_onnx_runs_as_written(tmp_path, monkeypatch):
    assert run_document("docs/onnx.md", tmp_path, monkeypatch) > 0
