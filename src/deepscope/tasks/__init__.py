"""deepscope's tasks, one package each: counting, instance segmentation and restoration.

A task package owns all its task knows: typed frozen options (parsed from the model card's ``output`` and the
caller's arguments) and results, ``run(model, image, options) -> Result`` on its plugins, its post-processing,
its training task and its file outputs (:mod:`deepscope.tasks.files`); the contracts shared code relies on are
in :mod:`deepscope.tasks.contracts`. Importing this package registers the plugins
(:func:`deepscope.models.register_task`); the model registry imports it by name (``deepscope.TASK_PACKAGES``)
the first time a plugin is missing, so ``load_model`` finds them from an installed deepscope and from a plain
source tree alike. Adding a task: one package and one import line here (and its CLI command).

Imports go one way: ``tasks`` imports ``models``, ``predict``, ``train`` and ``evaluate``; none of them imports
``tasks`` (``models`` finds the plugins by name, through the registry).

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
track          links             (no network) per-frame segment labels -> laptrack links -> CTC tracks and lineages
=============  ================  ===============================================================
"""

from deepscope.tasks import count, restore, segment, track
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.tasks.options import TaskOptions

__all__ = ["TorchTaskPlugin", "TaskOptions", "count", "segment", "restore", "track"]
