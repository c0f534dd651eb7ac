"""Classical baselines: Otsu + watershed segmentation and counting by foreground intensity.

These are the yardsticks the learned models are measured against (figures in BENCHMARKS.md).
They use NumPy, SciPy and scikit-image only.

:func:`otsu_watershed` follows what CellProfiler's IdentifyPrimaryObjects does with its
classic settings (global Otsu threshold, declumping by shape with a seeded watershed on the
distance transform, holes filled, small objects discarded), with one change: instead of a
typical-diameter range typed in by the user, the scale of the objects is estimated from the image
(the median area of the Otsu components), so the same call works on small DSB2018 nuclei and on
large BBBC005 cell bodies.

:class:`IntensityCountRegressor` counts cells from the total foreground intensity, fitted per
stain by least squares: more cells, more light, including in clumps that thresholding cannot split.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np

from deepscope.data.transforms import to_grey
from deepscope.errors import InputError

__all__ = ["otsu_watershed", "foreground_intensity", "IntensityCountRegressor", "CP_THRESHOLD_SIGMA"]

#: CellProfiler's default threshold smoothing scale 1.3488 as a Gaussian sigma (scale / 2.35).
CP_THRESHOLD_SIGMA = 1.3488 / 2.35


def _grey(image: Any, *, name: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} has dtype {arr.dtype}; expected a real numeric image")
    if arr.ndim != 2 and arr.ndim != 3:
        raise InputError(f"{name}: expected a 2-D image (H, W) or (H, W, C), got shape {arr.shape}")
    try:
        arr = to_grey(arr, path=name)  # identical colour channels (and an alpha channel) are accepted
    except InputError:
        raise InputError(f"{name} has {arr.shape[-1]} distinct channels; pass one channel (the nuclear "
                         f"stain), e.g. image[..., 0], or a grey image") from None
    out = arr.astype(np.float32, copy=False)
    if out.size and not np.all(np.isfinite(out)):
        raise InputError(f"{name} has NaN or infinite pixels; replace them (e.g. numpy.nan_to_num) first")
    return out


def _otsu_mask(grey: np.ndarray, sigma: float) -> np.ndarray | None:
    """Foreground mask by Otsu's threshold of the (smoothed) image; None for a flat image."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(grey, sigma) if sigma > 0 else grey
    if grey.size == 0 or float(smooth.max()) <= float(smooth.min()):
        return None
    return smooth > threshold_otsu(smooth)


