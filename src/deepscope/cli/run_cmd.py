"""``deepscope run PIPELINE.yaml`` and ``deepscope analyze PATH...``: analysis pipelines, local or on Dask."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import (console, err_console, escape, flow_threshold_option, handle_errors,
                                   include_labels_option, label_images, min_size_option, out_option, output_alias,
                                   pick_out, prob_threshold_option, progress_callback, recursive_option)
from deepscope.cli.report_cmd import report_option, write_and_say

_ON_CHANGE_HELP = ("When RUN_DIR holds another pipeline's results or inputs changed since their results were made: "
                   "'refuse' (stop and list them) or 'rerun' (process them again).")


def _report(result: Any, started: float) -> None:
    style = "green" if result.n_failed == 0 else "yellow"
    console.print(f"[{style}]{result.summary()}[/] ({result.executor})")
    for sid, err in result.failures[:5]:
        console.print(f"  [red]failed[/] {escape(str(sid))}: {escape(str(err))}")
    if result.n_failed > 5:
        console.print(f"  ... and {result.n_failed - 5} more: rows with status 'failed' in images.*")
    for sid, why in result.skipped[:3]:
        console.print(f"  [yellow]skipped[/] {escape(str(sid))}: {escape(str(why))}")
    names = sorted(result.tables, key=lambda n: (not n.startswith("images."), not n.endswith(".parquet"), n))
    console.print(f"results in {result.run_dir}: {', '.join(names)}; how they were made: deepscope lineage "
                  f"{result.run_dir / names[0]}")


def _execute(pipeline: Any, out: Path, *, jobs: int | None, workers: int | None, scheduler: str | None,
             on_change: str, retry_failed: bool, rehash: bool, connect_timeout: float, device: str,
             command: str, report: bool = True) -> None:
    from deepscope.pipeline import run_pipeline

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught, \
                progress_callback(pipeline.name, failed_column=True) as progress:
            warnings.simplefilter("always")
            result = run_pipeline(pipeline, out, jobs=jobs, workers=workers, scheduler=scheduler,
                                  on_change=on_change, retry_failed=retry_failed, rehash=rehash,
                                  connect_timeout=connect_timeout, device=device, command=command,
                                  progress=progress)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]: the image sets finished so far are kept in {out}; run the same "
                          "command again to finish the rest")
        raise typer.Exit(code=130) from None
    for w in caught:
        if not issubclass(w.category, DeprecationWarning):
            err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    _report(result, t0)
    if report:
        write_and_say(result.run_dir)
    if result.n_sets and result.n_failed == result.n_sets:
        err_console.print("[bold red]error:[/] every image set failed (see the errors above and the 'error' column "
                          f"of {result.run_dir / 'images.csv'})")
        raise typer.Exit(code=1)


def _check_on_change(value: str) -> str:
    from deepscope.pipeline import ON_CHANGE

    if value not in ON_CHANGE:
        raise typer.BadParameter(f"--on-change must be one of {', '.join(ON_CHANGE)}; got {value!r}")
    return value


@handle_errors
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML file (see docs/pipelines.md).", show_default=False),
    out: Path | None = out_option(help="Run folder (required): new or empty, or an earlier run of the same "
                                  "pipeline, which is then resumed."),
    output: Path | None = output_alias(),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Local worker processes (default: CPU cores; 0 = "
                                    "this process)."),
    workers: int | None = typer.Option(None, "--workers", help="Run on a new Dask LocalCluster with N workers."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Run on an existing Dask cluster, e.g. "
                                         "tcp://HOST:8786 (RUN_DIR and inputs on a shared file system)."),
    on_change: str = typer.Option("refuse", "--on-change", help=_ON_CHANGE_HELP, callback=_check_on_change),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Process again the image sets that failed in "
                                      "an earlier run."),
    rehash: bool = typer.Option(False, "--rehash", help="On resume, compare every input's SHA-256 (default: only "
                                "files whose size or modification time changed)."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="Seconds to wait for --scheduler."),
    device: str = typer.Option("auto", "--device", help="Device of the models: auto, cpu, cuda."),
    report: bool = report_option(),
) -> None:
    """Run an analysis pipeline over all its images into RUN_DIR (resumable).

    Writes RUN_DIR/images.{parquet,csv} (one row per image set, with its path, SHA-256 and
    lineage), RUN_DIR/objects.{parquet,csv} (one row per object) and label images/overlays.
    Rerunning with the same RUN_DIR finishes what is left; an image that fails gets an error
    row and the run goes on.
    """
    from deepscope.pipeline import load_pipeline

    _execute(load_pipeline(pipeline), pick_out(out, output), jobs=jobs, workers=workers, scheduler=scheduler,
             on_change=on_change,
             retry_failed=retry_failed, rehash=rehash, connect_timeout=connect_timeout, device=device,
             command="run", report=report)


@handle_errors
def analyze(
    paths: list[Path] = typer.Argument(..., help="Folders (not their sub-folders unless --recursive), image files "
                                       "or globs.", show_default=False, metavar="PATH"),
    out: Path | None = out_option(help="Run folder (required; resumed when it holds the same analysis)."),
    output: Path | None = output_alias(),
    model: str | None = typer.Option(None, "--model", "-m", help="Segmentation model: nuclei (default), "
                                     "cells-bbbc005, otsu-watershed, or a model folder / .json card."),
    count_model: str | None = typer.Option(None, "--count-model", help="Also count with this model (e.g. "
                                           "count-bbbc005) into Count_Cells."),
    counter: str | None = typer.Option(None, "--counter", help="Count model for blurred images: there Count_Nuclei "
                                       "is its estimate where it finds the image in its domain (Count_Nuclei_Method); "
                                       "default count-bbbc005; 'objects': always the number of nuclei found."),
    pattern: str | None = typer.Option(None, "--pattern", help="File-name pattern for Metadata_ columns: a preset "
                                       "(bbbc005) or a regex with named groups."),
    include: list[str] = typer.Option([], "--include", help="Only files whose name matches this glob (repeat)."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of multi-channel images to analyse "
                                       "(0-based); grey images ignore it."),
    recursive: bool = recursive_option(),
    include_labels: bool = include_labels_option(),
    overlays: bool = typer.Option(True, "--overlays/--no-overlays", help="Write overlay PNGs."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Write label images."),
    pixel_size: float | None = typer.Option(None, "--pixel-size", help="Micrometres per pixel for the _um columns "
                                            "(default: each image's own, where its file states one)."),
    diameter: float | None = typer.Option(None, "--diameter", help="Nucleus diameter in pixels (default: "
                                          "estimated per image, in the Diameter_Nuclei column)."),
    prob_threshold: float | None = prob_threshold_option(),
    flow_threshold: float | None = flow_threshold_option(),
    min_size: int | None = min_size_option(),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Local worker processes (default: CPU cores)."),
    workers: int | None = typer.Option(None, "--workers", help="Run on a new Dask LocalCluster with N workers."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Run on an existing Dask cluster."),
    on_change: str = typer.Option("refuse", "--on-change", help=_ON_CHANGE_HELP, callback=_check_on_change),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Process failed image sets again."),
    connect_timeout: float = typer.Option(10.0, "--connect-timeout", help="Seconds to wait for --scheduler."),
    device: str = typer.Option("auto", "--device", help="Device of the models: auto, cpu, cuda."),
    axes: str | None = typer.Option(None, "--axes", help="Z-stacks: axis letters overriding the files', e.g. ZYX "
                                    "for plain multi-page TIFFs of optical sections, ZCYX."),
    voxel_size: tuple[float, float, float] | None = typer.Option(None, "--voxel-size", help="Z-stacks: Z Y X in "
                                                                 "micrometres, overriding the files'."),
    volume_method: str | None = typer.Option(None, "--volume-method", help="Z-stacks: the 3D method, as for "
                                             "deepscope segment: classical (default; no model), flows25d, slices."),
    report: bool = report_option(),
) -> None:
    """Segment nuclei, count and measure them in every image: tables, label images and overlays.

    Z-stacks (files with a Z axis, or --axes ZYX) are segmented in 3D as deepscope segment does and
    measured in 3D with their voxel size (volume, surface area, sphericity, ...); labels are ZYX
    OME-TIFFs, overlays the maximum projections.

    On images the QC finds blurred, Count_Nuclei is the count model's estimate (--counter), as
    segmentation misses nuclei there; Count_Nuclei_Method says which, Count_Nuclei_Objects keeps
    the number of nuclei found.

    The one-line default pipeline; RUN_DIR/pipeline.yaml holds it, resolved, as a starting point
    for `deepscope run`.
    """
    from deepscope.pipeline import default_pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = default_pipeline(paths, model=model, count_model=count_model, pattern=pattern, include=include,
                                recursive=recursive, overlays=overlays, labels=labels, pixel_size=pixel_size,
                                diameter=diameter, channel=channel, label_images=label_images(include_labels),
                                counter=counter, axes=axes, voxel_size=voxel_size, volume_method=volume_method,
                                prob_threshold=prob_threshold, flow_threshold=flow_threshold, min_size=min_size)
    for w in caught:
        if not issubclass(w.category, DeprecationWarning):
            err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}")
    _execute(pipe, pick_out(out, output), jobs=jobs, workers=workers, scheduler=scheduler, on_change=on_change,
             retry_failed=retry_failed, rehash=False, connect_timeout=connect_timeout, device=device,
             command="analyze", report=report)
