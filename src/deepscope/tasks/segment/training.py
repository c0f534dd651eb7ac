"""The segment task's training: :class:`SegmentTask` (foreground + distance (+ classes) targets, loss and
instance-level validation) for the shared Trainer. The generalist representations train with
:mod:`deepscope.tasks.segment.training_generalist`."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.errors import InputError
from deepscope.predict.predictor import run_network
from deepscope.train.augment import d8, hwc, image_tensor, intensity_jitter
from deepscope.tasks.segment.instances import segmentation_maps

__all__ = ["SegmentTask"]


class SegmentTask:
    """Instance segmentation: foreground + normalised distance (+ optional classes), or foreground only.

    Parameters
    ----------
    images : sequence of (H, W[, C]) float32
        Normalised images.
    labels : sequence of (H, W) int
        Instance label images (0 = background).
    classes : sequence of dict[int, int], optional
        Class (1..K) of each instance id, for multi-class segmentation.
    n_classes : int
        Number of object classes (1 = plain instances).
    mode : {"instances", "foreground"}
        ``"foreground"`` trains only channel 0 with sigmoid cross-entropy (the book's U-Net).
    crop : int
        Training crop size (images smaller than this are zero-padded).
    valid_images, valid_labels : optional
        Full validation images; validation runs the network on them and scores instances.
    valid_classes : sequence of dict[int, int], optional
        Class (1..K) of each instance of the validation label images (multi-class models): validation
        also reports ``val_class_acc``, the share of matched objects (IoU >= 0.5) given their true class.
    postprocess : PostprocessConfig, optional
    stride : int
        Padding multiple the network needs for validation images.
    """

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], *,
                 classes: Sequence[dict[int, int]] | None = None, n_classes: int = 1, mode: str = "instances",
                 crop: int = 256, batch_size: int = 8, jitter: float = 0.2,
                 valid_images: Sequence[np.ndarray] = (), valid_labels: Sequence[np.ndarray] = (),
                 valid_classes: Sequence[dict[int, int]] | None = None, postprocess: Any = None,
                 stride: int = 16, dist_weight: float = 2.0, device: torch.device | str = "cpu",
                 samples_per_epoch: int | None = None, scale_range: tuple[float, float] | None = None,
                 gamma_range: tuple[float, float] | None = None) -> None:
        from deepscope.tasks.segment.instances import PostprocessConfig, instance_targets

        if mode not in ("instances", "foreground"):
            raise InputError(f"mode={mode!r} is not one of ('instances', 'foreground')")
        if len(images) != len(labels):
            raise InputError(f"{len(images)} images but {len(labels)} label images")
        if len(images) == 0:
            raise InputError("no training images")
        self.mode = mode
        self.n_classes = n_classes
        self.crop = crop
        self.batch_size = batch_size
        self.jitter = jitter
        self.stride = stride
        self.dist_weight = dist_weight
        self.device = torch.device(device)
        self.postprocess = postprocess or PostprocessConfig(mode="components" if mode == "foreground" else "watershed")
        self.samples_per_epoch = samples_per_epoch
        self.scale_range = scale_range
        self.gamma_range = gamma_range
        self._x, self._t = [], []
        for i, (img, lab) in enumerate(zip(images, labels)):
            lab = np.asarray(lab)
            if lab.shape != np.asarray(img).shape[:2]:
                raise InputError(f"image {i} has shape {np.asarray(img).shape[:2]} but its labels {lab.shape}")
            fg, dist = instance_targets(lab)
            chans = [fg, dist]
            if n_classes > 1:
                cmap = np.zeros(lab.shape, np.float32)
                if classes is None:
                    raise InputError("n_classes > 1 needs classes= (class of each instance)")
                for oid, c in classes[i].items():
                    cmap[lab == oid] = c
                chans.append(cmap)
            self._x.append(image_tensor(img, self.device))
            self._t.append(torch.from_numpy(np.stack(chans).astype(np.float32)).to(self.device))
        self._vx = [np.asarray(v, np.float32) for v in valid_images]
        self._vl = [np.asarray(v) for v in valid_labels]
        if valid_classes is not None and len(valid_classes) != len(self._vl):
            raise InputError(f"{len(valid_classes)} class maps (valid_classes) for {len(self._vl)} validation label "
                             "images; give one per label image")
        self._vc = list(valid_classes) if valid_classes is not None and n_classes > 1 else None
        # sample images in proportion to their area (large images hold more objects)
        areas = np.array([t.shape[-1] * t.shape[-2] for t in self._t], dtype=float)
        self._p = areas / areas.sum()

    @property
    def out_channels(self) -> int:
        if self.mode == "foreground":
            return 1
        return 2 + (self.n_classes if self.n_classes > 1 else 0)

    def steps_per_epoch(self) -> int:
        n = self.samples_per_epoch or sum(max(1, round(t.shape[-1] * t.shape[-2] / self.crop ** 2))
                                          for t in self._t)
        return max(1, math.ceil(n / self.batch_size))

    def _crop(self, x: torch.Tensor, t: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.crop
        zoom = 1.0
        if self.scale_range is not None:  # log-uniform zoom: objects of other sizes
            lo, hi = self.scale_range
            zoom = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        c = max(8, int(round(out / zoom)))
        h, w = x.shape[-2:]
        if h < c or w < c:
            ph, pw = max(0, c - h), max(0, c - w)
            x = F.pad(x, (0, pw, 0, ph))
            t = F.pad(t, (0, pw, 0, ph))
            h, w = x.shape[-2:]
        r0 = int(rng.integers(0, h - c + 1))
        c0 = int(rng.integers(0, w - c + 1))
        x, t = x[..., r0:r0 + c, c0:c0 + c], t[..., r0:r0 + c, c0:c0 + c]
        if c != out:
            x = F.interpolate(x[None], size=(out, out), mode="bilinear", align_corners=False)[0]
            tt = F.interpolate(t[None, :2], size=(out, out), mode="bilinear", align_corners=False)[0]
            tt[0] = (tt[0] > 0.5).float()
            if t.shape[0] > 2:  # class map: nearest
                cls = F.interpolate(t[None, 2:], size=(out, out), mode="nearest")[0]
                tt = torch.cat([tt, cls * tt[0:1]], 0)
            t = tt
        return x, t

    def batches(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        for _ in range(self.steps_per_epoch()):
            idx = rng.choice(len(self._x), size=self.batch_size, p=self._p)
            xs, ts = [], []
            for i in idx:
                x, t = self._crop(self._x[i], self._t[i], rng)
                k, tr = int(rng.integers(4)), bool(rng.integers(2))
                xs.append(d8(x, k, tr))
                ts.append(d8(t, k, tr))
            x = intensity_jitter(torch.stack(xs), rng, self.jitter)
            if self.gamma_range is not None:  # contrast of dim vs bright objects
                lo, hi = self.gamma_range
                g = torch.tensor(np.exp(rng.uniform(np.log(lo), np.log(hi), len(idx))), dtype=x.dtype,
                                 device=x.device).view(-1, 1, 1, 1)
                x = x.clamp(min=0) ** g
            yield x.to(device), torch.stack(ts).to(device)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if outputs.shape[-2:] != targets.shape[-2:]:  # networks that bin their input
            outputs = F.interpolate(outputs, size=targets.shape[-2:], mode="bilinear", align_corners=False)
        fg = targets[:, 0]
        loss = F.binary_cross_entropy_with_logits(outputs[:, 0], fg)
        if self.mode == "foreground":
            return loss
        dist = torch.sigmoid(outputs[:, 1])
        loss = loss + self.dist_weight * F.mse_loss(dist, targets[:, 1])
        if self.n_classes > 1:
            cls = targets[:, 2].long()
            logits = outputs[:, 2:2 + self.n_classes]
            m = cls > 0
            if m.any():
                ce = F.cross_entropy(logits, (cls - 1).clamp(min=0), reduction="none")
                loss = loss + (ce * m).sum() / m.sum()
        return loss

    def maps(self, net: nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray:
        """Activated output maps ``(C, H, W)`` for one full image (sigmoid on fg/dist, softmax on classes)."""
        return segmentation_maps(run_network(net, [hwc(image)], stride=self.stride, device=device, batch_size=1)[0],
                                 image.shape[:2], distance=self.mode == "instances", n_classes=self.n_classes)

    def validate(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        if not self._vx:
            return {"val_loss": float("nan")}
        from deepscope.evaluate import match_instances
        from deepscope.tasks.segment.instances import instances_from_maps

        aps, f1s, losses = [], [], []
        right = matched = 0
        for i, (img, lab) in enumerate(zip(self._vx, self._vl)):
            m = self.maps(net, img, device)
            pred = instances_from_maps(m[0], m[1] if self.mode == "instances" else None, self.postprocess)
            r = match_instances(lab, pred)
            aps.append(r.mean_ap)
            f1s.append(float(r.f1[0]))
            fg = (lab > 0).astype(np.float32)
            p = np.clip(m[0], 1e-6, 1 - 1e-6)
            losses.append(float(-(fg * np.log(p) + (1 - fg) * np.log(1 - p)).mean()))
            if self._vc is not None:
                r_, m_ = self._class_hits(lab, pred, m, self._vc[i])
                right, matched = right + r_, matched + m_
        out = {"val_loss": float(np.mean(losses)), "val_dsb": float(np.mean(aps)), "val_f1": float(np.mean(f1s))}
        if self._vc is not None:
            out["val_class_acc"] = right / matched if matched else float("nan")
        return out

    def _class_hits(self, lab: np.ndarray, pred: np.ndarray, maps: np.ndarray,
                    classes: dict[int, int]) -> tuple[int, int]:
        """Matched objects (IoU >= 0.5) of one validation image given their true class, and matched objects."""
        from deepscope.evaluate import match_labels
        from deepscope.tasks.segment.instances import class_per_instance

        got = class_per_instance(pred, maps[2:2 + self.n_classes])
        mt = match_labels(lab, pred, threshold=0.5)
        hits = sum(int(got.get(int(p), 0) == int(classes.get(int(t), -1))) for t, p in zip(mt.true_ids, mt.pred_ids))
        return hits, len(mt.true_ids)
