"""The report of a ``deepscope track`` output folder: per movie, tracks over a frame and lineage trees; speeds and
cell-cycle times; one summary row per movie.

:func:`load_tracks` reads ``OUT/movies.csv`` and, per movie ``<stem>``, the CTC result ``OUT/<stem>/`` (the
``L B E P`` table ``res_track.txt`` and the last mask), ``<stem>.tracks.csv`` and ``<stem>.track_summary.csv``
into a :class:`~deepscope.report.data.Results` of kind ``"track"`` (its ``images`` table has one row per movie,
its ``movies`` the per-movie tables); :func:`track_figures` draws the figures. The numbers of tracks and divisions
are counted from ``res_track.txt``, the file CTC tools read, not copied from ``movies.csv``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from deepscope.report.data import Results

__all__ = ["MovieTracks", "load_tracks", "track_figures", "is_track_folder", "MOVIES_TABLE"]

logger = logging.getLogger(__name__)

#: The per-movie table ``deepscope track`` writes in its output folder.
MOVIES_TABLE = "movies.csv"


def is_track_folder(path: Path) -> bool:
    """A ``deepscope track`` output folder: ``movies.csv`` with the track task's columns."""
    table = path / MOVIES_TABLE
    if not table.is_file():
        return False
    with table.open(encoding="utf-8") as f:
        head = f.readline().strip().split(",")
    return {"stem", "tracks", "divisions", "result"} <= set(head)


@dataclass(frozen=True, eq=False)
class MovieTracks:
    """One tracked movie as the report reads it back.

    Attributes
    ----------
    stem : str
    folder : pathlib.Path
        Its CTC result folder.
    tracks : (N, 4) int64 ndarray
        ``L B E P`` from ``res_track.txt``.
    objects : pandas.DataFrame
        ``<stem>.tracks.csv`` (one row per object per frame).
    summary : pandas.DataFrame
        ``<stem>.track_summary.csv`` (one row per track).
    frame : (Y, X) int32 ndarray
        The mask of frame ``frame_index`` (the last one): label = track id.
    frame_index : int
    frame_interval : float or None
    """

    stem: str
    folder: Path
    tracks: np.ndarray
    objects: pd.DataFrame
    summary: pd.DataFrame
    frame: np.ndarray
    frame_index: int
    frame_interval: float | None = None

    @property
    def n_tracks(self) -> int:
        return int(len(self.tracks))

    @property
    def n_divisions(self) -> int:
        """Mothers with two daughters in ``res_track.txt``."""
        from deepscope.io.ctc import count_divisions

        return count_divisions(self.tracks)

    @property
    def speed_unit(self) -> str:
        """``um/time`` (time in the frame interval's unit), ``um/frame``, ``px/time`` or ``px/frame``."""
        if "speed_unit" not in self.summary:
            return "px/frame"
        units = self.summary["speed_unit"].dropna().astype(str)
        return str(units.iloc[0]) if len(units) else "px/frame"

    def speeds(self) -> np.ndarray:
        """Mean speed of every track of two frames or more (``speed_unit``)."""
        v = np.asarray(self.summary["mean_speed"], dtype=float) if len(self.summary) else np.zeros(0)
        return v[np.isfinite(v)]

    def cycle_times(self) -> np.ndarray:
        """Division-to-division times (tracks born by a division that divide again), in the frame interval's unit
        (frames when it is unknown)."""
        v = np.asarray(self.summary["cycle_time"], dtype=float) if len(self.summary) else np.zeros(0)
        return v[np.isfinite(v)]


def _unit_text(unit: str) -> str:
    """``um/time`` -> ``um per time unit``: the time unit is the frame interval's (minutes for synthetic movies)."""
    return unit.replace("/time", "/time unit")


def _read_movie(out: Path, stem: str, frame_interval: float | None) -> MovieTracks:
    import pandas as pd
    import tifffile

    from deepscope.io import csv_frame_plain
    from deepscope.io.ctc import read_ctc_tracks

    folder = out / stem  # where deepscope track writes it (movies.csv's result may be relative to another folder)
    tracks = read_ctc_tracks(folder / "res_track.txt")
    masks = sorted(f for f in folder.glob("mask*.tif") if f.stem[4:].isdigit())
    if not masks:
        raise InputError(f"{folder} holds no CTC masks (mask000.tif ...)")
    objects = csv_frame_plain(pd.read_csv(out / f"{stem}.tracks.csv"))
    summary = csv_frame_plain(pd.read_csv(out / f"{stem}.track_summary.csv"))
    frame = np.asarray(tifffile.imread(masks[-1]), dtype=np.int32)
    return MovieTracks(stem, folder, tracks, objects, summary, frame, int(masks[-1].stem[4:]), frame_interval)


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def _in_domain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
        return np.nan
    return str(v).strip().lower() in ("true", "1", "yes")


