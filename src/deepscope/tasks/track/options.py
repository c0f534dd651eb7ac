"""The track task's options and result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepscope.errors import InputError
from deepscope.tasks.options import TaskOptions

__all__ = ["TrackOptions", "TrackResult", "OBJECT_COLUMNS", "TRACK_COLUMNS"]

#: Columns of ``<stem>.tracks.csv`` (one row per object per frame).
OBJECT_COLUMNS = ("track_id", "parent_id", "frame", "time", "y_px", "x_px", "y_um", "x_um", "area_px", "area_um2",
                  "mean_intensity")
#: Columns of ``<stem>.track_summary.csv`` (one row per track).
TRACK_COLUMNS = ("track_id", "parent_id", "generation", "start", "end", "length", "duration", "divides",
                 "division_time", "cycle_time", "mean_speed", "displacement", "path_length", "straightness",
                 "speed_unit")


@dataclass(frozen=True)
class TrackOptions(TaskOptions):
    """How objects are linked and frames segmented.

    Attributes
    ----------
    max_distance : float or None
        Farthest a cell moves between frames, in pixels (None: ``distance_factor`` x the median object diameter).
    distance_factor : float
        See ``max_distance``.
    split_distance : float or None
        Farthest a daughter's first centre is from its mother's last, in pixels (None: ``max_distance``).
    max_gap : int
        Frames a cell may be missed and still continue its lineage (0: no gap closing).
    divisions : bool
        Detect divisions (a track splitting into two).
    model : str
        Segmentation model for raw frames (a shipped name, run folder or card).
    diameter : float or None
        Object diameter in pixels for generalist models (None: estimated per frame, unless objects cut at the
        estimate do not persist from frame to frame; then one larger diameter for the movie, where they do:
        :mod:`deepscope.tasks.track.scale`).
    per_frame_diameter : bool
        Skip that check: each frame at its own estimate.
    prob_threshold, flow_threshold, min_size : optional
        The segmentation model's thresholds, as on ``deepscope segment`` (None: the model card's values; the
        segment task checks them).
    channel : int or None
        Channel of a TCYX movie.
    """

    max_distance: float | None = None
    distance_factor: float = 1.0
    split_distance: float | None = None
    max_gap: int = 2
    divisions: bool = True
    model: str = "nuclei"
    diameter: float | None = None
    per_frame_diameter: bool = False
    channel: int | None = None
    prob_threshold: float | None = None
    flow_threshold: float | None = None
    min_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_distance", "split_distance", "diameter"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise InputError(f"{name} must be a positive number of pixels; got {v}")
        if not (math.isfinite(self.distance_factor) and self.distance_factor > 0):
            raise InputError(f"distance_factor must be positive; got {self.distance_factor}")
        if self.prob_threshold is not None and not 0 < self.prob_threshold < 1:
            raise InputError(f"prob_threshold must be a probability strictly between 0 and 1, got {self.prob_threshold}")
        if self.flow_threshold is not None and not (math.isfinite(self.flow_threshold) and self.flow_threshold >= 0):
            raise InputError(f"flow_threshold must be a finite number >= 0, got {self.flow_threshold}")
        if self.min_size is not None and int(self.min_size) < 0:
            raise InputError(f"min_size must be a whole number of pixels >= 0, got {self.min_size}")
        if int(self.max_gap) < 0:
            raise InputError(f"max_gap must be >= 0 frames; got {self.max_gap}")


def check_physical(pixel_size: float | None, frame_interval: float | None) -> None:
    """Refuse a pixel size or frame interval that is not a positive finite number (None = unknown is fine)."""
    for name, v in (("pixel size", pixel_size), ("frame interval", frame_interval)):
        if v is not None and not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
            raise InputError(f"the {name} must be a positive finite number; got {v!r}"
                             + (" (pass --frame-interval)" if name == "frame interval" else " (pass --pixel-size)"))


@dataclass(frozen=True, eq=False)
class TrackResult:
    """Tracks of one movie.

    Attributes
    ----------
    labels : (T, Y, X) int32 ndarray
        Label = track id (0 = background).
    tracks : (N, 4) int64 ndarray
        CTC table ``L B E P``.
    objects : pandas.DataFrame
        One row per object per frame: ``frame, y, x, area, mean_intensity, track_id``.
    pixel_size : float or None
        Micrometres per pixel.
    frame_interval : float or None
        Time between frames (the file's unit, minutes for deepscope's synthetic movies).
    info : dict
        What produced it (model, segmentation settings ...).
    """

    labels: np.ndarray
    tracks: np.ndarray
    objects: pd.DataFrame
    pixel_size: float | None = None
    frame_interval: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_physical(self.pixel_size, self.frame_interval)

    @property
    def n_tracks(self) -> int:
        return int(len(self.tracks))

    @property
    def n_divisions(self) -> int:
        """Mothers with two daughters."""
        from deepscope.io.ctc import count_divisions

        return count_divisions(self.tracks)

    @property
    def parents(self) -> dict[int, int]:
        return {int(r[0]): int(r[3]) for r in self.tracks if r[3]}

    def napari_tracks(self) -> tuple[np.ndarray, dict[int, list[int]]]:
        """The tracks as napari's Tracks layer takes them: ``data`` (N, 4) float rows ``track_id, t, y, x`` and
        ``graph`` {track id: [parent id]} (the lineage: daughters and tracks after a gap point to their parent).

        ``viewer.add_tracks(data, graph=graph)``.
        """
        o = self.objects.sort_values(["track_id", "frame"])
        data = o[["track_id", "frame", "y", "x"]].to_numpy(np.float64)
        return data, {int(c): [int(p)] for c, p in self.parents.items()}

    def object_table(self) -> pd.DataFrame:
        """The per-object table (:data:`OBJECT_COLUMNS`): positions in pixels and micrometres, time in the frame
        interval's unit (NaN where the pixel size or frame interval is unknown)."""
        o = self.objects.sort_values(["track_id", "frame"], ignore_index=True)
        px = self.pixel_size if self.pixel_size is not None else np.nan
        dt = self.frame_interval if self.frame_interval is not None else np.nan
        parents = self.parents
        return pd.DataFrame({
            "track_id": o["track_id"].astype(np.int64), "parent_id": o["track_id"].map(lambda k: parents.get(k, 0)),
            "frame": o["frame"].astype(np.int64), "time": o["frame"] * dt, "y_px": o["y"], "x_px": o["x"],
            "y_um": o["y"] * px, "x_um": o["x"] * px, "area_px": o["area"].astype(np.int64),
            "area_um2": o["area"] * px * px, "mean_intensity": o["mean_intensity"]}, columns=list(OBJECT_COLUMNS))

    def track_table(self) -> pd.DataFrame:
        """One row per track (:data:`TRACK_COLUMNS`).

        ``length`` is in frames, ``duration`` in time units; speeds, displacement and path length are in
        micrometres (per time unit) where the pixel size (and frame interval) are known, else in pixels (per frame):
        ``speed_unit`` says which. ``straightness`` is displacement / path length (NaN for a one-frame track).
        ``divides`` is true when the track ends in two daughters; ``division_time`` is then its last frame's time
        and ``cycle_time`` its duration from birth by division to division (NaN otherwise). ``generation`` counts
        divisions from the track's root (a cell found again after a gap keeps its generation).
        """
        scale = self.pixel_size if self.pixel_size is not None else 1.0
        dt = self.frame_interval if self.frame_interval is not None else 1.0
        unit = ("um" if self.pixel_size is not None else "px") + "/" + (
            "time" if self.frame_interval is not None else "frame")
        parents = self.parents
        children: dict[int, list[int]] = {}
        for c, p in parents.items():
            children.setdefault(p, []).append(c)

        def generation(k: int) -> int:
            g = 0
            while k in parents:
                p = parents[k]
                g += 1 if len(children.get(p, [])) == 2 else 0
                k = p
            return g

        rows = []
        o = self.objects.sort_values(["track_id", "frame"])
        groups = {int(k): g for k, g in o.groupby("track_id")}
        for lab, b, e, p in self.tracks.tolist():
            g = groups.get(int(lab))
            if g is not None and len(g) > 1:
                yx = g[["y", "x"]].to_numpy() * scale
                steps = np.sqrt((np.diff(yx, axis=0) ** 2).sum(1))
                path = float(steps.sum())
                disp = float(np.sqrt(((yx[-1] - yx[0]) ** 2).sum()))
                speed = path / ((len(g) - 1) * dt)
                straight = disp / path if path > 0 else np.nan
            else:
                path = disp = speed = straight = np.nan
            divides = len(children.get(int(lab), [])) == 2
            born_by_division = bool(p) and len(children.get(int(p), [])) == 2
            rows.append({"track_id": lab, "parent_id": p, "generation": generation(int(lab)), "start": b, "end": e,
                         "length": e - b + 1, "duration": (e - b) * dt, "divides": divides,
                         "division_time": e * dt if divides else np.nan,
                         "cycle_time": (e - b + 1) * dt if divides and born_by_division else np.nan,
                         "mean_speed": speed, "displacement": disp, "path_length": path, "straightness": straight,
                         "speed_unit": unit})
        return pd.DataFrame(rows, columns=list(TRACK_COLUMNS))
