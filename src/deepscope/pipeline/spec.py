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

The generic steps (``normalize``, ``model``, ``relate``, ``measure``, ``filter``) are defined here; a task's own
step (``segment``, ``count``, ...) is defined and parsed by its task package and found through the task registry
(the ``pipeline_step`` of its plugins, :func:`task_steps`), so this module knows no task. Importing it imports
no task package (nor torch): the registry is read when a spec names a step that is not generic.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn, Union

from deepscope.errors import ConfigError
from deepscope.pipeline._yaml import Marks, load_with_marks

if TYPE_CHECKING:
    from deepscope.tasks.contracts import PipelineStep

__all__ = [
    "SPEC_SCHEMA", "GENERIC_STEP_KINDS", "TABLE_FORMATS", "INCOMPLETE_MODES", "ChannelGrouping", "Inputs", "Outputs",
    "NormalizeStep", "ModelStep", "RelateStep", "MeasureStep", "FilterStep", "Step", "Pipeline", "load_pipeline",
    "step_kinds", "task_steps",
]

#: Schema tag written with every resolved pipeline (and part of its hash).
SPEC_SCHEMA = "deepscope.pipeline/1"
#: The step kinds of every pipeline, whatever the tasks (``normalise`` is accepted for ``normalize``); the tasks'
#: own (``segment``, ``count``, ...) come from the task registry (:func:`step_kinds`).
GENERIC_STEP_KINDS = ("normalize", "model", "relate", "measure", "filter")
#: Table formats of ``outputs.tables``.
TABLE_FORMATS = ("parquet", "csv")
#: What to do with image sets that lack a channel (``inputs.channels.incomplete``).
INCOMPLETE_MODES = ("error", "skip")

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def task_steps() -> dict[str, Any]:
    """Step kind -> the step class of the registered task that owns it (``segment`` -> ``SegmentStep`` ...).

    A task plugin names its step class in ``pipeline_step`` (:class:`deepscope.models.plugins.TaskPlugin`; the
    contract is :class:`deepscope.tasks.contracts.PipelineStep`); reading them imports the registered tasks.

    Raises
    ------
    deepscope.errors.ConfigError
        Two tasks give one step kind, or a task gives a generic one.
    """
    from deepscope.models.plugins import get_task, list_tasks

    out: dict[str, Any] = {}
    for task, rep in list_tasks():
        cls = get_task(task, rep).pipeline_step
        if cls is None:
            continue
        kind = str(cls.kind)
        if kind in GENERIC_STEP_KINDS or out.get(kind, cls) is not cls:
            raise ConfigError(f"task plugin {task}/{rep} gives the pipeline step {kind!r}, which "
                              f"{'every pipeline has' if kind in GENERIC_STEP_KINDS else 'another task gives'}; "
                              "give the step another kind")
        out[kind] = cls
    return out


def step_kinds() -> tuple[str, ...]:
    """Every step kind a pipeline may have, in the order the docs list them: ``normalize``, the tasks' own steps,
    then ``model``, ``relate``, ``measure`` and ``filter``."""
    return (GENERIC_STEP_KINDS[0], *task_steps(), *GENERIC_STEP_KINDS[1:])


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
    axes : str or None
        Z-stacks (a pipeline with a 3D segment step, ``segment: {volume: classical}``): axis letters overriding the
        files' (``ZYX`` for plain multi-page TIFFs of optical sections; ``ZCYX`` ...).
    voxel_size : (float, float, float) or None
        Z-stacks: ``(z, y, x)`` in micrometres, overriding the files'.
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
    axes: str | None = None
    voxel_size: tuple[float, float, float] | None = None

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


