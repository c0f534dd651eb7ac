"""Task plugins: what a model of a task does with its network, registered by (task, representation).

A plugin gives a task its pre-processing, its inference and post-processing (e.g. density -> count,
foreground + distance -> instances) and its training task (targets, loss, validation), and the
defaults of its model card's ``output``. The card names its plugin (``task`` and
``representation``), so a model loads with the behaviour it was trained for, and two models of one
task with different network outputs (a distance-map segmenter, a flow segmenter) are two plugins,
not a branch in shared code.

This module holds the interface and the registry only; the plugins themselves live above the
training and inference packages (deepscope's own in the task packages), so that ``deepscope.models``
imports nothing from train, predict, evaluate, pipeline or cli. Plugins are found by

1. registration: ``@register_task`` on the plugin class, run when its module is imported;
2. deepscope's built-in tasks: the packages :data:`deepscope.TASK_PACKAGES` names are imported the first
   time a plugin is missing (from an installed deepscope or a plain source tree alike);
3. third-party plugins: the entry points of group ``deepscope.task_plugins`` of other installed packages,
   loaded the first time a plugin is still missing (one that fails to load is skipped with a warning).
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from deepscope.errors import ModelError

__all__ = ["TaskPlugin", "TaskRunner", "TaskOptions", "register_task", "get_task", "list_tasks", "ENTRY_POINT_GROUP"]

#: Entry-point group through which packages declare modules that register task plugins.
ENTRY_POINT_GROUP = "deepscope.task_plugins"

_PLUGINS: dict[tuple[str, str], TaskPlugin] = {}


@runtime_checkable
class TaskOptions(Protocol):
    """The contract of a task's options: a frozen dataclass parsed from the card's ``output`` and the caller's
    arguments (``parse``), copied with changes (``replace``); see :mod:`deepscope.tasks.options`."""

    @classmethod
    def parse(cls, output: Mapping[str, Any] | None = None, *, defaults: Mapping[str, Any] | None = None,
              **given: Any) -> Any: ...

    def replace(self, **changes: Any) -> Any: ...


@runtime_checkable
class TaskRunner(Protocol):
    """The contract shared code (the file driver, pipelines, napari, the out-of-core path) calls on a task plugin:
    the options of a call, and one raw image (or several) -> the task's frozen Result."""

    task: ClassVar[str]
    representation: ClassVar[str]

    def options(self, model: Any, **given: Any) -> Any: ...

    def run(self, model: Any, image: Any, options: Any) -> Any: ...

    def run_batch(self, model: Any, images: Sequence[Any], options: Any, *,
                  paths: Sequence[str] | None = None) -> list[Any]: ...


class TaskPlugin:
    """Interface of a task plugin (subclass it and decorate the subclass with :func:`register_task`).

    Class attributes
    ----------------
    task : str
        The task (``"count"``, ``"segment"``, ``"restore"``, ...): the model class a user builds.
    representation : str
        What the network outputs; unique within the task.
    model_class : type
        The :class:`~deepscope.models.DeepscopeModel` subclass its models are (usually the task's).

    Every method takes the model first; a plugin keeps no per-model state of its own (caches go in
    ``model.runtime``, which is dropped when the weights change).
    """

    task: ClassVar[str] = ""
    representation: ClassVar[str] = ""
    model_class: ClassVar[type] = object
    description: ClassVar[str] = ""
    #: Names of the network's output channels, for exported packages (empty: ``output0`` ...).
    output_names: ClassVar[tuple[str, ...]] = ()
    #: What deepscope does with the network's outputs, for exported packages' documentation.
    postprocessing_note: ClassVar[str] = ""
    #: The task's own pipeline step: a class with ``kind`` (its key in a pipeline's ``steps``) and
    #: ``parse(options, reader)`` (the PipelineStep contract of the task contracts); None: a pipeline runs the
    #: task's models through the generic ``model:`` step only. The pipeline spec finds steps here.
    pipeline_step: ClassVar[Any] = None

    # ------------------------------------------------------------------ card and network
    def default_architecture(self, **options: Any) -> Any:
        """The :class:`~deepscope.models.ArchConfig` of a new model built without one."""
        raise NotImplementedError

    def default_output(self, arch: Any, **options: Any) -> dict[str, Any]:
        """The card's ``output`` of a new model (complete: every option with its value)."""
        return dict(options)

    def init_network(self, model: Any, net: Any) -> None:
        """Initialise a freshly built network (e.g. the bias of an output head); default: nothing."""

    def export_activation(self, y: Any) -> Any:
        """The activation deepscope applies to the network's raw output tensor ``(N, C, H, W)``, built into exported
        packages so their outputs are maps a consumer reads directly (default: none)."""
        return y

    # ------------------------------------------------------------------ inference
    def prepare(self, model: Any, image: Any, *, path: str = "", channel: int | None = None,
                checked: bool = False) -> Any:
        """Pre-processing: one raw image -> the network's float32 ``(H, W, C)`` input (``checked``: the pixels
        were checked already, :func:`deepscope.models.select_channels`)."""
        from deepscope.models.spec import prepare_image

        return prepare_image(image, model.spec, path=path, channel=channel, model=model.name, checked=checked)

    def options(self, model: Any, **given: Any) -> Any:
        """The task's typed options of one call: the card's ``output`` overridden by ``given``."""
        raise NotImplementedError

    def run(self, model: Any, image: Any, options: Any) -> Any:
        """Pre-process, infer and post-process one raw image: the task's result (count, labels, image ...)."""
        raise NotImplementedError

    def run_batch(self, model: Any, images: Sequence[Any], options: Any, *,
                  paths: Sequence[str] | None = None) -> list[Any]:
        """:meth:`run` of each image (plugins that batch the network override it)."""
        return [self.run(model, im, options) for im in images]

    def predict_image(self, model: Any, image: Any, **options: Any) -> Any:
        """Pre-process, infer and post-process one raw image (what ``model.predict_image`` returns)."""
        raise NotImplementedError

    def predict_batch(self, model: Any, images: Sequence[Any], **options: Any) -> list[Any]:
        """:meth:`predict_image` of several images (plugins that batch the network override it)."""
        return [self.predict_image(model, im, **options) for im in images]

    # ------------------------------------------------------------------ training
    def fit(self, model: Any, dataset: Any, **options: Any) -> Any:
        """Train ``model`` (what ``model.fit`` does)."""
        raise NotImplementedError

    def training_task(self, model: Any, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int,
                      **options: Any) -> Any:
        """The training task (batches, loss, validation metrics) the shared Trainer runs."""
        raise NotImplementedError

    def training_options(self) -> set[str]:
        """Task options a training config may set (e.g. ``crop``)."""
        return set()

    def default_monitor(self, model: Any) -> tuple[str, str]:
        """Validation metric that picks the best checkpoint, and its direction."""
        return "val_loss", "min"

    def after_fit(self, model: Any, task: Any, valid_dataset: Any) -> None:
        """Run after training with the best weights loaded (e.g. calibration on the validation set)."""

    def after_fine_tune(self, model: Any, train_dataset: Any, valid_dataset: Any) -> None:
        """Run after :meth:`after_fit` when a trained model was fine-tuned: update what was fitted on the
        parent's data and no longer holds (domain checks, input statistics, rules calibrated there)."""

    def __repr__(self) -> str:
        return f"<task plugin {self.task}/{self.representation} ({type(self).__module__}.{type(self).__name__})>"


