from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscope.data import GroupSplitter, ImageDataset, RandomSplitter, StratifiedSplitter
from deepscope.errors import InputError


def _ds(n=200, groups=50, seed=0):
    rng = np.random.default_rng(seed)
    field = rng.integers(0, groups, n)
    count = field % 10 * 10 + 1
    md = pd.DataFrame({"field": [f"f{g}" for g in field], "count": count})
    return ImageDataset(np.zeros((n, 2, 2), np.uint8), y=count, metadata=md)


@pytest.mark.parametrize("splitter", [RandomSplitter(), GroupSplitter("field"),
                                      StratifiedSplitter(by="count"),
                                      StratifiedSplitter(by="count", group_by="field")])
def test_partition_and_determinism(splitter):
    ds = _ds()
    a = splitter.split(ds, 0.7, 0.15, 0.15, seed=7)
    b = splitter.split(ds, 0.7, 0.15, 0.15, seed=7)
    c = splitter.split(ds, 0.7, 0.15, 0.15, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    allidx = np.concatenate(a)
    assert sorted(allidx.tolist()) == list(range(len(ds)))


@pytest.mark.parametrize("seed", range(5))
def test_group_never_in_two_parts(seed):
    ds = _ds(seed=seed)
    md = ds.metadata
    parts = GroupSplitter("field").split(ds, 0.8, 0.1, 0.1, seed=seed)
    sets = [set(md.field.iloc[p]) for p in parts]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert abs(len(parts[0]) / len(ds) - 0.8) < 0.06


def test_stratified_with_groups_keeps_groups_whole():
    ds = _ds()
    md = ds.metadata
    parts = StratifiedSplitter(by="count", group_by="field").split(ds, 0.6, 0.2, 0.2, seed=1)
    sets = [set(md.field.iloc[p]) for p in parts]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_stratified_balances_strata():
    ds = ImageDataset(np.zeros((100, 2, 2)), y=np.repeat([1, 2, 3, 4], 25))
    tr, va, te = StratifiedSplitter().split(ds, 0.6, 0.2, 0.2, seed=0)
    for part, n in ((tr, 15), (va, 5), (te, 5)):
        assert np.bincount(ds.y[part])[1:].tolist() == [n] * 4


def test_stratified_bins_for_continuous():
    y = np.random.default_rng(0).random(300) * 100
    ds = ImageDataset(np.zeros((300, 1, 1)), y=y)
    tr, _, te = StratifiedSplitter(bins=5).split(ds, 0.5, 0.0, 0.5, seed=0)
    assert abs(np.median(y[tr]) - np.median(y[te])) < 10


def test_k_fold_covers_each_once():
    ds = _ds()
    folds = GroupSplitter("field").k_fold_split(ds, 4, seed=0)
    seen = np.concatenate([v.ids for _, v in folds])
    assert sorted(seen.tolist()) == sorted(ds.ids.tolist())
    for tr, va in folds:
        assert not set(tr.metadata.field) & set(va.metadata.field)


def test_train_valid_test_datasets():
    ds = _ds(n=20, groups=20)
    tr, va, te = RandomSplitter().train_valid_test_split(ds, seed=0)
    assert (len(tr), len(va), len(te)) == (16, 2, 2)


def test_bad_fractions_and_columns():
    ds = _ds()
    with pytest.raises(InputError, match="sum to 1"):
        RandomSplitter().split(ds, 0.8, 0.3, 0.1)
    with pytest.raises(InputError, match="no metadata column 'plate'"):
        GroupSplitter("plate").split(ds)
    with pytest.raises(InputError, match="k must be >= 2"):
        RandomSplitter().k_fold_split(ds, 1)
