"""Realism and speed of the synthetic cell generator (``deepscope.data.synth``).

Realism: generated BBBC005-style images are compared with the real BBBC005 images in
``../shared/data/bbbc005`` at the same count, blur level and stain, with the same measurements
on both: Otsu foreground, its fraction of the image, mean intensity, total intensity above the
background (the median of the non-foreground pixels), connected-component areas (objects not
touching the border, on images with few cells, counts 1-10, where clustering rarely merges
them), number of components, and the intensity histograms of foreground and background.
The quality bar (issue 3): at F1, for each stain, mean object area, mean foreground intensity
and total foreground intensity within 15% of the real images of the same count, and the
slope of total foreground intensity vs count within 15%.

Calibration checks (reported, no bar): per-object edge sharpness and within-object texture
(counts 5-14, F1), nucleus nearest-neighbour distances (clustering), and the focus-blur kernel
of the real set (the sigma that turns a real F1 image into the same field at F23/F48).

Speed: ``generate_field`` for one stain at one blur level, 520 x 696, at each BBBC005 count,
pinned to one core with BLAS/OpenMP threads limited to 1 (images per second of wall and CPU time).

Usage::

    .venv/bin/python benchmarks/bench_synth.py            # full: 25 synthetic sites per count
    .venv/bin/python benchmarks/bench_synth.py --sites 8  # quicker
    .venv/bin/python benchmarks/bench_synth.py --speed-only

Writes ``benchmarks/results/synth.json`` (a partial run updates its part) and prints a summary.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPSCOPE_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results" / "synth.json"
FEW = (1, 5, 10)  # counts whose objects are measured one by one
BAR = 0.15
HIST_BINS = np.arange(0, 257)


def image_metrics(image: np.ndarray) -> dict[str, Any]:
    """Otsu-foreground measurements of one 8-bit image (the same code for real and synthetic)."""
    from skimage.filters import threshold_otsu

    a = np.asarray(image, dtype=np.float64)
    t = threshold_otsu(a)
    fg = a > t
    bg_level = float(np.median(a[~fg])) if (~fg).any() else 0.0
    lab, n = ndi.label(fg)
    areas = np.bincount(lab.ravel())[1:]
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    keep = np.ones(n, bool)
    keep[border[border > 0] - 1] = False
    return {
        "otsu": float(t), "fg_fraction": float(fg.mean()), "mean_fg": float(a[fg].mean()) if fg.any() else 0.0,
        "total_fg": float((a[fg] - bg_level).sum()), "n_objects": int(n), "areas": areas[keep].tolist(),
        "fg_hist": np.histogram(a[fg], HIST_BINS)[0], "bg_hist": np.histogram(a[~fg], HIST_BINS)[0],
    }


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (stain, blur, count): means of the per-image metrics; pooled areas and histograms."""
    out: dict[str, Any] = {}
    for r in rows:
        key = (r["stain"], r["blur"], r["count"])
        s = out.setdefault(key, {"n": 0, "fg_fraction": [], "mean_fg": [], "total_fg": [], "n_objects": [],
                                 "areas": [], "fg_hist": 0, "bg_hist": 0})
        s["n"] += 1
        for k in ("fg_fraction", "mean_fg", "total_fg", "n_objects"):
            s[k].append(r[k])
        s["areas"].extend(r["areas"])
        s["fg_hist"] = s["fg_hist"] + r["fg_hist"]
        s["bg_hist"] = s["bg_hist"] + r["bg_hist"]
    return out


def real_rows(blurs: tuple[int, ...]) -> list[dict[str, Any]]:
    import pandas as pd
    import tifffile

    table = pd.read_csv(SHARED / "bbbc005" / "labels.csv")
    rows = []
    for rec in table.itertuples():
        if int(rec.blur) not in blurs:
            continue
        m = image_metrics(tifffile.imread(SHARED / "bbbc005" / "images" / rec.filename))
        rows.append({"stain": int(str(rec.stain).lstrip("w")), "blur": int(rec.blur), "count": int(rec.cell_count),
                     **m})
    return rows


