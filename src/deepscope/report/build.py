"""Build the report of a result folder: read, flag, plot, render, write atomically."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deepscope.report.data import Results, load_results

__all__ = ["REPORT_NAME", "report_path", "write_report"]

logger = logging.getLogger(__name__)

#: File name of the report in a result folder.
REPORT_NAME = "report.html"


def report_path(source: str | os.PathLike[str]) -> Path:
    """Where the report of ``source`` goes: ``FOLDER/report.html``, or ``<table>.report.html`` beside a table.

    Examples
    --------
    >>> report_path("run1").as_posix(), report_path("out/counts.csv").as_posix()
    ('run1/report.html', 'out/counts.report.html')
    """
    p = Path(source)
    if p.suffix.lower() == ".csv":
        return p.with_name(f"{p.stem}.report.html")
    return p / REPORT_NAME


def _figures(res: Results, images: object) -> list[tuple[str, str, bytes]]:
    from deepscope.report import plots

    name = res.object_name
    cond = res.condition
    figs: list[tuple[str, str, bytes | None]] = [
        ("Plate map", f"Mean {name.lower()} per image in each well; wells from the file names.",
         plots.plate_heatmap(images)),
        ("Count distribution", f"{name} per image{' by ' + cond if cond else ''}: box = quartiles, dots = images.",
         plots.count_distributions(images, condition=cond, object_name=name)),
        ("Measured vs true count", "True counts from the file names (e.g. BBBC005's C<count>).",
         plots.count_vs_truth(images, object_name=name)),
        ("Size distribution", f"Area of every {name.lower().rstrip('s')} object{' by ' + cond if cond else ''}.",
         plots.size_distributions(res.objects, condition=cond, object_name=name)),
        ("Volume distribution", f"3D volume (um^3, from the voxel size) of every {name.lower().rstrip('s')} "
         f"object of the z-stacks{' by ' + cond if cond else ''}.",
         plots.size_distributions(res.objects, condition=cond, object_name=name, value="volume",
                                  xlabel="volume (um^3)")),
        ("Quality", "Each image's blur score against saturation; flagged images in red.",
         plots.quality_scatter(images)),
    ]
    return [(t, c, png) for t, c, png in figs if png is not None]


def write_report(source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                 title: str | None = None) -> Path:
    """Write the HTML report of a result folder or table.

    Parameters
    ----------
    source : str or PathLike
        A run folder of ``deepscope analyze``/``run``, a ``deepscope segment`` output folder, a
        ``deepscope count`` table (or the folder holding its ``counts.csv``), or a ``deepscope track``
        output folder (tracks over a frame, lineage trees, speeds, cell-cycle times per movie).
    out : str or PathLike, optional
        The HTML file; default :func:`report_path` of ``source``.
    title : str, optional
        Page title; default from the results (pipeline name, or the command and folder).

    Returns
    -------
    pathlib.Path
        The report written (atomically: a temporary name, then a rename).

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    deepscope.errors.InputError
        If it holds no deepscope results, or a run that has not finished.

    Examples
    --------
    >>> write_report("run1")           # doctest: +SKIP
    PosixPath('run1/report.html')
    """
    from deepscope.io import write_text
    from deepscope.report.html import render_html, render_track_html
    from deepscope.report.qc import flag_images

    res = load_results(source)
    if title is None:
        what = res.summary.get("pipeline") or f"deepscope {res.kind}"
        title = f"{what}: {Path(source).resolve().name}"
    target = Path(out) if out is not None else report_path(source)
    if res.kind == "track":  # one row per movie, figures per movie: its own page
        from deepscope.report.tracks import track_figures

        return write_text(target, render_track_html(res, track_figures(res), title=title))
    images = flag_images(res.images)
    figures = _figures(res, images)
    return write_text(target, render_html(res, images, figures, title=title))
