"""3D instance segmentation of z-stacks (``deepscope segment STACK``: :mod:`deepscope.tasks.segment.volume_files`).

Three methods, measured in BENCHMARKS.md ("Volumes: 3D nuclei (issue 27)"):

* :func:`segment_volume_classical`: an anisotropy-aware classical pipeline: Gaussian smoothing with sigmas in
  micrometres (so a 2 um z step is smoothed less in planes than in pixels), Otsu threshold, a distance transform
  with the voxel size as sampling (distances in micrometres), seeds as the maxima of that distance that stand
  out by ``h`` um inside an ellipsoidal (physically round) neighbourhood, and a seeded watershed on the
  negative distance.
* :func:`segment_volume_slices`: any 2D instance segmenter applied plane by plane, the planes' labels stitched
  into 3D objects by overlap (a label of plane z joins the object of plane z-1 it overlaps most, when their IoU
  is at least ``stitch_iou``).
* :func:`segment_volume_flows25d`: the 2D flow generalist (``nuclei``) in 2.5D, as Cellpose's 3D mode: the stack
  resampled so that voxels are cubic and nuclei are the model's diameter across, the model's probability and
  flows predicted on every XY, XZ and YZ plane, averaged into one 3D probability and one 3D flow field, voxels
  above the probability threshold followed along the flows and grouped where they converge.

All return ``(Z, Y, X)`` int32 labels of the stack's shape (0 = background).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from deepscope.errors import InputError

__all__ = ["segment_volume_classical", "segment_volume_slices", "segment_volume_flows25d", "stitch_planes"]


def _check(stack: Any, voxel_size: Any) -> tuple[np.ndarray, tuple[float, float, float]]:
    from deepscope.data.stacks import check_voxel_size

    data = np.asarray(stack)
    if data.ndim != 3:
        raise InputError(f"a stack to segment must be (Z, Y, X); got shape {data.shape}")
    if data.shape[0] < 2:
        raise InputError(f"the stack has {data.shape[0]} plane along Z; segment a single plane in 2-D")
    vs = check_voxel_size(voxel_size if voxel_size is not None else (1.0, 1.0, 1.0))
    return data, vs


def segment_volume_classical(stack: Any, *, voxel_size: Any = None, diameter: float | None = None,
                             smooth: float = 0.5, h: float | None = None,
                             min_volume: float | None = None) -> np.ndarray:
    """Nuclei in a z-stack with the classical anisotropy-aware pipeline (smooth, Otsu, distance, seeds, watershed).

    Parameters
    ----------
    stack : (Z, Y, X) ndarray
    voxel_size : (z, y, x), optional
        Micrometres (default: cubic voxels of 1).
    diameter : float, optional
        Typical nucleus diameter in micrometres; by default estimated from the mask (twice the median over its
        foreground voxels of the largest distance to the background in their connected component: touching
        nuclei keep their radius).
    smooth : float, default 0.5
        Gaussian sigma in micrometres.
    h : float, optional
        How far (um) a distance maximum must stand above its surroundings to seed a nucleus (default: a tenth
        of the diameter).
    min_volume : float, optional
        Objects smaller than this (um^3) are dropped (default: 5% of a sphere of ``diameter``).

    Returns
    -------
    (Z, Y, X) int32 ndarray

    Raises
    ------
    deepscope.errors.InputError
        Not a 3-D stack, one plane, a bad voxel size.
    """
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    data, vs = _check(stack, voxel_size)
    img = ndi.gaussian_filter(data.astype(np.float32), [smooth / v for v in vs])
    if float(img.max()) <= float(img.min()):
        return np.zeros(data.shape, np.int32)
    mask = img > threshold_otsu(img)
    mask = ndi.binary_fill_holes(mask)
    dist = ndi.distance_transform_edt(mask, sampling=vs).astype(np.float32)
    if diameter is None:
        comps, n = ndi.label(mask)
        if n:  # the radius of the component each foreground voxel is in: its median (specks hardly count)
            radii = np.concatenate([[0.0], np.asarray(ndi.maximum(dist, comps, np.arange(1, n + 1)))])
            diameter = 2 * float(np.median(radii[comps[mask]]))
        else:
            diameter = 8.0
    if not (isinstance(diameter, (int, float)) and math.isfinite(diameter) and diameter > 0):
        raise InputError(f"diameter must be a positive number of micrometres; got {diameter!r}")
    h = diameter / 10 if h is None else float(h)
    # a box of half-sides diameter/4 um per axis: separable min/max filters (an ellipsoidal footprint is not, and
    # took 25 s instead of 0.9 s on a 100^3 stack of 0.13 um pixels, for the same F1)
    size = _box(vs, diameter / 4)
    dist_s = ndi.gaussian_filter(dist, [0.5 / v for v in vs])
    local_max = (dist_s == ndi.maximum_filter(dist_s, size=size)) & mask
    # keep the maxima that stand out by h: a reconstruction-free h-maxima test on the smoothed distance
    floor = ndi.minimum_filter(dist_s, size=size)
    seeds = local_max & (dist_s - floor >= h) & (dist_s >= h)
    markers, _ = ndi.label(seeds, structure=np.ones((3, 3, 3), bool))
    labels = watershed(-dist_s, markers, mask=mask)
    min_vox = (min_volume if min_volume is not None else 0.05 * math.pi / 6 * diameter ** 3) / (vs[0] * vs[1] * vs[2])
    return _drop_small(labels.astype(np.int32), min_vox)


def _box(vs: tuple[float, float, float], radius_um: float) -> tuple[int, int, int]:
    """Filter size per axis of a box of half-side ``radius_um`` micrometres (at least 3 voxels) on voxels ``vs``."""
    r = [2 * max(1, int(radius_um / v)) + 1 for v in vs]
    return r[0], r[1], r[2]


def _drop_small(labels: np.ndarray, min_voxels: float) -> np.ndarray:
    if min_voxels <= 1 or not labels.any():
        return labels
    counts = np.bincount(labels.ravel())
    small = np.nonzero(counts < min_voxels)[0]
    if len(small):
        labels = np.where(np.isin(labels, small), 0, labels).astype(np.int32)
    return labels


def stitch_planes(planes: np.ndarray, *, stitch_iou: float = 0.25) -> np.ndarray:
    """Join per-plane 2D labels into 3D objects: a label of plane z takes the id of the object of plane z-1 it
    overlaps with the highest IoU (at least ``stitch_iou``; each object continues into one label per plane),
    else a new id.

    Parameters
    ----------
    planes : (Z, Y, X) int ndarray
        Independent 2D labels per plane.
    stitch_iou : float, default 0.25

    Returns
    -------
    (Z, Y, X) int32 ndarray

    Examples
    --------
    >>> p = np.zeros((3, 6, 6), np.int32); p[0, 1:4, 1:4] = 5; p[1, 1:4, 2:5] = 2; p[2, 4:6, 4:6] = 9
    >>> out = stitch_planes(p)
    >>> int(out[0, 2, 2]) == int(out[1, 2, 3]) != int(out[2, 5, 5])
    True
    """
    from deepscope.evaluate.segmentation import label_overlap

    planes = np.asarray(planes)
    if planes.ndim != 3:
        raise InputError(f"planes must be (Z, Y, X) labels; got shape {planes.shape}")
    out = np.zeros(planes.shape, np.int32)
    next_id = 1
    for z in range(planes.shape[0]):
        cur = planes[z]
        ids = np.unique(cur[cur > 0])
        mapping: dict[int, int] = {}
        if z > 0 and ids.size and out[z - 1].any():
            ov = label_overlap(out[z - 1], cur)
            taken: set[int] = set()
            for k in np.argsort(-ov.iou, kind="stable"):  # best pairs first, each object and label used once
                i, j = int(ov.pair_true[k]), int(ov.pair_pred[k])
                if ov.iou[k] < stitch_iou:
                    break
                pred = int(ov.pred_ids[j])
                if i not in taken and pred not in mapping:
                    mapping[pred] = int(ov.true_ids[i])
                    taken.add(i)
        for v in ids:
            if int(v) not in mapping:
                mapping[int(v)] = next_id
                next_id += 1
            else:
                next_id = max(next_id, mapping[int(v)] + 1)
        if mapping:
            keys = np.array(list(mapping), dtype=np.int64)
            vals = np.array([mapping[k] for k in keys], dtype=np.int32)
            order = np.argsort(keys)
            keys, vals = keys[order], vals[order]
            plane = np.zeros(cur.shape, np.int32)
            nz = cur > 0
            plane[nz] = vals[np.searchsorted(keys, cur[nz])]
            out[z] = plane
    return out


def segment_volume_slices(stack: Any, segment_plane: Callable[[np.ndarray], np.ndarray], *,
                          stitch_iou: float = 0.25, background: str | None = "otsu") -> np.ndarray:
    """Segment each plane in 2D with ``segment_plane`` (a (Y, X) image -> (Y, X) labels function, e.g. the shipped
    ``nuclei`` model) and stitch the planes into 3D objects (:func:`stitch_planes`).

    A 2D segmenter normalises each plane on its own, so planes above and below the nuclei (noise only) give
    spurious objects; with ``background="otsu"`` a 3D object whose mean intensity is below the stack's Otsu
    threshold is dropped (``None`` keeps everything).

    Raises
    ------
    deepscope.errors.InputError
        Not a 3-D stack, or ``segment_plane`` returns labels of another shape.
    """
    data, _ = _check(stack, None)
    planes = np.zeros(data.shape, np.int32)
    for z in range(data.shape[0]):
        lab = np.asarray(segment_plane(data[z]))
        if lab.shape != data.shape[1:]:
            raise InputError(f"segment_plane returned labels of shape {lab.shape} for a plane of {data.shape[1:]}")
        planes[z] = lab
    out = stitch_planes(planes, stitch_iou=stitch_iou)
    if background not in (None, "otsu"):
        raise InputError(f"background={background!r}: use 'otsu' or None")
    if background == "otsu" and out.any():
        from skimage.filters import threshold_otsu

        values = data.astype(np.float32)
        thr = threshold_otsu(values)
        n = int(out.max()) + 1
        mean = np.bincount(out.ravel(), values.ravel(), minlength=n) / np.maximum(np.bincount(out.ravel(), minlength=n), 1)
        dark = np.nonzero(mean < thr)[0]
        dark = dark[dark > 0]
        if len(dark):
            out = np.where(np.isin(out, dark), 0, out).astype(np.int32)
    return out


def segment_volume_flows25d(stack: Any, model: Any, *, voxel_size: Any = None, diameter: float | None = None,
                            prob_threshold: float | None = None, min_converge: float = 40.0,
                            batch_size: int = 8) -> np.ndarray:
    """Nuclei in a z-stack with a 2D flow generalist in 2.5D (the probability and flows of the XY, XZ and YZ planes
    averaged and followed in 3D).

    Parameters
    ----------
    stack : (Z, Y, X) ndarray
    model : loaded segment model
        A flow generalist (``load_model("nuclei")``).
    voxel_size : (z, y, x), optional
        Micrometres (default: cubic voxels of 1).
    diameter : float, optional
        Nucleus diameter in (lateral) pixels; default: the model's size map on the three brightest planes.
    prob_threshold : float, optional
        Mean probability over the three views above which a voxel belongs to a nucleus (default: the card's).
    min_converge : float, default 40
        Voxels that must end at one place (at the model's scale) to make a nucleus.
    batch_size : int, default 8
        Planes per network call.

    Returns
    -------
    (Z, Y, X) int32 ndarray

    Raises
    ------
    deepscope.errors.InputError
        Not a 3-D stack, one plane, a bad voxel size or diameter, a model that does not predict flows.
    """
    from deepscope.tasks.segment.flows import FLOW_SCALE
    from deepscope.tasks.segment.sizing import _sigmoid, estimate_diameter

    data, vs = _check(stack, voxel_size)
    if getattr(model.plugin, "postprocess_mode", None) != "flows":
        raise InputError(f"model {getattr(model, 'name', model)!r} does not predict flows; the 2.5D method takes a "
                         "flow generalist such as 'nuclei'")
    opts = model.options()
    target = float(opts.target_diameter)
    thr = float(opts.postprocess.prob_threshold if prob_threshold is None else prob_threshold)
    pred = model.plugin.predictor(model, batch_size=batch_size)
    lo, hi = np.percentile(data, [1, 99.8])
    vol = (data.astype(np.float32) - np.float32(lo)) / np.float32(max(float(hi - lo), 1e-6))

    def maps(planes: list[np.ndarray]) -> np.ndarray:  # (n, 4, h, w): probability logit, 2 flows, size
        return np.stack(pred.maps([np.repeat(p[..., None], 3, axis=-1) for p in planes]))

    if diameter is None:
        bright = np.argsort([-float(np.percentile(p, 99)) for p in vol])[:3]
        ests = [e for e in (estimate_diameter(maps([vol[k]])[0], target) for k in bright) if e]
        diameter = float(np.median(ests)) if ests else target
    if not (math.isfinite(float(diameter)) and float(diameter) > 0):
        raise InputError(f"diameter must be a positive number of pixels; got {diameter!r}")
    s = target / float(diameter)
    iso = ndi.zoom(vol, (vs[0] / vs[2] * s, vs[1] / vs[2] * s, s), order=1)
    prob = np.zeros(iso.shape, np.float32)
    flow = np.zeros((3, *iso.shape), np.float32)
    for axis in range(3):  # planes across this axis: their rows and columns are the two other axes
        out = np.moveaxis(maps(list(np.moveaxis(iso, axis, 0))), 0, axis + 1)
        prob += _sigmoid(out[0]).astype(np.float32) / 3
        rows, cols = (a for a in range(3) if a != axis)
        flow[rows] += out[1] / (2 * FLOW_SCALE)  # each component is seen by two of the three views
        flow[cols] += out[2] / (2 * FLOW_SCALE)
        del out
    labels = _follow_3d(prob > thr, flow, niter=int(2 * target), min_converge=min_converge)
    small = 0.1 * math.pi / 6 * target ** 3
    labels = _drop_small(labels, small)
    # back to the stack's grid: each voxel takes the label at its centre
    idx = [np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.int64), m - 1) for n, m in zip(data.shape, iso.shape)]
    return labels[np.ix_(*idx)].astype(np.int32)


def _follow_3d(mask: np.ndarray, flow: np.ndarray, *, niter: int, min_converge: float) -> np.ndarray:
    """Labels of the voxels of ``mask`` grouped by where they end after ``niter`` steps along ``flow`` (3, D, H, W)
    (trilinear interpolation), as :func:`deepscope.tasks.segment.flows.flows_to_instances` does in 2D."""
    import torch
    import torch.nn.functional as F
    from skimage.segmentation import watershed

    shape = mask.shape
    labels = np.zeros(shape, np.int32)
    if not mask.any():
        return labels
    start = np.argwhere(mask).astype(np.float32)
    sc = [2.0 / max(n - 1, 1) for n in shape]
    # grid_sample's 3-D grid is (x, y, z) = (col, row, plane) in [-1, 1]
    fl = torch.as_tensor(np.stack([flow[2] * mask * sc[2], flow[1] * mask * sc[1], flow[0] * mask * sc[0]]))[None]
    g = torch.as_tensor(np.stack([start[:, 2] * sc[2] - 1, start[:, 1] * sc[1] - 1, start[:, 0] * sc[0] - 1], 1))
    g = g.view(1, 1, 1, -1, 3).clone()
    with torch.no_grad():
        for _ in range(niter):
            d = F.grid_sample(fl, g, mode="bilinear", align_corners=True)  # (1, 3, 1, 1, N)
            g.add_(d.view(3, -1).t().view(1, 1, 1, -1, 3)).clamp_(-1.0, 1.0)
    end = g.view(-1, 3).numpy()
    pos = np.stack([np.rint((end[:, 2 - k] + 1) / sc[k]) for k in range(3)], 1).astype(np.int64)
    for k, n in enumerate(shape):
        np.clip(pos[:, k], 0, n - 1, out=pos[:, k])
    flat = np.ravel_multi_index((pos[:, 0], pos[:, 1], pos[:, 2]), shape)
    hist = np.bincount(flat, minlength=int(np.prod(shape))).reshape(shape).astype(np.float32)
    smooth = ndi.uniform_filter(hist, 3) * 27.0
    seeds, n = ndi.label((smooth == ndi.maximum_filter(smooth, 5)) & (smooth >= min_converge))
    if n == 0:
        return labels
    basins = watershed(-smooth, seeds, mask=ndi.binary_dilation(hist > 0))
    labels[mask] = basins[pos[:, 0], pos[:, 1], pos[:, 2]]
    return labels
