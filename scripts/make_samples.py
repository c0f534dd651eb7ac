"""Regenerate the sample images bundled in ``src/deepscope/samples/`` (used by ``make demo`` and tests).

Ten 520 x 696 uint8 BBBC005-style images made by ``deepscope.data.synth`` (seed 0, the same
files ``deepscope synth --seed 0`` writes for these fields), with int32 masks in ``masks/`` and
a ``labels.csv`` like the real BBBC005 one:

* counts 5, 18 and 44 at sites 1 and 2, nuclear stain w1, in focus (F1): six fields;
* field C18_s01 also at F23 and F48 (w1), and fields C18_s01 and C44_s01 in the cell stain w2,
  so several images share a field (a split must keep them together).

Usage::

    .venv/bin/python scripts/make_samples.py [--out src/deepscope/samples]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: (count, site, blurs, stains) of each sample field.
FIELDS = [
    (5, 1, (1,), (1,)), (5, 2, (1,), (1,)),
    (18, 1, (1, 23, 48), (1, 2)), (18, 2, (1,), (1,)),
    (44, 1, (1,), (1, 2)), (44, 2, (1,), (1,)),
]


def _wanted(blurs: tuple[int, ...], stains: tuple[int, ...]) -> list[tuple[int, int]]:
    """(blur, stain) pairs of a field: every blur in w1, only F1 in w2."""
    return [(b, 1) for b in blurs if 1 in stains] + [(1, 2)] * (2 in stains)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "src" / "deepscope" / "samples"))
    args = ap.parse_args(argv)

    import pandas as pd

    from deepscope.data.synth import (BBBC005_BLURS, BBBC005_COUNTS, LABEL_COLUMNS, field_seed, generate_field,
                                      image_name, mask_name)
    from deepscope.io import write_labels, write_text, write_tiff

    out = Path(args.out)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("SIMCEPImages_*.TIF")) + list((out / "masks").glob("SIMCEPImages_*.TIF")):
        old.unlink()
    rows = []
    for count, site, blurs, stains in FIELDS:
        f = generate_field(count, blurs=blurs, stains=stains, seed=np.random.default_rng(field_seed(0, count, site)))
        column = BBBC005_COUNTS.index(count)
        about = {"generator": "deepscope.data.synth", "seed": 0, "count": count, "site": site}
        for blur, stain in _wanted(blurs, stains):
            name = image_name(count, blur, site, stain, row=BBBC005_BLURS.index(blur), column=column)
            write_tiff(out / name, f.images[(stain, blur)], compression="zlib",
                       description={**about, "blur": blur, "stain": stain})
            rows.append({"filename": name, "cell_count": count, "blur": blur, "stain": f"w{stain}",
                         "site": f"s{site:02d}", "well": name.split("_")[1], "field": f"C{count}_s{site:02d}"})
        for stain in stains:
            write_labels(out / "masks" / mask_name(count, site, stain, column=column), f.labels(stain),
                         description={**about, "stain": stain, "objects": "nuclei" if stain == 1 else "cells"})
    table = pd.DataFrame(rows, columns=list(LABEL_COLUMNS)).sort_values("filename")
    write_text(out / "labels.csv", table.to_csv(index=False, lineterminator="\n"))
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    print(f"wrote {len(table)} images and {len(list((out / 'masks').glob('*.TIF')))} masks to {out} "
          f"({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
