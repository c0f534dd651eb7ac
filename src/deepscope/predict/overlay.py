"""Outlines of instances drawn over an image: the overlay PNGs of ``deepscope segment``, pipelines and napari.

Examples
--------
>>> import numpy as np
>>> from deepscope.predict.overlay import overlay_outlines
>>> lab = np.zeros((8, 8), np.int32); lab[2:6, 2:6] = 1
>>> overlay_outlines(np.zeros((8, 8), np.uint8), lab).shape
(8, 8, 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from deepscope.errors import InputError

__all__ = ["overlay_outlines", "CLASS_COLORS", "SET_COLORS"]

#: Outline colours of instance classes (1..K) in overlays.
CLASS_COLORS = ((255, 220, 0), (0, 200, 255), (255, 64, 160), (120, 255, 80), (255, 128, 0))
#: Outline colours of several object sets in one overlay (pipelines), in the order of the sets; the first is
#: that of a single label image, so ``segment`` and ``analyze`` overlays look alike.
SET_COLORS = ((255, 220, 0), (255, 0, 255), (0, 200, 255), (0, 255, 0), (255, 64, 64), (160, 120, 255))


def overlay_outlines(image: np.ndarray, labels: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray], *,
                     color: tuple[int, int, int] = (255, 220, 0), classes: dict[int, int] | None = None) -> np.ndarray:
    """Outlines of instances drawn over the percentile-scaled image, as an RGB uint8 array.

    Parameters
    ----------
    image : numpy.ndarray, (H, W) or (H, W, C)
        Raw image (any dtype); shown percentile-scaled (0.5-99.8) in grey, or the first three
        channels as colour.
    labels : numpy.ndarray of int (H, W), or several (a mapping or sequence of them)
        Instance labels, 0 = background. Several object sets are drawn in :data:`SET_COLORS`, in order.
    color : (int, int, int)
        Outline colour of a single label image.
    classes : dict of int to int, optional
        Class (1..K) of each instance of a single label image: outlines in :data:`CLASS_COLORS`.

    Returns
    -------
    numpy.ndarray of uint8, (H, W, 3)

    Raises
    ------
    deepscope.errors.InputError
        If image and labels differ in height/width.

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((8, 8), np.int32); lab[2:6, 2:6] = 1
    >>> ov = overlay_outlines(np.zeros((8, 8), np.uint8), lab)
    >>> ov.shape, ov[2, 2].tolist(), ov[3, 3].tolist()
    ((8, 8, 3), [255, 220, 0], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    from deepscope.data.transforms import to_uint8
    from deepscope.io import Image, as_pixels

    img = np.asarray(as_pixels(image))
    labels = as_pixels(labels) if isinstance(labels, Image) else labels
    sets = list(labels.values()) if isinstance(labels, Mapping) else (
        [labels] if isinstance(labels, np.ndarray) else list(labels))
    for lab in sets:
        if img.shape[:2] != np.shape(lab)[:2]:
            raise InputError(f"image {img.shape[:2]} and labels {np.shape(lab)[:2]} differ in height/width")
    if img.ndim == 3 and img.shape[-1] >= 3:
        rgb = np.stack([to_uint8(img[..., k]) for k in range(3)], axis=-1)
    else:
        grey = to_uint8(img if img.ndim == 2 else img[..., 0])
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    single = len(sets) == 1 and isinstance(labels, np.ndarray)
    for i, lab in enumerate(sets):
        lab = np.asarray(lab)
        edges = find_boundaries(lab, mode="inner")
        if single and classes:
            palette = np.array(CLASS_COLORS, np.uint8)
            lut = np.zeros(int(lab.max()) + 1, np.int64)
            for k, c in classes.items():
                if 0 < int(k) < len(lut):
                    lut[int(k)] = int(c)
            cls = lut[lab[edges]]
            rgb[edges] = palette[(np.maximum(cls, 1) - 1) % len(palette)]
        else:
            rgb[edges] = np.asarray(color if single else SET_COLORS[i % len(SET_COLORS)], np.uint8)
    return rgb
