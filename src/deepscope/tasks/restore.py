"""Restoration plugin ``restore/image``: a U-Net maps an image to an image (deblurring, in-silico
labelling, 2x super-resolution), normalised by the input's own percentiles so the output comes back
on the input's intensity scale and in its dtype."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from deepscope.errors import InputError, user_stacklevel
from deepscope.models import ArchConfig, RestoreModel, input_stats, register_task, select_channels
from deepscope.predict.predictor import stitch_tiles
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.train.tasks import RestoreTask

__all__ = ["ImageRestoration", "DTYPES"]

#: Output dtypes of :meth:`ImageRestoration.predict_image`.
DTYPES = ("input", "float32")


@register_task
class ImageRestoration(TorchTaskPlugin):
    """``restore/image``: one output channel, the restored image in the input's normalised units."""

    task = "restore"
    representation = "image"
    model_class = RestoreModel
    training_task_class = RestoreTask

    def default_architecture(self, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=1, out_channels=1, base=16, depth=4)

    def default_output(self, arch: ArchConfig, *, upscale: int = 1, loss: str = "l1", **options: Any
                       ) -> dict[str, Any]:
        return {"upscale": upscale, "loss": loss, "tile": 1024, "overlap": 64, **options}

    def normalize(self, model: RestoreModel, raw: np.ndarray, *, path: str = "", channel: int | None = None,
                  checked: bool = False) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Channel selection and the input's normalisation: ``(raw pixels, normalised float32, offset, scale)``."""
        x = select_channels(raw, model.spec, channel=channel, path=path, model=model.name, checked=checked)
        lo, scale = model.spec.norm_params(x)
        return x, ((np.asarray(x, dtype=np.float32) - lo) / scale).astype(np.float32), lo, scale

    def predict_image(self, model: RestoreModel, image: np.ndarray, *, dtype: str = "input", tile: int | None = None,
                      overlap: int | None = None, channel: int | None = None, check: bool = True,
                      on_warning: Callable[[str], None] | None = None, checked: bool = False) -> np.ndarray:
        """Restored image, in the input's dtype (``dtype="input"``) or ``"float32"``.

        With ``check``, an input unlike the training inputs gets a warning (``warnings.warn``), or is
        passed to ``on_warning(message)`` when given (thread-safe: batch workers collect it per image).
        ``checked=True``: the pixels were checked already (:func:`deepscope.predict.inputs.model_input`).

        Raises
        ------
        deepscope.errors.InputError
            For an unknown ``dtype``, an image that is not 2-D or channels that do not fit.
        """
        import torch
        import torch.nn.functional as F

        if dtype not in DTYPES:
            raise InputError(f"dtype={dtype!r} is not one of {DTYPES}")
        x, xn, lo, scale = self.normalize(model, image, channel=channel, checked=checked)
        if check:
            msg = model.spec.domain_warning(xn, model=model.name)
            if msg and on_warning is not None:
                on_warning(msg)
            elif msg:
                warnings.warn(msg, stacklevel=user_stacklevel())
        if model.upscale > 1:
            xn = F.interpolate(torch.from_numpy(xn)[None, None], scale_factor=model.upscale, mode="bicubic",
                               align_corners=False)[0, 0].numpy()
        output = model.model_card.output
        tile = int(tile or output.get("tile", 1024))
        overlap = int(overlap if overlap is not None else output.get("overlap", 64))
        predictor = self.predictor(model)
        out = stitch_tiles(xn, tile, overlap, lambda region: predictor.maps([region[..., None]])[0][0])
        res = out * scale + lo
        if dtype == "float32" or not np.issubdtype(x.dtype, np.integer):
            return res.astype(np.float32)
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(res), info.min, info.max).astype(x.dtype)

    def after_fine_tune(self, model: RestoreModel, train_dataset: Any, valid_dataset: Any) -> None:
        """Widen the recorded input statistics (the modality warning's reference) to the user's images."""
        stats = dict(model.spec.stats or {})
        if not stats:
            return
        new = input_stats([self.normalize(model, train_dataset.get_image(i))[1] for i in range(len(train_dataset))])
        for k, v in new.items():
            if k.endswith("_min"):
                stats[k] = min(stats.get(k, v), v)
            elif k.endswith("_max"):
                stats[k] = max(stats.get(k, v), v)
        model.update_card(input=dataclasses.replace(model.spec, stats=stats))

    def training_task(self, model: RestoreModel, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int,
                      **options: Any) -> RestoreTask:
        if dataset.label_kind != "image":
            raise InputError("restoration needs a dataset of (input, target) image pairs (targets=...)")
        up = model.upscale

        def pairs(ds: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
            xs, ys = [], []
            for i in range(len(ds)):
                x, xn, lo, scale = self.normalize(model, ds.get_image(i))
                y = select_channels(ds.get_label(i), model.spec, model=model.name)
                if (x.shape[0] * up, x.shape[1] * up) != y.shape[:2]:
                    paths = ds.paths or [str(i)]
                    tp = ds.label_paths or ["target"]
                    raise InputError(f"input '{paths[i]}' has shape {x.shape[:2]} but its target '{tp[i]}' has "
                                     f"{y.shape[:2]}" + (f" (expected {up}x)" if up > 1 else ""))
                xs.append(xn)
                ys.append(((np.asarray(y, dtype=np.float32) - lo) / scale).astype(np.float32))
            return xs, ys

        xs, ys = pairs(dataset)
        vx, vy = pairs(valid_dataset) if valid_dataset is not None and len(valid_dataset) else ([], [])
        if not model.spec.stats:  # the domain check of predict_image compares inputs with these
            model.update_card(input=dataclasses.replace(model.spec, stats=input_stats(xs)))
        return RestoreTask(xs, ys, valid_inputs=vx, valid_targets=vy, loss=model.model_card.output["loss"],
                           upscale=up, stride=model.arch.stride, batch_size=batch_size, device=device, **options)
