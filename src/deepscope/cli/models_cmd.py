"""``deepscope models``: the shipped models (task, description, key metrics) and their model cards."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import console, handle_errors

app = typer.Typer(
    rich_markup_mode=None,
    help="Shipped models: list them (`deepscope models`), show a model card (`models show NAME`) or export a "
         "network (`models export NAME -o FILE.onnx`).",
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
        card = model_card(info.name).to_dict()
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
         as_json: bool = typer.Option(False, "--json", help="Print the raw model card (JSON)."),
         ) -> None:
    """Show a model card: what the model does, its input, training, metrics and weights (--json: raw)."""
    from deepscope.errors import ModelError
    from deepscope.models import model_card

    try:
        card = model_card(name).to_dict()
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"'{name}' is not a deepscope model card (JSON): {exc}") from None
    if as_json:
        console.print_json(json.dumps(card, default=str))
        return
    print_card(card)


@app.command("export")
@handle_errors
def export(name: str = typer.Argument(..., help="Shipped model name, run folder or model .json card."),
           fmt: str = typer.Option("onnx", "--format", help="onnx (the network), onnx-int8 (the network quantised "
                                   "to int8, calibrated on --calibration images) or bioimageio (a bioimage.io "
                                   "model package: TorchScript + ONNX weights, test tensors, cover, card)."),
           out: Path = typer.Option(..., "--output", "-o", help="File to write, e.g. nuclei.onnx or nuclei.zip."),
           opset: int | None = typer.Option(None, "--opset", help="ONNX opset (default: deepscope's, 17)."),
           check: bool = typer.Option(True, "--check/--no-check", help="Run the export in ONNX Runtime on a test "
                                      "input and compare with PyTorch (needs onnxruntime)."),
           calibration: Path | None = typer.Option(None, "--calibration", help="onnx-int8: a folder of images "
                                                   "like the ones the model will see (not the ones you judge it "
                                                   "on); 10-20 are enough."),
           ) -> None:
    """Export a model: its network as ONNX (BatchNorm folded, float32, any batch/height/width, the card in the
    metadata), or a bioimage.io model package that the bioimage.io spec validator accepts.

    Pre- and post-processing stay in deepscope (the card says what they are): `--backend onnx` on count,
    segment and restore runs a model through ONNX Runtime with them. `--format onnx-int8` saved beside a
    model's card as `<stem>.int8.onnx` is what `--backend onnx-int8` runs for that model (the shipped models
    have theirs).
    """
    import numpy as np

    from deepscope.models import load_model
    from deepscope.predict.backends import ONNX_OPSET, OnnxBackend, TorchBackend, export_onnx

    if fmt not in ("onnx", "onnx-int8", "bioimageio"):
        raise typer.BadParameter(f"--format {fmt!r} is not one of onnx, onnx-int8, bioimageio")
    if (fmt == "onnx-int8") != (calibration is not None):
        raise typer.BadParameter("--calibration FOLDER goes with --format onnx-int8 (and it needs one)",
                                 param_hint="'--calibration'")
    model = load_model(name, device="cpu")
    if fmt == "onnx-int8":
        from deepscope.io import find_images, read_image
        from deepscope.predict.backends import OnnxInt8Backend, export_onnx_int8

        files = find_images(calibration)
        data = export_onnx_int8(model, (read_image(f).data for f in files), out,
                                calibration=f"{len(files)} images of {calibration}")
        x = np.random.default_rng(0).random((1, model.arch.in_channels, 96, 128), dtype=np.float32)
        ref = TorchBackend(model.net, device="cpu").forward(x)
        diff = float(np.abs(OnnxInt8Backend(data).forward(x) - ref).mean() / max(np.abs(ref).mean(), 1e-12))
        console.print(f"wrote {out} ({len(data) / 1e6:.1f} MB, int8, calibrated on {len(files)} images); "
                      f"vs PyTorch mean relative difference {diff:.1e} on a random input")
        return
    if fmt == "bioimageio":
        from deepscope.predict.bioimageio import export_bioimageio, validate_bioimageio

        path = export_bioimageio(model, out)
        status, errors = validate_bioimageio(path)
        console.print(f"wrote {out} ({path.stat().st_size / 1e6:.1f} MB); bioimage.io spec validation: {status}"
                      + (f" ({len(errors)} error(s): {errors[0]})" if errors else ""))
        if errors:
            raise typer.Exit(code=1)
        return
    data = export_onnx(model, out, opset=opset or ONNX_OPSET)
    line = (f"wrote {out} ({len(data) / 1e6:.1f} MB, opset {opset or ONNX_OPSET}, input (N, "
            f"{model.arch.in_channels}, H, W))")
    if check:
        x = np.random.default_rng(0).random((2, model.arch.in_channels, 96, 128), dtype=np.float32)
        ref = TorchBackend(model.net, device="cpu").forward(x)
        diff = float(np.abs(OnnxBackend(data).forward(x) - ref).max())
        line += f"; ONNX Runtime vs PyTorch max abs difference {diff:.1e}"
    console.print(line)


#: Sections of a card in the order a reader wants them, with their headings.
CARD_SECTIONS = (("input", "Input"), ("output", "Output"), ("architecture", "Architecture"),
                 ("training", "Training"), ("evaluation", "Evaluation"), ("metrics", "Metrics"),
                 ("weights", "Weights"))


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v) if v else "-"
    if v is None or v == "" or v == {}:
        return "-"
    return str(v)


def _is_table(d: Any) -> bool:
    """A mapping of rows (each a mapping of scalars): shown as a table."""
    return isinstance(d, dict) and bool(d) and all(
        isinstance(r, dict) and r and all(not isinstance(x, (dict, list)) for x in r.values()) for r in d.values())


def _fields(d: dict[str, Any], indent: int = 2) -> None:
    """Nested key: value lines; long values wrap under themselves, never under the key."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")

    def add(sub: dict[str, Any], level: int) -> None:
        for k, v in sub.items():
            if isinstance(v, dict) and v:
                grid.add_row(" " * level + f"[bold]{k}[/]", "")
                add(v, level + 2)
            else:
                grid.add_row(" " * level + f"{k}:", _value(v))

    add(d, indent)
    console.print(grid)


