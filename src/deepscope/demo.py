"""``python -m deepscope.demo``: the end-to-end demo behind ``make demo``.

Runs on the sample images bundled in the package (made by deepscope's synthetic
generator), so it needs no download and no ``../shared`` folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def sample_dir() -> Path:
    """Folder of the bundled sample images."""
    return Path(__file__).parent / "samples"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepscope.demo", description=__doc__)
    parser.add_argument("--out", default="demo_out", help="output folder")
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
    print(f"loaded {len(ds)} bundled images; split by field into {len(tr)}/{len(va)}/{len(te)}")
    print(f"results: {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
