"""The count task's training: :class:`CountTask` (targets, loss, validation) for the shared Trainer."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.errors import InputError
from deepscope.train.augment import d8, image_tensor, intensity_jitter

__all__ = ["CountTask"]


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
        self._x = [image_tensor(a, self.device) for a in images]
        self._y = torch.as_tensor(np.asarray(counts, dtype=np.float32), device=self.device)
        self._d = None if densities is None else [image_tensor(d, self.device) for d in densities]
        self._vx = [image_tensor(a, self.device) for a in valid_images]
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
            xs = self._stack([d8(self._x[i], k, tr) for i in idx])
            xs = intensity_jitter(xs, rng, self.jitter)
            target: dict[str, Any] = {"count": self._y[torch.as_tensor(idx, device=self._y.device)]}
            if self._d is not None:
                target["density"] = self._stack([d8(self._d[i], k, tr) for i in idx])
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