def print_card(card: dict[str, Any]) -> None:
    """Print a model card as a readable page (headline, description, then one section per part)."""
    from rich.markup import escape
    from rich.table import Table

    rep = f", {card['representation']}" if card.get("representation") else ""
    console.print(f"[bold]{escape(str(card.get('name', '?')))}[/]  ({card.get('task', '?')} model{rep}; card schema "
                  f"{card.get('schema_version', card.get('card_version', '?'))}, made with deepscope "
                  f"{card.get('deepscope_version', '?')})")
    if card.get("description"):
        console.print(escape(str(card["description"])))
    if card.get("headline"):
        console.print("[bold]Key metrics:[/] " + escape("; ".join(str(h) for h in card["headline"])))
    shown = {"name", "task", "card_version", "schema_version", "representation", "deepscope_version", "description",
             "headline"}
    for key, heading in CARD_SECTIONS + tuple((k, k.replace("_", " ").capitalize()) for k in card
                                              if k not in {s for s, _ in CARD_SECTIONS}):
        if key in shown or key not in card:
            continue
        shown.add(key)
        value = card[key]
        console.print(f"\n[bold underline]{escape(heading)}[/]")
        if key == "metrics" and isinstance(value, dict):
            for set_name, rows in value.items():
                if _is_table(rows):
                    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
                    table = Table(title=str(set_name), title_justify="left")
                    table.add_column("")
                    for c in cols:
                        table.add_column(str(c), justify="right")
                    for row_name, r in rows.items():
                        table.add_row(str(row_name), *[_value(r.get(c)) for c in cols])
                    console.print(table)
                elif isinstance(rows, dict):
                    console.print(f"  [bold]{escape(str(set_name))}[/]")
                    _fields(rows, 4)
                else:
                    console.print(f"  {escape(str(set_name))}: {escape(_value(rows))}")
        elif isinstance(value, dict):
            _fields(value)
        else:
            console.print(f"  {escape(_value(value))}")
    console.print("\n[dim]--json prints the raw card[/]")