def register_task(cls: type[TaskPlugin]) -> type[TaskPlugin]:
    """Class decorator: register a plugin under ``(cls.task, cls.representation)``.

    Raises
    ------
    deepscope.errors.ModelError
        A plugin of another class already has this task and representation, or they are empty.
    """
    key = (cls.task, cls.representation)
    if not all(key):
        raise ModelError(f"task plugin {cls.__name__} needs class attributes 'task' and 'representation'")
    old = _PLUGINS.get(key)
    if old is not None and type(old).__qualname__ != cls.__qualname__:
        raise ModelError(f"task plugin {key[0]}/{key[1]} is already registered by {type(old).__module__}."
                         f"{type(old).__name__}")
    _PLUGINS[key] = cls()
    return cls


@functools.lru_cache(maxsize=1)
def _load_builtin() -> None:
    """Import deepscope's own task packages (their import registers their plugins; once per process)."""
    import deepscope

    for name in deepscope.TASK_PACKAGES:
        importlib.import_module(name)


@functools.lru_cache(maxsize=1)
def _load_entry_points() -> None:
    """Import the modules other installed packages declare as task plugins (once per process).

    deepscope's own are imported by name (:func:`_load_builtin`), so an older install's metadata that still
    declares them is skipped; a plugin that fails to import is skipped with a warning naming it.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        if dist is not None and (dist.metadata["Name"] or "").lower() == "deepscope":
            continue
        try:
            ep.load()
        except Exception as exc:  # a broken third-party plugin must not break deepscope's own tasks
            warnings.warn(f"task plugin entry point {ep.name!r} ({ep.value}) could not be loaded: "
                          f"{type(exc).__name__}: {exc}", stacklevel=2)


def _load_plugins() -> None:
    _load_builtin()
    _load_entry_points()


def get_task(task: str, representation: str) -> TaskPlugin:
    """The plugin registered for ``task`` and ``representation``.

    Raises
    ------
    deepscope.errors.ModelError
        No such plugin (the message lists the registered ones and how plugins are registered).
    """
    key = (task, representation)
    if key not in _PLUGINS:
        _load_plugins()
    try:
        return _PLUGINS[key]
    except KeyError:
        known = ", ".join(f"{t}/{r}" for t, r in sorted(_PLUGINS)) or "none"
        raise ModelError(f"no task plugin for task {task!r} with representation {representation!r} (registered: "
                         f"{known}). Plugins register with @deepscope.models.register_task when their module is "
                         f"imported, or through the '{ENTRY_POINT_GROUP}' entry points of an installed package; "
                         "deepscope's own are imported from deepscope.TASK_PACKAGES") from None


def list_tasks() -> list[tuple[str, str]]:
    """``(task, representation)`` of every registered plugin (loading the built-in and declared ones)."""
    _load_plugins()
    return sorted(_PLUGINS)
