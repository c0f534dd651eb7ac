"""Tracking movies end to end: read, segment each frame (or read masks), link, write the outputs with lineage.

Per movie ``<stem>``, under ``OUT``:

* ``<stem>/``: the Cell Tracking Challenge result (``mask000.tif`` ... uint16, label = track id; ``res_track.txt``
  with ``L B E P`` lines), what CTC tools and ``deepscope evaluate track`` read;
* ``<stem>.tracks.csv``: one row per object per frame (:data:`~deepscope.tasks.track.options.OBJECT_COLUMNS`);
* ``<stem>.track_summary.csv``: one row per track (:data:`~deepscope.tasks.track.options.TRACK_COLUMNS`);
* a lineage sidecar (``.prov.json``) beside each table and ``res_track.txt``;

and ``OUT/movies.csv``, one row per movie (the object size the frames were segmented at and where it came from,
:data:`DIAMETER_SOURCES`; an ``error`` column for a movie that failed: a batch goes on).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepscope.errors import DeepscopeError, InputError
from deepscope.tasks.track.linking import link
from deepscope.tasks.track.movies import Movie, read_masks, read_movie
from deepscope.tasks.track.options import TrackOptions, TrackResult, check_physical

__all__ = ["segment_frames", "movie_diameter", "track_movie", "track_paths", "write_track_outputs", "TrackRun",
           "MOVIE_COLUMNS", "DIAMETER_SOURCES"]

log = logging.getLogger(__name__)

#: Columns of ``OUT/movies.csv``.
MOVIE_COLUMNS = ("path", "stem", "frames", "objects", "tracks", "divisions", "diameter", "diameter_source",
                 "pixel_size", "frame_interval", "in_domain", "result", "error")
#: ``diameter_source`` of movies.csv: how the frames' object size was set (``diameter``, px, is blank unless one size
#: was used for every frame)
DIAMETER_SOURCES = {"given": "--diameter", "scale check": "one size for the movie, where objects persist between "
                    "frames (deepscope.tasks.track.scale)", "per frame": "each frame's own size estimate",
                    "model": "the model's own scale (it estimates no size)", "masks": "no segmentation (--masks)"}

Progress = Callable[[int, int], None]


def segment_frames(frames: np.ndarray, model: Any = "nuclei", *, diameter: float | None = None,
                   progress: Progress | None = None, **segment: Any) -> tuple[np.ndarray, list[bool | None]]:
    """Segment every frame of a (T, Y, X) movie with a segmentation model (its ``run``, as ``deepscope segment``).

    Parameters
    ----------
    frames : (T, Y, X) ndarray
    model : str or model
        A shipped name, run folder or card, or a loaded segmentation model.
    diameter : float, optional
        Object diameter in pixels (generalist models; None: estimated per frame).
    progress : callable, optional
        ``progress(done, total)`` after each frame.
    **segment
        Other segmentation options, as ``deepscope segment`` takes them (``prob_threshold``, ``flow_threshold``,
        ``min_size``); None leaves the model card's value.

    Returns
    -------
    ((T, Y, X) int32 ndarray, list)
        Per-frame instance labels (ids independent per frame), and per frame the model's domain check (True: the
        frame looks like the model's training images, False: it does not, None: the model has no check).

    Raises
    ------
    deepscope.errors.InputError
        If the model is not a segmentation model.
    """
    net = _segmenter(model)
    given = _given(diameter=diameter, **segment)
    out = np.zeros(frames.shape, np.int32)
    in_domain: list[bool | None] = []
    for t in range(frames.shape[0]):
        res = net.run(frames[t], **given)
        out[t] = np.asarray(res.labels, np.int32)
        in_domain.append(getattr(res, "in_domain", None))
        if progress is not None:
            progress(t + 1, frames.shape[0])
    return out, in_domain


def _segmenter(model: Any) -> Any:
    """The loaded segmentation model (a name, folder or card is loaded on the CPU)."""
    from deepscope.models import load_model

    net = load_model(model, device="cpu") if isinstance(model, (str, os.PathLike)) else model
    if getattr(net, "task", None) != "segment":
        raise InputError(f"model {getattr(net, 'name', model)!r} is a {getattr(net, 'task', '?')} model; tracking "
                         "needs a segmentation model (e.g. nuclei) or --masks")
    return net


def _given(**options: Any) -> dict[str, Any]:
    """The segmentation options that were given (None leaves the model card's value)."""
    return {k: v for k, v in options.items() if v is not None}


def movie_diameter(frames: np.ndarray, net: Any, options: TrackOptions, *,
                   progress: Progress | None = None) -> tuple[float | None, dict[str, Any] | None]:
    """The one object diameter every frame of a (T, Y, X) movie is segmented at, or None (each frame at its own
    estimate), and the record of the movie's scale check (:func:`deepscope.tasks.track.scale.choose_diameter`; None
    where it did not run: a given ``diameter``, ``per_frame_diameter``, or a single frame)."""
    if (options.diameter is not None or options.per_frame_diameter or frames.shape[0] < 2
            or not _estimates_diameter(net)):
        return options.diameter, None
    from deepscope.tasks.track.scale import choose_diameter

    thresholds = _given(prob_threshold=options.prob_threshold, flow_threshold=options.flow_threshold,
                        min_size=options.min_size)

    def run(frame: np.ndarray, diameter: float | None = None) -> Any:
        return net.run(frame, **_given(diameter=diameter, **thresholds))

    diameter, scale = choose_diameter(frames, run, progress=progress)
    if diameter is not None:
        log.info("objects cut at the estimated diameter (%s px) do not persist between frames; every frame is "
                 "segmented at %s px", scale["estimate"], diameter)
    return diameter, scale


def _diameter_source(options: TrackOptions, scale: dict[str, Any] | None, net: Any) -> str:
    """The ``diameter_source`` (:data:`DIAMETER_SOURCES`) of a movie segmented with ``net``."""
    if options.diameter is not None:
        return "given"
    if scale is not None:
        return {"coherence": "scale check", "estimate": "per frame"}.get(str(scale.get("reason")), "model")
    return "per frame" if _estimates_diameter(net) else "model"


def _estimates_diameter(net: Any) -> bool:
    """Whether a segmentation model estimates each image's object diameter (its plugin says; a stand-in without
    one is asked, by the scale check's probes)."""
    return bool(getattr(getattr(net, "plugin", None), "estimates_diameter", True))


def track_movie(movie: Movie | str | os.PathLike[str], *, masks: str | os.PathLike[str] | np.ndarray | None = None,
                options: TrackOptions | None = None, model: Any = None, pixel_size: float | None = None,
                frame_interval: float | None = None, progress: Progress | None = None) -> TrackResult:
    """Track one movie: read it, segment each frame (or take ``masks``) and link.

    Parameters
    ----------
    movie : Movie or path
        A movie (:func:`~deepscope.tasks.track.movies.read_movie`) or its path.
    masks : path or (T, Y, X) ndarray, optional
        Per-frame label images; only linking runs.
    options : TrackOptions, optional
    model : loaded model, optional
        Used instead of loading ``options.model`` (a batch loads it once).
    pixel_size, frame_interval : float, optional
        Override what the file states (micrometres per pixel; time per frame).
    progress : callable, optional
        ``progress(done, total)`` per frame.

    Raises
    ------
    deepscope.errors.InputError
        Bad movie or masks (see :func:`read_movie`, :func:`read_masks`), a pixel size or frame interval that is not
        a positive number.
    """
    options = options or TrackOptions()
    check_physical(pixel_size, frame_interval)
    mv = movie if isinstance(movie, Movie) else read_movie(movie, channel=options.channel)
    px = pixel_size if pixel_size is not None else mv.pixel_size
    dt = frame_interval if frame_interval is not None else mv.frame_interval
    inputs = list(mv.inputs)
    if masks is None:
        net = _segmenter(model if model is not None else options.model)

        def check_progress(done: int, total: int) -> None:
            if progress is not None:
                progress(done, total + mv.frames.shape[0])

        diameter, scale = movie_diameter(mv.frames, net, options, progress=check_progress)
        offset = int(scale.get("frames_segmented", 0)) if scale else 0

        def frame_progress(done: int, total: int) -> None:
            if progress is not None:
                progress(offset + done, offset + total)

        labels, checks = segment_frames(mv.frames, net, diameter=diameter, progress=frame_progress,
                                        prob_threshold=options.prob_threshold, flow_threshold=options.flow_threshold,
                                        min_size=options.min_size)
        known = [c for c in checks if c is not None]
        info: dict[str, Any] = {"source": "model", "model": str(getattr(net, "name", options.model)),
                                "in_domain": all(known) if known else None,
                                "frames_out_of_domain": sum(1 for c in known if not c),
                                "diameter": diameter,
                                "diameter_source": _diameter_source(options, scale, net)}
        if scale is not None:
            info["scale"] = scale
        if known and not all(known):
            import warnings

            warnings.warn(f"{mv.path}: {info['frames_out_of_domain']} of {len(checks)} frame(s) do not look like the "
                          f"images model {info['model']!r} was trained on; check the tracks", stacklevel=2)
    elif isinstance(masks, np.ndarray):
        labels = masks
        if labels.shape != mv.frames.shape:
            raise InputError(f"masks of shape {labels.shape} do not match the movie's {mv.frames.shape}")
        info = {"source": "masks", "diameter_source": "masks"}
    else:
        labels, mask_inputs = read_masks(masks, n_frames=mv.frames.shape[0], shape=mv.frames.shape[1:])
        inputs += list(mask_inputs)
        info = {"source": "masks", "masks": str(masks), "diameter_source": "masks"}
    result = link(labels, frames=mv.frames, options=options, pixel_size=px, frame_interval=dt,
                  progress=progress if masks is not None else None)
    info["inputs"] = inputs
    return TrackResult(result.labels, result.tracks, result.objects, px, dt, info)


def write_track_outputs(out: str | os.PathLike[str], stem: str, result: TrackResult, *, run: Any = None) -> Path:
    """Write one movie's CTC folder, ``<stem>.tracks.csv`` and ``<stem>.track_summary.csv`` (with lineage
    sidecars when ``run`` is a :class:`deepscope.provenance.lineage.Run`); returns the CTC folder."""
    from deepscope.io import csv_text, write_text
    from deepscope.io.ctc import write_ctc_result

    out = Path(out)
    ctc = write_ctc_result(out / stem, result.labels, result.tracks)
    tables = [(ctc / "res_track.txt", None), (out / f"{stem}.tracks.csv", result.object_table()),
              (out / f"{stem}.track_summary.csv", result.track_table())]
    for path, table in tables:
        if table is not None:
            write_text(path, csv_text(table))
        if run is not None:
            from deepscope.provenance import lineage

            rec = run.record(path, inputs=result.info.get("inputs", ()),
                             extra={"tracks": result.n_tracks, "divisions": result.n_divisions,
                                    "frames": int(result.labels.shape[0]), "pixel_size": result.pixel_size,
                                    "frame_interval": result.frame_interval,
                                    **{k: v for k, v in result.info.items() if k != "inputs"}})
            lineage.attach(path, rec)
    return ctc


@dataclass(frozen=True, eq=False)
class TrackRun:
    """What :func:`track_paths` did: one row per movie (:data:`MOVIE_COLUMNS`)."""

    table: pd.DataFrame

    @property
    def n_movies(self) -> int:
        return int(len(self.table))

    @property
    def n_failed(self) -> int:
        return int((self.table["error"] != "").sum())

    @property
    def all_failed(self) -> bool:
        return self.n_movies > 0 and self.n_failed == self.n_movies

    def summary(self) -> str:
        return f"{self.n_movies - self.n_failed} of {self.n_movies} movie(s) done, {self.n_failed} failed"


def track_paths(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                masks: str | os.PathLike[str] | None = None, options: TrackOptions | None = None,
                pixel_size: float | None = None, frame_interval: float | None = None,
                progress: Callable[[str], Progress | None] | None = None) -> TrackRun:
    """Track movies into ``out`` (see the module docs); a movie that fails gets an error row and the others go on.

    Parameters
    ----------
    paths : sequence of path
        Movies (files or frame folders).
    masks : path, optional
        Label images for the one movie given (a stack or a folder); only linking runs.
    progress : callable, optional
        ``progress(stem)`` returns the per-frame ``progress(done, total)`` callback of one movie.

    Raises
    ------
    deepscope.errors.InputError
        ``masks`` with more than one movie, a bad pixel size or frame interval (before anything runs).
    FileNotFoundError
        A movie or the masks do not exist.
    """
    from deepscope.io import csv_text, write_text
    from deepscope.provenance import lineage

    options = options or TrackOptions()
    movies = [Path(p) for p in paths]
    check_physical(pixel_size, frame_interval)
    if not movies:
        raise InputError("no movie given")
    for p in movies:
        if not p.exists():
            raise FileNotFoundError(f"No such movie: '{p}'")
    if masks is not None and len(movies) != 1:
        raise InputError(f"--masks gives the labels of one movie; {len(movies)} movies were given")
    if masks is not None and not Path(masks).exists():
        raise FileNotFoundError(f"No such masks: '{masks}'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = None
    models: list[Any] = []
    if masks is None:
        from deepscope.models import load_model

        model = load_model(options.model, device="cpu")
        sha = model.model_card.weights.sha256 if model.model_card.weights else ""
        models = [lineage.ModelRef(str(model.name), sha, card={"ref": str(options.model), "task": model.task})]
    params = {"paths": [str(p) for p in movies], "masks": str(masks) if masks else None,
              "pixel_size": pixel_size, "frame_interval": frame_interval,
              **{k: getattr(options, k) for k in options.__dataclass_fields__}}
    rows = []
    seen: dict[str, str] = {}
    with lineage.Run.start(command="track", params=params, models=models) as run:
        for p in movies:
            row: dict[str, Any] = {c: "" for c in MOVIE_COLUMNS} | {"path": str(p)}
            try:
                mv = read_movie(p, channel=options.channel)
                row["stem"] = stem = mv.stem
                if stem in seen:
                    raise InputError(f"{p}: another movie of this run ({seen[stem]}) has the output name {stem!r}; "
                                     "track it into another --out folder")
                seen[stem] = str(p)
                res = track_movie(mv, masks=masks, options=options, model=model, pixel_size=pixel_size,
                                  frame_interval=frame_interval, progress=progress(stem) if progress else None)
                ctc = write_track_outputs(out, stem, res, run=run)
                row.update(frames=int(res.labels.shape[0]), objects=int(len(res.objects)), tracks=res.n_tracks,
                           divisions=res.n_divisions, diameter=res.info.get("diameter") or "",
                           diameter_source=res.info.get("diameter_source", ""), pixel_size=res.pixel_size,
                           frame_interval=res.frame_interval,
                           in_domain=res.info.get("in_domain"), result=str(ctc))
            except (DeepscopeError, OSError) as exc:
                log.warning("%s: %s", p, exc)
                row["error"] = " ".join(str(exc).split())
            rows.append(row)
        table = pd.DataFrame(rows, columns=list(MOVIE_COLUMNS))
        write_text(out / "movies.csv", csv_text(table))
        lineage.attach(out / "movies.csv", run.record(out / "movies.csv",
                                                      extra={"movies": len(rows), "failed": int(
                                                          (table["error"] != "").sum())}))
    return TrackRun(table)