def load_tracks(source: Path) -> Results:
    """Read a ``deepscope track`` output folder (see the module docs) as a :class:`Results` of kind ``"track"``.

    A movie whose files cannot be read gets an error row (as a movie that failed to track does).

    Raises
    ------
    deepscope.errors.InputError
        If the folder's ``movies.csv`` lacks the track task's columns.
    """
    import pandas as pd

    from deepscope.io import csv_frame_plain
    from deepscope.report.data import Results, _lineage_of

    table = source / MOVIES_TABLE
    movies = csv_frame_plain(pd.read_csv(table, keep_default_na=False, na_values=[""], dtype={"stem": str}))
    if not {"stem", "tracks", "divisions", "error"} <= set(movies.columns):
        raise InputError(f"'{table}' is not a deepscope track table (no stem/tracks/divisions/error columns)")
    rows, read = [], []
    for _, r in movies.iterrows():
        error = "" if pd.isna(r["error"]) else str(r["error"])
        stem = "" if pd.isna(r["stem"]) else str(r["stem"])
        row: dict[str, Any] = {"name": stem or Path(str(r["path"])).name, "path": str(r["path"]), "error": error,
                               "frames": r.get("frames"), "pixel_size": r.get("pixel_size"),
                               "frame_interval": r.get("frame_interval"), "in_domain": _in_domain(r.get("in_domain")),
                               "tracks": np.nan, "divisions": np.nan, "objects": np.nan, "mean_speed": np.nan,
                               "speed_unit": "", "median_cycle_time": np.nan,
                               "diameter": r.get("diameter"), "diameter_source": r.get("diameter_source", "")}
        if not error:
            try:
                mv = _read_movie(source, stem, _number(r.get("frame_interval")))
            except (OSError, InputError, ValueError, KeyError) as exc:
                row["error"] = f"could not read the results: {exc}"
            else:
                read.append(mv)
                speeds, cycles = mv.speeds(), mv.cycle_times()
                row.update(tracks=mv.n_tracks, divisions=mv.n_divisions, objects=len(mv.objects),
                           mean_speed=float(speeds.mean()) if speeds.size else np.nan,
                           speed_unit=_unit_text(mv.speed_unit),
                           median_cycle_time=float(np.median(cycles)) if cycles.size else np.nan)
        rows.append(row)
    images = pd.DataFrame(rows)
    images["ok"] = images["error"].eq("")
    images["count"] = images["tracks"]
    lin = _lineage_of(table)
    summary = {"n_movies": len(images), "n_failed": int((~images["ok"]).sum()),
               "n_tracks": int(sum(m.n_tracks for m in read)), "n_divisions": int(sum(m.n_divisions for m in read)),
               "model": (lin.get("params") or {}).get("model", "")}
    tables = sorted(p.name for p in source.iterdir() if p.suffix in (".csv", ".txt"))
    tables += sorted(f"{m.folder.name}/res_track.txt" for m in read)
    objects = pd.DataFrame({"name": pd.Series(dtype=str), "condition": pd.Series(dtype=str),
                            "area": pd.Series(dtype=float)})
    return Results("track", source, images, objects, "Tracks", summary, lin, "", tables, movies=read)


def track_figures(res: Results) -> list[tuple[str, str, bytes]]:
    """``(title, caption, png)`` of a track report: per movie its tracks over the last frame and its lineage trees,
    then the speed and the cell-cycle time distributions of all movies."""
    from deepscope.report import plots

    figs: list[tuple[str, str, bytes | None]] = []
    for mv in res.movies:
        figs.append((f"Tracks: {mv.stem}",
                     f"Frame {mv.frame_index} of {mv.stem} (label = track id, one colour per track) with the path of "
                     "every track up to it; a dot marks a cell present in the frame.",
                     plots.tracks_over_frame(mv.frame, mv.objects, frame=mv.frame_index,
                                             title=f"{mv.stem}: {mv.n_tracks} tracks, frame {mv.frame_index}")))
        png, drawn = plots.lineage_trees(mv.tracks, frame_interval=mv.frame_interval,
                                         title=f"{mv.stem}: {mv.n_tracks} tracks, {mv.n_divisions} divisions")
        more = f" The {drawn} tracks of the largest trees of {mv.n_tracks} are drawn." if drawn < mv.n_tracks else ""
        figs.append((f"Lineage: {mv.stem}",
                     "Each track a bar from its first to its last frame (x = time, in the frame interval's unit where "
                     "known, else frames), mothers joined to their two daughters (solid) and a track to its "
                     f"continuation after a gap (dotted), from res_track.txt.{more}", png))
    units = sorted({_unit_text(mv.speed_unit) for mv in res.movies})
    unit = units[0] if len(units) == 1 else "mixed units"
    figs.append(("Speed distribution",
                 f"Mean speed of each track of two frames or more ({unit}): path length over duration.",
                 plots.value_histograms([(mv.stem, mv.speeds()) for mv in res.movies], xlabel=f"mean speed ({unit})",
                                        title="Track speed")))
    timed = {mv.frame_interval is not None for mv in res.movies}
    tunit = "time unit of the frame interval" if timed == {True} else "frames" if timed == {False} else "mixed units"
    figs.append(("Cell-cycle time",
                 f"Division-to-division time ({tunit}) of each cell born by a division that divides again in the "
                 "movie.",
                 plots.value_histograms([(mv.stem, mv.cycle_times()) for mv in res.movies],
                                        xlabel=f"cell-cycle time ({tunit})", title="Cell-cycle time")))
    return [(t, c, png) for t, c, png in figs if png is not None]
