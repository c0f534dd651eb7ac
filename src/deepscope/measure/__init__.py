"""Per-object measurements with CellProfiler-compatible column names.

>>> from deepscope.measure import measure_objects, summarize_image, relate_objects, filter_objects

:func:`measure_objects` gives one row per object (``ObjectNumber``, ``AreaShape_*``,
``Location_*``, ``Intensity_*_<channel>``); :func:`summarize_image` the per-image summary
(``Count_<objects>``, mean/median area, confluence); :func:`aggregate_objects` the per-image
``Mean_``/``Median_``/``StDev_`` of every measurement; :func:`measure_image_quality` the per-image
quality control (``ImageQuality_*``: focus, blur, saturation, intensity); :func:`relate_objects` links children to
parents (CellProfiler's RelateObjects); :func:`filter_objects` keeps objects by measurement;
:func:`measure_volume` measures the objects of 3D labels (volume, surface, sphericity, axes, per channel
intensities; CellProfiler's 3D names) and :func:`summarize_volume` summarises a stack.

Imports: ``measure`` imports ``evaluate`` (label overlaps); ``pipeline`` imports it.
"""

from __future__ import annotations

from deepscope.measure.objects import (AGGREGATES, INTENSITY_FEATURES, SHAPE_COLUMNS, aggregate_objects,
                                       intensity_columns, measure_objects, summarize_image)
from deepscope.measure.quality import QUALITY_FEATURES, measure_image_quality, quality_columns
from deepscope.measure.relate import Relation, filter_objects, relate_objects
from deepscope.measure.volume import VOLUME_COLUMNS, measure_volume, summarize_volume

__all__ = [
    "measure_objects", "summarize_image", "aggregate_objects", "measure_image_quality", "relate_objects",
    "Relation", "filter_objects", "SHAPE_COLUMNS", "INTENSITY_FEATURES", "AGGREGATES", "QUALITY_FEATURES",
    "intensity_columns", "quality_columns", "measure_volume", "summarize_volume", "VOLUME_COLUMNS",
]
