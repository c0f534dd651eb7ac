from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepscope.errors import InputError
from deepscope.evaluate import CountMetrics, count_metrics, count_summary


def _data(seed=0, n=240):
    rng = np.random.default_rng(seed)
    true = rng.integers(1, 101, n).astype(float)
    blur = rng.choice([1, 23, 48], n)
    stain = rng.choice(["w1", "w2"], n)
    noise = {1: 0.5, 23: 2.0, 48: 6.0}
    pred = true + np.array([rng.normal(0.3, noise[b]) for b in blur])
    half = np.array([1.96 * noise[b] for b in blur])
    return true, pred, pred - half, pred + half, pd.DataFrame({"blur": blur, "stain": stain})


def test_summary_matches_hand_computation():
    true, pred, low, high, _ = _data()
    m = count_summary(true, pred, low=low, high=high)
    err = pred - true
    assert isinstance(m, CountMetrics) and m.n == len(true)
    assert m.mae == pytest.approx(np.abs(err).mean())
    assert m.rmse == pytest.approx(np.sqrt((err ** 2).mean()))
    assert m.bias == pytest.approx(err.mean())
    assert m.exact == pytest.approx(np.mean(np.round(pred) == true))
    assert m.coverage == pytest.approx(np.mean((true >= low) & (true <= high)))
    assert 0.85 < m.coverage < 1.0  # the intervals are calibrated 95% intervals up to the bias
    assert m.mean_width == pytest.approx(np.mean(high - low))
    no_int = count_summary(true, pred)
    assert np.isnan(no_int.coverage) and np.isnan(no_int.mean_width) and no_int.mae == m.mae


def test_per_stratum_rows():
    true, pred, low, high, md = _data(seed=1)
    df = count_metrics(true, pred, low=low, high=high, strata=md)
    assert df.iloc[0][["stratum", "value"]].tolist() == ["all", "all"]
    assert df["stratum"].tolist() == ["all", "blur", "blur", "blur", "stain", "stain"]
    assert df["value"].tolist() == ["all", "1", "23", "48", "w1", "w2"]
    byblur = df[df.stratum == "blur"].set_index("value")
    for b in (1, 23, 48):
        sel = md.blur.to_numpy() == b
        assert byblur.loc[str(b), "n"] == sel.sum()
        assert byblur.loc[str(b), "mae"] == pytest.approx(np.abs(pred[sel] - true[sel]).mean())
    # errors grow with blur in this synthetic set
    assert byblur.loc["1", "mae"] < byblur.loc["23", "mae"] < byblur.loc["48", "mae"]
    assert df[df.stratum == "stain"]["n"].sum() == len(true)


def test_strata_as_array_and_dict_and_empty():
    df = count_metrics([1, 2, 3, 4], [1, 2, 4, 4], strata=["a", "a", "b", "b"])
    assert df["value"].tolist() == ["all", "a", "b"]
    assert df.set_index("value").loc["b", "exact"] == 0.5
    df = count_metrics([1, 2], [1, 3], strata={"plate": [7, 8]})
    assert df["stratum"].tolist() == ["all", "plate", "plate"]
    empty = count_summary([], [])
    assert empty.n == 0 and np.isnan(empty.mae)


def test_errors():
    with pytest.raises(InputError, match="pred has 2 values but true has 3"):
        count_metrics([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="give both low and high"):
        count_metrics([1, 2], [1, 2], low=[0, 1])
    with pytest.raises(InputError, match="low > high for 1 image"):
        count_metrics([1, 2], [1, 2], low=[0, 3], high=[2, 2])
    with pytest.raises(InputError, match="non-finite value"):
        count_metrics([1, 2], [1, np.nan])
    with pytest.raises(InputError, match="strata has 3 rows but true has 2"):
        count_metrics([1, 2], [1, 2], strata=["a", "b", "c"])
    with pytest.raises(InputError, match="stratum column 'blur' has 1 missing value"):
        count_metrics([1, 2], [1, 2], strata=pd.DataFrame({"blur": [1, None]}))
    with pytest.raises(InputError, match="one number per image"):
        count_metrics(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(InputError, match="must be numbers"):
        count_metrics(["a"], [1])


def test_image_without_interval_counts_in_errors_not_coverage():
    # an out-of-domain image gets no interval (NaN bounds): scored for its count, left out of the coverage
    m = count_summary([10, 20, 30], [11, 20, 40], low=[9, np.nan, 31], high=[12, np.nan, 35])
    assert m.n == 3 and m.mae == pytest.approx(11 / 3)
    assert m.coverage == 0.5 and m.mean_width == pytest.approx(3.5)
    with pytest.raises(InputError, match="both be NaN"):
        count_summary([1, 2], [1, 2], low=[0, np.nan], high=[2, 3])
    with pytest.raises(InputError, match="non-finite value"):
        count_summary([1, 2], [1, 2], low=[0, -np.inf], high=[2, 3])
