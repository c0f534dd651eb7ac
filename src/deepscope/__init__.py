"""deepscope: deep learning for microscopy images.

Load image sets faithfully with their metadata, count and segment cells with
trained models, measure every object, restore images and record where every
number came from.

Importing :mod:`deepscope` is cheap: it never imports torch or dask. Sub-packages
are imported on first use::

    >>> import deepscope
    >>> img = deepscope.io.read_image  # doctest: +SKIP

Packages import each other one way, from the bottom: ``errors`` <- ``io`` <- ``data`` <-
``provenance``; ``models`` (a leaf: networks, cards, weights, the task-plugin registry) <- ``predict``
and ``train`` <- ``tasks`` (the task plugins) <- ``pipeline`` <- ``cli``; ``evaluate`` and ``measure``
are NumPy-only and imported by the packages that score or measure. ``tests/test_layering.py``
checks it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "DeepscopeError",
    "io",
    "data",
    "provenance",
    "models",
    "train",
    "predict",
    "measure",
    "evaluate",
    "tasks",
    "pipeline",
]

from deepscope.errors import DeepscopeError  # noqa: E402  (tiny module, no heavy imports)

#: The packages whose import registers deepscope's built-in task plugins (one line per task package). The
#: model registry imports them by name the first time a plugin is missing (:func:`deepscope.models.get_task`),
#: so ``deepscope.models`` finds its tasks without importing the packages above it; third-party tasks use the
#: ``deepscope.task_plugins`` entry points instead.
TASK_PACKAGES = ("deepscope.tasks",)

_SUBPACKAGES = {"io", "data", "provenance", "models", "train", "predict", "measure", "evaluate", "tasks",
                "pipeline", "cli"}

if TYPE_CHECKING:  # pragma: no cover
    from deepscope import data, io  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"deepscope.{name}")
    raise AttributeError(f"module 'deepscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBPACKAGES)
