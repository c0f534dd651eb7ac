from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.errors import InputError
from deepscope.predict.engine import pad_to_multiple, tile_grid, to_numpy, to_tensor
from deepscope.predict.predictor import run_network
from deepscope.predict.instances import PostprocessConfig, instance_targets, instances_from_maps


def test_layout_roundtrip():
    x = np.random.default_rng(0).random((2, 5, 7, 3)).astype(np.float32)
    t = to_tensor(x)
    assert t.shape == (2, 3, 5, 7)
    np.testing.assert_array_equal(to_numpy(t), x)
    with pytest.raises(InputError, match="expected \\(N, H, W, C\\)"):
        to_tensor(np.zeros((2, 3)))


def test_pad_to_multiple():
    x = np.ones((10, 13, 1))
    p, hw = pad_to_multiple(x, 8)
    assert p.shape == (16, 16, 1) and hw == (10, 13)


@pytest.mark.parametrize("shape,tile,overlap", [((100, 130), 48, 8), ((64, 64), 64, 0), ((7, 300), 50, 10)])
def test_tile_cores_partition_the_image(shape, tile, overlap):
    cover = np.zeros(shape, int)
    for t in tile_grid(shape, tile, overlap):
        cover[t.core] += 1
        assert t.read[0].start <= t.core[0].start and t.read[1].stop >= t.core[1].stop
        assert t.read[0].stop - t.read[0].start <= tile and t.read[1].stop - t.read[1].start <= tile
    assert (cover == 1).all()
    with pytest.raises(InputError, match="must be larger than 2 \\* overlap"):
        tile_grid(shape, 20, 10)


def test_tta_is_exact_for_an_equivariant_net():
    class Blur(nn.Module):
        def forward(self, x):
            return nn.functional.avg_pool2d(x, 3, 1, 1)

    img = np.random.default_rng(0).random((20, 24, 1)).astype(np.float32)
    a = run_network(Blur(), [img], stride=1, tta="none")[0]
    b = run_network(Blur(), [img], stride=1, tta="d8")[0]
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(InputError, match="tta='all' is not one of"):
        run_network(Blur(), [img], tta="all")


def test_run_network_mixed_sizes_keep_order():
    class Ident(nn.Module):
        def forward(self, x):
            return x * 2

    imgs = [np.full((8, 8, 1), 1, np.float32), np.full((5, 9, 1), 2, np.float32), np.full((8, 8, 1), 3, np.float32)]
    outs = run_network(Ident(), imgs, stride=4)
    assert [o.shape for o in outs] == [(1, 8, 8), (1, 5, 9), (1, 8, 8)]
    assert [float(o.max()) for o in outs] == [2, 4, 6]


def test_watershed_separates_touching_objects():
    lab = np.zeros((40, 60), np.int32)
    yy, xx = np.mgrid[:40, :60]
    lab[(yy - 20) ** 2 + (xx - 20) ** 2 <= 100] = 1
    lab[((yy - 20) ** 2 + (xx - 37) ** 2 <= 100) & (lab == 0)] = 2  # touches object 1
    fg, dist = instance_targets(lab)
    assert dist.max() == pytest.approx(1.0) and (dist[lab == 0] == 0).all()
    pred = instances_from_maps(fg, dist, PostprocessConfig())
    assert pred.max() == 2
    comps = instances_from_maps(fg, dist, PostprocessConfig(mode="components"))
    assert comps.max() == 1  # plain components merge them: the book's limitation
    assert instances_from_maps(np.zeros((8, 8)), np.zeros((8, 8))).max() == 0
