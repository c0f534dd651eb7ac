"""Every command of docs/tracking.md runs as written (the page makes its own synthetic movie), and gives what the
page says: linking the true masks scores DET, SEG, TRA and BC(0) 1.000; with `nuclei` segmenting the frames DET and
TRA stay above 0.99; the tables it names are written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("laptrack")
pytest.importorskip("ctc_metrics")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402


@pytest.mark.skipif("nuclei" not in {m.name for m in list_models()}, reason="the page uses the shipped nuclei model")
def test_tracking_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/tracking.md", tmp_path, monkeypatch)
    linked = json.loads((run.project / "linked" / "scores.json").read_text())
    for k in ("DET", "SEG", "TRA", "BC(0)"):
        assert linked[k] == pytest.approx(1.0), k
    seg = run.output("deepscope evaluate track tracks/movie")
    scores = {line.split()[0]: float(line.split()[1]) for line in seg.splitlines()
              if line.split() and line.split()[0] in ("DET", "SEG", "TRA")}
    assert scores["DET"] > 0.99 and scores["TRA"] > 0.99 and 0.9 < scores["SEG"] < 0.99
    for out in ("tracks", "linked"):
        assert (run.project / out / "movie" / "res_track.txt").exists()
        obj = pd.read_csv(run.project / out / "movie.tracks.csv")
        assert list(obj.columns) == ["track_id", "parent_id", "frame", "time", "y_px", "x_px", "y_um", "x_um",
                                     "area_px", "area_um2", "mean_intensity"]
        assert (run.project / out / "movie.track_summary.csv").exists()
        assert (run.project / out / "movies.csv.prov.json").exists()
    assert "divisions" in run.python_output()
