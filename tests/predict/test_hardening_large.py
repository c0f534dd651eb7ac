"""Issue 30, finding 2: the tiled OME-Zarr path holds a bounded normalisation sample, and obeys the pixel limit."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("ome_zarr")

from deepscope.errors import LimitError  # noqa: E402
from deepscope.predict import large  # noqa: E402
from deepscope.predict.large import LazyInput, segment_ngff  # noqa: E402


def _declared(path, shape, chunks):
    """An OME-Zarr 0.5 image that DECLARES ``shape`` and holds no chunk: a few KB on disk."""
    import zarr

    g = zarr.open_group(str(path), mode="w")
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": "y", "type": "space"},
                                                                  {"name": "x", "type": "space"}],
                                                         "datasets": [{"path": "0"}]}]}
    g.create_array("0", shape=shape, dtype="uint8", chunks=chunks, fill_value=0)
    return path


def test_the_normalisation_sample_is_copied_out_of_each_block(monkeypatch):
    """Strided views kept every block alive (~3 bytes per pixel of an RGB image): now one block and the sample."""
    import zarr

    from deepscope.models.spec import InputSpec

    monkeypatch.setattr(large, "_BLOCK_PIXELS", 300_000)
    monkeypatch.setattr(large, "NORM_SAMPLE", 30_000)
    rng = np.random.default_rng(0)
    cyx = rng.integers(0, 200, size=(3, 3000, 3000), dtype=np.uint8)  # 27 MB
    arr = zarr.create_array(store=zarr.storage.MemoryStore(), shape=cyx.shape, chunks=(1, 128, 3000), dtype="uint8")
    arr[...] = cyx
    spec = InputSpec(channels=1)
    tracemalloc.start()
    try:
        x = LazyInput(arr, "CYX", spec, channel=1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < cyx.nbytes / 4, f"peak {peak:,} bytes for a {cyx.nbytes:,}-byte image"
    step = int(np.sqrt(3000 * 3000 / 30_000))  # the same strided sample as before: the same parameters
    assert (x.offset, x.scale) == spec.norm_params(cyx[1, ::step, ::step])


def test_no_sample_block_is_one_row(monkeypatch):
    """A last block of one row would be refused as a 1 x W image: it is merged into the block before it."""
    import zarr

    from deepscope.models.spec import InputSpec

    monkeypatch.setattr(large, "_BLOCK_PIXELS", 1000)  # blocks of 10 rows: 201 rows end with a block of 1
    img = np.arange(201 * 100, dtype=np.uint16).reshape(201, 100)
    arr = zarr.create_array(store=zarr.storage.MemoryStore(), shape=img.shape, chunks=(64, 100), dtype="uint16")
    arr[...] = img
    spec = InputSpec(channels=1)
    x = LazyInput(arr, "YX", spec)
    assert (x.offset, x.scale) == spec.norm_params(img)
    # a tile's one-pixel edge strip (no overlap) is read too, equal to the same pixels of a wider read
    assert np.array_equal(x[0:10, 99:100], x[0:10, 97:100][:, 2:])
    assert np.array_equal(x[200:201, 5:50], x[190:201, 5:50][10:])


def test_an_image_over_the_pixel_limit_is_refused_before_anything_is_read(tmp_path):
    """A store of a few KB declaring 200,000 x 200,000 pixels (4e10: about a day of CPU) is refused at once."""
    store = _declared(tmp_path / "huge.zarr", (200_000, 200_000), (4096, 4096))
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match=r"huge.zarr: the OME-Zarr image is 200000 x 200000 = 40,000,000,000 "
                                             r"values, over the limit of 250,000,000.*DEEPSCOPE_MAX_PIXELS=N"):
            segment_ngff(store, model="nuclei")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20
    assert not (store / "labels").exists()


def test_segment_gives_the_huge_store_one_failed_row(tmp_path):
    pytest.importorskip("torch")
    import pandas as pd

    from deepscope.cli.app import app
    from deepscope.models import ArchConfig, SegmentModel

    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(tmp_path / "seg")
    store = _declared(tmp_path / "huge.zarr", (200_000, 200_000), (4096, 4096))
    r = CliRunner().invoke(app, ["segment", str(store), "--model", str(tmp_path / "seg"),
                                 "--out", str(tmp_path / "out"), "--no-overlay", "--no-report"])
    assert r.exit_code == 1, r.output  # every image failed
    row = pd.read_csv(tmp_path / "out" / "counts.csv").iloc[0]
    assert "40,000,000,000 values, over the limit of 250,000,000" in row["error"]
    assert not (store / "labels").exists()
