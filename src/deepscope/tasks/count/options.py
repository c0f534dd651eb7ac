"""The count task's typed options (:class:`CountOptions`, parsed from the card's ``output`` and the caller's
arguments) and its result (:class:`CountResult`)."""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepscope.errors import InputError
from deepscope.tasks.options import TaskOptions, card_field

__all__ = ["CountOptions", "CountResult", "Interval", "HybridRule", "GeneralRule", "INTERVAL_METHODS",
           "HYBRID_INTERVAL_METHODS"]

#: How an interval's half-width is made: ``scale * std`` or ``scale`` (widened with the image's area).
INTERVAL_METHODS = ("scaled-std", "absolute")
#: How the hybrid rule's half-width is made: ``absolute`` (one width) or ``sqrt-count`` (grows with the count).
HYBRID_INTERVAL_METHODS = ("absolute", "sqrt-count")


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
    and the number of objects ``segmenter`` finds (median area below ``max_object_area``), with an interval
    half-width ``interval_scale`` (``interval_method`` ``absolute``, as cards calibrated before 2026-12-06: the
    same width at every count) or ``interval_scale * sqrt(count + 1)`` (``sqrt-count``: the width grows with
    the count, as the errors do); with ``count_edges`` the scale is calibrated per stratum of the count
    (``stratum_scales[i]`` for counts below ``count_edges[i]``, the last one above them all), never below
    ``interval_scale``; images whose foreground area per counted object is above ``gate_area_per_object`` skip
    the segmenter."""

    segmenter: str
    max_object_area: float
    interval_scale: float = 0.0
    interval_method: str = "absolute"
    count_edges: tuple[float, ...] = ()
    stratum_scales: tuple[float, ...] = ()
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

    def __post_init__(self) -> None:
        if self.interval_method not in HYBRID_INTERVAL_METHODS:
            raise InputError(f"hybrid interval method {self.interval_method!r} is not one of "
                             f"{HYBRID_INTERVAL_METHODS}")
        object.__setattr__(self, "count_edges", tuple(float(e) for e in self.count_edges))
        object.__setattr__(self, "stratum_scales", tuple(float(q) for q in self.stratum_scales))
        if self.stratum_scales and len(self.stratum_scales) != len(self.count_edges) + 1:
            raise InputError(f"hybrid rule: {len(self.stratum_scales)} stratum scales for {len(self.count_edges)} "
                             "count edges; give one scale more than edges")

    def half_width(self, count: float, shape: tuple[int, ...] | None = None) -> float:
        """The interval half-width of a hybrid count: ``interval_scale * sqrt(count + 1)`` (``sqrt-count``), or
        ``interval_scale`` widened for images larger than those calibrated on (``absolute``, see
        :func:`~deepscope.tasks.count.plugins.area_factor`; a count grows with the area, so ``sqrt-count``
        needs no such factor).

        Examples
        --------
        >>> HybridRule("s", 1.0, interval_scale=0.5, interval_method="sqrt-count").half_width(99.0)
        5.0
        """
        if self.interval_method == "sqrt-count":
            q = float(self.interval_scale)
            if self.stratum_scales:
                q = max(q, self.stratum_scales[bisect.bisect_right(self.count_edges, float(count))])
            return q * math.sqrt(max(float(count), 0.0) + 1.0)
        from deepscope.tasks.count.plugins import area_factor

        return float(self.interval_scale) * area_factor(self, shape)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("count_edges", "stratum_scales"):
            d[k] = list(d[k]) if d[k] else None
        return _drop_none(d)


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

    Cells come in whole numbers: ``count`` is the nearest whole number to ``estimate`` (the network's own figure:
    the density map's sum, or the mean of it and the object count; halves round up), and ``low``/``high`` are
    the calibrated interval around ``estimate`` widened to whole numbers (``floor(low)``, ``ceil(high)``), so
    that the interval holds ``count``. On the BBBC005 fields the whole number is the closer one (BENCHMARKS.md,
    "Counts in whole numbers"; ``benchmarks/bench_count_rounding.py``).
    A sum over many images is best made of ``estimate`` (rounding each adds up to half a cell per image).
    """

    count: float
    low: float
    high: float
    std: float
    method: str = "density"
    in_domain: bool | None = None
    estimate: float = float("nan")

    def __post_init__(self) -> None:
        if math.isnan(self.estimate):  # a result made from a count alone: the count is its estimate
            object.__setattr__(self, "estimate", float(self.count))

    @classmethod
    def whole(cls, estimate: float, low: float, high: float, std: float, method: str,
              in_domain: bool | None) -> CountResult:
        """A result for an ``estimate`` and its interval: the count and the interval's ends made whole numbers
        (NaN stays NaN: no interval is claimed out of the domain)."""
        e = float(estimate)
        count = math.floor(e + 0.5) if math.isfinite(e) else e
        lo = float(math.floor(low)) if math.isfinite(low) else float(low)
        hi = float(math.ceil(high)) if math.isfinite(high) else float(high)
        return cls(float(count), lo, hi, float(std), method, in_domain, e)
