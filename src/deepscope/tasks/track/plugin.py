"""The track task's plugin: no network of its own (its frames are segmented by a segmentation model and linked by
laptrack), registered so that the pipeline finds the task's step (``pipeline_step``, :class:`TrackStep`)."""

from __future__ import annotations

from deepscope.models import register_task
from deepscope.models.plugins import TaskPlugin
from deepscope.tasks.track.pipeline_step import TrackStep

__all__ = ["TrackPlugin"]


@register_task
class TrackPlugin(TaskPlugin):
    """Tracking: per-frame objects (a segmentation model's, or masks) linked into tracks and lineages.

    There is no track model: :func:`deepscope.tasks.track.track_movie` runs a segmentation model's plugin per frame.
    """

    task = "track"
    representation = "links"
    description = "per-frame segment labels -> laptrack links -> CTC tracks and lineages (no network)"
    pipeline_step = TrackStep
