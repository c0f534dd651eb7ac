"""Classical baselines on the real data: Otsu + watershed on DSB2018, counting on BBBC005.

    .venv/bin/python benchmarks/bench_classical.py [--quick]

(a) DSB2018 (../shared/data/dsb2018, all 380 images, no training involved): ``otsu_watershed``
    with its defaults on every image; object scores from ``evaluate_instances`` (F1 at IoU 0.5 and
    0.9 pooled over all objects and averaged per image, DSB score = mean over images of AP averaged
    over IoU 0.50:0.05:0.95, PQ) and the speed (images/s, segmentation only and with reading).
(b) BBBC005 (../shared/data/bbbc005): ``GroupSplitter(by="field")`` 80/10/10, seed 0; the test part
    is scored. ``IntensityCountRegressor`` is fitted per stain on the training part. Otsu +
    watershed counts with its defaults, and with ``footprint``/``distance_sigma`` chosen on the
    validation part (never on the test part). MAE etc. per blur level and stain (``count_metrics``).

``--quick`` uses every 4th DSB image and skips the validation search (a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from _util import SHARED, write_result


def _dsb(step: int) -> dict[str, Any]:
    from deepscope.evaluate import evaluate_instances
    from deepscope.io import read_image
    from deepscope.predict.classical import otsu_watershed

    folder = SHARED / "dsb2018"
    files = sorted((folder / "images").glob("*.png"))[::step]
    t_read = t_seg = 0.0
    pairs = []
    for f in files:
        t0 = time.perf_counter()
        img = read_image(f, checksum=False).data
        t1 = time.perf_counter()
        labels = otsu_watershed(img)
        t2 = time.perf_counter()
        t_read += t1 - t0
        t_seg += t2 - t1
        pairs.append((f.stem, read_image(folder / "labels" / f.name, checksum=False).data, labels))
    rep = evaluate_instances(pairs)
    s, pi = rep.summary, rep.per_image
    out = {"n_images": len(files), "n_true_objects": s["n_true"], "n_pred_objects": s["n_pred"],
           "f1@0.5_pooled": s["f1@0.5"], "f1@0.5_mean_per_image": float(pi["f1@0.5"].mean()),
           "f1@0.9_pooled": s["f1@0.9"], "f1@0.9_mean_per_image": float(pi["f1@0.9"].mean()),
           "precision@0.5": s["precision@0.5"], "recall@0.5": s["recall@0.5"], "pq@0.5": s["pq@0.5"],
           "dsb_score": s["dsb_score"], "count_mae": s["count_mae"],
           "images_per_s_segment": len(files) / t_seg, "images_per_s_with_reading": len(files) / (t_seg + t_read)}
    print(f"(a) DSB2018, {len(files)} images, Otsu + watershed (defaults):")
    print(f"    F1@0.5 {out['f1@0.5_pooled']:.3f} pooled / {out['f1@0.5_mean_per_image']:.3f} mean per image, "
          f"DSB score {out['dsb_score']:.3f}, F1@0.9 {out['f1@0.9_pooled']:.3f} pooled / "
          f"{out['f1@0.9_mean_per_image']:.3f} per image, PQ@0.5 {out['pq@0.5']:.3f}")
    print(f"    {out['images_per_s_segment']:.1f} images/s segmentation, {out['images_per_s_with_reading']:.1f} "
          "images/s with reading")
    return out


def _table(df: Any) -> list[dict[str, Any]]:
    return df.round(4).to_dict("records")


def _bbbc005(search: bool) -> dict[str, Any]:
    from deepscope.data import GroupSplitter, ImageLoader
    from deepscope.evaluate import count_metrics
    from deepscope.predict.classical import IntensityCountRegressor, otsu_watershed

    ds = ImageLoader(pattern="bbbc005", labels="count").load(SHARED / "bbbc005" / "images")
    train, valid, test = GroupSplitter(by="field").split(ds, 0.8, 0.1, 0.1, seed=0)
    md = ds.metadata
    y = np.asarray(ds.y, dtype=float)
    strata = md.iloc[test][["blur", "stain"]].reset_index(drop=True)
    out: dict[str, Any] = {"split": {"train": len(train), "valid": len(valid), "test": len(test),
                                     "splitter": "GroupSplitter(by='field')", "fractions": [0.8, 0.1, 0.1],
                                     "seed": 0}}
    # intensity regression, one line per stain
    model = IntensityCountRegressor()
    t = time.perf_counter()
    x_train = model.features(ds.get_image(i) for i in train)
    x_test = model.features(ds.get_image(i) for i in test)
    feat_rate = (len(train) + len(test)) / (time.perf_counter() - t)
    model.fit_features(x_train, y[train], md.stain.iloc[train].tolist())
    pred = model.predict_features(x_test, md.stain.iloc[test].tolist())
    reg = count_metrics(y[test], pred, strata=strata)
    out["intensity_regression"] = {"coef": {str(k): v for k, v in model.coef_.items()}, "metrics": _table(reg),
                                   "images_per_s_features_with_reading": feat_rate}
    # Otsu + watershed counting
    test_images = [ds.get_image(i) for i in test]
    t = time.perf_counter()
    counts = np.array([otsu_watershed(im).max() for im in test_images], dtype=float)
    rate = len(test) / (time.perf_counter() - t)
    ows = count_metrics(y[test], counts, strata=strata)
    out["otsu_watershed_default"] = {"metrics": _table(ows), "images_per_s": rate}
    print(f"(b) BBBC005 test part ({len(test)} images of {len(set(md.field.iloc[test]))} fields), MAE per stratum:")
    rows = [("intensity regression (per stain)", reg), ("Otsu + watershed (defaults)", ows)]
    if search:
        valid_images = [ds.get_image(i) for i in valid]
        grid = [{}, *({"footprint": fp, "distance_sigma": 0.0} for fp in (None, 5, 7, 9, 13))]
        scores = []
        for cfg in grid:
            c = np.array([otsu_watershed(im, **cfg).max() for im in valid_images], dtype=float)
            scores.append(float(np.mean(np.abs(c - y[valid]))))
        best = grid[int(np.argmin(scores))]
        counts_b = np.array([otsu_watershed(im, **best).max() for im in test_images], dtype=float)
        tuned = count_metrics(y[test], counts_b, strata=strata)
        out["otsu_watershed_tuned_on_valid"] = {"params": best, "valid_mae": dict(zip(map(str, grid), scores)),
                                                "metrics": _table(tuned)}
        rows.append((f"Otsu + watershed {best} (chosen on validation)", tuned))
    for name, df in rows:
        cells = ", ".join(f"{r.stratum}={r.value}: {r.mae:.2f}" for r in df.itertuples())
        print(f"    {name}: {cells}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="every 4th DSB image, no validation search")
    args = ap.parse_args()
    if not (SHARED / "dsb2018").exists() or not (SHARED / "bbbc005").exists():
        print(f"shared data not found at {SHARED}; nothing to benchmark")
        return 0
    res = {"quick": args.quick, "dsb2018": _dsb(4 if args.quick else 1), "bbbc005": _bbbc005(not args.quick)}
    print("wrote", write_result("classical" + ("_quick" if args.quick else ""), res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
