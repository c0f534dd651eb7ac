"""Every command of docs/finetuning.md runs as written (see _harness.py for the stand-in data)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402


@pytest.mark.skipif(not {"nuclei", "count-bbbc005"} <= {m.name for m in list_models()},
                    reason="the guide fine-tunes the shipped models")
def test_finetuning_guide_runs_as_written(tmp_path, monkeypatch):
    assert run_document("docs/finetuning.md", tmp_path, monkeypatch) > 0
