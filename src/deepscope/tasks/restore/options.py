"""The restore task's typed options (:class:`RestoreOptions`) and its result (:class:`RestoreResult`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepscope.errors import InputError
from deepscope.tasks.options import TaskOptions, card_field

__all__ = ["RestoreOptions", "RestoreResult", "DTYPES"]

#: Output dtypes of a restoration: the input's, or float32.
DTYPES = ("input", "float32")


@dataclass(frozen=True)
class RestoreOptions(TaskOptions):
    """How a restoration model restores (card fields) and what the caller asked for.

    Card fields: ``upscale`` (1, or 2 for super-resolution), ``loss`` (what it was trained with), ``tile``
    and ``overlap`` (large images are restored tile by tile). The caller's: ``dtype`` (``input``: the input's
    dtype, rounded and clipped; ``float32``), ``channel``, ``check`` (compare the input with the training
    inputs and warn) and ``checked`` (the pixels were checked already).
    """

    upscale: int = card_field(1)
    loss: str = card_field("l1")
    tile: int = card_field(1024)
    overlap: int = card_field(64)
    dtype: str = "input"
    channel: int | None = None
    check: bool = True
    checked: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"dtype={self.dtype!r} is not one of {DTYPES}")


@dataclass(frozen=True, eq=False)
class RestoreResult:
    """A restored image (the input's dtype or float32) and the warnings about its input (an image unlike the
    training inputs), kept per image so batch workers can report them with the file."""

    image: np.ndarray
    warnings: tuple[str, ...] = ()
