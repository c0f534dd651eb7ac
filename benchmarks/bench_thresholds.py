"""Segmentation thresholds (issue 31): what ``prob_threshold``, ``flow_threshold`` and ``min_size`` do to the
``nuclei`` model's precision, recall and F1 (IoU 0.5) on the development validation images.

The images are the validation part of the development sets (``recipes/finalize.py``'s
``generalist_sets("valid")``: DSB2018 fluorescence, H&E and brightfield tiles; never test images), a modest
subset (``--n`` per kind) so it runs in a few minutes on 2 cores. The network runs once per image: its outputs
are cached and every threshold setting re-runs the model's own post-processing
(:func:`deepscope.tasks.segment.sizing.segment_generalist`, the path ``model.run`` takes) on them, so each row is
what ``deepscope segment --prob-threshold ... --flow-threshold ... --min-size ...`` gives (checked on the first
image for the card's defaults). Precision, recall and F1 are pooled over the images (matches at IoU >= 0.5).

Run::

    nice -n 10 .venv/bin/python benchmarks/bench_thresholds.py            # writes benchmarks/results/thresholds.json
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402

PROB = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FLOW = (0.2, 0.4, 0.6, 0.8)
MIN_SIZE = (0, 12, 72, 144)


def cached_runner(model: Any) -> Any:
    """``run(a)``: the network's raw outputs of a prepared image, computed once per distinct input."""
    cache: dict[tuple[Any, ...], np.ndarray] = {}

    def run(a: np.ndarray) -> np.ndarray:
        key = (a.shape, hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest())
        if key not in cache:
            cache[key] = model.plugin.raw_outputs(model, a)
        return cache[key]

    return run


def scores(rs: list[Any]) -> dict[str, float]:
    """Precision, recall and F1 at IoU 0.5, pooled over images."""
    k = int(np.argmin(np.abs(rs[0].thresholds - 0.5)))
    tp = int(sum(int(r.tp[k]) for r in rs))
    fp = int(sum(int(r.fp[k]) for r in rs))
    fn = int(sum(int(r.fn[k]) for r in rs))
    return {"precision": round(tp / max(1, tp + fp), 4), "recall": round(tp / max(1, tp + fn), 4),
            "f1": round(2 * tp / max(1, 2 * tp + fp + fn), 4), "tp": tp, "fp": fp, "fn": fn}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--n", type=int, default=12, help="validation images per kind (fewer where a kind has fewer)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not start("dsb2018", "dsb2018_other", threads=args.threads):
        return 0
    from finalize import generalist_sets

    from deepscope.evaluate import match_instances
    from deepscope.models import load_model
    from deepscope.tasks.segment.sizing import segment_generalist

    t0 = time.perf_counter()
    model = load_model(args.model, device="cpu")
    card = model.options().thresholds()
    sets = generalist_sets("valid")
    rng = np.random.default_rng(0)
    picked: list[tuple[str, np.ndarray, np.ndarray]] = []
    for kind, (images, labels) in sets.items():
        idx = sorted(rng.choice(len(images), size=min(args.n, len(images)), replace=False).tolist())
        picked += [(kind, images[i], labels[i]) for i in idx]
    prepared = [(kind, model.prepare(im), lab, cached_runner(model)) for kind, im, lab in picked]

    settings: list[dict[str, Any]] = [{}]
    settings += [{"prob_threshold": p} for p in PROB if p != card["prob_threshold"]]
    if card["flow_threshold"] is not None:
        settings += [{"flow_threshold": f} for f in FLOW if f != card["flow_threshold"]]
    settings += [{"min_size": m} for m in MIN_SIZE if m != card["min_size"]]

    rows = []
    for given in settings:
        opts = model.options(**given)
        cfg = model.plugin.generalist_config(model, options=opts)
        by_kind: dict[str, list[Any]] = {}
        t1 = time.perf_counter()
        for n, (kind, x, lab, run) in enumerate(prepared):
            labels, _ = segment_generalist(x, run, mode=model.plugin.postprocess_mode, postprocess=opts.postprocess,
                                           config=cfg, device=model.device)
            if not given and n == 0:  # the cached path is the model's own
                np.testing.assert_array_equal(labels, model.run(picked[0][1]).labels)
            by_kind.setdefault(kind, []).append(match_instances(lab, labels))
        row = {"varied": next(iter(given), "default"), **opts.thresholds(), "default": not given,
               **scores([r for rs in by_kind.values() for r in rs]),
               "by_kind": {k: scores(rs) for k, rs in by_kind.items()},
               "seconds": round(time.perf_counter() - t1, 1)}
        rows.append(row)
        print(f"{row['varied']:15s} prob {row['prob_threshold']:.2f} flow {row['flow_threshold']} "
              f"min_size {row['min_size']:4d}: P {row['precision']:.4f} R {row['recall']:.4f} F1 {row['f1']:.4f}"
              f"{'  (card default)' if not given else ''}", flush=True)
    report("thresholds", {
        "model": args.model, "card_defaults": card,
        "images": {k: sum(1 for p in picked if p[0] == k) for k in sets},
        "data": "development validation part (recipes/finalize.py generalist_sets('valid')), "
                f"{args.n} per kind at most, seed 0",
        "metric": "precision / recall / F1 at IoU 0.5, pooled over images",
        "rows": rows, "seconds": round(time.perf_counter() - t0, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