def synth_rows(counts: tuple[int, ...], blurs: tuple[int, ...], sites: int, seed: int) -> list[dict[str, Any]]:
    from deepscope.data.synth import field_seed, generate_field

    rows = []
    for c in counts:
        for s in range(1, sites + 1):
            f = generate_field(c, blurs=blurs, stains=(1, 2), seed=np.random.default_rng(field_seed(seed, c, s)))
            for (stain, blur), img in f.images.items():
                rows.append({"stain": stain, "blur": blur, "count": c, **image_metrics(img)})
    return rows


def _hist_stats(h: np.ndarray) -> dict[str, Any]:
    p = h / max(h.sum(), 1)
    cdf = np.cumsum(p)
    q = {f"p{int(k * 100)}": int(np.searchsorted(cdf, k)) for k in (0.05, 0.25, 0.5, 0.75, 0.95)}
    return {**q, "mean": float((p * HIST_BINS[:-1]).sum())}


def compare(real: dict[str, Any], synth: dict[str, Any], stain: int, blur: int) -> dict[str, Any]:
    counts = sorted(c for (s, b, c) in real if s == stain and b == blur and (s, b, c) in synth)
    per_count = []
    tot_r, tot_s = [], []
    for c in counts:
        r, s = real[(stain, blur, c)], synth[(stain, blur, c)]
        row = {"count": c, "n_real": r["n"], "n_synth": s["n"]}
        for k in ("fg_fraction", "mean_fg", "total_fg", "n_objects"):
            rv, sv = float(np.mean(r[k])), float(np.mean(s[k]))
            row[k] = {"real": rv, "synth": sv, "rel_err": (sv - rv) / rv if rv else None}
        per_count.append(row)
        tot_r.append(np.mean(r["total_fg"]))
        tot_s.append(np.mean(s["total_fg"]))
    slope_r = float(np.polyfit(counts, tot_r, 1)[0])
    slope_s = float(np.polyfit(counts, tot_s, 1)[0])

    def pooled(d: dict[str, Any], key: str, sel: tuple[int, ...]) -> Any:
        vals = [d[(stain, blur, c)][key] for c in counts if c in sel]
        return sum(vals[1:], vals[0]) if vals and key.endswith("hist") else [x for v in vals for x in v]

    a_r, a_s = pooled(real, "areas", FEW), pooled(synth, "areas", FEW)
    area = {"real_mean": float(np.mean(a_r)), "synth_mean": float(np.mean(a_s)),
            "real_median": float(np.median(a_r)), "synth_median": float(np.median(a_s)),
            "n_real": len(a_r), "n_synth": len(a_s)}
    area["rel_err"] = (area["synth_mean"] - area["real_mean"]) / area["real_mean"]
    hists = {}
    for key in ("fg_hist", "bg_hist"):
        hr, hs = pooled(real, key, tuple(counts)), pooled(synth, key, tuple(counts))
        pr, ps = hr / hr.sum(), hs / hs.sum()
        hists[key] = {"real": _hist_stats(hr), "synth": _hist_stats(hs),
                      "intersection": float(np.minimum(pr, ps).sum())}
        if key == "bg_hist":
            hists[key]["real_0_5"] = [round(float(x), 4) for x in pr[:6]]
            hists[key]["synth_0_5"] = [round(float(x), 4) for x in ps[:6]]
    worst = {k: max(abs(r[k]["rel_err"]) for r in per_count) for k in ("mean_fg", "total_fg", "fg_fraction")}
    mean_abs = {k: float(np.mean([abs(r[k]["rel_err"]) for r in per_count]))
                for k in ("mean_fg", "total_fg", "fg_fraction")}
    return {"stain": stain, "blur": blur, "per_count": per_count, "area": area,
            "slope_total_fg": {"real": slope_r, "synth": slope_s, "rel_err": (slope_s - slope_r) / slope_r},
            "worst_rel_err": worst, "mean_abs_rel_err": mean_abs, "histograms": hists}


