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
from deepscope.tasks.options import shrink_overlap
from deepscope.tasks.restore.files import RestoreOutputs
from deepscope.tasks.restore.options import DTYPES, RestoreOptions, RestoreResult
from deepscope.tasks.restore.training import RestoreTask

__all__ = ["ImageRestoration", "DTYPES"]


@register_task
class ImageRestoration(TorchTaskPlugin):
    """``restore/image``: one output channel, the restored image in the input's normalised units."""

    task = "restore"
    representation = "image"
    model_class = RestoreModel
    training_task_class = RestoreTask
    options_class = RestoreOptions
    output_names = ("restored",)
    postprocessing_note = ("the output is the restored image in the normalised intensity range of the input; "
                           "deepscope maps it back to the input's range and dtype.")
    file_outputs_class = RestoreOutputs

    def default_architecture(self, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=1, out_channels=1, base=16, depth=4)

    def default_output(self, arch: ArchConfig, *, upscale: int = 1, loss: str = "l1", **options: Any
                       ) -> dict[str, Any]:
        return {**self.options_class.parse(upscale=upscale, loss=loss).card_output(), **options}

    def options(self, model: RestoreModel, *, tile: int | None = None, overlap: int | None = None,
                **given: Any) -> RestoreOptions:
        """The options of one call; ``tile`` without ``overlap`` shrinks the card's overlap to a quarter of a
        tile too small to hold it (:func:`deepscope.tasks.options.shrink_overlap`)."""
        opts: RestoreOptions = super().options(model, **given)
        tile = tile or None  # 0: the card's
        used = shrink_overlap(int(opts.overlap), tile, overlap)
        return dataclasses.replace(opts, tile=int(tile or opts.tile),
                                   overlap=int(opts.overlap if used is None else used))

    def normalize(self, model: RestoreModel, raw: np.ndarray, *, path: str = "", channel: int | None = None,
                  checked: bool = False) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Channel selection and the input's normalisation: ``(raw pixels, normalised float32, offset, scale)``."""
        x = select_channels(raw, model.spec, channel=channel, path=path, model=model.name, checked=checked)
        lo, scale = model.spec.norm_params(x)
        return x, ((np.asarray(x, dtype=np.float32) - lo) / scale).astype(np.float32), lo, scale

    def run(self, model: RestoreModel, image: np.ndarray, options: RestoreOptions) -> RestoreResult:
        """The restored image, in the input's dtype (``options.dtype="input"``) or float32.

        With ``options.check``, an input unlike the training inputs gets a warning in the result's
        ``warnings`` (:meth:`predict_image` issues them with ``warnings.warn``).

        Raises
        ------
        deepscope.errors.InputError
            An image that is not 2-D or channels that do not fit.
        """
        import torch
        import torch.nn.functional as F

        x, xn, lo, scale = self.normalize(model, image, channel=options.channel, checked=options.checked)
        said: tuple[str, ...] = ()
        if options.check:
            msg = model.spec.domain_warning(xn, model=model.name)
            said = (msg,) if msg else ()
        if options.upscale > 1:
            xn = F.interpolate(torch.from_numpy(xn)[None, None], scale_factor=options.upscale, mode="bicubic",
                               align_corners=False)[0, 0].numpy()
        predictor = self.predictor(model)
        out = stitch_tiles(xn, int(options.tile), int(options.overlap),
                           lambda region: predictor.maps([region[..., None]])[0][0])
        res = out * scale + lo
        if options.dtype == "float32" or not np.issubdtype(x.dtype, np.integer):
            return RestoreResult(res.astype(np.float32), said)
        info = np.iinfo(x.dtype)
        return RestoreResult(np.clip(np.rint(res), info.min, info.max).astype(x.dtype), said)

    def predict_image(self, model: RestoreModel, image: np.ndarray, *,
                      on_warning: Callable[[str], None] | None = None, **given: Any) -> np.ndarray:
        """Restored image (:meth:`run`); its warnings go to ``warnings.warn``, or to ``on_warning(message)`` when
        given (thread-safe: batch workers collect them per image).

        Raises
        ------
        deepscope.errors.InputError
            For an unknown ``dtype``, an image that is not 2-D or channels that do not fit.
        """
        r = self.run(model, image, self.options(model, **given))
        for msg in r.warnings:
            if on_warning is not None:
                on_warning(msg)
            else:
                warnings.warn(msg, stacklevel=user_stacklevel())
        return r.image

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
        return RestoreTask(xs, ys, valid_inputs=vx, valid_targets=vy, loss=self.options(model).loss,
                           upscale=up, stride=model.arch.stride, batch_size=batch_size, device=device, **options)
