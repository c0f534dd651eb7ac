"""The track task's pipeline step, ``- track: {objects: Nuclei, channel: Movie, model: nuclei}``.

:class:`TrackStep` is what the step holds once validated, :meth:`TrackStep.parse` reads it from a pipeline spec
(the track plugin names it in ``pipeline_step``, which is how :mod:`deepscope.pipeline.spec` finds it); see
``docs/pipelines.md`` for its keys. The step runs the task's own library code on the image set's movie
(:func:`~deepscope.tasks.track.files.track_movie`: each frame segmented, or a label channel taken as masks, then
:func:`~deepscope.tasks.track.linking.link`), so a pipeline gives the tracks ``deepscope track`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from deepscope.tasks.contracts import StepReader
    from deepscope.tasks.track.options import TrackOptions, TrackResult

__all__ = ["TrackStep", "TRACK_OBJECT_COLUMNS"]

#: Columns of a tracked object set's table besides ``Intensity_MeanIntensity_<channel>`` (one row per object
#: per frame; ``ObjectNumber`` is the track id, the object's label in the set's label stack and CTC masks).
TRACK_OBJECT_COLUMNS = ("ObjectNumber", "TrackObjects_Frame", "TrackObjects_Time", "TrackObjects_ParentTrackId",
                        "Location_Center_X", "Location_Center_Y", "AreaShape_Area")


@dataclass(frozen=True)
class TrackStep:
    """Track the cells of a time-lapse channel into the object set ``objects``.

    Each frame of ``channel`` (a movie: T x Y x X) is segmented with ``model`` (a shipped segmentation model,
    ``otsu-watershed`` with its ``options``, or the path of a model folder / card), or the channel ``masks`` (a
    movie of label images, ids arbitrary per frame) is taken as the objects; the objects are then linked into
    tracks and lineages with laptrack, as ``deepscope track`` does. ``max_distance``, ``split_distance`` (pixels),
    ``max_gap`` (frames) and ``divisions`` are the linking options of
    :class:`~deepscope.tasks.track.options.TrackOptions`; ``diameter``, ``per_frame_diameter`` (skip the movie's
    scale check, :mod:`deepscope.tasks.track.scale`) and the thresholds those of the segmentation model.
    ``pixel_size`` (micrometres) and ``frame_interval`` override what the files state (None: the files').

    Examples
    --------
    >>> from deepscope.pipeline import Pipeline
    >>> p = Pipeline.from_dict({"inputs": {"paths": ["/d"]},
    ...                         "steps": [{"track": {"objects": "Cells", "model": "otsu-watershed", "max_gap": 1}}]})
    >>> step = p.steps[0]
    >>> type(step).__name__, step.objects, step.channel, step.max_gap, step.model_refs
    ('TrackStep', 'Cells', 'Image', 1, ('otsu-watershed',))
    """

    objects: str
    channel: str
    model: str | None = "nuclei"
    masks: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    diameter: float | None = None
    per_frame_diameter: bool = False
    prob_threshold: float | None = None
    flow_threshold: float | None = None
    min_size: int | None = None
    max_distance: float | None = None
    split_distance: float | None = None
    max_gap: int = 2
    divisions: bool = True
    pixel_size: float | None = None
    frame_interval: float | None = None
    kind: str = field(default="track", init=False)
    #: The step reads movies (T x Y x X channels): a pipeline with it reads its image sets as time-lapses.
    time_lapse: ClassVar[bool] = True
    #: The task of the models it runs (segmentation models, for the frames).
    model_task: ClassVar[str] = "segment"

    @property
    def made_objects(self) -> str | None:
        """The object set the step makes (one object per track per frame)."""
        return self.objects

    @property
    def model_refs(self) -> tuple[str, ...]:
        """The segmentation model the step runs (none with ``masks``)."""
        return () if self.model is None else (self.model,)

    def to_dict(self) -> dict[str, Any]:
        """The resolved options (:meth:`parse` reads them back)."""
        opts: dict[str, Any] = {"objects": self.objects, "channel": self.channel}
        if self.masks is not None:
            opts["masks"] = self.masks
        else:
            opts["model"] = self.model
            if self.options:
                opts["options"] = dict(self.options)
            if self.per_frame_diameter:
                opts["per_frame_diameter"] = True
        for k in ("diameter", "prob_threshold", "flow_threshold", "min_size", "max_distance", "split_distance",
                  "pixel_size", "frame_interval"):
            if getattr(self, k) is not None:
                opts[k] = getattr(self, k)
        opts.update(max_gap=self.max_gap, divisions=self.divisions)
        return opts

    @classmethod
    def parse(cls, opts: Any, r: StepReader) -> TrackStep:
        """Validate the step's mapping (``r``: the pipeline spec's reader, whose errors name the key and line).

        Raises
        ------
        deepscope.errors.ConfigError
            An unknown key, a wrong value, a channel that does not exist, an object set name already taken, or an
            option that does not go with the objects' source (``model`` and ``masks`` both, segmentation options
            with ``masks``, ``diameter`` or thresholds for ``otsu-watershed``, ``options`` for a trained model).
        """
        from deepscope.tasks.segment.pipeline_step import (CLASSICAL_SEGMENTERS, OTSU_OPTIONS, THRESHOLDS,
                                                           segment_thresholds)

        p = r.path
        d = r.mapping(opts, p, ("objects", "channel", "model", "masks", "options", "diameter", "per_frame_diameter",
                                *THRESHOLDS, "max_distance", "split_distance", "max_gap", "divisions", "pixel_size",
                                "frame_interval"))
        chan = r.channel(d.get("channel"), p + ("channel",))
        masks = model = None
        options: Any = d.get("options") or {}
        thresholds: dict[str, Any] = {}
        diameter = None
        per_frame = False
        if d.get("masks") is not None:
            if d.get("model") is not None:
                r.fail(p + ("model",), "give model (each frame segmented) or masks (a channel of label images), not "
                                       "both")
            masks = r.channel(d["masks"], p + ("masks",))
            if masks == chan:
                r.fail(p + ("masks",), f"masks names the channel the step tracks ({chan!r}); give the channel of "
                                       "the label images")
            for k in ("options", "diameter", "per_frame_diameter", *THRESHOLDS):
                if d.get(k) is not None and d.get(k) is not False:
                    r.fail(p + (k,), f"{k} is for segmenting the frames with a model; with masks only linking runs")
        else:
            model = r.model_ref(d.get("model", "nuclei"), p + ("model",), task="segment",
                                builtin=CLASSICAL_SEGMENTERS, also=", " + ", ".join(CLASSICAL_SEGMENTERS))
            if d.get("diameter") is not None:
                if model in CLASSICAL_SEGMENTERS:
                    r.fail(p + ("diameter",), f"diameter is for the generalist models; {model} takes its settings "
                                              "from options")
                diameter = r.number(d["diameter"], p + ("diameter",), lo=1, hi=10000)
            per_frame = d.get("per_frame_diameter", False)
            if not isinstance(per_frame, bool):
                r.fail(p + ("per_frame_diameter",), f"expected true or false; got {r.type_name(per_frame)} "
                                                    f"{per_frame!r}")
            if per_frame and model in CLASSICAL_SEGMENTERS:
                r.fail(p + ("per_frame_diameter",), f"per_frame_diameter is for the generalist models; {model} "
                                                    "estimates no diameter")
            thresholds = segment_thresholds(r, d, p, model)
            if not isinstance(options, dict):
                r.fail(p + ("options",), f"expected a mapping of options; got {r.type_name(options)}")
            if options and model not in CLASSICAL_SEGMENTERS:
                r.fail(p + ("options",), "options are for model: otsu-watershed; a trained model takes its settings "
                                         "from its model card")
            for k in options:
                if k not in OTSU_OPTIONS:
                    r.fail(p + ("options", k), f"unknown option of otsu-watershed; valid options are "
                                               f"{', '.join(OTSU_OPTIONS)}")
        lengths: dict[str, Any] = {}
        for k in ("max_distance", "split_distance", "pixel_size", "frame_interval"):
            if d.get(k) is not None and d[k] != "files":
                lengths[k] = r.number(d[k], p + (k,), positive=True)
                if not np.isfinite(lengths[k]):
                    r.fail(p + (k,), f"expected a finite number > 0; got {d[k]!r}")
        max_gap = r.integer(d.get("max_gap", 2), p + ("max_gap",), minimum=0)
        divisions = d.get("divisions", True)
        if not isinstance(divisions, bool):
            r.fail(p + ("divisions",), f"expected true or false; got {r.type_name(divisions)} {divisions!r}")
        if d.get("objects") is None and "Nuclei" in r.objects:
            r.fail(p, f"missing key 'objects': name the object set this step makes ('Nuclei' is already made by "
                      f"step {r.objects['Nuclei']})")
        objs = r.new_objects(d.get("objects", "Nuclei"), p + ("objects",))
        return cls(objects=objs, channel=chan, model=model, masks=masks, options=dict(options), diameter=diameter,
                   per_frame_diameter=per_frame, max_gap=max_gap, divisions=divisions, **thresholds, **lengths)

    # ------------------------------------------------------------------ running it
    def track_options(self) -> TrackOptions:
        """The step's options as the track task's :class:`~deepscope.tasks.track.options.TrackOptions`."""
        from deepscope.tasks.track.options import TrackOptions

        return TrackOptions(max_distance=self.max_distance, split_distance=self.split_distance, max_gap=self.max_gap,
                            divisions=self.divisions, model=self.model or "nuclei", diameter=self.diameter,
                            per_frame_diameter=self.per_frame_diameter, prob_threshold=self.prob_threshold,
                            flow_threshold=self.flow_threshold, min_size=self.min_size)

    def run(self, movie: np.ndarray, *, masks: np.ndarray | None = None, model: Any = None,
            pixel_size: float | None = None, frame_interval: float | None = None,
            path: str = "") -> TrackResult:
        """Track one movie with the task's :func:`~deepscope.tasks.track.files.track_movie` (what ``deepscope track``
        runs): each frame segmented (``model``: the loaded segmentation model; None: load ``self.model``) or
        ``masks`` linked. ``pixel_size`` and ``frame_interval`` are the files' (the step's own win).

        Raises
        ------
        deepscope.errors.InputError
            ``movie`` is not a (T, Y, X) time-lapse of at least 2 frames, or ``masks`` are not integer labels of
            its shape.
        """
        from deepscope.errors import InputError
        from deepscope.tasks.track.files import track_movie
        from deepscope.tasks.track.movies import Movie

        frames = np.asarray(movie)
        if frames.ndim != 3:
            raise InputError(f"channel {self.channel!r} is a 2-D image (shape {frames.shape}); the track step needs a "
                             "time-lapse: a TYX (or TCYX with inputs.plane / inputs.planes) TIFF, OME-TIFF or "
                             "OME-Zarr, or a multi-page TIFF whose pages are its frames")
        if frames.shape[0] < 2:
            raise InputError(f"channel {self.channel!r} has one frame; tracking needs at least 2")
        info: dict[str, Any] = {}
        if masks is not None:
            masks = np.asarray(masks)
            if not (np.issubdtype(masks.dtype, np.integer) or masks.dtype == bool):
                raise InputError(f"masks channel {self.masks!r} holds {masks.dtype} values; masks are integer label "
                                 "images (0 = background): leave the channel out of normalize steps")
            if masks.shape != frames.shape:
                raise InputError(f"masks channel {self.masks!r} has shape {masks.shape} but the movie "
                                 f"{self.channel!r} has {frames.shape}; give one label image per frame")
            masks = masks.astype(np.int32, copy=False)
        elif self.model == "otsu-watershed":  # classical, no weights: the same per-frame labels as a segment step
            from deepscope.predict.classical import otsu_watershed

            masks = np.stack([np.asarray(otsu_watershed(f, **self.options), np.int32) for f in frames])
            info = {"source": "model", "model": self.model}
        mv = Movie(frames, Path(path), pixel_size, frame_interval)
        res = track_movie(mv, masks=masks, options=self.track_options(), model=model, pixel_size=self.pixel_size,
                          frame_interval=self.frame_interval)
        if info:
            res.info.update(info)
        return res

    def object_table(self, result: TrackResult) -> pd.DataFrame:
        """One row per object per frame (:data:`TRACK_OBJECT_COLUMNS`, then ``Intensity_MeanIntensity_<channel>``):
        ``ObjectNumber`` is the track id, ``TrackObjects_ParentTrackId`` the parent track's (the mother of a
        daughter, the track before a gap; 0 = none), ``TrackObjects_Time`` the frame's time in the frame interval's
        unit (NaN where unknown); positions and areas in pixels."""
        import pandas as pd

        o = result.object_table()
        table = pd.DataFrame({
            "ObjectNumber": o["track_id"].to_numpy(np.int64),
            "TrackObjects_Frame": o["frame"].to_numpy(np.int64),
            "TrackObjects_Time": o["time"].to_numpy(np.float64),
            "TrackObjects_ParentTrackId": o["parent_id"].to_numpy(np.int64),
            "Location_Center_X": o["x_px"].to_numpy(np.float64),
            "Location_Center_Y": o["y_px"].to_numpy(np.float64),
            "AreaShape_Area": o["area_px"].to_numpy(np.int64),
            f"Intensity_MeanIntensity_{self.channel}": o["mean_intensity"].to_numpy(np.float64)})
        table = table.sort_values(["TrackObjects_Frame", "ObjectNumber"], ignore_index=True)
        table.attrs["object_name"] = self.objects
        # not measurements: the pipeline gives no Mean_/Median_/StDev_ of them
        table.attrs["identifiers"] = ("TrackObjects_Frame", "TrackObjects_Time", "TrackObjects_ParentTrackId")
        return table

    def image_values(self, result: TrackResult) -> dict[str, Any]:
        """The image set's values: ``Count_<objects>`` (objects over all frames: the table's rows),
        ``Tracks_<objects>``, ``Divisions_<objects>``, ``Frames_<objects>``, ``MeanSpeed_<objects>`` (mean of the
        tracks' mean speeds, in ``SpeedUnit_<objects>``), ``PixelSize_<objects>``, ``FrameInterval_<objects>``
        (NaN where unknown) and ``InDomain_<objects>`` (1 when every frame looked like the model's training images,
        0 when not, NaN without a check)."""
        n = self.objects
        tracks = result.track_table()
        speeds = tracks["mean_speed"].to_numpy(np.float64)
        speeds = speeds[np.isfinite(speeds)]
        dom = result.info.get("in_domain")
        unit = ("um" if result.pixel_size is not None else "px") + "/" + (
            "time" if result.frame_interval is not None else "frame")
        return {f"Count_{n}": int(len(result.objects)), f"Tracks_{n}": int(result.n_tracks),
                f"Divisions_{n}": int(result.n_divisions), f"Frames_{n}": int(result.labels.shape[0]),
                f"MeanSpeed_{n}": float(speeds.mean()) if speeds.size else float("nan"), f"SpeedUnit_{n}": unit,
                f"PixelSize_{n}": float("nan") if result.pixel_size is None else float(result.pixel_size),
                f"FrameInterval_{n}": float("nan") if result.frame_interval is None else float(result.frame_interval),
                f"InDomain_{n}": float("nan") if dom is None else float(bool(dom))}