def _objects(image: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.filters import threshold_otsu

    a = np.asarray(image, dtype=np.float64)
    lab, n = ndi.label(a > threshold_otsu(a))
    areas = np.bincount(lab.ravel())
    keep = [i for i in range(1, n + 1) if lo <= areas[i] <= hi]
    return lab, np.asarray(keep, int)


def shape_checks(img: np.ndarray, stain: int) -> dict[str, list[float]]:
    """Per-object edge sharpness (sigma of a Gaussian edge: plateau / (steepest slope * sqrt(2 pi)))
    and within-object texture (s.d. of the eroded interior), plus nucleus nearest-neighbour distances."""
    from scipy.spatial import cKDTree

    a = np.asarray(img, dtype=np.float64)
    lab, keep = _objects(a, 300, 6000)
    grad = np.hypot(ndi.sobel(a, 0), ndi.sobel(a, 1)) / 8
    out: dict[str, list[float]] = {"edge_sigma": [], "texture_sd": [], "nn_distance": []}
    for i in keep:
        m = lab == i
        inner = ndi.binary_erosion(m, iterations=8 if m.sum() > 2000 else 5)
        if inner.sum() < 20:
            continue
        plateau = np.median(a[inner])
        rim = ndi.binary_dilation(m & ~ndi.binary_erosion(m), iterations=2)
        out["edge_sigma"].append(float(plateau / (np.percentile(grad[rim], 75) * np.sqrt(2 * np.pi))))
        out["texture_sd"].append(float(a[ndi.binary_erosion(m, iterations=6 if stain == 1 else 8)].std()))
    if stain == 1:
        cen = np.array(ndi.center_of_mass(a > 0, lab, np.arange(1, lab.max() + 1))) if lab.max() > 1 else np.zeros((0, 2))
        if len(cen) > 1:
            out["nn_distance"] = cKDTree(cen).query(cen, k=2)[0][:, 1].tolist()
    return out


def blur_fit(pairs: list[tuple[np.ndarray, np.ndarray, int]]) -> list[dict[str, float]]:
    """Sigma of the Gaussian (cut at 2 sigma) that best turns an F1 image into the same field at F."""
    from scipy.optimize import minimize_scalar

    out = []
    for sharp, blurred, f in pairs:
        a, b = sharp.astype(np.float64), blurred.astype(np.float64)

        def err(sig: float) -> float:
            return float(((ndi.gaussian_filter(a, sig, truncate=2.0) - b)[20:-20, 20:-20] ** 2).mean())

        r = minimize_scalar(err, bounds=(0.1 * f, 0.4 * f), method="bounded", options={"xatol": 0.02})
        out.append({"blur": f, "sigma": float(r.x), "sigma_per_F": float(r.x) / f, "mse": float(r.fun)})
    return out


def calibration_checks(sites: int, seed: int) -> dict[str, Any]:
    """Edge sharpness, texture and spacing of objects at counts 5-14 (F1), and the focus-blur kernel."""
    import pandas as pd
    import tifffile

    from deepscope.data.synth import field_seed, generate_field

    table = pd.read_csv(SHARED / "bbbc005" / "labels.csv")
    real: dict[int, dict[str, list[float]]] = {1: {}, 2: {}}
    synth: dict[int, dict[str, list[float]]] = {1: {}, 2: {}}
    f1 = table[(table.blur == 1) & table.cell_count.isin([5, 10, 14])]
    for rec in f1.itertuples():
        st = int(str(rec.stain).lstrip("w"))
        for k, v in shape_checks(tifffile.imread(SHARED / "bbbc005" / "images" / rec.filename), st).items():
            real[st].setdefault(k, []).extend(v)
    for c in (5, 10, 14):
        for site in range(1, min(sites, 8) + 1):
            f = generate_field(c, seed=np.random.default_rng(field_seed(seed, c, site)))
            for st in (1, 2):
                for k, v in shape_checks(f.images[(st, 1)], st).items():
                    synth[st].setdefault(k, []).extend(v)
    res: dict[str, Any] = {}
    bins = np.array([0, 30, 35, 40, 45, 50, 60, 80, 120, 1000])
    for st in (1, 2):
        for k in ("edge_sigma", "texture_sd", "nn_distance"):
            r, s = np.asarray(real[st].get(k, [])), np.asarray(synth[st].get(k, []))
            if len(r) < 5 or len(s) < 5:
                continue
            entry: dict[str, Any] = {"real_p10_50_90": np.percentile(r, [10, 50, 90]).round(2).tolist(),
                                     "synth_p10_50_90": np.percentile(s, [10, 50, 90]).round(2).tolist(),
                                     "n_real": len(r), "n_synth": len(s)}
            if k == "nn_distance":
                hr, hs = np.histogram(r, bins)[0] / len(r), np.histogram(s, bins)[0] / len(s)
                entry["histogram_overlap"] = float(np.minimum(hr, hs).sum())
            res[f"w{st}_{k}"] = entry
    # the focus blur: real F23/F48 images vs their own field's F1 image
    pairs = []
    for (field, stain), grp in table.groupby(["field", "stain"]):
        by_blur = dict(zip(grp.blur, grp.filename))
        for f in (23, 48):
            if 1 in by_blur and f in by_blur and sum(p[2] == f for p in pairs) < 4:
                load = lambda n: tifffile.imread(SHARED / "bbbc005" / "images" / n)  # noqa: E731
                pairs.append((load(by_blur[1]), load(by_blur[f]), f))
    fits = blur_fit(pairs)
    res["real_focus_blur_fit"] = {str(f): {"sigma_per_F_mean": float(np.mean([x["sigma_per_F"] for x in fits if x["blur"] == f])),
                                           "mse_mean": float(np.mean([x["mse"] for x in fits if x["blur"] == f])),
                                           "pairs": sum(x["blur"] == f for x in fits)} for f in (23, 48)}
    return res


def speed(repeats: int) -> dict[str, Any]:
    from deepscope.data.synth import BBBC005_COUNTS, generate_field

    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
        pinned = True
    except (AttributeError, OSError):
        pinned = False
    generate_field(10, stains=(1,), seed=0)  # warm caches
    per_count = {}
    wall_all, cpu_all = 0.0, 0.0
    for c in BBBC005_COUNTS:
        w0, c0 = time.perf_counter(), time.process_time()
        for s in range(repeats):
            generate_field(c, stains=(1,), blurs=(1,), seed=s)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        per_count[c] = {"wall_ms": 1e3 * wall / repeats, "cpu_ms": 1e3 * cpu / repeats}
        wall_all += wall
        cpu_all += cpu
    n = repeats * len(BBBC005_COUNTS)
    both = []
    for c in (1, 53, 100):
        w0 = time.perf_counter()
        for s in range(repeats):
            generate_field(c, stains=(1, 2), blurs=(1, 23, 48), seed=s)
        both.append({"count": c, "wall_ms": 1e3 * (time.perf_counter() - w0) / repeats})
    return {"pinned_to_one_core": pinned, "images": n, "images_per_s_wall": n / wall_all,
            "images_per_s_cpu": n / cpu_all, "per_count": per_count, "field_2_stains_3_blurs": both}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=25, help="synthetic fields per count (BBBC005 has 25)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blurs", default="1,23,48", help="blur levels compared (the real set has 1, 23, 48)")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--realism-only", action="store_true")
    ap.add_argument("--repeats", type=int, default=5, help="speed: fields per count")
    args = ap.parse_args(argv)
    blurs = tuple(int(b) for b in args.blurs.split(","))
    result: dict[str, Any] = {
        "benchmark": "synth", "command": "python benchmarks/bench_synth.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())},
    }
    lines = []
    if not args.speed_only:
        if not (SHARED / "bbbc005" / "labels.csv").exists():
            print(f"realism skipped: no real BBBC005 at {SHARED / 'bbbc005'}")
            result["realism"] = None
        else:
            from deepscope.data.synth import BBBC005_COUNTS

            t0 = time.perf_counter()
            real = _summarise(real_rows(blurs))
            synth = _summarise(synth_rows(BBBC005_COUNTS, blurs, args.sites, args.seed))
            comps = [compare(real, synth, st, b) for b in blurs for st in (1, 2)]
            ok = True
            for cmp_ in comps:
                checks = {}
                if cmp_["blur"] == 1:
                    checks = {"area": abs(cmp_["area"]["rel_err"]) <= BAR,
                              "mean_fg": cmp_["worst_rel_err"]["mean_fg"] <= BAR,
                              "total_fg": cmp_["worst_rel_err"]["total_fg"] <= BAR,
                              "slope": abs(cmp_["slope_total_fg"]["rel_err"]) <= BAR}
                    ok &= all(checks.values())
                cmp_["bar"] = checks
                a, sl, h = cmp_["area"], cmp_["slope_total_fg"], cmp_["histograms"]
                lines.append(
                    f"w{cmp_['stain']} F{cmp_['blur']:<2}: area {a['synth_mean']:.0f} vs {a['real_mean']:.0f} "
                    f"({a['rel_err']:+.1%}); worst count: mean fg {cmp_['worst_rel_err']['mean_fg']:.1%}, "
                    f"total fg {cmp_['worst_rel_err']['total_fg']:.1%}, fg fraction "
                    f"{cmp_['worst_rel_err']['fg_fraction']:.1%} (mean {cmp_['mean_abs_rel_err']['total_fg']:.1%}); "
                    f"slope {sl['rel_err']:+.1%}; hist overlap fg {h['fg_hist']['intersection']:.2f} "
                    f"bg {h['bg_hist']['intersection']:.2f}" + ("" if not checks else
                                                                 f"  [{'PASS' if all(checks.values()) else 'FAIL'}]"))
            checks = calibration_checks(args.sites, args.seed)
            for k, v in checks.items():
                if k == "real_focus_blur_fit":
                    lines.append("real F23/F48 = their F1 image blurred by a Gaussian (cut at 2 sigma) of sigma/F = "
                                 + ", ".join(f"{vv['sigma_per_F_mean']:.3f} (F{f}, mse {vv['mse_mean']:.2f})"
                                             for f, vv in v.items()))
                else:
                    lines.append(f"{k}: p10/p50/p90 synthetic {v['synth_p10_50_90']} vs real {v['real_p10_50_90']}"
                                 + (f", histogram overlap {v['histogram_overlap']:.2f}" if "histogram_overlap" in v else ""))
            result["realism"] = {"bar": BAR, "passed": bool(ok), "synthetic_sites": args.sites,
                                 "seconds": time.perf_counter() - t0, "comparisons": comps, "calibration_checks": checks}
    if not args.realism_only:
        sp = speed(args.repeats)
        result["speed"] = sp
        lines.append(f"speed (one core, 520x696, one stain, F1): {sp['images_per_s_wall']:.1f} images/s wall, "
                     f"{sp['images_per_s_cpu']:.1f} images/s CPU; 2 stains x 3 blurs per field: "
                     + ", ".join(f"C{b['count']} {b['wall_ms']:.0f} ms" for b in sp["field_2_stains_3_blurs"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if (args.speed_only or args.realism_only) and RESULTS.exists():
        # a partial run updates its part and keeps the other one from the previous full run
        previous = json.loads(RESULTS.read_text())
        keep = "realism" if args.speed_only else "speed"
        if previous.get(keep) is not None:
            result[keep] = previous[keep]
            result[f"{keep}_command"] = previous.get(f"{keep}_command", previous.get("command"))
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_json_default))
    os.replace(tmp, RESULTS)
    print("\n".join(lines))
    print(f"results: {RESULTS}")
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    sys.exit(main())
