"""Every command of docs/performance.md runs as written (see _harness.py for the stand-in data), and gives what
the page says: the tables of every core are those of `--jobs 1` byte for byte, and the result says where
the time went (stage seconds, the number of workers)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from ._harness import run_document  # noqa: E402


def test_performance_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/performance.md", tmp_path, monkeypatch)
    project, ns = run.project, run.namespace
    # "the tables and files are those of --jobs 1, byte for byte"
    assert (project / "counts.csv").read_bytes() == (project / "counts_1.csv").read_bytes()
    assert (project / "counts_py.csv").read_bytes() == (project / "counts.csv").read_bytes()
    n = len(list((project / "w1_images").iterdir()))
    assert len(list((project / "seg").glob("*.labels.tif"))) == n and not (project / "seg" / "report.html").exists()
    assert len(list((project / "restored").glob("*.restored.tif"))) == n
    # "seconds per stage summed over the worker threads (read, infer with the network inside it, write ...) and wall"
    res = ns["res"]
    assert res.jobs == 2 and {"read", "network", "infer", "write", "wall"} <= set(res.stages)  # type: ignore[attr-defined]
    assert res.stages["network"] <= res.stages["infer"]  # type: ignore[attr-defined]
    assert list(ns["seg"].table.columns[:2]) == ["path", "count"] and len(ns["seg"].table) == n  # type: ignore[attr-defined]
