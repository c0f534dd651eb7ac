"""Running a pipeline's steps on one image set, in a worker (a local process or a Dask worker).

:func:`apply_steps` is the pure part: channel images in, label images, per-object tables and
per-image values out. :func:`run_task` runs it for one image set of a run on the batch runner of
the commands (:class:`deepscope.predict.runner.BatchRunner`): read the files (SHA-256 of their bytes
on the way), apply the steps with the models of this process, write the label images and overlays
with their lineage, and write the set's result atomically to ``RUN_DIR/parts/<key>.parquet``.
An image set that fails becomes a part with its error, never an exception.

Models are loaded once per process (:func:`worker_context`, cached by the job), not per image.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from deepscope.errors import InputError
from deepscope.pipeline.spec import FilterStep, MeasureStep, ModelStep, NormalizeStep, Pipeline, RelateStep

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from deepscope.tasks.count.pipeline_step import CountStep
    from deepscope.tasks.segment.pipeline_step import SegmentStep
    from deepscope.tasks.track.pipeline_step import TrackStep

__all__ = ["Task", "TaskResult", "SetResult", "apply_steps", "run_task", "worker_context", "init_worker", "die_with",
           "objects_schema", "image_value_types", "route_count", "part_path", "write_part", "read_part_meta",
           "PART_META_KEY", "PART_SCHEMA"]

logger = logging.getLogger(__name__)

#: Key of a part's description in its Parquet schema metadata.
PART_META_KEY = b"deepscope.part"
#: Schema tag of a part's description.
PART_SCHEMA = "deepscope.part/1"

@dataclass(frozen=True)
class Task:
    """One image set to process: its key (part file name), id, ``(channel, path)`` files and the stem its
    label images and overlay are written under (default :func:`~deepscope.pipeline.inputs.set_stem` of the id)."""

    key: str
    set_id: str
    files: tuple[tuple[str, str], ...]
    stem: str = ""


@dataclass(frozen=True)
class TaskResult:
    """What a worker reports back for one image set (the results themselves are in its part file)."""

    key: str
    set_id: str
    ok: bool
    error: str | None
    n_objects: int
    seconds: float


@dataclass(frozen=True, eq=False)
class SetResult:
    """The results of the steps on one image set.

    Attributes
    ----------
    labels : dict of str to ndarray
        Object set name -> int32 label image.
    objects : dict of str to pandas.DataFrame
        Object set name -> per-object table (measured object sets only).
    values : dict of str to object
        Per-image values: each object set's summary (``Count_<name>``, mean area, confluence),
        the count steps' ``Count_<name>[_Low|_High|_Std|_Estimate]`` (the count in whole cells, its interval, the
        spread and the network's unrounded estimate; a count model with ``objects``: ``Count_<objects>`` from
        the counter or the objects, with ``_Method``, ``_Objects``, ``_Counter``, ``_Low``, ``_High``; see
        :func:`route_count`), each channel's quality control
        (``ImageQuality_*_<channel>``, on the raw pixels) and each measured set's
        ``Mean_/Median_/StDev_<name>_<measurement>``; a track step's ``Tracks_<name>``, ``Divisions_<name>`` ...
        (:meth:`deepscope.tasks.track.pipeline_step.TrackStep.image_values`).
    tracks : dict of str to TrackResult
        Tracked object set name -> the track task's result (what ``RUN_DIR/tracks/`` is written from).
    """

    labels: dict[str, np.ndarray]
    objects: dict[str, pd.DataFrame]
    values: dict[str, Any] = field(default_factory=dict)
    tracks: dict[str, Any] = field(default_factory=dict)


#: ``segment(step, image)`` -> int32 labels, or (labels, {"diameter": ..., "in_domain": ...}) for models
#: that estimate object size and check their domain.
Segmenter = Callable[["SegmentStep", np.ndarray], Any]
Counter = Callable[["CountStep", np.ndarray], Any]
#: ``run_model(step, image)`` -> the task's result (with ``labels`` or ``image``) for a model step.
ModelRunner = Callable[[ModelStep, np.ndarray], Any]
#: ``segment_volume(step, stack, voxel_size)`` -> int32 (Z, Y, X) labels for a 3D segment step (``volume:``).
VolumeSegmenter = Callable[["SegmentStep", np.ndarray, "tuple[float, float, float]"], Any]
#: ``track(step, movie, masks, pixel_size, frame_interval)`` -> the track task's ``TrackResult`` for a track step.
Tracker = Callable[["TrackStep", np.ndarray, "np.ndarray | None", "float | None", "float | None"], Any]


def _flat(imgs: Mapping[str, np.ndarray], channel: str, kind: str, *, z_stack: bool = False) -> np.ndarray:
    """A channel image for a step that takes 2-D images; a time-lapse (T x Y x X) is refused, naming the step."""
    im = imgs[channel]
    if np.ndim(im) == 3 and z_stack:
        z, h, w = np.shape(im)
        raise InputError(f"channel {channel!r} is a z-stack of {z} planes ({h} x {w}); a {kind} step takes 2-D "
                         "images")
    if np.ndim(im) == 3:
        t, h, w = np.shape(im)
        raise InputError(f"channel {channel!r} is a time-lapse of {t} frames ({h} x {w}); a {kind} step takes 2-D "
                         "images: track the movie with a track step (docs/pipelines.md), or give its frames as "
                         "separate image files")
    return im


def _merge_columns(table: pd.DataFrame, extra: pd.DataFrame, *, ids: bool) -> pd.DataFrame:
    """Join ``extra``'s columns onto ``table`` by ``ObjectNumber`` (``extra``'s win); ``ids``: relation
    columns, which stay integers (0 = no parent)."""
    cols = [c for c in extra.columns if c != "ObjectNumber"]
    base = table.drop(columns=[c for c in cols if c in table.columns])
    out = base.merge(extra, on="ObjectNumber", how="left", sort=False)
    if ids:
        for c in cols:
            out[c] = out[c].fillna(0).astype(np.int64)
    out.attrs.update(table.attrs)
    return out


def square_pixel_size(pixel_size: Any) -> float | None:
    """A file's ``(row, col)`` pixel size in micrometres as one number when its pixels are square, else None."""
    if not pixel_size:
        return None
    row, col = (float(v) for v in pixel_size)
    return row if row > 0 and np.isclose(row, col, rtol=1e-3) else None


