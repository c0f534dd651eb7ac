"""Inference of generalist instance segmenters: object-size estimation, rescaling, tiling, instances.

A generalist model (card ``output.mode`` ``"flows"`` or ``"distance"`` with ``output.size_channel``)
works at one object scale, ``output.target_diameter`` pixels. For a new image:

1. a *probe* pass on the image shrunk so its longer side is at most ``probe_side`` pixels reads the
   model's size map: the median over the foreground gives the object diameter of the image;
2. the image is rescaled so objects are ``target_diameter`` pixels across (when the probe was
   already within ``tolerance`` of that scale its maps are used as they are), segmented, and when the
   size map of this pass disagrees with the probe by more than ``1.5x`` the pass is redone once at
   the refined scale;
3. the labels are resized back to the input (nearest, outlined by the probability map).

``diameter=`` skips the estimate (Cellpose users know it as ``--diameter``). Large images run tile by
tile at the chosen scale, each object kept by the tile whose core holds its centre, so memory is
bounded by the tile. Every step is recorded in :class:`SegmentInfo`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import InputError

__all__ = ["SegmentInfo", "GeneralistConfig", "segment_generalist", "estimate_diameter", "instances_from_outputs"]


@dataclass(frozen=True)
class GeneralistConfig:
    """Options of :func:`segment_generalist` (defaults from the model card)."""

    target_diameter: float = 17.0
    probe_side: int = 256
    tolerance: float = 1.25
    min_diameter: float = 3.0
    max_diameter: float = 400.0
    tile: int = 1024
    overlap: int = 64
    fine_cap: float = 40.0


@dataclass(frozen=True)
class SegmentInfo:
    """How one image was segmented.

    ``diameter``: object diameter (input pixels) the image was segmented at; ``diameter_source``:
    ``"given"`` (``diameter=``), ``"estimated"`` (size map) or ``"default"`` (no foreground found:
    the image was segmented at its own scale); ``scale``: the resize factor applied; ``passes``:
    network passes run (probe included).
    """

    diameter: float
    diameter_source: str
    scale: float
    passes: int


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _resize_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    if maps.shape[-2:] == tuple(shape):
        return maps
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[0].numpy()


def instances_from_outputs(out: np.ndarray, mode: str, postprocess: Any, *, device: Any = "cpu",
                           shape: tuple[int, int] | None = None) -> np.ndarray:
    """Instance labels (int32) from the raw outputs ``(C, h, w)`` of a generalist model.

    With ``shape`` (the input's ``(H, W)`` when the outputs are of a rescaled image) the labels are
    made at that resolution: the probability is resized to it, and for flows every input pixel
    follows the flows from its place in the output maps; for distance maps the watershed runs on
    the resized maps. Sizes in ``postprocess`` are in pixels of the outputs (the model's scale).
    """
    shape = (int(shape[0]), int(shape[1])) if shape is not None else (int(out.shape[-2]), int(out.shape[-1]))
    if mode == "flows":
        from deepscope.tasks.segment.flows import FLOW_SCALE, flows_to_instances

        prob = _sigmoid(out[0]).astype(np.float32)
        out_prob = None
        if shape != tuple(out.shape[-2:]):
            out_prob = _sigmoid(_resize_maps(out[0:1], shape)[0]).astype(np.float32)
        return flows_to_instances(prob, out[1:3] / FLOW_SCALE, postprocess, device=device, out_prob=out_prob)
    if mode == "distance":
        import dataclasses

        from deepscope.tasks.segment.instances import instances_from_maps

        area = (shape[0] * shape[1]) / float(out.shape[-1] * out.shape[-2])
        maps = _resize_maps(out[0:2], shape)
        cfg = dataclasses.replace(postprocess, min_size=max(1, int(round(postprocess.min_size * area))),
                                  min_seed_size=max(1, int(round(postprocess.min_seed_size * area))))
        return instances_from_maps(_sigmoid(maps[0]), _sigmoid(maps[1]), cfg)
    raise InputError(f"mode={mode!r} is not a generalist representation ('flows', 'distance')")


def estimate_diameter(out: np.ndarray, target_diameter: float, *, threshold: float = 0.5) -> float | None:
    """Median object diameter (pixels of the image the outputs were computed on) from the size map.

    The median is over objects, not pixels: each foreground pixel is weighted by ``1 / d**2`` (the
    inverse of its object's area), so large objects do not outvote small ones. None when the
    outputs hold (almost) no foreground.
    """
    fg = _sigmoid(out[0]) > threshold
    if int(fg.sum()) < 4:
        return None
    v = np.sort(out[-1][fg].astype(np.float64))
    wt = np.exp(-2.0 * v)
    c = np.cumsum(wt)
    k = int(np.searchsorted(c, 0.5 * c[-1]))
    return float(target_diameter * math.exp(float(v[min(k, len(v) - 1)])))


def segment_generalist(image: np.ndarray, run: Callable[[np.ndarray], np.ndarray], *, mode: str, postprocess: Any,
                       config: GeneralistConfig, diameter: float | None = None, device: Any = "cpu",
                       out: np.ndarray | None = None, keep: dict[str, np.ndarray] | None = None
                       ) -> tuple[np.ndarray, SegmentInfo]:
    """Instance labels (int32, same height and width as ``image``) of a prepared image.

    Parameters
    ----------
    image : numpy.ndarray (H, W, C) float32
        Normalised as the model expects.
    run : callable
        ``run(x)`` returns the raw network outputs ``(K, h, w)`` of a prepared ``(h, w, C)`` image.
    mode : {"flows", "distance"}
    postprocess : FlowPostprocessConfig or PostprocessConfig
    config : GeneralistConfig
    diameter : float, optional
        Object diameter in input pixels; skips the estimate.
    out : numpy.ndarray (H, W) int32, optional
        Where to write the labels (e.g. a memory map for a huge image).
    keep : dict, optional
        When the labels come from one pass over the whole image, filled with that pass's input (``"scaled"``,
        the image at the model's scale) and raw outputs (``"outputs"``), for the domain check to reuse.

    Raises
    ------
    deepscope.errors.InputError
        A ``diameter`` that is not positive.
    """
    from deepscope.predict.scale import rescale_image

    h, w = image.shape[:2]
    passes = 0
    d0 = config.target_diameter
    if diameter is not None:
        if not diameter > 0:
            raise InputError(f"diameter must be a positive number of pixels, got {diameter}")
        d, source = float(diameter), "given"
    else:
        est, s_probe, probe_in, probe_out, whole, passes = _probe(image, run, config)
        if est is None:
            d, source = d0, "default"
        else:
            d, source = float(np.clip(est, config.min_diameter, config.max_diameter)), "estimated"
        # the probe saw the whole image at (about) the right scale: its maps are the result
        if whole and est is not None and abs(math.log(d0 / d / s_probe)) < math.log(config.tolerance):
            if keep is not None:
                keep.update(scaled=probe_in, outputs=probe_out)
            labels = instances_from_outputs(probe_out, mode, postprocess, device=device, shape=(h, w))
            if out is not None:
                out[...] = labels
                labels = out
            return labels, SegmentInfo(round(d, 2), source, round(s_probe, 4), passes)
    scale = d0 / d
    labels, n, refined = _segment_at(image, run, scale, mode, postprocess, config, device, out,
                                     refine=source == "estimated", keep=keep)
    passes += n
    if refined is not None:
        d = float(np.clip(refined, config.min_diameter, config.max_diameter))
        scale = d0 / d
        labels, n, _ = _segment_at(image, run, scale, mode, postprocess, config, device, out, refine=False,
                                   keep=keep)
        passes += n
    return labels, SegmentInfo(round(d, 2), source, round(scale, 4), passes)


def _central(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[r0:r0 + side, c0:c0 + side]


def _probe(image: np.ndarray, run: Callable[[np.ndarray], np.ndarray], config: GeneralistConfig
           ) -> tuple[float | None, float, np.ndarray, np.ndarray, bool, int]:
    """Object diameter (input pixels) from the size maps of one or two cheap passes.

    Returns (diameter or None, coarse probe scale, coarse probe input and outputs, whether the coarse probe
    saw the whole image, passes). The coarse probe shrinks (the central ``4 x probe_side`` window of) the
    image to ``probe_side``; when that shrinks it, a fine probe looks at the central
    ``probe_side`` square at full size. At a coarse scale whole cells can pass for nuclei (brightfield),
    so the fine estimate wins wherever it found objects no larger than ``fine_cap`` pixels (on the
    validation images: median error 6% against 12% for the coarse probe alone); larger objects are
    beyond what the model reads reliably at full size, and the coarse estimate is used.
    """
    from deepscope.predict.scale import rescale_image

    h, w = image.shape[:2]
    win = _central(image, 4 * config.probe_side)
    s = min(1.0, config.probe_side / max(win.shape[:2]))
    x = rescale_image(win, s)
    o = run(x)
    coarse = estimate_diameter(o, config.target_diameter)
    est = None if coarse is None else coarse / s
    whole = win.shape[:2] == (h, w)
    passes = 1
    if s < 1.0:
        fine = estimate_diameter(run(_central(image, config.probe_side)), config.target_diameter)
        passes += 1
        if fine is not None and (est is None or fine <= config.fine_cap):
            est = fine
    return est, s, x, o, whole, passes


def _segment_at(image: np.ndarray, run: Callable[[np.ndarray], np.ndarray], scale: float, mode: str,
                postprocess: Any, config: GeneralistConfig, device: Any, out: np.ndarray | None, *,
                refine: bool, keep: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, int, float | None]:
    """Labels of ``image`` segmented at ``scale``; (labels, passes, refined diameter or None)."""
    from deepscope.predict.predictor import label_tiles
    from deepscope.predict.scale import rescale_image

    h, w = image.shape[:2]
    if keep is not None:
        keep.clear()  # only this call's single whole-image pass may be kept, never an earlier scale's
    # tiles are cut in input pixels so that, rescaled, they are at most config.tile across
    tile_in = max(32, int(config.tile / scale))
    # the context is at most a quarter of the tile, so each tile's core is at least half of it: a small tile
    # with the default context would otherwise step a few pixels at a time (tens of thousands of tiles)
    overlap_in = min(max(8, int(config.overlap / scale)), tile_in // 4)
    if max(h, w) <= tile_in:
        x = rescale_image(image, scale)
        o = run(x)
        refined = None
        if refine:
            est = estimate_diameter(o, config.target_diameter)
            if est is not None and abs(math.log(est / config.target_diameter)) > math.log(1.5):
                refined = est / scale
                return np.zeros((h, w), np.int32), 1, refined
        if keep is not None:
            keep.update(scaled=x, outputs=o)
        labels = instances_from_outputs(o, mode, postprocess, device=device, shape=(h, w))
        if out is not None:
            out[...] = labels
            labels = out
        return labels, 1, None
    labels_out = out if out is not None else np.zeros((h, w), np.int32)
    labels_out[...] = 0
    n = 0

    def one_tile(read: tuple[slice, slice]) -> tuple[np.ndarray, dict[int, int]]:
        nonlocal n
        sub = np.asarray(image[read], np.float32)
        o = run(rescale_image(sub, scale))
        n += 1
        return instances_from_outputs(o, mode, postprocess, device=device, shape=sub.shape[:2]), {}

    # each object kept by the one tile whose core holds its centre (the tiling of every segmenter)
    labels_out, _ = label_tiles((h, w), tile_in, overlap_in, one_tile, out=labels_out)
    return labels_out, n, None
