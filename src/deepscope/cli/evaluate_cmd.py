"""``deepscope evaluate``: score predictions against ground truth.

One sub-command per task, each a thin layer over :mod:`deepscope.evaluate`:

* ``segment``: predicted label images (``deepscope segment`` output) against truth label images.
* ``count`` and ``restore`` are added by the counting and restoration commands' authors; they can
  reuse :func:`write_reports` (JSON + CSV outputs) and :func:`fmt` (table cells) below.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import console, err_console, escape, handle_errors, recursive_option

app = typer.Typer(
    rich_markup_mode=None,
    help="Evaluate predictions against ground truth.", no_args_is_help=True, add_completion=False)

#: IoU thresholds shown in the segmentation tables (all of 0.50:0.05:0.95 are in the JSON/CSV).
SHOWN_THRESHOLDS = (0.5, 0.75, 0.9)


# --------------------------------------------------------------------------- shared helpers

def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats rounded, NaN as '-'."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def write_reports(document: dict[str, Any], table: Any, *, json_path: Path | None, csv_path: Path | None) -> None:
    """Write ``document`` as JSON and ``table`` (a DataFrame) as CSV, each atomically, where asked."""
    from deepscope.io import csv_text, to_jsonable, write_text

    if json_path is not None:
        write_text(json_path, json.dumps(to_jsonable(document, finite=True), indent=2) + "\n")
        err_console.print(f"wrote {json_path}")
    if csv_path is not None:
        write_text(csv_path, csv_text(table))  # text cells that start like a formula get a leading '
        err_console.print(f"wrote {csv_path}")


# --------------------------------------------------------------------------- segment

@app.command("segment")
@handle_errors
def segment(
    pred: Path = typer.Option(..., "--pred", help="Folder of predicted label images (<stem>.labels.tif), "
                                                  "e.g. the --output of `deepscope segment`."),
    truth: Path = typer.Option(..., "--truth", help="Folder of truth label images (PNG/TIFF, 0 = background), "
                                                    "named <stem>.<ext>."),
    json_out: Path | None = typer.Option(None, "--json", help="Write per-image, per-threshold and overall "
                                                              "scores as JSON."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write the per-image table as CSV."),
    subset: bool = typer.Option(False, "--subset", help="Score only the truth images that have a prediction "
                                                        "(default: every truth image needs one)."),
    pred_suffix: str = typer.Option(".labels.tif", "--pred-suffix", help="Ending of prediction file names."),
    limit: int = typer.Option(30, "--limit", help="Images shown in the per-image table (files get all)."),
) -> None:
    """Score instance segmentations: IoU-matched F1/precision/recall, DSB score, PQ, count error."""
    from deepscope.evaluate import evaluate_label_folders

    report = evaluate_label_folders(pred, truth, pred_suffix=pred_suffix, subset=subset)
    per_image, s = report.per_image, report.summary

    from rich.table import Table

    table = Table(title=f"{len(per_image)} image(s)" + (f" (first {limit})" if len(per_image) > limit else ""))
    for col in ("image", "true", "pred", *(f"F1@{t:g}" for t in SHOWN_THRESHOLDS), "DSB", "PQ@0.5"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for row in per_image.head(limit).to_dict("records"):
        table.add_row(str(row["image"]), str(row["n_true"]), str(row["n_pred"]),
                      *(fmt(row[f"f1@{t:g}"]) for t in SHOWN_THRESHOLDS), fmt(row["mean_ap"]), fmt(row["pq@0.5"]))
    console.print(table)

    overall = Table(title="overall (objects of all images pooled; DSB = mean over images)")
    overall.add_column("IoU")
    for col in ("precision", "recall", "F1", "PQ", "mean AP"):
        overall.add_column(col, justify="right")
    for t in SHOWN_THRESHOLDS:
        overall.add_row(f"{t:g}", fmt(s[f"precision@{t:g}"]), fmt(s[f"recall@{t:g}"]), fmt(s[f"f1@{t:g}"]),
                        fmt(s[f"pq@{t:g}"]), fmt(s[f"mean_ap@{t:g}"]))
    console.print(overall)
    console.print(f"DSB score {fmt(s['dsb_score'])} | images {s['n_images']}, failed {s['n_failed']} | objects "
                  f"true {s['n_true']}, predicted {s['n_pred']} | count error per image: MAE {fmt(s['count_mae'], 2)}, "
                  f"bias {fmt(s['count_bias'], 2)}")
    for rec in report.errors.to_dict("records"):
        err_console.print(f"[bold red]error:[/] {escape(str(rec['image']))}: {escape(str(rec['error']))}")

    document = {"task": "segment", "pred": str(pred), "truth": str(truth),
                "thresholds": [float(t) for t in report.per_threshold["threshold"]],
                "summary": s, "per_threshold": report.per_threshold.to_dict("records"),
                "images": per_image.to_dict("records"), "errors": report.errors.to_dict("records")}
    write_reports(document, per_image, json_path=json_out, csv_path=csv_out)
    if s["n_failed"]:
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- count

def _print_count_metrics(metrics: Any, *, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("stratum", "n", "MAE", "RMSE", "bias", "exact", "coverage", "width"):
        table.add_column(col, justify="left" if col == "stratum" else "right")
    for r in metrics.to_dict("records"):
        name = "all" if r["stratum"] == "all" else f"{r['stratum']}={r['value']}"
        table.add_row(name, str(r["n"]), fmt(r["mae"], 2), fmt(r["rmse"], 2), fmt(r["bias"], 2), fmt(r["exact"]),
                      fmt(r["coverage"]), fmt(r["mean_width"], 1))
    console.print(table)


@app.command("count")
@handle_errors
def count(
    data: Path = typer.Option(..., "--data", help="Folder of images with known counts."),
    pattern: str | None = typer.Option(None, "--pattern", "-p", help="File-name pattern (bbbc005 or a regex); its "
                                       "'count' group is the true count."),
    model: str = typer.Option("count-bbbc005", "--model", "-m", help="Shipped name, run folder or model file."),
    labels: Path | None = typer.Option(None, "--labels", help="CSV of true counts keyed by file name."),
    label_column: str | None = typer.Option(None, "--label-column", help="Column holding the true count."),
    subset: str = typer.Option("all", "--subset", help="all, or the train/valid/test part of the split "
                               "`deepscope train` makes with the same --split/--seed/--fractions."),
    split: str | None = typer.Option(None, "--split", help="random or field (default: field when there is one)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="Train, validation, test fractions."),
    by: str = typer.Option("blur,stain", "--by", help="Metadata columns to break the scores down by."),
    include: str | None = typer.Option(None, "--include", help="Glob on file names, e.g. '*_w1.TIF'."),
    recursive: bool = recursive_option(),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda ..."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of multi-channel images."),
    json_out: Path | None = typer.Option(None, "--json", help="Write overall and per-stratum scores as JSON."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write the per-image table as CSV."),
) -> None:
    """Score a counting model: MAE, RMSE, bias, exact-count share and 95%-interval coverage, overall and per stratum."""
    from deepscope.cli.count_cmd import progress_bar, report_errors
    from deepscope.cli.train_cmd import select_subset
    from deepscope.data import ImageLoader
    from deepscope.predict.evaluation import evaluate_counts

    label = label_column or (None if labels is not None else "count")
    ds = ImageLoader(pattern=pattern, labels=labels if labels is not None else label, label_column=label_column,
                     include=include, recursive=recursive).load(data)
    ds = select_subset(ds, subset, split=split, seed=seed, fractions=fractions)
    strata = tuple(c.strip() for c in by.split(",") if c.strip())
    with progress_bar("count") as report:
        ev = evaluate_counts(ds, model=model, by=strata, device=device, channel=channel, progress=report)
    _print_count_metrics(ev.metrics, title=f"{len(ds)} image(s) ({subset}), model {model}")
    report_errors(ev.per_image)
    overall = ev.metrics.iloc[0]
    console.print(f"MAE {fmt(float(overall['mae']), 2)} cells, RMSE {fmt(float(overall['rmse']), 2)}, "
                  f"bias {fmt(float(overall['bias']), 2)}, exact {fmt(float(overall['exact']))}, 95% interval "
                  f"coverage {fmt(float(overall['coverage']))} | images {len(ds)}, failed {ev.n_failed}")
    document = {"task": "count", "data": str(data), "model": model, "subset": subset, "split": split, "seed": seed,
                "fractions": fractions, "n_images": len(ds), "n_failed": ev.n_failed,
                "overall": ev.metrics.iloc[0].to_dict(), "strata": ev.metrics.iloc[1:].to_dict("records"),
                "errors": ev.per_image[ev.per_image["error"] != ""][["path", "error"]].to_dict("records")}
    write_reports(document, ev.per_image, json_path=json_out, csv_path=csv_out)
    if ev.n_failed:
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- restore

@app.command("restore")
@handle_errors
def restore(
    data: Path = typer.Option(..., "--data", help="Folder of images (inputs and targets together)."),
    model: str = typer.Option(..., "--model", "-m", help="Restoration model: shipped name (deblur-bbbc005 ...), "
                              "run folder or model file."),
    target: str = typer.Option(..., "--target", help="Metadata rule of the target images, e.g. 'blur=1'."),
    input_rule: str | None = typer.Option(None, "--input", help="Metadata rule of the input images, e.g. 'blur=48' "
                                          "(omit for a 2x super-resolution model: inputs = targets reduced)."),
    pattern: str | None = typer.Option(None, "--pattern", "-p", help="File-name pattern (bbbc005 or a regex)."),
    same: str = typer.Option("field", "--same", help="Columns an input and its target share (comma-separated)."),
    count_model: str = typer.Option("count-bbbc005", "--count-model", help="Counting model for the downstream "
                                    "effect (counting MAE on raw vs restored images); 'none' to skip."),
    segment_model: str = typer.Option("none", "--segment-model", help="Segmentation model for object-count "
                                      "agreement on raw vs restored images (e.g. cells-bbbc005); 'none' to skip."),
    subset: str = typer.Option("all", "--subset", help="all, or the train/valid/test part of the split."),
    split: str | None = typer.Option(None, "--split", help="random or field (default: field when there is one)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    fractions: str = typer.Option("0.8,0.1,0.1", "--fractions", help="Train, validation, test fractions."),
    limit: int | None = typer.Option(None, "--limit", help="Score at most this many pairs, spread evenly."),
    include: str | None = typer.Option(None, "--include", help="Glob on file names."),
    recursive: bool = recursive_option(),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda ..."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the summary and per-pair scores as JSON."),
    csv_out: Path | None = typer.Option(None, "--csv", help="Write the per-pair table as CSV."),
) -> None:
    """Score a restoration model: PSNR and SSIM against the targets, and counting/segmentation on raw vs restored."""
    import numpy as np

    from deepscope.cli.count_cmd import progress_bar
    from deepscope.cli.train_cmd import restore_pairs, select_subset
    from deepscope.data import ImageLoader
    from deepscope.models import load_model
    from deepscope.predict.evaluation import evaluate_restoration

    net = load_model(model, device=device, task="restore")
    ds = ImageLoader(pattern=pattern, include=include, recursive=recursive).load(data)
    pairs = restore_pairs(ds, input_rule=input_rule, target_rule=target, same=same, upscale=net.upscale)
    pairs = select_subset(pairs, subset, split=split, seed=seed, fractions=fractions)
    if limit is not None and limit < len(pairs):
        pairs = pairs.select(np.unique(np.linspace(0, len(pairs) - 1, max(limit, 1)).round().astype(int)))
    with progress_bar("restore") as report:
        ev = evaluate_restoration(pairs, model=net, device=device, progress=report,
                                  count_model=None if count_model == "none" else count_model,
                                  segment_model=None if segment_model == "none" else segment_model)
    s = ev.summary
    from rich.table import Table

    base = "raw input" if s["upscale"] == 1 else "bicubic"
    table = Table(title=f"{s['n_pairs']} pair(s) ({subset}), model {model}")
    for col in ("", base, "restored", "target"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_row("PSNR (dB)", fmt(s["psnr_raw"], 2), fmt(s["psnr_restored"], 2), "-")
    table.add_row("SSIM", fmt(s["ssim_raw"]), fmt(s["ssim_restored"]), "-")
    table.add_row("invented objects (share)", "-", f"{s['false_objects']} ({fmt(s['false_fraction'])})", "-")
    if "count_mae_raw" in s:
        table.add_row(f"count MAE vs {s['count_mae_reference']}", fmt(s["count_mae_raw"], 2),
                      fmt(s["count_mae_restored"], 2), fmt(s["count_mae_target"], 2))
    if "objects_mae_raw" in s:
        table.add_row(f"object-count MAE vs {s['objects_mae_reference']}", fmt(s["objects_mae_raw"], 2),
                      fmt(s["objects_mae_restored"], 2), fmt(s["objects_mae_target"], 2))
    console.print(table)
    for rec in ev.per_image[ev.per_image["error"] != ""].head(10).to_dict("records"):
        err_console.print(f"[bold red]error:[/] {escape(str(rec['input']))}: {escape(str(rec['error']))}")
    console.print(f"pairs {s['n_pairs']}, failed {s['n_failed']}; PSNR data range from the target dtype")
    document = {"task": "restore", "data": str(data), "model": model, "input": input_rule, "target": target,
                "subset": subset, "summary": s, "pairs": ev.per_image.to_dict("records")}
    write_reports(document, ev.per_image, json_path=json_out, csv_path=csv_out)
    if s["n_failed"]:
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- track (deepscope.cli.track_cmd)

def _register_track() -> None:
    from deepscope.cli.track_cmd import evaluate_track

    app.command("track")(evaluate_track)


_register_track()
