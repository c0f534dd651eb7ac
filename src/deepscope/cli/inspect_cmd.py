"""``deepscope inspect``: show what would be loaded, without loading pixels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import console, escape, handle_errors, recursive_option


@handle_errors
def inspect(
    paths: list[Path] = typer.Argument(..., help="Image files, folders (not their sub-folders unless --recursive), "
                                       "OME-Zarr plates (one image per field) or .zip archives.", metavar="PATH"),
    pattern: str | None = typer.Option(None, "--pattern", "-p",
                                       help="Preset (bbbc005) or regex with named groups for file-name metadata."),
    include: str | None = typer.Option(None, help="Glob on file names, e.g. '*_w1.TIF'."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one object per image) instead of a table."),
    limit: int = typer.Option(50, help="Rows shown in the table (JSON prints all)."),
    recursive: bool = recursive_option(),
) -> None:
    """Print a table of the images that would be loaded: shape, dtype, axes, pages, metadata (headers only)."""
    from deepscope.errors import InputError
    from deepscope.io import expand_inputs, get_pattern, image_format, open_source, read_meta

    pat = get_pattern(pattern)
    records: list[dict[str, Any]] = []
    n_bad = 0
    for src in paths:
        with open_source(src) as folder:
            if not folder.exists():
                raise FileNotFoundError(f"No such file or folder: '{folder}'")
            # the images segment/count/run would see: folders scanned, a plate as its fields of view
            try:
                files = expand_inputs([folder], include=include, recursive=recursive, empty="skip")
            except InputError as exc:  # a plate refused (a well or field outside it): reported, and go on
                n_bad += 1
                records.append({"path": str(src), "error": str(exc)})
                continue
            if not files and folder.is_dir() and image_format(folder) != "zarr":
                raise FileNotFoundError(f"no image files found in '{src}'")
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
        _print_table(records[:limit], n_bad=n_bad, n_total=len(records), pattern=pat is not None)
        if len(records) > limit:
            console.print(f"... {len(records) - limit} more (use --limit or --json)")
    if n_bad and n_bad == len(records):
        raise typer.Exit(code=1)


def _print_table(records: list[dict[str, Any]], *, n_bad: int, n_total: int, pattern: bool) -> None:
    """The records as a table whose file names are never cut (other columns wrap instead)."""
    from rich.table import Table

    def extra(rec: dict[str, Any]) -> str:  # file names and messages are text, not markup
        if rec.get("error"):
            return escape(str(rec["error"]))
        if pattern and rec.get("metadata") is None:
            return "[red](name does not match pattern)[/]"
        return escape(" ".join(f"{k}={v}" for k, v in (rec.get("metadata") or {}).items())) if pattern else ""

    names = [escape(Path(rec["path"]).name) for rec in records]
    widest = max((len(n) for n in names), default=4)
    title = f"{n_total} image(s)" + (f", {n_bad} unreadable" if n_bad else "")
    if widest > max(console.width - 30, 20):  # no room for a table beside such names: one block per file
        console.print(title)
        for name, rec in zip(names, records):
            console.print(name, soft_wrap=True)
            console.print(f"  {'x'.join(map(str, rec.get('shape', [])))} {rec.get('dtype', '')} "
                          f"{rec.get('axes', '')} {rec.get('format', '')} {extra(rec)}".rstrip())
        return
    from rich import box

    multi = any(int(rec.get("pages") or 1) > 1 for rec in records)
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("file", no_wrap=True, min_width=widest)
    for col in ("shape", "dtype", "axes") + (("pages",) if multi else ()):
        table.add_column(col, no_wrap=True)
    table.add_column("metadata / error", overflow="fold", ratio=1)
    for name, rec in zip(names, records):
        cells = [name, "x".join(map(str, rec.get("shape", []))), rec.get("dtype", ""), rec.get("axes", "")]
        table.add_row(*cells, *([str(rec.get("pages", ""))] if multi else []), extra(rec))
    console.print(table)