def apply_steps(pipeline: Pipeline, images: Mapping[str, np.ndarray], *, segment: Segmenter,
                count: Counter, pixel_size: Any = None, run_model: ModelRunner | None = None,
                track: Tracker | None = None, frame_interval: float | None = None,
                voxel_size: Any = None, segment_volume: VolumeSegmenter | None = None) -> SetResult:
    """Apply a pipeline's steps to the channel images of one image set.

    Parameters
    ----------
    pipeline : Pipeline
        The validated pipeline.
    images : mapping of str to ndarray (H, W), (T, H, W) or (Z, H, W)
        One 2-D image per channel name of the pipeline; a time-lapse (T, H, W) for a pipeline with a track step
        (which 2-D steps refuse); a z-stack (Z, H, W) for a pipeline with a 3D segment step (``volume:``), whose
        measure steps give the 3D measurements (:func:`deepscope.measure.measure_volume`) and whose per-image
        values are the stack's (:func:`deepscope.measure.summarize_volume`).
    segment : callable
        ``segment(step, image) -> int32 labels`` (the models of this process).
    count : callable
        ``count(step, image) -> CountResult`` for count steps with a model.
    pixel_size : (float, float), optional
        The image set's pixel size in micrometres as its files state it, for measure steps with
        ``pixel_size: files`` (square pixels only: shape features need them).
    run_model : callable, optional
        ``run_model(step, image) -> result`` for model steps (a task's ``run``: a result with ``labels`` or
        ``image``).
    track : callable, optional
        ``track(step, movie, masks, pixel_size, frame_interval) -> TrackResult`` for track steps (the track task's
        :meth:`~deepscope.tasks.track.pipeline_step.TrackStep.run`).
    frame_interval : float, optional
        The image set's time between frames as its files state it, for track steps.
    voxel_size : (float, float, float), optional
        The z-stack's ``(z, y, x)`` in micrometres (3D segment and measure steps; default cubic voxels of 1).
    segment_volume : callable, optional
        ``segment_volume(step, stack, voxel_size) -> (Z, Y, X) labels`` for 3D segment steps; default: the
        classical 3D method of ``deepscope segment``
        (:func:`deepscope.tasks.segment.volume_files.segment_stack`; a model method needs the process's models).

    Returns
    -------
    SetResult

    Raises
    ------
    deepscope.errors.InputError
        A channel is missing, under 2 x 2 pixels or holds NaN / infinite / float32-overflowing pixels
        (:func:`~deepscope.data.transforms.check_image`), or the channels differ in shape; a filter fails; a 2-D
        step meets a time-lapse or a track step a 2-D image.

    Examples
    --------
    >>> import numpy as np
    >>> from deepscope.pipeline import Pipeline
    >>> p = Pipeline.from_dict({"inputs": {"paths": ["/d"]}, "steps": [
    ...     {"segment": {"model": "otsu-watershed"}}, {"measure": {}}]})
    >>> img = np.zeros((32, 32), np.uint8); img[4:12, 4:12] = 200; img[20:28, 18:30] = 180
    >>> lab = (img > 0).astype(np.int32) * (1 + (np.arange(32) >= 16))[None, :]
    >>> r = apply_steps(p, {"Image": img}, segment=lambda step, im: lab, count=None)
    >>> r.values["Count_Nuclei"], r.objects["Nuclei"]["AreaShape_Area"].tolist()
    (2, [64, 96])
    """
    from deepscope.data.transforms import check_image, normalize_percentile
    from deepscope.measure import (aggregate_objects, filter_objects, measure_image_quality, measure_objects,
                                   measure_volume, relate_objects, summarize_image, summarize_volume)

    z_stack = pipeline.z_stack
    vs = tuple(float(v) for v in voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)

    def checked(v: np.ndarray, ch: str) -> np.ndarray:  # size, NaN, overflow (a movie: of every frame)
        if np.ndim(v) == 3:
            check_image(np.moveaxis(np.asarray(v), 0, -1), path=f"channel {ch!r}")
            return np.asarray(v)
        return check_image(v, path=f"channel {ch!r}")

    imgs = {ch: checked(v, ch) for ch, v in images.items()}
    shapes = {k: np.shape(v) for k, v in imgs.items()}
    for ch in pipeline.channels:
        if ch not in imgs:
            raise InputError(f"no image for channel {ch!r}; got {sorted(imgs)}")
    if len(set(shapes.values())) > 1:
        raise InputError(f"the channels of this image set differ in size: {shapes}; every channel of a field "
                         "of view must have the same height and width")
    labels: dict[str, np.ndarray] = {}
    tables: dict[str, pd.DataFrame] = {}
    relations: dict[str, list[pd.DataFrame]] = {}
    values: dict[str, Any] = {}
    routed: dict[str, Any] = {}
    quality: dict[str, Any] = {}
    tracked: dict[str, Any] = {}
    for ch in pipeline.channels:  # on the raw pixels, before any step (2-D images: a movie has no one focus)
        if np.ndim(imgs[ch]) == 2:
            quality.update(measure_image_quality(imgs[ch], channel=ch))
    for step in pipeline.steps:
        if isinstance(step, NormalizeStep):
            for ch in step.channels:
                imgs[ch] = normalize_percentile(imgs[ch], step.low, step.high, clip=step.clip)
        elif step.kind == "segment" and getattr(step, "volume", None) is not None:  # 3D: as deepscope segment STACK
            stack = imgs[step.channel]
            if np.ndim(stack) != 3:
                raise InputError(f"channel {step.channel!r} is a 2-D image ({' x '.join(map(str, np.shape(stack)))}); "
                                 f"the 3D segment step (volume: {step.volume}) needs a z-stack: an ImageJ hyperstack, "
                                 "OME-TIFF or OME-Zarr with a Z axis, or a multi-page TIFF with inputs.axes: ZYX")
            if segment_volume is None:
                from deepscope.tasks.segment.volume_files import segment_stack

                lab = segment_stack(stack, voxel_size=vs, method=step.volume, diameter=step.diameter)
            else:
                lab = segment_volume(step, stack, vs)
            lab = np.asarray(lab)
            if lab.shape != shapes[step.channel]:
                raise InputError(f"3D segmentation ({step.volume}) returned labels of shape {lab.shape} for a stack of "
                                 f"shape {shapes[step.channel]}")
            labels[step.objects] = lab.astype(np.int32, copy=False)
        elif step.kind == "segment":  # the segment task's step (deepscope.tasks.segment.pipeline_step)
            got = segment(step, _flat(imgs, step.channel, "segment"))
            extra: dict[str, Any] = {}
            if isinstance(got, tuple):
                got, extra = got
            if step.model != "otsu-watershed":  # the size and domain of trained models (NaN where none)
                dom = extra.get("in_domain")
                values[f"Diameter_{step.objects}"] = float(extra.get("diameter", float("nan")))
                values[f"InDomain_{step.objects}"] = float("nan") if dom is None else float(bool(dom))
            lab = np.asarray(got)
            if lab.shape != shapes[step.channel]:
                raise InputError(f"model {step.model!r} returned labels of shape {lab.shape} for an image of shape "
                                 f"{shapes[step.channel]}")
            labels[step.objects] = lab.astype(np.int32, copy=False)
        elif step.kind == "count":  # the count task's step (deepscope.tasks.count.pipeline_step)
            if not step.model_refs:  # model: objects
                assert step.objects is not None
                values[f"Count_{step.objects}"] = int(len(np.unique(labels[step.objects])) - 1
                                                      if labels[step.objects].any() else 0)
            elif step.objects is not None:  # a model and objects: the counter's count where it is the better one
                assert step.channel is not None
                n_obj = int(len(np.unique(labels[step.objects])) - 1 if labels[step.objects].any() else 0)
                slope = quality.get(f"ImageQuality_PowerLogLogSlope_{step.channel}", float("nan"))
                routed.update(route_count(step, n_obj, _flat(imgs, step.channel, "count"), slope=slope, count=count))
            else:
                assert step.channel is not None
                r = count(step, _flat(imgs, step.channel, "count"))
                values.update({f"Count_{step.name}": float(r.count), f"Count_{step.name}_Low": float(r.low),
                               f"Count_{step.name}_High": float(r.high), f"Count_{step.name}_Std": float(r.std),
                               f"Count_{step.name}_Estimate": float(getattr(r, "estimate", r.count))})
        elif step.kind == "track":  # the track task's step (deepscope.tasks.track.pipeline_step)
            if track is None:
                raise InputError(f"track step {step.objects!r}: no tracker in this process")
            movie = imgs[step.channel]
            if np.ndim(movie) != 3:
                raise InputError(f"channel {step.channel!r} is a 2-D image ({' x '.join(map(str, np.shape(movie)))}); "
                                 "the track step needs a time-lapse: a TYX (or TCYX with inputs.plane / "
                                 "inputs.planes) TIFF, OME-TIFF or OME-Zarr, or a multi-page TIFF whose pages are "
                                 "its frames")
            res = track(step, movie, imgs[step.masks] if step.masks is not None else None,
                        square_pixel_size(pixel_size), frame_interval)
            labels[step.objects] = np.asarray(res.labels, np.int32)
            tables[step.objects] = step.object_table(res)
            values.update(step.image_values(res))
            tracked[step.objects] = res
        elif isinstance(step, ModelStep):
            if run_model is None:
                raise InputError(f"model step {step.model!r}: no models in this process")
            r = run_model(step, _flat(imgs, step.channel, "model"))
            want = "labels" if step.objects is not None else "image"
            got_arr = getattr(r, want, None)
            if got_arr is None:
                raise InputError(f"model {step.model!r} gives a {type(r).__name__} without {want}; keep "
                                 f"{'an object set (objects:)' if want == 'labels' else 'a channel (into:)'} only of "
                                 "a model whose result has them")
            arr = np.asarray(got_arr)
            if arr.shape[:2] != shapes[step.channel][:2]:
                raise InputError(f"model {step.model!r} returned {want} of shape {arr.shape} for an image of shape "
                                 f"{shapes[step.channel]}")
            if step.objects is not None:
                labels[step.objects] = arr.astype(np.int32, copy=False)
            else:
                assert step.into is not None
                imgs[step.into] = arr
        elif isinstance(step, RelateStep):
            rel = relate_objects(labels[step.parents], labels[step.children], parent_name=step.parents,
                                 child_name=step.children)
            for name, frame in ((step.children, rel.children), (step.parents, rel.parents)):
                relations.setdefault(name, []).append(frame)
                if name in tables:
                    tables[name] = _merge_columns(tables[name], frame, ids=True)
        elif isinstance(step, MeasureStep):
            ps = square_pixel_size(pixel_size) if step.pixel_size == "files" else step.pixel_size
            for obj in step.objects:
                if labels[obj].ndim == 3:  # a z-stack's objects: the 3D measurements with the voxel size
                    t = measure_volume(labels[obj], {ch: imgs[ch] for ch in step.channels}, voxel_size=vs,
                                       object_name=obj)
                else:
                    t = measure_objects(labels[obj], {ch: _flat(imgs, ch, "measure", z_stack=z_stack)
                                                      for ch in step.channels}, object_name=obj, pixel_size=ps)
                if obj in tables:  # measured again (e.g. other channels): new columns win
                    t = _merge_columns(tables[obj], t, ids=False)
                for frame in relations.get(obj, []):
                    t = _merge_columns(t, frame, ids=True)
                tables[obj] = t
        elif isinstance(step, FilterStep):
            where: Any = step.where if isinstance(step.where, str) else {k: tuple(v) for k, v in step.where.items()}
            new_lab, kept = filter_objects(labels[step.objects], tables[step.objects], where,
                                           relabel=step.into is not None, object_name=step.objects)
            target = step.into or step.objects
            labels[target] = new_lab
            kept.attrs["object_name"] = target
            tables[target] = kept
    summary: dict[str, Any] = {}
    for name, lab in labels.items():
        if lab.ndim == 3 and name not in tracked:  # a z-stack's objects: count, volumes (measured sets)
            if name in tables:
                summary.update(summarize_volume(tables[name], object_name=name))
            else:
                summary[f"Count_{name}"] = int(len(np.unique(lab)) - 1 if lab.any() else 0)
        elif name not in tracked:  # a tracked set's summary is its step's values
            summary.update(summarize_image(lab, object_name=name))
    for k, v in values.items():  # model counts after the object summaries
        summary.setdefault(k, v)
    summary.update(routed)  # Count_<objects> of a routed count replaces the objects' count in its place
    summary.update(quality)
    if z_stack:  # the voxel size the stack was segmented and measured with
        summary.update({"Planes": int(shapes[pipeline.channels[0]][0]), "VoxelSize_Z_um": vs[0], "VoxelSize_Y_um": vs[1], "VoxelSize_X_um": vs[2]})
    for name, table in tables.items():  # CellProfiler's per-image aggregates of every object measurement
        ids = [c for c in table.attrs.get("identifiers", ()) if c in table.columns]  # e.g. frames, track ids
        for k, v in aggregate_objects(table.drop(columns=ids) if ids else table, object_name=name).items():
            summary.setdefault(k, v)
    return SetResult(labels=labels, objects=tables, values=summary, tracks=tracked)


