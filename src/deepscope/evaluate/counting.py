"""Counting metrics: error, bias, exact counts and 95%-interval coverage, overall and per stratum."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CountMetrics", "count_summary", "count_metrics"]


@dataclass(frozen=True)
class CountMetrics:
    """Counting scores of a set of images.

    Attributes
    ----------
    n : int
        Number of images.
    mae : float
        Mean absolute error ``mean(|pred - true|)``.
    rmse : float
        Root mean squared error.
    bias : float
        Mean signed error ``mean(pred - true)`` (positive = over-counting).
    exact : float
        Share of images with ``round(pred) == true``.
    coverage : float
        Share of images whose true count lies in ``[low, high]``, among the images that have an interval
        (an out-of-domain image has NaN bounds); NaN without intervals.
    mean_width : float
        Mean interval width ``mean(high - low)``; NaN without intervals.
    """

    n: int
    mae: float
    rmse: float
    bias: float
    exact: float
    coverage: float
    mean_width: float


def _vector(x: Any, *, name: str, n: int | None = None, allow_nan: bool = False) -> np.ndarray:
    try:
        v = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numbers (one per image); could not convert {type(x).__name__}") from None
    if v.ndim > 1:
        v = np.squeeze(v)  # a column vector (n, 1) is fine
    if v.ndim != 1:
        raise InputError(f"{name} must be one number per image (1-D), got shape {v.shape}")
    if n is not None and len(v) != n:
        raise InputError(f"{name} has {len(v)} values but true has {n}; give one value per image")
    bad = np.flatnonzero(np.isinf(v) if allow_nan else ~np.isfinite(v))
    if bad.size:
        raise InputError(f"{name} has {bad.size} non-finite value(s) ({'inf' if allow_nan else 'NaN or inf'}), "
                         f"first at index {int(bad[0])}; drop failed images before scoring")
    return v


def _check(true: Any, pred: Any, low: Any, high: Any
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    t = _vector(true, name="true")
    p = _vector(pred, name="pred", n=len(t))
    if (low is None) != (high is None):
        raise InputError("give both low and high (the interval bounds) or neither")
    lo = hi = None
    if low is not None:
        # an image without an interval (out of the counter's domain) has NaN bounds: it counts in the errors,
        # not in the coverage
        lo = _vector(low, name="low", n=len(t), allow_nan=True)
        hi = _vector(high, name="high", n=len(t), allow_nan=True)
        bad = np.flatnonzero(np.isnan(lo) != np.isnan(hi))
        if bad.size:
            raise InputError(f"low and high must both be NaN (no interval) or both numbers; image {int(bad[0])} "
                             f"has low={lo[bad[0]]}, high={hi[bad[0]]}")
        bad = np.flatnonzero(lo > hi)
        if bad.size:
            raise InputError(f"low > high for {bad.size} image(s), first at index {int(bad[0])} "
                             f"(low={lo[bad[0]]}, high={hi[bad[0]]}); intervals must have low <= high")
    return t, p, lo, hi


def _summary(t: np.ndarray, p: np.ndarray, lo: np.ndarray | None, hi: np.ndarray | None) -> CountMetrics:
    n = len(t)
    if n == 0:
        nan = float("nan")
        return CountMetrics(0, nan, nan, nan, nan, nan, nan)
    err = p - t
    cov = width = float("nan")
    if lo is not None and hi is not None:
        has = ~np.isnan(lo)
        if has.any():
            cov = float(np.mean((t[has] >= lo[has]) & (t[has] <= hi[has])))
            width = float(np.mean(hi[has] - lo[has]))
    return CountMetrics(n=n, mae=float(np.mean(np.abs(err))), rmse=float(np.sqrt(np.mean(err ** 2))),
                        bias=float(np.mean(err)), exact=float(np.mean(np.rint(p) == t)),
                        coverage=cov, mean_width=width)


def count_summary(true: Any, pred: Any, *, low: Any = None, high: Any = None) -> CountMetrics:
    """Counting scores of all images together.

    Parameters
    ----------
    true : array-like of float, (n,)
        True counts.
    pred : array-like of float, (n,)
        Predicted counts (float estimates are fine).
    low, high : array-like of float, (n,), optional
        Bounds of each prediction's 95% interval; give both or neither.

    Returns
    -------
    CountMetrics
        An empty input gives ``n=0`` and NaN scores.

    Raises
    ------
    deepscope.errors.InputError
        If lengths differ, a count is NaN or infinite (bounds may be NaN together: no interval), only one bound is given, or
        ``low > high``.

    Examples
    --------
    >>> m = count_summary([10, 20, 30], [11, 20, 27.6], low=[9, 18, 25], high=[12, 22, 29])
    >>> round(m.mae, 3), round(m.bias, 3), m.exact, round(m.coverage, 3)
    (1.133, -0.467, 0.3333333333333333, 0.667)
    """
    return _summary(*_check(true, pred, low, high))


def count_metrics(true: Any, pred: Any, *, low: Any = None, high: Any = None,
                  strata: Any = None) -> pd.DataFrame:
    """Counting scores overall and per stratum (e.g. per blur level and per stain).

    Parameters
    ----------
    true : array-like of float, (n,)
        True counts.
    pred : array-like of float, (n,)
        Predicted counts.
    low, high : array-like of float, (n,), optional
        Bounds of each prediction's 95% interval; give both or neither.
    strata : pandas.DataFrame, mapping of name -> array-like, or array-like, optional
        One value per image for each stratifying variable (e.g. ``metadata[["blur", "stain"]]``).
        Each variable is broken down on its own (rows for ``blur=1``, ``blur=23``, ...,
        ``stain=w1``, ...). An array-like is one variable named ``"stratum"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``stratum``, ``value``, ``n``, ``mae``, ``rmse``, ``bias``, ``exact``,
        ``coverage``, ``mean_width``. The first row is all images (``stratum == value ==
        "all"``), then one row per value of each variable, sorted by value.

    Raises
    ------
    deepscope.errors.InputError
        If lengths differ, a value is NaN or infinite, only one interval bound is given,
        ``low > high``, or a stratum column has missing values.

    Examples
    --------
    >>> import pandas as pd
    >>> md = pd.DataFrame({"blur": [1, 1, 48, 48], "stain": ["w1", "w2", "w1", "w2"]})
    >>> df = count_metrics([10, 20, 10, 20], [10, 21, 14, 20], strata=md)
    >>> df[["stratum", "value", "n", "mae"]].to_dict("records")[:3]
    [{'stratum': 'all', 'value': 'all', 'n': 4, 'mae': 1.25}, {'stratum': 'blur', 'value': '1', 'n': 2, 'mae': 0.5}, {'stratum': 'blur', 'value': '48', 'n': 2, 'mae': 2.0}]
    """
    import pandas as pd

    t, p, lo, hi = _check(true, pred, low, high)
    rows = [{"stratum": "all", "value": "all", **asdict(_summary(t, p, lo, hi))}]
    if strata is not None:
        if isinstance(strata, pd.DataFrame):
            table = strata.reset_index(drop=True)
        elif isinstance(strata, pd.Series):
            table = pd.DataFrame({strata.name or "stratum": strata.to_numpy()})
        elif isinstance(strata, dict):
            table = pd.DataFrame({k: np.asarray(v) for k, v in strata.items()})
        else:
            table = pd.DataFrame({"stratum": np.asarray(strata)})
        if len(table) != len(t):
            raise InputError(f"strata has {len(table)} rows but true has {len(t)}; give one row per image")
        for col in table.columns:
            values = table[col]
            if values.isna().any():
                raise InputError(f"stratum column {col!r} has {int(values.isna().sum())} missing value(s); "
                                 "every image needs a value")
            for val in sorted(values.unique(), key=lambda v: (str(type(v)), v)):
                sel = (values == val).to_numpy()
                rows.append({"stratum": str(col), "value": str(val),
                             **asdict(_summary(t[sel], p[sel], None if lo is None else lo[sel],
                                               None if hi is None else hi[sel]))})
    return pd.DataFrame(rows, columns=["stratum", "value", "n", "mae", "rmse", "bias", "exact", "coverage",
                                       "mean_width"])
