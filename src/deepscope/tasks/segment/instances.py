"""From network outputs to instance labels: seeded watershed on a predicted distance map.

The segmentation networks predict, per pixel, a foreground probability and a normalised
distance to the object's boundary (1 at the centre, 0 at the edge). Seeds are the connected
regions where the distance is high; a watershed on the distance map, restricted to the
foreground, grows them into instances, so touching objects are separated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from deepscope.errors import ConfigError

__all__ = ["PostprocessConfig", "instances_from_maps", "instance_targets", "relabel_sequential_int32",
           "class_per_instance", "activate_maps", "segmentation_maps"]


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds turning probability and distance maps into instances.

    Parameters
    ----------
    fg_threshold : float
        Foreground probability above which a pixel belongs to an object.
    seed_threshold : float
        Normalised distance above which a pixel is part of an object's seed.
    min_size : int
        Objects smaller than this many pixels are removed.
    min_seed_size : int
        Seeds smaller than this many pixels are ignored (merged into a neighbour).
    mode : {"watershed", "components"}
        ``"components"``: plain connected components of the foreground (the book's U-Net).
    """

    fg_threshold: float = 0.5
    seed_threshold: float = 0.5
    min_size: int = 8
    min_seed_size: int = 2
    mode: str = "watershed"

    def __post_init__(self) -> None:
        if self.mode not in ("watershed", "components"):
            raise ConfigError(f"mode={self.mode!r} is not one of ('watershed', 'components')")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relabel_sequential_int32(labels: np.ndarray) -> np.ndarray:
    """Relabel ids to 1..N (int32), keeping 0 as background."""
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids != 0]
    lut_max = int(labels.max()) if labels.size else 0
    if lut_max <= 10 * max(len(ids), 1) + 65536:
        lut = np.zeros(lut_max + 1, dtype=np.int32)
        lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
        return lut[labels]
    out = np.zeros(labels.shape, dtype=np.int32)
    out[labels != 0] = np.searchsorted(ids, labels[labels != 0]) + 1
    return out


def instances_from_maps(fg_prob: np.ndarray, dist: np.ndarray | None = None,
                        config: PostprocessConfig | None = None) -> np.ndarray:
    """Instance labels (int32, 0 = background) from foreground probability and distance maps.

    Parameters
    ----------
    fg_prob : numpy.ndarray (H, W) float
        Foreground probability.
    dist : numpy.ndarray (H, W) float, optional
        Normalised distance map (required for ``mode="watershed"``).
    config : PostprocessConfig, optional

    Returns
    -------
    numpy.ndarray of int32, (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> fg = np.zeros((20, 40)); fg[5:15, 5:15] = 1; fg[5:15, 25:35] = 1
    >>> d = np.zeros_like(fg); d[8:12, 8:12] = 1; d[8:12, 28:32] = 1
    >>> int(instances_from_maps(fg, d).max())
    2
    """
    cfg = config or PostprocessConfig()
    mask = fg_prob > cfg.fg_threshold
    if not mask.any():
        return np.zeros(fg_prob.shape, dtype=np.int32)
    if cfg.mode == "components" or dist is None:
        labels, _ = ndi.label(mask)
    else:
        from skimage.segmentation import watershed

        seeds_mask = (dist > cfg.seed_threshold) & mask
        seeds, n = ndi.label(seeds_mask)
        if cfg.min_seed_size > 1 and n:
            sizes = np.bincount(seeds.ravel())
            small = sizes < cfg.min_seed_size
            small[0] = False
            if small.any():
                seeds[small[seeds]] = 0
        # foreground components with no seed get one (their maximum-distance pixel region)
        comp, nc = ndi.label(mask)
        if nc:
            has_seed = np.zeros(nc + 1, dtype=bool)
            has_seed[np.unique(comp[seeds > 0])] = True
            missing = np.flatnonzero(~has_seed[1:]) + 1
            if len(missing):
                nxt = int(seeds.max()) + 1
                lut = np.zeros(nc + 1, dtype=np.int64)
                lut[missing] = np.arange(nxt, nxt + len(missing))
                extra = lut[comp]
                seeds = np.where((seeds == 0) & (extra > 0), extra, seeds)
        labels = watershed(-dist.astype(np.float32), markers=seeds, mask=mask)
    sizes = np.bincount(labels.ravel())
    if cfg.min_size > 1:
        small = sizes < cfg.min_size
        small[0] = False
        if small.any():
            labels[small[labels]] = 0
            sizes[small] = 0
    if np.count_nonzero(sizes[1:]) == len(sizes) - 1:  # ids already 1..N
        return labels.astype(np.int32, copy=False)
    return relabel_sequential_int32(labels)


def activate_maps(out: np.ndarray, *, distance: bool = True, n_classes: int = 1) -> np.ndarray:
    """Activated segmentation maps from raw network outputs ``(C, H, W)``.

    Sigmoid on the foreground (channel 0) and, with ``distance``, on the distance map (channel 1);
    softmax over the ``n_classes`` class channels that follow when ``n_classes > 1``. Other
    channels are not set (they are not part of the representation).
    """
    from scipy.special import expit

    res = np.empty_like(out, dtype=np.float32)
    res[0] = expit(out[0])
    if distance and out.shape[0] > 1:
        res[1] = expit(out[1])
        if n_classes > 1:
            z = out[2:2 + n_classes]
            z = np.exp(z - z.max(axis=0, keepdims=True))
            res[2:2 + n_classes] = z / z.sum(axis=0, keepdims=True)
    return res


def segmentation_maps(out: np.ndarray, shape: tuple[int, int], *, distance: bool = True,
                      n_classes: int = 1) -> np.ndarray:
    """Activated maps at the image's ``shape`` from raw network outputs ``(C, h, w)`` (upsampled
    bilinearly from networks that bin their input), as :func:`activate_maps`."""
    if out.shape[-2:] != tuple(shape):
        import torch
        import torch.nn.functional as F

        out = F.interpolate(torch.from_numpy(out)[None], size=tuple(shape), mode="bilinear",
                            align_corners=False)[0].numpy()
    return activate_maps(out, distance=distance, n_classes=n_classes)


def instance_targets(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training targets from an instance label image: foreground (0/1) and normalised distance.

    The distance of each pixel to its object's boundary is divided by the object's maximum, so
    every object's centre is 1 whatever its size.

    Returns
    -------
    fg : float32 (H, W)
    dist : float32 (H, W) in [0, 1]
    """
    labels = np.asarray(labels)
    fg = (labels > 0).astype(np.float32)
    dist = np.zeros(labels.shape, dtype=np.float32)
    if not fg.any():
        return fg, dist
    # per-object EDT on bounding boxes (objects touching each other stay separate)
    for i, sl in enumerate(ndi.find_objects(labels.astype(np.int64, copy=False)), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        obj = labels[sl] == i
        d = ndi.distance_transform_edt(obj)
        m = d.max()
        if m > 0:
            dist[sl][obj] = (d[obj] / m).astype(np.float32)
    return fg, dist


def class_per_instance(labels: np.ndarray, class_prob: np.ndarray) -> dict[int, int]:
    """Majority class (argmax of summed probabilities, classes numbered from 1) of each instance.

    Parameters
    ----------
    labels : (H, W) int
    class_prob : (K, H, W) float, per-pixel class probabilities (K object classes)
    """
    ids = np.unique(labels)
    ids = ids[ids != 0]
    if not len(ids):
        return {}
    sums = np.stack([ndi.sum(class_prob[k], labels, ids) for k in range(class_prob.shape[0])], axis=1)
    return {int(i): int(np.argmax(s)) + 1 for i, s in zip(ids, sums)}
