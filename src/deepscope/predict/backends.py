"""Inference backends: what runs a network on a batch for the :class:`~deepscope.predict.Predictor`.

A backend takes a float32 NumPy batch ``(N, C, H, W)`` and returns the network's float32 output
``(N, K, h, w)`` (or ``(N, K)``); the predictor does everything around it (padding, batching,
test-time augmentation, activation, tiling), so a new runtime is one class with a ``forward``:

* :class:`TorchBackend`: PyTorch, on CPU or CUDA, BatchNorm folded into the convolutions and
  channels-last for inference, float32 or autocast bf16/fp16 on CUDA.
* An ONNX Runtime backend would hold an ``onnxruntime.InferenceSession`` of the exported network and
  return ``session.run(None, {"input": x})[0]`` from ``forward`` (see DEVELOPERS.md).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepscope.errors import ConfigError

__all__ = ["InferenceBackend", "TorchBackend", "PRECISIONS", "torch_backend"]

#: Precisions of :class:`TorchBackend` (bf16/fp16 autocast apply on CUDA only).
PRECISIONS = ("float32", "bf16", "fp16")


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs a network: ``forward((N, C, H, W) float32) -> (N, K, h, w) or (N, K) float32``."""

    name: str

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's output for one batch."""


def _fuse_conv_bn(net: Any) -> Any:
    """Fold every Conv2d directly followed by BatchNorm2d (in a Sequential) into one convolution (eval only)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for mod in net.modules():
        if isinstance(mod, nn.Sequential):
            layers = list(mod)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    mod[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                    mod[i + 1] = nn.Identity()
    return net


class TorchBackend:
    """A PyTorch network as an inference backend.

    Parameters
    ----------
    net : torch.nn.Module
    device : str or torch.device
    precision : {"float32", "bf16", "fp16"}
        Autocast dtype on CUDA; CPU runs float32.
    optimize : bool, default True
        Run a copy in eval mode with BatchNorm folded into the convolutions (12% faster on CPU, same
        outputs to 1e-5). False runs ``net`` itself as it is (e.g. validation during training).
    channels_last : bool, default True
        Channels-last memory format (faster convolutions on CPU and CUDA).

    Raises
    ------
    deepscope.errors.ConfigError
        An unknown ``precision``.
    """

    name = "torch"

    def __init__(self, net: Any, *, device: Any = "cpu", precision: str = "float32", optimize: bool = True,
                 channels_last: bool = True) -> None:
        import torch

        if precision not in PRECISIONS:
            raise ConfigError(f"precision={precision!r} is not one of {PRECISIONS}")
        self.device = torch.device(device)
        self.precision = precision
        self.channels_last = channels_last and self.device.type != "mps"
        if optimize:
            net = _fuse_conv_bn(copy.deepcopy(net).eval()).to(self.device)
            if self.channels_last:
                net = net.to(memory_format=torch.channels_last)
        self.net = net
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision) if self.device.type == "cuda" else None
        self._amp = amp

    def forward(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            if self.channels_last and t.ndim == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self._amp or torch.float32, enabled=self._amp is not None):
                y = self.net(t)
            return y.float().cpu().numpy()

    def features(self, x: np.ndarray) -> np.ndarray:
        """Image features ``(N, F)`` of the network's encoder (for domain checks); networks without an
        ``encode`` method have none."""
        import torch

        from deepscope.errors import ModelError

        if not hasattr(self.net, "encode"):
            raise ModelError(f"{type(self.net).__name__} has no encoder features for a domain check")
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
            if self.channels_last and t.ndim == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            return self.net.encode(t).float().cpu().numpy()


def torch_backend(model: Any, *, precision: str = "float32") -> TorchBackend:
    """The (cached) inference backend of a :class:`~deepscope.models.DeepscopeModel`, rebuilt after its
    weights, device or precision change."""
    key = (model.weights_version(), precision)
    cached = model.runtime.get("torch_backend")
    if cached is None or cached[0] != key:
        cached = (key, TorchBackend(model.net, device=model.device, precision=precision))
        model.runtime["torch_backend"] = cached
    return cached[1]
