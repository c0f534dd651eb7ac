"""Every command of docs/performance.md runs as written (see _harness.py for the stand-in data)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from ._harness import run_document  # noqa: E402


def test_performance_runs_as_written(tmp_path, monkeypatch):
    assert run_document("docs/performance.md", tmp_path, monkeypatch) > 0
