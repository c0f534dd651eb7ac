"""Every command of docs/onnx.md runs as written (see _harness.py for the stand-in data), and gives what the page
says: the export's largest difference to PyTorch is around 1e-6, and `--backend onnx` counts as the PyTorch
backend does (to 1e-3)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402


@pytest.mark.skipif(not {"count-bbbc005", "nuclei"} <= {m.name for m in list_models()}, reason="the page uses the shipped models")
def test_onnx_runs_as_written(tmp_path, monkeypatch):
    from deepscope.io import read_image
    from deepscope.models import load_model

    run = run_document("docs/onnx.md", tmp_path, monkeypatch)
    m = re.search(r"max abs difference ([\d.e+-]+)", run.output("deepscope models export nuclei -o nuclei.onnx"))
    assert m and float(m.group(1)) < 1e-4, run.output("deepscope models export nuclei")
    for f in ("nuclei.onnx", "counter.onnx"):
        assert (run.project / f).stat().st_size > 100_000, f
    onnx = pd.read_csv(run.project / "counts_onnx.csv")
    counter = load_model("count-bbbc005", device="cpu")
    counter.backend = "torch"  # the float network (the CPU default is int8 where the card allows it)
    torch_counts = counter.count_images([read_image(run.project / p) for p in onnx["path"]])
    assert len(onnx) == 2 and onnx["count"].tolist() == pytest.approx([r.count for r in torch_counts], abs=1e-3)
    # `--backend onnx-int8`: close to float, not equal (half a cell: the page says "close")
    int8 = pd.read_csv(run.project / "counts_int8.csv")
    assert len(int8) == 2 and int8["count"].tolist() == pytest.approx([r.count for r in torch_counts], abs=0.5)
    assert (run.project / "nuclei-fluo-mine.int8.onnx").stat().st_size > 100_000
