"""Flow-field instance representation (Cellpose-style): labels -> flows -> labels.

Every pixel of an object carries a unit vector pointing "uphill" along a heat field that diffuses
from the object's centre and stays inside the object (Stringer et al., Nature Methods 2021). A
network predicts these vectors plus a cell probability; following the predicted vectors from every
foreground pixel brings the pixels of one object to the same point, and the points where pixels
converge are the objects. Unlike a distance map, this separates touching and non-convex objects
without a seed threshold.

Functions
---------
masks_to_flows
    Training target: (2, H, W) unit flows from an instance label image (torch, CPU or CUDA).
follow_flows
    Final positions of pixels after following a flow field (torch, CPU or CUDA).
flows_to_instances
    Instance labels from a cell probability map and a flow field.

Arrays are ``(row, col)``: channel 0 of a flow field is the row (down) component, channel 1 the
column (right) component.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from deepscope.errors import ConfigError

__all__ = ["FLOW_SCALE", "FlowPostprocessConfig", "masks_to_flows", "follow_flows", "flows_to_instances", "object_diameters",
           "diameter_map"]


#: Networks predict flows multiplied by this factor (as Cellpose does), so the flow loss is not
#: swamped by the probability loss; divide raw outputs by it before following them.
FLOW_SCALE = 5.0


@dataclass(frozen=True)
class FlowPostprocessConfig:
    """How flow and probability maps become instances.

    Parameters
    ----------
    prob_threshold : float
        Cell probability above which a pixel is followed (and may belong to an object).
    niter : int
        Steps of flow following (each moves a pixel by at most one pixel).
    min_converge : int
        A convergence point must gather at least this many pixels to seed an object.
    min_size : int
        Objects smaller than this many pixels are removed.
    flow_threshold : float
        Objects whose predicted flows disagree with the flows their own mask implies by more than
        this mean squared error are removed (0 = no check; Cellpose's default is 0.4).
    fill_holes : bool
        Fill holes inside objects.
    """

    prob_threshold: float = 0.5
    niter: int = 100
    min_converge: int = 6
    min_size: int = 12
    flow_threshold: float = 0.0
    fill_holes: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.prob_threshold < 1.0:
            raise ConfigError(f"prob_threshold must be in (0, 1), got {self.prob_threshold}")
        if self.niter < 1:
            raise ConfigError(f"niter must be >= 1, got {self.niter}")
        if self.flow_threshold < 0:
            raise ConfigError(f"flow_threshold must be >= 0, got {self.flow_threshold}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowPostprocessConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"mode"}
        if unknown:
            raise ConfigError(f"unknown flow post-processing keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})


def _torch() -> Any:
    import torch

    return torch


def object_diameters(labels: np.ndarray) -> dict[int, float]:
    """Equivalent-circle diameter ``2 * sqrt(area / pi)`` of every object (id -> pixels)."""
    lab = np.asarray(labels)
    sizes = np.bincount(lab.ravel().astype(np.int64))
    ids = np.flatnonzero(sizes)
    ids = ids[ids != 0]
    return {int(i): float(2.0 * np.sqrt(sizes[i] / np.pi)) for i in ids}


def diameter_map(labels: np.ndarray) -> np.ndarray:
    """Per-pixel equivalent diameter of the object each pixel belongs to (0 on background), float32."""
    lab = np.asarray(labels).astype(np.int64, copy=False)
    sizes = np.bincount(lab.ravel()).astype(np.float64)
    lut = (2.0 * np.sqrt(sizes / np.pi)).astype(np.float32)
    lut[0] = 0.0
    return lut[lab]


def masks_to_flows(labels: np.ndarray, *, device: Any = "cpu", niter: int | None = None) -> np.ndarray:
    """Unit flow field ``(2, H, W)`` float32 of an instance label image (0 on background).

    The heat source of each object is its pixel nearest to the median of its coordinates; heat
    diffuses ``niter`` times (default: twice the largest object extent) by a 3x3 mean restricted
    to the object, and the flow is the normalised gradient of ``log(1 + heat)``.

    Parameters
    ----------
    labels : numpy.ndarray (H, W) int
    device : str or torch.device
        Where to compute (a CUDA device makes this fast on large images).
    niter : int, optional

    Examples
    --------
    >>> lab = np.zeros((9, 9), np.int32); lab[2:7, 2:7] = 1
    >>> f = masks_to_flows(lab)
    >>> f.shape, float(f[0, 2, 4]) > 0.9, float(f[0, 6, 4]) < -0.9   # points down at the top, up at the bottom
    ((2, 9, 9), True, True)
    """
    torch = _torch()
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ConfigError(f"masks_to_flows needs a 2-D label image, got shape {lab.shape}")
    h, w = lab.shape
    out = np.zeros((2, h, w), np.float32)
    if not lab.any():
        return out
    lab = lab.astype(np.int64, copy=False)
    slices = ndi.find_objects(lab)
    ids = np.array([i + 1 for i, s in enumerate(slices) if s is not None], np.int64)
    ext = max(max(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in slices if s is not None)
    n_iter = int(niter) if niter else int(min(2 * ext + 2, 600))
    # heat sources: per object, the pixel nearest to the median of its coordinates
    rr, cc = np.nonzero(lab)
    ll = lab[rr, cc]
    order = np.argsort(ll, kind="stable")
    rr, cc, ll = rr[order], cc[order], ll[order]
    starts = np.searchsorted(ll, ids)
    ends = np.searchsorted(ll, ids, side="right")
    med_r = np.array([np.median(rr[a:b]) for a, b in zip(starts, ends)])
    med_c = np.array([np.median(cc[a:b]) for a, b in zip(starts, ends)])
    d2 = (rr - np.repeat(med_r, ends - starts)) ** 2 + (cc - np.repeat(med_c, ends - starts)) ** 2
    src = np.array([a + int(np.argmin(d2[a:b])) for a, b in zip(starts, ends)], np.int64)
    # padded flat indexing: neighbours of every object pixel, and whether they share its label
    pw = w + 2
    flat = (rr + 1) * pw + (cc + 1)
    offs = np.array([0, -pw, pw, -1, 1, -pw - 1, -pw + 1, pw - 1, pw + 1], np.int64)  # self, up, down, left, right, diag
    nb = flat[None, :] + offs[:, None]
    labp = np.zeros((h + 2) * pw, np.int64)
    labp[flat] = ll
    same = labp[nb] == ll[None, :]
    dev = torch.device(device)
    t_nb = torch.from_numpy(nb).to(dev)
    t_same = torch.from_numpy(same).to(dev).to(torch.float32)
    t_flat = torch.from_numpy(flat).to(dev)
    t_src = torch.from_numpy(flat[src]).to(dev)
    heat = torch.zeros((h + 2) * pw, dtype=torch.float32, device=dev)
    for _ in range(n_iter):
        heat[t_src] += 1.0
        heat[t_flat] = (heat[t_nb] * t_same).mean(0)
    heat = torch.log1p(heat)
    centre = heat[t_flat]
    # central differences; a neighbour of another object (or background) counts as the pixel itself
    nbv = torch.where(t_same[1:5] > 0, heat[t_nb[1:5]], centre[None].expand(4, -1))
    dy = nbv[1] - nbv[0]
    dx = nbv[3] - nbv[2]
    norm = torch.sqrt(dy * dy + dx * dx) + 1e-20
    out[0, rr, cc] = (dy / norm).cpu().numpy()
    out[1, rr, cc] = (dx / norm).cpu().numpy()
    return out


def follow_flows(flows: Any, mask: np.ndarray | None = None, *, niter: int = 100, device: Any = "cpu",
                 start: np.ndarray | None = None) -> np.ndarray:
    """Final ``(row, col)`` positions ``(N, 2)`` of pixels after following ``flows`` (2, h, w).

    Euler steps with bilinear interpolation of the flow field; positions stay inside the field.
    The pixels are those of ``np.nonzero(mask)``, in that order, or the float ``start`` positions
    (``(N, 2)``, in the flow field's pixel coordinates).
    """
    torch = _torch()
    import torch.nn.functional as F

    fl_np = np.asarray(flows, np.float32)
    h, w = fl_np.shape[-2:]
    if start is None:
        rr, cc = np.nonzero(np.asarray(mask, bool))
        start = np.stack([rr, cc], 1).astype(np.float32)
    if len(start) == 0:
        return np.zeros((0, 2), np.float32)
    dev = torch.device(device)
    # positions live in grid_sample's (x, y) in [-1, 1] (align_corners=True: x = col / (w-1) * 2 - 1) and the
    # flows are scaled to those units once, so a step is one sample, one add and one clamp, in place
    sy = 2.0 / max(h - 1, 1)
    sx = 2.0 / max(w - 1, 1)
    fl = torch.as_tensor(np.stack([fl_np[1] * sx, fl_np[0] * sy]), device=dev)[None]  # (1, 2: x, y, h, w)
    st = np.asarray(start, np.float32)
    # positions are kept as planes (2: x, y, N), so that each step adds the sampled flows (2, N) contiguously; the
    # (1, 1, N, 2) grid grid_sample reads is written from them in place (same values, 23% faster than adding to
    # the interleaved grid through a transposed view)
    pos = torch.as_tensor(np.stack([st[:, 1] * sx - 1.0, st[:, 0] * sy - 1.0]), device=dev).clamp_(-1.0, 1.0)
    grid = torch.empty((1, 1, pos.shape[1], 2), device=dev)
    for _ in range(int(niter)):
        torch.stack([pos[0], pos[1]], 1, out=grid.view(-1, 2))
        d = F.grid_sample(fl, grid, mode="bilinear", align_corners=True)  # (1, 2, 1, N)
        pos.add_(d.view(2, -1)).clamp_(-1.0, 1.0)
    return torch.stack([(pos[1] + 1.0) / sy, (pos[0] + 1.0) / sx], 1).cpu().numpy()


def flows_to_instances(prob: np.ndarray, flows: np.ndarray, config: FlowPostprocessConfig | None = None, *,
                       device: Any = "cpu", out_prob: np.ndarray | None = None) -> np.ndarray:
    """Instance labels (int32, 0 = background) from a cell-probability map and a flow field.

    Pixels above ``prob_threshold`` follow the flows for ``niter`` steps; a histogram of where they
    end has one peak per object; peaks gathering at least ``min_converge`` pixels become seeds,
    grown over the histogram's support by a watershed, and each pixel takes the label of the basin
    it ended in. Small objects are removed, holes filled, and (with ``flow_threshold``) objects whose
    flows disagree with their own shape dropped.

    Parameters
    ----------
    prob : numpy.ndarray (h, w) float
        Cell probability in [0, 1].
    flows : numpy.ndarray (2, h, w) float
        Predicted flows (row, col components).
    config : FlowPostprocessConfig, optional
        Sizes (``min_converge``, ``min_size``) are in pixels of the flow field.
    device : str or torch.device
        Where flows are followed.
    out_prob : numpy.ndarray (H, W) float, optional
        The probability map at the resolution the labels are wanted in (e.g. the maps of a
        rescaled image resized back to the input). Every pixel of it above the threshold starts at
        its place in the flow field and follows the flows there, so outlines and the borders
        between touching objects keep the output's resolution.

    Returns
    -------
    numpy.ndarray of int32, (h, w) or (H, W) with ``out_prob``

    Examples
    --------
    >>> lab = np.zeros((32, 64), np.int32); lab[4:28, 4:28] = 1; lab[4:28, 30:60] = 2
    >>> out = flows_to_instances((lab > 0).astype(np.float32), masks_to_flows(lab))
    >>> int(out.max()), bool((out[lab == 1] == out[16, 16]).all())
    (2, True)
    """
    from skimage.segmentation import watershed

    cfg = config or FlowPostprocessConfig()
    prob = np.asarray(prob, np.float32)
    flows = np.asarray(flows, np.float32)
    h, w = prob.shape
    mask = prob > cfg.prob_threshold
    if out_prob is None:
        oh, ow = h, w
        omask = mask
        start = None
        area = 1.0
    else:
        oh, ow = np.asarray(out_prob).shape
        omask = np.asarray(out_prob) > cfg.prob_threshold
        rr, cc = np.nonzero(omask)
        start = np.stack([(rr + 0.5) * (h / oh) - 0.5, (cc + 0.5) * (w / ow) - 0.5], 1).astype(np.float32)
        area = (oh * ow) / float(h * w)  # output pixels per flow-field pixel
    labels = np.zeros((oh, ow), np.int32)
    if not mask.any() or not omask.any():
        return labels
    fl = np.where(mask[None], flows, 0.0).astype(np.float32)
    pos = follow_flows(fl, omask if start is None else None, niter=cfg.niter, device=device, start=start)
    pr = np.clip(np.rint(pos[:, 0]).astype(np.int64), 0, h - 1)
    pc = np.clip(np.rint(pos[:, 1]).astype(np.int64), 0, w - 1)
    hist = np.bincount(pr * w + pc, minlength=h * w).reshape(h, w).astype(np.float32) / area
    # peaks: local maxima of the (lightly smoothed) histogram holding enough pixels nearby
    smooth = ndi.uniform_filter(hist, 3) * 9.0
    peaks = (smooth == ndi.maximum_filter(smooth, 5)) & (smooth >= cfg.min_converge)
    seeds, n = ndi.label(peaks)
    if n == 0:
        return labels
    support = ndi.binary_dilation(hist > 0, iterations=1)
    basins = watershed(-smooth, markers=seeds, mask=support)
    rr, cc = np.nonzero(omask)
    labels[rr, cc] = basins[pr, pc]
    min_size = int(round(cfg.min_size * area))
    labels = _clean(labels, cfg, min_size, flows if cfg.flow_threshold > 0 else None)
    return labels


def _clean(labels: np.ndarray, cfg: FlowPostprocessConfig, min_size: int, flows: np.ndarray | None) -> np.ndarray:
    """Split disconnected pieces off (keep the largest), fill holes, flow check, size filter, relabel."""
    from deepscope.tasks.segment.instances import relabel_sequential_int32

    out = np.zeros_like(labels)
    nxt = 1
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        obj = labels[sl] == i
        comp, nc = ndi.label(obj)
        if nc > 1:  # pixels that ended in one basin from two places: keep the largest piece
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            obj = comp == int(np.argmax(sizes))
        if cfg.fill_holes:
            obj = ndi.binary_fill_holes(obj)
        if int(obj.sum()) < min_size:
            continue
        region = out[sl]
        region[obj & (region == 0)] = nxt
        nxt += 1
    if flows is not None and nxt > 1:
        # the check runs at the flow field's resolution: labels made at another (the input's, with out_prob) are
        # sampled there (nearest pixel); an object too small to appear there is kept
        fh, fw = flows.shape[-2:]
        small = out
        if out.shape != (fh, fw):
            ri = np.minimum(((np.arange(fh) + 0.5) * out.shape[0] / fh).astype(np.int64), out.shape[0] - 1)
            ci = np.minimum(((np.arange(fw) + 0.5) * out.shape[1] / fw).astype(np.int64), out.shape[1] - 1)
            small = out[np.ix_(ri, ci)]
        ideal = masks_to_flows(small)
        err = ((ideal - flows) ** 2).sum(0)
        n_px = np.bincount(small.ravel(), minlength=nxt)
        mse = np.bincount(small.ravel(), weights=err.ravel(), minlength=nxt) / np.maximum(n_px, 1) / 2.0
        idx = np.arange(1, nxt)
        bad = idx[(n_px[1:] > 0) & (mse[1:] > cfg.flow_threshold)]
        if len(bad):
            out[np.isin(out, bad)] = 0
    return relabel_sequential_int32(out)
