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
  set from its ``labels``, a channel from its ``image``).

A task package (``deepscope.tasks.<task>``) gives ``Options``, ``Result``, its plugins (registered with
:func:`deepscope.models.register_task`), its training task and its file outputs; ``tests/tasks/test_toy_task.py``
adds one.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from deepscope.models.plugins import TaskOptions, TaskRunner
from deepscope.predict.files import TaskOutputs

__all__ = ["TaskRunner", "TaskOptions", "TaskOutputs", "LabelsResult", "ImageResult"]


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
