"""The 3D synthetic generator: exact labels, anisotropic voxels, touching nuclei, determinism, the focus truth."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import SynthVolume, generate_volume
from deepscope.errors import InputError


@pytest.fixture(scope="module")
def vol() -> SynthVolume:
    return generate_volume(10, shape=(10, 48, 48), z_step=1.5, seed=3, touch=0.8)


def test_shapes_types_and_voxel_size(vol):
    assert vol.stack.shape == vol.labels.shape == (10, 48, 48)
    assert vol.stack.dtype == np.uint16 and vol.labels.dtype == np.int32
    assert vol.voxel_size == (1.5, 0.5, 0.5)
    assert vol.all_in_focus.shape == vol.focus.shape == (48, 48)
    assert vol.count == len(vol.centres) >= 6


def test_labels_are_the_ellipsoids_at_voxel_centres(vol):
    """Each label holds the voxel centres inside its ellipsoid (nearest normalised distance where two overlap)."""
    zc = (np.arange(10) + 0.5) * 1.5
    yc = (np.arange(48) + 0.5) * 0.5
    z, y, x = np.meshgrid(zc, yc, yc, indexing="ij")
    lab = vol.labels
    for i, (c, ax) in enumerate(zip(vol.centres, vol.semi_axes), start=1):
        inside = lab == i
        assert inside.any()
        dz = np.abs(z[inside] - c[0]) / ax[0]
        r = np.hypot(y[inside] - c[1], x[inside] - c[2]) / ax[1:].max()  # a bound: the ellipse is rotated
        assert np.all(dz <= 1 + 1e-6) and np.all(np.hypot(dz, r) <= 1 + 1e-6)


def test_touching_nuclei_and_anisotropy():
    v = generate_volume(12, shape=(8, 64, 64), z_step=2.0, seed=1, touch=1.0)
    assert v.touching >= 2
    # a nucleus spans fewer planes than pixels across: anisotropic sampling of a (flattened) ellipsoid
    zs = [np.ptp(np.nonzero(v.labels == i)[0]) + 1 for i in range(1, v.count + 1)]
    xs = [np.ptp(np.nonzero(v.labels == i)[2]) + 1 for i in range(1, v.count + 1)]
    assert np.median(zs) * 3 < np.median(xs)


def test_deterministic_for_a_seed():
    a = generate_volume(5, shape=(6, 32, 32), seed=7)
    b = generate_volume(5, shape=(6, 32, 32), seed=7)
    c = generate_volume(5, shape=(6, 32, 32), seed=8)
    assert np.array_equal(a.stack, b.stack) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.stack, c.stack)


def test_depth_attenuation_and_axial_blur():
    v = generate_volume(6, shape=(12, 48, 48), z_step=1.0, seed=2, noise=False, attenuation=0.5)
    # noise-free: the all-in-focus truth is the stack at each pixel's focus plane
    picked = np.take_along_axis(v.stack.astype(np.float32), v.focus[None], 0)[0]
    assert np.abs(picked - v.all_in_focus).max() <= 0.5 + 1e-3
    # the same flat object deeper is dimmer
    flat = generate_volume(0, shape=(12, 32, 32), z_step=1.0, seed=0, noise=False, attenuation=0.5)
    assert flat.stack[0].mean() > flat.stack[-1].mean()


def test_noise_is_shot_and_read():
    quiet = generate_volume(6, shape=(8, 32, 32), seed=4, noise=False)
    noisy = generate_volume(6, shape=(8, 32, 32), seed=4, photons=300, read_noise=3.0)
    diff = noisy.stack.astype(float) - quiet.stack.astype(float)
    assert 2.0 < diff.std() < 30.0


@pytest.mark.parametrize("kwargs, match", [
    ({"shape": (2, 32, 32)}, "too small"),
    ({"z_step": 0.0}, "z_step"),
    ({"pixel_size": float("nan")}, "pixel_size"),
    ({"attenuation": 1.0}, "attenuation"),
    ({"haze": -0.1}, "haze"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        generate_volume(3, seed=0, **kwargs)
