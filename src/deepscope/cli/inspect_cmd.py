"""``deepscope inspect``: show what would be loaded, without loading pixels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import console, escape, handle_errors


@handle_errors
def inspect(
    paths: list[Path] = typer.Argument(..., help="Image files, folders or .zip archives."),
    pattern: str | None = typer.Option(None, "--pattern", "-p",
                                       help="Preset (bbbc005) or regex with named groups for file-name metadata."),
    include: str | None = typer.Option(None, help="Glob on file names, e.g. '*_w1.TIF'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per image) instead of a table."),
    limit: int = typer.Option(50, help="Rows shown in the table (JSON prints all)."),
) -> None:
    """Print a table of the images that would be loaded: shape, dtype, axes, pages, metadata (headers only)."""
    from deepscope.io import find_images, get_pattern, image_format, open_source, read_meta

    pat = get_pattern(pattern)
    records: list[dict[str, Any]] = []
    n_bad = 0
    for src in paths:
        with open_source(src) as folder:
            if folder.is_dir() and image_format(folder) != "zarr":
                files = find_images(folder, include=include)
                if not files:
                    raise FileNotFoundError(f"no image files found in '{src}'")
            else:
                if not folder.exists():
                    raise FileNotFoundError(f"No such file or folder: '{folder}'")
                files = [folder]
            for f in files:
                rec: dict[str, Any] = {"path": str(f if folder == src or not src.suffix == ".zip" else
                                                   f"{src}!{f.relative_to(folder)}")}
                try:
                    m = read_meta(f)  # the header only: no pixel is decoded, whatever the file's size
                    rec.update(shape=list(m.shape), dtype=m.dtype, axes=m.axes, pages=m.pages,
                               bit_depth=m.bit_depth, format=m.format, pixel_size=m.pixel_size,
                               channels=list(m.channel_names), sha256=m.sha256)
                except Exception as exc:  # report and go on: inspect is a survey
                    n_bad += 1
                    rec["error"] = str(exc)
                if pat is not None:
                    rec["metadata"] = pat.parse(f.name)
                records.append(rec)
    if as_json:
        console.print_json(json.dumps(records, default=str))
    else:
        from rich.table import Table

        table = Table(title=f"{len(records)} image(s)" + (f", {n_bad} unreadable" if n_bad else ""))
        for col in ("file", "shape", "dtype", "axes", "pages", "format", "metadata / error"):
            table.add_column(col)
        for rec in records[:limit]:
            extra = rec.get("error") or (" ".join(f"{k}={v}" for k, v in (rec.get("metadata") or {}).items())
                                         if pat else "")
            if pat and rec.get("metadata") is None and "error" not in rec:
                extra = "[red](name does not match pattern)[/]"
            if "error" in rec or not pat:
                extra = escape(extra)  # file names and messages are text, not markup
            table.add_row(escape(Path(rec["path"]).name), "x".join(map(str, rec.get("shape", []))),
                          rec.get("dtype", ""), rec.get("axes", ""), str(rec.get("pages", "")), rec.get("format", ""),
                          extra)
        console.print(table)
        if len(records) > limit:
            console.print(f"... {len(records) - limit} more (use --limit or --json)")
    if n_bad and n_bad == len(records):
        raise typer.Exit(code=1)
