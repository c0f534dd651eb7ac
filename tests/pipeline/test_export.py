"""One table per object set, the per-image QC and aggregates, and the per-well table of a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscope.pipeline import Pipeline, run_pipeline
from deepscope.provenance import lineage

from ._data import write_plate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plate")
    write_plate(root / "plate1", ["A01", "A02", "B01"], sites=2)
    spec = {"name": "two-sets", "inputs": {"paths": [str(root / "plate1")], "pattern": "plate-well-site-channel",
                                           "channels": {"by": "channel", "names": {"1": "DNA", "2": "Cells"}}},
            "steps": [{"segment": {"objects": "Nuclei", "channel": "DNA", "model": "otsu-watershed"}},
                      {"segment": {"objects": "Cells", "channel": "Cells", "model": "otsu-watershed"}},
                      {"relate": {"parents": "Cells", "children": "Nuclei"}},
                      {"measure": {"objects": ["Nuclei", "Cells"], "channels": ["DNA"]}}]}
    out = root / "run"
    result = run_pipeline(Pipeline.from_dict(spec), out, jobs=0)
    return out, result


def test_one_table_per_object_set_with_only_its_columns(run):
    out, result = run
    assert {"Nuclei.parquet", "Nuclei.csv", "Cells.parquet", "Cells.csv"} <= set(result.tables)
    long = pd.read_parquet(out / "objects.parquet")
    for name in ("Nuclei", "Cells"):
        t = pd.read_parquet(out / f"{name}.parquet")
        assert list(t.columns[:2]) == ["ImageNumber", "ObjectNumber"] and "ObjectName" not in t.columns
        assert not t.isna().all().any()  # no empty columns of the other set
        mine = long[long["ObjectName"] == name]
        assert len(t) == len(mine)
        assert np.array_equal(t["AreaShape_Area"].to_numpy(), mine["AreaShape_Area"].to_numpy())
        assert pd.read_csv(out / f"{name}.csv").shape == t.shape
    assert "Parent_Cells" in pd.read_parquet(out / "Nuclei.parquet").columns
    assert "Children_Nuclei_Count" in pd.read_parquet(out / "Cells.parquet").columns
    rec = lineage.read(out / "Nuclei.parquet")
    assert rec.run_id == pd.read_parquet(out / "images.parquet")["run_id"].iloc[0]
    assert (out / "Nuclei.csv.prov.json").is_file()


def test_images_have_quality_and_aggregates_per_channel_and_set(run):
    out, _ = run
    images = pd.read_parquet(out / "images.parquet")
    nuclei = pd.read_parquet(out / "Nuclei.parquet")
    for ch in ("DNA", "Cells"):
        assert images[f"ImageQuality_PowerLogLogSlope_{ch}"].notna().all()
    first = nuclei[nuclei["ImageNumber"] == 1]
    row = images.iloc[0]
    assert row["Mean_Nuclei_AreaShape_Area"] == pytest.approx(first["AreaShape_Area"].mean())
    assert row["StDev_Nuclei_Intensity_MeanIntensity_DNA"] == pytest.approx(first["Intensity_MeanIntensity_DNA"].std(ddof=0))
    assert row["Median_Cells_AreaShape_Solidity"] >= 0


def test_wells_table_aggregates_the_sites_of_each_well(run):
    out, result = run
    wells = pd.read_csv(out / "wells.csv")
    images = pd.read_parquet(out / "images.parquet")
    assert wells["Metadata_well"].tolist() == ["A01", "A02", "B01"] and (wells["ImageSets"] == 2).all()
    a01 = images[images["Metadata_well"] == "A01"]["Count_Nuclei"]
    assert wells.loc[0, "Mean_Count_Nuclei"] == pytest.approx(a01.mean())
    assert wells.loc[0, "StDev_Count_Nuclei"] == pytest.approx(a01.std(ddof=0))
    assert "wells.parquet" in result.tables


def test_rerun_removes_the_object_tables_of_the_old_pipeline(run, tmp_path):
    import shutil

    out, _ = run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    other = Pipeline.from_dict({"inputs": {"paths": [str(out.parent / "plate1")], "include": ["*_w1.tif"]},
                                "steps": [{"segment": {"objects": "Blobs", "model": "otsu-watershed"}},
                                          {"measure": {}}]})
    run_pipeline(other, copy, jobs=0, on_change="rerun")
    assert (copy / "Blobs.csv").is_file() and not (copy / "Nuclei.csv").exists() and not (copy / "wells.csv").exists()
