"""Every command of docs/limits.md runs as written (see _harness.py for the stand-in data)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from ._harness import run_document  # noqa: E402


def test_limits_runs_as_written(tmp_path, monkeypatch):
    assert run_document("docs/limits.md", tmp_path, monkeypatch) > 0
