"""Restoration benchmarks on real BBBC005 test fields: deblurring, in-silico labelling, 2x super-resolution.

    .venv/bin/python benchmarks/bench_restore.py

Split: GroupSplitter(by="field") 80/10/10 seed 0 (the recipes' split); the test fields were never used in
training. Every pair is two real images of the same simulated field.

Deblurring (F23 -> F1 and F48 -> F1, same stain): PSNR / SSIM (data range 255) of
- identity (the blurred image itself), unsharp masking (radius = blur sigma), Richardson-Lucy with the
  known Gaussian PSF (sigma = 0.25 F, truncated at 2 sigma; iterations chosen on the validation fields),
- the shipped ``deblur-bbbc005``;
downstream: counting MAE of ``count-bbbc005`` (raw, restored and the in-focus truth image) and object-count error of
``cells-bbbc005`` on raw vs restored images; hallucination: objects in the restored image with no counterpart in the in-focus truth
(``deepscope.evaluate.false_structure``).
In-silico labelling (w1 -> w2, same field and blur): Pearson correlation per blur level and the count
MAE of objects segmented (``cells-bbbc005``) in the predicted vs the true w2 image.
Super-resolution (2x2-binned F1 -> F1): PSNR / SSIM of bicubic upsampling vs ``sr2x-bbbc005``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from _util import SHARED, write_result  # noqa: E402


def gaussian_psf(blur: int) -> np.ndarray:
    sigma = 0.25 * blur
    r = int(np.ceil(2 * sigma))
    ax = np.arange(-r, r + 1)
    g = np.exp(-(ax ** 2) / (2 * sigma ** 2))
    k = np.outer(g, g)
    return k / k.sum()


def rl(image: np.ndarray, blur: int, iters: int) -> np.ndarray:
    from skimage.restoration import richardson_lucy

    x = image.astype(np.float32) / 255.0
    return richardson_lucy(x, gaussian_psf(blur), num_iter=iters, clip=False) * 255.0


def unsharp(image: np.ndarray, blur: int) -> np.ndarray:
    from skimage.filters import unsharp_mask

    return unsharp_mask(image.astype(np.float32) / 255.0, radius=0.25 * blur, amount=1.0,
                        preserve_range=True) * 255.0


def main() -> int:
    if not (SHARED / "bbbc005").exists():
        print("shared data not found; nothing to benchmark")
        return 0
    import torch

    from deepscope.evaluate import false_structure, pearson, psnr, ssim
    from deepscope.models import load_model
    from finalize import restore_pairs

    torch.set_num_threads(2)
    deblur = load_model("deblur-bbbc005", device="cpu")
    counter = load_model("count-bbbc005", device="cpu")
    cells = load_model("cells-bbbc005", device="cpu")
    results: dict = {}

    # RL iterations chosen on validation fields
    val = restore_pairs("deblur", "valid")[:24]
    best_it, best_p = 10, -1.0
    for it in (5, 10, 20, 40):
        p = float(np.mean([psnr(y.astype(np.float32), np.clip(rl(x, m["blur"], it), 0, 255), data_range=255.0)
                           for x, y, m in val]))
        if p > best_p:
            best_it, best_p = it, p
    results["rl_iterations"] = best_it

    rows = []
    t_ours = 0.0
    for x, y, m in restore_pairs("deblur", "test"):
        yt = y.astype(np.float32)
        t = time.perf_counter()
        ours = deblur.predict_image(x)
        t_ours += time.perf_counter() - t
        cands = {"identity": x.astype(np.float32), "unsharp": unsharp(x, m["blur"]),
                 "richardson_lucy": rl(x, m["blur"], best_it), "deblur-bbbc005": ours.astype(np.float32)}
        row = {**m}
        for k, v in cands.items():
            v = np.clip(v, 0, 255)
            row[f"{k}_psnr"] = psnr(yt, v, data_range=255.0)
            row[f"{k}_ssim"] = ssim(yt, v, data_range=255.0)
        fs = false_structure(yt, ours.astype(np.float32))
        row["false_objects"] = fs.n_false
        row["false_fraction"] = fs.false_fraction
        c_raw, c_res, c_true = counter.count_images([x, ours, y])
        row["count_err_raw"] = abs(c_raw.count - m["count"])
        row["count_err_restored"] = abs(c_res.count - m["count"])
        row["count_err_in_focus"] = abs(c_true.count - m["count"])
        row["objects_err_raw"] = abs(int(cells.predict_image(x).max()) - m["count"])
        row["objects_err_restored"] = abs(int(cells.predict_image(ours).max()) - m["count"])
        rows.append(row)
    import pandas as pd

    df = pd.DataFrame(rows)
    summ: dict = {"n_pairs": len(df), "deblur_seconds_per_image": t_ours / max(1, len(df))}
    for b in sorted(df.blur.unique()):
        d = df[df.blur == b]
        summ[f"F{b}->F1"] = {
            **{f"{k}_{s}": float(d[f"{k}_{s}"].mean()) for k in ("identity", "unsharp", "richardson_lucy",
                                                                  "deblur-bbbc005") for s in ("psnr", "ssim")},
            "count_mae_raw": float(d.count_err_raw.mean()), "count_mae_restored": float(d.count_err_restored.mean()),
            "count_mae_in_focus_truth": float(d.count_err_in_focus.mean()),
            "cells_objects_mae_raw": float(d.objects_err_raw.mean()),
            "cells_objects_mae_restored": float(d.objects_err_restored.mean()),
            "false_objects_per_image": float(d.false_objects.mean()),
            "false_fraction": float(d.false_fraction.mean()), "n": int(len(d))}
    results["deblur"] = summ

    label = load_model("label-bbbc005-w2", device="cpu")
    lrows = []
    for x, y, m in restore_pairs("label", "test"):
        pred = label.predict_image(x)
        lrows.append({**m, "pearson": pearson(y.astype(np.float32), pred.astype(np.float32)),
                      "psnr": psnr(y.astype(np.float32), pred.astype(np.float32), data_range=255.0),
                      "objects_pred": int(cells.predict_image(pred).max()),
                      "objects_true": int(cells.predict_image(y).max())})
    ldf = pd.DataFrame(lrows)
    results["label_w2"] = {"n_pairs": len(ldf), "pearson": float(ldf.pearson.mean()), "psnr": float(ldf.psnr.mean()),
                           "objects_mae_pred_vs_true_w2": float((ldf.objects_pred - ldf.objects_true).abs().mean()),
                           "objects_mae_pred_vs_count": float((ldf.objects_pred - ldf["count"]).abs().mean()),
                           "objects_mae_true_w2_vs_count": float((ldf.objects_true - ldf["count"]).abs().mean())}
    for b in sorted(ldf.blur.unique()):
        results["label_w2"][f"pearson_F{b}"] = float(ldf[ldf.blur == b].pearson.mean())

    import torch.nn.functional as F

    sr = load_model("sr2x-bbbc005", device="cpu")
    srows = []
    for x, y, m in restore_pairs("sr", "test"):
        h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
        xs = x[:h, :w].astype(np.float32)
        small = 0.25 * (xs[0::2, 0::2] + xs[1::2, 0::2] + xs[0::2, 1::2] + xs[1::2, 1::2])
        bic = F.interpolate(torch.from_numpy(small)[None, None], scale_factor=2, mode="bicubic",
                            align_corners=False)[0, 0].numpy()
        ours = sr.predict_image(small, dtype="float32")
        yt = y[:h, :w].astype(np.float32)
        srows.append({"bicubic_psnr": psnr(yt, np.clip(bic, 0, 255), data_range=255.0),
                      "bicubic_ssim": ssim(yt, np.clip(bic, 0, 255), data_range=255.0),
                      "sr2x_psnr": psnr(yt, np.clip(ours, 0, 255), data_range=255.0),
                      "sr2x_ssim": ssim(yt, np.clip(ours, 0, 255), data_range=255.0)})
    sdf = pd.DataFrame(srows)
    results["sr2x"] = {"n_images": len(sdf), **{k: float(sdf[k].mean()) for k in sdf.columns}}

    for k, v in results["deblur"].items():
        if isinstance(v, dict):
            print(k, {kk: round(vv, 3) for kk, vv in v.items()})
    print("label_w2", {k: round(v, 3) for k, v in results["label_w2"].items()})
    print("sr2x", {k: round(v, 3) for k, v in results["sr2x"].items()})
    print("wrote", write_result("restore", results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
