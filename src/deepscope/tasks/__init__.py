"""deepscope's task plugins: counting, instance segmentation and restoration.

Each module registers its plugins (:func:`deepscope.models.register_task`) when imported; the
``deepscope.tasks`` entry points in pyproject.toml declare them, so ``load_model`` finds them without
anyone importing this package. A plugin gives its task its pre-processing, inference and
post-processing (through :class:`deepscope.predict.Predictor`) and its training task (run by
:class:`deepscope.train.Trainer` through :func:`deepscope.train.fit_model`).

Imports go one way: ``tasks`` imports ``models``, ``predict``, ``train`` and ``evaluate``; none of
them imports ``tasks`` (``models`` finds the plugins by name, through the registry).

=============  ================  ===============================================================
task           representation    network output -> result
=============  ================  ===============================================================
count          density           density + variance maps -> count, 95% interval (hybrid rule)
count          regress           the count (the book's CountNet)
segment        instances         foreground + distance (+ classes) -> seeded watershed instances
segment        foreground        foreground -> connected components (the book's U-Net)
segment        flows             probability + flow field + size map -> instances at any object size
segment        sized-distance    foreground + distance + size map -> seeded watershed at any size
restore        image             the restored image (deblur, stain prediction, 2x super-resolution)
=============  ================  ===============================================================
"""

from deepscope.tasks import count, generalist, restore, segment
from deepscope.tasks.base import TorchTaskPlugin

__all__ = ["TorchTaskPlugin", "count", "segment", "generalist", "restore"]
