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

__all__ = ["SegmentOptions", "SegmentResult", "SegmentInfo", "DomainResult", "NO_DOMAIN", "apply_thresholds",
           "threshold_values"]

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
    diameter in pixels, for models that estimate it), ``checked`` (the pixels were checked already,
    :func:`deepscope.predict.inputs.model_input`) and the post-processing thresholds that trade precision for
    recall without retraining (None: the card's tuned value, in ``postprocess``):

    ``prob_threshold``
        The (cell) probability above which a pixel belongs to an object, in (0, 1): higher gives fewer,
        smaller objects (flow models' ``prob_threshold``, watershed models' ``fg_threshold``).
    ``flow_threshold``
        Flow models only (``nuclei``): an object whose predicted flows disagree with the flows of its own
        shape by more than this mean squared error is dropped (0 = no check; lower drops more).
    ``min_size``
        Objects smaller than this many pixels are removed (0 keeps all); pixels at the scale the model
        segments at (generalist models rescale each image so objects are ``target_diameter`` across).

    :meth:`thresholds` gives the values in use.
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
    prob_threshold: float | None = None
    flow_threshold: float | None = None
    min_size: int | None = None

    def __post_init__(self) -> None:
        from deepscope.predict.engine import TTA_MODES

        if self.tta not in TTA_MODES:
            raise InputError(f"tta={self.tta!r} is not one of {TTA_MODES}")
        if isinstance(self.tile, bool) or int(self.tile) < 1:
            raise InputError(f"tile must be a positive number of pixels, got {self.tile!r}")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names or ()))
        self._check_thresholds()
        if isinstance(self.postprocess, Mapping):
            object.__setattr__(self, "postprocess", dict(self.postprocess))
        else:  # typed by the plugin: the caller's thresholds replace the card's
            object.__setattr__(self, "postprocess", apply_thresholds(self.postprocess, self.prob_threshold,
                                                                     self.flow_threshold, self.min_size))
        object.__setattr__(self, "domain", dict(self.domain) if self.domain else None)

    def _check_thresholds(self) -> None:
        p, f, m = self.prob_threshold, self.flow_threshold, self.min_size
        if p is not None:
            if not _is_number(p) or not 0.0 < float(p) < 1.0:
                raise InputError(f"prob_threshold must be a probability strictly between 0 and 1, got {p!r}")
            object.__setattr__(self, "prob_threshold", float(p))
        if f is not None:
            if not _is_number(f) or float(f) < 0:
                raise InputError(f"flow_threshold must be a number >= 0 (0 = no flow check), got {f!r}")
            object.__setattr__(self, "flow_threshold", float(f))
        if m is not None:
            if not _is_number(m) or float(m) < 0 or float(m) != int(m):
                raise InputError(f"min_size must be a whole number of pixels >= 0, got {m!r}")
            object.__setattr__(self, "min_size", int(m))

    def thresholds(self) -> dict[str, Any]:
        """The post-processing thresholds in use (the caller's, else the card's): ``prob_threshold``,
        ``flow_threshold`` (None for models that do not follow flows) and ``min_size``; what lineage records."""
        return threshold_values(self.postprocess) if not isinstance(self.postprocess, Mapping) else {
            "prob_threshold": self.prob_threshold, "flow_threshold": self.flow_threshold, "min_size": self.min_size}

    def class_labels(self) -> list[str]:
        """One name per class (``class1`` ... where the card names none)."""
        if self.n_classes > 1 and len(self.class_names) != self.n_classes:
            return [f"class{k}" for k in range(1, self.n_classes + 1)]
        return list(self.class_names) if self.n_classes > 1 else []


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and v == v


#: The post-processing field each user-facing threshold sets, by what the representation's config has.
_PROB_FIELDS = ("prob_threshold", "fg_threshold")


def threshold_values(postprocess: Any) -> dict[str, Any]:
    """``prob_threshold``, ``flow_threshold`` (None where the config has none) and ``min_size`` of a typed
    post-processing config (:class:`~deepscope.tasks.segment.flows.FlowPostprocessConfig` or
    :class:`~deepscope.tasks.segment.instances.PostprocessConfig`)."""
    prob = next((getattr(postprocess, k) for k in _PROB_FIELDS if hasattr(postprocess, k)), None)
    flow = getattr(postprocess, "flow_threshold", None)
    size = getattr(postprocess, "min_size", None)
    return {"prob_threshold": None if prob is None else float(prob),
            "flow_threshold": None if flow is None else float(flow),
            "min_size": None if size is None else int(size)}


def apply_thresholds(postprocess: Any, prob_threshold: float | None = None, flow_threshold: float | None = None,
                     min_size: int | None = None) -> Any:
    """A typed post-processing config with the given thresholds (None: as it is).

    ``prob_threshold`` sets a flow model's ``prob_threshold`` or a watershed model's ``fg_threshold``.

    Raises
    ------
    deepscope.errors.InputError
        ``flow_threshold`` for a config that does not follow flows (a watershed or connected-components
        model), or a threshold the config has no field for.
    """
    changes: dict[str, Any] = {}
    if prob_threshold is not None:
        key = next((k for k in _PROB_FIELDS if hasattr(postprocess, k)), None)
        if key is None:
            raise InputError(f"prob_threshold: this model's post-processing ({type(postprocess).__name__}) has no "
                             "probability threshold")
        changes[key] = float(prob_threshold)
    if flow_threshold is not None:
        if not hasattr(postprocess, "flow_threshold"):
            raise InputError("flow_threshold applies only to models that follow flows (the generalist 'nuclei'); "
                             "this model separates touching objects by a seeded watershed on its distance map "
                             "(or connected components), so there is no flow check to tune: leave flow_threshold "
                             "out and use prob_threshold and min_size")
        changes["flow_threshold"] = float(flow_threshold)
    if min_size is not None:
        if not hasattr(postprocess, "min_size"):
            raise InputError(f"min_size: this model's post-processing ({type(postprocess).__name__}) has no "
                             "minimum object size")
        changes["min_size"] = int(min_size)
    return dataclasses.replace(postprocess, **changes) if changes else postprocess


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
