"""Array plumbing of inference and training: layout conversion, padding to a stride, the tile grid.

The only conversion between NumPy's channel-last ``(N, H, W, C)`` and torch's ``(N, C, H, W)``
lives here (:func:`to_tensor` / :func:`to_numpy`); training code imports them from here. The
predictor (:mod:`deepscope.predict.predictor`) runs networks with these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["to_nchw", "to_tensor", "to_numpy", "pad_to_multiple", "tile_grid", "Tile", "TTA_MODES"]

#: Test-time augmentation: none, transpose (2 = identity and the transposed image), flips (4 = identity, two
#: flips, both), all 8 square symmetries.
TTA_MODES = ("none", "transpose", "diagonal", "flips", "d8")


def to_nchw(x: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` or ``(H, W, C)`` NumPy -> a float32 ``(N, C, H, W)`` view (no copy when float32).

    Raises
    ------
    deepscope.errors.InputError
        Any other number of dimensions.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise InputError(f"expected (N, H, W, C) or (H, W, C), got shape {a.shape}")
    return a.transpose(0, 3, 1, 2)


def to_tensor(x: np.ndarray, device: Any = "cpu") -> Any:
    """``(N, H, W, C)`` or ``(H, W, C)`` NumPy -> ``(N, C, H, W)`` float32 tensor on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(to_nchw(x))).to(device)


def to_numpy(t: Any) -> np.ndarray:
    """``(N, C, H, W)`` tensor -> ``(N, H, W, C)`` float32 NumPy."""
    return t.detach().float().cpu().numpy().transpose(0, 2, 3, 1)


def pad_to_multiple(x: np.ndarray, multiple: int, *, min_size: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad an ``(H, W, C)`` array at the bottom/right (reflect where possible) to multiples of ``multiple``.

    Returns the padded array and the original ``(H, W)``.
    """
    h, w = x.shape[:2]
    th = max(int(math.ceil(h / multiple) * multiple), min_size)
    tw = max(int(math.ceil(w / multiple) * multiple), min_size)
    if (th, tw) == (h, w):
        return x, (h, w)
    pad = ((0, th - h), (0, tw - w)) + ((0, 0),) * (x.ndim - 2)
    if (th - h) < h and (tw - w) < w:
        return np.pad(x, pad, mode="reflect"), (h, w)
    return np.pad(x, pad, mode="constant"), (h, w)


@dataclass(frozen=True)
class Tile:
    """A tile: the region read (with halo) and the core region it is responsible for."""

    read: tuple[slice, slice]
    core: tuple[slice, slice]


def tile_grid(shape: tuple[int, int], tile: int, overlap: int) -> list[Tile]:
    """Tiles of at most ``tile`` x ``tile`` whose cores partition the image and whose reads add ``overlap``.

    Raises
    ------
    deepscope.errors.InputError
        If ``tile <= 2 * overlap``.
    """
    if tile <= 2 * overlap:
        raise InputError(f"tile={tile} must be larger than 2 * overlap={2 * overlap}")
    step = tile - 2 * overlap
    out = []
    h, w = shape
    for r0 in range(0, h, step):
        for c0 in range(0, w, step):
            core = (slice(r0, min(r0 + step, h)), slice(c0, min(c0 + step, w)))
            rr = (max(r0 - overlap, 0), min(r0 + step + overlap, h))
            cc = (max(c0 - overlap, 0), min(c0 + step + overlap, w))
            out.append(Tile((slice(*rr), slice(*cc)), core))
    return out
