"""Every command and Python block of docs/pipelines.md runs as written (see _harness.py for the stand-in data),
and gives what the page says: the run folder's files, the columns of images.* and the object tables, the
grouping into image sets (incomplete ones in skipped.csv), a rerun that does nothing, the summary line,
and Otsu + watershed nucleus counts equal to the fields' true counts."""

from __future__ import annotations

import re

import pandas as pd
import pytest

pytest.importorskip("torch")

from ._harness import run_document, true_count  # noqa: E402


def test_pipelines_runs_as_written(tmp_path, monkeypatch):
    run = run_document("docs/pipelines.md", tmp_path, monkeypatch)
    project = run.project

    # the run folder: tables (parquet + csv), report, resolved pipeline, run.json, parts, skipped.csv
    for f in ("images.parquet", "images.csv", "Nuclei.parquet", "Nuclei.csv", "Cells.csv", "objects.parquet",
              "objects.csv", "wells.csv", "report.html", "pipeline.yaml", "run.json", "skipped.csv"):
        assert (project / "run2" / f).is_file(), f
    assert list((project / "run2" / "parts").rglob("*.parquet"))
    assert (project / "run1" / "report.html").is_file() and (project / "run1" / "Nuclei.csv").is_file()

    # images.*: one row per image set, grouped by well and site (set_id well=A05,site=1), with the columns the
    # page lists; the otsu-watershed nucleus count of each field is its true count
    images = pd.read_csv(project / "run2" / "images.csv")
    assert list(images["set_id"]) == ["well=A05,site=1", "well=A11,site=1"] and (images["status"] == "ok").all()
    for col in ("ImageNumber", "set_id", "path", "status", "error", "input_sha256", "FileName_DNA", "PathName_DNA",
                "Sha256_DNA", "FileName_Cells", "Height", "Width", "Metadata_well", "Count_Nuclei", "Count_Cells",
                "pipeline_hash", "Model_Nuclei", "ModelSha256_Nuclei", "deepscope_version", "run_id",
                "ImageQuality_FocusScore_DNA", "ImageQuality_PowerLogLogSlope_DNA", "ImageQuality_PercentMaximal_DNA",
                "ImageQuality_Percentile1_DNA"):
        assert col in images.columns, col
    assert all(abs(n - true_count(p)) <= 2 for p, n in zip(images["path"], images["Count_Nuclei"])), images["Count_Nuclei"]
    # the incomplete field (w1 only) is left out and listed, with what it lacks
    skipped = pd.read_csv(project / "run2" / "skipped.csv")
    assert list(skipped["set_id"]) == ["well=A02,site=1"] and "missing Cells" in skipped["reason"][0]

    # object tables: ImageNumber, ObjectNumber, AreaShape_*, relations (Parent_Cells / Children_Nuclei_Count)
    nuclei, cells = pd.read_csv(project / "run2" / "Nuclei.csv"), pd.read_csv(project / "run2" / "Cells.csv")
    assert list(nuclei.columns[:2]) == ["ImageNumber", "ObjectNumber"] and "Parent_Cells" in nuclei.columns
    assert "Children_Nuclei_Count" in cells.columns and "AreaShape_Area" in nuclei.columns
    assert len(nuclei) == images["Count_Nuclei"].sum() and len(cells) == images["Count_Cells"].sum()
    objects = pd.read_csv(project / "run2" / "objects.csv")
    assert sorted(set(objects["ObjectName"])) == ["Cells", "Nuclei"] and len(objects) == len(nuclei) + len(cells)

    # "again: finishes what is left, or does nothing"; the Python summary has the page's form
    # ("96 image sets (96 processed now, 0 already done), 4127 objects, 0 failed, in 31.0 s")
    outputs = [out for command, out in run.outputs if command == "deepscope run pipeline.yaml --out run2"]
    assert "(2 processed now, 0 already done)" in outputs[0] and "(0 processed now, 2 already done)" in outputs[1]
    m = re.search(r"(\d+) image sets \(0 processed now, (\d+) already done\), (\d+) objects, 0 failed, in [\d.]+ s",
                  run.python_output())
    assert m and m.group(1) == m.group(2) == "2" and int(m.group(3)) == len(objects), run.python_output()
    # run3 (`-j 0`: the rules' stand-in for `--workers 8`) gives the tables of run2's worker processes
    pd.testing.assert_frame_equal(pd.read_csv(project / "run3" / "Nuclei.csv"), nuclei)
    median = run.namespace["nuclei"].groupby("Metadata_well")["AreaShape_Area"].median()  # type: ignore[attr-defined]
    assert list(median.index) == ["A05"]
