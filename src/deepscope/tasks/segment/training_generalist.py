"""Training tasks for generalist instance segmentation (any modality, any object size).

Two representations share one data pipeline (:class:`AugmentedInstanceTask`):

- :class:`FlowSegmentTask`: a cell-probability logit and the two components of a Cellpose-style flow
  field (scaled by :data:`FLOW_SCALE`), followed at inference (:mod:`deepscope.tasks.segment.flows`);
- :class:`DistanceSegmentTask`: foreground and normalised distance to the boundary, split by a
  seeded watershed (:mod:`deepscope.tasks.segment.instances`).

:class:`DistillFlowTask` trains a smaller flow network to reproduce a trained one (the teacher) on the
same augmented crops, and validates it against the true labels exactly as :class:`FlowSegmentTask` does.

Both predict one more map: for every object pixel ``log(d / target_diameter)``, where ``d`` is the
object's diameter as the network sees it. It lets a model estimate the object size of a new image
in one pass, so inference can rescale the image to the training scale.

Everything that makes a batch happens on the training device: every training image is rescaled
so its median object diameter is ``target_diameter``, then each crop is drawn with a random zoom
(mostly near 1, sometimes far, so sizes can be estimated at any scale), rotation and flip
(``grid_sample``: bilinear for the image, nearest for the targets, flow vectors rotated with the
crop), and intensity augmentation: gain, offset, gamma, blur, noise, polarity inversion and pseudo-
colour tints for grey images, stain jitter and grey conversion for colour images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.errors import InputError

__all__ = ["AugmentedInstanceTask", "FlowSegmentTask", "DistillFlowTask", "DistanceSegmentTask", "FLOW_SCALE",
           "FlowAugment"]

from deepscope.tasks.segment.flows import FLOW_SCALE  # noqa: E402  (re-exported for training code)


class FlowAugment:
    """Augmentation settings (probabilities and ranges) of :class:`FlowSegmentTask`."""

    def __init__(self, *, zoom: tuple[float, float] = (0.7, 1.4), wide_zoom: tuple[float, float] = (0.25, 2.5),
                 wide_p: float = 0.25, invert_p: float = 0.25, tint_p: float = 0.2, grey_p: float = 0.15,
                 stain: float = 0.1, gain: float = 0.3, offset: float = 0.1, gamma: tuple[float, float] = (0.6, 1.6),
                 blur_p: float = 0.2, blur_sigma: tuple[float, float] = (0.5, 2.0), noise_p: float = 0.3,
                 noise_sigma: tuple[float, float] = (0.01, 0.15)) -> None:
        self.zoom, self.wide_zoom, self.wide_p = zoom, wide_zoom, wide_p
        self.invert_p, self.tint_p, self.grey_p, self.stain = invert_p, tint_p, grey_p, stain
        self.gain, self.offset, self.gamma = gain, offset, gamma
        self.blur_p, self.blur_sigma, self.noise_p, self.noise_sigma = blur_p, blur_sigma, noise_p, noise_sigma

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _median_diameter(lab: np.ndarray) -> float:
    sizes = np.bincount(np.asarray(lab).ravel().astype(np.int64))[1:]
    sizes = sizes[sizes > 0]
    if not len(sizes):
        return 0.0
    return float(2.0 * np.sqrt(np.median(sizes) / np.pi))


class AugmentedInstanceTask:

    """Instance segmentation with size estimation and heavy on-device augmentation (base class).

    Subclasses define the target maps (:meth:`targets`), how they turn with a crop
    (:meth:`rotate_targets`), the loss on the representation (:meth:`representation_loss`) and the
    instances of a validation image (:meth:`instances`).

    Parameters
    ----------
    images : sequence of (H, W, C) float32
        Normalised training images (the model's ``prepare``), all with the same C.
    labels : sequence of (H, W) int
        Instance labels (0 = background).
    groups : sequence of str, optional
        Kind of each training image (e.g. ``"fluo"``, ``"he"``, ``"brightfield"``); with
        ``group_weights`` sets how often each kind is drawn. Also reported per kind in validation.
    group_weights : dict[str, float], optional
        Share of crops drawn from each group (default: in proportion to the image area).
    valid_images, valid_labels, valid_groups : optional
        Full validation images; validation segments them at their true object scale.
    target_diameter : float
        Object diameter (pixels) the network is trained at.
    crop, batch_size, samples_per_epoch
    postprocess : FlowPostprocessConfig, optional
        For validation.
    stride : int
        Padding multiple of the network.
    augment : FlowAugment, optional
    size_weight : float
        Weight of the size-map loss.
    """

    @property
    def prob_threshold(self) -> float:
        """The probability threshold of the representation's post-processing (labels resized to the input's size)."""
        raise NotImplementedError

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
                 groups: Sequence[str] | None = None, group_weights: dict[str, float] | None = None,
                 valid_images: Sequence[np.ndarray] = (), valid_labels: Sequence[np.ndarray] = (),
                 valid_groups: Sequence[str] | None = None, target_diameter: float = 17.0, crop: int = 256,
                 batch_size: int = 16, samples_per_epoch: int = 2048, postprocess: Any = None, stride: int = 16,
                 augment: FlowAugment | None = None, size_weight: float = 0.5,
                 device: torch.device | str = "cpu") -> None:
        from deepscope.tasks.segment.flows import diameter_map

        if len(images) != len(labels):
            raise InputError(f"{len(images)} images but {len(labels)} label images")
        if len(images) == 0:
            raise InputError("no training images")
        self.device = torch.device(device)
        self.crop = int(crop)
        self.batch_size = int(batch_size)
        self.samples_per_epoch = int(samples_per_epoch)
        self.target_diameter = float(target_diameter)
        self.stride = int(stride)
        self.size_weight = float(size_weight)
        self.aug = augment or FlowAugment()
        self.postprocess = postprocess if postprocess is not None else self.default_postprocess()
        groups = list(groups) if groups is not None else ["all"] * len(images)
        self._x: list[torch.Tensor] = []
        self._t: list[torch.Tensor] = []
        self._scale: list[float] = []
        self._grey: list[bool] = []
        for i, (img, lab) in enumerate(zip(images, labels)):
            img = np.asarray(img, np.float32)
            if img.ndim == 2:
                img = img[..., None]
            lab = np.asarray(lab)
            if lab.shape != img.shape[:2]:
                raise InputError(f"image {i} has shape {img.shape[:2]} but its labels {lab.shape}")
            d = _median_diameter(lab)
            if d <= 0:  # an image without objects: keep it at its own scale (background examples)
                d = self.target_diameter
            tgt = np.concatenate([(lab > 0)[None].astype(np.float32), self.targets(lab),
                                  diameter_map(lab)[None]], 0)
            self._x.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(self.device))
            self._t.append(torch.from_numpy(tgt).to(self.device))
            self._scale.append(self.target_diameter / d)
            self._grey.append(bool(img.shape[-1] == 1 or all(np.array_equal(img[..., 0], img[..., j])
                                                             for j in range(1, img.shape[-1]))))
        self.channels = int(self._x[0].shape[0])
        # sampling probabilities: group shares, then area (at the training scale) within a group
        area = np.array([x.shape[-1] * x.shape[-2] * s * s for x, s in zip(self._x, self._scale)], float)
        g = np.array(groups)
        p = np.zeros(len(area))
        shares = group_weights or {k: float(area[g == k].sum()) for k in set(groups)}
        total = sum(shares.get(k, 0.0) for k in set(groups))
        for k in set(groups):
            m = g == k
            p[m] = shares.get(k, 0.0) / max(total, 1e-12) * area[m] / area[m].sum()
        self._p = p / p.sum()
        self._vx = [np.asarray(v, np.float32) for v in valid_images]
        self._vl = [np.asarray(v) for v in valid_labels]
        self._vg = list(valid_groups) if valid_groups is not None else ["all"] * len(self._vx)

    #: output channels: probability logit, the representation's maps, log size
    out_channels = 4

    # ------------------------------------------------------------------ representation (subclasses)
    @staticmethod
    def default_postprocess() -> Any:
        raise NotImplementedError

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """Representation maps ``(K, H, W)`` of one label image (between the foreground and size maps)."""
        raise NotImplementedError

    def rotate_targets(self, maps: torch.Tensor, cos: float, sin: float, flip: float) -> torch.Tensor:
        """The representation maps seen in a crop rotated by (cos, sin) and flipped (flip = -1)."""
        return maps

    def representation_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def instances(self, out: np.ndarray, prob: np.ndarray, device: torch.device) -> np.ndarray:
        """Instance labels from the raw outputs ``(C, H, W)`` of one image."""
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.samples_per_epoch / self.batch_size))

    # ------------------------------------------------------------------ batches
    def _geometry(self, i: int, rng: np.random.Generator) -> tuple[torch.Tensor, float, float, float, float]:
        """A random crop of image ``i``: (sampling grid, network pixels per source pixel, cos, sin, flip)."""
        x = self._x[i]
        h, w = x.shape[-2:]
        a = self.aug
        lo, hi = a.wide_zoom if rng.random() < a.wide_p else a.zoom
        zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        z = self._scale[i] * zoom  # network pixels per source pixel
        theta = float(rng.uniform(0, 2 * np.pi))
        flip = -1.0 if rng.random() < 0.5 else 1.0
        half = self.crop / (2.0 * z)  # half-extent of the crop in source pixels
        # centre anywhere that keeps at least half the crop inside the image
        cy = float(rng.uniform(min(half, h / 2), max(h - half, h / 2)))
        cx = float(rng.uniform(min(half, w / 2), max(w - half, w / 2)))
        cos, sin = math.cos(theta), math.sin(theta)
        # output normalised (u, v) -> source normalised (x, y), align_corners=False
        mat = torch.tensor([[2 * half / w * cos * flip, -2 * half / w * sin, 2 * cx / w - 1],
                            [2 * half / h * sin * flip, 2 * half / h * cos, 2 * cy / h - 1]],
                           dtype=torch.float32, device=x.device)[None]
        grid = F.affine_grid(mat, [1, 1, self.crop, self.crop], align_corners=False)
        return grid, z, cos, sin, flip

    def _sample(self, i: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, t = self._x[i], self._t[i]
        grid, z, cos, sin, flip = self._geometry(i, rng)
        xs = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        ts = F.grid_sample(t[None], grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
        rep = self.rotate_targets(ts[1:-1], cos, sin, flip)
        size = torch.where(ts[0] > 0, torch.log(torch.clamp(ts[-1] * z, min=1e-3) / self.target_diameter),
                           torch.zeros_like(ts[-1]))
        return xs, torch.cat([ts[0:1], rep, size[None]])

    def _intensity(self, x: torch.Tensor, grey: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        a = self.aug
        n, c = x.shape[:2]
        dev = x.device

        def col(v: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(v, np.float32), device=dev).view(n, -1, 1, 1)

        if c == 3:
            # colour images: stain jitter (per-channel gain/offset) or conversion to grey
            cg = np.exp(rng.uniform(-a.stain, a.stain, (n, 3))) * (~grey)[:, None] + grey[:, None]
            cb = rng.uniform(-a.stain / 2, a.stain / 2, (n, 3)) * (~grey)[:, None]
            x = x * col(cg) + col(cb)
            to_grey = (~grey) & (rng.random(n) < a.grey_p)
            if to_grey.any():
                m = col(to_grey.astype(np.float32))
                x = x * (1 - m) + x.mean(1, keepdim=True) * m
            # grey images: pseudo-colour tints (e.g. a DAPI image saved in the blue channel of an RGB file)
            tint = grey & (rng.random(n) < a.tint_p)
            if tint.any():
                tc = rng.uniform(0, 1, (n, 3))
                tc[np.arange(n), rng.integers(0, 3, n)] = 1.0
                tc = np.where(tint[:, None], tc, 1.0)
                x = x * col(tc)
        # gamma on the non-negative part, then gain and offset
        g = np.exp(rng.uniform(np.log(a.gamma[0]), np.log(a.gamma[1]), n))
        x = torch.clamp(x, min=0) ** col(g) + torch.clamp(x, max=0)
        x = x * col(np.exp(rng.uniform(-a.gain, a.gain, n))) + col(rng.uniform(-a.offset, a.offset, n))
        # blur (one sigma per batch, a random subset of images)
        bl = rng.random(n) < a.blur_p
        if bl.any():
            s = float(rng.uniform(*a.blur_sigma))
            r = max(1, int(math.ceil(3 * s)))
            k = torch.exp(-(torch.arange(-r, r + 1, device=dev, dtype=x.dtype) ** 2) / (2 * s * s))
            k = k / k.sum()
            idx = torch.as_tensor(np.flatnonzero(bl), device=dev)
            xb = x[idx].reshape(-1, 1, *x.shape[-2:])
            xb = F.conv2d(F.pad(xb, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
            xb = F.conv2d(F.pad(xb, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
            x = x.clone()
            x[idx] = xb.reshape(len(idx), c, *x.shape[-2:])
        # polarity: grey images seen inverted (bright background, dark objects, as in brightfield)
        inv = grey & (rng.random(n) < a.invert_p)
        if inv.any():
            m = col(inv.astype(np.float32))
            x = x * (1 - 2 * m) + m
        # noise
        nz = rng.random(n) < a.noise_p
        if nz.any():
            sig = np.where(nz, rng.uniform(*a.noise_sigma, n), 0.0)
            gen = torch.Generator(device=dev)
            gen.manual_seed(int(rng.integers(2**31)))
            x = x + torch.randn(x.shape, generator=gen, device=dev, dtype=x.dtype) * col(sig)
        return x

    def batches(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        for _ in range(self.steps_per_epoch()):
            idx = rng.choice(len(self._x), size=self.batch_size, p=self._p)
            xs, ts = zip(*(self._sample(int(i), rng) for i in idx))
            x = torch.stack(xs)
            grey = np.array([self._grey[int(i)] for i in idx])
            x = self._intensity(x, grey, rng)
            yield x.to(device), torch.stack(ts).to(device)

    # ------------------------------------------------------------------ loss
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        fg = targets[:, 0]
        loss = F.binary_cross_entropy_with_logits(outputs[:, 0], fg)
        loss = loss + self.representation_loss(outputs, targets)
        if self.size_weight > 0:
            m = fg > 0
            if m.any():
                loss = loss + self.size_weight * ((outputs[:, -1] - targets[:, -1]) ** 2 * m).sum() / m.sum()
        return loss

    # ------------------------------------------------------------------ validation
    def maps(self, net: nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray:
        """Raw network output ``(4, H, W)`` for one full image (already at the network's scale)."""
        from deepscope.predict.predictor import run_network

        return run_network(net, [image if image.ndim == 3 else image[..., None]], stride=self.stride,
                           device=device, batch_size=1)[0]

    def validate(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        if not self._vx:
            return {"val_loss": float("nan")}
        from deepscope.evaluate import match_instances
        from deepscope.predict.scale import rescale_image, resize_labels

        per: dict[str, list[tuple[float, float, float]]] = {}
        for img, lab, grp in zip(self._vx, self._vl, self._vg):
            d = _median_diameter(lab) or self.target_diameter
            s = self.target_diameter / d
            x = rescale_image(img, s)
            out = self.maps(net, x, device)
            prob = 1.0 / (1.0 + np.exp(-out[0]))
            pred = self.instances(out, prob, device)
            pred = resize_labels(pred, lab.shape, prob=prob, threshold=self.prob_threshold)
            r = match_instances(lab, pred)
            fgm = prob > 0.5
            est = float(self.target_diameter * np.exp(np.median(out[-1][fgm]))) / s if fgm.any() else 0.0
            size_err = abs(math.log(max(est, 1e-3) / d)) if est > 0 else 1.0
            per.setdefault(grp, []).append((r.mean_ap, float(r.f1[0]), size_err))
        out_m: dict[str, float] = {}
        for grp, vals in per.items():
            arr = np.array(vals)
            out_m[f"val_dsb_{grp}"] = float(arr[:, 0].mean())
            out_m[f"val_f1_{grp}"] = float(arr[:, 1].mean())
            out_m[f"val_size_err_{grp}"] = float(np.median(arr[:, 2]))
        # the monitor: mean over kinds, so a rare modality counts as much as a common one
        out_m["val_dsb"] = float(np.mean([out_m[f"val_dsb_{g}"] for g in per]))
        out_m["val_f1"] = float(np.mean([out_m[f"val_f1_{g}"] for g in per]))
        out_m["val_loss"] = -out_m["val_dsb"]
        return out_m


class FlowSegmentTask(AugmentedInstanceTask):
    """Flow-field instances (Cellpose-style): outputs probability logit, 5 x flow (row, col), log size."""

    out_channels = 4

    @staticmethod
    def default_postprocess() -> Any:
        from deepscope.tasks.segment.flows import FlowPostprocessConfig

        return FlowPostprocessConfig(prob_threshold=0.4, min_size=36)

    @property
    def prob_threshold(self) -> float:
        return float(self.postprocess.prob_threshold)

    def targets(self, labels: np.ndarray) -> np.ndarray:
        from deepscope.tasks.segment.flows import masks_to_flows

        return masks_to_flows(labels, device=self.device)

    def rotate_targets(self, maps: torch.Tensor, cos: float, sin: float, flip: float) -> torch.Tensor:
        # flow vectors into the crop's frame: out = D R^T v, v = (col, row) components
        vx, vy = maps[1], maps[0]
        ox = (cos * vx + sin * vy) * flip
        oy = -sin * vx + cos * vy
        return torch.stack([oy, ox])

    def representation_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 0.5 * F.mse_loss(outputs[:, 1:3], FLOW_SCALE * targets[:, 1:3])

    def instances(self, out: np.ndarray, prob: np.ndarray, device: torch.device) -> np.ndarray:
        from deepscope.tasks.segment.flows import flows_to_instances

        return flows_to_instances(prob, out[1:3] / FLOW_SCALE, self.postprocess, device=device)


class DistillFlowTask(FlowSegmentTask):
    """Knowledge distillation of a flow network: the teacher's raw outputs on each augmented crop are the targets.

    Batches are :class:`FlowSegmentTask`'s (same images, rescaling to ``target_diameter``, crops and
    augmentation, same random draws); the teacher runs on every batch (eval mode, no gradients) and
    its probability logit, flows and log size become the targets. The loss weights its terms as
    :class:`FlowSegmentTask` does: binary cross-entropy of the probability with the teacher's sigmoid
    as a soft target, ``0.5 x`` the mean squared error of the flows, and ``size_weight x`` the squared
    error of the log size weighted by the teacher's probability. ``hard_weight`` mixes in the
    ground-truth loss of :class:`FlowSegmentTask` (0 = pure distillation). Validation is
    :class:`FlowSegmentTask`'s: the DSB score against the TRUE labels of the validation images, so
    student and teacher are compared on the same measure (:func:`deepscope.train.trainer.validate_network`).

    Parameters
    ----------
    images, labels, **kwargs
        As :class:`FlowSegmentTask`.
    teacher : torch.nn.Module
        A trained flow network with the same input channels and the 4 outputs (logit, 2 flows, log size).
    hard_weight : float
        Share of the ground-truth loss, in [0, 1].

    Raises
    ------
    deepscope.errors.InputError
        ``hard_weight`` outside [0, 1].

    Examples
    --------
    >>> import numpy as np, torch
    >>> from deepscope.models import ArchConfig
    >>> from deepscope.models.networks import build_network
    >>> teacher = build_network(ArchConfig("unet", 1, 4, base=4, depth=2)).eval()
    >>> lab = np.zeros((64, 64), np.int32); lab[10:26, 10:26] = 1; lab[30:46, 30:46] = 2
    >>> task = DistillFlowTask([np.random.default_rng(0).random((64, 64, 1), np.float32)], [lab], teacher=teacher,
    ...                        crop=32, batch_size=2, samples_per_epoch=2, stride=4)
    >>> x, y = next(task.batches(np.random.default_rng(0), torch.device("cpu")))
    >>> tuple(x.shape), tuple(y.shape)
    ((2, 1, 32, 32), (2, 8, 32, 32))
    """

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, teacher: nn.Module,
                 hard_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(images, labels, **kwargs)
        if not 0.0 <= float(hard_weight) <= 1.0:
            raise InputError(f"hard_weight must be in [0, 1], got {hard_weight}")
        self.hard_weight = float(hard_weight)
        self.teacher = teacher.to(self.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def batches(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        """FlowSegmentTask's batches with the teacher's outputs appended: targets ``(N, 4 + 4, H, W)``."""
        for x, y in super().batches(rng, device):
            with torch.no_grad():
                t = self.teacher(x.to(self.device)).float().to(device)
            yield x, torch.cat([y, t], 1)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        truth, t = targets[:, :4], targets[:, 4:]
        soft = torch.sigmoid(t[:, 0])
        loss = F.binary_cross_entropy_with_logits(outputs[:, 0], soft)
        loss = loss + 0.5 * F.mse_loss(outputs[:, 1:3], t[:, 1:3])
        if self.size_weight > 0:
            loss = loss + self.size_weight * ((outputs[:, -1] - t[:, -1]) ** 2 * soft).sum() / soft.sum().clamp(min=1.0)
        if self.hard_weight > 0:
            loss = (1 - self.hard_weight) * loss + self.hard_weight * super().loss(outputs, truth)
        return loss


class DistanceSegmentTask(AugmentedInstanceTask):
    """Foreground + normalised distance instances (seeded watershed): outputs logit, distance logit, log size."""

    out_channels = 3

    @staticmethod
    def default_postprocess() -> Any:
        from deepscope.tasks.segment.instances import PostprocessConfig

        return PostprocessConfig(min_size=12, min_seed_size=4)

    @property
    def prob_threshold(self) -> float:
        return float(self.postprocess.fg_threshold)

    def targets(self, labels: np.ndarray) -> np.ndarray:
        from deepscope.tasks.segment.instances import instance_targets

        return instance_targets(labels)[1][None]

    def representation_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 2.0 * F.mse_loss(torch.sigmoid(outputs[:, 1]), targets[:, 1])

    def instances(self, out: np.ndarray, prob: np.ndarray, device: torch.device) -> np.ndarray:
        from deepscope.tasks.segment.instances import instances_from_maps

        return instances_from_maps(prob, 1.0 / (1.0 + np.exp(-out[1])), self.postprocess)