def route_count(step: CountStep, n_objects: int, image: np.ndarray, *, slope: float, count: Counter) -> dict[str, Any]:
    """The per-image count of a count step with a model and ``objects``: the counter's where it is the better one.

    Segmentation merges and misses objects on blurred images (on BBBC005's most blurred fields, F48, the
    ``nuclei`` model finds 10 of every 100 nuclei too few), where a counter trained on blurred images stays
    within about one; on in-focus images the objects are as good and are what the measurements describe
    (``benchmarks/bench_analyze_blur.py``). So the counter runs only on images the image QC finds blurred on its
    absolute scale (power-log-log ``slope`` at or below :data:`deepscope.measure.quality.BLUR_SLOPE`), and its count
    is taken where its domain check does not refuse the image and it counted by its own network (not by a
    generalist segmenter's instances, its fallback for unfamiliar images); elsewhere the count is the objects'.

    Parameters
    ----------
    step : CountStep
        The count step (``model`` a count model, ``objects`` the object set, ``channel`` read by the counter).
    n_objects : int
        Number of objects of ``step.objects`` in the image.
    image : ndarray (H, W)
        The channel image the counter reads.
    slope : float
        ``ImageQuality_PowerLogLogSlope`` of the channel's raw pixels (NaN: unknown, the objects count).
    count : callable
        ``count(step, image) -> CountResult``.

    Returns
    -------
    dict
        ``Count_<objects>`` (int: the counter's count rounded, or the objects'), ``Count_<objects>_Method``
        (``"counter"`` or ``"objects"``), ``Count_<objects>_Objects`` (the objects' count, which the object
        tables hold), ``Count_<objects>_Counter`` (the counter's estimate, NaN where it did not run) and
        ``Count_<objects>_Low`` / ``_High`` (the counter's 95% interval where its count is used, else NaN).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> step = NS(objects="Nuclei")
    >>> counter = lambda step, im: NS(count=81.6, low=78.9, high=84.4, method="density", in_domain=True)
    >>> r = route_count(step, 62, None, slope=-3.8, count=counter)
    >>> r["Count_Nuclei"], r["Count_Nuclei_Method"], r["Count_Nuclei_Objects"]
    (82, 'counter', 62)
    >>> route_count(step, 62, None, slope=-2.0, count=counter)["Count_Nuclei_Method"]
    'objects'
    """
    from deepscope.measure.quality import BLUR_SLOPE

    name, nan = step.objects, float("nan")
    r = count(step, image) if np.isfinite(slope) and slope <= BLUR_SLOPE else None
    use = (r is not None and getattr(r, "in_domain", None) is not False and getattr(r, "method", "") != "instances"
           and np.isfinite(r.count))
    return {f"Count_{name}": int(np.rint(r.count)) if use else int(n_objects),
            f"Count_{name}_Method": "counter" if use else "objects", f"Count_{name}_Objects": int(n_objects),
            f"Count_{name}_Counter": float(getattr(r, "estimate", r.count)) if r is not None else nan,
            f"Count_{name}_Low": float(r.low) if use else nan, f"Count_{name}_High": float(r.high) if use else nan}


