"""Every command of docs/ome_zarr.md runs as written (see _harness.py for the stand-in data), and gives what the
page says: a plate's outputs named plate_<row>_<column>_<field>, each field's labels written into its own
labels/<model> and labels/<objects> groups, and the tiled large-image path's count and labels group."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("ome_zarr")

from deepscope.models import list_models  # noqa: E402

from ._harness import run_document, true_count  # noqa: E402

FIELD = "nuclei/SIMCEPImages_A05_C18_F1_s01_w1.TIF"  # the image the page writes into each well and into field.zarr


@pytest.mark.skipif(not {"nuclei"} <= {m.name for m in list_models()}, reason="the page uses the shipped models")
def test_ome_zarr_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/ome_zarr.md", tmp_path, monkeypatch)
    project = run.project

    # segment works field by field, naming outputs plate_<row>_<column>_<field>; every field holds the sample
    # field, whose 18 nuclei are found
    seg = pd.read_csv(project / "plate_out" / "counts.csv")
    assert list(seg["path"]) == ["plate.zarr/A/1/0", "plate.zarr/A/2/0"]
    for name in ("plate_A_1_0", "plate_A_2_0"):
        assert (project / "plate_out" / f"{name}.labels.tif").is_file(), name
    assert all(abs(c - true_count(FIELD)) <= 2 for c in seg["count"]), seg
    # segment writes labels/<model> into each field, analyze labels/<objects> (e.g. labels/Nuclei)
    for well in ("A/1/0", "A/2/0"):
        labels = project / "plate.zarr" / well / "labels"
        assert (labels / "nuclei").is_dir() and (labels / "Nuclei").is_dir(), sorted(p.name for p in labels.iterdir())
    analysed = pd.read_csv(project / "plate_run" / "images.csv")
    assert list(analysed["set_id"]) == ["plate.zarr/A/1/0", "plate.zarr/A/2/0"] and (analysed["status"] == "ok").all()

    # segment_ngff: one count for the whole image, tile by tile, labels in field.zarr/labels/nuclei
    res = run.namespace["res"]
    assert abs(res.count - true_count(FIELD)) <= 2 and res.tiles > 1  # type: ignore[attr-defined]
    assert str(res.labels).endswith("labels/nuclei") and (project / "field.zarr" / "labels" / "nuclei").is_dir()  # type: ignore[attr-defined]