def otsu_watershed(image: Any, *, min_size: int | None = None, smoothing_sigma: float = CP_THRESHOLD_SIGMA,
                   footprint: int | None = None, object_size: float | None = None,
                   distance_sigma: float | None = None, fill_holes: bool = True,
                   exclude_border: bool = False) -> np.ndarray:
    """Segment bright objects on a dark background: Otsu threshold, then a shape-seeded watershed.

    Steps: Gaussian smoothing (``smoothing_sigma``); Otsu's threshold; fill holes; drop
    components smaller than ``min_size``; distance transform of the mask, smoothed by
    ``distance_sigma``; one seed per local maximum in a ``footprint`` x ``footprint`` window
    (and one per component without any); watershed of the negated distance inside the mask;
    drop fragments smaller than ``min_size``; number the objects 1..n.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C) with equal channels
        Fluorescence image, any real dtype (raw values; Otsu's threshold does not depend on the scale).
    min_size : int, optional
        Smallest object kept, in pixels. Default: a tenth of the typical object area, at least 4.
    smoothing_sigma : float, default 0.574
        Gaussian sigma before thresholding (CellProfiler's default smoothing scale 1.3488 / 2.35).
    footprint : int, optional
        Side of the window in which a distance maximum must be the largest to seed an object
        (CellProfiler's "suppress local maxima closer than"). Default: 1.2 x the typical radius.
    object_size : float, optional
        Typical object diameter in pixels. Default: estimated as the diameter of a disc with the
        median area of the Otsu components (at least 4 pixels each).
    distance_sigma : float, optional
        Gaussian sigma applied to the distance transform before finding maxima (merges the
        several maxima of elongated objects). Default: 0.2 x the typical radius.
    fill_holes : bool, default True
        Fill holes in the foreground mask.
    exclude_border : bool, default False
        Remove objects touching the image border (CellProfiler's default is True; off here so
        that scores on images with cut objects at the border stay comparable).

    Returns
    -------
    ndarray of int32, (H, W)
        Instance labels 1..n, 0 = background. A flat or all-black image gives no objects.

    Raises
    ------
    deepscope.errors.InputError
        If the image is not 2-D (or has distinct channels), not numeric, has NaN pixels, or a
        parameter is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> rr, cc = np.mgrid[:64, :64]
    >>> img = ((rr - 20) ** 2 + (cc - 20) ** 2 < 64) * 200 + ((rr - 44) ** 2 + (cc - 40) ** 2 < 81) * 180
    >>> labels = otsu_watershed(img.astype(np.uint8))
    >>> labels.dtype.name, int(labels.max())
    ('int32', 2)
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    for pname, val in (("smoothing_sigma", smoothing_sigma), ("distance_sigma", distance_sigma)):
        if val is not None and (not np.isfinite(val) or val < 0):
            raise InputError(f"{pname} must be >= 0, got {val}")
    if min_size is not None and min_size < 0:
        raise InputError(f"min_size must be >= 0 pixels, got {min_size}")
    if footprint is not None and footprint < 1:
        raise InputError(f"footprint must be >= 1 pixel, got {footprint}")
    if object_size is not None and not object_size > 0:
        raise InputError(f"object_size must be a positive diameter in pixels, got {object_size}")
    grey = _grey(image)
    mask = _otsu_mask(grey, smoothing_sigma)
    if mask is None:
        return np.zeros(grey.shape, np.int32)
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    comps, n = ndi.label(mask)
    if n == 0:
        return np.zeros(grey.shape, np.int32)
    areas = np.bincount(comps.reshape(-1))[1:]
    if object_size is None:
        big = areas[areas >= 4]
        typical = float(np.median(big)) if big.size else float(areas.max())
        radius = float(np.sqrt(typical / np.pi))
    else:
        radius = float(object_size) / 2.0
        typical = np.pi * radius * radius
    min_px = max(4, int(round(0.1 * typical))) if min_size is None else int(min_size)
    small = np.r_[False, areas < min_px]
    if small.any():
        mask &= ~small[comps]
        comps, n = ndi.label(mask)
        if n == 0:
            return np.zeros(grey.shape, np.int32)
    dist = ndi.distance_transform_edt(mask)
    dsig = 0.2 * radius if distance_sigma is None else float(distance_sigma)
    if dsig > 0:
        dist = ndi.gaussian_filter(dist, dsig)
    side = int(footprint) if footprint is not None else max(3, 2 * int(round(0.6 * radius)) + 1)
    peaks = peak_local_max(dist, footprint=np.ones((side, side), bool), labels=comps, exclude_border=False)
    seeds = np.zeros(mask.shape, bool)
    seeds[tuple(peaks.T)] = True
    markers, n_seeds = ndi.label(seeds, structure=np.ones((3, 3), bool))  # a plateau is one seed
    seeded = np.zeros(n + 1, bool)
    seeded[comps[markers > 0]] = True
    unseeded = ~seeded
    unseeded[0] = False
    if unseeded.any():  # a component without a maximum keeps one seed: itself
        extra = unseeded[comps]
        markers[extra] = comps[extra] + n_seeds
    labels = watershed(-dist, markers, mask=mask)
    if exclude_border:
        from skimage.segmentation import clear_border

        labels = clear_border(labels)
    sizes = np.bincount(labels.reshape(-1))
    keep = sizes >= max(min_px, 1)
    keep[0] = False
    lut = np.zeros(len(sizes), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def foreground_intensity(image: Any, *, smoothing_sigma: float = CP_THRESHOLD_SIGMA) -> float:
    """Total intensity of the foreground above the background level.

    The foreground is Otsu's mask of the (smoothed) image; the background level is the median of
    the other pixels. Returns ``sum(image[fg] - background)`` in the image's raw units
    (0.0 for a flat image).

    Raises
    ------
    deepscope.errors.InputError
        If the image is not 2-D (or has distinct channels), not numeric, or has NaN pixels.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((20, 20), 10.0); img[5:10, 5:10] = 30.0
    >>> foreground_intensity(img, smoothing_sigma=0)
    500.0
    """
    grey = _grey(image)
    mask = _otsu_mask(grey, smoothing_sigma)
    if mask is None:
        return 0.0
    bg = grey[~mask]
    level = float(np.median(bg)) if bg.size else 0.0
    return float(np.sum(grey[mask].astype(np.float64) - level))


class IntensityCountRegressor:
    """Count cells by a linear fit of count on total foreground intensity, one fit per stain.

    ``count = slope[g] * foreground_intensity(image) + intercept[g]`` for group ``g`` (e.g. the
    stain), fitted by least squares on training images. Predictions are clipped at 0.

    Parameters
    ----------
    smoothing_sigma : float, default 0.574
        Gaussian sigma before Otsu's threshold (see :func:`foreground_intensity`).

    Attributes
    ----------
    coef_ : dict
        Group -> ``(slope, intercept)`` after :meth:`fit`; the group is ``None`` when fitted
        without groups.

    Examples
    --------
    >>> import numpy as np
    >>> def field(n):
    ...     img = np.full((40, 40), 5.0)
    ...     for k in range(n):
    ...         img[2 + 4 * k:4 + 4 * k, 5:7] = 50.0
    ...     return img
    >>> model = IntensityCountRegressor(smoothing_sigma=0).fit([field(n) for n in (1, 3, 6, 9)], [1, 3, 6, 9])
    >>> np.round(model.predict([field(4), field(8)]), 3).tolist()
    [4.0, 8.0]
    """

    def __init__(self, *, smoothing_sigma: float = CP_THRESHOLD_SIGMA) -> None:
        if not np.isfinite(smoothing_sigma) or smoothing_sigma < 0:
            raise InputError(f"smoothing_sigma must be >= 0, got {smoothing_sigma}")
        self.smoothing_sigma = float(smoothing_sigma)
        self.coef_: dict[Hashable, tuple[float, float]] = {}

    def __repr__(self) -> str:
        state = f"{len(self.coef_)} group(s)" if self.coef_ else "not fitted"
        return f"IntensityCountRegressor(smoothing_sigma={self.smoothing_sigma:g}; {state})"

    def features(self, images: Iterable[Any]) -> np.ndarray:
        """Foreground intensity of every image, shape (n,)."""
        return np.array([foreground_intensity(img, smoothing_sigma=self.smoothing_sigma) for img in images],
                        dtype=np.float64)

    @staticmethod
    def _groups(groups: Any, n: int) -> list[Hashable]:
        if groups is None:
            return [None] * n
        g = list(groups) if not isinstance(groups, str) else [groups]
        if len(g) != n:
            raise InputError(f"groups has {len(g)} values for {n} images; give one group (e.g. stain) per image")
        return [v.item() if isinstance(v, np.generic) else v for v in g]

    def fit(self, images: Iterable[Any], counts: Sequence[float], groups: Sequence[Hashable] | None = None
            ) -> IntensityCountRegressor:
        """Fit one line per group on training images and their true counts.

        Raises
        ------
        deepscope.errors.InputError
            If lengths differ, a group has fewer than 2 images or a constant intensity, or an
            image is invalid.
        """
        return self.fit_features(self.features(images), counts, groups)

    def fit_features(self, x: Any, counts: Sequence[float], groups: Sequence[Hashable] | None = None
                     ) -> IntensityCountRegressor:
        """Fit on precomputed :meth:`features` (same rules as :meth:`fit`)."""
        xv = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.asarray(counts, dtype=np.float64).reshape(-1)
        if len(xv) != len(y):
            raise InputError(f"{len(xv)} images but {len(y)} counts; give one count per image")
        if not np.all(np.isfinite(y)):
            raise InputError("counts has NaN or infinite values")
        g = self._groups(groups, len(xv))
        coef: dict[Hashable, tuple[float, float]] = {}
        for key in dict.fromkeys(g):
            sel = np.array([v == key for v in g])
            if sel.sum() < 2 or np.ptp(xv[sel]) == 0:
                raise InputError(f"group {key!r} has {int(sel.sum())} image(s) with "
                                 f"{'constant' if sel.sum() >= 2 else 'too few'} intensities; a line needs at least "
                                 "2 images of different intensity per group")
            slope, intercept = np.polyfit(xv[sel], y[sel], 1)
            coef[key] = (float(slope), float(intercept))
        self.coef_ = coef
        return self

    def predict(self, images: Iterable[Any], groups: Sequence[Hashable] | None = None) -> np.ndarray:
        """Predicted counts (float, >= 0) for images.

        Raises
        ------
        deepscope.errors.InputError
            If the model is not fitted, groups are missing/unknown, or an image is invalid.
        """
        return self.predict_features(self.features(images), groups)

    def predict_features(self, x: Any, groups: Sequence[Hashable] | None = None) -> np.ndarray:
        """Predict from precomputed :meth:`features` (same rules as :meth:`predict`)."""
        if not self.coef_:
            raise InputError("IntensityCountRegressor is not fitted; call fit(images, counts, groups) first")
        xv = np.asarray(x, dtype=np.float64).reshape(-1)
        fitted_with_groups = None not in self.coef_
        if fitted_with_groups and groups is None:
            raise InputError(f"the model was fitted per group {sorted(map(str, self.coef_))}; give groups= "
                             "for the images to predict")
        g = self._groups(groups if fitted_with_groups else None, len(xv))
        unknown = sorted({str(v) for v in g if v not in self.coef_})
        if unknown:
            raise InputError(f"unknown group(s) {unknown}; the model knows {sorted(map(str, self.coef_))}")
        slope = np.array([self.coef_[v][0] for v in g])
        intercept = np.array([self.coef_[v][1] for v in g])
        return np.clip(slope * xv + intercept, 0.0, None)