# ---------------------------------------------------------------------------------------------- schemas
def _empty(pipeline: Pipeline) -> SetResult:
    @dataclass(frozen=True)
    class _NaNCount:
        count: float = float("nan")
        low: float = float("nan")
        high: float = float("nan")
        std: float = float("nan")

    shape = (2, 4, 4) if pipeline.time_lapse or pipeline.z_stack else (4, 4)  # movies, z-stacks
    blank = {ch: np.zeros(shape, np.float32) for ch in pipeline.channels}
    def blank_model(step: ModelStep, im: np.ndarray) -> Any:
        @dataclass(frozen=True)
        class _Blank:
            labels: np.ndarray
            image: np.ndarray

        return _Blank(np.zeros(im.shape, np.int32), np.zeros(im.shape, np.float32))

    return apply_steps(pipeline, blank, segment=lambda step, im: np.zeros(im.shape, np.int32),
                       count=lambda step, im: _NaNCount(), pixel_size=(1.0, 1.0),  # "files": the _um columns
                       run_model=blank_model, track=lambda step, movie, masks, px, dt: step.run(
                           movie, masks=np.zeros(movie.shape, np.int32), pixel_size=px, frame_interval=dt),
                       segment_volume=lambda step, stack, vs: np.zeros(stack.shape, np.int32))


@functools.lru_cache(maxsize=8)
def _schemas(pipeline_json: str) -> tuple[pa.Schema, tuple[tuple[str, str], ...]]:
    import pyarrow as pa

    pipeline = Pipeline.from_dict(json.loads(pipeline_json))
    empty = _empty(pipeline)
    fields: dict[str, pa.DataType] = {"ObjectName": pa.string()}
    for t in empty.objects.values():
        for col, dtype in t.dtypes.items():
            typ = pa.int64() if np.issubdtype(dtype, np.integer) else pa.float64()
            if col in fields and fields[col] != typ:
                typ = pa.float64()
            fields[str(col)] = typ
    values = tuple((k, "string" if isinstance(v, str) else
                    "int64" if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else "float64")
                   for k, v in empty.values.items())
    return pa.schema(list(fields.items())), values


def _pipeline_json(pipeline: Pipeline) -> str:
    return json.dumps(pipeline.to_dict(), sort_keys=True, default=str)


