"""Analysis pipelines: a YAML spec run over many image sets, locally or on Dask, resumable, with lineage.

>>> from deepscope.pipeline import load_pipeline, run_pipeline, default_pipeline

A pipeline reads image files (grouping the channels of each field of view), runs steps on each
image set (normalise, segment, count, model, relate, measure, filter; ``segment`` and ``count`` are their tasks'
steps, :class:`deepscope.tasks.segment.SegmentStep` and :class:`deepscope.tasks.count.CountStep`) and writes
one row per image set
to ``RUN_DIR/images.{parquet,csv}`` and one per object to ``RUN_DIR/objects.{parquet,csv}``.
See ``docs/pipelines.md``.

Importing this package imports neither torch nor dask: models are loaded in the workers and
dask when a Dask executor starts.

Imports: ``pipeline`` imports ``models``, ``predict`` (the batch runner, classical segmenters),
``measure``, ``provenance``, ``io`` and ``data``; only ``cli`` imports it.
"""

from __future__ import annotations

from deepscope.pipeline.executors import (DaskExecutor, Executor, LocalExecutor, SchedulerError, SerialExecutor,
                                          WorkerLost, WorkerStartError, connect, default_jobs)
from deepscope.pipeline.inputs import ImageSet, discover_image_sets, set_key, set_stem
from deepscope.pipeline.runner import RunResult, default_pipeline, resolve_models, run_pipeline
from deepscope.pipeline.spec import (ChannelGrouping, FilterStep, Inputs, MeasureStep, ModelStep, NormalizeStep,
                                     Outputs, Pipeline, RelateStep, Step, load_pipeline)
from deepscope.pipeline.steps import SetResult, apply_steps
from deepscope.pipeline.store import ON_CHANGE, RunDirError, read_manifest

__all__ = [
    "Pipeline", "Inputs", "ChannelGrouping", "Outputs", "Step", "NormalizeStep", "ModelStep", "RelateStep",
    "MeasureStep", "FilterStep", "load_pipeline", "default_pipeline", "run_pipeline",
    "RunResult",
    "resolve_models", "ImageSet", "discover_image_sets", "set_key", "set_stem", "apply_steps", "SetResult",
    "Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "connect", "default_jobs", "SchedulerError",
    "WorkerLost", "WorkerStartError", "RunDirError", "ON_CHANGE", "read_manifest",
]
