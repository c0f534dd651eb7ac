"""Architecture configurations: small frozen dataclasses stored beside the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from deepscope.errors import ConfigError

__all__ = ["ArchConfig", "ARCHITECTURES"]

#: Network families deepscope builds.
ARCHITECTURES = ("unet", "book-unet", "book-countnet")


@dataclass(frozen=True)
class ArchConfig:
    """Architecture of a network (enough to rebuild it before loading weights).

    Parameters
    ----------
    arch : {"unet", "book-unet", "book-countnet"}
        ``"unet"``: deepscope's U-Net (3x3 conv + BatchNorm + ReLU blocks, max-pool down, bilinear
        up, skip concatenation). ``"book-unet"`` / ``"book-countnet"``: the networks of the book
        chapter, exactly as described there.
    in_channels : int
        Input channels.
    out_channels : int
        Output channels (meaning set by the task: e.g. foreground + distance map for instances).
    base : int
        Filters of the first level (doubled at every level) for ``"unet"``.
    depth : int
        Number of down-sampling steps for ``"unet"``.
    pool_input : int
        Average-pool the input by this factor before the network (1 = none); the output is then at
        this lower resolution (used by the density counter, which works on 2x-binned images).
    input_size : (int, int), optional
        Fixed (rows, cols) the book's CountNet was built for (its dense layer needs one size).
    """

    arch: str = "unet"
    in_channels: int = 1
    out_channels: int = 1
    base: int = 16
    depth: int = 4
    pool_input: int = 1
    input_size: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"arch={self.arch!r} is not one of {ARCHITECTURES}")
        for name in ("in_channels", "out_channels", "base", "depth", "pool_input"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.arch == "book-countnet" and self.input_size is None:
            object.__setattr__(self, "input_size", (520, 696))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @property
    def stride(self) -> int:
        """Spatial size multiple the network needs (inputs are padded to it)."""
        if self.arch == "unet":
            return self.pool_input * 2 ** self.depth
        if self.arch == "book-unet":
            return 8
        return 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown architecture keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
