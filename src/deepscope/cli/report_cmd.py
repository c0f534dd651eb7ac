"""``deepscope report``: one self-contained HTML page of a result folder (QC, plots, lineage, gallery)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import console, err_console, handle_errors, out_option, output_alias, pick_out


def report_option() -> Any:
    """``--report/--no-report`` of the commands that write one at the end."""
    return typer.Option(True, "--report/--no-report", help="Write the HTML report (QC, plots, lineage) at the end.")


def write_and_say(source: Path) -> Path | None:
    """Write the report of a finished command's results and print where; a failure is a warning, never an exit.

    The results themselves are already written when this runs, so a report that cannot be made
    (an unreadable overlay, a full disk) must not turn the command into a failure.
    """
    from deepscope.report import write_report

    try:
        path = write_report(source)
    except Exception as exc:  # the results stand without their report
        err_console.print(f"[yellow]warning:[/] could not write the report of {source}: {type(exc).__name__}: {exc}")
        return None
    console.print(f"report: {path}")
    return path


@handle_errors
def report(
    source: Path = typer.Argument(..., help="A run folder (deepscope analyze/run), a segment or track output folder, "
                                  "or a count table (counts.csv).", metavar="RESULTS", show_default=False),
    out: Path | None = out_option(help="The HTML file (default: RESULTS/report.html, or <table>.report.html)."),
    output: Path | None = output_alias(),
    title: str | None = typer.Option(None, "--title", help="Page title (default: from the results)."),
) -> None:
    """Write one self-contained HTML report: summary and lineage, plate map, count and size
    distributions, per-image QC with outliers flagged, and a gallery of overlays sorted by QC; for a
    track folder, per movie its tracks over a frame and lineage trees, speeds and cell-cycle times."""
    from deepscope.report import write_report

    target = pick_out(out, output) if (out or output) else None
    path = write_report(source, target, title=title)
    console.print(f"report: {path}")
