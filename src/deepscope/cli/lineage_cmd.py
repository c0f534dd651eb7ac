"""``deepscope lineage FILE``: how a file was made, from the file alone or from the catalog."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from deepscope.cli._common import echo as _echo
from deepscope.cli._common import err_console, handle_errors


def _print_run(run: dict[str, Any], inputs: list[dict[str, Any]], *, heading: str, limit: int) -> None:
    echo = _echo  # file names and metadata with their control characters shown as escapes
    echo(heading)
    echo(f"  run        {run['run_id']}" + (f"  ({run['status']})" if run.get("status") else ""))
    echo(f"  command    {run['command']}")
    echo(f"  when       {run.get('started') or run.get('created')}"
         + (f" -> {run['finished']}" if run.get("finished") else ""))
    echo(f"  who        {run.get('user', '?')}@{run.get('host', '?')}")
    sw = run.get("software") or {}
    echo(f"  software   deepscope {run.get('deepscope_version', '?')}"
         + "".join(f", {k} {v}" for k, v in sw.items() if k != "platform"))
    if run.get("params"):
        echo(f"  params     {json.dumps(run['params'], sort_keys=True, default=str)}")
    for m in run.get("models") or []:
        echo(f"  model      {m['name']}  weights sha256 {m['sha256']}")
        parent = (m.get("card") or {}).get("parent")
        if parent:
            echo(f"    fine-tuned from {parent.get('name')}  weights sha256 {parent.get('weights_sha256')}"
                 f"  on {parent.get('n_images', '?')} image(s)")
    echo(f"  inputs     {len(inputs)}")
    for i in inputs[:limit]:
        line = f"    {i.get('sha256') or '(no sha256)'}  {i['path']}"
        if i.get("meta"):
            line += "\n      " + ", ".join(f"{k}={v}" for k, v in i["meta"].items())
        if i.get("now_at"):
            line += f"\n      (now at {i['now_at']})"
        elif i.get("catalogued") is False:
            line += "\n      (not in the catalog)"
        echo(line)
    if len(inputs) > limit:
        echo(f"    ... {len(inputs) - limit} more (--inputs N shows more, --json all)")
    if run.get("summary"):
        echo(f"  summary    {json.dumps(run['summary'], sort_keys=True, default=str)}")


@handle_errors
def lineage(
    file: Path = typer.Argument(..., help="A file deepscope wrote (table, label image, checkpoint ...)."),
    db: str | None = typer.Option(None, "--db",
                                  help="Read the run and its inputs' catalogued metadata from this catalog "
                                       "(SQLite file or postgresql:// URL) instead of the file alone."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    n_inputs: int = typer.Option(20, "--inputs", help="Input images listed (text output)."),
) -> None:
    """Print how FILE was made: run, command, parameters, models (weights SHA-256) and input images."""
    from deepscope.errors import InputError
    from deepscope.provenance import lineage as lin

    if not file.exists():
        raise FileNotFoundError(f"No such file: '{file}'")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", lin.LineageWarning)
        rec = lin.read(file)
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False)
    if db is None:
        if rec is None:
            raise InputError(f"'{file}' carries no provenance record (none embedded, no "
                             f"'{lin.sidecar_path(file).name}' beside it); with --db, the catalog may know it")
        if as_json:
            typer.echo(json.dumps(rec.to_dict(), indent=1, sort_keys=True))
            return
        d = rec.to_dict()
        _print_run({**d, "started": d["created"]}, d["inputs"], heading=f"{file}: made by", limit=n_inputs)
        return

    from deepscope.io import sha256_file
    from deepscope.provenance.catalog import Catalog, CatalogError

    sha = sha256_file(file)
    with Catalog(db) as cat:
        run_ids = cat.runs_for(sha)
        note = ""
        if not run_ids and rec is not None:
            run_ids = [rec.run_id]
            note = ("these bytes are not recorded as an output in the catalog; using the run id from the file's "
                    "own record")
        if not run_ids:
            raise CatalogError(f"'{file}' (sha256 {sha[:12]}) is not an output of any run in catalog {db}, and "
                               "it carries no provenance record")
        runs = [cat.get_run(r) for r in run_ids]
        catalogued = cat.images_by_sha(i["sha256"] for r in runs for i in r["inputs"])
    if note:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    for r in runs:
        for i in r["inputs"]:
            img = catalogued.get(i["sha256"])
            i["catalogued"] = img is not None
            i["meta"] = img.meta.flatten() if img is not None else {}
            if img is not None and img.path != i["path"]:
                i["now_at"] = img.path
    if as_json:
        typer.echo(json.dumps({"file": str(file), "sha256": sha, "runs": runs}, indent=1, default=str))
        return
    for r in runs:
        _print_run(r, r["inputs"], heading=f"{file} (sha256 {sha[:12]}): made by", limit=n_inputs)
