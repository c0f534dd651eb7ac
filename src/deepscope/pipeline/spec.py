"""The pipeline spec: YAML read into frozen dataclasses, validated with the line of every mistake.

A pipeline has three sections::

    inputs:                      # which files, how they group into image sets (fields of view)
      paths: [plate1/]
      pattern: plate-well-site-channel
      channels: {by: channel, names: {1: DNA, 2: Cells}}
    steps:                       # run in order on every image set
      - segment: {objects: Nuclei, channel: DNA, model: nuclei}
      - measure: {objects: [Nuclei], channels: [DNA]}
    outputs:                     # what is written besides images.* and objects.*
      tables: [parquet, csv]
      labels: true
      overlays: false

See ``docs/pipelines.md`` for every key. :func:`load_pipeline` reads a file or text,
:meth:`Pipeline.from_dict` a dict (what ``deepscope analyze`` builds).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Union

from deepscope.errors import ConfigError
from deepscope.pipeline._yaml import Marks, load_with_marks

__all__ = [
    "SPEC_SCHEMA", "STEP_KINDS", "TABLE_FORMATS", "INCOMPLETE_MODES", "CLASSICAL_SEGMENTERS", "OBJECT_COUNT",
    "ChannelGrouping", "Inputs", "Outputs", "NormalizeStep", "SegmentStep", "CountStep", "ModelStep", "RelateStep",
    "MeasureStep", "FilterStep", "Step", "Pipeline", "load_pipeline",
]

#: Schema tag written with every resolved pipeline (and part of its hash).
SPEC_SCHEMA = "deepscope.pipeline/1"
#: Step kinds, in the order the docs list them (``normalise`` is accepted for ``normalize``).
STEP_KINDS = ("normalize", "segment", "count", "model", "relate", "measure", "filter")
#: Table formats of ``outputs.tables``.
TABLE_FORMATS = ("parquet", "csv")
#: What to do with image sets that lack a channel (``inputs.channels.incomplete``).
INCOMPLETE_MODES = ("error", "skip")
#: Built-in segmenters that need no weights (``segment.model``).
CLASSICAL_SEGMENTERS = ("otsu-watershed",)
#: ``count.model`` value that counts segmented objects instead of running a count model.
OBJECT_COUNT = "objects"

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_OTSU_OPTIONS = ("min_size", "smoothing_sigma", "footprint", "object_size", "distance_sigma", "fill_holes",
                 "exclude_border")
_TTA = ("none", "flips", "d8")


# ---------------------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class ChannelGrouping:
    """How files group into multi-channel image sets (one per field of view).

    Attributes
    ----------
    by : str
        Metadata column (from the file-name pattern or the sidecar) whose value says the channel.
    names : dict of str to str
        That column's value (as text) -> channel name, e.g. ``{"1": "DNA", "2": "Cells"}``. Every
        image set must have one file per name.
    group_by : tuple of str or None
        Metadata columns that identify a field of view; default every pattern column but ``by``.
    incomplete : {"error", "skip"}
        Image sets missing a channel stop the run with a list of them, or are left out (and listed
        in ``RUN_DIR/skipped.csv``).
    """

    by: str
    names: dict[str, str]
    group_by: tuple[str, ...] | None = None
    incomplete: str = "error"


@dataclass(frozen=True)
class Inputs:
    """Which files a pipeline reads and how they become image sets.

    Attributes
    ----------
    paths : tuple of str
        Folders, files or glob patterns (absolute after loading).
    include, exclude : tuple of str
        File-name globs for folder scans (case-insensitive).
    recursive : bool
        Scan sub-folders (default False, so a ``masks/`` folder beside the images is not read).
    pattern : str or None
        File-name pattern: a preset (``bbbc005``, ``plate-well-site-channel``) or a regex with
        named groups; the groups become ``Metadata_<group>`` columns.
    metadata : str or None
        CSV sidecar keyed by file name; its columns become ``Metadata_<column>`` columns.
    channels : ChannelGrouping or None
        Group files into multi-channel image sets; without it every file is one image set.
    planes : tuple of str or None
        Names of the channels of multi-channel files (``(H, W, C)``), in order.
    channel : str
        Name of the one channel of single-file image sets (default ``"Image"``).
    plane : int or None
        Take only this channel (0-based) of multi-channel files, as the channel ``channel``
        (``deepscope analyze --channel N``); grey files are taken as they are.
    label_images : {"skip", "include"}
        Files of scanned folders that look like label images or outputs (``*_mask*``, ``masks/``):
        left out with a warning (default), or read as images (``deepscope analyze --include-labels``).
    """

    paths: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    recursive: bool = False
    pattern: str | None = None
    metadata: str | None = None
    channels: ChannelGrouping | None = None
    planes: tuple[str, ...] | None = None
    channel: str = "Image"
    plane: int | None = None
    label_images: str = "skip"

    @property
    def channel_names(self) -> tuple[str, ...]:
        """The channel names every image set has."""
        if self.channels is not None:
            return tuple(dict.fromkeys(self.channels.names.values()))
        if self.planes is not None:
            return self.planes
        return (self.channel,)


@dataclass(frozen=True)
class NormalizeStep:
    """Percentile normalisation of channels to float32 (``normalize_percentile``); later steps see it."""

    channels: tuple[str, ...]
    low: float = 1.0
    high: float = 99.8
    clip: bool = False
    kind: str = field(default="normalize", init=False)


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
    :func:`deepscope.predict.inputs.tile_overlap`); ``backend`` (``torch`` or ``onnx``; None: the
    model's) is what runs the network, as ``--backend``.
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
    kind: str = field(default="segment", init=False)


@dataclass(frozen=True)
class CountStep:
    """Count objects: with a count model on a channel, or (``model: objects``) the segmented ``objects``.

    A model writes ``Count_<name>`` with ``Count_<name>_Low``/``_High`` (95% interval) and
    ``_Std``; ``objects`` writes ``Count_<objects>`` (also part of every object set's summary).
    """

    name: str
    model: str = OBJECT_COUNT
    channel: str | None = None
    objects: str | None = None
    kind: str = field(default="count", init=False)


@dataclass(frozen=True)
class ModelStep:
    """Run a model of any task (a registered task plugin's ``run``) on one channel.

    The task's result gives the step its output: a result with ``labels`` makes the object set ``objects``
    (measured, related and filtered as a segment step's), one with ``image`` makes the channel ``into`` (later
    steps read it as any channel). ``options`` are the task's options (``tile``, ``tta``, ``diameter`` ...;
    :meth:`deepscope.models.DeepscopeModel.options`).
    """

    model: str
    channel: str
    objects: str | None = None
    into: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    kind: str = field(default="model", init=False)


@dataclass(frozen=True)
class RelateStep:
    """Link children to the parent they overlap most (``Parent_<parents>``, ``Children_<children>_Count``)."""

    parents: str
    children: str
    kind: str = field(default="relate", init=False)


@dataclass(frozen=True)
class MeasureStep:
    """Measure size, shape, position and the intensity of ``channels`` for each object set.

    ``pixel_size``: micrometres per pixel for the ``_um`` columns; ``"files"``: each image set's own, as its
    files state it (sets whose files state none, or an anisotropic one, get empty ``_um`` columns).
    """

    objects: tuple[str, ...]
    channels: tuple[str, ...]
    pixel_size: float | str | None = None
    kind: str = field(default="measure", init=False)


@dataclass(frozen=True)
class FilterStep:
    """Keep the objects whose measurements meet ``where`` (a filter or ``{column: [min, max]}``).

    A filter string is deepscope's filter language (:mod:`deepscope.measure.expr`), parsed when the
    pipeline is validated and never evaluated by Python.

    Without ``into`` the object set is filtered in place (ids kept); with ``into`` a new object set
    is made, numbered 1..k, with the old id in ``Parent_<objects>`` (CellProfiler's FilterObjects).
    """

    objects: str
    where: str | dict[str, tuple[float | None, float | None]]
    into: str | None = None
    kind: str = field(default="filter", init=False)


Step = Union[NormalizeStep, SegmentStep, CountStep, ModelStep, RelateStep, MeasureStep, FilterStep]


@dataclass(frozen=True)
class Outputs:
    """What a run writes besides ``images.*`` and ``objects.*``.

    Attributes
    ----------
    tables : tuple of str
        ``parquet`` and/or ``csv``.
    labels : bool
        Write each object set's label image (int32 TIFF, lineage record inside) under ``labels/``.
    overlays : bool
        Write a PNG with object outlines over the first channel under ``overlays/``.
    catalog : str or None
        Record the run, its input images and the lineage of the tables in this provenance catalog
        (SQLite path or database URL).
    """

    tables: tuple[str, ...] = TABLE_FORMATS
    labels: bool = True
    overlays: bool = False
    catalog: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """A validated analysis pipeline.

    Attributes
    ----------
    inputs : Inputs
    steps : tuple of Step
    outputs : Outputs
    name : str
    source : str or None
        The YAML file it was read from.

    Examples
    --------
    >>> p = Pipeline.from_dict({"inputs": {"paths": ["/data/plate1"]},
    ...                         "steps": [{"segment": {"model": "otsu-watershed"}}, {"measure": {}}]})
    >>> [s.kind for s in p.steps], p.objects, p.steps[1].channels
    (['segment', 'measure'], ('Nuclei',), ('Image',))
    """

    inputs: Inputs
    steps: tuple[Step, ...]
    outputs: Outputs = field(default_factory=Outputs)
    name: str = "pipeline"
    source: str | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ views
    @property
    def channels(self) -> tuple[str, ...]:
        """Channel names of every image set."""
        return self.inputs.channel_names

    @property
    def objects(self) -> tuple[str, ...]:
        """Object sets made by the steps, in order."""
        out: list[str] = []
        for s in self.steps:
            if isinstance(s, SegmentStep) or (isinstance(s, ModelStep) and s.objects):
                assert s.objects is not None
                out.append(s.objects)
            elif isinstance(s, FilterStep) and s.into:
                out.append(s.into)
        return tuple(out)

    @property
    def model_refs(self) -> tuple[str, ...]:
        """Every model the steps use (shipped names, paths, ``otsu-watershed``), once each."""
        refs: list[str] = []
        for s in self.steps:
            if isinstance(s, (SegmentStep, ModelStep)) or (isinstance(s, CountStep) and s.model != OBJECT_COUNT):
                refs.append(s.model)
        return tuple(dict.fromkeys(refs))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The resolved spec (defaults filled in, paths absolute) as plain data; :meth:`from_dict` reads it."""
        inp: dict[str, Any] = {"paths": list(self.inputs.paths), "include": list(self.inputs.include),
                               "exclude": list(self.inputs.exclude), "recursive": self.inputs.recursive,
                               "pattern": self.inputs.pattern, "metadata": self.inputs.metadata,
                               "channel": self.inputs.channel}
        if self.inputs.planes is not None:
            inp["planes"] = list(self.inputs.planes)
        if self.inputs.label_images != "skip":  # only when set, so the hash of older pipelines stays
            inp["label_images"] = self.inputs.label_images
        if self.inputs.plane is not None:
            inp["plane"] = self.inputs.plane
        if self.inputs.channels is not None:
            c = self.inputs.channels
            inp["channels"] = {"by": c.by, "names": dict(c.names),
                               "group_by": None if c.group_by is None else list(c.group_by),
                               "incomplete": c.incomplete}
        return {"name": self.name, "inputs": inp, "steps": [_step_dict(s) for s in self.steps],
                "outputs": {"tables": list(self.outputs.tables), "labels": self.outputs.labels,
                            "overlays": self.outputs.overlays, "catalog": self.outputs.catalog}}

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML (what ``RUN_DIR/pipeline.yaml`` holds)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=110)

    def processing_dict(self, models: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What decides the results of one image set: the steps, the channel grouping, the per-set outputs
        and the models' weights (``models``: reference -> SHA-256). The file list is not part of it, so
        new images can be added to a run; see :meth:`hash`."""
        d = self.to_dict()
        models = dict(models or {})
        steps = []
        for s in d["steps"]:
            (kind, opts), = s.items()
            opts = dict(opts)
            if "model" in opts and opts["model"] != OBJECT_COUNT:
                opts["model"] = models.get(opts["model"], opts["model"])
            steps.append({kind: opts})
        inp = d["inputs"]
        return {"schema": SPEC_SCHEMA, "steps": steps,
                "grouping": {k: inp.get(k) for k in ("pattern", "channels", "planes", "channel", "plane")
                             if k != "plane" or inp.get(k) is not None},
                "per_set_outputs": {"labels": self.outputs.labels, "overlays": self.outputs.overlays}}

    def hash(self, models: Mapping[str, str] | None = None) -> str:
        """SHA-256 of :meth:`processing_dict`: equal hashes give equal results for equal inputs.

        Examples
        --------
        >>> p = Pipeline.from_dict({"inputs": {"paths": ["/d"]}, "steps": [{"segment": {"model": "otsu-watershed"}}]})
        >>> q = Pipeline.from_dict({"inputs": {"paths": ["/e"]}, "steps": [{"segment": {"model": "otsu-watershed"}}]})
        >>> p.hash() == q.hash(), len(p.hash())
        (True, 64)
        """
        text = json.dumps(self.processing_dict(models), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>", base_dir: str | os.PathLike[str] | None = None,
                  marks: Marks | None = None) -> Pipeline:
        """Validate a dict (as read from YAML) into a :class:`Pipeline`.

        Parameters
        ----------
        data : dict
            The spec.
        source : str
            Name for messages (the YAML file).
        base_dir : str or PathLike, optional
            Folder that relative paths (inputs, sidecar, model folders, catalog) are relative to;
            default the current folder.
        marks : Marks, optional
            Line numbers (from :func:`load_pipeline`), so errors name the line.

        Raises
        ------
        deepscope.errors.ConfigError
            An unknown key, a wrong type or value, a step that refers to a channel or object set
            that does not exist (yet), or a name used twice; the message names the key and line.
        """
        r = _Reader(marks or Marks({}, source), Path(base_dir) if base_dir is not None else Path.cwd())
        return r.pipeline(data, source=None if source.startswith("<") else source)


def load_pipeline(source: str | os.PathLike[str]) -> Pipeline:
    """Read and validate a pipeline YAML file.

    Parameters
    ----------
    source : str or PathLike
        Path of a ``.yaml``/``.yml`` file. Relative paths inside it are relative to its folder.

    Returns
    -------
    Pipeline

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    deepscope.errors.ConfigError
        If it is not valid YAML or not a valid pipeline (the message names the key and the line).
    deepscope.errors.LimitError
        If the file is over ``limits().yaml_bytes`` or expands (aliases of aliases) to over
        ``limits().yaml_nodes`` nodes.
    deepscope.errors.InputError
        If the path is a folder, a device or a pipe rather than a file.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "p.yaml")
    >>> _ = open(p, "w").write("inputs: {paths: [images]}\\nsteps:\\n  - segment: {modle: nuclei}\\n")
    >>> load_pipeline(p)
    Traceback (most recent call last):
    ...
    deepscope.errors.ConfigError: ...p.yaml, line 3: steps[0].segment.modle: unknown key; ... (did you mean 'model'?)
    """
    from deepscope.io.yamlsafe import read_yaml_file

    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"No such pipeline file: '{p}'")
    text = read_yaml_file(p, what="pipeline file")  # a regular file within limits().yaml_bytes
    data, marks = load_with_marks(text, source=str(p))
    return Pipeline.from_dict(data, source=str(p), base_dir=p.parent.resolve(), marks=marks)


# ---------------------------------------------------------------------------------------------- helpers
def _step_dict(s: Step) -> dict[str, Any]:
    if isinstance(s, NormalizeStep):
        opts: dict[str, Any] = {"channels": list(s.channels), "low": s.low, "high": s.high, "clip": s.clip}
    elif isinstance(s, SegmentStep):
        opts = {"objects": s.objects, "channel": s.channel, "model": s.model, "tile": s.tile,
                "overlap": s.overlap, "tta": s.tta, "options": dict(s.options)}
        if s.diameter is not None:
            opts["diameter"] = s.diameter
        if s.backend is not None:  # only when given: the hash of a pipeline without it is unchanged
            opts["backend"] = s.backend
    elif isinstance(s, CountStep):
        opts = {"name": s.name, "model": s.model, "channel": s.channel, "objects": s.objects}
    elif isinstance(s, ModelStep):
        opts = {"model": s.model, "channel": s.channel, "objects": s.objects, "into": s.into,
                "options": dict(s.options)}
    elif isinstance(s, RelateStep):
        opts = {"parents": s.parents, "children": s.children}
    elif isinstance(s, MeasureStep):
        opts = {"objects": list(s.objects), "channels": list(s.channels), "pixel_size": s.pixel_size}
    else:
        where: Any = s.where if isinstance(s.where, str) else {k: list(v) for k, v in s.where.items()}
        opts = {"objects": s.objects, "where": where, "into": s.into}
    return {s.kind: opts}


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _type_name(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "an integer",
            float: "a number", type(None): "nothing (null)"}.get(type(v), type(v).__name__)


class _Reader:
    """Validation with messages ``<file>, line <n>: <key path>: <problem>``."""

    def __init__(self, marks: Marks, base_dir: Path) -> None:
        self.marks = marks
        self.base = base_dir

    # ------------------------------------------------------------------ primitives
    def fail(self, path: tuple[Any, ...], msg: str) -> NoReturn:
        raise ConfigError(f"{self.marks.where(path)}: {_dotted(path)}: {msg}")

    def mapping(self, v: Any, path: tuple[Any, ...], allowed: tuple[str, ...], *, required: tuple[str, ...] = ()
                ) -> dict[str, Any]:
        if v is None:
            v = {}
        if not isinstance(v, dict):
            self.fail(path, f"expected a mapping with keys {', '.join(allowed)}; got {_type_name(v)} {v!r}")
        for k in v:
            if not isinstance(k, str) or k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(path + (k,), f"unknown key; valid keys here are {', '.join(allowed)}{hint}")
        for k in required:
            if v.get(k) is None:
                self.fail(path, f"missing required key {k!r}")
        return v

    def text(self, v: Any, path: tuple[Any, ...]) -> str:
        if not isinstance(v, str) or not v.strip():
            self.fail(path, f"expected non-empty text; got {_type_name(v)} {v!r}")
        return v

    def name(self, v: Any, path: tuple[Any, ...], what: str) -> str:
        if not isinstance(v, str) or not _NAME_RE.match(v):
            self.fail(path, f"{what} {v!r} is not a valid name: use letters, digits and underscores, starting "
                            "with a letter (it becomes part of column names such as Count_Nuclei)")
        return v

    def texts(self, v: Any, path: tuple[Any, ...]) -> tuple[str, ...]:
        if isinstance(v, str):
            return (self.text(v, path),)
        if not isinstance(v, list):
            self.fail(path, f"expected text or a list of text; got {_type_name(v)} {v!r}")
        return tuple(self.text(x, path + (i,)) for i, x in enumerate(v))

    def boolean(self, v: Any, path: tuple[Any, ...]) -> bool:
        if not isinstance(v, bool):
            self.fail(path, f"expected true or false; got {_type_name(v)} {v!r}")
        return v

    def integer(self, v: Any, path: tuple[Any, ...], *, minimum: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            self.fail(path, f"expected an integer >= {minimum}; got {_type_name(v)} {v!r}")
        return v

    def number(self, v: Any, path: tuple[Any, ...], *, lo: float | None = None, hi: float | None = None,
               positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            self.fail(path, f"expected a number; got {_type_name(v)} {v!r}")
        if positive and v <= 0:
            self.fail(path, f"expected a number > 0; got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.fail(path, f"expected a number in [{lo}, {hi}]; got {v!r}")
        return float(v)

    def choice(self, v: Any, path: tuple[Any, ...], options: tuple[str, ...]) -> str:
        if v not in options:
            self.fail(path, f"{v!r} is not one of {', '.join(options)}")
        return str(v)

    def path(self, v: Any, path: tuple[Any, ...]) -> str:
        s = os.path.expanduser(self.text(v, path))
        return s if os.path.isabs(s) else str(self.base / s)

    # ------------------------------------------------------------------ sections
    def pipeline(self, data: Any, *, source: str | None) -> Pipeline:
        top = self.mapping(data, (), ("name", "version", "inputs", "steps", "outputs"), required=("inputs",))
        if "version" in top and top["version"] != 1:
            self.fail(("version",), f"this deepscope reads pipeline version 1; got {top['version']!r}")
        name = self.text(top["name"], ("name",)) if top.get("name") is not None else (
            Path(source).stem if source else "pipeline")
        inputs = self.inputs(top["inputs"])
        steps_raw = top.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            self.fail(("steps",), "expected a non-empty list of steps, e.g. '- segment: {model: nuclei}'; "
                                  f"got {_type_name(steps_raw)}")
        steps = self.steps(steps_raw, inputs)
        outputs = self.outputs(top.get("outputs"))
        return Pipeline(inputs=inputs, steps=steps, outputs=outputs, name=name, source=source)

    def inputs(self, v: Any) -> Inputs:
        p = ("inputs",)
        if isinstance(v, (str, list)):
            v = {"paths": v}
        d = self.mapping(v, p, ("paths", "include", "exclude", "recursive", "pattern", "metadata", "channels",
                                "planes", "channel", "plane", "label_images"), required=("paths",))
        paths_raw = d["paths"] if isinstance(d["paths"], list) else [d["paths"]]
        if not paths_raw:
            self.fail(p + ("paths",), "expected at least one folder, file or glob")
        paths = tuple(self.path(x, p + ("paths", i) if isinstance(d["paths"], list) else p + ("paths",))
                      for i, x in enumerate(paths_raw))
        include = self.texts(d["include"], p + ("include",)) if d.get("include") is not None else ()
        exclude = self.texts(d["exclude"], p + ("exclude",)) if d.get("exclude") is not None else ()
        recursive = self.boolean(d["recursive"], p + ("recursive",)) if "recursive" in d else False
        pattern = None
        if d.get("pattern") is not None:
            pattern = self.text(d["pattern"], p + ("pattern",))
            from deepscope.io import get_pattern

            try:
                get_pattern(pattern)
            except ValueError as exc:
                self.fail(p + ("pattern",), str(exc))
        metadata = self.path(d["metadata"], p + ("metadata",)) if d.get("metadata") is not None else None
        channel = self.name(d["channel"], p + ("channel",), "channel") if d.get("channel") is not None else "Image"
        planes = None
        if d.get("planes") is not None:
            raw = d["planes"]
            if not isinstance(raw, list) or not raw:
                self.fail(p + ("planes",), f"expected a list of channel names, one per plane; got {raw!r}")
            planes = tuple(self.name(x, p + ("planes", i), "channel") for i, x in enumerate(raw))
            if len(set(planes)) != len(planes):
                self.fail(p + ("planes",), f"channel names must differ; got {list(planes)}")
        plane = self.integer(d["plane"], p + ("plane",), minimum=0) if d.get("plane") is not None else None
        if plane is not None and planes is not None:
            self.fail(p + ("plane",), "give inputs.planes (name every channel inside each file) or inputs.plane "
                                      "(take one of them), not both")
        channels = None
        if d.get("channels") is not None:
            channels = self.grouping(d["channels"], pattern, metadata)
            if planes is not None:
                self.fail(p + ("planes",), "give inputs.channels (one file per channel) or inputs.planes "
                                           "(channels inside each file), not both")
        label_images = "skip"
        if d.get("label_images") is not None:
            from deepscope.io.discover import LABEL_IMAGES

            label_images = self.text(d["label_images"], p + ("label_images",))
            if label_images not in LABEL_IMAGES:
                self.fail(p + ("label_images",), f"expected one of {', '.join(LABEL_IMAGES)}; got {label_images!r}")
        return Inputs(paths=paths, include=include, exclude=exclude, recursive=recursive, pattern=pattern,
                      metadata=metadata, channels=channels, planes=planes, channel=channel, plane=plane,
                      label_images=label_images)

    def grouping(self, v: Any, pattern: str | None, metadata: str | None) -> ChannelGrouping:
        p = ("inputs", "channels")
        d = self.mapping(v, p, ("by", "names", "group_by", "incomplete"), required=("by", "names"))
        if pattern is None and metadata is None:
            self.fail(p, "grouping channels needs metadata to group by: give inputs.pattern (file-name "
                         "pattern) or inputs.metadata (CSV sidecar)")
        by = self.text(d["by"], p + ("by",))
        raw = d["names"]
        if isinstance(raw, list):
            raw = {x: x for x in raw}
        if not isinstance(raw, dict) or not raw:
            self.fail(p + ("names",), "expected a mapping of metadata value -> channel name, e.g. "
                                      f"{{1: DNA, 2: Cells}}; got {_type_name(raw)} {raw!r}")
        names: dict[str, str] = {}
        for k, name in raw.items():
            names[str(k)] = self.name(name, p + ("names", k), "channel")
        if len(set(names.values())) != len(names):
            self.fail(p + ("names",), f"each value needs its own channel name; got {names}")
        group_by = None
        if d.get("group_by") is not None:
            group_by = self.texts(d["group_by"], p + ("group_by",))
            if by in group_by:
                self.fail(p + ("group_by",), f"{by!r} names the channel, so it cannot also identify the field")
        incomplete = self.choice(d.get("incomplete", "error"), p + ("incomplete",), INCOMPLETE_MODES)
        return ChannelGrouping(by=by, names=names, group_by=group_by, incomplete=incomplete)

    def outputs(self, v: Any) -> Outputs:
        p = ("outputs",)
        d = self.mapping(v, p, ("tables", "labels", "overlays", "catalog"))
        tables = TABLE_FORMATS
        if d.get("tables") is not None:
            tables = self.texts(d["tables"], p + ("tables",))
            for i, t in enumerate(tables):
                self.choice(t, p + ("tables", i) if isinstance(d["tables"], list) else p + ("tables",),
                            TABLE_FORMATS)
            tables = tuple(dict.fromkeys(tables))
        labels = self.boolean(d["labels"], p + ("labels",)) if "labels" in d else True
        overlays = self.boolean(d["overlays"], p + ("overlays",)) if "overlays" in d else False
        catalog = None
        if d.get("catalog") is not None:
            c = self.text(d["catalog"], p + ("catalog",))
            catalog = c if "://" in c else self.path(c, p + ("catalog",))
        return Outputs(tables=tables, labels=labels, overlays=overlays, catalog=catalog)

    # ------------------------------------------------------------------ steps
    def steps(self, raw: list[Any], inputs: Inputs) -> tuple[Step, ...]:
        channels = list(inputs.channel_names)
        objects: dict[str, int] = {}  # name -> step index that made it
        measured: set[str] = set()
        count_names: dict[str, int] = {}
        out: list[Step] = []
        for i, item in enumerate(raw):
            p: tuple[Any, ...] = ("steps", i)
            if not isinstance(item, dict) or len(item) != 1:
                self.fail(p, "each step is a mapping with one key, the step kind "
                             f"({', '.join(STEP_KINDS)}), e.g. '- segment: {{model: nuclei}}'; got {item!r}")
            (kind, opts), = item.items()
            kind_s = "normalize" if kind == "normalise" else kind
            if kind_s not in STEP_KINDS:
                close = difflib.get_close_matches(str(kind), STEP_KINDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(p + (kind,), f"unknown step kind; valid kinds are {', '.join(STEP_KINDS)}{hint}")
            p = p + (kind,)

            def channel_ref(value: Any, where: tuple[Any, ...]) -> str:
                if value not in channels:
                    self.fail(where, f"no channel {value!r}; the image sets have channels {', '.join(channels)}")
                return str(value)

            def objects_ref(value: Any, where: tuple[Any, ...]) -> str:
                if value not in objects:
                    made = ", ".join(objects) or "none yet"
                    self.fail(where, f"no object set {value!r} made by an earlier step (made so far: {made}); "
                                     "segment it first")
                return str(value)

            def new_objects(value: Any, where: tuple[Any, ...]) -> str:
                nm = self.name(value, where, "object set")
                if nm in objects:
                    self.fail(where, f"object set {nm!r} is already made by step {objects[nm]}; give this one "
                                     "another name")
                if nm in count_names:
                    self.fail(where, f"{nm!r} is already the name of count step {count_names[nm]} "
                                     f"(column Count_{nm}); give one of them another name")
                objects[nm] = i
                return nm

            step: Step
            if kind_s == "normalize":
                d = self.mapping(opts, p, ("channels", "low", "high", "clip"))
                chans = (tuple(channel_ref(c, p + ("channels",)) for c in self.texts(d["channels"], p + ("channels",)))
                         if d.get("channels") is not None else tuple(channels))
                low = self.number(d.get("low", 1.0), p + ("low",), lo=0, hi=100)
                high = self.number(d.get("high", 99.8), p + ("high",), lo=0, hi=100)
                if low >= high:
                    self.fail(p + ("high",), f"high ({high}) must be above low ({low})")
                clip = self.boolean(d["clip"], p + ("clip",)) if "clip" in d else False
                step = NormalizeStep(channels=chans, low=low, high=high, clip=clip)
            elif kind_s == "segment":
                d = self.mapping(opts, p, ("objects", "channel", "model", "tile", "overlap", "tta", "options",
                                           "diameter", "backend"))
                chan = channel_ref(d["channel"], p + ("channel",)) if d.get("channel") is not None else channels[0]
                model = self.model_ref(d.get("model", "nuclei"), p + ("model",), task="segment")
                tile = self.integer(d["tile"], p + ("tile",), minimum=64) if d.get("tile") is not None else None
                overlap = (self.integer(d["overlap"], p + ("overlap",), minimum=0)
                           if d.get("overlap") is not None else None)
                tta = self.choice(d.get("tta", "none"), p + ("tta",), _TTA)
                diameter = (self.number(d["diameter"], p + ("diameter",), lo=1, hi=10000)
                            if d.get("diameter") is not None else None)
                if diameter is not None and model == "otsu-watershed":
                    self.fail(p + ("diameter",), f"diameter is for the generalist models "
                                                 f"({', '.join(generalist_models()) or 'none shipped'}); "
                                                 "otsu-watershed takes its settings from options")
                backend = None
                if d.get("backend") is not None:
                    from deepscope.predict.backends import BACKENDS

                    backend = self.choice(d["backend"], p + ("backend",), BACKENDS)
                    if model in CLASSICAL_SEGMENTERS:
                        self.fail(p + ("backend",), f"backend is for trained models; {model} runs no network")
                options = d.get("options") or {}
                if not isinstance(options, dict):
                    self.fail(p + ("options",), f"expected a mapping of options; got {_type_name(options)}")
                if options and model != "otsu-watershed":
                    self.fail(p + ("options",), "options are for model: otsu-watershed; a trained model takes "
                                                "its settings from its model card")
                for k in options:
                    if k not in _OTSU_OPTIONS:
                        self.fail(p + ("options", k), f"unknown option of otsu-watershed; valid options are "
                                                      f"{', '.join(_OTSU_OPTIONS)}")
                if d.get("objects") is None and "Nuclei" in objects:
                    self.fail(p, f"missing key 'objects': name the object set this step makes ('Nuclei' is "
                                 f"already made by step {objects['Nuclei']})")
                objs = new_objects(d.get("objects", "Nuclei"), p + ("objects",))
                step = SegmentStep(objects=objs, channel=chan, model=model, tile=tile, overlap=overlap, tta=tta,
                                   options=dict(options), diameter=diameter, backend=backend)
            elif kind_s == "count":
                d = self.mapping(opts, p, ("name", "model", "channel", "objects"))
                model = d.get("model", OBJECT_COUNT)
                if model == OBJECT_COUNT:
                    if d.get("channel") is not None:
                        self.fail(p + ("channel",), "model: objects counts segmented objects and reads no channel")
                    default = list(objects)[-1] if objects else None
                    if d.get("objects", default) is None:
                        self.fail(p, "model: objects counts a segmented object set, but none is made before this "
                                     "step; segment first or give a count model (model: count-bbbc005)")
                    objs = objects_ref(d.get("objects", default), p + ("objects",))
                    nm = self.name(d.get("name", objs), p + ("name",), "count name")
                    if nm != objs:
                        self.fail(p + ("name",), f"the count of {objs!r} is the column Count_{objs}; leave out name")
                    step = CountStep(name=nm, model=OBJECT_COUNT, objects=objs)
                else:
                    if d.get("objects") is not None:
                        self.fail(p + ("objects",), "objects is for model: objects; a count model reads a channel")
                    model = self.model_ref(model, p + ("model",), task="count")
                    chan = (channel_ref(d["channel"], p + ("channel",)) if d.get("channel") is not None
                            else channels[0])
                    nm = self.name(d.get("name", "Cells"), p + ("name",), "count name")
                    if nm in objects or nm in count_names:
                        self.fail(p + ("name",), f"Count_{nm} would clash with the object set or count {nm!r} made "
                                                 "earlier; give this count another name")
                    count_names[nm] = i
                    step = CountStep(name=nm, model=model, channel=chan)
            elif kind_s == "model":
                d = self.mapping(opts, p, ("model", "channel", "objects", "into", "options"), required=("model",))
                model = self.model_ref(d["model"], p + ("model",), task=None)
                chan = channel_ref(d["channel"], p + ("channel",)) if d.get("channel") is not None else channels[0]
                if (d.get("objects") is None) == (d.get("into") is None):
                    self.fail(p, "a model step keeps its result as an object set (objects: NAME, for a model whose "
                                 "result has labels) or as a channel (into: NAME, for one whose result is an image); "
                                 "give one of them")
                options = d.get("options") or {}
                if not isinstance(options, dict):
                    self.fail(p + ("options",), f"expected a mapping of the task's options; got {_type_name(options)}")
                into = None
                if d.get("into") is not None:
                    into = self.name(d["into"], p + ("into",), "channel")
                    if into in channels:
                        self.fail(p + ("into",), f"channel {into!r} already exists; give the new channel another name")
                    channels.append(into)
                objs_m = new_objects(d["objects"], p + ("objects",)) if d.get("objects") is not None else None
                step = ModelStep(model=model, channel=chan, objects=objs_m, into=into, options=dict(options))
            elif kind_s == "relate":
                d = self.mapping(opts, p, ("parents", "children"), required=("parents", "children"))
                par = objects_ref(d["parents"], p + ("parents",))
                chi = objects_ref(d["children"], p + ("children",))
                if par == chi:
                    self.fail(p + ("children",), "parents and children must be different object sets")
                step = RelateStep(parents=par, children=chi)
            elif kind_s == "measure":
                d = self.mapping(opts, p, ("objects", "channels", "pixel_size"))
                objs_t = (tuple(objects_ref(o, p + ("objects",)) for o in self.texts(d["objects"], p + ("objects",)))
                          if d.get("objects") is not None else tuple(objects))
                if not objs_t:
                    self.fail(p, "nothing to measure: segment objects in an earlier step")
                chans = (tuple(channel_ref(c, p + ("channels",)) for c in self.texts(d["channels"], p + ("channels",)))
                         if d.get("channels") is not None else tuple(channels))
                ps: float | str | None = None
                if d.get("pixel_size") == "files":
                    ps = "files"
                elif d.get("pixel_size") is not None:
                    ps = self.number(d["pixel_size"], p + ("pixel_size",), positive=True)
                measured.update(objs_t)
                step = MeasureStep(objects=objs_t, channels=chans, pixel_size=ps)
            else:  # filter
                d = self.mapping(opts, p, ("objects", "where", "into"), required=("objects", "where"))
                objs = objects_ref(d["objects"], p + ("objects",))
                if objs not in measured:
                    self.fail(p + ("objects",), f"filtering {objs!r} needs its measurements: add a measure step "
                                                "for it before this one")
                where = self.where(d["where"], p + ("where",))
                into = new_objects(d["into"], p + ("into",)) if d.get("into") is not None else None
                if into is not None:
                    measured.add(into)
                step = FilterStep(objects=objs, where=where, into=into)
            out.append(step)
        return tuple(out)

    def where(self, v: Any, p: tuple[Any, ...]) -> str | dict[str, tuple[float | None, float | None]]:
        if isinstance(v, str):
            from deepscope.errors import InputError
            from deepscope.measure.expr import parse_filter

            text = self.text(v, p)
            try:  # parsed here, so a filter outside the language never reaches a worker
                parse_filter(text)
            except InputError as exc:
                self.fail(p, f"{exc} (see the filter grammar in docs/pipelines.md)")
            return text
        if not isinstance(v, dict) or not v:
            self.fail(p, "expected a filter such as 'AreaShape_Area > 50' or a mapping column -> [min, max]; "
                         f"got {_type_name(v)} {v!r}")
        out: dict[str, tuple[float | None, float | None]] = {}
        for col, b in v.items():
            if not isinstance(b, list) or len(b) != 2:
                self.fail(p + (col,), f"expected [min, max] (null for an open end); got {b!r}")
            lo = None if b[0] is None else self.number(b[0], p + (col,))
            hi = None if b[1] is None else self.number(b[1], p + (col,))
            out[str(col)] = (lo, hi)
        return out

    def model_ref(self, v: Any, p: tuple[Any, ...], *, task: str | None) -> str:
        s = self.text(v, p)
        if task == "segment" and s in CLASSICAL_SEGMENTERS:
            return s
        looks_like_path = "/" in s or os.sep in s or s.endswith((".json", ".safetensors")) or s.startswith(".")
        if looks_like_path:
            full = self.path(s, p)
            if not os.path.exists(full):
                self.fail(p, f"no model folder or file at '{full}'; give a shipped model name, a training run "
                             "folder (model.json + model.safetensors) or a .json model card")
            return full
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", s):
            self.fail(p, f"{s!r} is neither a model name nor a path")
        zoo = zoo_dir()
        card = zoo / f"{s}.json"
        if not card.is_file():
            shipped = sorted(c.stem for c in zoo.glob("*.json"))
            extra = (f", {', '.join(CLASSICAL_SEGMENTERS)}" if task == "segment" else f" or {OBJECT_COUNT}"
                     if task == "count" else "")
            self.fail(p, f"unknown model {s!r}; shipped models are {', '.join(shipped) or 'none (yet)'}{extra}, "
                         "or give the path of a model folder or .json card")
        try:
            card_task = json.loads(card.read_text()).get("task")
        except (OSError, ValueError):
            card_task = None
        if task is not None and card_task is not None and card_task != task:
            self.fail(p, f"model {s!r} is a {card_task} model; this step needs a {task} model")
        return s


def generalist_models() -> list[str]:
    """The shipped generalist segmenters (those that rescale images to their object size and take a
    ``diameter``): zoo cards whose output has a ``target_diameter``, read without importing torch."""
    out = []
    for card in sorted(zoo_dir().glob("*.json")):
        try:
            d = json.loads(card.read_text())
        except (OSError, ValueError):
            continue
        if d.get("task") == "segment" and "target_diameter" in (d.get("output") or {}):
            out.append(str(d.get("name") or card.stem))
    return out


def zoo_dir() -> Path:
    """Folder of the shipped models, found without importing :mod:`deepscope.models` (which imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("deepscope.models")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - broken install
        raise ConfigError("deepscope.models is not installed; reinstall deepscope")
    return Path(list(spec.submodule_search_locations)[0]) / "zoo"
