"""The one inference seam: a :class:`Predictor` runs any backend over images of any size.

It pads images to the network's stride, batches images of equal size, averages test-time
augmentations (after the activation it is given) and crops the outputs back; :func:`stitch_tiles`
and :func:`label_tiles` process large images tile by tile with overlap. The network itself runs in a
backend (:mod:`deepscope.predict.backends`): PyTorch today, another runtime as one more class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.predict.backends import InferenceBackend
from deepscope.predict.engine import TTA_MODES, pad_to_multiple, tile_grid, to_nchw

__all__ = ["Predictor", "run_network", "stitch_tiles", "label_tiles", "softplus", "tta_ops"]

Activation = Callable[[np.ndarray], np.ndarray]


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` of a float32 array (linear above 20), computed by torch's vectorised kernel."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        return F.softplus(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def tta_ops(mode: str) -> list[tuple[int, bool]]:
    """The symmetries ``(quarter turns, transpose first)`` averaged by a test-time augmentation mode.

    Raises
    ------
    deepscope.errors.InputError
        An unknown mode.
    """
    if mode == "none":
        return [(0, False)]
    if mode == "transpose":
        return [(0, False), (0, True)]  # identity and the transpose: half the passes of flips
    if mode == "diagonal":  # the symmetries that keep the main diagonal: id, transpose, rot180, anti-transpose
        return [(0, False), (0, True), (2, False), (2, True)]
    if mode == "flips":
        return [(0, False), (2, False), (1, True), (3, True)]  # id, rot180, and the two axis flips
    if mode == "d8":
        return [(k, t) for t in (False, True) for k in range(4)]
    raise InputError(f"tta={mode!r} is not one of {TTA_MODES}")


def _apply(a: np.ndarray, k: int, transpose: bool) -> np.ndarray:
    if transpose:
        a = np.swapaxes(a, -2, -1)
    return np.rot90(a, k, axes=(-2, -1))


def _invert(a: np.ndarray, k: int, transpose: bool) -> np.ndarray:
    a = np.rot90(a, -k, axes=(-2, -1))
    return np.swapaxes(a, -2, -1) if transpose else a


class Predictor:
    """Run a backend on images: padding to the stride, batching, test-time augmentation, activation.

    Parameters
    ----------
    backend : InferenceBackend
    stride : int
        Inputs are padded (reflect where possible) to multiples of this and outputs cropped back
        (divided by the network's own down-sampling, if any).
    batch_size : int
        Images of equal size per backend call.
    tta : {"none", "transpose", "flips", "d8"}
        Average over flips or the 8 symmetries of the square.
    activation : callable, optional
        Applied to each augmented output before averaging (e.g. :func:`softplus` for densities).

    Examples
    --------
    >>> import numpy as np
    >>> class Twice:
    ...     name = "demo"
    ...     def forward(self, x):
    ...         return 2 * x
    >>> Predictor(Twice(), stride=4).maps([np.ones((5, 6, 1), np.float32)])[0].shape
    (1, 5, 6)
    """

    def __init__(self, backend: InferenceBackend, *, stride: int = 1, batch_size: int = 4, tta: str = "none",
                 activation: Activation | None = None) -> None:
        self.backend = backend
        self.stride = int(stride)
        self.batch_size = max(1, int(batch_size))
        self.ops = tta_ops(tta)
        self.activation = activation

    def maps(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One ``(K, h, w)`` float32 map per ``(H, W, C)`` image, in input order."""
        imgs = list(images)
        outs: list[np.ndarray | None] = [None] * len(imgs)
        order = sorted(range(len(imgs)), key=lambda i: imgs[i].shape)
        groups: list[list[int]] = []
        for i in order:  # equal sizes batch together
            if groups and imgs[groups[-1][0]].shape == imgs[i].shape and len(groups[-1]) < self.batch_size:
                groups[-1].append(i)
            else:
                groups.append([i])
        for g in groups:
            hw = imgs[g[0]].shape[:2]
            x = to_nchw(np.stack([pad_to_multiple(np.asarray(imgs[i], np.float32), self.stride)[0] for i in g]))
            acc = None
            for k, tr in self.ops:
                y = self.backend.forward(_apply(x, k, tr))
                if self.activation is not None:
                    y = self.activation(y)
                y = _invert(y, k, tr)
                acc = y if acc is None else acc + y
            assert acc is not None
            acc = acc / np.float32(len(self.ops)) if len(self.ops) > 1 else acc
            factor = x.shape[-1] // acc.shape[-1]
            h, w = (hw[0] + factor - 1) // factor, (hw[1] + factor - 1) // factor
            res = acc[..., :h, :w]
            for j, i in enumerate(g):
                outs[i] = res[j]
        return [o for o in outs if o is not None]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The backend's output for an ``(N, H, W, C)`` batch as it is (no padding, augmentation or activation)."""
        return self.backend.forward(to_nchw(batch))


def run_network(net: Any, images: Sequence[np.ndarray], *, stride: int = 16, device: Any = "cpu",
                batch_size: int = 4, tta: str = "none", activation: Activation | None = None) -> list[np.ndarray]:
    """Run a torch network as it is (no copy, no BatchNorm folding) on ``(H, W, C)`` images of any size.

    A :class:`Predictor` over a :class:`~deepscope.predict.backends.TorchBackend` with
    ``optimize=False``: what validation during training uses.
    """
    from deepscope.predict.backends import TorchBackend

    backend = TorchBackend(net, device=device, optimize=False)
    return Predictor(backend, stride=stride, batch_size=batch_size, tta=tta, activation=activation).maps(images)


def stitch_tiles(image: np.ndarray, tile: int, overlap: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``fn`` over a 2-D image tile by tile with ``overlap`` pixels of context, each tile's core kept.

    ``fn(region) -> output`` of the region's height and width (dense per-pixel outputs).
    Images no larger than ``tile`` are processed whole.
    """
    h, w = image.shape[:2]
    if h <= tile and w <= tile:
        return fn(image)
    out: np.ndarray | None = None
    for t in tile_grid((h, w), tile, overlap):
        o = fn(image[t.read])
        if out is None:
            out = np.zeros((h, w) + o.shape[2:], o.dtype)
        rs = slice(t.core[0].start - t.read[0].start, t.core[0].stop - t.read[0].start)
        cs = slice(t.core[1].start - t.read[1].start, t.core[1].stop - t.read[1].start)
        out[t.core] = o[rs, cs]
    assert out is not None
    return out


def label_tiles(shape: tuple[int, int], tile: int, overlap: int,
                fn: Callable[[tuple[slice, slice]], tuple[np.ndarray, dict[int, int]]], *,
                out: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, int]]:
    """Instance labels of a large image, tile by tile: nothing cut or duplicated at tile borders.

    ``fn(read_slices) -> (labels, classes)`` segments one tile (with its overlap); each object is kept
    by the one tile whose core holds its centre and renumbered. Memory is bounded by the tile plus
    the output (which may be a ``numpy.memmap`` passed as ``out``).
    """
    h, w = shape
    labels_out = out if out is not None else np.zeros((h, w), dtype=np.int32)
    classes_all: dict[int, int] = {}
    next_id = 1
    for t in tile_grid((h, w), tile, overlap):
        lab, cls = fn(t.read)
        n = int(lab.max())
        if n == 0:
            continue
        rr, cc = np.nonzero(lab)
        ids = lab[rr, cc]
        cnt = np.bincount(ids, minlength=n + 1)
        cr = np.bincount(ids, weights=rr, minlength=n + 1) / np.maximum(cnt, 1) + t.read[0].start
        ccn = np.bincount(ids, weights=cc, minlength=n + 1) / np.maximum(cnt, 1) + t.read[1].start
        keep = ((cr >= t.core[0].start) & (cr < t.core[0].stop) & (ccn >= t.core[1].start)
                & (ccn < t.core[1].stop) & (cnt > 0))
        keep[0] = False
        lut = np.zeros(n + 1, dtype=np.int32)
        kept = np.flatnonzero(keep)
        lut[kept] = np.arange(next_id, next_id + len(kept), dtype=np.int32)
        for k in kept:
            if int(k) in cls:
                classes_all[int(lut[k])] = cls[int(k)]
        next_id += len(kept)
        region = labels_out[t.read]
        new = lut[lab]
        write = (new > 0) & (region == 0)
        region[write] = new[write]
        labels_out[t.read] = region
    return labels_out, classes_all

