"""Input specification of a model: axes, channels and the explicit normalisation it was trained with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from deepscope.errors import ConfigError, InputError

__all__ = ["InputSpec", "NORMALIZE_MODES", "prepare_image"]

NORMALIZE_MODES = ("percentile", "fixed")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects and how images are normalised before it sees them.

    Parameters
    ----------
    channels : int
        Number of input channels (1 = grey).
    normalize : str
        ``"percentile"``: ``(x - p_low) / (p_high - p_low)`` per image; ``"fixed"``:
        ``(x - offset) / scale`` with constants recorded here (e.g. 8-bit BBBC005: scale 255).
    low, high : float
        Percentiles for ``"percentile"``.
    offset, scale : float
        Constants for ``"fixed"``.
    pixel_size_um : float, optional
        Pixel size of the training images, when known.
    grey : str
        How multi-channel input is reduced for a one-channel model: ``"error"``, ``"mean"``,
        ``"first"`` or ``"max"`` (identical RGB channels are always accepted).
    colour : {"strict", "rgb"}
        For three-channel models: ``"strict"`` takes only 3-channel images; ``"rgb"`` also takes grey
        images (replicated into three channels) and RGBA (alpha dropped), so one model serves grey
        fluorescence, brightfield and colour (H&E) images.
    stats : dict
        Summary statistics of the training inputs (after normalisation), used to warn when an image
        looks unlike the training data.
    """

    channels: int = 1
    normalize: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    offset: float = 0.0
    scale: float = 255.0
    pixel_size_um: float | None = None
    grey: str = "error"
    stats: dict[str, float] = field(default_factory=dict)
    colour: str = "strict"

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE_MODES:
            raise ConfigError(f"normalize={self.normalize!r} is not one of {NORMALIZE_MODES}")
        if self.colour not in ("strict", "rgb"):
            raise ConfigError(f"colour={self.colour!r} is not one of ('strict', 'rgb')")
        if self.normalize == "fixed" and self.scale == 0:
            raise ConfigError("normalize='fixed' needs a non-zero scale")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        return cls(**d)

    def normalize_image(self, x: np.ndarray) -> np.ndarray:
        """Apply the recorded normalisation; returns float32 of the same shape."""
        if self.normalize == "fixed":
            return ((np.asarray(x, dtype=np.float32) - self.offset) / self.scale).astype(np.float32, copy=False)
        from deepscope.data.transforms import normalize_percentile

        return normalize_percentile(x, self.low, self.high)


def prepare_image(image: np.ndarray, spec: InputSpec, *, path: str = "", channel: int | None = None) -> np.ndarray:
    """Turn one raw image into the model's float32 ``(H, W, C)`` input.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)``, any dtype (uint8, uint16, float ...).
    spec : InputSpec
    path : str
        For error messages.
    channel : int, optional
        Take this channel of a multi-channel image for a one-channel model.

    Raises
    ------
    deepscope.errors.InputError
        Wrong number of dimensions, or several distinct channels for a one-channel model and no rule.
    """
    from deepscope.data.transforms import to_grey

    x = np.asarray(image)
    if x.ndim not in (2, 3):
        raise InputError(f"{path or 'image'}: expected (H, W) or (H, W, C), got shape {x.shape}; index volumes "
                         "or time series first")
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if spec.channels == 1:
        if channel is not None and x.ndim == 3:
            if not 0 <= channel < x.shape[-1]:
                raise InputError(f"{path or 'image'}: channel={channel} but the image has {x.shape[-1]} channels")
            x = x[..., channel]
        x = to_grey(x, rule=spec.grey, path=path)[..., None]
    elif spec.channels == 3 and spec.colour == "rgb":
        from deepscope.data.transforms import to_rgb

        x = to_rgb(x, channel=channel, path=path)
    else:
        if x.ndim == 2 or x.shape[-1] != spec.channels:
            got = 1 if x.ndim == 2 else x.shape[-1]
            raise InputError(f"{path or 'image'}: the model takes {spec.channels} channels, the image has {got}")
    return spec.normalize_image(x)
