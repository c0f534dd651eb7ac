"""int8 CPU inference (issue 29): ONNX Runtime static quantisation against float PyTorch and ONNX Runtime.

    .venv/bin/python benchmarks/bench_int8.py [--count-files 120] [--repeats 7] [--models ...]
    .venv/bin/python benchmarks/bench_int8.py --speed-only --threads 1   # -> results/int8_speed_1thread.json

For each model, same process, same inputs, 2 threads each:
- speed: the network alone on real pre-processed inputs (recorded while the model ran on held-out test images:
  for the counters a batch of 8 BBBC005 fields of 520 x 696 as the predictor makes it; for the segmenters
  every network input of 4 DSB2018 test images), torch / onnx / onnx-int8 interleaved, median of
  ``--repeats`` rounds, ms per network pass and per image;
- accuracy on held-out test data (never used for calibration, which used training parts:
  ``recipes/finalize.py --int8``): counting MAE on the BBBC005 test fields (GroupSplitter by field 80/10/10
  seed 0; ``--count-files`` of the 120, evenly spaced), and F1@0.5 / DSB score per kind on the DSB2018 test
  split (RandomSplitter 80/10/10 seed 0, 38 images) and, for ``nuclei``, the dsb2018_other test tiles (as
  the model card), float torch against onnx-int8;
- the issue's rule: int8 may be a default only where F1 stays within 0.005 and MAE within 0.05 of float,
  and it is faster.

Each model also records what ``--backend auto`` (the default) runs it on: int8 where its card says so, a
decision ``recipes/finalize.py --int8`` made on validation images; these test figures check it.

Result: ``benchmarks/results/int8.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import RESULTS, report, start  # noqa: E402

COUNTERS = ("count-bbbc005", "count-bbbc005-fast")
SEGMENTERS = ("nuclei", "nuclei-fast", "nuclei-fluo")
#: segmenters of BBBC005 fields (the counter's hybrid rule): judged by their objects against the file-name counts
FIELD_SEGMENTERS = ("cells-bbbc005",)
GENERALISTS = ("nuclei", "nuclei-fast")
BACKENDS = ("torch", "onnx", "onnx-int8")


def test_inputs(name: str) -> list[np.ndarray]:
    """Network inputs (as the predictor makes them) of a few held-out test images."""
    from deepscope.models import load_model
    from deepscope.predict.backends import network_inputs
    from pack_data import bbbc005_split, dsb_split

    model = load_model(name, device="cpu")
    if name in COUNTERS + FIELD_SEGMENTERS:
        ds, part = bbbc005_split()
        idx = np.flatnonzero(part == "test")[::15][:8]
        with network_inputs(model) as rec:
            if name in COUNTERS:
                model.count_images([ds.get_image(int(i)) for i in idx], tta="none")
            else:
                for i in idx:
                    model.predict_image(ds.get_image(int(i)))
        return [np.concatenate(rec.batches)[:8]]
    ds, part = dsb_split()
    idx = np.flatnonzero(part == "test")[::10][:4]
    with network_inputs(model) as rec:
        for i in idx:
            model.predict_image(ds.get_image(int(i)))
    return rec.batches


def speed(name: str, repeats: int) -> dict:
    from deepscope.models import load_model
    from deepscope.predict.backends import inference_backend

    xs = test_inputs(name)
    model = load_model(name, device="cpu")
    bes = {}
    for kind in BACKENDS:
        model.backend = kind
        bes[kind] = inference_backend(model)
        for x in xs:
            bes[kind].forward(x)  # warm up (ONNX Runtime prepares each new shape once)
    times: dict[str, list[float]] = {k: [] for k in BACKENDS}
    for _ in range(repeats):
        for kind, be in bes.items():
            t = time.perf_counter()
            for x in xs:
                be.forward(x)
            times[kind].append(time.perf_counter() - t)
    n_images = 8 if name in COUNTERS + FIELD_SEGMENTERS else 4
    ref = [bes["torch"].forward(x) for x in xs]
    out: dict = {"inputs": [list(x.shape) for x in xs], "network_passes": len(xs), "images": n_images}
    for kind in BACKENDS:
        med = float(np.median(times[kind]))
        out[kind] = {"ms_per_pass": 1000 * med / len(xs), "ms_per_image": 1000 * med / n_images,
                     "max_abs_diff_vs_torch": float(max(np.abs(bes[kind].forward(x) - r).max()
                                                        for x, r in zip(xs, ref))),
                     "mean_abs_diff_vs_torch": float(np.mean([np.abs(bes[kind].forward(x) - r).mean()
                                                              for x, r in zip(xs, ref)]))}
    out["int8_speedup_vs_torch"] = out["torch"]["ms_per_pass"] / out["onnx-int8"]["ms_per_pass"]
    out["int8_speedup_vs_onnx"] = out["onnx"]["ms_per_pass"] / out["onnx-int8"]["ms_per_pass"]
    return out


def count_accuracy(name: str, n_files: int) -> dict:
    from deepscope.models import load_model
    from pack_data import bbbc005_split

    ds, part = bbbc005_split()
    test = np.flatnonzero(part == "test")
    idx = test[np.linspace(0, len(test) - 1, min(n_files, len(test))).round().astype(int)]
    images = [ds.get_image(int(i)) for i in idx]
    true = ds.y[idx].astype(float)
    out: dict = {"n_test_images": len(idx)}
    preds = {}
    for kind in ("torch", "onnx-int8"):
        model = load_model(name, device="cpu")
        model.backend = kind
        t = time.perf_counter()
        pred = np.array([r.count for r in model.count_images(images)])
        preds[kind] = pred
        out[kind] = {"mae": float(np.mean(np.abs(pred - true))), "bias": float(np.mean(pred - true)),
                     "seconds": time.perf_counter() - t}
    d = np.abs(preds["onnx-int8"] - preds["torch"])
    out["count_difference_max"], out["count_difference_mean"] = float(d.max()), float(d.mean())
    out["mae_change"] = out["onnx-int8"]["mae"] - out["torch"]["mae"]
    out["within_rule"] = bool(out["mae_change"] <= 0.05)
    return out


def field_segment_accuracy(name: str) -> dict:
    """Objects of a BBBC005-field segmenter against the file-name counts on the test fields (no masks exist)."""
    from deepscope.models import load_model
    from finalize import real_bbbc005_object_counts

    out: dict = {}
    for kind in ("torch", "onnx-int8"):
        model = load_model(name, device="cpu")
        model.backend = kind
        t = time.perf_counter()
        out[kind] = {**real_bbbc005_object_counts(model, "test"), "seconds": time.perf_counter() - t}
    out["mae_change"] = out["onnx-int8"]["mae_objects_vs_count"] - out["torch"]["mae_objects_vs_count"]
    out["within_rule"] = bool(out["mae_change"] <= 0.05)
    return out


def segment_accuracy(name: str) -> dict:
    from deepscope.models import load_model
    from finalize import dsb_eval, generalist_eval, generalist_sets

    sets = generalist_sets("test") if name in GENERALISTS else {"fluorescence": None}
    out: dict = {}
    for kind in ("torch", "onnx-int8"):
        model = load_model(name, device="cpu")
        model.backend = kind
        t = time.perf_counter()
        res = generalist_eval(model, sets) if name in GENERALISTS else {"fluorescence": dsb_eval(model)}
        keys = ("n_images", "n_pred", "f1@0.5_mean", "f1@0.5_pooled", "dsb_score", "f1@0.9_mean")
        out[kind] = {k: {m: v[m] for m in keys}
                     for k, v in res.items()}
        out[kind]["seconds"] = time.perf_counter() - t
    out["f1_change"] = {k: out["onnx-int8"][k]["f1@0.5_mean"] - out["torch"][k]["f1@0.5_mean"] for k in sets}
    out["dsb_change"] = {k: out["onnx-int8"][k]["dsb_score"] - out["torch"][k]["dsb_score"] for k in sets}
    out["within_rule"] = bool(all(v >= -0.005 for v in out["f1_change"].values()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count-files", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--models", default=",".join(COUNTERS + SEGMENTERS + FIELD_SEGMENTERS))
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    args = ap.parse_args(argv)
    if not start("bbbc005", "dsb2018", "dsb2018_other", threads=args.threads):
        return 0
    import onnxruntime

    result: dict = {"onnxruntime": onnxruntime.__version__, "threads": args.threads,
                    "rule": "int8 default only where F1@0.5 within 0.005 and MAE within 0.05 of float, and faster"}
    for name in args.models.split(","):
        r: dict = {"speed": speed(name, args.repeats)}
        print(name, {k: round(v["ms_per_pass"], 1) for k, v in r["speed"].items() if isinstance(v, dict)}, flush=True)
        if not args.speed_only:
            r["accuracy"] = (count_accuracy(name, args.count_files) if name in COUNTERS else
                             field_segment_accuracy(name) if name in FIELD_SEGMENTERS else segment_accuracy(name))
            r["meets_rule"] = bool(r["accuracy"]["within_rule"] and r["speed"]["int8_speedup_vs_torch"] > 1)
            from deepscope.models import load_model
            from deepscope.predict.backends import auto_backend

            # what --backend auto runs (decided by the card, from validation images) and whether the test agrees
            r["auto_backend"] = auto_backend(load_model(name, device="cpu"))
            print(name, r["accuracy"], flush=True)
        result[name] = r
    topic = "int8" if not args.speed_only else f"int8_speed_{args.threads}thread"
    previous = RESULTS / f"{topic}.json"  # models not rerun keep their figures (with their run's date)
    if previous.exists():
        old = json.loads(previous.read_text())
        others = {k: v for k, v in old.items() if isinstance(v, dict) and "speed" in v and k not in result}
        if others:
            result = {**result, **others, "others_from_run_of": old.get("date")}
    report(topic, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
