"""``python -m deepscope.demo``: the end-to-end demo behind ``make demo``.

Runs on the sample images bundled in the package (made by deepscope's synthetic generator), so
it needs no download and no ``../shared`` folder. It splits the samples by field of view, then
runs the same ``deepscope`` commands a user would type, on the nuclear stain (``*_w1.TIF``) with
the BBBC005 file-name pattern, so the true count of every image sits beside the measured one,
and ends with the path of the HTML report.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

#: The nuclear stain of the bundled BBBC005-style samples (w2 is the cell-body stain).
NUCLEAR_STAIN = "*_w1.TIF"


def sample_dir() -> Path:
    """Folder of the bundled sample images."""
    return Path(__file__).parent / "samples"


def _deepscope(args: list[str]) -> None:
    """Run one ``deepscope`` command in this process, showing it as typed; stop the demo if it fails."""
    from deepscope.cli.app import app

    print(f"\n$ deepscope {' '.join(shlex.quote(a) for a in args)}", flush=True)
    import click

    try:
        app(args, prog_name="deepscope", standalone_mode=False)
    except click.exceptions.Exit as exc:  # typer.Exit from a command
        if exc.exit_code:
            raise SystemExit(exc.exit_code) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepscope.demo", description=__doc__)
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--model", default=None, help="segmentation model of the analysis (default: nuclei)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from deepscope.data import GroupSplitter, ImageLoader

    ds = ImageLoader(pattern="bbbc005", labels="count", recursive=False).load(sample_dir())
    tr, va, te = GroupSplitter(by="field").train_valid_test_split(ds, 0.6, 0.2, 0.2, seed=0)
    table = ds.to_dataframe()
    table["part"] = "train"
    table.loc[table.id.isin(va.ids), "part"] = "valid"
    table.loc[table.id.isin(te.ids), "part"] = "test"
    table.drop(columns=["path"]).to_csv(out / "split.csv", index=False)
    print(f"loaded {len(ds)} bundled images; split by field into {len(tr)}/{len(va)}/{len(te)} -> {out / 'split.csv'}")

    samples = str(sample_dir())
    _deepscope(["count", samples, "--include", NUCLEAR_STAIN, "--out", str(out / "counts.csv")])
    analyze = ["analyze", samples, "--include", NUCLEAR_STAIN, "--pattern", "bbbc005", "--out",
               str(out / "analysis")]
    if args.model:
        analyze += ["--model", args.model]
    _deepscope(analyze)
    analysis = (out / "analysis").resolve()
    print(f"""
demo results in {out.resolve()}:
  split.csv              leak-free train/valid/test split of the samples by field of view
  counts.csv             nuclei per image with 95% intervals (model count-bbbc005), counts.report.html
  analysis/Nuclei.csv    one row per nucleus (CellProfiler's AreaShape/Intensity columns)
  analysis/images.csv    one row per image: Count_Nuclei beside the true count (Metadata_count), QC columns
  analysis/labels/, analysis/overlays/   instance label images and outlines
report: {analysis / 'report.html'}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
