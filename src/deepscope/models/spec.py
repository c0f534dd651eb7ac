"""Pre-processing shared by every task plugin: the input specification of a model, channel selection,
the recorded normalisation and the training-domain check.

This is the one home of these steps: plugins, the batch runner and the training tasks call them,
so a model sees the same input whichever path an image takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from deepscope.errors import ConfigError, InputError

__all__ = ["InputSpec", "NORMALIZE_MODES", "GREY_RULES", "select_channels", "prepare_image", "input_stats"]

NORMALIZE_MODES = ("percentile", "fixed")
GREY_RULES = ("error", "mean", "first", "max")
#: Keys of the training-input statistics (:func:`input_stats`) the domain check compares.
_STAT_KEYS = ("mean", "std", "frac_high")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects and how images are normalised before it sees them.

    Parameters
    ----------
    channels : int
        Number of input channels (1 = grey).
    normalize : {"percentile", "fixed"}
        ``"percentile"``: ``(x - p_low) / (p_high - p_low)`` per image; ``"fixed"``:
        ``(x - offset) / scale`` with constants recorded here (e.g. 8-bit BBBC005: scale 255).
    low, high : float
        Percentiles for ``"percentile"``.
    offset, scale : float
        Constants for ``"fixed"``.
    pixel_size_um : float, optional
        Pixel size of the training images, when known (recorded for the user; not used to rescale).
    grey : {"error", "mean", "first", "max"}
        How multi-channel input is reduced for a one-channel model (identical RGB channels are
        always accepted).
    colour : {"strict", "rgb"}
        For three-channel models: ``"strict"`` takes only 3-channel images; ``"rgb"`` also takes grey
        images (replicated into three channels) and RGBA (alpha dropped), so one model serves grey
        fluorescence, brightfield and colour (H&E) images.
    stats : dict
        Statistics of the normalised training inputs (:func:`input_stats`); when present, inputs
        that look unlike them get a warning (:meth:`domain_warning`).

    Raises
    ------
    deepscope.errors.ConfigError
        An unknown ``normalize`` or ``grey`` mode, or ``normalize="fixed"`` with ``scale=0``.
    """

    channels: int = 1
    normalize: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    offset: float = 0.0
    scale: float = 255.0
    pixel_size_um: float | None = None
    grey: str = "error"
    stats: Mapping[str, float] = field(default_factory=dict)
    colour: str = "strict"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError(f"normalize={self.normalize!r} is not one of {NORMALIZE_MODES}")
        if self.grey not in GREY_RULES:
            raise ConfigError(f"grey={self.grey!r} is not one of {GREY_RULES}")
        if self.colour not in ("strict", "rgb"):
            raise ConfigError(f"colour={self.colour!r} is not one of ('strict', 'rgb')")
        if self.normalize == "fixed" and self.scale == 0:
            raise ConfigError("normalize='fixed' needs a non-zero scale")
        object.__setattr__(self, "stats", MappingProxyType({str(k): float(v) for k, v in dict(self.stats).items()}))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (dict(self.stats) if f.name == "stats" else getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        from deepscope.models.config import from_fields

        return from_fields(cls, dict(d), what="input keys")

    def normalize_image(self, x: np.ndarray) -> np.ndarray:
        """Apply the recorded normalisation with this image's own percentiles; float32 of the same shape."""
        if self.normalize == "fixed":
            return ((np.asarray(x, dtype=np.float32) - self.offset) / self.scale).astype(np.float32, copy=False)
        from deepscope.data.transforms import normalize_percentile

        return normalize_percentile(x, self.low, self.high)

    def norm_params(self, x: np.ndarray, *, max_pixels: int | None = None) -> tuple[float, float]:
        """``(offset, scale)`` of the normalisation for ``x`` (normalised = ``(x - offset) / scale``).

        For a percentile spec the percentiles of ``x`` (of a regular subsample of about ``max_pixels``
        pixels when given: the whole-image parameters of an image processed tile by tile).
        """
        if self.normalize == "fixed":
            return float(self.offset), float(self.scale)
        a = np.asarray(x)
        if max_pixels:
            step = max(1, int(np.sqrt(a.size / max_pixels)))
            a = a[::step, ::step]
        lo, hi = np.percentile(np.asarray(a, dtype=np.float32), [self.low, self.high])
        return float(lo), float(hi - lo) + 1e-6

    def domain_warning(self, normalized: np.ndarray, *, model: str = "") -> str | None:
        """A message when a normalised input looks unlike the training inputs (``stats``), else None."""
        if not self.stats:
            return None
        s = input_stats([normalized])
        off = []
        for key in _STAT_KEYS:
            ref = self.stats.get(key)
            if ref is None:
                continue
            lo, hi = self.stats.get(f"{key}_min", ref), self.stats.get(f"{key}_max", ref)
            span = max(hi - lo, abs(ref) * 0.5, 1e-3)
            if not (lo - span <= s[key] <= hi + span):
                off.append(f"{key}={s[key]:.3g} (training {lo:.3g}..{hi:.3g})")
        if not off:
            return None
        return (f"this image looks unlike the training data of model {model!r} (" + ", ".join(off)
                + "); results may be unreliable (another modality or stain?)")


def input_stats(images: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean, standard deviation and fraction above 0.5 of normalised images: their average, minimum and
    maximum over the images (what :attr:`InputSpec.stats` records of a model's training inputs)."""
    per = []
    for x in images:
        x = np.asarray(x, np.float32)
        per.append((float(x.mean()), float(x.std()), float((x > 0.5).mean())))
    a = np.array(per)
    out: dict[str, float] = {}
    for j, k in enumerate(_STAT_KEYS):
        out[k] = float(a[:, j].mean())
        out[f"{k}_min"] = float(a[:, j].min())
        out[f"{k}_max"] = float(a[:, j].max())
    return out


def select_channels(image: np.ndarray, spec: InputSpec, *, channel: int | None = None, path: str = "",
                    model: str = "", checked: bool = False) -> np.ndarray:
    """The raw pixels a model takes from an image: ``(H, W)`` for a one-channel model, else ``(H, W, C)``.

    For a one-channel model, ``channel`` picks one channel of a multi-channel image (grey images
    ignore it); without it, RGB images whose channels are all equal are accepted and images with
    distinct channels are reduced by the spec's ``grey`` rule or refused. ``checked=True``: the pixels
    were checked already (an earlier ``select_channels`` or ``check_image`` of this image), so that
    scan of every pixel is not done again.

    Raises
    ------
    deepscope.errors.InputError
        Not a 2-D image, one under 2 x 2 pixels, NaN / infinite, complex or float32-overflowing pixels
        (:func:`deepscope.data.transforms.check_image`),
        ``channel`` out of range, distinct channels and no rule, or channels that do not fit the model;
        the message names the file and the fix.

    Examples
    --------
    >>> import numpy as np
    >>> select_channels(np.dstack([np.eye(3), np.zeros((3, 3))]), InputSpec(), channel=0).shape
    (3, 3)
    """
    from deepscope.data.transforms import check_image, to_grey

    x = np.asarray(image) if checked else check_image(np.asarray(image), path=path)
    where = path or "image"
    if x.ndim not in (2, 3):
        raise InputError(f"{where}: expected a 2-D image (H, W) or (H, W, C), got shape {x.shape}; index volumes "
                         "or time series first")
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if x.ndim == 3 and channel is not None:
        if not -x.shape[-1] <= channel < x.shape[-1]:
            raise InputError(f"{where}: --channel {channel} but the image has {x.shape[-1]} channel(s) "
                             f"(0..{x.shape[-1] - 1})")
        if spec.channels == 1:
            return x[..., channel]
    if spec.channels == 1:
        try:
            return to_grey(x, rule=spec.grey, path=path)
        except InputError:
            who = f"model {model!r}" if model else "the model"
            raise InputError(f"{where} has {x.shape[-1]} distinct channels but {who} takes one grey channel; "
                             f"choose one with --channel N (Python: channel=N), N in 0..{x.shape[-1] - 1}, or "
                             "reduce them with the input spec's grey='mean'|'first'|'max'") from None
    if spec.channels == 3 and spec.colour == "rgb":
        from deepscope.data.transforms import to_rgb

        return to_rgb(x, channel=channel, path=path)
    got = 1 if x.ndim == 2 else x.shape[-1]
    if got != spec.channels:
        raise InputError(f"{where}: the model takes {spec.channels} channels, the image has {got}")
    return x


def prepare_image(image: np.ndarray, spec: InputSpec, *, path: str = "", channel: int | None = None,
                  model: str = "", checked: bool = False) -> np.ndarray:
    """Turn one raw image into the model's float32 ``(H, W, C)`` input (channels, then normalisation;
    ``checked``: as for :func:`select_channels`).

    Raises
    ------
    deepscope.errors.InputError
        As :func:`select_channels`.
    """
    x = select_channels(image, spec, channel=channel, path=path, model=model, checked=checked)
    if x.ndim == 2:
        x = x[..., None]
    return spec.normalize_image(x)
