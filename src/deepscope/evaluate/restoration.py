"""Restoration metrics: PSNR, SSIM, Pearson correlation, and a false-structure (hallucination) check.

PSNR and SSIM need the data range of the images (``max - min`` possible value). It is never
guessed from the dtype: a uint16 camera image rarely spans 0..65535, and a float image has no
natural range, so a guessed range silently changes the score. Give it explicitly (for images
normalised to [0, 1], ``data_range=1.0``).

Hallucination
-------------
A restoration network can invent plausible structure that is not in the sample. PSNR and SSIM
barely notice a few invented cells, so :func:`false_structure` counts them: both images are
thresholded with the *same* threshold (Otsu's on the true image unless given) and split into
connected objects; an object of the restored image that has less than ``min_overlap`` of its area
on the true foreground has no counterpart in the truth: it is false structure. Objects of the
truth missing from the restored image are reported the same way (lost structure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["psnr", "ssim", "pearson", "FalseStructure", "false_structure"]


def _pair(truth: Any, restored: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth)
    r = np.asarray(restored)
    if t.shape != r.shape:
        raise InputError(f"truth has shape {t.shape} but restored has shape {r.shape}; "
                         "they must have the same shape")
    for name, a in (("truth", t), ("restored", r)):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise InputError(f"{name} has dtype {a.dtype}; expected a numeric image")
    if t.size == 0:
        raise InputError("truth and restored are empty (size 0)")
    return t.astype(np.float64), r.astype(np.float64)


def _check_range(data_range: Any) -> float:
    try:
        dr = float(data_range)
    except (TypeError, ValueError):
        raise InputError(f"data_range must be a positive number, got {data_range!r}") from None
    if not np.isfinite(dr) or dr <= 0:
        raise InputError(f"data_range must be a positive number (max - min possible value), got {data_range!r}")
    return dr


def psnr(truth: Any, restored: Any, *, data_range: float) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB.

    Parameters
    ----------
    truth, restored : ndarray, same shape
        The reference image and the restored one (any numeric dtype; computed in float64).
    data_range : float
        The range of possible values (e.g. 255 for 8-bit images on their full range, 1.0 for
        images normalised to [0, 1]). Required: never guessed from the dtype.

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical images.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ, an image is not numeric or empty, or ``data_range`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((4, 4)); r = t + 0.1
    >>> round(psnr(t, r, data_range=1.0), 2)
    20.0
    """
    t, r = _pair(truth, restored)
    dr = _check_range(data_range)
    mse = float(np.mean((t - r) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(dr * dr / mse))


def ssim(truth: Any, restored: Any, *, data_range: float, win_size: int | None = None,
         gaussian_weights: bool = False) -> float:
    """Mean structural similarity (SSIM) of two grey images (wraps scikit-image).

    Parameters
    ----------
    truth, restored : ndarray, (H, W), same shape
        Grey images (any numeric dtype; computed in float64).
    data_range : float
        The range of possible values. Required: never guessed from the dtype.
    win_size : int, optional
        Odd side of the sliding window (scikit-image's default 7).
    gaussian_weights : bool, default False
        Use the Gaussian-weighted window of Wang et al. (sigma 1.5) instead of a uniform one.

    Returns
    -------
    float
        Mean SSIM in [-1, 1]; 1.0 for identical images.

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ, the images are not 2-D, are smaller than the window, or
        ``data_range`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.random.default_rng(0).random((32, 32))
    >>> ssim(t, t, data_range=1.0)
    1.0
    """
    from skimage.metrics import structural_similarity

    t, r = _pair(truth, restored)
    dr = _check_range(data_range)
    if t.ndim != 2:
        raise InputError(f"ssim needs 2-D grey images, got shape {t.shape}; compare channels one by one")
    w = 7 if win_size is None else int(win_size)
    if min(t.shape) < w:
        raise InputError(f"images of shape {t.shape} are smaller than the SSIM window ({w}); "
                         "give a smaller odd win_size")
    return float(structural_similarity(t, r, data_range=dr, win_size=win_size,
                                       gaussian_weights=gaussian_weights))


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of the pixel values of two images.

    Returns NaN when one image is constant (the correlation is undefined).

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ or an image is not numeric or empty.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> pearson(x, 3 * x + 1), pearson(x, -x)
    (1.0, -1.0)
    """
    x, y = _pair(a, b)
    x = x.reshape(-1) - x.mean()
    y = y.reshape(-1) - y.mean()
    den = float(np.sqrt(np.dot(x, x) * np.dot(y, y)))
    if den == 0:
        return float("nan")
    return float(np.clip(np.dot(x, y) / den, -1.0, 1.0))


@dataclass(frozen=True)
class FalseStructure:
    """Objects of a restored image without a counterpart in the truth, and the reverse.

    Attributes
    ----------
    threshold : float
        The foreground threshold applied to both images.
    n_truth, n_restored : int
        Objects (connected components) in the thresholded truth and restored images.
    n_false : int
        Restored objects with less than ``min_overlap`` of their area on the true foreground.
    n_missed : int
        True objects with less than ``min_overlap`` of their area on the restored foreground.
    false_fraction : float
        ``n_false / n_restored`` (0.0 when the restored image has no objects).
    missed_fraction : float
        ``n_missed / n_truth`` (0.0 when the truth has no objects).
    false_area_fraction : float
        Share of the restored foreground's pixels that lie in false objects.
    """

    threshold: float
    n_truth: int
    n_restored: int
    n_false: int
    n_missed: int
    false_fraction: float
    missed_fraction: float
    false_area_fraction: float


def _unsupported(labels: np.ndarray, n: int, other: np.ndarray, min_overlap: float) -> tuple[int, int]:
    """Objects of ``labels`` with less than ``min_overlap`` of their area on ``other``; and their area."""
    if n == 0:
        return 0, 0
    flat = labels.reshape(-1)
    area = np.bincount(flat, minlength=n + 1)[1:]
    on = np.bincount(flat[other.reshape(-1)], minlength=n + 1)[1:]
    bad = on < min_overlap * area
    return int(bad.sum()), int(area[bad].sum())


def false_structure(truth: Any, restored: Any, *, threshold: float | None = None, min_size: int = 9,
                    min_overlap: float = 0.5) -> FalseStructure:
    """Count objects the restored image shows but the truth does not (hallucinations).

    Parameters
    ----------
    truth, restored : ndarray, (H, W), same shape
        The true image and the restored one, on the same intensity scale (bright objects on a
        dark background, e.g. fluorescence).
    threshold : float, optional
        Foreground threshold applied to both images; by default Otsu's threshold of ``truth``
        (the same threshold for both, so a change of contrast alone is not counted).
    min_size : int, default 9
        Objects smaller than this many pixels are ignored in both images (noise).
    min_overlap : float, default 0.5
        An object has a counterpart when at least this fraction of its pixels lies on the
        other image's foreground.

    Returns
    -------
    FalseStructure

    Raises
    ------
    deepscope.errors.InputError
        If the shapes differ, the images are not 2-D, or ``min_overlap`` is not in (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.zeros((40, 40)); truth[5:15, 5:15] = 1.0
    >>> restored = truth.copy(); restored[25:35, 25:35] = 1.0   # an invented object
    >>> fs = false_structure(truth, restored, threshold=0.5)
    >>> fs.n_truth, fs.n_restored, fs.n_false, fs.false_fraction
    (1, 2, 1, 0.5)
    """
    from scipy import ndimage as ndi

    t, r = _pair(truth, restored)
    if t.ndim != 2:
        raise InputError(f"false_structure needs 2-D grey images, got shape {t.shape}")
    if not 0 < min_overlap <= 1:
        raise InputError(f"min_overlap must be in (0, 1], got {min_overlap}")
    if threshold is None:
        from skimage.filters import threshold_otsu

        threshold = float(threshold_otsu(t)) if t.max() > t.min() else float(t.max())
    th = float(threshold)
    masks = []
    labels = []
    for img in (t, r):
        m = img > th
        lab, n = ndi.label(m)
        if n and min_size > 1:
            sizes = np.bincount(lab.reshape(-1), minlength=n + 1)
            small = sizes < min_size
            small[0] = False
            if small.any():
                m = m & ~small[lab]
                lab, n = ndi.label(m)
        masks.append(m)
        labels.append((lab, n))
    (lt, nt), (lr, nr) = labels
    n_false, false_area = _unsupported(lr, nr, masks[0], min_overlap)
    n_missed, _ = _unsupported(lt, nt, masks[1], min_overlap)
    fg = int(masks[1].sum())
    return FalseStructure(threshold=th, n_truth=nt, n_restored=nr, n_false=n_false, n_missed=n_missed,
                          false_fraction=n_false / nr if nr else 0.0,
                          missed_fraction=n_missed / nt if nt else 0.0,
                          false_area_fraction=false_area / fg if fg else 0.0)
