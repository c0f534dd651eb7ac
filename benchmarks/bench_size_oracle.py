"""What the size estimate costs in 2-D (issue 29): ``nuclei`` and ``nuclei-fast`` given each image's TRUE nucleus
size (an oracle) against their own estimate, on the VALIDATION part of the development sets.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_size_oracle.py [--models nuclei,nuclei-fast]

The true size is the median equivalent diameter of the image's labelled nuclei (what the models' size maps are
trained to read). Each model runs as ``deepscope segment`` runs it (int8 on this CPU, ``--backend auto``), once
with its estimate and once with ``diameter=`` the true size. Nothing here is shipped or tuned and the test parts
are not read: it says how much of the gap to issue 29's accuracy bars (grey fluorescence F1 0.92 / DSB 0.66,
H&E + brightfield F1 0.82) a better size estimate could close, and how much needs a better network.
Result: ``benchmarks/results/size_oracle.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from _util import report, start  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="nuclei,nuclei-fast")
    args = ap.parse_args()
    if not start("dsb2018", "dsb2018_other"):
        return 0
    from finalize import generalist_sets, instance_summary

    from deepscope.evaluate import match_instances
    from deepscope.models import load_model
    from deepscope.tasks.segment.flows import object_diameters

    sets = generalist_sets("valid")
    result: dict[str, Any] = {"command": "OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_size_oracle.py"
                              + ("" if args.models == "nuclei,nuclei-fast" else f" --models {args.models}"),
                              "part": "valid", "images": {k: len(v[0]) for k, v in sets.items()}}
    for name in args.models.split(","):
        model = load_model(name, device="cpu")
        per_kind: dict[str, Any] = {}
        for kind, (images, labels) in sets.items():
            own, oracle, err, per_image = [], [], [], []
            for im, lab in zip(images, labels):
                d = float(np.median(list(object_diameters(lab).values())))
                pred, info, _ = model.predict_image(im, return_info=True)
                a, b = match_instances(lab, pred), match_instances(lab, model.predict_image(im, diameter=d))
                own.append(a)
                oracle.append(b)
                err.append(math.log(info.diameter / d))
                per_image.append({"true_diameter": round(d, 2), "estimate": round(float(info.diameter), 2),
                                  "f1@0.5": round(float(a.f1[0]), 4), "f1@0.5_oracle": round(float(b.f1[0]), 4)})
            keys = ("f1@0.5_mean", "f1@0.5_pooled", "dsb_score")
            s_own, s_or = instance_summary(own), instance_summary(oracle)
            per_kind[kind] = {"estimate": {k: s_own[k] for k in keys}, "oracle": {k: s_or[k] for k in keys},
                              "diameter_error_median": float(np.exp(np.median(np.abs(err))) - 1),
                              "images_off_by_20pct": int(sum(abs(e) > math.log(1.2) for e in err)),
                              "per_image": per_image}
            print(f"{name:12s} {kind:12s} F1 {s_own['f1@0.5_mean']:.3f} -> {s_or['f1@0.5_mean']:.3f}  DSB "
                  f"{s_own['dsb_score']:.3f} -> {s_or['dsb_score']:.3f}  size error "
                  f"{per_kind[kind]['diameter_error_median']:.3f}", flush=True)
        result[name] = per_kind
    report("size_oracle", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
