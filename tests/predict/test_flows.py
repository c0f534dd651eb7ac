"""Flow-field representation: labels -> flows -> labels reproduces the instances."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import ellipse

from deepscope.errors import ConfigError
from deepscope.evaluate import match_instances
from deepscope.tasks.segment.flows import (FlowPostprocessConfig, diameter_map, flows_to_instances, follow_flows,
                                     masks_to_flows, object_diameters)


def ellipses(seed: int, shape=(200, 260), n=30) -> np.ndarray:
    """Seeded touching and non-convex-ish objects (ellipses drawn over each other)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        r, c = rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10)
        rr, cc = ellipse(r, c, rng.integers(4, 12), rng.integers(6, 18), shape=shape, rotation=rng.uniform(0, 3))
        lab[rr, cc] = k
    # keep the largest piece of each id (overdrawing can split one)
    from scipy import ndimage as ndi

    out = np.zeros_like(lab)
    for i in range(1, n + 1):
        comp, nc = ndi.label(lab == i)
        if nc:
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            out[comp == int(np.argmax(sizes))] = i
    return out


def test_flows_are_unit_inside_objects_and_zero_outside():
    lab = ellipses(0)
    f = masks_to_flows(lab)
    norm = np.sqrt((f ** 2).sum(0))
    inside = lab > 0
    flat = inside & (np.abs(norm - 1.0) > 1e-4)
    # only an object's heat source (its centre, where the gradient vanishes by symmetry) may have no flow
    assert np.all(norm[flat] == 0)
    assert np.bincount(lab[flat], minlength=lab.max() + 1).max() <= 1
    assert np.all(norm[~inside] == 0)


def test_flows_point_to_the_centre_of_a_disc():
    yy, xx = np.mgrid[0:41, 0:41]
    lab = (((yy - 20) ** 2 + (xx - 20) ** 2) <= 15 ** 2).astype(np.int32)
    f = masks_to_flows(lab)
    # pixels away from the centre point towards it
    r, c = 20 - 10, 20
    assert f[0, r, c] > 0.9  # above the centre: flow points down
    r, c = 20, 20 + 10
    assert f[1, r, c] < -0.9  # right of the centre: flow points left


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_reproduces_seeded_instances(seed):
    lab = ellipses(seed)
    out = flows_to_instances((lab > 0).astype(np.float32), masks_to_flows(lab), FlowPostprocessConfig(min_size=1))
    r = match_instances(lab, out)
    assert r.n_true == r.n_pred
    assert r.f1[0] == 1.0 and r.mean_ap > 0.99


def test_round_trip_on_real_nuclei(shared_data):
    from PIL import Image

    files = sorted((shared_data / "dsb2018" / "labels").glob("*.png"))[:4]
    files += sorted((shared_data / "dsb2018_other" / "labels").glob("*.png"))[:2]
    for f in files:
        lab = np.array(Image.open(f)).astype(np.int32)
        out = flows_to_instances((lab > 0).astype(np.float32), masks_to_flows(lab), FlowPostprocessConfig(min_size=1))
        r = match_instances(lab, out)
        assert r.f1[0] == 1.0 and r.mean_ap > 0.98, f.name


def test_labels_at_a_finer_output_resolution():
    """Flows of a half-size image followed from the pixels of the full-size one give full-size instances."""
    lab = ellipses(3, shape=(240, 240), n=20)
    small = lab[::2, ::2]
    prob_big = (lab > 0).astype(np.float32)
    out = flows_to_instances((small > 0).astype(np.float32), masks_to_flows(small), FlowPostprocessConfig(min_size=1),
                             out_prob=prob_big)
    assert out.shape == lab.shape
    r = match_instances(lab, out)
    assert r.f1[0] > 0.95


def test_follow_flows_from_given_start_points():
    lab = np.zeros((30, 30), np.int32)
    lab[5:25, 5:25] = 1
    f = masks_to_flows(lab)
    pos = follow_flows(f, start=np.array([[6.0, 6.0], [23.5, 23.0]], np.float32), niter=50)
    assert np.all(np.abs(pos - 14.5) < 2.5)  # both end near the centre


def test_diameters():
    lab = np.zeros((20, 20), np.int32)
    lab[:10, :10] = 3
    d = object_diameters(lab)
    assert d == pytest.approx({3: 2 * np.sqrt(100 / np.pi)})
    assert diameter_map(lab)[0, 0] == pytest.approx(d[3])
    assert diameter_map(lab)[15, 15] == 0


def test_empty_and_bad_config():
    assert masks_to_flows(np.zeros((5, 5), np.int32)).shape == (2, 5, 5)
    assert flows_to_instances(np.zeros((5, 5)), np.zeros((2, 5, 5))).max() == 0
    with pytest.raises(ConfigError, match="prob_threshold must be in"):
        FlowPostprocessConfig(prob_threshold=1.5)
    with pytest.raises(ConfigError, match="niter must be"):
        FlowPostprocessConfig(niter=0)
    with pytest.raises(ConfigError, match="unknown flow post-processing keys"):
        FlowPostprocessConfig.from_dict({"seed_threshold": 0.5})
    with pytest.raises(ConfigError, match="2-D label image"):
        masks_to_flows(np.zeros((2, 3, 4), np.int32))