def objects_schema(pipeline: Pipeline) -> pa.Schema:
    """The Arrow schema of every part's object rows (``ObjectName`` + the union of the measured columns).

    It is derived by running the steps on a blank image, so it is the same for every image set,
    whatever its objects (or its failure).
    """
    return _schemas(_pipeline_json(pipeline))[0]


def image_value_types(pipeline: Pipeline) -> tuple[tuple[str, str], ...]:
    """The per-image value columns of a pipeline and their types (``"int64"``/``"float64"``/``"string"``), in order."""
    return _schemas(_pipeline_json(pipeline))[1]


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast ``table`` to ``schema``: columns in schema order, missing ones as nulls.

    Raises
    ------
    deepscope.errors.InputError
        If ``table`` has a column the schema lacks.
    """
    import pyarrow as pa

    if table.schema.equals(schema, check_metadata=False):
        return table
    have = dict(zip(table.column_names, table.columns))
    wanted = set(schema.names)
    extra = [n for n in have if n not in wanted]
    if extra:
        raise InputError(f"object table has columns {extra} that the pipeline's schema lacks")
    cols = []
    for f in schema:
        col = have.get(f.name)
        if col is None:
            cols.append(pa.nulls(len(table), f.type))
        else:
            cols.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _to_arrow(table: pd.DataFrame, name: str, schema: pa.Schema) -> pa.Table:
    """One object set's table as Arrow in ``schema`` (NaN -> null, as pandas' missing values)."""
    import pyarrow as pa

    n = len(table)
    wanted = set(schema.names)
    extra = [c for c in table.columns if c not in wanted]
    if extra:
        raise InputError(f"object table of {name!r} has columns {extra} that the pipeline's schema lacks")
    cols = []
    for f in schema:
        if f.name == "ObjectName":
            cols.append(pa.array([name] * n, pa.string()))
        elif f.name in table.columns:
            cols.append(pa.array(table[f.name].to_numpy(), from_pandas=True).cast(f.type))
        else:
            cols.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


# ---------------------------------------------------------------------------------------------- parts
def part_path(run_dir: str | os.PathLike[str], key: str) -> Path:
    """``RUN_DIR/parts/<key[:2]>/<key>.parquet`` (256 sub-folders keep folders small at a million sets).

    Examples
    --------
    >>> part_path("/runs/a", "1c1bd4a4f09ec1af5e6d40cf").as_posix()
    '/runs/a/parts/1c/1c1bd4a4f09ec1af5e6d40cf.parquet'
    """
    return Path(run_dir) / "parts" / key[:2] / f"{key}.parquet"


def write_part(path: str | os.PathLike[str], objects: pa.Table, meta: Mapping[str, Any]) -> Path:
    """Write one image set's result atomically: object rows as the table, the rest as schema metadata."""
    import pyarrow.parquet as pq

    from deepscope.io import atomic_path, to_jsonable

    with atomic_path(path) as tmp:
        # no Arrow schema copy and no column statistics: a part is read whole, once, at commit (5 KB instead
        # of 13 KB for a few objects, and 20% faster to read); the description is footer key-value metadata
        with pq.ParquetWriter(tmp, objects.schema.remove_metadata(), compression="zstd", store_schema=False,
                              write_statistics=False) as writer:
            writer.write_table(objects.replace_schema_metadata(None))
            writer.add_key_value_metadata({PART_META_KEY: json.dumps(to_jsonable(dict(meta), strict=False)).encode()})
    return Path(path)


