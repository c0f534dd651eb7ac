"""Volumes (z-stacks): optical sections projected to one image, file by file, with lineage.

The pixel work is NumPy in :mod:`deepscope.data.stacks` (:func:`~deepscope.data.stacks.project`,
:func:`~deepscope.data.stacks.as_stack`); :mod:`deepscope.tasks.volumes.files` reads stacks, projects them and
writes ``<stem>.<method>.tif`` with its ``.prov.json`` (``deepscope project`` is its command line). 3D instance
segmentation lives with the segment task (:mod:`deepscope.tasks.segment.volume`, its files and ``deepscope segment
STACK`` in :mod:`deepscope.tasks.segment.volume_files`), 3D measurements in :mod:`deepscope.measure`.
"""

from deepscope.tasks.volumes.files import PROJECT_COLUMNS, ProjectRun, project_paths

__all__ = ["project_paths", "ProjectRun", "PROJECT_COLUMNS"]
