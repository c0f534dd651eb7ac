"""``deepscope catalog``: catalogue images with their acquisition metadata; query, export, check."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from deepscope.cli._common import (echo, err_console, handle_errors, out_option, output_alias, pick_out, progress,
                                   recursive_option)

app = typer.Typer(
    rich_markup_mode=None, name="catalog", no_args_is_help=True, add_completion=False,
                  help="A content-addressed catalog of images (SHA-256 of the bytes) with their acquisition "
                       "metadata and lineage. SQLite by default (--db deepscope.db), PostgreSQL by URL.")

_DB_HELP = ("Catalog: a SQLite file (created if missing) or postgresql://user@host:port/dbname. "
            "Default: $DEEPSCOPE_DB, else ./deepscope.db.")


def _db_option() -> Any:
    return typer.Option("deepscope.db", "--db", envvar="DEEPSCOPE_DB", help=_DB_HELP)


def _where_option(required: bool = False) -> Any:
    return typer.Option(... if required else [], "--where", "-w",
                        help="Condition KEY=VALUE (also !=, <, <=, >, >=; * wildcard); repeat for AND. KEY is a "
                             "metadata key (objective.na, channels.stain), its last part (stain, blur) or a file "
                             "fact (format, dtype, path).")


def _open(db: str) -> Any:
    from deepscope.provenance.catalog import Catalog

    return Catalog(db)


def _echo(line: str) -> None:
    echo(line)  # control characters of file names shown as escapes


@app.command("add")
@handle_errors
def add(
    paths: list[Path] = typer.Argument(..., help="Image files, folders (not their sub-folders unless "
                                       "--recursive) and OME-Zarr plates (one image per field).", metavar="PATH"),
    pattern: str | None = typer.Option(None, "--pattern", "-p",
                                       help="File-name pattern: preset (bbbc005) or regex with named groups."),
    meta: list[Path] = typer.Option([], "--meta", "-m",
                                    help="YAML of defaults (.yaml) or CSV keyed by file name (.csv); repeatable."),
    include: str | None = typer.Option(None, "--include", help="Glob on file names, e.g. '*_w1.TIF'."),
    recursive: bool = recursive_option(),
    discover: bool = typer.Option(True, "--discover/--no-discover",
                                  help="Use deepscope-meta.yaml / deepscope-meta.csv found beside the images."),
    verify: str = typer.Option("header", "--verify", help="header (parse TIFF headers, fast) or full (decode)."),
    batch_size: int = typer.Option(200, "--batch-size", help="Images written per transaction."),
    show_conflicts: bool = typer.Option(False, "--show-conflicts", help="List every metadata conflict."),
    db: str = _db_option(),
) -> None:
    """Add images to the catalog: SHA-256, file facts and merged metadata. Safe to rerun."""
    from deepscope.errors import InputError
    from deepscope.io import expand_inputs
    from deepscope.provenance.sources import MetadataSources

    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"No such file or folder: '{p}'")
    sources = MetadataSources(pattern=pattern, meta=list(meta), discover=discover)
    files: list[Path] = []
    for p in paths:  # the images segment/count/run would see: a plate is its fields of view
        try:
            files.extend(expand_inputs([p], include=include, recursive=recursive, empty="skip"))
        except InputError:  # a plate refused: passed on as given, so the catalog records its failed row
            files.append(p)
    if not files:
        raise FileNotFoundError(f"no image files found in {', '.join(map(str, paths))}")
    with _open(db) as cat:
        report = cat.add(progress(files, total=len(files), description="cataloguing"), sources=sources,
                         batch_size=batch_size, verify=verify)
    for r in report.results:
        if r.status == "moved":
            _echo(f"moved      {r.detail} -> {r.path}")
        elif r.status == "changed":
            _echo(f"changed    {r.path} (bytes changed: new image {r.sha256[:12] if r.sha256 else ''}, "
                  f"was {r.detail[:12]})")
        elif r.status == "duplicate":
            _echo(f"duplicate  {r.path} (same bytes as {r.detail})")
        elif r.status == "failed":
            _echo(f"failed     {r.path}: {r.detail}")
    notes: dict[str, int] = {}
    for _, note in report.notes:
        notes[note] = notes.get(note, 0) + 1
    for note, n in notes.items():
        err_console.print(f"[yellow]note:[/] {n} file(s): {escape(note)}", highlight=False)
    if report.conflicts:
        shown = report.conflicts if show_conflicts else report.conflicts[:5]
        for path, c in shown:
            _echo(f"conflict   {Path(path).name}: {c}")
        if len(shown) < len(report.conflicts):
            _echo(f"... {len(report.conflicts) - len(shown)} more conflict(s) (--show-conflicts lists all)")
    _echo(f"catalog {db}: {report.summary()}")
    if report.results and report.counts["failed"] == len(report.results):
        raise typer.Exit(code=1)


@app.command("list")
@handle_errors
def list_(
    limit: int | None = typer.Option(None, "--limit", "-n", help="At most this many images."),
    all_: bool = typer.Option(False, "--all", help="Also images whose file has since changed."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    db: str = _db_option(),
) -> None:
    """List catalogued images: SHA-256 (12 digits), shape, dtype, path."""
    with _open(db) as cat:
        images = cat.list(include_replaced=all_, limit=limit)
        total = cat.count(include_replaced=all_)
    for img in images:
        if as_json:
            _echo(json.dumps(img.to_row(), default=str))
        else:
            flag = " (replaced)" if img.replaced_by else ""
            _echo(f"{img.sha256[:12]}  {'x'.join(map(str, img.shape)):>12}  {img.dtype or '':<7} {img.path}{flag}")
    if not as_json:
        err_console.print(f"{len(images)} of {total} image(s)", highlight=False)


@app.command("show")
@handle_errors
def show(
    ref: str = typer.Argument(..., help="SHA-256 (or a prefix of 6+ hex digits) or catalogued path."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    db: str = _db_option(),
) -> None:
    """Show one image: file facts, every metadata field with its source, conflicts, runs that used it."""
    with _open(db) as cat:
        img = cat.get(ref)
        sources = cat.metadata_sources(img.sha256)
        used_by = cat.runs_using(img.sha256)
    if as_json:
        _echo(json.dumps({**img.to_row(), "meta": img.meta.to_dict(), "sources": sources,
                          "conflicts": list(img.conflicts), "used_by_runs": used_by}, indent=1, default=str))
        return
    row = img.to_row()
    for k in ("sha256", "path", "format", "shape", "dtype", "bit_depth", "pages", "axes", "compression",
              "size_bytes", "added", "updated"):
        _echo(f"{k:<14} {row[k]}")
    if img.replaced_by:
        _echo(f"{'replaced_by':<14} {img.replaced_by} (the file at this path has changed)")
    _echo("metadata:")
    for k, v in img.meta.flatten().items():
        _echo(f"  {k} = {v}    [{sources.get(k, '?')}]")
    for c in img.conflicts:
        _echo(f"conflict: {c['key']}: {c['source']}={c['value']!r} overrides "
              f"{c['overridden_source']}={c['overridden']!r}")
    for r in used_by:
        _echo(f"used by run {r['run_id']} ({r['command']}, {r['started']})")


@app.command("query")
@handle_errors
def query(
    where: list[str] = _where_option(required=True),
    long: bool = typer.Option(False, "--long", "-l", help="Also print the SHA-256 and the matched fields."),
    all_: bool = typer.Option(False, "--all", help="Also images whose file has since changed."),
    db: str = _db_option(),
) -> None:
    """Print the path of every image matching all conditions, one per line."""
    from deepscope.provenance.catalog import parse_where

    conds = [parse_where(w) for w in where]
    with _open(db) as cat:
        images = cat.query(conds, include_replaced=all_)
    for img in images:
        if long:
            flat = img.meta.flatten()
            shown = {k: v for k, v in flat.items()
                     if any(c.key in (k, k.rsplit(".", 1)[-1]) or k.endswith("." + c.key) for c in conds)}
            _echo(f"{img.path}\t{img.sha256}\t" + " ".join(f"{k}={v}" for k, v in shown.items()))
        else:
            _echo(img.path)
    err_console.print(f"{len(images)} image(s) match", highlight=False)


@app.command("export")
@handle_errors
def export(
    out: Path | None = out_option(help="File to write (required; .csv or .parquet)."),
    output: Path | None = output_alias(),
    fmt: str | None = typer.Option(None, "--format", "-f", help="csv or parquet (default: from the extension)."),
    where: list[str] = _where_option(),
    db: str = _db_option(),
) -> None:
    """Write one row per image with its metadata as columns (CSV or Parquet), with lineage."""
    output = pick_out(out, output)
    if fmt is None:
        fmt = "parquet" if output.suffix.lower() in (".parquet", ".pq") else "csv"
    with _open(db) as cat:
        cat.export(output, format=fmt, where=where)
        n = cat.count(where)
    _echo(f"wrote {output} ({n} image(s), {fmt})")


@app.command("check")
@handle_errors
def check(
    require: str = typer.Option("", "--require", "-r",
                                help="Comma-separated fields every image must have, e.g. objective.na,channels.stain."),
    criterion: str = typer.Option("abbe", "--criterion", help="Nyquist criterion: abbe (lambda/2NA) or rayleigh."),
    where: list[str] = _where_option(),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 1 when any issue is found."),
    db: str = _db_option(),
) -> None:
    """Report missing required fields, undersampled optics and files no longer at their path."""
    reqs = [r.strip() for r in require.split(",") if r.strip()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _open(db) as cat:
            issues = cat.check(require=reqs, criterion=criterion, where=where)
            n = cat.count(where)
    counts: dict[str, int] = {}
    for issue in issues:
        counts[issue.kind] = counts.get(issue.kind, 0) + 1
        _echo(f"{issue.kind:<14} {issue.path}: {issue.message}")
    bad = len({i.sha256 for i in issues})
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no issues"
    _echo(f"checked {n} image(s): {bad} with issues ({summary})")
    if strict and issues:
        raise typer.Exit(code=1)
