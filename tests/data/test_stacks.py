"""Z-stacks: as_stack (axes, channel, voxel size, the bad inputs) and project (max, mean, edf)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from deepscope.data.stacks import PROJECTIONS, as_stack, check_voxel_size, focus_measure, project
from deepscope.data.synth import generate_volume
from deepscope.errors import InputError
from deepscope.io import read_image


def test_max_and_mean():
    s = np.zeros((3, 8, 8), np.uint16)
    s[1, 2:5, 2:5] = 90
    s[2, 2:5, 2:5] = 30
    assert project(s, method="max").dtype == np.uint16
    assert int(project(s, method="max").max()) == 90
    assert project(s, method="mean").dtype == np.float32
    assert float(project(s, method="mean").max()) == pytest.approx(40.0)


def test_edf_picks_the_plane_in_focus_without_seams():
    """Two halves in focus on different planes: EDF takes each half from its sharp plane; the seam is smooth."""
    rng = np.random.default_rng(0)
    sharp = rng.random((64, 64)).astype(np.float32) * 100
    from scipy import ndimage as ndi

    blurred = ndi.gaussian_filter(sharp, 3)
    s = np.stack([blurred.copy(), blurred.copy()])
    s[0, :, :32] = sharp[:, :32]
    s[1, :, 32:] = sharp[:, 32:]
    out = project(s, method="edf")
    assert np.abs(out[:, 4:28] - sharp[:, 4:28]).mean() < 2.0
    assert np.abs(out[:, 36:60] - sharp[:, 36:60]).mean() < 2.0
    assert focus_measure(s).shape == s.shape


def test_edf_beats_max_on_a_widefield_synthetic_stack():
    v = generate_volume(12, shape=(12, 64, 64), z_step=1.0, haze=0.6, seed=5)
    t = v.all_in_focus

    def err(p):
        return float(np.mean((p.astype(np.float32) - t) ** 2))

    assert err(project(v.stack, method="edf")) < err(project(v.stack, method="max"))


def test_as_stack_reads_axes_channel_and_voxel_size(tmp_path):
    v = generate_volume(3, shape=(6, 32, 32), z_step=2.0, seed=0)
    p = tmp_path / "hyper.tif"
    tifffile.imwrite(p, np.stack([v.stack, v.stack // 2], 1), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZCYX", "spacing": 2.0, "unit": "um"})
    img = read_image(p)
    stack, vs = as_stack(img, channel=1)
    assert stack.shape == (6, 32, 32) and vs == (2.0, 0.5, 0.5)
    assert np.array_equal(stack, v.stack // 2)
    _, vs2 = as_stack(img, channel=0, voxel_size=(1.0, 0.25, 0.25))
    assert vs2 == (1.0, 0.25, 0.25)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, v.stack)
    stack, vs = as_stack(read_image(plain), axes="ZYX")
    assert stack.shape == (6, 32, 32) and vs is None
    yxz, _ = as_stack(np.moveaxis(v.stack, 0, -1), axes="YXZ")
    assert np.array_equal(yxz, v.stack)


@pytest.mark.parametrize("data, kwargs, match", [
    (np.zeros((1, 8, 8)), {"axes": "ZYX"}, "1 plane along Z"),
    (np.zeros((8, 8)), {"axes": "YX"}, "single 2-D plane"),
    (np.zeros((4, 2, 8, 8)), {"axes": "ZCYX"}, "2 channels.*--channel"),
    (np.zeros((3, 4, 2, 8, 8)), {"axes": "TZCYX", "channel": 0}, "time series of 3 frames.*--frame"),
    (np.zeros((3, 4, 8, 8)), {"axes": "TZYX", "frame": 3}, r"frame=3 but the file has 3 frame\(s\)"),
    (np.zeros((4, 8, 8)), {"axes": "ZYX", "frame": 1}, "not a time series"),
    (np.zeros((8, 8)), {"axes": "ZYX"}, "single plane along Z .*a Z of 1"),
    (np.zeros((4, 8, 8)), {"axes": "ZYX", "voxel_size": (0, 0.5, 0.5)}, "positive finite"),
    (np.zeros((4, 8, 8)), {"axes": "ZYX", "voxel_size": (float("nan"), 0.5, 0.5)}, "positive finite"),
    (np.zeros((4, 8, 8)), {"axes": "ZY"}, "do not match"),
    (np.zeros((4, 8, 8)), {}, "needs its axes"),
])
def test_as_stack_bad_inputs(data, kwargs, match):
    with pytest.raises(InputError, match=match):
        as_stack(data, **kwargs)


def test_plain_multipage_tiff_needs_axes(tmp_path):
    p = tmp_path / "pages.tif"
    tifffile.imwrite(p, np.zeros((4, 16, 16), np.uint8))
    with pytest.raises(InputError, match="--axes ZYX"):
        as_stack(read_image(p))


@pytest.mark.parametrize("stack, kwargs, match", [
    (np.zeros((4, 8, 8)), {"method": "median"}, "max, mean, edf"),
    (np.zeros((1, 8, 8)), {}, "at least 2"),
    (np.zeros((8, 8)), {}, r"\(Z, Y, X\)"),
    (np.full((3, 8, 8), np.nan), {"method": "edf"}, "NaN"),
])
def test_project_bad_inputs(stack, kwargs, match):
    with pytest.raises(InputError, match=match):
        project(stack, **kwargs)


def test_check_voxel_size():
    assert check_voxel_size([2, 0.5, 0.5]) == (2.0, 0.5, 0.5)
    with pytest.raises(InputError, match="three"):
        check_voxel_size((1, 2))
    assert PROJECTIONS == ("max", "mean", "edf")


@pytest.mark.parametrize("name", ["deepscope.data.stacks", "deepscope.data.synth.volume", "deepscope.measure.volume",
                                  "deepscope.tasks.segment.volume"])
def test_examples_run(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_as_stack_frame_chooses_the_time_point():
    data = np.stack([np.full((3, 4, 4), t, np.uint8) for t in range(3)])
    stack, _ = as_stack(data, axes="TZYX", frame=2)
    assert stack.shape == (3, 4, 4) and int(stack.max()) == 2


def test_label_volume_keeps_its_voxel_size(tmp_path):
    from deepscope.io import write_labels

    lab = np.zeros((5, 12, 10), np.int32)
    lab[1:4, 2:6, 3:7] = 7
    p = write_labels(tmp_path / "l.labels.tif", lab, voxel_size=(2.5, 0.5, 0.4))
    img = read_image(p)
    assert img.axes == "ZYX" and img.dtype == np.int32 and np.array_equal(img.data, lab)
    assert img.meta.z_step == pytest.approx(2.5) and img.meta.pixel_size == pytest.approx((0.5, 0.4))
    stack, vs = as_stack(img)
    assert vs == pytest.approx((2.5, 0.5, 0.4))
    with pytest.raises(InputError, match="voxel_size is for"):
        write_labels(tmp_path / "x.tif", lab[0], voxel_size=(1, 1, 1))
