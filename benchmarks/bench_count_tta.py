"""The shipped counter's test-time augmentation modes on the BBBC005 VALIDATION fields (issue 29).

    .venv/bin/python benchmarks/bench_count_tta.py [--backend auto] [--part valid]

MAE (overall and per blur level) and seconds of ``count_images`` (density, hybrid objects, domain check) on the
120 validation fields of the counters' split (``GroupSplitter(by="field")`` 80/10/10 seed 0) for every mode of
:data:`deepscope.predict.engine.TTA_MODES`, with the hybrid rule and intervals as the card has them (calibrated for
the card's own mode). This is what chose the card's mode; the test fields are not read unless ``--part test``.
Result: ``benchmarks/results/count_tta.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--part", default="valid", choices=["valid", "test"])
    args = ap.parse_args(argv)
    if not start("bbbc005"):
        return 0
    from finalize import count_eval, table_to_dict

    from deepscope.models import load_model
    from deepscope.predict.backends import backend_of
    from deepscope.predict.engine import TTA_MODES

    result: dict = {"part": args.part}
    for tta in TTA_MODES:
        model = load_model("count-bbbc005", device="cpu")
        model.backend = args.backend
        t = time.perf_counter()
        d = table_to_dict(count_eval(model, args.part, tta=tta)["table"])
        result[tta] = {"mae": round(float(d["overall"]["mae"]), 4), "seconds": round(time.perf_counter() - t, 1),
                       **{k: round(float(v["mae"]), 3) for k, v in d.items() if k.startswith("blur")}}
        print(tta, result[tta], flush=True)
    result["backend"] = backend_of(model)
    result["card_tta"] = model.card["output"].get("tta")
    report("count_tta", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
