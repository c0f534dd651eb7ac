"""`deepscope analyze` on z-stacks (issue 27, item 4): nuclei segmented in 3D by the library call of `deepscope
segment STACK`, 3D measurements per object and per stack in the tables analyze writes for 2D, 3D labels with the
voxel size, maximum-projection overlays, lineage; a stack is never read as channels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_volume
from deepscope.errors import ConfigError, InputError
from deepscope.io import read_image
from deepscope.pipeline import Pipeline, default_pipeline, load_pipeline, run_pipeline
from deepscope.provenance import lineage
from deepscope.tasks.segment.volume_files import segment_stack

runner = CliRunner()
VS = (1.0, 0.5, 0.5)


def _hyperstack(path, stack, vs=VS):
    tifffile.imwrite(path, stack, imagej=True, resolution=(1 / vs[2], 1 / vs[1]),
                     metadata={"axes": "ZYX", "spacing": vs[0], "unit": "um"})


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    d = tmp_path_factory.mktemp("stacks")
    (d / "in").mkdir()
    vols = {}
    for i, n in enumerate((5, 7)):
        v = generate_volume(n, shape=(12, 48, 48), z_step=VS[0], pixel_size=VS[1], seed=10 + i)
        _hyperstack(d / "in" / f"s{i}.tif", v.stack)
        vols[f"s{i}"] = v
    return d, vols


@pytest.fixture(scope="module")
def analyzed(stacks, tmp_path_factory):
    d, vols = stacks
    out = tmp_path_factory.mktemp("run") / "out"
    res = runner.invoke(app, ["analyze", str(d / "in"), "--out", str(out), "--jobs", "0", "--no-report"])
    assert res.exit_code == 0, res.output
    return out, vols


def test_analyze_counts_equal_truth(analyzed):
    out, vols = analyzed
    images = pd.read_csv(out / "images.csv")
    got = dict(zip(images["set_id"].str.replace(".tif", "", regex=False), images["Count_Nuclei"]))
    assert got == {k: v.count for k, v in vols.items()} == {"s0": 5, "s1": 7}
    assert (images["status"] == "ok").all()
    assert images["Planes"].tolist() == [12, 12]
    assert images[["VoxelSize_Z_um", "VoxelSize_Y_um", "VoxelSize_X_um"]].to_numpy().tolist() == [list(VS)] * 2


def test_labels_are_3d_with_voxel_size_and_equal_the_library_call(analyzed, stacks):
    out, vols = analyzed
    d, _ = stacks
    for stem in vols:
        lab = read_image(out / "labels" / f"{stem}.Nuclei.tif")
        assert lab.axes == "ZYX" and lab.shape == (12, 48, 48) and lab.dtype == np.int32
        assert (lab.meta.z_step, *lab.meta.pixel_size) == VS
        # the same call deepscope segment makes for stacks: not a copy of it
        expected = segment_stack(read_image(d / "in" / f"{stem}.tif").data, voxel_size=VS)
        np.testing.assert_array_equal(lab.data, expected)
        rec = lineage.read(out / "labels" / f"{stem}.Nuclei.tif")
        assert rec is not None


def test_object_table_matches_regionprops(analyzed):
    from skimage.measure import regionprops

    out, vols = analyzed
    objects = pd.read_csv(out / "objects.csv")
    images = pd.read_csv(out / "images.csv")
    for number, set_id in zip(images["ImageNumber"], images["set_id"]):
        stem = set_id.replace(".tif", "")
        rows = objects[objects["ImageNumber"] == number].sort_values("ObjectNumber")
        lab = read_image(out / "labels" / f"{stem}.Nuclei.tif").data
        props = {p.label: p for p in regionprops(lab, spacing=VS)}
        assert rows["ObjectNumber"].tolist() == sorted(props)
        vox = np.array([props[i].num_pixels for i in rows["ObjectNumber"]])
        np.testing.assert_array_equal(rows["AreaShape_Volume"].to_numpy(), vox)
        np.testing.assert_allclose(rows["AreaShape_Volume_um3"].to_numpy(),
                                   [props[i].area for i in rows["ObjectNumber"]], rtol=1e-9)
        np.testing.assert_allclose(rows["Location_Center_Z_um"].to_numpy(),
                                   [props[i].centroid[0] for i in rows["ObjectNumber"]], rtol=1e-9)
        for col in ("AreaShape_SurfaceArea_um2", "AreaShape_Sphericity", "AreaShape_EquivalentDiameter_um",
                    "AreaShape_MajorAxisLength_um", "Intensity_MeanIntensity_Image"):
            assert rows[col].notna().all() and (rows[col] > 0).all(), col
        assert ((rows["AreaShape_Sphericity"] > 0.5) & (rows["AreaShape_Sphericity"] <= 1.0)).all()
        # per-stack summaries: those of the object rows
        img = images[images["ImageNumber"] == number].iloc[0]
        assert img["Median_Nuclei_AreaShape_Volume_um3"] == pytest.approx(rows["AreaShape_Volume_um3"].median())
        assert img["Mean_Nuclei_AreaShape_Volume_um3"] == pytest.approx(rows["AreaShape_Volume_um3"].mean())
        assert img["Total_Nuclei_AreaShape_Volume_um3"] == pytest.approx(rows["AreaShape_Volume_um3"].sum())


def test_intensity_is_of_the_stack(analyzed, stacks):
    out, vols = analyzed
    d, _ = stacks
    objects = pd.read_csv(out / "objects.csv")
    images = pd.read_csv(out / "images.csv")
    number = int(images.loc[images["set_id"] == "s0.tif", "ImageNumber"].iloc[0])
    rows = objects[objects["ImageNumber"] == number].sort_values("ObjectNumber")
    lab = read_image(out / "labels" / "s0.Nuclei.tif").data
    stack = tifffile.imread(d / "in" / "s0.tif").astype(np.float64)
    want = [stack[lab == i].mean() for i in rows["ObjectNumber"]]
    np.testing.assert_allclose(rows["Intensity_MeanIntensity_Image"].to_numpy(), want, rtol=1e-9)


def test_overlay_and_pipeline_yaml(analyzed):
    out, _ = analyzed
    from PIL import Image

    png = np.asarray(Image.open(out / "overlays" / "s0.png"))
    assert png.shape[:2] == (48, 48)
    assert lineage.read(out / "overlays" / "s0.png") is not None
    assert "volume: classical" in (out / "pipeline.yaml").read_text()
    p = load_pipeline(out / "pipeline.yaml")  # the resolved pipeline is one deepscope run reads
    assert p.z_stack and p.steps[0].volume == "classical"


def test_plain_pages_need_axes(stacks, tmp_path):
    d, vols = stacks
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "pages.tif", vols["s0"].stack)
    p = default_pipeline([tmp_path / "in"], axes="ZYX", voxel_size=VS)
    assert p.z_stack and p.inputs.voxel_size == VS
    r = run_pipeline(p, tmp_path / "out", jobs=0)
    assert r.n_failed == 0
    images = pd.read_csv(tmp_path / "out" / "images.csv")
    assert images["Count_Nuclei"].tolist() == [5]
    assert images["VoxelSize_Z_um"].tolist() == [1.0]


def test_stack_never_read_as_channels(stacks, tmp_path):
    """A 2-D pipeline that meets a z-stack refuses it by name (it is not read as 12 channels)."""
    d, _ = stacks
    p = Pipeline.from_dict({"inputs": {"paths": [str(d / "in" / "s0.tif")]},
                            "steps": [{"segment": {"model": "otsu-watershed"}}, {"measure": {}}]})
    r = run_pipeline(p, tmp_path / "out", jobs=0)
    assert r.n_failed == 1
    err = pd.read_csv(tmp_path / "out" / "images.csv")["error"].iloc[0]
    assert "z-stack of 12 planes" in err and "volume: classical" in err


def test_mixed_and_misplaced_options(stacks, tmp_path):
    d, _ = stacks
    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((32, 32), np.uint8))
    with pytest.raises(InputError, match="z-stacks .* 2D images"):
        default_pipeline([d / "in" / "s0.tif", tmp_path / "flat.tif"])
    with pytest.raises(InputError, match="--voxel-size: options for z-stacks"):
        default_pipeline([tmp_path / "flat.tif"], voxel_size=VS)
    with pytest.raises(InputError, match="--count-model: an option for 2-D images"):
        default_pipeline([d / "in"], count_model="count-bbbc005")
    with pytest.raises(InputError, match="classical 3D method runs no model"):
        default_pipeline([d / "in"], model="nuclei")


def test_spec_z_stack_rules():
    base = {"inputs": {"paths": ["/d"]}}
    p = Pipeline.from_dict(base | {"steps": [{"segment": {"volume": "classical"}}, {"measure": {}}]})
    assert p.z_stack and p.model_refs == () and p.steps[0].to_dict()["volume"] == "classical"
    assert Pipeline.from_dict(p.to_dict()) == p
    with pytest.raises(ConfigError, match="volume"):
        Pipeline.from_dict(base | {"steps": [{"segment": {"volume": "nope"}}]})
    with pytest.raises(ConfigError, match="runs no model"):
        Pipeline.from_dict(base | {"steps": [{"segment": {"volume": "classical", "model": "nuclei"}}]})
    with pytest.raises(ConfigError, match="reads the image sets as z-stacks"):
        Pipeline.from_dict(base | {"steps": [{"segment": {"volume": "classical"}},
                                             {"segment": {"objects": "Cells", "model": "otsu-watershed"}}]})
    with pytest.raises(ConfigError, match="voxel size"):
        Pipeline.from_dict(base | {"steps": [{"segment": {"volume": "classical"}}, {"measure": {"pixel_size": 0.5}}]})
    with pytest.raises(ConfigError, match="inputs.voxel_size is for z-stacks"):
        Pipeline.from_dict({"inputs": {"paths": ["/d"], "voxel_size": [1, 0.5, 0.5]},
                            "steps": [{"segment": {"model": "otsu-watershed"}}]})
    with pytest.raises(ConfigError, match="axis letters"):
        Pipeline.from_dict({"inputs": {"paths": ["/d"], "axes": "CYX"},
                            "steps": [{"segment": {"volume": "classical"}}]})


def test_report_of_a_stack_analysis(analyzed):
    """The HTML report of an analyze run on stacks: the max-projection overlays and the volume distribution, whose
    values are the objects' volumes (um^3)."""
    from deepscope.report import write_report
    from deepscope.report.build import _figures
    from deepscope.report.data import load_results
    from deepscope.report.qc import flag_images

    out, vols = analyzed
    res = load_results(out)
    objects = pd.read_csv(out / "objects.csv")
    assert "volume" in res.objects and "area" not in res.objects
    np.testing.assert_allclose(np.sort(res.objects["volume"]), np.sort(objects["AreaShape_Volume_um3"]))
    assert res.images["count"].tolist() == [5, 7]
    assert all(str(o).endswith(".png") for o in res.images["overlay"])
    titles = [t for t, _, _ in _figures(res, flag_images(res.images))]
    assert "Volume distribution" in titles and "Size distribution" not in titles
    html = write_report(out).read_text()
    assert "Volume distribution" in html and html.count("data:image/jpeg") >= 2


def test_report_of_a_stack_segment_folder(stacks, tmp_path):
    from deepscope.report.build import _figures
    from deepscope.report.data import load_results
    from deepscope.report.qc import flag_images
    from deepscope.tasks.segment.volume_files import segment_stack_paths

    d, vols = stacks
    segment_stack_paths([d / "in"], tmp_path / "seg")
    res = load_results(tmp_path / "seg")
    lab = read_image(tmp_path / "seg" / "s0.labels.tif").data
    n = int(lab.max())
    got = np.sort(res.objects.loc[res.objects["name"] == "s0.tif", "volume"].to_numpy())
    want = np.sort(np.bincount(lab.ravel())[1:][np.bincount(lab.ravel())[1:] > 0] * np.prod(VS))
    assert len(got) == n == 5
    np.testing.assert_allclose(got, want)
    assert "Volume distribution" in [t for t, _, _ in _figures(res, flag_images(res.images))]
