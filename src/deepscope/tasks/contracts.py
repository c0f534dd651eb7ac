"""The contracts of a task, as :class:`typing.Protocol` s, in one place for task authors.

Shared code calls a task only through these, so it never needs to know which task or representation it runs:

* :class:`TaskRunner` (:mod:`deepscope.models.plugins`): ``options(model, **given)`` and ``run(model, image,
  options) -> Result`` (``run_batch`` for several images), what the file driver, pipelines, napari and the
  out-of-core path call;
* :class:`TaskOptions`: the frozen options dataclass (:class:`deepscope.tasks.options.TaskOptions` is the
  base of deepscope's own);
* :class:`TaskOutputs` (:mod:`deepscope.predict.files`): the table row and files of the one file driver
  (:class:`deepscope.tasks.files.FileOutputs` is the base of deepscope's own);
* :class:`LabelsResult` / :class:`ImageResult`: what a pipeline ``model:`` step keeps of a result (an object
  set from its ``labels``, a channel from its ``image``);
* :class:`PipelineStep` (a task's own pipeline step, such as ``segment:`` or ``count:``), read from YAML by its
  ``parse(options, reader)`` with the :class:`StepReader` the pipeline spec gives it; a plugin names its step
  class in ``pipeline_step`` (:class:`deepscope.models.plugins.TaskPlugin`), which is how
  :mod:`deepscope.pipeline.spec` finds it.

A task package (``deepscope.tasks.<task>``) gives ``Options``, ``Result``, its plugins (registered with
:func:`deepscope.models.register_task`), its training task, its file outputs and (optionally) its pipeline
step; ``tests/tasks/test_toy_task.py`` adds one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, Protocol, runtime_checkable

from deepscope.models.plugins import TaskOptions, TaskRunner
from deepscope.predict.files import TaskOutputs

__all__ = ["TaskRunner", "TaskOptions", "TaskOutputs", "LabelsResult", "ImageResult", "PipelineStep",
           "StepReader"]


@runtime_checkable
class LabelsResult(Protocol):
    """A result with instance labels (int32, 0 = background): a pipeline ``model:`` step keeps them as an object
    set (``objects: NAME``)."""

    @property
    def labels(self) -> Any: ...


@runtime_checkable
class ImageResult(Protocol):
    """A result that is an image: a pipeline ``model:`` step keeps it as a channel (``into: NAME``)."""

    @property
    def image(self) -> Any: ...


@runtime_checkable
class PipelineStep(Protocol):
    """A task's own pipeline step (``- segment: {...}``), a frozen dataclass whose class also has
    ``parse(options, reader) -> step`` (the YAML mapping of the step, validated with :class:`StepReader`).

    ``kind`` is the step's key in the YAML; ``made_objects`` the object set it makes (None: none);
    ``model_refs`` the models it runs (names, paths, built-in names such as ``otsu-watershed``);
    ``to_dict()`` its resolved options, which ``parse`` reads back (what ``RUN_DIR/pipeline.yaml`` holds and the
    pipeline's hash is made of, so an option added later is written only when it is set).

    Two optional class attributes: ``model_task``, the task of the models it runs where that is not its own (a
    ``track`` step runs segmentation models), and ``time_lapse = True`` for a step that reads its channels as movies
    (T x Y x X): a pipeline with one reads every image set so, and only ``normalize`` and such steps may be in it.
    """

    @property
    def kind(self) -> str: ...

    @property
    def made_objects(self) -> str | None: ...

    @property
    def model_refs(self) -> tuple[str, ...]: ...

    def to_dict(self) -> dict[str, Any]: ...


class StepReader(Protocol):
    """What the pipeline spec gives a step's ``parse``: the step's place, what earlier steps made, and checks whose
    errors name the file, the line and the key (``where`` is a key path such as ``reader.path + ("tile",)``)."""

    #: Key path of the step (``("steps", 2, "segment")``).
    path: tuple[Any, ...]
    #: Index of the step in the pipeline.
    index: int

    @property
    def channels(self) -> Sequence[str]:
        """The channels the step can read (the inputs' and those made by earlier steps)."""
        ...

    @property
    def objects(self) -> Mapping[str, int]:
        """Object sets made by earlier steps -> the index of the step that made each."""
        ...

    @property
    def counts(self) -> Mapping[str, int]:
        """Names of the counts (``Count_<name>`` columns) of earlier count steps -> their step index."""
        ...

    def fail(self, where: tuple[Any, ...], msg: str) -> NoReturn: ...

    def type_name(self, v: Any) -> str:
        """What a YAML value is, in words (``a mapping``, ``text``, ...), for messages."""
        ...

    def mapping(self, v: Any, where: tuple[Any, ...], allowed: tuple[str, ...], *,
                required: tuple[str, ...] = ()) -> dict[str, Any]: ...

    def text(self, v: Any, where: tuple[Any, ...]) -> str: ...

    def name(self, v: Any, where: tuple[Any, ...], what: str) -> str: ...

    def integer(self, v: Any, where: tuple[Any, ...], *, minimum: int) -> int: ...

    def number(self, v: Any, where: tuple[Any, ...], *, lo: float | None = None, hi: float | None = None,
               positive: bool = False) -> float: ...

    def choice(self, v: Any, where: tuple[Any, ...], options: tuple[str, ...]) -> str: ...

    def model_ref(self, v: Any, where: tuple[Any, ...], *, task: str | None, builtin: tuple[str, ...] = (),
                  also: str = "") -> str:
        """A shipped model's name or a model folder / card path (absolute), checked to be of ``task``; names in
        ``builtin`` are taken as they are; ``also`` is added to the list of valid models in the error."""
        ...

    def channel(self, v: Any, where: tuple[Any, ...]) -> str:
        """A channel the step reads (None: the first channel)."""
        ...

    def existing_objects(self, v: Any, where: tuple[Any, ...]) -> str:
        """An object set made by an earlier step."""
        ...

    def new_objects(self, v: Any, where: tuple[Any, ...]) -> str:
        """The name of an object set this step makes (checked to be new)."""
        ...

    def reserve_count(self, name: str) -> None:
        """Record that this step writes ``Count_<name>`` (later object sets may not take the name)."""
        ...
