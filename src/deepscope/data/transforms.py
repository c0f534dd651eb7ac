"""Explicit, recorded intensity transforms and geometric augmentation helpers."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["normalize_percentile", "to_uint8", "to_grey", "to_rgb", "dihedral", "DIHEDRAL", "check_finite",
           "check_image", "MIN_IMAGE_SIZE"]

#: The 8 symmetries of the square: (k quarter-turns, transpose first).
DIHEDRAL = tuple((k, t) for t in (False, True) for k in range(4))

#: Smallest height and width (pixels) of an image that is counted, segmented, restored or analysed.
#: The flow and distance post-processing of the segmentation models takes gradients along both axes,
#: which need 2 pixels (a 1 x N image failed inside numpy); a 2 x 2 image runs everywhere. Counting
#: models need more (their binning and down-sampling), and say so with their own error.
MIN_IMAGE_SIZE = 2
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_image(image: np.ndarray, *, path: str = "") -> np.ndarray:
    """Refuse an image no model or pipeline step can work on: too small, or with values no result can be
    trusted on (:func:`check_finite`).

    Every path from a file to a model or a pipeline's steps goes through this check (the model's
    :func:`~deepscope.models.select_channels` and the pipeline's :func:`~deepscope.pipeline.apply_steps`),
    so a bad image is one clear error row wherever it is read.

    Parameters
    ----------
    image : numpy.ndarray, (H, W) or (H, W, C)
    path : str
        Named in the error messages.

    Returns
    -------
    numpy.ndarray
        ``image`` itself (for chaining).

    Raises
    ------
    deepscope.errors.InputError
        Height or width under :data:`MIN_IMAGE_SIZE`; complex values; NaN or infinite pixels; float
        pixels beyond float32's range.

    Examples
    --------
    >>> check_image(np.zeros((1, 1), np.uint8), path="dot.tif")
    Traceback (most recent call last):
    ...
    deepscope.errors.InputError: dot.tif: the image is 1 x 1 pixels (shape (1, 1)); at least 2 x 2 are needed ...
    """
    x = np.asarray(image)
    if x.ndim >= 2 and min(x.shape[:2]) < MIN_IMAGE_SIZE:
        raise InputError(f"{path or 'image'}: the image is {x.shape[0]} x {x.shape[1]} pixels (shape {x.shape}); at "
                         f"least {MIN_IMAGE_SIZE} x {MIN_IMAGE_SIZE} are needed to count, segment or measure "
                         "anything; leave the file out of the inputs (or check how it was cropped)")
    return check_finite(x, path=path)


def check_finite(image: np.ndarray, *, path: str = "") -> np.ndarray:
    """Refuse pixels no result can be trusted on: NaN or infinite values, float values beyond float32's
    range, and complex images.

    A single NaN pixel turns a percentile normalisation (and so every model's input) into NaN,
    which a segmenter reads as "no objects" without complaint. deepscope does not guess a value
    for such pixels: the image fails with an error that says how many there are and where the
    first one is, and the batch goes on with the next image. Models and normalisation work in
    float32, so float64 pixels beyond its range (about 3.4e38) would become infinite there: they
    are refused too, with the largest magnitude found and the fix (rescale the image).

    Returns
    -------
    numpy.ndarray
        ``image`` itself (for chaining).

    Raises
    ------
    deepscope.errors.InputError
        Complex values, NaN / infinite pixels, or float pixels beyond float32's range (the message
        names ``path``).

    Examples
    --------
    >>> x = np.ones((3, 4), np.float32); x[1, 2] = np.nan
    >>> check_finite(x, path="a.tif")
    Traceback (most recent call last):
    ...
    deepscope.errors.InputError: a.tif: 1 pixel(s) are NaN or infinite (the first at row 1, col 2); ...
    """
    x = np.asarray(image)
    where = path or "image"
    if x.dtype.kind == "c":
        raise InputError(f"{where}: complex values ({x.dtype}); give a real image (numpy.abs or .real, explicitly)")
    if x.dtype.kind != "f":
        return x
    bad = ~np.isfinite(x)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), x.shape)
        raise InputError(f"{where}: {int(bad.sum()):,} pixel(s) are NaN or infinite (the first at row {first[0]}, "
                         f"col {first[1]}); no count or segmentation can be trusted on them, so the image is not "
                         "processed. Replace them (e.g. numpy.nan_to_num with a background value) or crop them out")
    if x.dtype.itemsize > 4 and x.size:  # float64 (or wider): would the float32 cast overflow?
        big = max(abs(float(x.max())), abs(float(x.min())))
        if big > _FLOAT32_MAX:
            raise InputError(f"{where}: pixel values beyond float32's range (largest magnitude {big:.4g}; float32 "
                             f"holds up to {_FLOAT32_MAX:.4g}); models and normalisation compute in float32, where "
                             "they would become infinite and give no objects. Rescale the image (e.g. divide it by "
                             "its largest value) before processing it")
    return x


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8, *,
                         axis: Any = None, clip: bool = False, eps: float = 1e-6) -> np.ndarray:
    """Scale so the ``low`` and ``high`` percentiles map to 0 and 1; returns float32.

    Parameters
    ----------
    image : numpy.ndarray
        Any shape and dtype.
    low, high : float
        Percentiles in [0, 100], ``low < high``.
    axis : int or tuple, optional
        Axes over which percentiles are taken (all by default; e.g. ``(0, 1)`` for per-channel
        on a ``(H, W, C)`` image).
    clip : bool, default False
        Clip the result to [0, 1].
    eps : float
        Added to the denominator so flat images do not divide by zero.

    Returns
    -------
    numpy.ndarray of float32, same shape as ``image``.

    Raises
    ------
    deepscope.errors.InputError
        If the percentiles are out of order or range.

    Examples
    --------
    >>> import numpy as np
    >>> x = normalize_percentile(np.arange(101, dtype=np.uint8), 0, 100)
    >>> float(x.min()), float(x.max())
    (0.0, 1.0)
    """
    if not (0 <= low < high <= 100):
        raise InputError(f"percentiles must satisfy 0 <= low < high <= 100; got low={low}, high={high}")
    arr = np.asarray(image)
    if axis is None and arr.dtype in (np.uint8, np.uint16) and arr.size:
        lo, hi = _int_percentiles(arr, (low, high))  # exact, from a histogram: no sort of the pixels
        x = arr.astype(np.float32)
    else:
        x = arr.astype(np.float32, copy=False)
        lo, hi = np.percentile(x, [low, high], axis=axis, keepdims=True)
    out = (x - lo) / (hi - lo + eps)
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return out.astype(np.float32, copy=False)


def _int_percentiles(arr: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """``np.percentile(arr, qs)`` (linear interpolation) for uint8/uint16 images via a cumulative histogram."""
    counts = np.bincount(arr.ravel(), minlength=256)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = int(np.floor(pos))
        frac = pos - k
        v0 = int(np.searchsorted(cum, k, side="right"))
        v1 = int(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(v0 + frac * (v1 - v0))
    return tuple(out)


def to_uint8(image: np.ndarray, *, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Percentile-scale any image into uint8 for display (overlays, previews)."""
    x = normalize_percentile(image, low, high, clip=True)
    return np.round(x * 255).astype(np.uint8)


