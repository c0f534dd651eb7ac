"""Inference backends: what runs a network on a batch for the :class:`~deepscope.predict.Predictor`.

A backend takes a float32 NumPy batch ``(N, C, H, W)`` and returns the network's float32 output
``(N, K, h, w)`` (or ``(N, K)``); the predictor does everything around it (padding, batching,
test-time augmentation, activation, tiling), so a new runtime is one class with a ``forward``:

* :class:`TorchBackend`: PyTorch, on CPU or CUDA, BatchNorm folded into the convolutions and
  channels-last for inference, float32 or autocast bf16/fp16 on CUDA.
* :class:`OnnxBackend`: ONNX Runtime (CPU, and CUDA where its provider is installed) running the
  network exported by :func:`export_onnx` (the same folded network, float32); outputs match the torch
  backend to ~1e-5. A model runs on it with ``model.backend = "onnx"`` (``--backend onnx`` on the
  command line); :func:`inference_backend` picks the backend a model asks for.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepscope.errors import ConfigError
from deepscope.predict.stages import stage

__all__ = ["InferenceBackend", "TorchBackend", "OnnxBackend", "PRECISIONS", "BACKENDS", "ONNX_OPSET", "torch_backend",
           "inference_backend", "export_onnx", "network_onnx"]

#: Precisions of :class:`TorchBackend` (bf16/fp16 autocast apply on CUDA only).
PRECISIONS = ("float32", "bf16", "fp16")
#: Inference backends a model can run on (``model.backend``).
BACKENDS = ("torch", "onnx")
#: ONNX opset of :func:`export_onnx`.
ONNX_OPSET = 17


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
                    mod[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])  # type: ignore[type-var, arg-type]
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

        with stage("network"), torch.inference_mode():
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
    backend: TorchBackend = model.runtime.backend(
        "torch", (model.weights_version(), precision),
        lambda: TorchBackend(model.net, device=model.device, precision=precision))
    return backend


def network_onnx(net: Any, in_channels: int, *, opset: int = ONNX_OPSET) -> bytes:
    """A PyTorch network as ONNX bytes: input ``input`` ``(N, in_channels, H, W)``, output ``output``, batch,
    height and width dynamic (the TorchScript-based exporter; no onnxscript needed)."""
    import io
    import warnings

    import torch

    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes are not the user's business
        # the exporter writes to a file-like object too (its annotation names paths only)
        torch.onnx.export(net, (torch.zeros(1, in_channels, 64, 64),), buf,  # type: ignore[arg-type]
                          input_names=["input"], output_names=["output"], opset_version=opset,
                          dynamic_axes={"input": axes, "output": axes}, dynamo=False)
    return buf.getvalue()


def export_onnx(model: Any, path: str | os.PathLike[str] | None = None, *, opset: int = ONNX_OPSET) -> bytes:
    """Export a model's network to ONNX: float32, BatchNorm folded, dynamic batch, height and width.

    The graph's input is ``input`` ``(N, C, H, W)`` (the pre-processed image, as the predictor feeds
    the network) and its output ``output``; the model card (JSON) and the opset are stored in the ONNX
    metadata (``deepscope_card``, ``deepscope_opset``). Pre- and post-processing (normalisation,
    tiling, activation, instances) stay in deepscope: the card says what they are. Written to ``path``
    (atomically) when given; the ONNX bytes are returned either way.

    Raises
    ------
    deepscope.errors.ConfigError
        The ``onnx`` package is not installed (``pip install "deepscope[onnx]"``).
    """
    import json

    try:
        import onnx
    except ImportError:
        raise ConfigError('ONNX export needs the onnx package: pip install "deepscope[onnx]"') from None
    net = TorchBackend(model.net, device="cpu", channels_last=False).net
    proto = onnx.load_from_string(network_onnx(net, model.arch.in_channels, opset=opset))
    for key, value in (("deepscope_card", json.dumps(model.model_card.to_dict(), default=str)), ("deepscope_opset", str(opset))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()
    if path is not None:
        from deepscope.io import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    return data


class OnnxBackend:
    """An exported network (:func:`export_onnx`) on ONNX Runtime.

    Parameters
    ----------
    onnx_model : bytes or path
    providers : sequence of str, optional
        ONNX Runtime execution providers (default: CUDA when available, then CPU).
    threads : int, optional
        Intra-op threads (default: ONNX Runtime's).
    """

    name = "onnx"

    def __init__(self, onnx_model: bytes | str | os.PathLike[str], *, providers: Any = None,
                 threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError('the ONNX backend needs onnxruntime: pip install "deepscope[onnx]"') from None
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                         if p in ort.get_available_providers()]
        src = onnx_model if isinstance(onnx_model, bytes) else os.fspath(onnx_model)
        self.session = ort.InferenceSession(src, sess_options=opts, providers=list(providers))
        self.input = self.session.get_inputs()[0].name

    def forward(self, x: np.ndarray) -> np.ndarray:
        with stage("network"):
            out = self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]
        return np.asarray(out, dtype=np.float32)


def inference_backend(model: Any, *, precision: str = "float32") -> Any:
    """The backend a model's predictions run on: its ``backend`` attribute (``"torch"``, the default, or
    ``"onnx"``: the network exported once per weights and cached on the model)."""
    kind = getattr(model, "backend", "torch")
    if kind == "torch":
        return torch_backend(model, precision=precision)
    if kind != "onnx":
        raise ConfigError(f"backend {kind!r} is not one of {BACKENDS}")
    import torch

    return model.runtime.backend("onnx", model.weights_version(),
                                 lambda: OnnxBackend(export_onnx(model), threads=torch.get_num_threads()))
