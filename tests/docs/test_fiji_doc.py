"""Every command of docs/fiji.md runs as written (see _harness.py for the stand-in data), and gives what the
page says: one ROI set per image with one ROI per object named by its label id, and a round trip through
read_rois that gives back the label image (exact for objects without holes)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")
pytest.importorskip("roifile")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document  # noqa: E402

STEM = "SIMCEPImages_A05_C18_F1_s01_w1"


@pytest.mark.skipif(not {"nuclei"} <= {m.name for m in list_models()}, reason="the page uses the shipped models")
def test_fiji_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/fiji.md", tmp_path, monkeypatch)
    project = run.project
    for src in (project / "nuclei").iterdir():
        assert (project / "fiji" / f"{src.stem}.rois.zip").is_file(), src.name
    labels = tifffile.imread(project / "fiji" / f"{STEM}.labels.tif")
    ids = sorted(int(i) for i in np.unique(labels) if i)
    # "one polygon ROI per object, named by its label id (000001, 000002 ...)"
    with zipfile.ZipFile(project / "fiji" / f"{STEM}.rois.zip") as z:
        names = sorted(n.removesuffix(".roi") for n in z.namelist())
    assert names == [f"{i:06d}" for i in ids] and len(ids) == 18
    # the round trip is exact for objects without holes (these nuclei have none)
    corrected = tifffile.imread(project / "corrected" / f"{STEM}.tif")
    assert corrected.shape == labels.shape and len(np.unique(corrected)) - 1 == len(ids)
    assert np.mean((corrected > 0) == (labels > 0)) > 0.99
