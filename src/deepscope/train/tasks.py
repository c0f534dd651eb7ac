"""Training tasks: counting, instance segmentation and image-to-image restoration.

A task holds its (normalised) training and validation data as tensors on the training
device, draws augmented batches from a seeded NumPy generator (so resumed runs replay the
same stream), and defines the loss and validation metrics. Augmentation: the 8 square
symmetries (counts, masks and image pairs are all invariant to them) and intensity jitter.
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
from deepscope.predict.engine import to_tensor
from deepscope.predict.instances import segmentation_maps
from deepscope.predict.predictor import run_network

__all__ = ["CountTask", "SegmentTask", "RestoreTask", "LOSSES", "ssim_loss"]

#: Image-to-image losses.
LOSSES = ("l1", "l2", "ssim", "l1+ssim")


def _hwc(x: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, C) float32."""
    x = np.asarray(x, dtype=np.float32)
    return x[..., None] if x.ndim == 2 else x


def _tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """One (H, W) or (H, W, C) image as a (C, H, W) float32 tensor on ``device``."""
    return to_tensor(_hwc(x), device)[0]


def _d8(t: torch.Tensor, k: int, transpose: bool) -> torch.Tensor:
    if transpose:
        t = t.transpose(-2, -1)
    return torch.rot90(t, k, dims=(-2, -1)) if k else t


