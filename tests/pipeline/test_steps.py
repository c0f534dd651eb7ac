"""What the steps compute: measurements against scikit-image, relate/filter, models, bad images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops

from deepscope.io import read_image, write_tiff
from deepscope.measure import relate_objects
from deepscope.pipeline import Pipeline, apply_steps, run_pipeline
from deepscope.provenance import lineage

from ._data import SIZE, segment_pipeline


def test_objects_table_agrees_with_regionprops(nuclei_dir, tmp_path):
    result = run_pipeline(Pipeline.from_dict(segment_pipeline(nuclei_dir)), tmp_path / "run", jobs=0)
    images = pd.read_parquet(result.tables["images.parquet"]).set_index("ImageNumber")
    objects = pd.read_parquet(result.tables["objects.parquet"])
    assert result.n_failed == 0 and result.n_objects == len(objects) > 20
    checked = 0
    for number, obj in objects.groupby("ImageNumber"):
        row = images.loc[number]
        raw = read_image(row["path"]).data
        labels = read_image(tmp_path / "run" / "labels" / f"{row['set_id'][:-4]}.Nuclei.tif").data
        assert row["Count_Nuclei"] == len(obj) == len(np.unique(labels)) - 1
        obj = obj.set_index("ObjectNumber")
        for rp in regionprops(labels, intensity_image=raw):
            got = obj.loc[rp.label]
            vals = raw[labels == rp.label].astype(float)
            expected = {"AreaShape_Area": rp.area, "AreaShape_Perimeter": rp.perimeter,
                        "AreaShape_Eccentricity": rp.eccentricity, "AreaShape_Solidity": rp.solidity,
                        "AreaShape_MajorAxisLength": rp.axis_major_length,
                        "AreaShape_MinorAxisLength": rp.axis_minor_length,
                        "Location_Center_X": rp.centroid[1], "Location_Center_Y": rp.centroid[0],
                        "AreaShape_BoundingBoxMinimum_Y": rp.bbox[0], "AreaShape_BoundingBoxMaximum_X": rp.bbox[3],
                        "Intensity_MeanIntensity_Image": vals.mean(), "Intensity_IntegratedIntensity_Image": vals.sum(),
                        "Intensity_MaxIntensity_Image": vals.max(),
                        "Location_CenterMassIntensity_X_Image": rp.centroid_weighted[1]}
            for col, value in expected.items():
                assert got[col] == pytest.approx(value, rel=1e-6, abs=1e-9), (number, rp.label, col)
            checked += 1
    assert checked == len(objects)
    assert (objects["ObjectName"] == "Nuclei").all()


def test_two_channels_relate_and_filter(plate_dir, tmp_path):
    spec = {"inputs": {"paths": [str(plate_dir)], "pattern": "plate-well-site-channel",
                       "channels": {"by": "channel", "names": {1: "DNA", 2: "Cells"}}},
            "steps": [{"segment": {"objects": "Nuclei", "channel": "DNA", "model": "otsu-watershed"}},
                      {"segment": {"objects": "Cells", "channel": "Cells", "model": "otsu-watershed"}},
                      {"relate": {"parents": "Cells", "children": "Nuclei"}},
                      {"measure": {"channels": ["DNA", "Cells"]}},
                      {"filter": {"objects": "Nuclei", "where": {"AreaShape_Area": [60, None]}, "into": "Big"}}]}
    result = run_pipeline(Pipeline.from_dict(spec), tmp_path / "run", jobs=0)
    images = pd.read_csv(result.tables["images.csv"])
    objects = pd.read_parquet(result.tables["objects.parquet"])
    assert list(images["set_id"]) == ["plate=plate1,well=A01,site=1", "plate=plate1,well=A02,site=1",
                                      "plate=plate1,well=B01,site=1"]
    assert {"FileName_DNA", "FileName_Cells", "Sha256_DNA", "Sha256_Cells", "Metadata_well"} <= set(images.columns)
    assert set(objects["ObjectName"]) == {"Nuclei", "Cells", "Big"}
    for _, row in images.iterrows():
        stem = row["set_id"]
        nuc = read_image(tmp_path / "run" / "labels" / f"{stem}.Nuclei.tif").data
        cells = read_image(tmp_path / "run" / "labels" / f"{stem}.Cells.tif").data
        big = read_image(tmp_path / "run" / "labels" / f"{stem}.Big.tif").data
        ref = relate_objects(cells, nuc)
        mine = objects[(objects.ImageNumber == row["ImageNumber"])]
        n = mine[mine.ObjectName == "Nuclei"].sort_values("ObjectNumber")
        assert n["Parent_Cells"].tolist() == ref.children["Parent_Cells"].tolist()
        c = mine[mine.ObjectName == "Cells"].sort_values("ObjectNumber")
        assert c["Children_Nuclei_Count"].tolist() == ref.parents["Children_Nuclei_Count"].tolist()
        b = mine[mine.ObjectName == "Big"]
        assert (b["AreaShape_Area"] >= 60).all() and len(b) == (n["AreaShape_Area"] >= 60).sum()
        assert b["ObjectNumber"].tolist() == list(range(1, len(b) + 1)) == sorted(np.unique(big[big > 0]).tolist())
        assert sorted(b["Parent_Nuclei"]) == sorted(n.loc[n["AreaShape_Area"] >= 60, "ObjectNumber"])
        assert row["Count_Big"] == len(b) and row["Count_Cells"] == len(c)
        # intensities of both channels for every object set
        assert c["Intensity_MeanIntensity_DNA"].notna().all() and c["Intensity_MeanIntensity_Cells"].notna().all()


def test_apply_steps_normalises_before_measuring():
    img = np.zeros((24, 24), np.uint16)
    img[2:8, 2:8] = 1000
    img[12:20, 12:22] = 3000
    lab = np.zeros(img.shape, np.int32)
    lab[2:8, 2:8] = 1
    lab[12:20, 12:22] = 2
    p = Pipeline.from_dict({"inputs": {"paths": ["/x"]}, "steps": [
        {"normalize": {"low": 0, "high": 100}}, {"segment": {"model": "otsu-watershed"}}, {"measure": {}},
        {"filter": {"objects": "Nuclei", "where": "AreaShape_Area > 40"}}]})
    seen = {}

    def seg(step, image):
        seen["dtype"], seen["max"] = image.dtype, float(image.max())
        return lab

    r = apply_steps(p, {"Image": img}, segment=seg, count=None)
    assert seen["dtype"] == np.float32 and seen["max"] == pytest.approx(1.0, abs=1e-5)
    t = r.objects["Nuclei"]
    assert t["ObjectNumber"].tolist() == [2]  # filtered in place, ids kept
    assert t["Intensity_MeanIntensity_Image"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert r.values["Count_Nuclei"] == 1 and r.values["AreaOccupied_AreaOccupied_Nuclei"] == 80
    assert set(np.unique(r.labels["Nuclei"])) == {0, 2}


def test_trained_model_paths_are_used_and_recorded(nuclei_dir, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")  # noqa: F841
    import deepscope.models
    from deepscope.models import CountModel, SegmentModel

    seg_card = SegmentModel().save(tmp_path / "seg")
    CountModel().save(tmp_path / "cnt")
    loads = []
    real_load = deepscope.models.load_model
    monkeypatch.setattr(deepscope.models, "load_model", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    spec = {"inputs": {"paths": [str(nuclei_dir / "img_0[0-2].tif")]},
            "steps": [{"segment": {"model": str(tmp_path / "seg"), "tile": 128, "overlap": 16}},
                      {"count": {"model": str(tmp_path / "cnt"), "name": "Cells"}}, {"measure": {}}]}
    result = run_pipeline(Pipeline.from_dict(spec), tmp_path / "run", jobs=0, device="cpu")
    assert sorted(loads) == [str(tmp_path / "cnt"), str(tmp_path / "seg")]  # once per process, not per image
    images = pd.read_parquet(result.tables["images.parquet"])
    import json

    sha = json.loads(seg_card.read_text())["weights"]["sha256"]
    assert result.n_failed == 0, result.failures
    assert (images["ModelSha256_Nuclei"] == sha).all() and (images["Model_Nuclei"] == "segment-model").all()
    assert images["Count_Cells"].notna().all() and (images["Count_Cells_Low"] <= images["Count_Cells"]).all()
    assert images["ModelSha256_Count_Cells"].str.len().eq(64).all()
    rec = lineage.read(tmp_path / "run" / "labels" / "img_00.Nuclei.tif")
    assert {m.sha256 for m in rec.models} >= {sha} and rec.inputs[0].sha256 == images["Sha256_Image"].iloc[0]


def test_bad_images_get_error_rows_and_the_run_goes_on(nuclei_dir, tmp_path):
    (nuclei_dir / "img_02.tif").write_bytes(b"II*\x00 this is not really a TIFF")
    rgb = np.zeros(SIZE + (3,), np.uint8)
    rgb[..., 0] = 50
    rgb[10:30, 10:30, 1] = 200
    write_tiff(nuclei_dir / "img_09.tif", rgb)  # three distinct channels, no planes given
    result = run_pipeline(Pipeline.from_dict(segment_pipeline(nuclei_dir)), tmp_path / "run", jobs=0)
    images = pd.read_parquet(result.tables["images.parquet"]).set_index("set_id")
    assert result.n_sets == 7 and result.n_failed == 2 and len(images) == 7
    assert dict(result.failures).keys() == {"img_02.tif", "img_09.tif"}
    bad = images.loc["img_02.tif"]
    assert bad["status"] == "failed" and "ImageReadError" in bad["error"] and bad["path"].endswith("img_02.tif")
    assert len(bad["Sha256_Image"]) == 64  # still identified, so a resume can tell if it changes
    assert "inputs.planes" in images.loc["img_09.tif", "error"]
    good = images.drop(["img_02.tif", "img_09.tif"])
    assert (good["status"] == "ok").all() and good["error"].isna().all() and good["Count_Nuclei"].gt(0).all()
    objects = pd.read_parquet(result.tables["objects.parquet"])
    assert not objects["ImageNumber"].isin(images.loc[["img_02.tif", "img_09.tif"], "ImageNumber"]).any()


def test_planes_name_the_channels_of_multichannel_files(tmp_path):
    from deepscope.data.synth import generate_field

    f = generate_field(6, size=SIZE, seed=3)
    write_tiff(tmp_path / "in" / "field.ome.tif", np.stack([f.image(1), f.image(2)]), axes="CYX", ome=True)
    spec = {"inputs": {"paths": [str(tmp_path / "in")], "planes": ["DNA", "Actin"]},
            "steps": [{"segment": {"channel": "DNA", "model": "otsu-watershed"}}, {"measure": {}}]}
    result = run_pipeline(Pipeline.from_dict(spec), tmp_path / "run", jobs=0)
    objects = pd.read_parquet(result.tables["objects.parquet"])
    assert result.n_failed == 0 and len(objects) >= 4
    labels = read_image(tmp_path / "run" / "labels" / "field.Nuclei.tif").data
    for ch, img in (("DNA", f.image(1)), ("Actin", f.image(2))):  # each plane measured as its own channel
        first = objects.iloc[0]
        assert first[f"Intensity_MeanIntensity_{ch}"] == pytest.approx(img[labels == first.ObjectNumber].mean())
