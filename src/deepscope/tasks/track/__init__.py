"""The track task: objects of every frame of a time-lapse linked into tracks and lineages (CTC format).

=================  ==================================================================================
``options``        :class:`TrackOptions` (linking distances, gaps, divisions, the segmentation model),
                   :class:`TrackResult` (label = track id, the CTC ``L B E P`` table, per-object and per-track
                   tables)
``linking``        :func:`detect` (objects of a label stack) and :func:`link` (laptrack's LAP linking with gap
                   closing and splitting, relabelled in the CTC convention)
``metrics``        :func:`evaluate_ctc`: DET, SEG, TRA, BC(i) by py-ctcmetrics; :func:`evaluate_points`: against
                   point tracks (detection, linking, a point-based TRA-like figure)
``movies``         :func:`read_movie` (TYX/TCYX file or frame folder, pixel size, frame interval), :func:`read_masks`
``files``          :func:`segment_frames` (the segmentation model's ``run`` per frame), :func:`track_movie`,
                   :func:`track_paths` (movies -> CTC folders, tables and lineage; failures as rows)
=================  ==================================================================================

laptrack and ctc_metrics are imported when a function needs them, so importing this package stays cheap.
"""

from deepscope.tasks.track.files import (MOVIE_COLUMNS, TrackRun, movie_diameter, segment_frames, track_movie,
                                         track_paths, write_track_outputs)
from deepscope.tasks.track.linking import detect, link, link_objects
from deepscope.tasks.track.metrics import CTC_MEASURES, evaluate_ctc, evaluate_points
from deepscope.tasks.track.movies import Movie, read_masks, read_movie
from deepscope.tasks.track.options import OBJECT_COLUMNS, TRACK_COLUMNS, TrackOptions, TrackResult
from deepscope.tasks.track.pipeline_step import TrackStep
from deepscope.tasks.track.plugin import TrackPlugin

Options = TrackOptions
Result = TrackResult

__all__ = ["TrackOptions", "TrackResult", "Options", "Result", "OBJECT_COLUMNS", "TRACK_COLUMNS", "detect", "link",
           "link_objects", "evaluate_ctc", "evaluate_points", "CTC_MEASURES", "Movie", "read_movie", "read_masks",
           "segment_frames", "movie_diameter", "track_movie", "track_paths", "write_track_outputs", "TrackRun",
           "MOVIE_COLUMNS", "TrackStep", "TrackPlugin"]