def read_part_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The description stored in a part (status, error, files with SHA-256, the image row).

    Raises
    ------
    deepscope.errors.InputError
        If the file is not a readable part.
    """
    import pyarrow.parquet as pq

    try:
        md = pq.ParquetFile(path).metadata.metadata or {}
        meta = json.loads(md[PART_META_KEY])
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise InputError(f"'{path}' is not a readable result part ({type(exc).__name__}: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("schema") != PART_SCHEMA:
        raise InputError(f"'{path}' is not a deepscope result part (schema {meta.get('schema')!r})")
    return meta


# ---------------------------------------------------------------------------------------------- worker context
class _Context:
    """What one worker process keeps between image sets: the pipeline, its models, the lineage run."""

    def __init__(self, job: dict[str, Any]) -> None:
        from deepscope.provenance.lineage import ModelRef, Run

        self.job = job
        self.pipeline = Pipeline.from_dict(job["pipeline"])
        self.pipeline_json = _pipeline_json(self.pipeline)
        self.run_dir = Path(job["run_dir"])
        r = job["run"]
        self.run = Run(run_id=r["run_id"], command=r["command"], params=r["params"],
                       models=tuple(ModelRef(m["name"], m["sha256"], m.get("card")) for m in r["models"]),
                       user=r["user"], host=r["host"], started=r["started"],
                       deepscope_version=r["deepscope_version"], software=r["software"])
        self.models: dict[str, Any] = {}
        self._on_backend: dict[tuple[str, str], Any] = {}  # (model, backend) -> the model run there
        # the task each model must be of (a model step takes a model of any task)
        refs: dict[str, str | None] = {}
        for s in self.pipeline.steps:
            if isinstance(s, ModelStep):
                refs[s.model] = None
            elif not isinstance(s, (NormalizeStep, RelateStep, MeasureStep, FilterStep)):
                # a task's own step runs models of its task (of ``model_task`` where it says: a track step's are
                # segmentation models)
                refs.update({ref: getattr(s, "model_task", s.kind) for ref in s.model_refs if ref != "otsu-watershed"})
        if refs:
            import torch

            from deepscope.models import load_model

            threads = int(job.get("threads") or 0)
            if threads > 0:
                torch.set_num_threads(threads)
            for ref, task in refs.items():
                self.models[ref] = load_model(ref, device=job.get("device", "cpu"), task=task)
        objects_schema(self.pipeline)  # compute once per process

    def step_model(self, step: SegmentStep | CountStep) -> Any:
        """The step's model, run on the step's ``backend`` (a copy of the loaded model where that differs), as
        ``--backend`` does for ``deepscope segment`` and ``deepscope count``."""
        model = self.models[step.model]
        if step.backend is None or step.backend == model.backend:
            return model
        key = (step.model, step.backend)
        if key not in self._on_backend:
            from deepscope.predict.inputs import resolve_model

            self._on_backend[key] = resolve_model(model, task=step.kind, backend=step.backend)
        return self._on_backend[key]

    def segment(self, step: SegmentStep, image: np.ndarray) -> np.ndarray:
        """Labels of one channel image, which :func:`apply_steps` has checked (so the model does not again);
        ``tile``, ``overlap`` and ``backend`` by the rules ``deepscope segment`` uses (the task's options)."""
        if step.model == "otsu-watershed":
            from deepscope.predict.classical import otsu_watershed

            return otsu_watershed(image, **step.options)

        model = self.step_model(step)
        r = model.run(image, tile=step.tile, overlap=step.overlap, tta=step.tta, diameter=step.diameter, checked=True,
                      prob_threshold=step.prob_threshold, flow_threshold=step.flow_threshold, min_size=step.min_size)
        return r.labels, {"diameter": float("nan") if r.diameter is None else r.diameter, "in_domain": r.in_domain}

    def segment_volume(self, step: SegmentStep, stack: np.ndarray, voxel_size: tuple[float, float, float]) -> Any:
        """3D labels of one z-stack (checked by :func:`apply_steps`): the library call of ``deepscope segment STACK``
        (:func:`~deepscope.tasks.segment.volume_files.segment_stack`), with the model of this process."""
        from deepscope.tasks.segment.volume_files import segment_stack

        model = self.step_model(step) if step.model_refs else None
        opts = {k: getattr(step, k) for k in ("prob_threshold", "flow_threshold", "min_size")
                if getattr(step, k) is not None}
        return segment_stack(stack, voxel_size=voxel_size, method=step.volume, model=model, diameter=step.diameter,
                             **opts)

    def run_model(self, step: ModelStep, image: np.ndarray) -> Any:
        """The task's result for one channel image (checked by :func:`apply_steps`), with the step's options."""
        return self.models[step.model].run(image, **step.options, checked=True)

    def track(self, step: TrackStep, movie: np.ndarray, masks: np.ndarray | None, pixel_size: float | None,
              frame_interval: float | None) -> Any:
        """The tracks of one movie (checked by :func:`apply_steps`): the track task's own code, with the model of
        this process."""
        model = self.models.get(step.model) if step.model is not None else None
        return step.run(movie, masks=masks, model=model, pixel_size=pixel_size, frame_interval=frame_interval)

    def count(self, step: CountStep, image: np.ndarray) -> Any:
        """The count of one channel image (checked by :func:`apply_steps`), on the step's ``backend``, with its
        ``tta`` (None: the card's), as ``deepscope count --backend --tta``."""
        tta = {"tta": step.tta} if step.tta is not None else {}
        if step.objects is None:
            return self.step_model(step).run(image, checked=True, **tta)
        # a routed count (route_count) takes the counter's estimate only where the counter accepts the image, the
        # objects' elsewhere: so no generalist fallback (general={}: none) and no warning for an image it refuses
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.step_model(step).run(image, checked=True, general={}, **tta)


_CONTEXT_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _cached_context(job_json: str) -> _Context:
    return _Context(json.loads(job_json))


def worker_context(job_json: str) -> _Context:
    """The context of ``job_json`` in this process, made (models loaded) on first use only.

    The cache is per process and holds the last two jobs; a lock makes threads of one Dask worker
    share one copy of the models.
    """
    with _CONTEXT_LOCK:
        return _cached_context(job_json)


def init_worker(job_json: str, driver_pid: int | None = None) -> None:
    """Process-pool initializer: ignore Ctrl-C (the driver handles it), die with the driver, load the models now.

    With ``driver_pid``, the worker exits within a second of the driver's death (even ``kill -9``), and
    takes the process it was forked from (the forkserver) with it, so nothing of a killed run lingers.
    """
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (in-process use)
        pass
    if driver_pid is not None:
        die_with(driver_pid)
    worker_context(job_json)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the number now belongs to another user's process
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:  # no /proc (macOS): os.kill said it exists
        return True


def die_with(driver_pid: int, *, interval: float = 0.5) -> None:
    """Make this worker process exit when the driver ``driver_pid`` dies.

    On Linux the kernel kills the worker when its parent dies (``PR_SET_PDEATHSIG``); a daemon thread
    checks the driver every ``interval`` seconds and, once it is gone, kills the worker's parent when
    that is not the driver (the forkserver the worker was forked from) and exits.
    """
    import signal

    if os.getpid() == driver_pid:
        return
    if os.uname().sysname == "Linux":
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl in this libc
            pass

    def watch() -> None:
        while _alive(driver_pid):
            time.sleep(interval)
        parent = os.getppid()
        if parent not in (1, driver_pid):
            try:
                os.kill(parent, signal.SIGKILL)
            except OSError:
                pass
        os._exit(1)

    threading.Thread(target=watch, name="deepscope-driver-watch", daemon=True).start()


# ---------------------------------------------------------------------------------------------- one image set
def _movie_channels(img: Any, channel: str, pipeline: Pipeline) -> dict[str, np.ndarray] | None:
    """The (T, Y, X) channels of a time-lapse image (a T axis; or, for a pipeline with a track step, the pages of a
    plain multi-page TIFF, as ``deepscope track`` reads them), None for any other image."""
    data, axes = img.data, img.axes
    for i in reversed(range(len(axes))):  # singleton axes other than Y/X go
        if axes[i] not in "YX" and data.shape[i] == 1 and data.ndim > 2:
            data, axes = np.take(data, 0, axis=i), axes[:i] + axes[i + 1:]
    t = "T" if "T" in axes else "I" if pipeline.time_lapse and "I" in axes else None
    if t is None:
        return None
    path = img.meta.path
    rest = "".join(a for a in axes if a not in (t, "Y", "X"))
    if len(rest) > 1 or (rest and rest not in "CS"):
        raise InputError(f"{path}: the image has axes {img.axes} and shape {img.shape}; a time-lapse is TYX, or TCYX "
                         "with its channels named by inputs.planes (or one chosen with inputs.plane); 3-D time-lapses "
                         "are not supported: project each time point first")
    order = [axes.index(t)] + ([axes.index(rest)] if rest else []) + [axes.index("Y"), axes.index("X")]
    data = np.transpose(data, order)
    planes, plane = pipeline.inputs.planes, pipeline.inputs.plane
    if not rest:
        if planes is not None and len(planes) != 1:
            _planes_error(path, 1, planes)
        return {channel if planes is None else planes[0]: data}
    n = data.shape[1]
    if planes is not None:
        if n != len(planes):
            _planes_error(path, n, planes)
        return {name: data[:, i] for i, name in enumerate(planes)}
    if plane is not None:
        if plane >= n:
            raise InputError(f"{path}: the time-lapse has {n} channels (0-{n - 1}); channel {plane} (inputs.plane) is "
                             "not one of them")
        return {channel: data[:, plane]}
    raise InputError(f"{path}: the time-lapse has {n} channels; choose one with inputs.plane: N, or name them all "
                     "with inputs.planes (e.g. planes: [DNA, Actin])")


def _planes_error(path: Any, n: int, planes: tuple[str, ...]) -> NoReturn:
    raise InputError(f"{path}: the image has {n} channels but inputs.planes names {len(planes)} ({', '.join(planes)})")


def _stack_channels(img: Any, channel: str, pipeline: Pipeline) -> tuple[dict[str, np.ndarray], Any, str]:
    """The (Z, Y, X) channels of a z-stack (:func:`~deepscope.tasks.segment.volume_files.read_stack`, as
    ``deepscope segment`` reads stacks), its voxel size and where that came from."""
    from deepscope.tasks.segment.volume_files import read_stack

    inp = pipeline.inputs
    path = str(img.meta.path)
    letters = (inp.axes or img.axes or "").upper()
    n = img.data.shape[letters.index("C")] if "C" in letters and len(letters) == img.data.ndim else 1
    if inp.planes is not None:
        if n != len(inp.planes):
            _planes_error(path, n, inp.planes)
        out, vs, source = {}, None, ""
        for i, name in enumerate(inp.planes):
            out[name], vs, source = read_stack(img, axes=inp.axes, channel=i, voxel_size=inp.voxel_size, path=path)
        return out, vs, source
    stack, vs, source = read_stack(img, axes=inp.axes, channel=inp.plane, voxel_size=inp.voxel_size, path=path)
    return {channel: stack}, vs, source


def _z_planes(img: Any) -> int:
    """The number of z-planes of a read image (1 where it has no Z axis)."""
    axes = img.axes or ""
    return int(img.data.shape[axes.index("Z")]) if "Z" in axes and len(axes) == img.data.ndim else 1


def _channel_images(img: Any, channel: str, pipeline: Pipeline) -> dict[str, np.ndarray]:
    from deepscope.data.transforms import to_grey

    movie = _movie_channels(img, channel, pipeline)
    if movie is not None:
        return movie
    if _z_planes(img) > 1:  # never read as channels: 2-D steps refuse it, naming the 3D route
        raise InputError(f"{img.meta.path}: a z-stack of {_z_planes(img)} planes (axes {img.axes}, shape {img.shape}); "
                         "this pipeline's steps take 2-D images: segment it in 3D with a segment step with volume: "
                         "classical (deepscope analyze does so for z-stacks), or project it first (deepscope "
                         "project)")
    yxc = img.to_yxc()
    planes = pipeline.inputs.planes
    if planes is not None:
        if yxc.shape[-1] != len(planes):
            raise InputError(f"{img.meta.path}: the image has {yxc.shape[-1]} channels but inputs.planes names "
                             f"{len(planes)} ({', '.join(planes)})")
        return {name: yxc[..., i] for i, name in enumerate(planes)}
    if yxc.shape[-1] == 1:
        return {channel: yxc[..., 0]}
    plane = pipeline.inputs.plane
    if plane is not None:
        if plane >= yxc.shape[-1]:
            raise InputError(f"{img.meta.path}: the image has {yxc.shape[-1]} channels (0-{yxc.shape[-1] - 1}); "
                             f"channel {plane} (--channel / inputs.plane) is not one of them")
        return {channel: yxc[..., plane]}
    try:
        return {channel: to_grey(yxc, path=str(img.meta.path))}
    except InputError:
        raise InputError(f"{img.meta.path}: the image has {yxc.shape[-1]} distinct channels; choose one with "
                         "--channel N (deepscope analyze; inputs.plane: N in a pipeline YAML), or name them all "
                         "with inputs.planes (e.g. planes: [DNA, Actin]) to use them") from None


def _set_sha256(files: list[dict[str, Any]]) -> str | None:
    import hashlib

    if any(f.get("sha256") is None for f in files):
        return None
    if len(files) == 1:
        return str(files[0]["sha256"])
    text = "\n".join(f"{f['channel']}:{f['sha256']}" for f in files)
    return hashlib.sha256(text.encode()).hexdigest()


def run_task(job_json: str, task: Task) -> TaskResult:
    """Process one image set of a run and write its part; failures of the image become an error part.

    Parameters
    ----------
    job_json : str
        The run's job description (pipeline, run folder, lineage run, models), made by the runner.
    task : Task
        The image set.

    Returns
    -------
    TaskResult

    Raises
    ------
    OSError
        Only if the part itself cannot be written (disk full, run folder gone): nothing else escapes.
    """
    import pyarrow as pa

    from deepscope.io import read_image, sha256_file, write_labels, write_png
    from deepscope.pipeline.inputs import set_stem
    from deepscope.predict.overlay import overlay_outlines
    from deepscope.predict.runner import BatchRunner, Decoded
    from deepscope.provenance import lineage

    t0 = time.perf_counter()
    ctx = worker_context(job_json)
    pipeline = ctx.pipeline
    files: list[dict[str, Any]] = []
    schema = objects_schema(pipeline)

    def decode(t: Task) -> Decoded:
        images: dict[str, np.ndarray] = {}
        sizes: list[Any] = []  # the files' pixel sizes: the label images carry the set's when they agree
        intervals: list[Any] = []  # the files' frame intervals (time-lapses)
        zarr_inputs: list[str] = []  # an OME-Zarr image (a plate's field) also gets its labels in labels/
        voxels: list[Any] = []  # the z-stacks' voxel sizes
        for channel, path in t.files:
            st = os.stat(path)
            info: dict[str, Any] = {"channel": channel, "path": path, "size": st.st_size,
                                    "mtime_ns": st.st_mtime_ns, "sha256": None}
            files.append(info)
            img = read_image(path)
            info["sha256"] = img.meta.sha256
            sizes.append(img.meta.pixel_size)
            if pipeline.time_lapse:
                from deepscope.tasks.track.movies import file_frame_interval

                intervals.append(file_frame_interval(img.meta))
            if img.meta.format == "ome-zarr":
                zarr_inputs.append(path)
            if pipeline.z_stack:
                chans, vs, source = _stack_channels(img, channel, pipeline)
                voxels.append(vs)
                images.update(chans)
                continue
            images.update(_channel_images(img, channel, pipeline))
        return Decoded(images, inputs=[lineage.InputRef(f["path"], f["sha256"]) for f in files],
                       extra={"pixel_size": sizes[0] if sizes and all(s == sizes[0] for s in sizes) else None,
                              "frame_interval": (intervals[0] if intervals and all(v == intervals[0] for v in intervals)
                                                 else None),
                              "ngff": zarr_inputs[0] if len(t.files) == 1 and zarr_inputs else None,
                              "voxel_size": voxels[0] if voxels else None})

    def infer(ds: list[Decoded]) -> list[SetResult]:
        return [apply_steps(pipeline, ds[0].data, segment=ctx.segment, count=ctx.count,
                            pixel_size=ds[0].extra.get("pixel_size"), run_model=ctx.run_model, track=ctx.track,
                            frame_interval=ds[0].extra.get("frame_interval"), voxel_size=ds[0].extra.get("voxel_size"),
                            segment_volume=ctx.segment_volume)]

    def write(t: Task, d: Decoded, result: SetResult, row: dict[str, Any]) -> list[Any]:
        first = next(iter(d.data.values()))
        image = {"Height": int(first.shape[-2]), "Width": int(first.shape[-1]),
                 **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in result.values.items()}}
        stem = t.stem or set_stem(t.set_id)
        written = []
        if pipeline.outputs.labels:
            for name, lab in result.labels.items():
                out = ctx.run_dir / "labels" / f"{stem}.{name}.tif"
                rec = ctx.run.record(out, inputs=d.inputs, extra={"image_set": t.set_id, "objects": name})
                if pipeline.z_stack and lab.ndim == 3:  # ZYX OME-TIFF with the voxel size, lineage in a sidecar
                    vs = d.extra.get("voxel_size")
                    rec = ctx.run.record(out, inputs=d.inputs, extra={"image_set": t.set_id, "objects": name,
                                                                      "voxel_size": list(vs) if vs else None})
                    written.append(str(write_labels(out, lab, voxel_size=vs)))
                    lineage.attach(out, rec)
                    continue
                written.append(str(write_labels(out, lab, description=lineage.embed_metadata(rec),
                                                pixel_size=d.extra.get("pixel_size"))))
                if d.extra.get("ngff") and lab.ndim == 2:
                    from deepscope.io.ngff import add_ngff_labels

                    add_ngff_labels(d.extra["ngff"], name, lab)
        flat = {name: lab for name, lab in result.labels.items() if lab.ndim == 2}  # a movie's: its CTC folder
        if pipeline.outputs.overlays and pipeline.z_stack and result.labels:  # a z-stack: its maximum projection
            from deepscope.data.stacks import project, project_labels

            proj = {name: project_labels(lab) for name, lab in result.labels.items() if lab.ndim == 3}
            out = ctx.run_dir / "overlays" / f"{stem}.png"
            write_png(out, overlay_outlines(np.asarray(project(d.data[pipeline.channels[0]], method="max"),
                                                       np.float32), proj))
            lineage.attach(out, ctx.run.record(out, inputs=d.inputs, extra={"image_set": t.set_id,
                                                                            "projection": "max"}))
            written.append(str(out))
        elif pipeline.outputs.overlays and flat and np.ndim(d.data[pipeline.channels[0]]) == 2:
            out = ctx.run_dir / "overlays" / f"{stem}.png"
            write_png(out, overlay_outlines(np.asarray(d.data[pipeline.channels[0]], np.float32), flat))
            lineage.attach(out, ctx.run.record(out, inputs=d.inputs, extra={"image_set": t.set_id}))
            written.append(str(out))
        if result.tracks:  # RUN_DIR/tracks/<stem>.<objects>/: the CTC result, with the tables deepscope track writes
            from dataclasses import replace

            from deepscope.tasks.track.files import write_track_outputs

            for name, res in result.tracks.items():
                res = replace(res, info={**res.info, "inputs": d.inputs, "image_set": t.set_id, "objects": name})
                ctc = write_track_outputs(ctx.run_dir / "tracks", f"{stem}.{name}", res, run=ctx.run)
                written.append(str(ctc))
        tables = [_to_arrow(tb, name, schema) for name, tb in result.objects.items()]
        row.update(image=image, objects=pa.concat_tables(tables) if tables else schema.empty_table())
        return [(lambda: written, {})]

    # one image set, through the runner every batch command uses; any failure becomes an error part
    outcome = BatchRunner(row=lambda t: {"error": ""}, decode=decode, infer=infer, write=write,
                          errors=(Exception,), label=lambda t: f"image set {t.set_id}",
                          describe=lambda exc: f"{type(exc).__name__}: {exc}").run([task])
    row = outcome.rows[0]
    error: str | None = row["error"] or None
    objects = row.get("objects", schema.empty_table()) if error is None else schema.empty_table()
    image = row.get("image", {}) if error is None else {}
    if error is not None:
        for channel, path in task.files[len(files):]:
            files.append({"channel": channel, "path": path, "sha256": None, "size": None, "mtime_ns": None})
        for f in files:
            if f["sha256"] is None and os.path.isfile(f["path"]):
                try:  # recorded so a resumed run can tell a changed file from the same bad file
                    st = os.stat(f["path"])
                    f.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256_file(f["path"]))
                except OSError:
                    pass
    seconds = time.perf_counter() - t0
    meta = {"schema": PART_SCHEMA, "key": task.key, "set_id": task.set_id, "status": "failed" if error else "ok",
            "error": error, "retry": bool(error) and bool(outcome.transient),
            "stem": task.stem or set_stem(task.set_id), "files": files, "input_sha256": _set_sha256(files), "image": image,
            "seconds": round(seconds, 6), "pipeline_hash": ctx.job["pipeline_hash"], "run_id": ctx.run.run_id,
            "deepscope_version": ctx.run.deepscope_version}
    write_part(part_path(ctx.run_dir, task.key), objects, meta)
    return TaskResult(task.key, task.set_id, error is None, error, objects.num_rows, seconds)
