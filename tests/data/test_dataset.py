from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscope.data import ImageDataset
from deepscope.errors import InputError


def _ragged():
    return [np.ones((4, 6)), np.ones((6, 4)) * 2, np.ones((5, 5)) * 3]


def test_in_memory_basics():
    X = np.arange(5 * 3 * 3).reshape(5, 3, 3)
    ds = ImageDataset(X, y=[1, 2, 3, 4, 5], ids=list("abcde"))
    assert len(ds) == 5 and not ds.is_lazy
    s = ds[2]
    assert s.id == "c" and s.y == 3 and s.w == 1.0
    np.testing.assert_array_equal(s.X, X[2])
    sub = ds[1:3]
    assert sub.ids.tolist() == ["b", "c"]
    assert ds.select([4, 0]).y.tolist() == [5, 1]


def test_ragged_images_policies():
    ds = ImageDataset(_ragged(), y=[0, 1, 2])
    assert isinstance(ds.X, list)
    with pytest.raises(InputError, match="different shapes .* policy='list', 'pad' or 'crop'"):
        next(ds.iterbatches(3))
    b = next(ds.iterbatches(3, policy="pad"))
    assert b.X.shape == (3, 6, 6) and b.X[0, 5, 5] == 0
    b = next(ds.iterbatches(3, policy="crop"))
    assert b.X.shape == (3, 4, 4)
    b = next(ds.iterbatches(3, policy="list"))
    assert [x.shape for x in b.X] == [(4, 6), (6, 4), (5, 5)]


def test_iterbatches_shuffle_seeded():
    ds = ImageDataset(np.zeros((10, 2, 2)), y=np.arange(10))
    a = [b.y.tolist() for b in ds.iterbatches(4, shuffle=True, seed=3)]
    b = [b.y.tolist() for b in ds.iterbatches(4, shuffle=True, seed=3)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and a[0] != [0, 1, 2, 3]


def test_mismatched_lengths():
    with pytest.raises(InputError, match="labels have 2 entries but there are 3 images"):
        ImageDataset(np.zeros((3, 2, 2)), y=[1, 2])
    with pytest.raises(InputError, match="weights have 1 entries"):
        ImageDataset(np.zeros((3, 2, 2)), w=[1])
    with pytest.raises(InputError, match="metadata has 2 rows"):
        ImageDataset(np.zeros((3, 2, 2)), metadata=pd.DataFrame({"a": [1, 2]}))


def test_where_and_dataframe():
    md = pd.DataFrame({"blur": [1, 23, 48, 48]})
    ds = ImageDataset(np.zeros((4, 2, 2)), y=[1, 2, 3, 4], metadata=md)
    assert ds.where(blur=48).y.tolist() == [3, 4]
    assert ds.where(blur=[1, 23]).y.tolist() == [1, 2]
    with pytest.raises(InputError, match="no metadata column 'stain'"):
        ds.where(stain=1)
    df = ds.to_dataframe()
    assert list(df.columns[:2]) == ["id", "blur"] and df.y.tolist() == [1, 2, 3, 4]


def test_lazy_reads_on_access(tmp_path):
    import tifffile

    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.tif"
        tifffile.imwrite(p, np.full((4, 4), i, np.uint16))
        paths.append(p)
    ds = ImageDataset(paths, y=[0, 1, 2])
    assert ds.is_lazy and ds.ids.tolist() == ["0.tif", "1.tif", "2.tif"]
    assert ds.get_image(2)[0, 0] == 2 and ds.get_image(2).dtype == np.uint16
    mem = ds.to_memory()
    assert not mem.is_lazy and mem.X.shape == (3, 4, 4)


def test_mask_labels_int32():
    masks = [np.array([[0, 3], [3, 0]], np.uint16)] * 2
    ds = ImageDataset(np.zeros((2, 2, 2)), y=masks)
    assert ds.label_kind == "mask" and ds.get_label(0).dtype == np.int32
    b = next(ds.iterbatches(2))
    assert b.y.shape == (2, 2, 2)


def test_index_errors():
    ds = ImageDataset(np.zeros((3, 2, 2)))
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(InputError, match="boolean selection has 2 entries"):
        ds.select(np.array([True, False]))
