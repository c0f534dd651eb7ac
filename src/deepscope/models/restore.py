"""Image-to-image models: deblurring, in-silico labelling (stain prediction) and 2x super-resolution."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.models.base import DeepscopeModel
from deepscope.models.config import ArchConfig
from deepscope.models.spec import InputSpec

__all__ = ["RestoreModel", "pair_normalize"]


def pair_normalize(x: np.ndarray, y: np.ndarray | None, spec: InputSpec) -> tuple[np.ndarray, np.ndarray | None,
                                                                                  float, float]:
    """Normalise an input (and its target) by the *input's* percentiles, so outputs map back to its scale."""
    x = np.asarray(x, dtype=np.float32)
    if spec.normalize == "fixed":
        lo, scale = spec.offset, spec.scale
    else:
        lo, hi = np.percentile(x, [spec.low, spec.high])
        scale = float(hi - lo) + 1e-6
    xn = (x - lo) / scale
    yn = None if y is None else (np.asarray(y, dtype=np.float32) - lo) / scale
    return xn.astype(np.float32), None if yn is None else yn.astype(np.float32), float(lo), float(scale)


class RestoreModel(DeepscopeModel):
    """Predict an image from an image: in-focus from blurred, a second stain from the first, 2x resolution.

    Inputs and targets are normalised by the input's percentiles (``pair_normalize``), so the
    prediction is mapped back to the input's intensity scale and written in its dtype.
    """

    task = "restore"

    def __init__(self, arch: ArchConfig | None = None, spec: InputSpec | None = None, *, upscale: int = 1,
                 loss: str = "l1", **kwargs: Any) -> None:
        arch = arch or ArchConfig("unet", in_channels=1, out_channels=1, base=16, depth=4)
        super().__init__(arch, spec, **kwargs)
        out = self.card["output"]
        out.setdefault("upscale", upscale)
        out.setdefault("loss", loss)
        out.setdefault("tile", 1024)
        out.setdefault("overlap", 64)

    @property
    def upscale(self) -> int:
        return int(self.card["output"]["upscale"])

    def make_task(self, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int, **opts: Any) -> Any:
        from deepscope.train.tasks import RestoreTask

        if dataset.label_kind != "image":
            raise InputError("restoration needs a dataset of (input, target) image pairs (targets=...)")

        def pairs(ds: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
            xs, ys = [], []
            for i in range(len(ds)):
                x = self._grey(ds.get_image(i))
                y = self._grey(ds.get_label(i))
                if (x.shape[0] * self.upscale, x.shape[1] * self.upscale) != y.shape[:2]:
                    paths = ds.paths or [str(i)]
                    tp = ds.label_paths or ["target"]
                    raise InputError(f"input '{paths[i]}' has shape {x.shape[:2]} but its target '{tp[i]}' has "
                                     f"{y.shape[:2]}" + (f" (expected {self.upscale}x)" if self.upscale > 1 else ""))
                xn, yn, _, _ = pair_normalize(x, y, self.spec)
                xs.append(xn)
                ys.append(yn)  # type: ignore[arg-type]
            return xs, ys

        xs, ys = pairs(dataset)
        vx, vy = pairs(valid_dataset) if valid_dataset is not None and len(valid_dataset) else ([], [])
        self.card["input"] = self.spec.to_dict()
        self.card.setdefault("input_stats", _stats(xs))
        return RestoreTask(xs, ys, valid_inputs=vx, valid_targets=vy, loss=self.card["output"]["loss"],
                           upscale=self.upscale, stride=self.arch.stride, batch_size=batch_size, device=device,
                           **opts)

    def _grey(self, x: np.ndarray) -> np.ndarray:
        from deepscope.data.transforms import to_grey

        return to_grey(np.asarray(x), rule=self.spec.grey)

    def predict_image(self, image: np.ndarray, *, dtype: str = "input", tile: int | None = None,
                      overlap: int | None = None, channel: int | None = None, check: bool = True) -> np.ndarray:
        """Restored image, in the input's dtype (``dtype="input"``) or ``"float32"``.

        Raises
        ------
        deepscope.errors.InputError
            For an unknown ``dtype`` or an image that is not 2-D.
        """
        import torch
        import torch.nn.functional as F

        from deepscope.predict.engine import run_network, tile_grid

        if dtype not in ("input", "float32"):
            raise InputError(f"dtype={dtype!r} is not one of ('input', 'float32')")
        raw = np.asarray(image)
        if channel is not None and raw.ndim == 3:
            raw = raw[..., channel]
        x = self._grey(raw)
        xn, _, lo, scale = pair_normalize(x, None, self.spec)
        if check:
            self._check_modality(xn)
        if self.upscale > 1:
            xn = F.interpolate(torch.from_numpy(xn)[None, None], scale_factor=self.upscale, mode="bicubic",
                               align_corners=False)[0, 0].numpy()
        tile = int(tile or self.card["output"].get("tile", 1024))
        overlap = int(overlap if overlap is not None else self.card["output"].get("overlap", 64))
        net = self._eval_net()
        h, w = xn.shape
        if h <= tile and w <= tile:
            out = run_network(net, [xn[..., None]], stride=self.arch.stride, device=self.device)[0][0]
        else:
            out = np.zeros((h, w), np.float32)
            for t in tile_grid((h, w), tile, overlap):
                o = run_network(net, [xn[t.read][..., None]], stride=self.arch.stride, device=self.device)[0][0]
                rs = slice(t.core[0].start - t.read[0].start, t.core[0].stop - t.read[0].start)
                cs = slice(t.core[1].start - t.read[1].start, t.core[1].stop - t.read[1].start)
                out[t.core] = o[rs, cs]
        res = out * scale + lo
        if dtype == "float32" or not np.issubdtype(x.dtype, np.integer):
            return res.astype(np.float32)
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(res), info.min, info.max).astype(x.dtype)

    def _check_modality(self, xn: np.ndarray) -> None:
        stats = self.card.get("input_stats")
        if not stats:
            return
        s = _stats([xn])
        off = []
        for key in ("mean", "std", "frac_high"):
            ref = stats.get(key)
            if ref is None:
                continue
            lo, hi = stats.get(f"{key}_min", ref), stats.get(f"{key}_max", ref)
            span = max(hi - lo, abs(ref) * 0.5, 1e-3)
            if not (lo - span <= s[key] <= hi + span):
                off.append(f"{key}={s[key]:.3g} (training {lo:.3g}..{hi:.3g})")
        if off:
            warnings.warn(f"this image looks unlike the training data of model {self.name!r} ("
                          + ", ".join(off) + "); results may be unreliable (another modality or stain?)",
                          stacklevel=3)


def _stats(xs: list[np.ndarray]) -> dict[str, float]:
    per = []
    for x in xs:
        x = np.asarray(x, np.float32)
        per.append((float(x.mean()), float(x.std()), float((x > 0.5).mean())))
    a = np.array(per)
    keys = ("mean", "std", "frac_high")
    out: dict[str, float] = {}
    for j, k in enumerate(keys):
        out[k] = float(a[:, j].mean())
        out[f"{k}_min"] = float(a[:, j].min())
        out[f"{k}_max"] = float(a[:, j].max())
    return out
