"""Optical sections to one image (issue 27): EDF vs maximum vs mean projection on synthetic z-stacks.

    nice -n 10 .venv/bin/python benchmarks/bench_project.py

Stacks: ``deepscope.data.synth.generate_volume`` (25 textured, partly touching nuclei in 16 um of depth,
128 x 128 pixels at 0.5 um, z step 0.5 / 1 / 2 um, axial PSF sigma 3x the lateral, defocus blur, depth
attenuation 40%, shot + read noise), 4 seeds per z step, in two optical regimes:
- ``sectioning`` (haze 0: a confocal-like PSF, out-of-focus light falls off with the axial Gaussian),
- ``widefield`` (haze 0.6: 60% of each plane's light reaches every plane, blurred by its defocus).
Truth: the stack's ``all_in_focus`` image (noise-free, each pixel at the central plane of the nucleus on its
line of sight). Figures per projection: PSNR against the truth (data range = the truth's range); sharpness as
the variance of the Laplacian of Gaussian (sigma 1 px; higher = sharper, noise counts too) and the power-log-log
slope (``ImageQuality_PowerLogLogSlope``: less negative = more high-frequency power); ``detail_r``: correlation
of the LoG of the projection with the LoG of the truth (sharp detail that is right, not noise). Bar of issue
27: EDF sharper than max and a higher PSNR.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import report  # noqa: E402

from deepscope.data.stacks import PROJECTIONS, project  # noqa: E402
from deepscope.data.synth import generate_volume  # noqa: E402
from deepscope.measure.quality import power_log_log_slope  # noqa: E402

REGIMES = {"sectioning": 0.0, "widefield": 0.6}
Z_STEPS = (0.5, 1.0, 2.0)
SEEDS = range(4)


def psnr(a: np.ndarray, t: np.ndarray) -> float:
    return float(10 * np.log10(np.ptp(t) ** 2 / np.mean((a - t) ** 2)))


def log(a: np.ndarray) -> np.ndarray:
    return ndi.gaussian_laplace(a.astype(np.float32), 1.0)


def main() -> None:
    res: dict[str, object] = {"z_steps": list(Z_STEPS), "seeds": len(SEEDS), "shape_um": [16, 64, 64],
                              "haze": REGIMES}
    t0 = time.time()
    for regime, haze in REGIMES.items():
        rows: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in ("truth", *PROJECTIONS)}
        timing = {m: 0.0 for m in PROJECTIONS}
        for zs in Z_STEPS:
            for seed in SEEDS:
                v = generate_volume(25, shape=(int(round(16 / zs)), 128, 128), z_step=zs, haze=haze,
                                    seed=1000 * seed + int(zs * 10))
                t = v.all_in_focus
                lt = log(t)
                rows["truth"].append((float("inf"), float(lt.var()), power_log_log_slope(t), 1.0))
                for m in PROJECTIONS:
                    s = time.perf_counter()
                    p = project(v.stack, method=m).astype(np.float32)
                    timing[m] += time.perf_counter() - s
                    lp = log(p)
                    rows[m].append((psnr(p, t), float(lp.var()), power_log_log_slope(p),
                                    float(np.corrcoef(lp.ravel(), lt.ravel())[0, 1])))
        n = len(Z_STEPS) * len(SEEDS)
        for m, r in rows.items():
            a = np.array(r)
            if m != "truth":
                res[f"{regime}.{m}.psnr"] = float(a[:, 0].mean())
                res[f"{regime}.{m}.psnr_min_over_stacks"] = float(a[:, 0].min())
                res[f"{regime}.{m}.ms_per_stack"] = 1000 * timing[m] / n
            res[f"{regime}.{m}.log_var"] = float(a[:, 1].mean())
            res[f"{regime}.{m}.slope"] = float(a[:, 2].mean())
            res[f"{regime}.{m}.detail_r"] = float(a[:, 3].mean())
        e, x = np.array(rows["edf"]), np.array(rows["max"])
        res[f"{regime}.edf_beats_max_psnr_stacks"] = f"{int((e[:, 0] > x[:, 0]).sum())}/{n}"
        res[f"{regime}.edf_sharper_than_max_stacks"] = f"{int((e[:, 1] > x[:, 1]).sum())}/{n}"
        res[f"{regime}.bar_met"] = bool(e[:, 0].mean() > x[:, 0].mean() and e[:, 1].mean() > x[:, 1].mean())
    res["seconds"] = time.time() - t0
    report("project", res)


if __name__ == "__main__":
    main()
