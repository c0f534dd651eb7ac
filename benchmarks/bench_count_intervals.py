"""Count intervals that scale with the count (issue 31): coverage and width by third of the count range.

    .venv/bin/python benchmarks/bench_count_intervals.py

``count-bbbc005`` on the 120 held-out BBBC005 test fields (split by field of view, seed 0, as the shipped
model's card), overall, per blur, stain and third of the count range (1-33, 34-66, 67-100 cells), twice:
with the shipped card (the hybrid rule's interval ``q sqrt(count + 1)``, ``q`` per third of the estimated
count, split conformal on the 120 validation fields) and with the rule it replaced (a constant
``+-2.7552``, the same counts). Also the per-third figures of the hybrid branch alone (the images counted
through segmented objects, where the constant width was used). Result:
``benchmarks/results/count_intervals.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402

#: The hybrid interval of the card before issue 31 (commit 3419ad6): a constant half-width.
CONSTANT = {"interval_method": "absolute", "interval_scale": 2.7552}


def thirds(ev: dict, methods: np.ndarray) -> dict:
    """Coverage and mean width of the images counted by the hybrid rule, by third of the true count."""
    from finalize import table_to_dict

    from deepscope.evaluate import count_metrics

    keep = methods == "density+objects"
    t = ev["true"][keep]
    strata = {"count": np.where(t <= 33, "1-33", np.where(t <= 66, "34-66", "67-100"))}
    import pandas as pd

    table = count_metrics(t, ev["pred"][keep], low=ev["low"][keep], high=ev["high"][keep],
                          strata=pd.DataFrame(strata))
    return table_to_dict(table)


def run(model) -> dict:  # type: ignore[no-untyped-def]
    from finalize import bbbc005_split, count_eval, table_to_dict

    ev = count_eval(model, "test", by_count=True)
    ds, parts = bbbc005_split()
    imgs = [ds.get_image(int(i)) for i in np.flatnonzero(parts == "test")]
    res = model.count_images(imgs)
    ev["low"], ev["high"] = np.array([r.low for r in res]), np.array([r.high for r in res])
    methods = np.array([r.method for r in res])
    return {"all": table_to_dict(ev["table"]), "hybrid_branch": thirds(ev, methods)}


def main() -> int:
    if not start("bbbc005"):
        return 0
    from deepscope.models import load_model

    shipped = load_model("count-bbbc005", device="cpu")
    result: dict = {"hybrid_rule": {k: shipped.card["output"]["hybrid"].get(k) for k in
                                    ("interval_method", "interval_scale", "count_edges", "stratum_scales")},
                    "shipped": run(shipped)}
    constant = load_model("count-bbbc005", device="cpu")
    constant.update_output(hybrid={**{k: v for k, v in constant.card["output"]["hybrid"].items()
                                      if k not in ("count_edges", "stratum_scales")}, **CONSTANT})
    result["constant_before"] = run(constant)
    for name in ("shipped", "constant_before"):
        for part in ("all", "hybrid_branch"):
            row = result[name][part]
            print(name, part, {k: (v["n"], round(v["coverage"], 3), round(v["mean_width"], 2))
                               for k, v in row.items() if k.startswith("count=") or k == "overall"})
    report("count_intervals", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
