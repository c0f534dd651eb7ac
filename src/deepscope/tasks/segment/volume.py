"""3D instance segmentation of z-stacks (development: not yet behind ``deepscope segment``).

Two methods, measured in BENCHMARKS.md ("Volumes: 3D nuclei (issue 27)"):

* :func:`segment_volume_classical`: an anisotropy-aware classical pipeline: Gaussian smoothing with sigmas in
  micrometres (so a 2 um z step is smoothed less in planes than in pixels), Otsu threshold, a distance transform
  with the voxel size as sampling (distances in micrometres), seeds as the maxima of that distance that stand
  out by ``h`` um inside an ellipsoidal (physically round) neighbourhood, and a seeded watershed on the
  negative distance.
* :func:`segment_volume_slices`: any 2D instance segmenter applied plane by plane, the planes' labels stitched
  into 3D objects by overlap (a label of plane z joins the object of plane z-1 it overlaps most, when their IoU
  is at least ``stitch_iou``).

Both return ``(Z, Y, X)`` int32 labels of the stack's shape (0 = background).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from deepscope.errors import InputError

__all__ = ["segment_volume_classical", "segment_volume_slices", "stitch_planes"]


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
    fp = _ellipsoid(vs, diameter / 4)
    dist_s = ndi.gaussian_filter(dist, [0.5 / v for v in vs])
    local_max = (dist_s == ndi.maximum_filter(dist_s, footprint=fp)) & mask
    # keep the maxima that stand out by h: a reconstruction-free h-maxima test on the smoothed distance
    floor = ndi.minimum_filter(dist_s, footprint=fp)
    seeds = local_max & (dist_s - floor >= h) & (dist_s >= h)
    markers, _ = ndi.label(seeds, structure=np.ones((3, 3, 3), bool))
    labels = watershed(-dist_s, markers, mask=mask)
    min_vox = (min_volume if min_volume is not None else 0.05 * math.pi / 6 * diameter ** 3) / (vs[0] * vs[1] * vs[2])
    return _drop_small(labels.astype(np.int32), min_vox)


def _ellipsoid(vs: tuple[float, float, float], radius_um: float) -> np.ndarray:
    """A footprint that is a ball of ``radius_um`` in micrometres on voxels of size ``vs``."""
    r = [max(1, int(radius_um / v)) for v in vs]
    z, y, x = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    ball = ((z * vs[0]) ** 2 + (y * vs[1]) ** 2 + (x * vs[2]) ** 2) <= radius_um ** 2 + 1e-9
    return ball | ((np.abs(z) + np.abs(y) + np.abs(x)) <= 1)  # at least the 6 face neighbours


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
