"""``deepscope count``: count cells in images with a trained model (a whole number and a 95% interval)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import (backend_option, console, err_console, escape, handle_errors, jobs_option,
                                   out_option, output_alias, pick_out, progress_callback, recursive_option,
                                   include_labels_option, label_images)
from deepscope.cli.report_cmd import report_option, write_and_say

#: Rows of a batch table printed to the terminal (the output file has all).
SHOWN_ROWS = 20


def progress_bar(description: str) -> Any:
    """A ``progress(done, total)`` callback on stderr: a bar on a terminal, a line now and then otherwise."""
    return progress_callback(description)


def report_errors(table: Any, *, limit: int = 10) -> None:
    """Print the error rows of a batch table to stderr (at most ``limit``)."""
    bad = table[table["error"] != ""]
    for rec in bad.head(limit).to_dict("records"):
        text = rec["error"] if str(rec["path"]) in rec["error"] else f"{rec['path']}: {rec['error']}"
        err_console.print(f"[bold red]error:[/] {escape(text)}")
    if len(bad) > limit:
        err_console.print(f"... and {len(bad) - limit} more error(s); see the output table")


def _num(v: Any, digits: int = 0) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{digits}f}"


@handle_errors
def count(
    paths: list[Path] = typer.Argument(..., help="Image files or folders (not their sub-folders unless "
                                       "--recursive).", metavar="PATH"),
    model: str = typer.Option("count-bbbc005", "--model", "-m", help="Shipped model name, run folder of "
                              "`deepscope train count`, or model .json/.safetensors file."),
    out: Path | None = out_option(help="CSV: path,count,count_low,count_high,std,error (one row per image), with a "
                                  "provenance sidecar. [default: counts.csv]"),
    output: Path | None = output_alias(),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda, cuda:1 ..."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of multi-channel (e.g. RGB) images to "
                                       "count in (0-based)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per network batch."),
    tta: str | None = typer.Option(None, "--tta", help="Test-time augmentation of the density network: none (1 "
                                   "pass), transpose (2), diagonal (4: the image, its transpose and their 180-degree "
                                   "turns), flips (4), d8 (8). Default: the model card's (count-bbbc005: diagonal), "
                                   "with which its intervals were calibrated."),
    recursive: bool = recursive_option(),
    include_labels: bool = include_labels_option(),
    backend: str = backend_option(),
    jobs: int | None = jobs_option(),
    include: str | None = typer.Option(None, "--include", help="Glob on file names in folders, e.g. '*_w1.TIF'."),
    report: bool = report_option(),
) -> None:
    """Count cells per image: a whole number (counts.csv keeps the unrounded estimate too) with a 95% interval.
    Counting never looks at file names.

    Exits with code 1 only when every image failed; unreadable files get an error row.
    """
    from deepscope.predict.files import count_paths

    output = pick_out(out, output, default=Path("counts.csv"))
    with progress_bar("count") as progress:
        res = count_paths(paths, model=model, output=output, device=device, channel=channel,
                          batch_size=batch_size, include=include, recursive=recursive,
                          label_images=label_images(include_labels), progress=progress, backend=backend, jobs=jobs,
                          tta=tta)
    ok = res.table[res.table["error"] == ""]
    if res.n_images <= SHOWN_ROWS:
        from rich.table import Table

        table = Table(title=f"{res.n_images} image(s)")
        for col in ("image", "count", "95% interval"):
            table.add_column(col, justify="left" if col == "image" else "right")
        for rec in ok.to_dict("records"):
            table.add_row(Path(rec["path"]).name, _num(rec["count"]),
                          f"{_num(rec['count_low'])} - {_num(rec['count_high'])}")
        console.print(table)
    report_errors(res.table)
    mean = f", mean count {ok['count'].mean():.1f}" if len(ok) else ""
    console.print(f"{res.summary()}{mean}; wrote {escape(str(output))}")
    if report:
        write_and_say(output)
    if res.all_failed:
        raise typer.Exit(code=1)
