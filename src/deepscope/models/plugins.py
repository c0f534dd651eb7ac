"""Task plugins: what a model of a task does with its network, registered by (task, representation).

A plugin gives a task its pre-processing, its inference and post-processing (e.g. density -> count,
foreground + distance -> instances) and its training task (targets, loss, validation), and the
defaults of its model card's ``output``. The card names its plugin (``task`` and
``representation``), so a model loads with the behaviour it was trained for, and two models of one
task with different network outputs (a distance-map segmenter, a flow segmenter) are two plugins,
not a branch in shared code.

This module holds the interface and the registry only; the plugins themselves live above the
training and inference packages (deepscope's own in :mod:`deepscope.tasks`), so that
``deepscope.models`` imports nothing from train, predict, evaluate, pipeline or cli. Plugins are
found by

1. registration: ``@register_task`` on the plugin class, run when its module is imported;
2. package metadata: the entry points of group ``deepscope.task_plugins`` (deepscope declares its own in
   pyproject.toml; another package adds plugins the same way), loaded the first time a plugin is
   missing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

from deepscope.errors import ModelError

__all__ = ["TaskPlugin", "register_task", "get_task", "list_tasks", "ENTRY_POINT_GROUP"]

#: Entry-point group through which packages declare modules that register task plugins.
ENTRY_POINT_GROUP = "deepscope.task_plugins"

_PLUGINS: dict[tuple[str, str], TaskPlugin] = {}


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

    # ------------------------------------------------------------------ card and network
    def default_architecture(self, **options: Any) -> Any:
        """The :class:`~deepscope.models.ArchConfig` of a new model built without one."""
        raise NotImplementedError

    def default_output(self, arch: Any, **options: Any) -> dict[str, Any]:
        """The card's ``output`` of a new model (complete: every option with its value)."""
        return dict(options)

    def init_network(self, model: Any, net: Any) -> None:
        """Initialise a freshly built network (e.g. the bias of an output head); default: nothing."""

    # ------------------------------------------------------------------ inference
    def prepare(self, model: Any, image: Any, *, path: str = "", channel: int | None = None,
                checked: bool = False) -> Any:
        """Pre-processing: one raw image -> the network's float32 ``(H, W, C)`` input (``checked``: the pixels
        were checked already, :func:`deepscope.models.select_channels`)."""
        from deepscope.models.spec import prepare_image

        return prepare_image(image, model.spec, path=path, channel=channel, model=model.name, checked=checked)

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
def _load_entry_points() -> None:
    """Import the modules the installed packages declare as task plugins (once per process)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def get_task(task: str, representation: str) -> TaskPlugin:
    """The plugin registered for ``task`` and ``representation``.

    Raises
    ------
    deepscope.errors.ModelError
        No such plugin (the message lists the registered ones and how plugins are registered).
    """
    key = (task, representation)
    if key not in _PLUGINS:
        _load_entry_points()
    try:
        return _PLUGINS[key]
    except KeyError:
        known = ", ".join(f"{t}/{r}" for t, r in sorted(_PLUGINS)) or "none"
        raise ModelError(f"no task plugin for task {task!r} with representation {representation!r} (registered: "
                         f"{known}). Plugins register with @deepscope.models.register_task when their module is "
                         f"imported, or through the '{ENTRY_POINT_GROUP}' entry points of an installed package "
                         "(deepscope's own are deepscope.tasks: install deepscope, or import deepscope.tasks "
                         "when running an uninstalled source tree)") from None


def list_tasks() -> list[tuple[str, str]]:
    """``(task, representation)`` of every registered plugin (loading the declared ones)."""
    _load_entry_points()
    return sorted(_PLUGINS)
