"""Per-image quality control: focus, blur, saturation and intensity, as CellProfiler's MeasureImageQuality.

Column names follow CellProfiler (``ImageQuality_<feature>_<channel>``):

``FocusScore``
    Normalised variance of the pixel values, ``var / mean``: higher means sharper (for the same
    sample); it drops as an image blurs.
``PowerLogLogSlope``
    Slope of the image's radial power spectrum against spatial frequency on log-log axes (the
    lowest eighth of the frequencies, as CellProfiler): more negative means blurrier (less power
    at high frequencies); a slope near 0 is noise.
``PercentMaximal`` / ``PercentMinimal``
    Percent of the pixels at the image's maximum / minimum value: a large share at the maximum
    means saturation (clipped, unmeasurable intensities).
``TotalIntensity``, ``MeanIntensity``, ``MedianIntensity``, ``StdIntensity``, ``MADIntensity``,
``MinIntensity``, ``MaxIntensity``
    Intensity statistics of the whole image.

deepscope adds two intensity percentiles, ``ImageQuality_Percentile1_<channel>`` and
``ImageQuality_Percentile99_<channel>`` (the range :func:`~deepscope.data.normalize_percentile`
maps to [0, 1] by default).

Values are computed on the raw pixels (CellProfiler divides integer images by their dtype's
maximum when it loads them, so its intensities and ``FocusScore`` are deepscope's divided by
255 or 65535; the slope and percentages are the same).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.io.image import as_pixels

__all__ = ["QUALITY_FEATURES", "quality_columns", "measure_image_quality", "power_log_log_slope", "BLUR_SLOPE"]

#: Features of :func:`measure_image_quality`, in column order.
QUALITY_FEATURES: tuple[str, ...] = ("FocusScore", "PowerLogLogSlope", "PercentMaximal", "PercentMinimal",
                                     "TotalIntensity", "MeanIntensity", "MedianIntensity", "StdIntensity",
                                     "MADIntensity", "MinIntensity", "MaxIntensity", "Percentile1", "Percentile99")

#: An image whose power-log-log slope (``ImageQuality_PowerLogLogSlope``) is at or below this is blurred,
#: whatever the rest of the run looks like. Measured on development images (BENCHMARKS.md, "Blur flag"):
#: in-focus BBBC005 fields -2.4 to -1.6, DSB2018 fluorescence >= -2.6 (1st percentile); BBBC005 F23 and F48
#: fields -5.1 to -3.3.
BLUR_SLOPE = -3.0


def quality_columns(channel: str) -> list[str]:
    """The column names of one channel's quality measurements.

    Examples
    --------
    >>> quality_columns("DNA")[:2]
    ['ImageQuality_FocusScore_DNA', 'ImageQuality_PowerLogLogSlope_DNA']
    """
    return [f"ImageQuality_{f}_{channel}" for f in QUALITY_FEATURES]


def power_log_log_slope(image: Any) -> float:
    """Slope of the radial power spectrum on log-log axes, as CellProfiler computes it (NaN for a flat image).

    The power of the mean-subtracted image's Fourier transform is summed over rings of integer
    radius (frequency index ``floor(r) + 1``), from index 2 (the lowest frequencies after the DC
    term) up to an eighth of the smaller image side (higher frequencies are left out to avoid
    edge effects), and a line is fitted to log power against log frequency.

    Examples
    --------
    >>> from scipy.ndimage import gaussian_filter
    >>> noise = np.random.default_rng(0).normal(size=(256, 256))
    >>> power_log_log_slope(gaussian_filter(noise, 4)) < power_log_log_slope(gaussian_filter(noise, 1))
    True
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all() or np.ptp(x) == 0:
        return float("nan")
    h, w = x.shape
    r2 = (np.arange(h)[:, None] ** 2) + (np.arange(w)[None, :] ** 2)
    r2 = np.minimum(r2, np.flipud(r2))
    r2 = np.minimum(r2, np.fliplr(r2))
    top = int(np.floor(min(h, w) / 8.0))
    if top <= 3:
        return float("nan")
    power = np.abs(np.fft.fft2(x - x.mean())) ** 2
    index = np.floor(np.sqrt(r2)).astype(np.int64) + 1
    sums = np.bincount(index.reshape(-1), weights=power.reshape(-1), minlength=top)[2:top]
    freq = np.arange(2, top, dtype=np.float64)
    ok = sums > 0
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(freq[ok]), np.log(sums[ok]), 1)[0])


def measure_image_quality(image: Any, *, channel: str = "Image") -> dict[str, float]:
    """CellProfiler-style quality measurements of one 2-D image (see the module docstring).

    Parameters
    ----------
    image : ndarray (H, W) or deepscope.io.Image
        Raw pixels of one channel, any real dtype.
    channel : str, default "Image"
        Channel name in the column names.

    Returns
    -------
    dict
        ``ImageQuality_<feature>_<channel>`` -> value, features in :data:`QUALITY_FEATURES` order.

    Raises
    ------
    deepscope.errors.InputError
        If the image is not 2-D, is empty, or is not numeric.

    Examples
    --------
    >>> img = np.zeros((8, 8), np.uint8); img[2:4, 2:6] = 255
    >>> q = measure_image_quality(img, channel="DNA")
    >>> q["ImageQuality_PercentMaximal_DNA"], q["ImageQuality_MaxIntensity_DNA"]
    (12.5, 255.0)
    """
    x = np.asarray(as_pixels(image))
    if x.ndim != 2 or x.size == 0:
        raise InputError(f"image quality needs one 2-D channel (H, W); got shape {x.shape}")
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"image quality needs a real numeric image; got dtype {x.dtype}")
    v = x.astype(np.float64, copy=False)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        values = dict.fromkeys(QUALITY_FEATURES, float("nan"))
    else:
        mean = float(finite.mean())
        lo, hi = float(finite.min()), float(finite.max())
        median = float(np.median(finite))
        p1, p99 = (float(p) for p in np.percentile(finite, [1, 99]))
        values = {
            "FocusScore": float(finite.var() / mean) if mean > 0 else 0.0,
            "PowerLogLogSlope": power_log_log_slope(np.where(np.isfinite(v), v, mean)),
            "PercentMaximal": 100.0 * float(np.count_nonzero(finite == hi)) / finite.size,
            "PercentMinimal": 100.0 * float(np.count_nonzero(finite == lo)) / finite.size,
            "TotalIntensity": float(finite.sum()), "MeanIntensity": mean, "MedianIntensity": median,
            "StdIntensity": float(finite.std()), "MADIntensity": float(np.median(np.abs(finite - median))),
            "MinIntensity": lo, "MaxIntensity": hi, "Percentile1": p1, "Percentile99": p99,
        }
    return {f"ImageQuality_{k}_{channel}": values[k] for k in QUALITY_FEATURES}
