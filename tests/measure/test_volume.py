"""3D measurements against scikit-image's regionprops on 3D labels with anisotropic spacing."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import marching_cubes, mesh_surface_area, regionprops

from deepscope.data.synth import generate_volume
from deepscope.errors import InputError
from deepscope.measure import VOLUME_COLUMNS, measure_volume, summarize_volume

SPACING = (1.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def scene():
    v = generate_volume(8, shape=(10, 48, 48), z_step=SPACING[0], pixel_size=SPACING[1], seed=2, touch=0.7)
    labels = v.labels.copy()
    labels[labels == 2] = 40  # ids need not be consecutive
    dna = v.stack
    other = (v.stack.astype(np.float32) ** 0.5)
    return labels, dna, other, measure_volume(labels, {"DNA": dna, "Other": other}, voxel_size=SPACING)


def test_columns_and_order(scene):
    labels, _, _, df = scene
    assert list(df.columns[:len(VOLUME_COLUMNS)]) == list(VOLUME_COLUMNS)
    assert df["ObjectNumber"].tolist() == sorted(set(np.unique(labels)) - {0})
    assert "Intensity_MedianIntensity_Other" in df.columns and "Location_CenterMassIntensity_Z_DNA" in df.columns


def test_against_regionprops_with_spacing(scene):
    labels, dna, other, df = scene
    props = {p.label: p for p in regionprops(labels, intensity_image=dna, spacing=SPACING)}
    props_v = {p.label: p for p in regionprops(labels)}
    for row in df.to_dict("records"):
        p, pv = props[row["ObjectNumber"]], props_v[row["ObjectNumber"]]
        assert row["AreaShape_Volume"] == pv.area
        assert row["AreaShape_Volume_um3"] == pytest.approx(p.area)
        assert row["AreaShape_EquivalentDiameter_um"] == pytest.approx(p.equivalent_diameter_area)
        assert row["AreaShape_EquivalentDiameter"] == pytest.approx(pv.equivalent_diameter_area)
        assert row["AreaShape_MajorAxisLength_um"] == pytest.approx(p.axis_major_length, rel=1e-6)
        assert row["AreaShape_MinorAxisLength_um"] == pytest.approx(p.axis_minor_length, rel=1e-6, abs=1e-9)
        assert row["AreaShape_MajorAxisLength"] == pytest.approx(pv.axis_major_length, rel=1e-6)
        assert row["AreaShape_MinorAxisLength"] == pytest.approx(pv.axis_minor_length, rel=1e-6, abs=1e-9)
        zc, yc, xc = p.centroid
        assert (row["Location_Center_Z_um"], row["Location_Center_Y_um"], row["Location_Center_X_um"]) == \
            pytest.approx((zc, yc, xc))
        assert (row["Location_Center_Z"], row["Location_Center_Y"], row["Location_Center_X"]) == \
            pytest.approx(pv.centroid)
        z0, y0, x0, z1, y1, x1 = pv.bbox
        assert (row["AreaShape_BoundingBoxMinimum_Z"], row["AreaShape_BoundingBoxMinimum_Y"],
                row["AreaShape_BoundingBoxMinimum_X"], row["AreaShape_BoundingBoxMaximum_Z"],
                row["AreaShape_BoundingBoxMaximum_Y"], row["AreaShape_BoundingBoxMaximum_X"]) == (z0, y0, x0, z1, y1, x1)
        assert row["AreaShape_Extent"] == pytest.approx(pv.extent)
        assert row["Intensity_MeanIntensity_DNA"] == pytest.approx(p.intensity_mean)
        assert row["Intensity_MinIntensity_DNA"] == pytest.approx(p.intensity_min)
        assert row["Intensity_MaxIntensity_DNA"] == pytest.approx(p.intensity_max)
        assert row["Intensity_StdIntensity_DNA"] == pytest.approx(p.intensity_std, rel=1e-6)
        vals = dna[labels == row["ObjectNumber"]].astype(float)
        assert row["Intensity_MedianIntensity_DNA"] == pytest.approx(np.median(vals))
        assert row["Intensity_IntegratedIntensity_DNA"] == pytest.approx(vals.sum())
        assert (row["Location_CenterMassIntensity_Z_DNA"], row["Location_CenterMassIntensity_Y_DNA"],
                row["Location_CenterMassIntensity_X_DNA"]) == pytest.approx(props_v[row["ObjectNumber"]].centroid,
                                                                            abs=0.5)
        mask = np.pad(labels == row["ObjectNumber"], 1).astype(np.float32)
        verts, faces, _, _ = marching_cubes(mask, 0.5, spacing=SPACING)
        assert row["AreaShape_SurfaceArea_um2"] == pytest.approx(mesh_surface_area(verts, faces))


def test_sphere_surface_and_sphericity():
    r = 12.0
    z, y, x = np.mgrid[-16:17, -16:17, -16:17]
    ball = (z ** 2 + y ** 2 + x ** 2 <= r * r).astype(np.int32)
    row = measure_volume(ball, voxel_size=(0.5, 0.5, 0.5)).iloc[0]
    # a mesh of the binary mask (as CellProfiler) is ~7% over the smooth sphere
    assert row["AreaShape_SurfaceArea_um2"] == pytest.approx(4 * np.pi * (r * 0.5) ** 2, rel=0.1)
    assert row["AreaShape_Sphericity"] == pytest.approx(1.0, abs=0.1)
    assert row["AreaShape_MajorAxisLength_um"] == pytest.approx(row["AreaShape_MinorAxisLength_um"], rel=0.02)
    assert row["AreaShape_EquivalentDiameter_um"] == pytest.approx(2 * r * 0.5, rel=0.03)


def test_anisotropic_sampling_gives_the_same_physical_ellipsoid():
    """One ellipsoid (semi-axes 4, 3, 2 um) sampled at (0.5 um)^3 and at (2, 0.5, 0.5) um: same um figures."""
    def ellipsoid(dz):
        zc = np.arange(-6, 6, dz) + dz / 2
        yc = np.arange(-6, 6, 0.5) + 0.25
        z, y, x = np.meshgrid(zc, yc, yc, indexing="ij")
        return ((z / 4) ** 2 + (y / 3) ** 2 + (x / 2) ** 2 <= 1).astype(np.int32)

    iso = measure_volume(ellipsoid(0.5), voxel_size=(0.5, 0.5, 0.5)).iloc[0]
    aniso = measure_volume(ellipsoid(2.0), voxel_size=(2.0, 0.5, 0.5)).iloc[0]
    true_vol = 4 / 3 * np.pi * 4 * 3 * 2
    assert iso["AreaShape_Volume_um3"] == pytest.approx(true_vol, rel=0.03)
    assert aniso["AreaShape_Volume_um3"] == pytest.approx(true_vol, rel=0.1)
    assert iso["AreaShape_MajorAxisLength_um"] == pytest.approx(8.0, rel=0.05)
    assert iso["AreaShape_IntermediateAxisLength_um"] == pytest.approx(6.0, rel=0.05)
    assert iso["AreaShape_MinorAxisLength_um"] == pytest.approx(4.0, rel=0.05)
    assert aniso["AreaShape_MinorAxisLength_um"] == pytest.approx(4.0, rel=0.1)


def test_empty_and_summary():
    empty = measure_volume(np.zeros((3, 8, 8), np.int32), {"DNA": np.zeros((3, 8, 8))})
    assert len(empty) == 0 and "Intensity_MeanIntensity_DNA" in empty.columns
    assert summarize_volume(empty)["Count_Nuclei"] == 0
    lab = np.zeros((4, 8, 8), np.int32)
    lab[1:3, 1:4, 1:4] = 1
    lab[1:3, 5:8, 5:8] = 2
    s = summarize_volume(measure_volume(lab, voxel_size=(2, 1, 1)))
    assert s["Count_Nuclei"] == 2 and s["Total_Nuclei_AreaShape_Volume_um3"] == pytest.approx(72.0)


@pytest.mark.parametrize("labels, kwargs, match", [
    (np.zeros((8, 8), np.int32), {}, "3-D label image"),
    (np.zeros((3, 8, 8), np.int32), {"voxel_size": (0, 1, 1)}, "positive finite"),
    (np.zeros((3, 8, 8), np.int32), {"voxel_size": (1, float("nan"), 1)}, "positive finite"),
    (np.zeros((3, 8, 8), np.int32), {"intensities": np.zeros((3, 8, 9))}, "has shape"),
    (np.zeros((3, 8, 8), np.int32), {"intensities": {"bad name": np.zeros((3, 8, 8))}}, "not a valid name"),
])
def test_bad_inputs(labels, kwargs, match):
    with pytest.raises(InputError, match=match):
        measure_volume(labels, **kwargs)
