"""Flag the images a scientist should look at: failures, blur, saturation, unusual counts, out of domain.

Blur is flagged on an absolute scale and relative to the run: a power-log-log slope at or below
:data:`BLUR_SLOPE` (calibrated on development images, ``benchmarks/bench_blur_qc.py``: in-focus
BBBC005, DSB2018 fluorescence, H&E and brightfield images lie above it, BBBC005's blurred F23 and F48
fields below), so a run where most fields are blurred still flags them; and robust z-scores (median
and MAD of the run, so a few bad images do not hide themselves) of the slope and of the logarithm of
the focus score (the slope alone sees little on small images) flag an image blurred for its run.
Counts get robust z-scores per condition, saturation a fixed limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from deepscope.measure.quality import BLUR_SLOPE  # its home: where the slope is measured

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["robust_z", "flag_images", "BLUR_Z", "BLUR_SLOPE", "COUNT_Z", "SATURATION_PERCENT"]


#: An image whose slope or log focus score lies this many robust standard deviations below the run's median is
#: blurred.
BLUR_Z = 3.0
#: A count this many robust standard deviations from its condition's median is unusual.
COUNT_Z = 3.5
#: More than this percent of pixels at the image's maximum value: saturated.
SATURATION_PERCENT = 1.0


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 MAD)``; 0 where the spread is 0, NaN where ``x`` is NaN.

    Examples
    --------
    >>> robust_z(np.array([1.0, 2.0, 3.0, 100.0])).round(2).tolist()
    [-0.67, -0.0, 0.67, 65.41]
    """
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.full(x.shape, np.nan)
    med = np.median(finite)
    mad = 1.4826 * np.median(np.abs(finite - med))
    if mad == 0:
        return np.where(np.isfinite(x), 0.0, np.nan)
    return (x - med) / mad


def flag_images(images: pd.DataFrame) -> pd.DataFrame:
    """Add ``flags`` (text: why to look at an image) and ``qc_score`` (lower = worse) to a report's image table.

    The score is the lower robust z of the two blur measures (failed images score -inf,
    out-of-domain and saturated ones are pushed down), so sorting by it puts the images to check
    first.
    """
    out = images.copy()
    flags: list[list[str]] = [[] for _ in range(len(out))]
    slope_z = robust_z(out["slope"].to_numpy(dtype=np.float64))
    focus = out["focus"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        focus_z = robust_z(np.where(focus > 0, np.log(np.where(focus > 0, focus, 1.0)), np.nan))
    # the focus score also falls with fewer cells: it counts only where the slope leans the same way
    focus_z = np.where(np.isfinite(slope_z) & (slope_z > -1.0), np.nan, focus_z)
    both = np.vstack([np.where(np.isfinite(slope_z), slope_z, np.inf), np.where(np.isfinite(focus_z), focus_z, np.inf)])
    blur_z = both.min(axis=0)
    which = np.where(both[0] <= both[1], "slope", "focus")
    blur_z = np.where(np.isfinite(blur_z), blur_z, np.nan)
    score = np.where(np.isfinite(blur_z), blur_z, 0.0)
    ok = out["ok"].to_numpy(bool)
    count_z = np.full(len(out), np.nan)
    counts = out["count"].to_numpy(dtype=np.float64)
    for cond in out["condition"].unique():
        sel = (out["condition"] == cond).to_numpy() & ok
        if sel.sum() >= 5:
            count_z[sel] = robust_z(counts[sel])
    sat = out["saturation"].to_numpy(dtype=np.float64)
    in_domain = out["in_domain"].to_numpy(dtype=object)
    for i in range(len(out)):
        if not ok[i]:
            flags[i].append("failed")
            score[i] = -np.inf
            continue
        slope = float(out["slope"].iloc[i])
        if np.isfinite(slope) and slope <= BLUR_SLOPE:
            flags[i].append(f"blurred (slope {slope:.2f} <= {BLUR_SLOPE:g})")
            score[i] = min(score[i], -BLUR_Z) - 1.0
        elif np.isfinite(blur_z[i]) and blur_z[i] <= -BLUR_Z:
            flags[i].append(f"blurred ({which[i]} z {blur_z[i]:.1f})")
        if np.isfinite(sat[i]) and sat[i] > SATURATION_PERCENT:
            flags[i].append(f"saturated ({sat[i]:.1f}% at max)")
            score[i] -= 2.0
        if np.isfinite(count_z[i]) and abs(count_z[i]) >= COUNT_Z:
            flags[i].append(f"unusual count (z {count_z[i]:+.1f})")
        if isinstance(in_domain[i], (bool, np.bool_)) and not in_domain[i]:
            flags[i].append("out of domain")
            score[i] -= 3.0
    out["flags"] = ["; ".join(f) for f in flags]
    out["qc_score"] = score
    return out
