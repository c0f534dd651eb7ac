"""The count task's typed options (:class:`CountOptions`, parsed from the card's ``output`` and the caller's
arguments) and its result (:class:`CountResult`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepscope.errors import InputError
from deepscope.tasks.options import TaskOptions, card_field

__all__ = ["CountOptions", "CountResult", "Interval", "HybridRule", "GeneralRule", "INTERVAL_METHODS"]

#: How an interval's half-width is made: ``scale * std`` or ``scale`` (widened with the image's area).
INTERVAL_METHODS = ("scaled-std", "absolute")


def _known(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in dict(d).items() if k in names}


def _drop_none(d: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None or k in keep}


@dataclass(frozen=True)
class Interval:
    """The calibrated 95% interval of the network's count (card ``output.interval``).

    ``method``: ``scaled-std`` (half-width ``scale * std``) or ``absolute`` (``scale``, widened by
    :func:`deepscope.tasks.count.area_factor` for an image larger than ``reference_area`` pixels).
    """

    method: str = "absolute"
    scale: float = 1.96
    level: float = 0.95
    calibrated_on: str | None = None
    n: int | None = None
    reference_area: float | None = None

    def __post_init__(self) -> None:
        if self.method not in INTERVAL_METHODS:
            raise InputError(f"interval method {self.method!r} is not one of {INTERVAL_METHODS}")

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | Interval) -> Interval:
        return d if isinstance(d, Interval) else cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dataclasses.asdict(self), keep=("calibrated_on",))


@dataclass(frozen=True)
class HybridRule:
    """Hybrid counting (card ``output.hybrid``): images of small objects get the mean of the network's count
    and the number of objects ``segmenter`` finds (median area below ``max_object_area``), with an absolute
    interval ``interval_scale``; images whose foreground area per counted object is above
    ``gate_area_per_object`` skip the segmenter."""

    segmenter: str
    max_object_area: float
    interval_scale: float = 0.0
    enabled: bool = True
    gate_area_per_object: float | None = None
    reference_area: float | None = None
    segmenter_sha256: str | None = None
    combine: str = "mean"
    calibrated_on: str | None = None
    gate_skips_on_calibration: int | None = None

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | HybridRule) -> HybridRule:
        return d if isinstance(d, HybridRule) else cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dataclasses.asdict(self))


@dataclass(frozen=True)
class GeneralRule:
    """Counting images unlike the counter's own (card ``output.general``): the objects of the generalist
    ``segmenter``, with a half-width ``q * sqrt(n + 1)``, ``q`` calibrated per kind of image (``interval``)."""

    segmenter: str
    interval: Mapping[str, float] = dataclasses.field(default_factory=dict)
    level: float = 0.95
    n: Mapping[str, int] = dataclasses.field(default_factory=dict)
    segmenter_sha256: str | None = None

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | GeneralRule) -> GeneralRule:
        return d if isinstance(d, GeneralRule) else cls(**_known(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({**dataclasses.asdict(self), "interval": dict(self.interval), "n": dict(self.n)})


@dataclass(frozen=True)
class CountOptions(TaskOptions):
    """How a count model counts (card fields) and what the caller asked for.

    Card fields: ``tta`` (test-time augmentation of the density), ``pad_input`` (pad images to the
    network's stride; counters do not: padding adds density), ``interval``, ``hybrid``, ``general`` and
    ``domain`` (the fitted domain check, read by :mod:`deepscope.predict.domain`). The caller's:
    ``use_hybrid`` (overrides ``hybrid.enabled``), ``batch_size``, ``channel`` and ``checked`` (the pixels
    were checked already, :func:`deepscope.predict.inputs.model_input`).
    """

    tta: str = card_field("none")
    pad_input: bool = card_field(False)
    interval: Interval = card_field(default_factory=Interval)
    hybrid: HybridRule | None = card_field(None)
    general: GeneralRule | None = card_field(None)
    domain: Mapping[str, Any] | None = card_field(None, repr=False)
    use_hybrid: bool | None = None
    batch_size: int = 8
    channel: int | None = None
    checked: bool = False

    def __post_init__(self) -> None:
        from deepscope.predict.engine import TTA_MODES

        if self.tta not in TTA_MODES:
            raise InputError(f"tta={self.tta!r} is not one of {TTA_MODES}")
        if isinstance(self.batch_size, bool) or int(self.batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        object.__setattr__(self, "interval", Interval.from_mapping(self.interval))
        for name, rule in (("hybrid", HybridRule), ("general", GeneralRule)):
            v = getattr(self, name)
            object.__setattr__(self, name, rule.from_mapping(v) if v else None)
        object.__setattr__(self, "domain", dict(self.domain) if self.domain else None)

    @property
    def hybrid_on(self) -> bool:
        """Whether the hybrid rule applies (the card has one, enabled unless the caller says otherwise)."""
        if self.hybrid is None:
            return False
        return self.hybrid.enabled if self.use_hybrid is None else bool(self.use_hybrid)


@dataclass(frozen=True)
class CountResult:
    """A count estimate with its 95% interval (``low`` is never below 0).

    ``method`` says how it was made: ``"density"`` (sum of the density map), ``"density+objects"``
    (hybrid models: the mean of the density count and the number of segmented objects, used for
    images of small, well-separated objects), ``"regress"`` (a network that outputs the count) or
    ``"instances"`` (the objects a generalist segmenter found, for images unlike the counter's
    training images). ``in_domain`` is the verdict of the domain check of the method used (None
    for models without one); where it is False, ``low`` and ``high`` are NaN: no interval is
    claimed for an image no model here was made for.
    """

    count: float
    low: float
    high: float
    std: float
    method: str = "density"
    in_domain: bool | None = None
