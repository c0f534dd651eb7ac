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

from deepscope.cli._common import console, err_console, handle_errors

app = typer.Typer(help="Evaluate predictions against ground truth.", no_args_is_help=True, add_completion=False)

#: IoU thresholds shown in the segmentation tables (all of 0.50:0.05:0.95 are in the JSON/CSV).
SHOWN_THRESHOLDS = (0.5, 0.75, 0.9)


# --------------------------------------------------------------------------- shared helpers

def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats rounded, NaN as '-'."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _jsonable(obj: Any) -> Any:
    """Replace NaN/inf by None and NumPy scalars by Python ones, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_reports(document: dict[str, Any], table: Any, *, json_path: Path | None, csv_path: Path | None) -> None:
    """Write ``document`` as JSON and ``table`` (a DataFrame) as CSV, each atomically, where asked."""
    from deepscope.io import write_text

    if json_path is not None:
        write_text(json_path, json.dumps(_jsonable(document), indent=2) + "\n")
        err_console.print(f"wrote {json_path}")
    if csv_path is not None:
        write_text(csv_path, table.to_csv(index=False))
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
        err_console.print(f"[bold red]error:[/] {rec['image']}: {rec['error']}")

    document = {"task": "segment", "pred": str(pred), "truth": str(truth),
                "thresholds": [float(t) for t in report.per_threshold["threshold"]],
                "summary": s, "per_threshold": report.per_threshold.to_dict("records"),
                "images": per_image.to_dict("records"), "errors": report.errors.to_dict("records")}
    write_reports(document, per_image, json_path=json_out, csv_path=csv_out)
    if s["n_failed"]:
        raise typer.Exit(code=1)
