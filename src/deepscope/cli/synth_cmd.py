"""``deepscope synth``: write a synthetic BBBC005-style data set with masks and labels."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from deepscope.cli._common import (console, err_console, handle_errors, out_option, output_alias, parse_int_list,
                                   pick_out, progress_callback)


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"--size: {text!r} is not ROWSxCOLS, e.g. 520x696") from None
    return rows, cols


@handle_errors
def synth(
    out: Path | None = out_option(help="Output folder (required; must be empty, or hold a run with the same "
                                  "arguments, which is then completed)."),
    output: Path | None = output_alias(),
    counts: str | None = typer.Option(None, "--counts", help="Cell counts, e.g. 1,5,10 or 1-20. BBBC005's counts "
                                      "keep BBBC005's plate columns; any other set is numbered in increasing order."),
    blur: str | None = typer.Option(None, "--blur", "--blurs", help="Focus-blur indices F >= 1 (sigma 0.25*F), "
                                    "e.g. 1,23,48. BBBC005's keep their plate rows (F1=A, F23=H, F48=P); any other "
                                    "set is numbered A, B, ... in increasing order (at most 16)."),
    sites: int | None = typer.Option(None, "--sites", help="Sites (fields) per count: s01..sNN."),
    stains: str | None = typer.Option(None, "--stains", help="1 = nuclei (w1), 2 = cell bodies (w2)."),
    seed: int = typer.Option(0, "--seed", help="Base seed; each field's seed derives from (seed, count, site)."),
    preset: str | None = typer.Option(None, "--preset", help="A full design: 'bbbc005' = 24 counts x 16 blur levels "
                                      "x 25 sites x 2 stains (19,200 images). Options given explicitly override it."),
    size: str = typer.Option("520x696", "--size", help="Image size ROWSxCOLS."),
    bit_depth: int = typer.Option(8, "--bit-depth", help="8 (uint8, like BBBC005) or 16 (uint16)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Processes; the files are identical to a serial run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a folder that holds files of another run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the design (number of images, names) and exit."),
) -> None:
    """Write SIMCEP-style synthetic cell images named like BBBC005, int32 masks and labels.csv.

    Images: OUT/SIMCEPImages_<well>_C<count>_F<blur>_s<site>_w<stain>.TIF; masks (nuclei for w1,
    cell bodies for w2): OUT/masks/, named like the field's in-focus F1 image; labels.csv has the
    columns of the real BBBC005 labels.
    """
    from deepscope.data.synth import get_design, plan_dataset, write_dataset

    out = pick_out(out, output)
    design = get_design(preset) if preset is not None else None
    if counts is None and design is None:
        raise typer.BadParameter("give --counts (e.g. --counts 1,5,10) or a --preset (bbbc005)")
    count_list = parse_int_list(counts, name="--counts") if counts is not None else list(design.counts)  # type: ignore[union-attr]
    blur_list = (parse_int_list(blur, name="--blur") if blur is not None else
                 list(design.blurs) if design is not None else [1])
    stain_list = (parse_int_list(stains, name="--stains") if stains is not None else
                  list(design.stains) if design is not None else [1, 2])
    n_sites = sites if sites is not None else design.sites if design is not None else 1
    shape = _parse_size(size)
    plan = plan_dataset(counts=count_list, blurs=blur_list, sites=n_sites, stains=stain_list)
    if dry_run:
        console.print(f"{len(plan)} images ({plan['count'].nunique()} counts x {plan['blur'].nunique()} blur levels "
                      f"x {plan['site'].nunique()} sites x {plan['stain'].nunique()} stains), "
                      f"{plan['mask'].nunique()} masks, size {shape[0]}x{shape[1]}, {bit_depth}-bit -> {out}")
        for name in list(plan.filename[:3]) + (["..."] if len(plan) > 4 else []) + list(plan.filename[-1:]):
            console.print(f"  {name}")
        return
    t0 = time.perf_counter()
    with progress_callback("synth") as report:
        table = write_dataset(out, counts=count_list, blurs=blur_list, sites=n_sites, stains=stain_list, seed=seed,
                              overwrite=overwrite, workers=workers, size=shape, bit_depth=bit_depth, progress=report)
    console.print(f"wrote {len(table)} images, {plan['mask'].nunique()} masks and labels.csv to {out} "
                  f"in {time.perf_counter() - t0:.1f} s")
