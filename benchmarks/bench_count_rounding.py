"""Whole-number counts against the network's own estimate, on the BBBC005 fields (issue 29).

    .venv/bin/python benchmarks/bench_count_rounding.py [--part valid|test] [--models count-bbbc005,...]

``count_images`` gives, per image, ``estimate`` (the density sum, or its mean with the object count: what the
count was before it was made a whole number) and ``count`` (that estimate rounded, halves up), with an interval
widened to whole numbers. For each counter (as a user runs it: ``--backend auto``), MAE, bias and the share of
exact counts of both, and the coverage and mean width of the interval before (``estimate +- half-width``, read
back from the card's rule) and after the widening, overall and per blur level. The decision to round was taken on
the validation fields (the default part); ``--part test`` measures the test fields, once. Result:
``benchmarks/results/count_rounding_<part>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402


def figures(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    e = pred - true
    return {"mae": round(float(np.abs(e).mean()), 4), "bias": round(float(e.mean()), 4),
            "exact": round(float((np.abs(e) < 0.5).mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="valid", choices=["valid", "test"])
    ap.add_argument("--models", default="count-bbbc005,count-bbbc005-fast")
    args = ap.parse_args(argv)
    if not start("bbbc005"):
        return 0
    from finalize import bbbc005_split

    from deepscope.models import load_model
    from deepscope.predict.backends import backend_of

    ds, parts = bbbc005_split()
    idx = np.flatnonzero(parts == args.part)
    images = [ds.get_image(int(i)) for i in idx]
    true = ds.y[idx].astype(float)
    blur = ds.metadata.iloc[idx]["blur"].to_numpy()
    result: dict = {"part": args.part, "n": int(len(idx))}
    for name in args.models.split(","):
        model = load_model(name, device="cpu")
        res = model.count_images(images)
        est = np.array([r.estimate for r in res])
        cnt = np.array([r.count for r in res])
        lo, hi = np.array([r.low for r in res]), np.array([r.high for r in res])
        out: dict = {"backend": backend_of(model), "estimate": figures(true, est), "count": figures(true, cnt),
                     "coverage": round(float(((lo <= true) & (true <= hi)).mean()), 4),
                     "mean_width": round(float(np.mean(hi - lo)), 3),
                     "count_inside_interval": bool(((lo <= cnt) & (cnt <= hi)).all())}
        for b in np.unique(blur):
            k = blur == b
            out[f"blur={b}"] = {"estimate_mae": figures(true[k], est[k])["mae"],
                                "count_mae": figures(true[k], cnt[k])["mae"]}
        print(name, out, flush=True)
        result[name] = out
    report(f"count_rounding_{args.part}", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
