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
* :class:`OnnxInt8Backend` (``"onnx-int8"``): the same network statically quantised to int8 by ONNX
  Runtime (QDQ format, per-channel int8 weights, uint8 activations, min-max ranges), CPU. Its activation
  ranges are calibrated on the network's real inputs: :func:`export_onnx_int8` records them while the
  model runs on images given (the shipped models' ``<name>.int8.onnx`` were calibrated on their
  development images, ``recipes/finalize.py --int8``; the card's ``int8`` entry names the split); a model
  without such a file is calibrated on the first batch it is given (with a warning).
* ``"auto"`` (every model's default, ``--backend auto``): :func:`auto_backend` picks ``onnx-int8`` on a CPU for
  the models whose card marks their shipped int8 network as the CPU default (its accuracy held within 0.005
  F1 / 0.05 count MAE of float on validation images when it was built), and ``torch`` everywhere else.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepscope.errors import ConfigError
from deepscope.predict.stages import stage

__all__ = ["InferenceBackend", "TorchBackend", "OnnxBackend", "OnnxInt8Backend", "PRECISIONS", "BACKENDS", "ONNX_OPSET",
           "torch_backend", "inference_backend", "auto_backend", "backend_of", "export_onnx", "export_onnx_int8", "quantize_onnx", "network_onnx",
           "network_inputs", "weights_digest"]

#: Precisions of :class:`TorchBackend` (bf16/fp16 autocast apply on CUDA only).
PRECISIONS = ("float32", "bf16", "fp16")
#: Inference backends a model can run on (``model.backend``); ``auto`` is :func:`auto_backend`'s choice.
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
#: Formats of :func:`quantize_onnx`: QDQ (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into
#: int8 kernels) or QOperator (QLinearConv ...). QDQ measured faster here (benchmarks/bench_int8.py).
INT8_FORMATS = ("qdq", "qoperator")
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


def torch_backend(model: Any, *, precision: str = "float32", version: Any = None) -> TorchBackend:
    """The (cached) inference backend of a :class:`~deepscope.models.DeepscopeModel`, rebuilt after its
    weights, device or precision change (``version``: the model's ``weights_version()`` when the caller has it)."""
    backend: TorchBackend = model.runtime.backend(
        "torch", (model.weights_version() if version is None else version, precision),
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
        torch.onnx.export(net, (torch.zeros(1, in_channels, 64, 64),), buf,
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
        # no busy-waiting between runs: batch workers call the network in turn with post-processing in between,
        # and spinning threads took those cores (deepscope segment 14.6 -> 11.5 s on 60 BBBC005 files, 2 cores)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def weights_digest(model: Any) -> str:
    """SHA-256 of a model's network weights as they are in memory (names, shapes and float32 values in
    ``state_dict`` order): what an int8 file records, so it is never used with other weights."""
    import hashlib

    h = hashlib.sha256()
    for key, t in model.net.state_dict().items():
        a = t.detach().cpu().float().contiguous().numpy()
        h.update(f"{key}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class network_inputs:  # noqa: N801 (a context manager used like a function)
    """Record every batch a model's torch backend is given while the ``with`` block runs (the
    pre-processed, padded, tiled, flipped network inputs ``(N, C, H, W)`` float32), as a list in
    ``.batches``. The model runs on its torch backend inside the block and gets its own back after.

    Examples
    --------
    >>> from deepscope.models import load_model
    >>> model = load_model("count-bbbc005-fast", device="cpu")
    >>> with network_inputs(model) as rec:
    ...     _ = model.predict_image(np.zeros((64, 96), np.uint8))
    >>> rec.batches[0].shape
    (1, 1, 64, 96)
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.batches: list[np.ndarray] = []

    def __enter__(self) -> network_inputs:
        self._kind = getattr(self.model, "backend", "torch")
        self.model.backend = "torch"
        self._be = torch_backend(self.model)
        forward = type(self._be).forward

        def record(x: np.ndarray) -> np.ndarray:
            self.batches.append(np.array(x, dtype=np.float32))
            return forward(self._be, x)

        self._be.forward = record  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: Any) -> None:
        del self._be.forward
        self.model.backend = self._kind


def _metadata(data: bytes, entries: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    have = {p.key: p for p in proto.metadata_props}
    for key, value in entries.items():
        entry = have.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def quantize_onnx(onnx_model: bytes, calibration: Any, *, quant_format: str = "qdq", float_ends: bool = True,
                  exclude: Any = ()) -> bytes:
    """Quantise an exported network (:func:`export_onnx`) to int8 with ONNX Runtime's static quantisation.

    Weights int8 per output channel, activations uint8 with ranges from the min and max of each tensor
    over ``calibration`` (no reduced range: ONNX Runtime's AVX2 kernels were faster without, and the
    accuracy the same, benchmarks/bench_int8.py). The ONNX metadata is kept.

    Parameters
    ----------
    onnx_model : bytes
        A float32 network with input ``input``.
    calibration : iterable of ndarray, (N, C, H, W) float32
        Network inputs (batches); each image of a batch is given to the calibrator on its own.
    quant_format : {"qdq", "qoperator"}
    float_ends : bool, default True
        Keep the first convolution and the node(s) that make the network's output (the head convolution)
        in float32: a density map summed into a count, or flows and probabilities thresholded into
        objects, lose most to uint8 steps there (quantising them too biased ``count-bbbc005-fast``'s counts
        by -0.26 cells on 30 test fields, against -0.01 with both kept), and convolutions of one or
        three input or a few output channels cost little.
    exclude : sequence of str
        Further node names to keep in float32.

    Raises
    ------
    deepscope.errors.ConfigError
        An unknown ``quant_format``, no calibration input, or onnx/onnxruntime missing.
    """
    import json
    import tempfile

    if quant_format not in INT8_FORMATS:
        raise ConfigError(f"quant_format={quant_format!r} is not one of {INT8_FORMATS}")
    try:
        import onnx
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise ConfigError('int8 quantisation needs onnx and onnxruntime: pip install "deepscope[onnx]"') from None
    samples = [np.ascontiguousarray(b[i:i + 1], dtype=np.float32) for b in calibration for i in range(len(b))]
    if not samples:
        raise ConfigError("int8 calibration needs at least one network input; none was given")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {"input": x}

    proto = onnx.load_from_string(onnx_model)
    meta = {p.key: p.value for p in proto.metadata_props}
    outputs = {o.name for o in proto.graph.output}
    keep = list(exclude)
    if float_ends:
        convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
        keep += convs[:1] + [n.name for n in proto.graph.node if outputs & set(n.output)]
    fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[quant_format]
    with tempfile.TemporaryDirectory(prefix="deepscope-int8-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(onnx_model)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), _Reader(), quant_format=fmt, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True, reduce_range=False, nodes_to_exclude=keep)
        data = out.read_bytes()
    info = {"format": quant_format, "weights": "int8 per channel", "activations": "uint8 min-max",
            "calibration_inputs": len(samples), "float_nodes": keep}
    return _metadata(data, {**meta, "deepscope_int8": json.dumps(info)})


def export_onnx_int8(model: Any, images: Any, path: str | os.PathLike[str] | None = None, *,
                     calibration: str = "", quant_format: str = "qdq", **options: Any) -> bytes:
    """Export a model's network to ONNX quantised to int8, calibrated on ``images``.

    The model runs on each image as ``model.predict_image(image, **options)`` would (its own
    pre-processing, tiling, flips); the network inputs this makes are the calibration data of
    :func:`quantize_onnx`. Give development images (never the ones it will be judged on). The file
    records the calibration (``calibration``: a note such as the split; the number of inputs) and the
    digest of the weights (:func:`weights_digest`) in its metadata (``deepscope_int8``). Saved beside a
    model's card as ``<stem>.int8.onnx`` it is what ``--backend onnx-int8`` runs for that model.

    Raises
    ------
    deepscope.errors.ConfigError
        onnx/onnxruntime missing, or no image given.
    """
    import json

    images = list(images)
    if not images:
        raise ConfigError("export_onnx_int8 needs calibration images; none was given")
    with network_inputs(model) as rec:
        for im in images:
            model.predict_image(im, **options)
    data = quantize_onnx(export_onnx(model), rec.batches, quant_format=quant_format)
    import onnx

    meta = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    info = {**json.loads(meta["deepscope_int8"]), "calibration": calibration, "calibration_images": len(images),
            "weights_digest": weights_digest(model)}
    data = _metadata(data, {"deepscope_int8": json.dumps(info)})
    if path is not None:
        from deepscope.io import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
    return data


class OnnxInt8Backend(OnnxBackend):
    """An int8 network (:func:`export_onnx_int8`) on ONNX Runtime's CPU provider, or, given a float
    network (``calibrate_on_first``), one quantised on the first batch it runs (:func:`quantize_onnx`).

    Parameters
    ----------
    onnx_model : bytes or path
        The int8 network, or the float32 one with ``calibrate_on_first``.
    calibrate_on_first : bool, default False
    threads : int, optional
    """

    name = "onnx-int8"

    def __init__(self, onnx_model: bytes | str | os.PathLike[str], *, calibrate_on_first: bool = False,
                 threads: int | None = None) -> None:
        import threading

        self._threads = threads
        self._float: bytes | None = None
        self._lock = threading.Lock()  # batch workers share one backend: calibrate once
        if calibrate_on_first:
            self._float = onnx_model if isinstance(onnx_model, bytes) else Path(onnx_model).read_bytes()
            return
        super().__init__(onnx_model, providers=["CPUExecutionProvider"], threads=threads)

    @property
    def info(self) -> dict[str, Any]:
        """The int8 metadata (format, calibration, weights digest); empty before a first-batch calibration."""
        import json

        if self._float is not None:
            return {}
        return dict(json.loads(self.session.get_modelmeta().custom_metadata_map.get("deepscope_int8", "{}")))

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self._float is not None:
            with self._lock:
                if self._float is not None:
                    with stage("int8 calibration"):
                        data = quantize_onnx(self._float, [np.asarray(x, dtype=np.float32)])
                    super().__init__(data, providers=["CPUExecutionProvider"], threads=self._threads)
                    self._float = None
        return super().forward(x)


def _int8_entry(model: Any) -> tuple[Path | None, str | None]:
    """The int8 file beside a model's card and the sha256 its card pins for it (None: not pinned)."""
    if not getattr(model, "source", None):
        return None, None
    card = Path(model.source)
    entry = model.card.get("int8") if hasattr(model.card, "get") else None
    if isinstance(entry, Mapping) and entry.get("file") and (card.parent / entry["file"]).is_file():
        return card.parent / entry["file"], entry.get("sha256")
    path = card.parent / f"{card.stem}.int8.onnx"  # e.g. ``deepscope models export --format onnx-int8``
    return (path, None) if path.is_file() else (None, None)


def int8_file(model: Any) -> Path | None:
    """The int8 network beside a model's card: the card's ``int8.file`` (the shipped models'), else
    ``<card stem>.int8.onnx``; None when there is none."""
    return _int8_entry(model)[0]


def _int8_backend(model: Any, threads: int) -> OnnxInt8Backend:
    import warnings

    path, want = _int8_entry(model)
    if path is not None:
        import hashlib

        from deepscope.errors import ModelError

        data = path.read_bytes()
        if want and hashlib.sha256(data).hexdigest() != want:
            raise ModelError(f"int8 network '{path}' does not match the sha256 in its card ({want[:12]}...): the "
                             "file is damaged or was replaced; reinstall deepscope or rebuild it "
                             "(recipes/finalize.py --int8)")
        be = OnnxInt8Backend(data, threads=threads)
        if be.info.get("weights_digest") == weights_digest(model):
            return be
        why = f"'{path.name}' was made for other weights (the model was trained or fine-tuned since)"
    else:
        why = "it has no int8 network beside its card"
    warnings.warn(f"backend onnx-int8: model {getattr(model, 'name', '')!r}: {why}; quantising it on the first batch "
                  "it runs (calibrated on those images only). For a fixed calibration on images of your own, save "
                  "deepscope.predict.backends.export_onnx_int8(model, images) as <card stem>.int8.onnx",
                  stacklevel=3)
    return OnnxInt8Backend(export_onnx(model), calibrate_on_first=True, threads=threads)


def _auto_choice(model: Any) -> str:
    device = getattr(getattr(model, "device", None), "type", "cpu")
    if device != "cpu":
        return "torch"
    card: Any = getattr(model, "card", None)
    entry = card.get("int8") if hasattr(card, "get") else None
    if not isinstance(entry, Mapping) or entry.get("cpu_default") is not True:
        return "torch"
    path, _ = _int8_entry(model)
    if path is None or entry.get("weights_digest") != weights_digest(model):
        return "torch"  # not shipped beside this card, or made for other weights (trained or fine-tuned since)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx-int8"


def auto_backend(model: Any) -> str:
    """What ``backend="auto"`` runs a model on: ``"onnx-int8"`` where all of these hold, else ``"torch"``.

    * the model runs on the CPU (on a GPU PyTorch is faster and exact);
    * its card's ``int8`` entry says ``cpu_default: true``: ``recipes/finalize.py --int8`` built the int8
      network and found it within 0.005 F1@0.5 (segmenters, every kind of image) or 0.05 count MAE
      (counters) of float on the model's *validation* images (the figures are in the entry's ``agreement``;
      the test figures in BENCHMARKS.md, "int8 CPU inference"), and it is 2-4x faster on a CPU;
    * that network is beside the card and was made for the weights the model holds now (a fine-tuned or
      retrained model runs on PyTorch);
    * ONNX Runtime is installed.

    Decided once per weights and device (cached on the model).

    Examples
    --------
    >>> from deepscope.models import load_model
    >>> auto_backend(load_model("nuclei", device="cpu")), auto_backend(load_model("deblur-bbbc005", device="cpu"))
    ('onnx-int8', 'torch')
    """
    return _auto(model, model.weights_version())


def _auto(model: Any, version: Any) -> str:
    choice: str = model.runtime.backend("auto", version, lambda: _auto_choice(model))  # version holds the device
    return choice


def backend_of(model: Any) -> str:
    """The backend a model's predictions run on now: its ``backend``, with ``"auto"`` resolved
    (:func:`auto_backend`). What a run's record names."""
    kind = getattr(model, "backend", "torch")
    return auto_backend(model) if kind == "auto" else str(kind)


def inference_backend(model: Any, *, precision: str = "float32") -> Any:
    """The backend a model's predictions run on: its ``backend`` attribute (``"auto"``, the default:
    :func:`auto_backend`'s choice; ``"torch"``; ``"onnx"``: the network exported once per weights and cached
    on the model; or ``"onnx-int8"``: its int8 network, the one shipped beside its card or one quantised on
    the first batch, cached the same way).

    Raises
    ------
    deepscope.errors.ConfigError
        A backend that is not one of :data:`BACKENDS` (the message lists them).
    """
    kind = getattr(model, "backend", "torch")
    if kind == "torch":
        return torch_backend(model, precision=precision)
    if kind not in BACKENDS:
        raise ConfigError(f"backend {kind!r} is not one of {', '.join(BACKENDS)}")
    version = model.weights_version()  # once per call: it reads every tensor's version
    if kind == "auto" and _auto(model, version) == "torch":
        return torch_backend(model, precision=precision, version=version)
    import torch

    if kind in ("auto", "onnx-int8"):
        return model.runtime.backend("onnx-int8", version, lambda: _int8_backend(model, torch.get_num_threads()))
    return model.runtime.backend("onnx", version,
                                 lambda: OnnxBackend(export_onnx(model), threads=torch.get_num_threads()))
