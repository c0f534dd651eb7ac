"""What every training task shares: images as tensors on the training device and the augmentations that keep
counts, masks and image pairs valid (the 8 square symmetries and an intensity jitter).

The training tasks themselves live with their task (``deepscope.tasks.<task>.training``); the Trainer
(:mod:`deepscope.train.trainer`) runs any of them.
"""

from __future__ import annotations

import numpy as np
import torch

from deepscope.predict.engine import to_tensor

__all__ = ["hwc", "image_tensor", "d8", "intensity_jitter"]


def hwc(x: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W, C) float32."""
    x = np.asarray(x, dtype=np.float32)
    return x[..., None] if x.ndim == 2 else x


def image_tensor(x: np.ndarray, device: torch.device) -> torch.Tensor:
    """One (H, W) or (H, W, C) image as a (C, H, W) float32 tensor on ``device``."""
    return to_tensor(hwc(x), device)[0]


def d8(t: torch.Tensor, k: int, transpose: bool) -> torch.Tensor:
    if transpose:
        t = t.transpose(-2, -1)
    return torch.rot90(t, k, dims=(-2, -1)) if k else t


def intensity_jitter(x: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    if strength <= 0:
        return x
    n = x.shape[0]
    gain = torch.tensor(np.exp(rng.uniform(-strength, strength, n)), dtype=x.dtype, device=x.device)
    shift = torch.tensor(rng.uniform(-0.05 * strength, 0.05 * strength, n), dtype=x.dtype, device=x.device)
    return x * gain.view(n, 1, 1, 1) + shift.view(n, 1, 1, 1)
