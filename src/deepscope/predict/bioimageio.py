"""bioimage.io model packages of deepscope models (model RDF 0.5).

:func:`export_bioimageio` writes a zip that the bioimage.io spec validator accepts: ``rdf.yaml``, the
network as TorchScript (the original weights) and ONNX (converted from them), a test input and the
network's output on it, a cover image, a README, and the whole deepscope model card under
``config.deepscope``. The input's normalisation is declared as bioimage.io preprocessing where the
spec has it (``scale_range`` by percentiles, or ``scale_linear`` for fixed scaling); what the spec
cannot express (the activation of the outputs, the instance post-processing of segmenters, the size
estimate of the generalist, a counter's density sum, interval and domain check) is described in the
package's README and done by deepscope (``deepscope ... --model`` on the card).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import ConfigError

__all__ = ["export_bioimageio", "validate_bioimageio"]


def _Activated(net: Any, plugin: Any) -> Any:
    """The network with the output activation deepscope applies (its task plugin's ``export_activation``: softplus
    of density maps, sigmoid of a foreground logit) inside it, so the package's outputs are maps a consumer can read
    directly."""
    import torch
    from torch import nn

    class Activated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = plugin.export_activation(self.net(x))
            return out

    return Activated()


def _channel_axis(names: list[str]) -> dict[str, Any]:
    return {"type": "channel", "channel_names": names}


def export_bioimageio(model: Any, path: str | os.PathLike[str], *, size: tuple[int, int] = (256, 320)) -> Path:
    """Write a bioimage.io model package (zip) of a deepscope model.

    Raises
    ------
    deepscope.errors.ConfigError
        ``bioimageio.spec`` or ``onnx`` is not installed (``pip install "deepscope[bioimageio]"``).
    """
    import torch
    import yaml
    from PIL import Image as PILImage

    try:
        from bioimageio.spec import load_description, save_bioimageio_package
    except ImportError:
        raise ConfigError('a bioimage.io package needs bioimageio.spec: pip install "deepscope[bioimageio]"') from None
    from deepscope.predict.backends import ONNX_OPSET, TorchBackend, network_onnx

    card = json.loads(json.dumps(model.model_card.to_dict(), default=str))
    net = _Activated(TorchBackend(model.net, device="cpu", channels_last=False).net, model.plugin).eval()
    stride = max(1, int(model.arch.stride))
    h, w = (max(stride, size[0] // stride * stride), max(stride, size[1] // stride * stride))
    c_in = int(model.arch.in_channels)
    x = _test_input(model, h, w)
    with torch.inference_mode():
        y = net(torch.from_numpy(x)).numpy().astype(np.float32)
    out_names = list(model.plugin.output_names) or [f"output{k}" for k in range(y.shape[1])]
    if len(out_names) != y.shape[1]:
        out_names = [f"output{k}" for k in range(y.shape[1])]
    scale_out = h / y.shape[2]
    spec = model.spec
    if spec.normalize == "percentile":
        pre = [{"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": float(spec.low),
                                                "max_percentile": float(spec.high)}}]
    else:
        pre = [{"id": "scale_linear", "kwargs": {"gain": 1.0 / float(spec.scale),
                                                 "offset": -float(spec.offset) / float(spec.scale)}}]
    space_in = [{"type": "space", "id": a, "size": {"min": stride, "step": stride}} for a in ("y", "x")]
    space_out = [{"type": "space", "id": a, "size": {"tensor_id": "input", "axis_id": a}, "scale": scale_out}
                 for a in ("y", "x")]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        torch.jit.trace(net, torch.from_numpy(x)).save(str(d / "weights.pt"))
        (d / "weights.onnx").write_bytes(network_onnx(net, c_in, opset=ONNX_OPSET))
        np.save(d / "test_input.npy", x)
        np.save(d / "test_output.npy", y)
        cover = x[0, 0] if c_in == 1 else np.moveaxis(x[0, :3], 0, -1)
        PILImage.fromarray((np.clip(cover, 0, 1) * 255).astype(np.uint8)).save(d / "cover.png")
        (d / "README.md").write_text(
            f"# {model.name} (deepscope)\n\n{card.get('description', '')}\n\n"
            f"Input: {c_in} channel(s), normalised as the preprocessing says (deepscope: {spec.normalize}).\n"
            f"Outputs: {', '.join(out_names)}.\n\nPost-processing that bioimage.io cannot express: "
            f"{model.plugin.postprocessing_note or 'see the deepscope card under config.'}\n\n"
            "Run the whole model, with its post-processing, interval and domain check, in deepscope: "
            f"`deepscope {model.task} IMAGES --model {model.name}`.\n\n# Validation\n\n"
            + "\n".join(f"- {k}: {json.dumps(v, default=str)[:300]}" for k, v in (card.get("metrics") or {}).items())
            + "\n", encoding="utf-8")
        rdf = {
            "type": "model", "format_version": "0.5.4", "name": f"deepscope {model.name}",
            "description": (card.get("description") or f"deepscope {model.task} model")[:1000],
            "authors": [{"name": "deepscope developers"}],
            "cite": [{"text": "deepscope: deep learning for microscopy images",
                      "url": "https://github.com/deepscope/deepscope"}],
            "license": "BSD-3-Clause", "documentation": "README.md", "covers": ["cover.png"],
            "tags": ["deepscope", model.task, "2d"],
            "inputs": [{"id": "input", "axes": [{"type": "batch"}, _channel_axis([f"c{k}" for k in range(c_in)]),
                                                *space_in],
                        "test_tensor": {"source": "test_input.npy"}, "data": {"type": "float32"},
                        "preprocessing": pre}],
            "outputs": [{"id": "output", "axes": [{"type": "batch"}, _channel_axis(out_names), *space_out],
                         "test_tensor": {"source": "test_output.npy"}, "data": {"type": "float32"}}],
            "weights": {"torchscript": {"source": "weights.pt", "pytorch_version": torch.__version__.split("+")[0]},
                        "onnx": {"source": "weights.onnx", "opset_version": ONNX_OPSET, "parent": "torchscript"}},
            "config": {"deepscope": {"card": card, "opset": ONNX_OPSET},
                       "bioimageio": {"reproducibility_tolerance": [
                           {"absolute_tolerance": float(max(1e-7, 5e-3 * float(y.max()))),
                            "relative_tolerance": 1e-3, "mismatched_elements_per_million": 0}]}},
        }
        (d / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False), encoding="utf-8")
        descr = load_description(d / "rdf.yaml")
        if descr.validation_summary.status not in ("valid-format", "passed"):
            raise ConfigError(f"the bioimage.io description of {model.name!r} does not validate: "
                              f"{descr.validation_summary.format()[:2000]}")
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_bioimageio_package(descr, output_path=out)
    return out


def _test_input(model: Any, h: int, w: int) -> np.ndarray:
    """A synthetic BBBC005-like field (deepscope's generator), pre-processed as the model does: ``(1, C, h, w)``."""
    from deepscope.data.synth import generate_field

    field = generate_field(20, size=(h, w), seed=0, blurs=(1,), stains=(1,)).images[(1, 1)]
    x = model.prepare(field)
    x = x if x.ndim == 3 else x[..., None]
    if x.shape[-1] != model.arch.in_channels:
        x = np.repeat(x[..., :1], model.arch.in_channels, axis=-1)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0)[None, :, :h, :w], dtype=np.float32)


def validate_bioimageio(path: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """``(status, errors)`` of the bioimage.io spec validator on a package (``"valid-format"``: valid)."""
    from bioimageio.spec import load_description

    descr = load_description(Path(path))
    errors = [f"{'.'.join(map(str, e.loc))}: {e.msg}" for det in descr.validation_summary.details for e in det.errors]
    return str(descr.validation_summary.status), errors