#: A step: a generic one, or a task's own (:class:`deepscope.tasks.contracts.PipelineStep`).
Step = Union[NormalizeStep, ModelStep, RelateStep, MeasureStep, FilterStep, "PipelineStep"]
_GENERIC_STEPS = (NormalizeStep, ModelStep, RelateStep, MeasureStep, FilterStep)


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
            made = s.objects if isinstance(s, ModelStep) else s.into if isinstance(s, FilterStep) else (
                None if isinstance(s, _GENERIC_STEPS) else s.made_objects)
            if made:
                out.append(made)
        return tuple(out)

    @property
    def time_lapse(self) -> bool:
        """Whether a step reads the image sets as time-lapses (T x Y x X channels: a ``track`` step): the pages of a
        plain multi-page TIFF are then its frames, not its channels."""
        return any(getattr(s, "time_lapse", False) for s in self.steps)

    @property
    def z_stack(self) -> bool:
        """Whether a step reads the image sets as z-stacks (Z x Y x X channels: a 3D segment step, ``volume:``)."""
        return any(getattr(s, "z_stack", False) for s in self.steps)

    @property
    def model_refs(self) -> tuple[str, ...]:
        """Every model the steps use (shipped names, paths, ``otsu-watershed``), once each."""
        refs: list[str] = []
        for s in self.steps:
            if isinstance(s, ModelStep):
                refs.append(s.model)
            elif not isinstance(s, _GENERIC_STEPS):
                refs.extend(s.model_refs)
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
        if self.inputs.axes is not None:  # z-stacks only, so older pipelines hash as before
            inp["axes"] = self.inputs.axes
        if self.inputs.voxel_size is not None:
            inp["voxel_size"] = list(self.inputs.voxel_size)
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
            if isinstance(opts.get("model"), str) and opts["model"] in models:
                opts["model"] = models[opts["model"]]
            steps.append({kind: opts})
        inp = d["inputs"]
        return {"schema": SPEC_SCHEMA, "steps": steps,
                "grouping": {k: inp.get(k) for k in ("pattern", "channels", "planes", "channel", "plane", "axes",
                                                     "voxel_size")
                             if k not in ("plane", "axes", "voxel_size") or inp.get(k) is not None},
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
    elif isinstance(s, ModelStep):
        opts = {"model": s.model, "channel": s.channel, "objects": s.objects, "into": s.into,
                "options": dict(s.options)}
    elif isinstance(s, RelateStep):
        opts = {"parents": s.parents, "children": s.children}
    elif isinstance(s, MeasureStep):
        opts = {"objects": list(s.objects), "channels": list(s.channels), "pixel_size": s.pixel_size}
    elif not isinstance(s, FilterStep):  # a task's own step
        opts = s.to_dict()
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
                                "planes", "channel", "plane", "label_images", "axes", "voxel_size"), required=("paths",))
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
        axes = None
        if d.get("axes") is not None:
            from deepscope.io import AXES_LETTERS

            axes = self.text(d["axes"], p + ("axes",)).upper()
            if "Z" not in axes or not set(axes) <= set(AXES_LETTERS) or len(set(axes)) != len(axes):
                self.fail(p + ("axes",), f"expected the axis letters of z-stack files with a Z, e.g. ZYX or ZCYX; got "
                                         f"{d['axes']!r}")
        voxel_size = None
        if d.get("voxel_size") is not None:
            raw_vs = d["voxel_size"]
            if not isinstance(raw_vs, list) or len(raw_vs) != 3:
                self.fail(p + ("voxel_size",), f"expected [z, y, x] in micrometres; got {raw_vs!r}")
            vz, vy, vx = (self.number(x, p + ("voxel_size", i), positive=True) for i, x in enumerate(raw_vs))
            voxel_size = (vz, vy, vx)
        return Inputs(paths=paths, include=include, exclude=exclude, recursive=recursive, pattern=pattern,
                      metadata=metadata, channels=channels, planes=planes, channel=channel, plane=plane,
                      label_images=label_images, axes=axes, voxel_size=voxel_size)

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
        tasks: dict[str, Any] | None = None  # step kind -> a task's step class, read from the registry when needed
        out: list[Step] = []
        for i, item in enumerate(raw):
            p: tuple[Any, ...] = ("steps", i)
            if not isinstance(item, dict) or len(item) != 1:
                self.fail(p, "each step is a mapping with one key, the step kind "
                             f"({', '.join(step_kinds())}), e.g. '- segment: {{model: nuclei}}'; got {item!r}")
            (kind, opts), = item.items()
            kind_s = "normalize" if kind == "normalise" else kind
            if kind_s not in GENERIC_STEP_KINDS:
                if tasks is None:
                    tasks = task_steps()
                if kind_s not in tasks:
                    kinds = step_kinds()
                    close = difflib.get_close_matches(str(kind), kinds, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    self.fail(p + (kind,), f"unknown step kind; valid kinds are {', '.join(kinds)}{hint}")
            p = p + (kind,)

            r = _StepReader(self, p, i, channels, objects, count_names)
            step: Step
            if kind_s == "normalize":
                d = self.mapping(opts, p, ("channels", "low", "high", "clip"))
                chans = (tuple(r.channel(c, p + ("channels",)) for c in self.texts(d["channels"], p + ("channels",)))
                         if d.get("channels") is not None else tuple(channels))
                low = self.number(d.get("low", 1.0), p + ("low",), lo=0, hi=100)
                high = self.number(d.get("high", 99.8), p + ("high",), lo=0, hi=100)
                if low >= high:
                    self.fail(p + ("high",), f"high ({high}) must be above low ({low})")
                clip = self.boolean(d["clip"], p + ("clip",)) if "clip" in d else False
                step = NormalizeStep(channels=chans, low=low, high=high, clip=clip)
            elif kind_s == "model":
                d = self.mapping(opts, p, ("model", "channel", "objects", "into", "options"), required=("model",))
                model = self.model_ref(d["model"], p + ("model",), task=None)
                chan = r.channel(d.get("channel"), p + ("channel",))
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
                objs_m = r.new_objects(d["objects"], p + ("objects",)) if d.get("objects") is not None else None
                step = ModelStep(model=model, channel=chan, objects=objs_m, into=into, options=dict(options))
            elif kind_s == "relate":
                d = self.mapping(opts, p, ("parents", "children"), required=("parents", "children"))
                par = r.existing_objects(d["parents"], p + ("parents",))
                chi = r.existing_objects(d["children"], p + ("children",))
                if par == chi:
                    self.fail(p + ("children",), "parents and children must be different object sets")
                step = RelateStep(parents=par, children=chi)
            elif kind_s == "measure":
                d = self.mapping(opts, p, ("objects", "channels", "pixel_size"))
                objs_t = (tuple(r.existing_objects(o, p + ("objects",))
                                for o in self.texts(d["objects"], p + ("objects",)))
                          if d.get("objects") is not None else tuple(objects))
                if not objs_t:
                    self.fail(p, "nothing to measure: segment objects in an earlier step")
                chans = (tuple(r.channel(c, p + ("channels",)) for c in self.texts(d["channels"], p + ("channels",)))
                         if d.get("channels") is not None else tuple(channels))
                ps: float | str | None = None
                if d.get("pixel_size") == "files":
                    ps = "files"
                elif d.get("pixel_size") is not None:
                    ps = self.number(d["pixel_size"], p + ("pixel_size",), positive=True)
                measured.update(objs_t)
                step = MeasureStep(objects=objs_t, channels=chans, pixel_size=ps)
            elif kind_s == "filter":
                d = self.mapping(opts, p, ("objects", "where", "into"), required=("objects", "where"))
                objs = r.existing_objects(d["objects"], p + ("objects",))
                if objs not in measured:
                    self.fail(p + ("objects",), f"filtering {objs!r} needs its measurements: add a measure step "
                                                "for it before this one")
                where = self.where(d["where"], p + ("where",))
                into = r.new_objects(d["into"], p + ("into",)) if d.get("into") is not None else None
                if into is not None:
                    measured.add(into)
                step = FilterStep(objects=objs, where=where, into=into)
            else:  # a task's own step, parsed by its task
                assert tasks is not None
                step = tasks[kind_s].parse(opts, r)
            out.append(step)
        movie_steps = [i for i, s in enumerate(out) if getattr(s, "time_lapse", False)]
        if movie_steps:  # every channel of an image set has one shape: these sets are movies, which 2-D steps refuse
            first = out[movie_steps[0]]
            for i, s in enumerate(out):
                if not isinstance(s, NormalizeStep) and not getattr(s, "time_lapse", False):
                    kind = next(iter(raw[i]))
                    self.fail(("steps", i, kind), f"a {s.kind} step takes 2-D images, but the {first.kind} step "
                                                  f"(step {movie_steps[0]}) reads the image sets as time-lapses "
                                                  "(T x Y x X); run 2-D steps in a pipeline of their own")
        stack_steps = [i for i, s in enumerate(out) if getattr(s, "z_stack", False)]
        if stack_steps:  # the image sets are z-stacks: only the steps that take volumes
            first_z = stack_steps[0]
            for i, s in enumerate(out):
                kind = next(iter(raw[i]))
                ok = (isinstance(s, (NormalizeStep, MeasureStep)) or getattr(s, "z_stack", False)
                      or (s.kind == "count" and not s.model_refs))
                if not ok:
                    self.fail(("steps", i, kind), f"a {s.kind} step takes 2-D images, but the 3D segment step (step "
                                                  f"{first_z}, volume:) reads the image sets as z-stacks (Z x Y x X); "
                                                  "a z-stack pipeline takes normalize, segment (volume:), count "
                                                  "(model: objects) and measure steps")
                if isinstance(s, MeasureStep) and s.pixel_size not in (None, "files"):
                    self.fail(("steps", i, kind, "pixel_size"), "z-stacks are measured with their voxel size (the "
                                                                "files', or inputs.voxel_size: [z, y, x]); leave out "
                                                                "pixel_size")
        elif inputs.axes is not None or inputs.voxel_size is not None:
            key = "axes" if inputs.axes is not None else "voxel_size"
            self.fail(("inputs", key), f"inputs.{key} is for z-stacks, read by a 3D segment step (segment: {{volume: "
                                       "classical}); this pipeline has none")
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

    def model_ref(self, v: Any, p: tuple[Any, ...], *, task: str | None, builtin: tuple[str, ...] = (),
                  also: str = "") -> str:
        """A shipped model's name or a model folder / card path (absolute), of ``task`` (None: any); names in
        ``builtin`` are taken as they are; ``also`` is added to the list of valid models in the error."""
        s = self.text(v, p)
        if s in builtin:
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
            self.fail(p, f"unknown model {s!r}; shipped models are {', '.join(shipped) or 'none (yet)'}{also}, "
                         "or give the path of a model folder or .json card")
        try:
            card_task = json.loads(card.read_text()).get("task")
        except (OSError, ValueError):
            card_task = None
        if task is not None and card_task is not None and card_task != task:
            self.fail(p, f"model {s!r} is a {card_task} model; this step needs a {task} model")
        return s


class _StepReader:
    """What a step's parser gets (:class:`deepscope.tasks.contracts.StepReader`): the step's place, what earlier
    steps made, and the spec reader's checks."""

    def __init__(self, reader: _Reader, path: tuple[Any, ...], index: int, channels: list[str],
                 objects: dict[str, int], counts: dict[str, int]) -> None:
        self.path = path
        self.index = index
        self._channels = channels
        self._objects = objects
        self._counts = counts
        self.fail = reader.fail
        self.mapping = reader.mapping
        self.text = reader.text
        self.name = reader.name
        self.texts = reader.texts
        self.boolean = reader.boolean
        self.integer = reader.integer
        self.number = reader.number
        self.choice = reader.choice
        self.model_ref = reader.model_ref

    @property
    def channels(self) -> Sequence[str]:
        return tuple(self._channels)

    @property
    def objects(self) -> Mapping[str, int]:
        return MappingProxyType(self._objects)

    @property
    def counts(self) -> Mapping[str, int]:
        return MappingProxyType(self._counts)

    @staticmethod
    def type_name(v: Any) -> str:
        return _type_name(v)

    def channel(self, value: Any, where: tuple[Any, ...]) -> str:
        if value is None:
            return self._channels[0]
        if value not in self._channels:
            self.fail(where, f"no channel {value!r}; the image sets have channels {', '.join(self._channels)}")
        return str(value)

    def existing_objects(self, value: Any, where: tuple[Any, ...]) -> str:
        if value not in self._objects:
            made = ", ".join(self._objects) or "none yet"
            self.fail(where, f"no object set {value!r} made by an earlier step (made so far: {made}); segment it "
                             "first")
        return str(value)

    def new_objects(self, value: Any, where: tuple[Any, ...]) -> str:
        nm = self.name(value, where, "object set")
        if nm in self._objects:
            self.fail(where, f"object set {nm!r} is already made by step {self._objects[nm]}; give this one another "
                             "name")
        if nm in self._counts:
            self.fail(where, f"{nm!r} is already the name of count step {self._counts[nm]} (column Count_{nm}); "
                             "give one of them another name")
        self._objects[nm] = self.index
        return nm

    def reserve_count(self, name: str) -> None:
        self._counts[name] = self.index


def zoo_dir() -> Path:
    """Folder of the shipped models, found without importing :mod:`deepscope.models` (which imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("deepscope.models")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - broken install
        raise ConfigError("deepscope.models is not installed; reinstall deepscope")
    return Path(list(spec.submodule_search_locations)[0]) / "zoo"
