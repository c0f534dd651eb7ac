"""Out-of-core segmentation of OME-Zarr images (deepscope.predict.large): the labels written tile by tile into
the store equal the in-memory tiled prediction, `segment` routes large stores there, and the lazy input
never loads the whole image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("ome_zarr")

from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import InputError  # noqa: E402
from deepscope.predict import files, large  # noqa: E402
from deepscope.predict.large import LazyInput, segment_ngff  # noqa: E402


def _zarr_image(path, data, axes="yx"):
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    root = zarr.group(store=parse_url(str(path), mode="w").store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_image(data, root, axes=axes)
    return path


def _labels(path, name):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    nodes = list(Reader(parse_url(str(path / "labels" / name)))())
    return np.asarray(next(n for n in nodes if n.load(Label)).data[0])


@pytest.fixture(scope="module")
def field():
    return generate_field(14, size=(240, 320), seed=3, stains=(1,))


@pytest.mark.parametrize("model, options", [("cells-bbbc005", {"tile": 256, "overlap": 48}),
                                            ("nuclei", {"tile": 160, "overlap": 24, "diameter": 20.0})])
def test_store_labels_equal_the_in_memory_tiled_prediction(tmp_path, field, model, options):
    from deepscope.predict.inputs import resolve_model

    img = field.images[(1, 1)]
    store = _zarr_image(tmp_path / "img.zarr", img)
    seen = []
    res = segment_ngff(store, model=model, progress=lambda done, total: seen.append((done, total)), **options)
    net = resolve_model(model, task="segment")
    expected = net.predict_image(img, **options)
    got = _labels(store, net.name)  # read back with ome-zarr's reader
    assert res.tiles >= 4 and seen[-1][0] == res.tiles  # really tiled, progress per tile
    assert np.array_equal(got, expected)
    assert res.count == int(expected.max()) and abs(res.count - field.labels(1).max()) <= 2


def test_generalist_estimates_one_diameter_for_every_tile(tmp_path, field):
    store = _zarr_image(tmp_path / "img.zarr", field.images[(1, 1)])
    res = segment_ngff(store, model="nuclei", tile=160, overlap=24)
    assert res.diameter_source == "estimated" and 8 < res.diameter < 60
    assert res.in_domain is not None and abs(res.count - field.labels(1).max()) <= 3


def test_a_small_tile_keeps_a_core_of_at_least_half_the_tile(tmp_path, field):
    """A tile smaller than the model's default (a 128 px tile with the default 64 px context) must not step a few
    pixels at a time: the context shrinks to a quarter of the tile, so the image takes a handful of tiles."""
    import math

    from deepscope.predict.inputs import resolve_model

    store = _zarr_image(tmp_path / "img.zarr", field.images[(1, 1)])
    res = segment_ngff(store, model="nuclei", tile=128, diameter=20.0)
    net = resolve_model("nuclei", task="segment")
    cfg = net.plugin.generalist_config(net, tile=128)
    tile_in = max(32, int(cfg.tile * 20.0 / cfg.target_diameter))
    step = tile_in - 2 * (tile_in // 4)
    assert 4 <= res.tiles <= math.ceil(240 / step) * math.ceil(320 / step)
    assert abs(res.count - field.labels(1).max()) <= 3


def test_segment_routes_large_stores_tile_by_tile_and_others_as_usual(tmp_path, field, monkeypatch):
    from deepscope.io import read_image, write_tiff

    folder = tmp_path / "in"
    folder.mkdir()
    _zarr_image(folder / "big.zarr", field.images[(1, 1)])
    write_tiff(folder / "small.tif", field.images[(1, 1)][:128, :160])
    monkeypatch.setattr(large, "OUT_OF_CORE_PIXELS", 240 * 320 - 1)
    res = files.segment_paths([folder / "big.zarr", folder / "small.tif"], tmp_path / "out",
                              model="cells-bbbc005", overlay=False, jobs=2)
    t = res.table.set_index(res.table["path"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert (t["error"] == "").all(), t["error"].tolist()
    assert t.loc["big.zarr", "labels"].endswith("big.zarr/labels/cells-bbbc005")
    assert not (tmp_path / "out" / "big.labels.tif").exists()  # no whole-image copy
    assert t.loc["big.zarr", "count"] == _labels(folder / "big.zarr", "cells-bbbc005").max() > 10
    assert read_image(tmp_path / "out" / "small.labels.tif").data.max() == t.loc["small.tif", "count"]


def test_lazy_input_reads_regions_only(tmp_path, field):
    import zarr

    from deepscope.models.spec import InputSpec

    img = field.images[(1, 1)]
    cyx = np.stack([img, np.zeros_like(img), img // 2])
    store = _zarr_image(tmp_path / "cyx.zarr", cyx, axes="cyx")
    from deepscope.io.ngff import open_ngff_level

    arr, meta = open_ngff_level(store)
    x = LazyInput(arr, meta.meta.axes, InputSpec(channels=1), channel=0, path=str(store))
    assert x.shape == (240, 320, 1)
    lo, hi = np.percentile(img.astype(np.float32), [1, 99.8])
    assert np.allclose(x[10:20, 30:50][..., 0], (img[10:20, 30:50] - lo) / (hi - lo + 1e-6), atol=1e-5)
    with pytest.raises(TypeError, match="whole 240 x 320 image"):
        np.asarray(x)
    with pytest.raises(InputError, match="choose one with --channel"):
        LazyInput(arr, meta.meta.axes, InputSpec(channels=1), path=str(store))
    z = zarr.open_array(str(tmp_path / "zyx.zarr"), mode="w", shape=(3, 30, 40), dtype="uint8")
    with pytest.raises(InputError, match="Z=3: segment one 2-D plane"):
        LazyInput(z, "ZYX", InputSpec(channels=1))