def _jitter(x: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    if strength <= 0:
        return x
    n = x.shape[0]
    gain = torch.tensor(np.exp(rng.uniform(-strength, strength, n)), dtype=x.dtype, device=x.device)
    shift = torch.tensor(rng.uniform(-0.05 * strength, 0.05 * strength, n), dtype=x.dtype, device=x.device)
    return x * gain.view(n, 1, 1, 1) + shift.view(n, 1, 1, 1)


# =============================================================================== counting

class CountTask:
    """Counting: a density head whose sum is the count (plus a variance head), or a direct regressor.

    Parameters
    ----------
    images : sequence of (H, W) or (H, W, C) float32
        Normalised training images (already at the network's input resolution).
    counts : array-like of float
        True counts.
    valid_images, valid_counts : optional
        Validation data (same form).
    head : {"density", "regress"}
        ``"density"``: the network outputs ``(N, 2, h, w)``; softplus of channel 0 is a density
        map whose sum is the count, softplus of channel 1 sums to the count's variance (trained
        by Gaussian likelihood with the mean detached). ``"regress"``: the network outputs the
        count directly (the book's CountNet, L2 loss).
    densities : sequence of (h, w) float32, optional
        Exact density maps at the output resolution (from synthetic images); adds a pixel loss.
    batch_size : int
    jitter : float
        Strength of the random intensity gain (log-uniform in +-jitter).
    """

    def __init__(self, images: Sequence[np.ndarray], counts: Any, *, valid_images: Sequence[np.ndarray] = (),
                 valid_counts: Any = (), head: str = "density", densities: Sequence[np.ndarray] | None = None,
                 batch_size: int = 16, jitter: float = 0.1, density_weight: float = 1.0,
                 device: torch.device | str = "cpu") -> None:
        if head not in ("density", "regress"):
            raise InputError(f"head={head!r} is not one of ('density', 'regress')")
        if len(images) != len(counts):
            raise InputError(f"{len(images)} images but {len(counts)} counts")
        if len(images) == 0:
            raise InputError("no training images")
        self.head = head
        self.batch_size = batch_size
        self.jitter = jitter
        self.density_weight = density_weight
        self.device = torch.device(device)
        self._x = [_tensor(a, self.device) for a in images]
        self._y = torch.as_tensor(np.asarray(counts, dtype=np.float32), device=self.device)
        self._d = None if densities is None else [_tensor(d, self.device) for d in densities]
        self._vx = [_tensor(a, self.device) for a in valid_images]
        self._vy = np.asarray(valid_counts, dtype=np.float32)

    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self._x) / self.batch_size))

    def _stack(self, items: list[torch.Tensor]) -> torch.Tensor:
        shapes = {tuple(t.shape) for t in items}
        if len(shapes) == 1:
            return torch.stack(items)
        h = max(s[-2] for s in shapes)
        w = max(s[-1] for s in shapes)
        return torch.stack([F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2])) for t in items])

    def batches(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        """Batches over shuffled passes of the training images, without end (the Trainer stops at its
        ``steps_per_epoch``, one pass by default)."""
        while True:
            yield from self._one_pass(rng, device)

    def _one_pass(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        order = rng.permutation(len(self._x))
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            k = int(rng.integers(4))
            tr = bool(self.head == "density" and rng.integers(2))  # regressor has a fixed input shape
            if self.head == "regress":
                k = int(rng.choice([0, 2]))
            xs = self._stack([_d8(self._x[i], k, tr) for i in idx])
            xs = _jitter(xs, rng, self.jitter)
            target: dict[str, Any] = {"count": self._y[torch.as_tensor(idx, device=self._y.device)]}
            if self._d is not None:
                target["density"] = self._stack([_d8(self._d[i], k, tr) for i in idx])
            yield xs.to(device), target

    def counts_from_output(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(count, variance or None) from the network output."""
        if self.head == "regress":
            return out.reshape(-1), None
        dens = F.softplus(out[:, 0])
        count = dens.sum(dim=(-2, -1))
        var = F.softplus(out[:, 1]).sum(dim=(-2, -1)) + 1e-2 if out.shape[1] > 1 else None
        return count, var

    def loss(self, outputs: torch.Tensor, targets: Any) -> torch.Tensor:
        y = targets["count"]
        count, var = self.counts_from_output(outputs)
        if self.head == "regress":
            return F.mse_loss(count, y)
        loss = F.smooth_l1_loss(count, y, beta=1.0)
        if var is not None:
            loss = loss + 0.1 * (0.5 * ((y - count.detach()) ** 2 / var + torch.log(var))).mean()
        if "density" in targets:  # exact density maps where known (NaN marks images without one)
            dt = targets["density"]
            known = torch.isfinite(dt)
            if bool(known.any()):
                d = F.softplus(outputs[:, 0:1])
                diff = torch.where(known, d - torch.nan_to_num(dt), torch.zeros_like(d))
                loss = loss + self.density_weight * (diff ** 2).sum() / d.shape[0]
        return loss

    @torch.no_grad()
    def predict(self, net: nn.Module, images: Sequence[torch.Tensor], device: torch.device
                ) -> tuple[np.ndarray, np.ndarray]:
        counts, vars_ = [], []
        for i in range(0, len(images), self.batch_size):
            xs = self._stack(list(images[i:i + self.batch_size])).to(device)
            out = net(xs).float()
            c, v = self.counts_from_output(out)
            counts.append(c.cpu().numpy())
            vars_.append(v.cpu().numpy() if v is not None else np.zeros(len(c), np.float32))
        return np.concatenate(counts), np.concatenate(vars_)

    def validate(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        if not self._vx:
            return {"val_loss": float("nan")}
        pred, var = self.predict(net, self._vx, device)
        err = pred - self._vy
        out = {"val_mae": float(np.abs(err).mean()), "val_rmse": float(np.sqrt((err ** 2).mean())),
               "val_bias": float(err.mean())}
        out["val_loss"] = out["val_mae"]
        if self.head == "density":
            z = np.abs(err) / np.sqrt(np.maximum(var, 1e-6))
            out["val_cover95"] = float((z <= 1.96).mean())
        return out


# =============================================================================== segmentation

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
        from deepscope.predict.instances import PostprocessConfig, instance_targets

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
            self._x.append(_tensor(img, self.device))
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
                xs.append(_d8(x, k, tr))
                ts.append(_d8(t, k, tr))
            x = _jitter(torch.stack(xs), rng, self.jitter)
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
        return segmentation_maps(run_network(net, [_hwc(image)], stride=self.stride, device=device, batch_size=1)[0],
                                 image.shape[:2], distance=self.mode == "instances", n_classes=self.n_classes)

    def validate(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        if not self._vx:
            return {"val_loss": float("nan")}
        from deepscope.evaluate import match_instances
        from deepscope.predict.instances import instances_from_maps

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
        from deepscope.predict.instances import class_per_instance

        got = class_per_instance(pred, maps[2:2 + self.n_classes])
        mt = match_labels(lab, pred, threshold=0.5)
        hits = sum(int(got.get(int(p), 0) == int(classes.get(int(t), -1))) for t, p in zip(mt.true_ids, mt.pred_ids))
        return hits, len(mt.true_ids)


# =============================================================================== restoration

def _gauss_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    g = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(g ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_loss(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """1 - SSIM (Gaussian window 11, sigma 1.5), averaged over the batch and channels."""
    c = a.shape[1]
    w = _gauss_window(11, 1.5, a.device).expand(c, 1, 11, 11)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a = F.conv2d(a, w, groups=c)
    mu_b = F.conv2d(b, w, groups=c)
    saa = F.conv2d(a * a, w, groups=c) - mu_a ** 2
    sbb = F.conv2d(b * b, w, groups=c) - mu_b ** 2
    sab = F.conv2d(a * b, w, groups=c) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return 1 - s.mean()


class RestoreTask:
    """Image-to-image regression (deblurring, in-silico labelling, super-resolution).

    Inputs and targets are given already normalised (by the input's percentiles, so the network
    learns the intensity relation and outputs can be mapped back to the input's scale).

    Parameters
    ----------
    inputs, targets : sequences of (H, W[, C]) float32, aligned
    loss : {"l1", "l2", "ssim", "l1+ssim"}
    crop : int
    upscale : int
        Target/input size ratio (2 for super-resolution; the network then sees the input upsampled).
    """

    def __init__(self, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], *,
                 valid_inputs: Sequence[np.ndarray] = (), valid_targets: Sequence[np.ndarray] = (),
                 loss: str = "l1", crop: int = 256, batch_size: int = 8, upscale: int = 1, stride: int = 16,
                 device: torch.device | str = "cpu", samples_per_epoch: int | None = None) -> None:
        if loss not in LOSSES:
            raise InputError(f"loss={loss!r} is not one of {LOSSES}")
        if len(inputs) != len(targets):
            raise InputError(f"{len(inputs)} inputs but {len(targets)} targets")
        if len(inputs) == 0:
            raise InputError("no training pairs")
        self.loss_name = loss
        self.crop = crop
        self.batch_size = batch_size
        self.upscale = upscale
        self.stride = stride
        self.device = torch.device(device)
        self.samples_per_epoch = samples_per_epoch
        self._x, self._y = [], []
        for i, (a, b) in enumerate(zip(inputs, targets)):
            a, b = _hwc(a), _hwc(b)
            if (a.shape[0] * upscale, a.shape[1] * upscale) != b.shape[:2]:
                raise InputError(f"pair {i}: input {a.shape[:2]} x{upscale} does not match target {b.shape[:2]}")
            self._x.append(_tensor(a, self.device))
            self._y.append(_tensor(b, self.device))
        self._vx = [_hwc(a) for a in valid_inputs]
        self._vy = [_hwc(b).transpose(2, 0, 1) for b in valid_targets]

    def steps_per_epoch(self) -> int:
        n = self.samples_per_epoch or sum(max(1, round(t.shape[-1] * t.shape[-2] / self.crop ** 2))
                                          for t in self._y)
        return max(1, math.ceil(n / self.batch_size))

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        if self.upscale == 1:
            return x
        return F.interpolate(x, scale_factor=self.upscale, mode="bicubic", align_corners=False)

    def batches(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        c = self.crop
        ci = c // self.upscale
        for _ in range(self.steps_per_epoch()):
            idx = rng.integers(0, len(self._x), size=self.batch_size)
            xs, ys = [], []
            for i in idx:
                x, y = self._x[i], self._y[i]
                h, w = x.shape[-2:]
                if h < ci or w < ci:
                    ph, pw = max(0, ci - h), max(0, ci - w)
                    x = F.pad(x, (0, pw, 0, ph))
                    y = F.pad(y, (0, pw * self.upscale, 0, ph * self.upscale))
                    h, w = x.shape[-2:]
                r0 = int(rng.integers(0, h - ci + 1))
                c0 = int(rng.integers(0, w - ci + 1))
                xc = x[..., r0:r0 + ci, c0:c0 + ci]
                yc = y[..., r0 * self.upscale:(r0 + ci) * self.upscale, c0 * self.upscale:(c0 + ci) * self.upscale]
                k, tr = int(rng.integers(4)), bool(rng.integers(2))
                xs.append(_d8(xc, k, tr))
                ys.append(_d8(yc, k, tr))
            x = self.upsample(torch.stack(xs).to(device))
            yield x, torch.stack(ys).to(device)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "l1":
            return F.l1_loss(outputs, targets)
        if self.loss_name == "l2":
            return F.mse_loss(outputs, targets)
        if self.loss_name == "ssim":
            return ssim_loss(outputs, targets)
        return F.l1_loss(outputs, targets) + 0.5 * ssim_loss(outputs, targets)

    def validate(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        if not self._vx:
            return {"val_loss": float("nan")}
        from deepscope.evaluate import psnr

        l1s, psnrs = [], []
        for a, b in zip(self._vx, self._vy):
            x = self.upsample(to_tensor(a, device))[0].cpu().numpy().transpose(1, 2, 0)
            out = run_network(net, [x], stride=self.stride, device=device)[0]
            l1s.append(float(np.abs(out - b).mean()))
            psnrs.append(psnr(b, out, data_range=max(float(b.max() - b.min()), 1e-6)))
        return {"val_loss": float(np.mean(l1s)), "val_psnr": float(np.mean(psnrs))}
