"""``deepscope track``: cells tracked through time-lapse movies (CTC format, tables, lineage); ``deepscope evaluate
track``: CTC measures of a result against ground truth. Thin layers over :mod:`deepscope.tasks.track`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import console, escape, handle_errors, out_option
from deepscope.cli.count_cmd import report_errors
from deepscope.cli.report_cmd import report_option, write_and_say


def _movie_progress(update: Any) -> Any:
    """Per-movie ``progress(done, total)`` callbacks feeding one frames bar across movies."""
    state = {"offset": 0, "last": 0}

    def for_movie(stem: str) -> Any:
        state["offset"] += state["last"]
        state["last"] = 0

        def progress(done: int, total: int) -> None:
            state["last"] = total
            update(state["offset"] + done, state["offset"] + total)

        return progress

    return for_movie


@handle_errors
def track(
    paths: list[Path] = typer.Argument(..., help="Movies: TYX (or TCYX with --channel) TIFF/OME-TIFF/OME-Zarr files, "
                                       "or folders of frame images sorted by name (a CTC sequence folder).",
                                       metavar="MOVIE"),
    out: Path | None = out_option(help="Output folder (required): <stem>/ (CTC result: mask000.tif ..., "
                                  "res_track.txt), <stem>.tracks.csv, <stem>.track_summary.csv, movies.csv."),
    masks: Path | None = typer.Option(None, "--masks", help="Label images of the movie's frames (a TYX label stack "
                                      "or a folder of per-frame label files, ids arbitrary per frame): only linking "
                                      "runs. One movie only."),
    model: str = typer.Option("nuclei", "--model", "-m", help="Segmentation model for the frames (as in `deepscope "
                              "segment`)."),
    diameter: float | None = typer.Option(None, "--diameter", help="Object diameter in pixels (generalist models; "
                                          "default: each frame's estimate, or one larger diameter for the movie when "
                                          "objects cut at the estimates do not persist from frame to frame)."),
    per_frame_diameter: bool = typer.Option(False, "--per-frame-diameter", help="Each frame at its own diameter "
                                            "estimate, without checking that objects persist."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Micrometres per pixel (default: from the "
                                            "file)."),
    frame_interval: float | None = typer.Option(None, "--frame-interval", help="Time between frames (default: from "
                                                "the file); speeds are per this unit."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of a multi-channel movie (0-based)."),
    max_distance: float | None = typer.Option(None, "--max-distance", help="Farthest a cell moves between frames, "
                                              "in pixels (default: the median object diameter)."),
    max_gap: int = typer.Option(2, "--max-gap", help="Frames a cell may be missed and keep its track's lineage."),
    divisions: bool = typer.Option(True, "--divisions/--no-divisions", help="Detect divisions."),
    prob_threshold: float | None = typer.Option(None, "--prob-threshold", help="Segmentation probability "
                                                "threshold, as in `deepscope segment` (default: the model card's)."),
    flow_threshold: float | None = typer.Option(None, "--flow-threshold", help="Flow-consistency threshold of "
                                                "flow models, as in `deepscope segment`."),
    min_size: int | None = typer.Option(None, "--min-size", help="Smallest object kept, in pixels at the model's "
                                        "scale, as in `deepscope segment`."),
    report: bool = report_option(),
) -> None:
    """Track cells through time-lapse movies: per-frame objects linked into tracks and lineages (divisions, gaps,
    cells entering and leaving), written in the Cell Tracking Challenge format with per-object and per-track tables.

    Exits with code 1 only when every movie failed; a movie that fails gets an error row in movies.csv.
    """
    from deepscope.cli._common import progress_callback
    from deepscope.errors import InputError
    from deepscope.tasks.track import TrackOptions, track_paths

    if out is None:
        raise InputError("--out is required: the folder for the CTC results and tables")
    for name, v in (("--frame-interval", frame_interval), ("--pixel-size", pixel_size)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive number; got {v}")
    options = TrackOptions(max_distance=max_distance, max_gap=max_gap, divisions=divisions, model=model,
                           diameter=diameter, per_frame_diameter=per_frame_diameter, channel=channel,
                           prob_threshold=prob_threshold, flow_threshold=flow_threshold, min_size=min_size)
    with progress_callback("track", unit="frames") as update:
        res = track_paths(paths, out, masks=masks, options=options, pixel_size=pixel_size,
                          frame_interval=frame_interval, progress=_movie_progress(update))
    for rec in res.table[res.table["error"] == ""].to_dict("records"):
        size = (f"; objects segmented at {float(rec['diameter']):.0f} px ({rec['diameter_source']})"
                if rec.get("diameter") not in ("", None) else "")
        console.print(f"{escape(rec['stem'])}: {rec['frames']} frames, {rec['tracks']} tracks, {rec['divisions']} "
                      f"division(s){escape(size)}")
    report_errors(res.table)
    console.print(f"{res.summary()}; wrote CTC results and tables to {escape(str(out))}")
    if report:  # tracks over a frame, lineage trees, speeds and cell cycles (deepscope report OUT)
        write_and_say(out)
    if res.all_failed:
        raise typer.Exit(code=1)


@handle_errors
def evaluate_track(
    result: Path = typer.Argument(..., help="CTC result folder (mask000.tif ..., res_track.txt), e.g. OUT/<stem> of "
                                  "`deepscope track`."),
    gt: Path = typer.Argument(..., help="CTC ground truth: the *_GT folder (TRA/man_track*.tif, man_track.txt; "
                              "SEG/ for SEG)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the measures as JSON."),
) -> None:
    """Score a tracking result against Cell Tracking Challenge ground truth: DET, SEG, TRA, BC(0) (py-ctcmetrics)."""
    import pandas as pd

    from deepscope.cli.evaluate_cmd import fmt, write_reports
    from deepscope.tasks.track import evaluate_ctc

    doc = evaluate_ctc(result, gt)
    for k in ("DET", "SEG", "TRA", "BC(0)"):
        console.print(f"{k:6s} {fmt(doc[k])}")
    console.print(f"divisions: {int(doc.get('gt_divisions', 0))} in the truth, {int(doc.get('tp_div(0)', 0))} found, "
                  f"{int(doc.get('fp_div(0)', 0))} false")
    if json_out is not None:
        write_reports({"result": str(result), "gt": str(gt), **doc}, pd.DataFrame([doc]), json_path=json_out,
                      csv_path=None)
