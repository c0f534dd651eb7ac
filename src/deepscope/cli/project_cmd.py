"""``deepscope project``: optical sections (z-stacks) to one image: max, mean or extended depth of field."""

from __future__ import annotations

from pathlib import Path

import typer

from deepscope.cli._common import (console, err_console, escape, handle_errors, out_option, output_alias, pick_out,
                                   recursive_option)


@handle_errors
def project(
    paths: list[Path] = typer.Argument(..., help="Stack files or folders (ImageJ hyperstack, OME-TIFF, OME-Zarr; "
                                       "a plain multi-page TIFF with --axes ZYX).", metavar="STACK"),
    method: str = typer.Option("max", "--method", help="max (brightest plane), mean, or edf (extended depth of "
                               "field: each pixel from the planes in focus there, no seams)."),
    out: Path | None = out_option(help="Output folder (required): <stem>.<method>.tif per stack, with lineage."),
    output: Path | None = output_alias(),
    axes: str | None = typer.Option(None, "--axes", help="Axis letters overriding the file's, e.g. ZYX for a plain "
                                    "multi-page TIFF, ZCYX."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of multichannel stacks."),
    voxel_size: tuple[float, float, float] | None = typer.Option(None, "--voxel-size", help="Z Y X in micrometres, "
                                                                 "overriding the file's."),
    smooth: float = typer.Option(2.0, "--smooth", help="EDF: smoothing of the plane choice map (pixels)."),
    recursive: bool = recursive_option(),
    include: str | None = typer.Option(None, "--include", help="Glob on file names in folders."),
) -> None:
    """Project z-stacks into OUT/<stem>.<method>.tif (max keeps the dtype; mean and edf are float32), keeping the
    pixel size, with a lineage sidecar.

    Exits with code 1 only when every stack failed; a stack that cannot be read or projected gets an error line.
    """
    from deepscope.tasks.volumes import project_paths

    target = pick_out(out, output)
    res = project_paths(paths, target, method=method, axes=axes, channel=channel, voxel_size=voxel_size,
                        include=include, recursive=recursive, smooth=smooth)
    for rec in res.table[res.table["error"] != ""].head(10).to_dict("records"):
        err_console.print(f"[red]error:[/] {escape(str(rec['error']))}")
    console.print(f"{res.summary()}; wrote {len(res.outputs)} projection(s) to {target}")
    if res.all_failed:
        raise typer.Exit(code=1)
