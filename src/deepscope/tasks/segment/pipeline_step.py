"""The segment task's pipeline step, ``- segment: {objects: Nuclei, channel: DNA, model: nuclei}``.

:class:`SegmentStep` is what the step holds once validated, :meth:`SegmentStep.parse` reads it from a pipeline
spec (the segment plugins name it in ``pipeline_step``, which is how :mod:`deepscope.pipeline.spec` finds it);
see ``docs/pipelines.md`` for its keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deepscope.predict.engine import TTA_MODES  # the modes of ``segment.tta`` (one home: the engine)

if TYPE_CHECKING:
    from deepscope.tasks.contracts import StepReader

__all__ = ["SegmentStep", "CLASSICAL_SEGMENTERS", "OTSU_OPTIONS", "TTA_MODES", "THRESHOLDS", "generalist_models",
           "segment_thresholds"]

#: Built-in segmenters that need no weights (``segment.model``).
CLASSICAL_SEGMENTERS = ("otsu-watershed",)
#: Options of the classical segmenter (keyword arguments of :func:`deepscope.predict.classical.otsu_watershed`).
OTSU_OPTIONS = ("min_size", "smoothing_sigma", "footprint", "object_size", "distance_sigma", "fill_holes",
                "exclude_border")
#: Post-processing thresholds a segment step may set over the model card's.
THRESHOLDS = ("prob_threshold", "flow_threshold", "min_size")


@dataclass(frozen=True)
class SegmentStep:
    """Segment one channel into instance labels named ``objects``.

    ``model`` is a shipped model (``nuclei``, ``cells-bbbc005``), ``otsu-watershed`` (classical,
    no weights) or the path of a model folder / ``.json`` card. ``options`` are keyword arguments
    of :func:`deepscope.predict.classical.otsu_watershed` for the classical segmenter.
    ``diameter`` (pixels) overrides the per-image object-size estimate of generalist models; their
    images table gets ``Diameter_<objects>`` (the diameter used) and ``InDomain_<objects>`` (1 when
    the image looks like the model's training images, 0 when not). ``tile``, ``overlap`` and ``tta``
    mean what they mean to ``deepscope segment`` (one overlap rule,
    :func:`deepscope.predict.inputs.tile_overlap`); ``backend`` (``auto``, ``torch``, ``onnx``,
    ``onnx-int8``; None: the model's, ``auto``) is what runs the network, as ``--backend``. ``prob_threshold``, ``flow_threshold`` (flow models
    only) and ``min_size`` override the model card's post-processing thresholds (None: the card's).

    ``volume`` (a method of :data:`deepscope.tasks.segment.volume_files.VOLUME_METHODS`: ``classical``, no model;
    ``flows25d`` or ``slices`` with the 2D ``model``) segments z-stacks in 3D, as ``deepscope segment STACK`` does
    (:func:`~deepscope.tasks.segment.volume_files.segment_stack`): the pipeline then reads its image sets as ZYX
    stacks with their voxel size (``inputs.axes``, ``inputs.voxel_size`` override the files'), and its measure
    steps give the 3D measurements (:func:`deepscope.measure.measure_volume`).

    Examples
    --------
    >>> from deepscope.pipeline import Pipeline
    >>> p = Pipeline.from_dict({"inputs": {"paths": ["/d"]},
    ...                         "steps": [{"segment": {"model": "otsu-watershed", "options": {"min_size": 10}}}]})
    >>> step = p.steps[0]
    >>> type(step).__name__, step.objects, step.options, step.model_refs
    ('SegmentStep', 'Nuclei', {'min_size': 10}, ('otsu-watershed',))
    """

    objects: str
    channel: str
    model: str = "nuclei"
    tile: int | None = None
    overlap: int | None = None
    tta: str = "none"
    options: dict[str, Any] = field(default_factory=dict)
    diameter: float | None = None
    backend: str | None = None
    prob_threshold: float | None = None
    flow_threshold: float | None = None
    min_size: int | None = None
    volume: str | None = None
    kind: str = field(default="segment", init=False)

    @property
    def z_stack(self) -> bool:
        """Whether the step segments z-stacks in 3D (``volume``): its pipeline reads ZYX image sets."""
        return self.volume is not None

    @property
    def made_objects(self) -> str | None:
        """The object set the step makes."""
        return self.objects

    @property
    def model_refs(self) -> tuple[str, ...]:
        """The model the step runs (``otsu-watershed`` included; none for the classical 3D method)."""
        return () if self.volume == "classical" else (self.model,)

    def to_dict(self) -> dict[str, Any]:
        """The resolved options (:meth:`parse` reads them back)."""
        if self.volume is not None:  # a 3D step: only the keys it takes
            vol: dict[str, Any] = {"objects": self.objects, "channel": self.channel, "volume": self.volume}
            if self.volume != "classical":
                vol["model"] = self.model
            for k in ("diameter", *THRESHOLDS):
                if getattr(self, k) is not None:
                    vol[k] = getattr(self, k)
            return vol
        opts: dict[str, Any] = {"objects": self.objects, "channel": self.channel, "model": self.model,
                                "tile": self.tile, "overlap": self.overlap, "tta": self.tta,
                                "options": dict(self.options)}
        if self.diameter is not None:
            opts["diameter"] = self.diameter
        if self.backend is not None:  # only when given: the hash of a pipeline without it is unchanged
            opts["backend"] = self.backend
        for k in THRESHOLDS:  # likewise
            if getattr(self, k) is not None:
                opts[k] = getattr(self, k)
        return opts

    @classmethod
    def parse(cls, opts: Any, r: StepReader) -> SegmentStep:
        """Validate the step's mapping (``r``: the pipeline spec's reader, whose errors name the key and line).

        Raises
        ------
        deepscope.errors.ConfigError
            An unknown key, a wrong value, a channel that does not exist, an object set name already taken, or an
            option that does not go with the model (``diameter`` for a non-generalist, ``options`` for a trained
            model, ``backend`` for ``otsu-watershed``).
        """
        p = r.path
        d = r.mapping(opts, p, ("objects", "channel", "model", "tile", "overlap", "tta", "options", "diameter",
                                "backend", "volume", *THRESHOLDS))
        chan = r.channel(d.get("channel"), p + ("channel",))
        if d.get("volume") is not None:
            return cls._parse_volume(d, r, chan)
        model = r.model_ref(d.get("model", "nuclei"), p + ("model",), task="segment", builtin=CLASSICAL_SEGMENTERS,
                            also=", " + ", ".join(CLASSICAL_SEGMENTERS))
        tile = r.integer(d["tile"], p + ("tile",), minimum=64) if d.get("tile") is not None else None
        overlap = r.integer(d["overlap"], p + ("overlap",), minimum=0) if d.get("overlap") is not None else None
        tta = r.choice(d.get("tta", "none"), p + ("tta",), TTA_MODES)
        diameter = (r.number(d["diameter"], p + ("diameter",), lo=1, hi=10000)
                    if d.get("diameter") is not None else None)
        if diameter is not None and model in CLASSICAL_SEGMENTERS:
            r.fail(p + ("diameter",), f"diameter is for the generalist models "
                                      f"({', '.join(generalist_models()) or 'none shipped'}); "
                                      f"{model} takes its settings from options")
        backend = None
        if d.get("backend") is not None:
            from deepscope.predict.backends import BACKENDS

            backend = r.choice(d["backend"], p + ("backend",), BACKENDS)
            if model in CLASSICAL_SEGMENTERS:
                r.fail(p + ("backend",), f"backend is for trained models; {model} runs no network")
        thresholds = segment_thresholds(r, d, p, model)
        options = d.get("options") or {}
        if not isinstance(options, dict):
            r.fail(p + ("options",), f"expected a mapping of options; got {r.type_name(options)}")
        if options and model not in CLASSICAL_SEGMENTERS:
            r.fail(p + ("options",), "options are for model: otsu-watershed; a trained model takes its settings "
                                     "from its model card")
        for k in options:
            if k not in OTSU_OPTIONS:
                r.fail(p + ("options", k), f"unknown option of otsu-watershed; valid options are "
                                           f"{', '.join(OTSU_OPTIONS)}")
        if d.get("objects") is None and "Nuclei" in r.objects:
            r.fail(p, f"missing key 'objects': name the object set this step makes ('Nuclei' is already made by "
                      f"step {r.objects['Nuclei']})")
        objs = r.new_objects(d.get("objects", "Nuclei"), p + ("objects",))
        return cls(objects=objs, channel=chan, model=model, tile=tile, overlap=overlap, tta=tta,
                   options=dict(options), diameter=diameter, backend=backend, **thresholds)


    @classmethod
    def _parse_volume(cls, d: Mapping[str, Any], r: StepReader, chan: str) -> SegmentStep:
        """A 3D step (``volume: METHOD``): the keys :func:`~deepscope.tasks.segment.volume_files.segment_stack`
        takes."""
        from deepscope.tasks.segment.volume_files import _MODEL_OPTIONS, VOLUME_METHODS

        p = r.path
        method = r.choice(d["volume"], p + ("volume",), VOLUME_METHODS)
        for k in ("tile", "overlap", "tta", "options", "backend"):
            if d.get(k) is not None:
                r.fail(p + (k,), f"{k} is not an option of a 3D segment step (volume: {method})")
        model = "nuclei"
        if method == "classical":
            given = [k for k in ("model", *THRESHOLDS) if d.get(k) is not None]
            if given:
                r.fail(p + (given[0],), f"the classical 3D method (volume: classical) runs no model; leave out "
                                        f"{given[0]}, or use volume: flows25d or slices with a 2D model")
        else:
            model = r.model_ref(d.get("model", "nuclei"), p + ("model",), task="segment")
            for k in THRESHOLDS:
                if d.get(k) is not None and k not in _MODEL_OPTIONS[method]:
                    r.fail(p + (k,), f"not an option of volume: {method} (it takes "
                                     f"{', '.join(_MODEL_OPTIONS[method])})")
        diameter = (r.number(d["diameter"], p + ("diameter",), lo=1, hi=10000)
                    if d.get("diameter") is not None else None)
        thresholds = segment_thresholds(r, d, p, model) if method != "classical" else {}
        if d.get("objects") is None and "Nuclei" in r.objects:
            r.fail(p, f"missing key 'objects': name the object set this step makes ('Nuclei' is already made by "
                      f"step {r.objects['Nuclei']})")
        objs = r.new_objects(d.get("objects", "Nuclei"), p + ("objects",))
        return cls(objects=objs, channel=chan, model=model, diameter=diameter, volume=method, **thresholds)


def segment_thresholds(r: StepReader, d: Mapping[str, Any], p: tuple[Any, ...], model: str) -> dict[str, Any]:
    """A segment step's ``prob_threshold`` (in (0, 1)), ``flow_threshold`` (>= 0; flow models only) and
    ``min_size`` (integer >= 0), those given."""
    out: dict[str, Any] = {}
    for k in THRESHOLDS:
        if d.get(k) is None:
            continue
        if model in CLASSICAL_SEGMENTERS:
            r.fail(p + (k,), f"{k} is for trained models; {model} takes its settings from options")
        if k == "min_size":
            out[k] = r.integer(d[k], p + (k,), minimum=0)
            continue
        v = r.number(d[k], p + (k,))
        if k == "prob_threshold" and not 0.0 < v < 1.0:
            r.fail(p + (k,), f"expected a probability strictly between 0 and 1; got {d[k]!r}")
        if k == "flow_threshold" and v < 0:
            r.fail(p + (k,), f"expected a number >= 0 (0 = no flow check); got {d[k]!r}")
        out[k] = v
    if "flow_threshold" in out:
        from deepscope.models.registry import ZOO

        card = ZOO / f"{model}.json"
        try:
            post = (json.loads(card.read_text()).get("output") or {}).get("postprocess") if card.is_file() else None
        except (OSError, ValueError):
            post = None
        if isinstance(post, Mapping) and "flow_threshold" not in post:
            r.fail(p + ("flow_threshold",), f"model {model} separates objects by a seeded watershed and has no flow "
                                            "check; flow_threshold is for flow models (nuclei); use prob_threshold "
                                            "and min_size")
    return out


def generalist_models() -> list[str]:
    """The shipped generalist segmenters (those that rescale images to their object size and take a
    ``diameter``): zoo cards whose output has a ``target_diameter``, read without loading a model."""
    from deepscope.models.registry import ZOO

    out = []
    for card in sorted(ZOO.glob("*.json")):
        try:
            d = json.loads(card.read_text())
        except (OSError, ValueError):
            continue
        if d.get("task") == "segment" and "target_diameter" in (d.get("output") or {}):
            out.append(str(d.get("name") or card.stem))
    return out

