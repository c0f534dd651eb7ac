from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from deepscope.errors import InputError
from deepscope.measure import SHAPE_COLUMNS, intensity_columns, measure_objects, summarize_image


def _blobs(shape=(160, 200), n=50, radius=8, seed=0, id_step=3):
    """Seeded touching irregular objects with ragged borders and holes, non-consecutive ids."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, np.int64)
    pts = rng.integers(0, shape, size=(n, 2))
    seeds[pts[:, 0], pts[:, 1]] = np.arange(1, n + 1)
    dist, (ii, jj) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    lab = seeds[ii, jj]
    lab[dist > radius + rng.random(shape) * 3] = 0
    lab[rng.random(shape) < 0.04] = 0
    return np.where(lab > 0, lab * id_step + 5, 0).astype(np.int32)


def _regionprops_table(lab, img=None):
    rows = {}
    for rp in regionprops(lab, intensity_image=img):
        r = {"AreaShape_Area": rp.area, "AreaShape_Perimeter": rp.perimeter,
             "AreaShape_Eccentricity": rp.eccentricity, "AreaShape_Solidity": rp.solidity,
             "AreaShape_Extent": rp.extent, "AreaShape_MajorAxisLength": rp.axis_major_length,
             "AreaShape_MinorAxisLength": rp.axis_minor_length,
             "AreaShape_Orientation": np.degrees(rp.orientation),
             "AreaShape_EquivalentDiameter": rp.equivalent_diameter_area,
             "AreaShape_BoundingBoxMinimum_Y": rp.bbox[0], "AreaShape_BoundingBoxMinimum_X": rp.bbox[1],
             "AreaShape_BoundingBoxMaximum_Y": rp.bbox[2], "AreaShape_BoundingBoxMaximum_X": rp.bbox[3],
             "Location_Center_Y": rp.centroid[0], "Location_Center_X": rp.centroid[1]}
        if img is not None:
            vals = rp.image_intensity[rp.image].astype(np.float64)
            r.update({"Intensity_MeanIntensity_I": vals.mean(), "Intensity_IntegratedIntensity_I": vals.sum(),
                      "Intensity_MinIntensity_I": vals.min(), "Intensity_MaxIntensity_I": vals.max(),
                      "Intensity_StdIntensity_I": vals.std(), "Intensity_MedianIntensity_I": np.median(vals),
                      "Location_CenterMassIntensity_Y_I": rp.centroid_weighted[0],
                      "Location_CenterMassIntensity_X_I": rp.centroid_weighted[1]})
        rows[rp.label] = r
    return rows


def _assert_agrees(lab, img=None):
    df = measure_objects(lab, None if img is None else {"I": img}).set_index("ObjectNumber")
    ref = _regionprops_table(lab, img)
    assert sorted(ref) == df.index.tolist()
    for label, r in ref.items():
        for col, expected in r.items():
            got = df.loc[label, col]
            if col == "AreaShape_Orientation" and abs(abs(expected) - 90) < 1e-9:
                got, expected = abs(got), abs(expected)  # +-90 degrees is the same axis
            assert got == pytest.approx(expected, rel=1e-6, abs=1e-6), (label, col)
    return df


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_regionprops_on_seeded_objects(seed):
    lab = _blobs(seed=seed)
    rng = np.random.default_rng(seed)
    dtype = [np.float32, np.uint16, np.float64, np.uint8][seed]
    img = (rng.random(lab.shape) * 1000).astype(dtype)
    df = _assert_agrees(lab, img)
    assert len(df) > 30


def test_agrees_with_regionprops_on_real_nuclei(samples_dir):
    import tifffile

    lab = tifffile.imread(samples_dir / "mask2d.tif")
    img = tifffile.imread(samples_dir / "img2d.tif")
    df = _assert_agrees(lab, img)
    assert len(df) == 125 and df.index.max() > 125  # real ids are not consecutive


def test_agrees_with_regionprops_on_dsb_labels(dsb_dir):
    from deepscope.io import read_image

    files = sorted((dsb_dir / "labels").glob("*.png"))[:6]
    for f in files:
        lab = read_image(f).data.astype(np.int32)
        img = read_image(dsb_dir / "images" / f.name).data
        img = img if img.ndim == 2 else img[..., 0]
        _assert_agrees(lab, img)


def test_cellprofiler_conventions():
    lab = np.zeros((20, 30), np.int32)
    lab[2:6, 3:13] = 7  # 4 rows x 10 columns, horizontal
    df = measure_objects(lab)
    row = df.iloc[0]
    assert row["ObjectNumber"] == 7 and row["AreaShape_Area"] == 40
    assert (row["Location_Center_X"], row["Location_Center_Y"]) == (7.5, 3.5)  # X = column, Y = row
    assert (row["AreaShape_BoundingBoxMinimum_X"], row["AreaShape_BoundingBoxMaximum_X"]) == (3, 13)
    assert (row["AreaShape_BoundingBoxMinimum_Y"], row["AreaShape_BoundingBoxMaximum_Y"]) == (2, 6)
    assert row["AreaShape_BoundingBoxArea"] == 40 and row["AreaShape_Extent"] == 1.0
    assert abs(row["AreaShape_Orientation"]) == pytest.approx(90.0)  # major axis along the columns
    p, a = row["AreaShape_Perimeter"], row["AreaShape_Area"]
    assert row["AreaShape_FormFactor"] == pytest.approx(4 * np.pi * a / p ** 2)
    assert row["AreaShape_Compactness"] == pytest.approx(p ** 2 / (4 * np.pi * a))
    assert row["AreaShape_EquivalentDiameter"] == pytest.approx(np.sqrt(4 * a / np.pi))
    assert list(df.columns) == list(SHAPE_COLUMNS)


def test_single_pixel_and_line_objects():
    lab = np.zeros((10, 10), np.int32)
    lab[1, 1] = 1
    lab[5, 2:9] = 2
    df = _assert_agrees(lab)
    assert np.isnan(df.loc[1, "AreaShape_FormFactor"])  # zero perimeter
    assert df.loc[1, "AreaShape_Solidity"] == 1.0 and df.loc[2, "AreaShape_Eccentricity"] == 1.0


def test_empty_labels_give_typed_empty_table():
    df = measure_objects(np.zeros((8, 8), np.int32), {"DNA": np.ones((8, 8))}, pixel_size=0.5)
    assert len(df) == 0
    assert df.dtypes["ObjectNumber"] == np.int64 and df.dtypes["AreaShape_Area"] == np.int64
    assert df.dtypes["Intensity_MeanIntensity_DNA"] == np.float64
    full = measure_objects(np.ones((8, 8), np.int32), {"DNA": np.ones((8, 8))}, pixel_size=0.5)
    assert list(df.columns) == list(full.columns)
    assert (df.dtypes == full.dtypes).all()


def test_channels_naming_and_values():
    lab = np.zeros((6, 6), np.int32)
    lab[1:3, 1:3] = 4
    stack = np.stack([np.full((6, 6), 2.0), np.arange(36.0).reshape(6, 6)], axis=-1)
    df = measure_objects(lab, stack)
    assert "Intensity_MeanIntensity_C0" in df and "Intensity_MeanIntensity_C1" in df
    assert df["Intensity_IntegratedIntensity_C0"].iloc[0] == 8.0
    assert df["Intensity_MedianIntensity_C1"].iloc[0] == np.median([7, 8, 13, 14])
    one = measure_objects(lab, stack[..., 1])
    assert set(intensity_columns("Image")) <= set(one.columns)
    assert one["Intensity_MaxIntensity_Image"].iloc[0] == 14.0
    neg = measure_objects(lab, -stack[..., 1].astype(np.float32))  # negative float32 keeps its order
    assert neg["Intensity_MinIntensity_Image"].iloc[0] == -14.0
    assert neg["Intensity_MedianIntensity_Image"].iloc[0] == -10.5
    boolean = measure_objects(lab, lab > 0)
    assert boolean["Intensity_MeanIntensity_Image"].iloc[0] == 1.0


def test_pixel_size_adds_physical_columns_and_attrs():
    lab = _blobs(seed=5)
    px = measure_objects(lab, object_name="Cells")
    um = measure_objects(lab, object_name="Cells", pixel_size=(0.65, 0.65))
    assert um.attrs["object_name"] == "Cells"
    np.testing.assert_allclose(um["AreaShape_Area_um2"], px["AreaShape_Area"] * 0.65 ** 2)
    np.testing.assert_allclose(um["AreaShape_Perimeter_um"], px["AreaShape_Perimeter"] * 0.65)
    np.testing.assert_allclose(um["Location_Center_X_um"], px["Location_Center_X"] * 0.65)
    np.testing.assert_array_equal(um["AreaShape_Area"], px["AreaShape_Area"])  # CellProfiler columns in pixels


def test_summarize_image():
    lab = np.zeros((10, 10), np.int32)
    lab[:2, :5] = 40
    lab[5:9, 5:9] = 2
    lab[9, 0] = 1000
    s = summarize_image(lab)
    assert s["Count_Nuclei"] == 3
    assert s["Mean_Nuclei_AreaShape_Area"] == pytest.approx(27 / 3)
    assert s["Median_Nuclei_AreaShape_Area"] == 10.0
    assert s["AreaOccupied_AreaOccupied_Nuclei"] == 27 and s["AreaOccupied_TotalArea_Nuclei"] == 100
    assert s["Confluence_Nuclei"] == 0.27
    e = summarize_image(np.zeros((4, 4), np.int32), object_name="Cells")
    assert e["Count_Cells"] == 0 and np.isnan(e["Mean_Cells_AreaShape_Area"]) and e["Confluence_Cells"] == 0.0


def test_errors():
    lab = np.zeros((8, 8), np.int32)
    with pytest.raises(InputError, match=r"labels has shape \(2, 8, 8\); measure_objects handles 2-D"):
        measure_objects(np.zeros((2, 8, 8), np.int32))
    with pytest.raises(InputError, match=r"intensity image 'DNA' has shape \(8, 9\) but labels has shape \(8, 8\)"):
        measure_objects(lab, {"DNA": np.zeros((8, 9))})
    with pytest.raises(InputError, match="intensity image 'Image' has shape"):
        measure_objects(lab, np.zeros((4, 4)))
    with pytest.raises(InputError, match="channel name 'my dna' is not a valid name"):
        measure_objects(lab, {"my dna": np.zeros((8, 8))})
    with pytest.raises(InputError, match="expected a real numeric image"):
        measure_objects(lab, {"S": np.full((8, 8), "a")})
    with pytest.raises(InputError, match="is anisotropic"):
        measure_objects(lab, pixel_size=(0.5, 1.0))
    with pytest.raises(InputError, match="pixel_size must be a positive number"):
        measure_objects(lab, pixel_size=-1)
    with pytest.raises(InputError, match="object_name 'Nuclei-1' is not a valid name"):
        summarize_image(lab, object_name="Nuclei-1")
    with pytest.raises(InputError, match="negative values"):
        measure_objects(lab - 1)
