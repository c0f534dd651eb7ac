"""The segment task's typed options (:class:`SegmentOptions`, parsed from the card's ``output`` and the caller's
arguments) and its result (:class:`SegmentResult`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.predict.domain import DomainResult
from deepscope.tasks.segment.sizing import SegmentInfo
from deepscope.tasks.options import TaskOptions, card_field

__all__ = ["SegmentOptions", "SegmentResult", "SegmentInfo", "DomainResult", "NO_DOMAIN"]

#: The domain verdict of a model without a domain check.
NO_DOMAIN = DomainResult(None, None, None)


@dataclass(frozen=True)
class SegmentOptions(TaskOptions):
    """How a segmentation model segments (card fields) and what the caller asked for.

    Card fields: ``tile`` and ``overlap`` (large images are segmented tile by tile, with ``overlap`` pixels of
    context; for generalist models at the model's scale), ``n_classes`` and ``class_names``, ``postprocess``
    (the representation's post-processing settings, typed by its plugin), ``target_diameter``, ``probe_side``
    and ``size_channel`` (generalist models: the object scale they work at) and ``domain`` (the fitted
    domain check). The caller's: ``tta`` (``none``, ``flips``, ``d8``), ``channel``, ``diameter`` (object
    diameter in pixels, for models that estimate it) and ``checked`` (the pixels were checked already,
    :func:`deepscope.predict.inputs.model_input`).
    """

    tile: int = card_field(1024)
    overlap: int = card_field(96)
    n_classes: int = card_field(1)
    class_names: tuple[str, ...] = card_field(())
    postprocess: Any = card_field(default_factory=dict)
    target_diameter: float = card_field(17.0)
    probe_side: int = card_field(256)
    size_channel: bool = card_field(False)
    domain: Mapping[str, Any] | None = card_field(None, repr=False)
    tta: str = "none"
    channel: int | None = None
    diameter: float | None = None
    checked: bool = False

    def __post_init__(self) -> None:
        from deepscope.predict.engine import TTA_MODES

        if self.tta not in TTA_MODES:
            raise InputError(f"tta={self.tta!r} is not one of {TTA_MODES}")
        if isinstance(self.tile, bool) or int(self.tile) < 1:
            raise InputError(f"tile must be a positive number of pixels, got {self.tile!r}")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names or ()))
        if isinstance(self.postprocess, Mapping):
            object.__setattr__(self, "postprocess", dict(self.postprocess))
        object.__setattr__(self, "domain", dict(self.domain) if self.domain else None)

    def class_labels(self) -> list[str]:
        """One name per class (``class1`` ... where the card names none)."""
        if self.n_classes > 1 and len(self.class_names) != self.n_classes:
            return [f"class{k}" for k in range(1, self.n_classes + 1)]
        return list(self.class_names) if self.n_classes > 1 else []


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """The instances of one image.

    Attributes
    ----------
    labels : numpy.ndarray (H, W) int32
        0 = background (may be the ``out`` array the caller gave, e.g. a memory map).
    classes : mapping of int to int
        The class (1..n) of each instance id, for models with classes (else empty).
    info : SegmentInfo or None
        How the image was scaled (diameter, its source, scale, network passes), for models that estimate
        the object size (else None).
    domain : DomainResult
        The domain check's verdict and score (``in_domain`` None for models without one).
    """

    labels: np.ndarray
    classes: Mapping[int, int] = field(default_factory=dict)
    info: SegmentInfo | None = None
    domain: DomainResult = NO_DOMAIN

    @property
    def count(self) -> int:
        """Number of instances."""
        from deepscope.evaluate import count_instances

        return int(count_instances(np.asarray(self.labels)))

    @property
    def in_domain(self) -> bool | None:
        return self.domain.in_domain

    @property
    def diameter(self) -> float | None:
        """The object diameter (input pixels) the image was segmented at, for models that estimate it."""
        return None if self.info is None else self.info.diameter

    def replace(self, **changes: Any) -> SegmentResult:
        return dataclasses.replace(self, **changes)
