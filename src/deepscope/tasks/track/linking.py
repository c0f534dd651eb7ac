"""Linking per-frame objects into tracks and lineages with laptrack (LAP with gap closing and splitting).

:func:`detect` turns a label stack (ids arbitrary per frame) into one row per object (frame, label, centre, area,
mean intensity); :func:`link` links the objects with :class:`laptrack.LapTrack` (Jaqaman et al. 2008: frame-to-frame
assignment, then gap closing over a few frames and splitting of a segment into two daughters) and relabels the stack
so that label = track id, in the Cell Tracking Challenge convention: a track never has a gap (a cell found again
after a gap continues as a new track whose parent is the one before), and a division ends the mother's track and
starts one per daughter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from deepscope.errors import InputError
from deepscope.tasks.track.options import TrackOptions, TrackResult

__all__ = ["detect", "link", "link_objects"]

log = logging.getLogger(__name__)


def detect(labels: np.ndarray, frames: np.ndarray | None = None, *,
           progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per object of each frame: ``frame, label, y, x, area, mean_intensity``.

    Parameters
    ----------
    labels : (T, Y, X) integer ndarray
        Per-frame instance labels (0 = background; ids need not match between frames).
    frames : (T, Y, X) ndarray, optional
        The movie, for ``mean_intensity`` (NaN without it).
    progress : callable, optional
        ``progress(done, total)`` after each frame.

    Returns
    -------
    pandas.DataFrame
        Sorted by frame and label; ``y, x`` are centroids in pixels (row, col).
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    parts = []
    for t in range(labels.shape[0]):
        lab = labels[t]
        ids = np.unique(lab)
        ids = ids[ids != 0]
        if progress is not None:
            progress(t + 1, labels.shape[0])
        if not len(ids):
            continue
        ones = np.ones(lab.shape, np.float64)
        area = ndi.sum_labels(ones, lab, ids)
        yy, xx = np.indices(lab.shape, dtype=np.float64)
        y = ndi.sum_labels(yy, lab, ids) / area
        x = ndi.sum_labels(xx, lab, ids) / area
        mean = (ndi.mean(np.asarray(frames[t], np.float64), lab, ids) if frames is not None
                else np.full(len(ids), np.nan))
        parts.append(pd.DataFrame({"frame": t, "label": ids.astype(np.int64), "y": y, "x": x,
                                   "area": area.astype(np.int64), "mean_intensity": mean}))
    cols = ["frame", "label", "y", "x", "area", "mean_intensity"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in cols})


def _tracker(options: TrackOptions, diameter: float) -> Any:
    from laptrack import LapTrack

    dist = options.max_distance if options.max_distance is not None else options.distance_factor * diameter
    split = options.split_distance if options.split_distance is not None else dist
    kwargs: dict[str, Any] = dict(cutoff=float(dist) ** 2,
                                  gap_closing_cutoff=(float(dist) * 1.5) ** 2 if options.max_gap else False,
                                  gap_closing_max_frame_count=max(int(options.max_gap), 1),
                                  splitting_cutoff=float(split) ** 2 if options.divisions else False,
                                  merging_cutoff=False,
                                  # a segment that starts within reach of another track joins it (a daughter, a
                                  # cell found again) rather than starting afresh: laptrack's estimate of this cost
                                  # (a percentile of the candidates' costs) left about one division in ten unlinked
                                  # on the synthetic movies (benchmarks/bench_track.py), this finds them all there
                                  segment_start_cost=float(dist) ** 2)
    return LapTrack(**kwargs)


def link_objects(objects: pd.DataFrame, options: TrackOptions | None = None, *,
                 diameter: float | None = None) -> tuple[pd.DataFrame, dict[int, int]]:
    """Link a table of objects (from :func:`detect`) into CTC tracks.

    Returns
    -------
    (pandas.DataFrame, dict)
        The objects with a ``track_id`` column (1, 2, ... in order of first appearance), and track id -> parent id.
    """
    options = options or TrackOptions()
    objects = objects.sort_values(["frame", "label"], ignore_index=True)
    if objects.empty:
        return objects.assign(track_id=pd.Series(dtype=np.int64)), {}
    if diameter is None:
        diameter = float(2 * np.sqrt(np.median(objects["area"]) / np.pi))
    n_frames = int(objects["frame"].max()) + 1
    coords, rows = [], []
    for t in range(n_frames):
        sel = np.flatnonzero(objects["frame"].to_numpy() == t)
        coords.append(objects.loc[sel, ["y", "x"]].to_numpy(np.float64).reshape(-1, 2))
        rows.append(sel)
    tree = _tracker(options, diameter).predict(coords)
    node_row = {(t, i): int(rows[t][i]) for t in range(n_frames) for i in range(len(rows[t]))}
    track_of: dict[tuple[int, int], int] = {}
    parents: dict[int, int] = {}
    next_id = 1
    for node in sorted(tree.nodes):  # frame order: every predecessor is numbered before its successors
        preds = list(tree.predecessors(node))
        if len(preds) > 1:  # merging is off, so this does not happen; keep the nearest in time
            preds = [max(preds)]
        if preds:
            p = preds[0]
            if len(list(tree.successors(p))) == 1 and node[0] - p[0] == 1:
                track_of[node] = track_of[p]
                continue
            parents[next_id] = track_of[p]
        track_of[node] = next_id
        next_id += 1
    ids = np.zeros(len(objects), np.int64)
    for node, tid in track_of.items():
        ids[node_row[node]] = tid
    if (ids == 0).any():  # every object is a node of laptrack's graph
        raise RuntimeError("laptrack left objects out of its graph")
    return objects.assign(track_id=ids), parents


def link(labels: np.ndarray, *, frames: np.ndarray | None = None, options: TrackOptions | None = None,
         pixel_size: float | None = None, frame_interval: float | None = None,
         progress: Callable[[int, int], None] | None = None) -> TrackResult:
    """Link the objects of a label stack into tracks: the stack relabelled with track ids and the CTC table.

    Parameters
    ----------
    labels : (T, Y, X) integer ndarray
        Per-frame instance labels (ids arbitrary per frame, 0 = background).
    frames : (T, Y, X) ndarray, optional
        The movie (for the objects' mean intensity).
    options : TrackOptions, optional
        Linking distances, gap length, divisions (defaults from the objects' size).
    pixel_size, frame_interval : float, optional
        Micrometres per pixel and time per frame, carried into the result's tables.
    progress : callable, optional
        Called as ``progress(done, total)`` per frame detected.

    Returns
    -------
    TrackResult

    Raises
    ------
    deepscope.errors.InputError
        If ``labels`` is not a (T, Y, X) integer stack of at least two frames, or ``frames`` does not match it.

    Examples
    --------
    >>> from deepscope.data.synth import generate_movie
    >>> m = generate_movie(6, frames=5, size=(80, 80), cycle=(40, 50), enter_rate=0, seed=0)
    >>> r = link(m.labels)
    >>> r.labels.shape, len(r.tracks) == len(m.tracks)
    ((5, 80, 80), True)
    """
    from deepscope.io.ctc import tracks_from_labels

    labels = np.asarray(labels)
    if labels.ndim != 3 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise InputError(f"labels must be an integer (T, Y, X) stack; got {labels.dtype} of shape {labels.shape}")
    if labels.shape[0] < 2:
        raise InputError(f"a time-lapse needs at least 2 frames to track; got {labels.shape[0]}")
    if frames is not None and np.shape(frames) != labels.shape:
        raise InputError(f"frames of shape {np.shape(frames)} do not match labels of shape {labels.shape}")
    options = options or TrackOptions()
    objects = detect(labels, frames, progress=progress)
    linked, parents = link_objects(objects, options)
    if len(linked) and int(linked["track_id"].max()) > 65535:
        raise InputError(f"{int(linked['track_id'].max())} tracks do not fit the CTC format's uint16 masks")
    out = np.zeros(labels.shape, np.int32)
    for t in range(labels.shape[0]):
        sel = linked[linked["frame"] == t]
        if len(sel):
            lut = np.zeros(int(labels[t].max()) + 1, np.int32)
            lut[sel["label"].to_numpy()] = sel["track_id"].to_numpy()
            out[t] = lut[labels[t]]
    tracks = tracks_from_labels(out, parents)
    return TrackResult(labels=out, tracks=tracks, objects=linked.drop(columns=["label"]),
                       pixel_size=pixel_size, frame_interval=frame_interval)
