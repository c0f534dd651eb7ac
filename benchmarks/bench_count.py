"""Counting accuracy and speed on real BBBC005 fields never used in training.

    .venv/bin/python benchmarks/bench_count.py [--book-epochs 50] [--skip-book] [--speed-only]

Same split as the shipped model's recipe (GroupSplitter by field, 80/10/10, seed 0; test part =
120 images of 31 fields, all blur levels and both stains). Side by side, in one run:
- the shipped ``count-bbbc005`` (accurate: flip TTA + hybrid object counting) and ``count-bbbc005-fast``
  (density only), with their 95% intervals;
- the book chapter's CountNet trained here with the book's recipe (L2, Adam 1e-3 x 0.9 every 250
  steps, batch 100, 50 epochs) on the same training fields, on 2x-binned images (CPU: ~10 min);
- the per-stain intensity regression baseline (``IntensityCountRegressor``) fitted on the training fields.
Speed: ``deepscope.predict.files.count_paths`` (reading + counting, the ``deepscope count`` path)
on 240 BBBC005 files, next to plain ``tifffile.imread`` of the same files, same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from _util import SHARED, write_result  # noqa: E402


def _metrics(y, pred, md, lo=None, hi=None):  # type: ignore[no-untyped-def]
    from deepscope.evaluate import count_metrics

    t = count_metrics(y, pred, low=lo, high=hi, strata=md[["blur", "stain"]])
    out = {}
    for _, r in t.iterrows():
        key = "all" if r["stratum"] == "all" else f"{r['stratum']}={r['value']}"
        out[key] = {k: (None if (isinstance(r[k], float) and np.isnan(r[k])) else float(r[k]))
                    for k in ("n", "mae", "rmse", "bias", "exact", "coverage", "mean_width") if k in r}
    return out


def _speed() -> dict:
    """Speed of the CLI path (``count_paths``: reading + counting) vs plain reading, same files, same run."""
    import tifffile

    from deepscope.models import load_model
    from deepscope.predict.files import count_paths

    files = sorted((SHARED / "bbbc005" / "images").glob("*.TIF"))[:240]
    for f in files:
        tifffile.imread(f)
    t = time.perf_counter()
    for f in files:
        tifffile.imread(f)
    read_s = time.perf_counter() - t
    speed = {"files": len(files), "tifffile_images_per_s": len(files) / read_s}
    for name in ("count-bbbc005-fast", "count-bbbc005"):
        model = load_model(name, device="cpu")
        count_paths(files[:8], model=model, output=None, device="cpu")  # warm-up
        t = time.perf_counter()
        out = count_paths(files, model=model, output=None, device="cpu")
        speed[f"deepscope count --model {name} images/s"] = len(files) / (time.perf_counter() - t)
        speed[f"{name} failed"] = int(out.n_failed)
    return speed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--book-epochs", type=int, default=50)
    ap.add_argument("--skip-book", action="store_true")
    ap.add_argument("--book-run", default="", help="evaluate the book CountNet of a recipes/zoo.py run folder "
                    "(variant countnet-book) instead of training it here")
    ap.add_argument("--speed-only", action="store_true",
                    help="only the speed figures, merged into the existing results/count.json")
    args = ap.parse_args()
    if not (SHARED / "bbbc005").exists():
        print("shared data not found; nothing to benchmark")
        return 0
    import torch

    from deepscope.models import load_model
    from pack_data import bbbc005_split

    torch.set_num_threads(2)
    if args.speed_only:
        import json

        from _util import RESULTS

        old = json.loads((RESULTS / "count.json").read_text())
        results = {k: v for k, v in old.items() if k not in ("topic", "date", "machine")}
        results["speed"] = _speed()
        print("speed", results["speed"])
        print("wrote", write_result("count", results))
        return 0
    ds, part = bbbc005_split()
    md = ds.metadata
    te = np.flatnonzero(part == "test")
    tr = np.flatnonzero(part == "train")
    va = np.flatnonzero(part == "valid")
    y = ds.y[te].astype(float)
    mdt = md.iloc[te].reset_index(drop=True)
    test_imgs = [ds.get_image(int(i)) for i in te]
    results: dict = {"split": "GroupSplitter(by='field') 80/10/10 seed 0", "n_test": len(te)}

    for name in ("count-bbbc005", "count-bbbc005-fast"):
        model = load_model(name, device="cpu")
        t = time.perf_counter()
        res = model.count_images(test_imgs)
        dt = time.perf_counter() - t
        pred = np.array([r.count for r in res])
        results[name] = {**_metrics(y, pred, mdt, [r.low for r in res], [r.high for r in res]),
                         "images_per_s_in_memory": len(te) / dt}

    # baseline: intensity regression
    from deepscope.predict.classical import IntensityCountRegressor

    reg = IntensityCountRegressor()
    reg.fit([ds.get_image(int(i)) for i in tr], ds.y[tr], groups=md.stain.to_numpy()[tr])
    pred = reg.predict(test_imgs, groups=mdt.stain.to_numpy())
    results["intensity regression (per stain)"] = _metrics(y, np.asarray(pred, float), mdt)

    # the book's CountNet, trained here on the same training fields
    if not args.skip_book:
        from deepscope.data import ImageDataset
        from deepscope.models import CountModel

        def binned(i: int) -> np.ndarray:
            a = ds.get_image(int(i)).astype(np.float32)
            return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])

        if args.book_run:
            book = load_model(Path(args.book_run) / "countnet-book", device="cpu")
            where = f"trained by recipes/zoo.py ({args.book_run})"
        else:
            xtr = np.stack([binned(i) for i in tr])
            xva = np.stack([binned(i) for i in va])
            book = CountModel.book(input_size=xtr.shape[1:])
            t = time.perf_counter()
            book.fit(ImageDataset(xtr, y=ds.y[tr]), nb_epoch=args.book_epochs,
                     valid_dataset=ImageDataset(xva, y=ds.y[va]), model_dir="/tmp/deepscope-bench-book",
                     batch_size=100, optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="exponential",
                     decay_rate=0.9, decay_steps=250, grad_clip=None, resume=False, progress=False, jitter=0.0)
            where = f"trained here in {time.perf_counter() - t:.0f} s"
        pred = book.predict_on_batch(np.stack([binned(i) for i in te]))
        results["book CountNet (50 epochs, 2x-binned input)"] = {**_metrics(y, pred, mdt), "trained": where}

    results["speed"] = _speed()
    for k, v in results.items():
        if isinstance(v, dict) and "all" in v:
            a = v["all"]
            blur = " ".join(f"F{b}={v[f'blur={b}']['mae']:.2f}" for b in (1, 23, 48))
            print(f"{k:45s} MAE {a['mae']:.3f} RMSE {a['rmse']:.3f} bias {a['bias']:+.3f} exact {a['exact']:.2f} "
                  f"cover {a.get('coverage')}  [{blur}]")
    print("speed", results["speed"])
    print("wrote", write_result("count", results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
