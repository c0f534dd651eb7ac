"""Resizing images to a model's object scale and label images back to the input's size."""

from __future__ import annotations

import numpy as np

__all__ = ["rescale_image", "resize_labels"]


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize an ``(H, W[, C])`` float image by ``factor`` (bilinear, area-averaged when shrinking)."""
    import torch
    import torch.nn.functional as F

    if abs(factor - 1.0) < 1e-3:
        return image
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(image, np.float32)))
    chw = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    h, w = chw.shape[-2:]
    size = (max(1, int(round(h * factor))), max(1, int(round(w * factor))))
    y = F.interpolate(chw, size=size, mode="area" if factor < 1 else "bilinear",
                      align_corners=None if factor < 1 else False)[0]
    return (y[0] if x.ndim == 2 else y.permute(1, 2, 0)).numpy()


def resize_labels(labels: np.ndarray, shape: tuple[int, int], *, prob: np.ndarray | None = None,
                  threshold: float = 0.5) -> np.ndarray:
    """Labels back to ``shape`` (nearest), with the outline from the bilinearly resized probability."""
    import torch
    import torch.nn.functional as F

    if labels.shape == tuple(shape):
        return labels
    lab = torch.from_numpy(labels.astype(np.int32))[None, None].float()
    out = F.interpolate(lab, size=tuple(shape), mode="nearest")[0, 0].numpy().astype(np.int32)
    if prob is not None:
        p = F.interpolate(torch.from_numpy(np.asarray(prob, np.float32))[None, None], size=tuple(shape),
                          mode="bilinear", align_corners=False)[0, 0].numpy()
        out[p <= threshold] = 0
    return out
