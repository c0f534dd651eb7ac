"""``deepscope restore``: deblur, predict a stain or super-resolve images with an image-to-image model."""

from __future__ import annotations

from pathlib import Path

import typer

from deepscope.cli._common import (backend_option, console, err_console, escape, handle_errors, jobs_option,
                                   out_option, output_alias, pick_out, recursive_option,
                                   include_labels_option, label_images)
from deepscope.cli.count_cmd import progress_bar, report_errors


@handle_errors
def restore(
    paths: list[Path] = typer.Argument(..., help="Image files or folders (not their sub-folders unless "
                                       "--recursive).", metavar="PATH"),
    model: str = typer.Option(..., "--model", "-m", help="Shipped model (deblur-bbbc005, label-bbbc005-w2, "
                              "sr2x-bbbc005), run folder of `deepscope train restore`, or model file."),
    out: Path | None = out_option(help="Output folder (required): <stem>.restored.tif per input."),
    output: Path | None = output_alias(),
    float32: bool = typer.Option(False, "--float32", help="Write float32 instead of the input's dtype."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda ..."),
    tile: int | None = typer.Option(None, "--tile", help="Tile size for large images (default from the card)."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of multi-channel images to restore."),
    recursive: bool = recursive_option(),
    include_labels: bool = include_labels_option(),
    backend: str = backend_option(),
    jobs: int | None = jobs_option(),
    include: str | None = typer.Option(None, "--include", help="Glob on file names in folders."),
) -> None:
    """Restore images into OUTPUT/<stem>.restored.tif (the input's dtype unless --float32), with lineage.

    Exits with code 1 only when every image failed; unreadable files get an error row.
    """
    from deepscope.predict.files import restore_paths

    output = pick_out(out, output)
    with progress_bar("restore") as progress:
        res = restore_paths(paths, output, model=model, device=device, dtype="float32" if float32 else "input",
                            tile=tile, channel=channel, include=include, recursive=recursive,
                            label_images=label_images(include_labels), progress=progress,
                            backend=backend, jobs=jobs)
    warned = res.table[res.table["warning"] != ""]
    for rec in warned.head(5).to_dict("records"):
        err_console.print(f"[yellow]warning:[/] {escape(Path(rec['path']).name)}: {escape(str(rec['warning']))}")
    report_errors(res.table)
    console.print(f"{res.summary()}; wrote {len(res.outputs)} restored image(s) to {output}")
    if res.all_failed:
        raise typer.Exit(code=1)
