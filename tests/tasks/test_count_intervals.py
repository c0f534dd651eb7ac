"""The hybrid counting rule's interval (issue 31): it grows with the count, calibrated by split conformal."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepscope.errors import InputError
from deepscope.tasks.count import HybridRule
from deepscope.tasks.count.plugins import hybrid_interval_scale, hybrid_stratum_scales


def test_sqrt_count_half_width_grows_with_the_count_and_absolute_does_not():
    rule = HybridRule("cells-bbbc005", 1500.0, interval_scale=0.5, interval_method="sqrt-count")
    assert rule.half_width(0.0) == pytest.approx(0.5)
    assert rule.half_width(99.0) == pytest.approx(5.0)
    old = HybridRule.from_mapping({"segmenter": "cells-bbbc005", "max_object_area": 1500.0, "interval_scale": 2.75,
                                   "reference_area": 100.0})
    assert old.interval_method == "absolute"  # cards calibrated before the change keep their fixed width
    assert old.half_width(5.0, (10, 10)) == old.half_width(90.0, (10, 10)) == pytest.approx(2.75)
    assert old.half_width(5.0, (20, 20)) == pytest.approx(5.5)  # widened with the image's area
    with pytest.raises(InputError, match="hybrid interval method 'poisson' is not one of"):
        HybridRule("s", 1.0, interval_method="poisson")


def test_conformal_scale_covers_count_dependent_errors_in_every_third():
    # errors whose spread grows as sqrt(count): one scale covers low, middle and high counts alike, where a
    # constant width calibrated on all of them over-covers low counts and under-covers high ones
    rng = np.random.default_rng(0)
    true = rng.integers(1, 101, 4000).astype(float)
    est = true + rng.normal(0, 0.4 * np.sqrt(true + 1))
    cal, test = slice(0, 2000), slice(2000, None)
    q = hybrid_interval_scale(true[cal], est[cal], 0.95)
    half = q * np.sqrt(np.maximum(est[test], 0) + 1)
    covered = np.abs(true[test] - est[test]) <= half
    q_abs = np.quantile(np.abs(true[cal] - est[cal]), 0.95)
    covered_abs = np.abs(true[test] - est[test]) <= q_abs
    for lo, hi in ((0, 33), (33, 66), (66, 101)):
        third = (true[test] > lo) & (true[test] <= hi)
        assert 0.92 <= covered[third].mean() <= 0.98
    high = true[test] > 66
    assert covered_abs[high].mean() < 0.92 < covered[high].mean()
    assert math.isfinite(q) and q > 0


def test_stratum_scales_widen_only_where_that_stratum_errs_more():
    rng = np.random.default_rng(1)
    true = rng.integers(1, 101, 600).astype(float)
    est = true + rng.normal(0, 0.3 * np.sqrt(true + 1)) * np.where(true > 66, 2.0, 1.0)  # high counts err 2x more
    overall = hybrid_interval_scale(true, est)
    lo, mid, hi = hybrid_stratum_scales(true, est)
    assert lo == mid == overall < hi  # never below the overall scale; wider where the errors are larger
    rule = HybridRule("s", 1.0, interval_scale=overall, interval_method="sqrt-count", count_edges=(33.5, 66.5),
                      stratum_scales=(lo, mid, hi))
    assert rule.half_width(80.0) == pytest.approx(hi * 9.0) and rule.half_width(10.0) == pytest.approx(lo * 11 ** 0.5)
    assert hybrid_stratum_scales(np.array([5.0, 6.0]), np.array([5.0, 7.0])) == [pytest.approx(1 / 8 ** 0.5)] * 3
    with pytest.raises(InputError, match="give one scale more than edges"):
        HybridRule("s", 1.0, interval_method="sqrt-count", count_edges=(10.0,), stratum_scales=(0.1,))
