"""The count task's pipeline step, ``- count: {model: count-bbbc005, name: Cells}`` or ``- count: {objects: Nuclei}``.

:class:`CountStep` is what the step holds once validated, :meth:`CountStep.parse` reads it from a pipeline spec
(the count plugins name it in ``pipeline_step``, which is how :mod:`deepscope.pipeline.spec` finds it); see
``docs/pipelines.md`` for its keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepscope.tasks.contracts import StepReader

__all__ = ["CountStep", "OBJECT_COUNT"]

#: ``count.model`` value that counts segmented objects instead of running a count model.
OBJECT_COUNT = "objects"


@dataclass(frozen=True)
class CountStep:
    """Count objects: with a count model on a channel, or (``model: objects``) the segmented ``objects``.

    A model writes ``Count_<name>`` (whole cells) with ``Count_<name>_Low``/``_High`` (95% interval),
    ``_Std`` and ``_Estimate`` (the network's unrounded estimate, as counts.csv's ``count_estimate``); ``objects``
    writes ``Count_<objects>`` (also part of every object set's summary). A model *and*
    ``objects`` (``- count: {model: count-bbbc005, objects: Nuclei}``, what ``deepscope analyze`` runs) make
    ``Count_<objects>`` the counter's estimate on images the image QC finds blurred (power-log-log slope at or
    below :data:`deepscope.measure.quality.BLUR_SLOPE`, where segmentation merges and misses objects) and in the
    counter's domain, the number of objects elsewhere; ``Count_<objects>_Method`` says which (``counter`` /
    ``objects``) and ``Count_<objects>_Objects`` keeps the objects' count (see
    :func:`deepscope.pipeline.steps.route_count`).
    ``backend`` (``auto``, ``torch``, ``onnx``, ``onnx-int8``; None: the model's, ``auto``) is what runs a count model's network, as
    ``deepscope count --backend``; ``tta`` (``none``, ``transpose``, ``flips``, ``d8``; None: the card's) is the
    density's test-time augmentation, as ``deepscope count --tta``.

    Examples
    --------
    >>> from deepscope.pipeline import Pipeline
    >>> p = Pipeline.from_dict({"inputs": {"paths": ["/d"]}, "steps": [
    ...     {"segment": {"model": "otsu-watershed"}}, {"count": {}},
    ...     {"count": {"model": "count-bbbc005", "name": "Cells", "backend": "onnx", "tta": "flips"}}]})
    >>> [(s.name, s.model, s.backend, s.tta) for s in p.steps[1:]]
    [('Nuclei', 'objects', None, None), ('Cells', 'count-bbbc005', 'onnx', 'flips')]
    """

    name: str
    model: str = OBJECT_COUNT
    channel: str | None = None
    objects: str | None = None
    backend: str | None = None
    tta: str | None = None
    kind: str = field(default="count", init=False)

    @property
    def made_objects(self) -> str | None:
        """None: a count makes no object set."""
        return None

    @property
    def model_refs(self) -> tuple[str, ...]:
        """The count model the step runs (none for ``model: objects``)."""
        return () if self.model == OBJECT_COUNT else (self.model,)

    def to_dict(self) -> dict[str, Any]:
        """The resolved options (:meth:`parse` reads them back)."""
        opts: dict[str, Any] = {"name": self.name, "model": self.model, "channel": self.channel,
                                "objects": self.objects}
        for key in ("backend", "tta"):  # only when given: the hash of a pipeline without them is unchanged
            if getattr(self, key) is not None:
                opts[key] = getattr(self, key)
        return opts

    @classmethod
    def parse(cls, opts: Any, r: StepReader) -> CountStep:
        """Validate the step's mapping (``r``: the pipeline spec's reader, whose errors name the key and line).

        Raises
        ------
        deepscope.errors.ConfigError
            An unknown key or model, a channel or object set that does not exist, a ``Count_<name>`` column that
            another step writes too, or an option that does not go with the model (``channel``, ``backend`` and
            ``tta`` for ``model: objects``, a ``name`` other than ``objects`` for a count model with ``objects``).
        """
        p = r.path
        d = r.mapping(opts, p, ("name", "model", "channel", "objects", "backend", "tta"))
        model = d.get("model", OBJECT_COUNT)
        if model == OBJECT_COUNT:
            if d.get("channel") is not None:
                r.fail(p + ("channel",), "model: objects counts segmented objects and reads no channel")
            for key in ("backend", "tta"):
                if d.get(key) is not None:
                    r.fail(p + (key,), f"{key} is for count models; model: objects runs no network")
            default = list(r.objects)[-1] if r.objects else None
            if d.get("objects", default) is None:
                r.fail(p, "model: objects counts a segmented object set, but none is made before this step; "
                          "segment first or give a count model (model: count-bbbc005)")
            objs = r.existing_objects(d.get("objects", default), p + ("objects",))
            nm = r.name(d.get("name", objs), p + ("name",), "count name")
            if nm != objs:
                r.fail(p + ("name",), f"the count of {objs!r} is the column Count_{objs}; leave out name")
            return cls(name=nm, model=OBJECT_COUNT, objects=objs)
        model = r.model_ref(model, p + ("model",), task="count", also=f" or {OBJECT_COUNT}")
        chan = r.channel(d.get("channel"), p + ("channel",))
        backend = None
        if d.get("backend") is not None:
            from deepscope.predict.backends import BACKENDS

            backend = r.choice(d["backend"], p + ("backend",), BACKENDS)
        tta = None
        if d.get("tta") is not None:
            from deepscope.predict.engine import TTA_MODES

            tta = r.choice(d["tta"], p + ("tta",), TTA_MODES)
        if d.get("objects") is not None:  # Count_<objects>: the objects' count, or the counter's on blurred images
            objs = r.existing_objects(d["objects"], p + ("objects",))
            if r.name(d.get("name", objs), p + ("name",), "count name") != objs:
                r.fail(p + ("name",), f"a count model with objects gives the column Count_{objs}; leave out name")
            return cls(name=objs, model=model, channel=chan, objects=objs, backend=backend, tta=tta)
        nm = r.name(d.get("name", "Cells"), p + ("name",), "count name")
        if nm in r.objects or nm in r.counts:
            r.fail(p + ("name",), f"Count_{nm} would clash with the object set or count {nm!r} made earlier; give "
                                  "this count another name")
        r.reserve_count(nm)
        return cls(name=nm, model=model, channel=chan, backend=backend, tta=tta)
