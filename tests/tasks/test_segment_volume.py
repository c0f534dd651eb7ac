"""3D nuclei in z-stacks: the classical anisotropy-aware baseline and per-plane 2D labels stitched in 3D."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import generate_volume
from deepscope.errors import InputError
from deepscope.evaluate.segmentation import match_instances
from deepscope.tasks.segment.volume import segment_volume_classical, segment_volume_slices, stitch_planes


@pytest.mark.parametrize("z_step", [0.5, 2.0])
def test_classical_finds_synthetic_nuclei_at_any_anisotropy(z_step):
    v = generate_volume(10, shape=(int(12 / z_step), 64, 64), z_step=z_step, seed=11, touch=0.6)
    lab = segment_volume_classical(v.stack, voxel_size=v.voxel_size)
    assert lab.shape == v.stack.shape and lab.dtype == np.int32
    assert match_instances(v.labels, lab, thresholds=0.5).f1[0] >= 0.8


def test_voxel_size_matters():
    """The same stack read as cubic voxels (the z step ignored) is segmented worse than with its voxel size."""
    v = generate_volume(10, shape=(6, 64, 64), z_step=2.0, seed=12, touch=0.8)
    right = match_instances(v.labels, segment_volume_classical(v.stack, voxel_size=v.voxel_size), thresholds=0.5)
    wrong = match_instances(v.labels, segment_volume_classical(v.stack, voxel_size=(0.5, 0.5, 0.5)), thresholds=0.5)
    assert right.f1[0] >= wrong.f1[0]


def test_stitch_planes_joins_overlaps_and_splits_the_rest():
    p = np.zeros((4, 10, 10), np.int32)
    p[0, 1:5, 1:5] = 3
    p[1, 1:5, 2:6] = 8      # overlaps object 3 (IoU 12/20)
    p[1, 6:9, 6:9] = 4      # new
    p[2, 6:9, 6:9] = 1      # continues the new one
    p[3, 1:5, 1:5] = 2      # a gap plane before: a new object
    out = stitch_planes(p)
    assert out[0, 2, 2] == out[1, 2, 3]
    assert out[1, 7, 7] == out[2, 7, 7] != out[0, 2, 2]
    assert out[3, 2, 2] not in (out[0, 2, 2], out[1, 7, 7])
    assert len(np.unique(out)) - 1 == 3


def test_stitch_one_object_per_plane_continues_once():
    p = np.zeros((2, 8, 8), np.int32)
    p[0, 1:7, 1:7] = 1
    p[1, 1:7, 1:4] = 5
    p[1, 1:7, 4:7] = 6  # the object splits in two: only the best-overlapping label continues it
    out = stitch_planes(p, stitch_iou=0.3)
    assert len(np.unique(out[1])) - 1 == 2 and len(np.unique(out)) - 1 == 2


def test_slices_with_a_2d_segmenter():
    from scipy import ndimage as ndi

    v = generate_volume(6, shape=(8, 48, 48), z_step=1.0, seed=3, touch=0.0)

    def threshold(plane):
        return ndi.label(plane > np.percentile(plane, 80))[0]

    lab = segment_volume_slices(v.stack, threshold)
    assert lab.shape == v.stack.shape and lab.max() >= 1


@pytest.mark.parametrize("stack, kwargs, match", [
    (np.zeros((8, 8)), {}, r"\(Z, Y, X\)"),
    (np.zeros((1, 8, 8)), {}, "1 plane"),
    (np.zeros((3, 8, 8)), {"voxel_size": (0, 1, 1)}, "positive finite"),
    (np.random.default_rng(0).random((3, 16, 16)), {"diameter": -1.0}, "diameter"),
])
def test_bad_inputs(stack, kwargs, match):
    with pytest.raises(InputError, match=match):
        segment_volume_classical(stack, **kwargs)
