"""The restore task's training: :class:`RestoreTask` (image-to-image regression) and its losses."""

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
from deepscope.predict.predictor import run_network
from deepscope.train.augment import d8, hwc, image_tensor

__all__ = ["RestoreTask", "LOSSES", "ssim_loss"]

#: Image-to-image losses.
LOSSES = ("l1", "l2", "ssim", "l1+ssim")


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
            a, b = hwc(a), hwc(b)
            if (a.shape[0] * upscale, a.shape[1] * upscale) != b.shape[:2]:
                raise InputError(f"pair {i}: input {a.shape[:2]} x{upscale} does not match target {b.shape[:2]}")
            self._x.append(image_tensor(a, self.device))
            self._y.append(image_tensor(b, self.device))
        self._vx = [hwc(a) for a in valid_inputs]
        self._vy = [hwc(b).transpose(2, 0, 1) for b in valid_targets]

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
                xs.append(d8(xc, k, tr))
                ys.append(d8(yc, k, tr))
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
