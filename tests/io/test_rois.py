"""ImageJ ROI sets: label images to .rois.zip and back, exactly; `segment --rois`; calibrated label TIFFs."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

pytest.importorskip("roifile")

from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import InputError  # noqa: E402
from deepscope.io import read_image, read_rois, write_rois, write_tiff  # noqa: E402
from deepscope.io.rois import label_polygons  # noqa: E402


def test_synthetic_nuclei_round_trip_exactly(tmp_path):
    lab = generate_field(40, size=(260, 348), seed=7, stains=(1,)).nuclei
    p = write_rois(tmp_path / "a.rois.zip", lab)
    with zipfile.ZipFile(p) as zf:
        assert len(zf.namelist()) == len(np.unique(lab)) - 1
    back = read_rois(p, lab.shape)
    # touching nuclei, odd shapes: every pixel comes back with its id (holes aside; these have none)
    assert np.array_equal(back, lab)


def test_awkward_shapes_one_pixel_diagonal_and_border(tmp_path):
    lab = np.zeros((12, 14), np.int32)
    lab[0, 0] = 1                     # one pixel in the corner
    lab[3, 3] = lab[4, 4] = 2         # two pixels touching only at a corner: one object
    lab[6:12, 10:14] = 3              # touching the image border
    lab[2:5, 8:11] = 4
    lab[3, 9] = 5                     # an object inside another: drawn after it
    back = read_rois(write_rois(tmp_path / "b.zip", lab), lab.shape)
    assert np.array_equal(back, lab)
    polys = dict(label_polygons(lab))
    assert sorted(polys) == [1, 2, 3, 4, 5]
    # ImageJ coordinates: pixel (0, 0) spans x, y in [0, 1]
    assert polys[1][:, 0].min() >= 0 and polys[1][:, 0].max() <= 1


def test_roifile_reads_what_fiji_would(tmp_path):
    import roifile

    lab = np.zeros((20, 30), np.int32)
    lab[5:10, 10:20] = 7
    rois = roifile.roiread(write_rois(tmp_path / "c.zip", lab))
    assert len(rois) == 1 and rois[0].name == "000007"
    x, y = rois[0].coordinates().T
    assert (x.min(), x.max(), y.min(), y.max()) == pytest.approx((10, 20, 5, 10), abs=0.5)


def test_bad_roi_files_are_named(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="x.zip' is not an ImageJ ROI"):
        read_rois(bad, (4, 4))
    with pytest.raises(FileNotFoundError):
        read_rois(tmp_path / "missing.zip", (4, 4))
    with pytest.raises(InputError, match="2-D integer array"):
        write_rois(tmp_path / "f.zip", np.zeros((4, 4), np.float32))


def test_segment_writes_rois_and_calibrated_labels(tmp_path):
    from deepscope.models import list_models
    from deepscope.predict.files import segment_paths

    if "cells-bbbc005" not in [m.name for m in list_models()]:
        pytest.skip("needs the shipped cells-bbbc005")
    f = generate_field(8, size=(160, 200), seed=3, stains=(1,))
    write_tiff(tmp_path / "in" / "a.tif", f.images[(1, 1)], pixel_size=(0.65, 0.65))
    write_tiff(tmp_path / "in" / "b.tif", f.images[(1, 1)])  # no pixel size: none written
    res = segment_paths([tmp_path / "in"], tmp_path / "out", model="cells-bbbc005", rois=True, overlay=False)
    assert (res.table["error"] == "").all()
    labels = read_image(tmp_path / "out" / "a.labels.tif")
    assert labels.meta.pixel_size == pytest.approx((0.65, 0.65))
    assert read_image(tmp_path / "out" / "b.labels.tif").meta.pixel_size is None
    assert labels.data.max() >= 5
    assert np.array_equal(read_rois(tmp_path / "out" / "a.rois.zip", labels.data.shape), labels.data)