def to_grey(image: np.ndarray, *, axes: str = "YX", rule: str = "error", path: str = "") -> np.ndarray:
    """Return a single-channel ``(H, W)`` view of an image for one-channel models.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)``.
    rule : {"error", "mean", "first", "max"}
        What to do with several channels: refuse, average, take the first, take the maximum.
        RGB(A) images whose colour channels are all equal are always accepted (alpha dropped).

    Raises
    ------
    deepscope.errors.InputError
        Several distinct channels and ``rule="error"``, or an image that is not 2-D.
    """
    x = np.asarray(image)
    if x.ndim == 2:
        return x
    if x.ndim != 3:
        raise InputError(f"{path or 'image'}: expected a 2-D image (H, W) or (H, W, C), got shape {x.shape}")
    c = x.shape[-1]
    if c == 1:
        return x[..., 0]
    colour = x[..., :3] if c in (3, 4) else x
    if c in (2, 4):  # grey+alpha or RGBA: drop alpha
        colour = x[..., :-1]
    if colour.shape[-1] == 1 or all(np.array_equal(colour[..., 0], colour[..., j]) for j in range(1, colour.shape[-1])):
        return colour[..., 0]
    if rule == "mean":
        return colour.mean(axis=-1).astype(np.float32)
    if rule == "first":
        return colour[..., 0]
    if rule == "max":
        return colour.max(axis=-1)
    raise InputError(f"{path or 'image'} has {c} distinct channels but the model takes one; pass "
                     "channel=<index> or grey='mean'|'first'|'max' to choose how to reduce them")


def to_rgb(image: np.ndarray, *, channel: int | None = None, path: str = "") -> np.ndarray:
    """Return a three-channel ``(H, W, 3)`` view of an image for models that take colour.

    Grey images are replicated into three channels, an alpha channel is dropped (it is never image
    content), and ``channel`` picks one channel of a multi-channel image (replicated).

    Raises
    ------
    deepscope.errors.InputError
        An image with 2 or more than 4 channels and no ``channel``, or a ``channel`` out of range.

    Examples
    --------
    >>> to_rgb(np.zeros((4, 5), np.uint8)).shape, to_rgb(np.zeros((4, 5, 4), np.uint8)).shape
    ((4, 5, 3), (4, 5, 3))
    """
    x = np.asarray(image)
    if x.ndim == 3 and channel is not None:
        if not 0 <= channel < x.shape[-1]:
            raise InputError(f"{path or 'image'}: channel={channel} but the image has {x.shape[-1]} channels")
        x = x[..., channel]
    if x.ndim == 2:
        return np.repeat(x[..., None], 3, axis=-1)
    if x.ndim != 3:
        raise InputError(f"{path or 'image'}: expected a 2-D image (H, W) or (H, W, C), got shape {x.shape}")
    c = x.shape[-1]
    if c == 1:
        return np.repeat(x, 3, axis=-1)
    if c == 3:
        return x
    if c == 4:
        return x[..., :3]
    raise InputError(f"{path or 'image'} has {c} channels; the model takes grey or RGB(A) images: pass "
                     "channel=<index> (--channel) to choose the channel that shows the objects")


def dihedral(x: np.ndarray, k: int, transpose: bool, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Apply one of the 8 square symmetries to the two spatial ``axes``."""
    if transpose:
        x = np.swapaxes(x, *axes)
    return np.rot90(x, k, axes=axes)
