"""``deepscope segment``: instance label images, overlays and per-image object counts."""

from __future__ import annotations

from pathlib import Path

import typer

from deepscope.cli._common import (backend_option, console, escape, flow_threshold_option, handle_errors,
                                   include_labels_option, jobs_option, label_images, min_size_option, out_option,
                                   output_alias, pick_out, prob_threshold_option, recursive_option)
from deepscope.cli.count_cmd import SHOWN_ROWS, progress_bar, report_errors
from deepscope.cli.report_cmd import report_option, write_and_say


@handle_errors
def segment(
    paths: list[Path] = typer.Argument(..., help="Image files or folders (not their sub-folders unless "
                                       "--recursive). A z-stack (ImageJ hyperstack, OME-TIFF, OME-Zarr with a Z axis; "
                                       "a plain multi-page TIFF with --axes ZYX) gets 3D labels.", metavar="PATH"),
    out: Path | None = out_option(help="Output folder (required): <stem>.labels.tif, <stem>.overlay.png, "
                                  "counts.csv (z-stacks: ZYX labels with the voxel size; the overlay is of the maximum "
                                  "projection)."),
    output: Path | None = output_alias(),
    model: str | None = typer.Option(None, "--model", "-m", help="Shipped model name (nuclei, nuclei-fast: faster, "
                                     "less accurate on H&E and brightfield; nuclei-fluo, cells-bbbc005: `deepscope "
                                     "models` lists them), run folder of `deepscope train segment`, or model "
                                     ".json/.safetensors file. Default: nuclei. Z-stacks: the 2D model of --slices "
                                     "and --volume-method flows25d."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu, cuda ..."),
    tile: int | None = typer.Option(None, "--tile", help="Tile size for large images (default from the model "
                                    "card); tiles overlap, objects are never cut at tile borders."),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation: none, transpose (2 passes), flips (4), "
                            "d8 (8)."),
    channel: int | None = typer.Option(None, "--channel", help="Channel of multi-channel images to segment."),
    overlay: bool = typer.Option(True, "--overlay/--no-overlay", help="Write outline overlays (PNG)."),
    zarr_labels: bool = typer.Option(True, "--zarr-labels/--no-zarr-labels", help="For OME-Zarr inputs, also "
                                     "write the labels into the image's labels/<model> group; images over 50 "
                                     "million pixels are then segmented tile by tile from the store, their labels "
                                     "written only there."),
    rois: bool = typer.Option(False, "--rois", help="Also write <stem>.rois.zip: the objects as an ImageJ/Fiji ROI "
                              "set."),
    recursive: bool = recursive_option(),
    include_labels: bool = include_labels_option(),
    backend: str = backend_option(),
    jobs: int | None = jobs_option(),
    include: str | None = typer.Option(None, "--include", help="Glob on file names in folders."),
    diameter: float | None = typer.Option(None, "--diameter", help="Object diameter in pixels (generalist "
                                          "models; default: estimated per image and written to counts.csv)."),
    prob_threshold: float | None = prob_threshold_option(),
    flow_threshold: float | None = flow_threshold_option(),
    min_size: int | None = min_size_option(),
    axes: str | None = typer.Option(None, "--axes", help="Z-stacks: axis letters overriding the file's, e.g. ZYX "
                                    "for a plain multi-page TIFF of optical sections, ZCYX."),
    voxel_size: tuple[float, float, float] | None = typer.Option(None, "--voxel-size", help="Z-stacks: Z Y X in "
                                                                 "micrometres, overriding the file's."),
    slices: bool = typer.Option(False, "--slices", help="Z-stacks: segment each plane in 2D with --model and join "
                                "the planes' objects by overlap, instead of the 3D method (counts.csv's method "
                                "column says which)."),
    volume_method: str | None = typer.Option(None, "--volume-method", help="Z-stacks: classical (default: "
                                             "anisotropy-aware threshold, distance, seeds, watershed; no model), "
                                             "flows25d (the 2D --model's flows on XY, XZ and YZ planes followed in 3D; "
                                             "slower), slices (as --slices)."),
    frame: int | None = typer.Option(None, "--frame", help="Time series of z-stacks: the time point to segment."),
    report: bool = report_option(),
) -> None:
    """Segment objects into instances: int32 label images (0 = background), overlays and counts.csv.

    Z-stacks get 3D labels (ZYX int32, the voxel size in the file) by the 3D method, or plane by plane with
    --slices. Exits with code 1 only when every image failed; unreadable files get an error row.
    """
    from deepscope.tasks.segment.volume_files import segment_files

    output = pick_out(out, output)
    with progress_bar("segment") as progress:
        res = segment_files(paths, output, model=model, device=device, tile=tile, tta=tta, channel=channel,
                            overlay=overlay, include=include, recursive=recursive,
                            label_images=label_images(include_labels), progress=progress,
                            diameter=diameter, rois=rois, backend=backend,
                            zarr_labels=zarr_labels, jobs=jobs, prob_threshold=prob_threshold,
                            flow_threshold=flow_threshold, min_size=min_size, axes=axes,
                            voxel_size=voxel_size, slices=slices, frame=frame,
                            volume_method=volume_method)
    ok = res.table[res.table["error"] == ""]
    if res.n_images <= SHOWN_ROWS:
        for rec in ok.to_dict("records"):
            extra = ""
            if "voxel_size" in rec:
                extra = f" in 3D ({rec['method']}; {rec['planes']} planes, voxel {rec['voxel_size']} um)"
            elif "diameter" in rec:
                flag = ", OUT OF DOMAIN" if rec["in_domain"] is False else ""
                extra = f" (diameter {rec['diameter']:.1f} px{flag})"
            console.print(f"{escape(Path(rec['path']).name)}: {int(rec['count'])} object(s){extra}")
    report_errors(res.table)
    if "voxel_size" in res.table:
        wrote = "3D label images (ZYX, with the voxel size), counts.csv"
    else:
        wrote = f"label images, {'overlays, ' if overlay else ''}{'ImageJ ROI sets, ' if rois else ''}counts.csv"
    console.print(f"{res.summary()}; {int(ok['count'].sum()) if len(ok) else 0} objects; wrote {wrote} to "
                  f"{escape(str(output))}")
    if report:
        write_and_say(output)
    if res.all_failed:
        raise typer.Exit(code=1)
