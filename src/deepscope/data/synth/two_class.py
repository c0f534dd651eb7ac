"""Two kinds of objects of different shape, rods and cocci, with a class per instance.

A scene for multi-class instance segmentation in the spirit of the Gram-positive cocci
versus Gram-negative rods example: in one grey fluorescence image, the class of an object
is given by its shape alone (rods: capsules of random length, width and orientation; cocci:
small round discs, some in touching pairs, diplococci), while brightness, texture and noise are
drawn from the same distributions for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepscope.data.synth._render import BIT_DEPTHS, Seed, as_rng, camera_noise, check_size, gaussian, quantize
from deepscope.errors import InputError

__all__ = ["TwoClassScene", "generate_two_class", "CLASS_NAMES", "ROD", "COCCUS"]

#: Class ids of :class:`TwoClassScene`: index = class id.
CLASS_NAMES = ("background", "rod", "coccus")
ROD, COCCUS = 1, 2


@dataclass(frozen=True)
class TwoClassScene:
    """A rods-and-cocci image with its instance and class ground truth.

    Attributes
    ----------
    image : numpy.ndarray of uint8 or uint16, shape (H, W)
        The fluorescence image.
    labels : numpy.ndarray of int32, shape (H, W)
        Instance labels, ids ``1..n_objects``, 0 = background. Objects never overlap.
    classes : numpy.ndarray of int32, shape (n_objects + 1,)
        Class of each instance id (:data:`ROD` = 1, :data:`COCCUS` = 2); ``classes[0] == 0``.
    class_map : numpy.ndarray of int32, shape (H, W)
        Semantic map: ``classes[labels]`` (0 = background, 1 = rod, 2 = coccus).
    """

    image: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    class_map: np.ndarray

    @property
    def n_objects(self) -> int:
        """Number of objects."""
        return int(len(self.classes) - 1)

    def counts(self) -> dict[str, int]:
        """Objects per class name, e.g. ``{"rod": 12, "coccus": 18}``."""
        return {name: int(np.sum(self.classes[1:] == k)) for k, name in enumerate(CLASS_NAMES) if k > 0}


def _check_range(name: str, v: tuple[float, float], *, minimum: float = 0.0) -> tuple[float, float]:
    try:
        lo, hi = float(v[0]), float(v[1])
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{name} must be a (low, high) pair; got {v!r}") from None
    if not minimum < lo <= hi:
        raise InputError(f"{name} must be (low, high) with {minimum} < low <= high; got {v!r}")
    return lo, hi


def generate_two_class(n_objects: int, *, size: tuple[int, int] = (256, 256), seed: Seed = None,
                       rod_fraction: float = 0.5, rod_length: tuple[float, float] = (16.0, 34.0),
                       rod_width: tuple[float, float] = (5.0, 8.0), coccus_radius: tuple[float, float] = (3.5, 5.5),
                       pair_fraction: float = 0.3, intensity: float = 150.0, intensity_cv: float = 0.15,
                       edge_sigma: float = 1.0, noise_sd: float = 3.0, blur: int = 1, bit_depth: int = 8,
                       gap: int = 2) -> TwoClassScene:
    """Simulate rods and cocci with instance labels and a class per instance.

    Parameters
    ----------
    n_objects : int
        Number of objects (>= 0); a coccus pair counts as two objects.
    size : (int, int), default (256, 256)
        Image size (rows, cols).
    seed : int, numpy.random.Generator or None
        Randomness; the same int seed and arguments give identical arrays.
    rod_fraction : float, default 0.5
        Probability that an object is a rod.
    rod_length, rod_width : (float, float)
        Ranges (pixels) of a rod's end-to-end length and its width.
    coccus_radius : (float, float)
        Range of a coccus radius (pixels).
    pair_fraction : float, default 0.3
        Probability that a coccus gets a touching twin (a diplococcus; two instances).
    intensity, intensity_cv : float
        Mean brightness (0-255 scale) and its variation between objects, the same for both classes.
    edge_sigma : float, default 1.0
        Softness of the object edges (Gaussian sigma, pixels).
    noise_sd : float, default 3.0
        Camera noise (0-255 scale), clipped at 0 like the BBBC005-style generator.
    blur : int, default 1
        Focus-blur index F >= 1 (Gaussian sigma 0.25 * F, as :func:`generate_field`).
    bit_depth : {8, 16}, default 8
        uint8 or uint16 image.
    gap : int, default 2
        Minimum free pixels between objects (except the two cocci of a pair, which touch).

    Returns
    -------
    TwoClassScene

    Raises
    ------
    deepscope.errors.InputError
        Negative ``n_objects``, invalid ranges, fractions outside [0, 1], blur < 1, a bit depth
        other than 8 or 16, or an image too small to place the objects apart.

    Examples
    --------
    >>> s = generate_two_class(30, size=(128, 128), seed=0)
    >>> s.n_objects, int(s.labels.max()), s.image.dtype
    (30, 30, dtype('uint8'))
    >>> bool((s.class_map == s.classes[s.labels]).all())
    True
    """
    if isinstance(n_objects, bool) or not isinstance(n_objects, (int, np.integer)) or n_objects < 0:
        raise InputError(f"n_objects must be an integer >= 0; got {n_objects!r}")
    h, w = check_size(size)
    for name, v in (("rod_fraction", rod_fraction), ("pair_fraction", pair_fraction)):
        if not 0 <= v <= 1:
            raise InputError(f"{name} must be in [0, 1]; got {v!r}")
    rl, rw = _check_range("rod_length", rod_length), _check_range("rod_width", rod_width)
    cr = _check_range("coccus_radius", coccus_radius)
    if isinstance(blur, bool) or not isinstance(blur, (int, np.integer)) or blur < 1:
        raise InputError(f"blur must be an integer >= 1 (F1 = in focus); got {blur!r}")
    if bit_depth not in BIT_DEPTHS:
        raise InputError(f"bit_depth must be one of {BIT_DEPTHS}; got {bit_depth!r}")
    if intensity <= 0 or intensity_cv < 0 or edge_sigma < 0 or noise_sd < 0 or gap < 0:
        raise InputError("intensity must be > 0 and intensity_cv, edge_sigma, noise_sd, gap >= 0; got "
                         f"{(intensity, intensity_cv, edge_sigma, noise_sd, gap)!r}")
    mean_area = rod_fraction * (rw[1] * rl[1]) + (1 - rod_fraction) * math.pi * cr[1] ** 2
    if n_objects * mean_area > 0.5 * h * w:
        raise InputError(f"size={(h, w)} is too small for {n_objects} objects: they would cover "
                         f"{n_objects * mean_area / (h * w):.0%} of the image (at most 50%); use a larger size or "
                         "fewer objects")
    rng = as_rng(seed)
    labels = np.zeros((h, w), np.int32)
    occupied = np.zeros((h, w), bool)  # objects grown by ``gap``
    canvas = np.zeros((h, w), np.float32)
    classes = [0]
    s2 = math.log1p(intensity_cv**2)
    ident = 0
    while ident < n_objects:
        is_rod = rng.random() < rod_fraction
        if is_rod:
            shape = ("rod", rng.uniform(*rl), rng.uniform(*rw), rng.uniform(0, math.pi))
            members = [shape]
        else:
            r = rng.uniform(*cr)
            members = [("coccus", r, r * rng.uniform(0.9, 1.0), rng.uniform(0, math.pi))]
            if ident + 2 <= n_objects and rng.random() < pair_fraction:
                members.append(("coccus", r * rng.uniform(0.9, 1.1), r * rng.uniform(0.9, 1.0), rng.uniform(0, math.pi)))
        pair_angle = rng.uniform(0, 2 * math.pi)
        for _attempt in range(500):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            masks = []
            ok = True
            for k, m in enumerate(members):
                oy, ox = (0.0, 0.0)
                if k == 1:  # the twin touches the first coccus
                    d = members[0][1] + m[1]
                    oy, ox = d * math.sin(pair_angle), d * math.cos(pair_angle)
                mask, grown, rs, cs = _raster(m, cy + oy, cx + ox, (h, w), gap)
                if mask is None or occupied[rs, cs][grown].any():
                    ok = False
                    break
                masks.append((mask, grown, rs, cs))
            if ok:
                break
        else:
            raise InputError(f"size={(h, w)} is too small: only {ident} of {n_objects} objects could be placed "
                             f"{gap} px apart; use a larger size, fewer objects or gap=0")
        for m, (mask, grown, rs, cs) in zip(members, masks):
            ident += 1
            labels[rs, cs][mask] = ident
            classes.append(ROD if m[0] == "rod" else COCCUS)
            b = intensity * math.exp(rng.standard_normal() * math.sqrt(s2) - s2 / 2)
            canvas[rs, cs][mask] = b * (1.0 + 0.06 * rng.standard_normal(int(mask.sum()))).astype(np.float32)
        for mask, grown, rs, cs in masks:
            occupied[rs, cs] |= grown
    cls = np.asarray(classes, np.int32)
    img = gaussian(canvas, edge_sigma, truncate=3.0)
    img += camera_noise(rng, (h, w), noise_sd, 0.5)
    img = np.maximum(gaussian(img, 0.6, truncate=2.0), 0)
    img = quantize(gaussian(img, 0.25 * blur, truncate=2.0), bit_depth)
    return TwoClassScene(image=img, labels=labels, classes=cls, class_map=cls[labels])


def _raster(member: tuple[str, float, float, float], cy: float, cx: float, size: tuple[int, int], gap: int
            ) -> tuple[np.ndarray | None, np.ndarray, slice, slice]:
    """Mask of one object (and of it grown by ``gap``) over its bounding patch; None if off the image."""
    kind, a, b, theta = member
    h, w = size
    if kind == "rod":
        reach = a / 2 + b / 2
    else:
        reach = max(a, b)
    ext = int(math.ceil(reach)) + gap + 1
    r0, r1 = max(int(cy) - ext, 0), min(int(cy) + ext + 1, h)
    c0, c1 = max(int(cx) - ext, 0), min(int(cx) + ext + 1, w)
    if not (0 <= cy < h and 0 <= cx < w) or r0 >= r1 or c0 >= c1:
        return None, np.zeros((0, 0), bool), slice(0, 0), slice(0, 0)
    dy = (np.arange(r0, r1, dtype=np.float32) + 0.5 - cy)[:, None]
    dx = (np.arange(c0, c1, dtype=np.float32) + 0.5 - cx)[None, :]
    sy, sx = math.sin(theta), math.cos(theta)
    if kind == "rod":
        half_len = max(a - b, 0.0) / 2  # the caps add b / 2 at each end
        t = np.clip(dy * sy + dx * sx, -half_len, half_len)
        dist = np.sqrt((dy - t * sy) ** 2 + (dx - t * sx) ** 2)
        radius = b / 2
        mask, grown = dist <= radius, dist <= radius + gap
    else:
        u, v = dy * sy + dx * sx, -dy * sx + dx * sy
        q = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        mask, grown = q <= 1.0, q <= 1.0 + gap / max(b, 1e-6)
    if not mask.any():
        return None, grown, slice(r0, r1), slice(c0, c1)
    return mask, grown, slice(r0, r1), slice(c0, c1)
