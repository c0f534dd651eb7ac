"""Architecture configuration: a small frozen dataclass stored in the model card beside the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from deepscope.errors import ConfigError

__all__ = ["ArchConfig", "from_fields"]


def from_fields(cls: Any, d: dict[str, Any], *, what: str) -> Any:
    """Build the dataclass ``cls`` from ``d``, refusing keys it does not have (named in the error).

    Raises
    ------
    deepscope.errors.ConfigError
        ``d`` has keys that are not fields of ``cls``.
    """
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown {what} {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)


#: The largest value of each size field (a card asking for more is refused before any allocation;
#: the parameter limit of :mod:`deepscope.io.limits` bounds the network as a whole).
_MAX = {"in_channels": 4096, "out_channels": 4096, "base": 4096, "depth": 16, "pool_input": 256}


@dataclass(frozen=True)
class ArchConfig:
    """Architecture of a network (enough to rebuild it before loading weights).

    Parameters
    ----------
    arch : str
        A registered architecture (:func:`deepscope.models.list_architectures`): ``"unet"``
        (deepscope's U-Net: 3x3 conv + BatchNorm + ReLU blocks, max-pool down, bilinear up, skip
        concatenation), ``"book-unet"`` / ``"book-countnet"`` (the book chapter's networks).
    in_channels : int
        Input channels.
    out_channels : int
        Output channels (meaning set by the task plugin: e.g. foreground + distance map for instances).
    base : int
        Filters of the first level (doubled at every level) for ``"unet"``.
    depth : int
        Number of down-sampling steps for ``"unet"``.
    pool_input : int
        Average-pool the input by this factor before the network (1 = none); the output is then at
        this lower resolution (used by the density counter, which works on binned images).
    input_size : (int, int), optional
        Fixed (rows, cols) of networks with a dense head (the book's CountNet: 520 x 696 by default).

    Raises
    ------
    deepscope.errors.ConfigError
        An unregistered ``arch`` or a non-positive size.
    """

    arch: str = "unet"
    in_channels: int = 1
    out_channels: int = 1
    base: int = 16
    depth: int = 4
    pool_input: int = 1
    input_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        from deepscope.models.architectures import get_architecture

        spec = get_architecture(self.arch)
        for name in ("in_channels", "out_channels", "base", "depth", "pool_input"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
            if v > _MAX[name]:  # sizes no network of this kind has: refused before anything is built
                raise ConfigError(f"{name}={v} is over the largest allowed ({_MAX[name]})")
        for name, value in spec.defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.input_size is not None:
            size = tuple(self.input_size)
            if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65536
                                     for v in size):
                raise ConfigError(f"input_size must be two integers in 1..65536 (rows, cols), got {self.input_size!r}")
            object.__setattr__(self, "input_size", size)

    @property
    def stride(self) -> int:
        """Spatial size multiple the network needs (inputs are padded to it)."""
        from deepscope.models.architectures import get_architecture

        return int(get_architecture(self.arch).stride(self))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchConfig:
        return from_fields(cls, dict(d), what="architecture keys")
