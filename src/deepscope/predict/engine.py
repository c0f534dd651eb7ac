"""Inference engine: layout conversion, padding, tiling with overlap, batching and test-time augmentation.

The only conversion between NumPy's channel-last ``(N, H, W, C)`` and torch's ``(N, C, H, W)``
lives here (:func:`to_tensor` / :func:`to_numpy`); training code imports them from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepscope.errors import InputError

__all__ = ["to_tensor", "to_numpy", "pad_to_multiple", "run_network", "tile_grid", "Tile", "TTA_MODES"]

#: Test-time augmentation: none, flips (4 = identity, two flips, both), all 8 square symmetries.
TTA_MODES = ("none", "flips", "d8")


def to_tensor(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(N, H, W, C)`` or ``(H, W, C)`` NumPy -> ``(N, C, H, W)`` float32 tensor on ``device``."""
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise InputError(f"expected (N, H, W, C) or (H, W, C), got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
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
    mode = "reflect" if (th - h) < h and (tw - w) < w else "constant"
    return np.pad(x, pad, mode=mode), (h, w)


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


def _tta_ops(mode: str) -> list[tuple[int, bool]]:
    if mode == "none":
        return [(0, False)]
    if mode == "flips":
        return [(0, False), (2, False), (1, True), (3, True)]  # id, rot180, and the two axis flips
    if mode == "d8":
        return [(k, t) for t in (False, True) for k in range(4)]
    raise InputError(f"tta={mode!r} is not one of {TTA_MODES}")


def _apply(t: torch.Tensor, k: int, transpose: bool) -> torch.Tensor:
    if transpose:
        t = t.transpose(-2, -1)
    return torch.rot90(t, k, dims=(-2, -1))


def _invert(t: torch.Tensor, k: int, transpose: bool) -> torch.Tensor:
    t = torch.rot90(t, -k, dims=(-2, -1))
    if transpose:
        t = t.transpose(-2, -1)
    return t


@torch.inference_mode()
def run_network(net: nn.Module, images: np.ndarray | list[np.ndarray], *, stride: int = 16,
                device: torch.device | str = "cpu", batch_size: int = 4, tta: str = "none",
                activation: nn.Module | None = None, channels_last: bool = True,
                amp_dtype: torch.dtype | None = None) -> list[np.ndarray]:
    """Run a fully convolutional network on images of any size; returns one ``(C, h, w)`` map per image.

    Images are padded to a multiple of ``stride`` and the output cropped back to the input size
    (divided by the network's input pooling, if any). ``tta`` averages the outputs over flips or the
    8 symmetries (after ``activation``). Images of equal size are batched.

    Parameters
    ----------
    net : torch.nn.Module
        In eval mode; maps ``(N, C, H, W)`` to ``(N, K, H/p, W/p)``.
    images : (N, H, W, C) array or list of (H, W, C) float32 arrays
    """
    imgs = list(images)
    outs: list[np.ndarray | None] = [None] * len(imgs)
    ops = _tta_ops(tta)
    # group by shape so equal sizes batch together
    order = sorted(range(len(imgs)), key=lambda i: imgs[i].shape)
    groups: list[list[int]] = []
    for i in order:
        if groups and imgs[groups[-1][0]].shape == imgs[i].shape and len(groups[-1]) < batch_size:
            groups[-1].append(i)
        else:
            groups.append([i])
    dev = torch.device(device)
    for g in groups:
        padded = []
        hw = imgs[g[0]].shape[:2]
        for i in g:
            p, _ = pad_to_multiple(imgs[i], stride)
            padded.append(p)
        x = to_tensor(np.stack(padded), dev)
        if channels_last and dev.type != "mps":
            x = x.contiguous(memory_format=torch.channels_last)
        acc = None
        for k, tr in ops:
            with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                y = net(_apply(x, k, tr))
            y = y.float()
            if activation is not None:
                y = activation(y)
            y = _invert(y, k, tr)
            acc = y if acc is None else acc + y
        assert acc is not None
        acc = acc / len(ops)
        factor = x.shape[-1] // acc.shape[-1] if acc.ndim == 4 else 1
        h, w = (hw[0] + factor - 1) // factor, (hw[1] + factor - 1) // factor
        res = acc[..., :h, :w].cpu().numpy() if acc.ndim == 4 else acc.cpu().numpy()
        for j, i in enumerate(g):
            outs[i] = res[j]
    return [o for o in outs if o is not None]


def iter_batches(n: int, batch_size: int) -> Iterator[range]:
    """Ranges of at most ``batch_size`` indices covering ``range(n)``."""
    for s in range(0, n, batch_size):
        yield range(s, min(s + batch_size, n))
