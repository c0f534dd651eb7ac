"""The segment task: instance label images (int32, 0 = background), tiled for large images.

=================  ==================================================================================
``options``        :class:`SegmentOptions` (card ``output`` + the caller's arguments), :class:`SegmentResult`
``plugins``        :class:`SegmentPlugin` (what every representation shares), ``segment/instances``
                   (foreground + distance, seeded watershed, classes) and ``segment/foreground`` (the book's
                   U-Net: connected components)
``generalist``     ``segment/flows`` and ``segment/sized-distance``: any modality and object size (the size
                   map rescales each image), with a domain check
``instances``      post-processing: seeded watershed on distance maps, classes per instance
``flows``          post-processing: Cellpose-style flow fields -> instances
``sizing``         object-size estimation, rescaling and tiling of the generalist models
``training``       :class:`SegmentTask` (foreground + distance (+ classes)); ``training_generalist``: the
                   generalist's flow and sized-distance tasks
``pipeline_step``  :class:`SegmentStep`: the pipeline's ``segment:`` step and its parser
=================  ==================================================================================
"""

from deepscope.tasks.segment.generalist import (FlowSegmentation, GeneralistSegmentation, SizedDistanceSegmentation,
                                                generalist_spec, image_kind)
from deepscope.tasks.segment.options import SegmentInfo, SegmentOptions, SegmentResult
from deepscope.tasks.segment.pipeline_step import SegmentStep
from deepscope.tasks.segment.plugins import ForegroundSegmentation, InstanceSegmentation, SegmentPlugin
from deepscope.tasks.segment.training import SegmentTask
from deepscope.tasks.segment.training_generalist import DistanceSegmentTask, FlowAugment, FlowSegmentTask

Options = SegmentOptions
Result = SegmentResult

__all__ = ["SegmentOptions", "SegmentResult", "SegmentInfo", "Options", "Result", "SegmentPlugin",
           "InstanceSegmentation", "ForegroundSegmentation", "GeneralistSegmentation", "FlowSegmentation",
           "SizedDistanceSegmentation", "generalist_spec", "image_kind", "SegmentTask", "FlowSegmentTask",
           "DistanceSegmentTask", "FlowAugment", "SegmentStep"]
