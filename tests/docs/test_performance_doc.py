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


def test_the_faster_model_figures_are_the_benchmarks_and_the_cards():
    """"7.6 images/s against 6.7 for nuclei ... (Otsu + watershed: 12.4)", "test F1 0.90 for both, DSB score 0.60
    against 0.62", "F1 0.74 against 0.77 and 0.79": the figures of benchmarks/results/engine.json and of the cards."""
    import json

    from deepscope.models import model_card

    from ._harness import ROOT, page

    text = " ".join(page("docs/performance.md").split())
    speed = json.loads((ROOT / "benchmarks" / "results" / "engine.json").read_text())["speed"]
    for words, value, figure in (
            ("7.6 images/s", speed["segment_fast_jobs_default"]["images_per_s"], 7.6),
            ("against 6.7 for `nuclei`", speed["segment_jobs_default"]["images_per_s"], 6.7),
            ("Otsu + watershed: 12.4", speed["otsu_watershed"]["images_per_s"], 12.4)):
        assert words in text and round(value, 1) == pytest.approx(figure), (words, value)
    fast, slow = model_card("nuclei-fast").metrics["test"], model_card("nuclei").metrics["test"]
    assert "test F1 0.90 for both, DSB score 0.60 against 0.62" in text
    assert round(fast["fluorescence"]["f1@0.5_mean"], 2) == round(slow["fluorescence"]["f1@0.5_mean"], 2) == 0.90
    assert (round(fast["fluorescence"]["dsb_score"], 2), round(slow["fluorescence"]["dsb_score"], 2)) == (0.60, 0.62)
    assert "F1 0.74 against 0.77 and 0.79" in text
    assert [round(fast[k]["f1@0.5_mean"], 2) for k in ("he", "brightfield")] == [0.74, 0.74]
    assert [round(slow[k]["f1@0.5_mean"], 2) for k in ("he", "brightfield")] == [0.77, 0.79]
