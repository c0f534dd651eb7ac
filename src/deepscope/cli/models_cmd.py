"""``deepscope models``: the shipped models (task, description, key metrics) and their model cards."""

from __future__ import annotations

import json
import math
from typing import Any

import typer

from deepscope.cli._common import console, handle_errors

app = typer.Typer(help="Shipped models: list them (`deepscope models`) or show a model card (`models show NAME`).",
                  invoke_without_command=True, add_completion=False)


def key_metrics(card: dict[str, Any], *, limit: int = 4) -> list[str]:
    """A few ``name value`` strings: the card's ``headline`` when it has one, else from its ``metrics``."""
    if card.get("headline"):
        return [str(h) for h in card["headline"]][:limit]
    metrics = card.get("metrics") or {}
    out: list[str] = []

    def add(prefix: str, d: Any) -> None:
        if not isinstance(d, dict):
            return
        for k, v in d.items():
            if len(out) >= limit:
                return
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                out.append(f"{prefix}{k} {v:.3g}" if isinstance(v, float) else f"{prefix}{k} {v}")
            elif isinstance(v, dict):
                add(f"{k}: " if not prefix else prefix, v)

    add("", metrics)
    return out


@app.callback(invoke_without_command=True)
@handle_errors
def models(
    ctx: typer.Context,
    task: str | None = typer.Option(None, "--task", help="Only models of this task: count, segment, restore."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (name, task, description, metrics)."),
) -> None:
    """List the shipped models with their task, description and key metrics."""
    if ctx.invoked_subcommand is not None:
        return
    from deepscope.models import list_models, model_card

    rows = []
    for info in list_models(task):
        card = model_card(info.name)
        rows.append({"name": info.name, "task": info.task, "description": info.description,
                     "metrics": card.get("metrics") or {}, "key_metrics": key_metrics(card),
                     "weights_bytes": (card.get("weights") or {}).get("bytes")})
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        console.print("no shipped models installed" + (f" for task {task!r}" if task else "")
                      + " (deepscope/models/zoo is empty); pass a run folder of `deepscope train ...` with --model")
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} shipped model(s)")
    for col in ("name", "task", "description", "key metrics"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["task"], r["description"], "; ".join(r["key_metrics"]) or "-")
    console.print(table)
    console.print("`deepscope models show NAME` prints a model's card")


@app.command("show")
@handle_errors
def show(name: str = typer.Argument(..., help="Shipped model name, run folder or model .json card."),
         ) -> None:
    """Print a model card (architecture, input spec, training recipe, metrics, weights' sha256) as JSON."""
    from deepscope.errors import ModelError
    from deepscope.models import model_card

    try:
        card = model_card(name)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"'{name}' is not a deepscope model card (JSON): {exc}") from None
    console.print_json(json.dumps(card, default=str))
