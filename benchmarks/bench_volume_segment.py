"""3D nuclei in z-stacks (issue 27): the classical anisotropy-aware baseline, the 2D `nuclei` generalist in 2.5D
(flows of the XY, XZ and YZ planes followed in 3D) and per plane, stitched in 3D by overlap
(``deepscope.tasks.segment.volume``), on synthetic stacks and ../shared/data/nuclei3d.

    nice -n 10 .venv/bin/python benchmarks/bench_volume_segment.py [--methods classical,flows25d,slices] [--seeds 2]

(``--no-slices``: classical and flows25d.)

Synthetic stacks: ``generate_volume`` (16 um deep, 128 x 128 px at 0.5 um, z step 0.5 / 1 / 2 um, two densities:
25 nuclei with half of them touching, 45 with 80% touching; 2 seeds each by default; seeds 500+ so the development seeds of
the tests are not among them). Real: the three stacks of nuclei3d with the voxel size their file states
(stardist_synthetic: cubic voxels). Figures: F1 at IoU 0.5 and the DSB score (mean F1-like AP over IoU
0.5-0.95, ``deepscope.evaluate.dsb_score``) over 3D labels, and seconds per stack (2-core CPU, 1 thread).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import SHARED, report  # noqa: E402

from deepscope.data.synth import generate_volume  # noqa: E402
from deepscope.evaluate.segmentation import dsb_score, match_instances  # noqa: E402
from deepscope.io import read_image  # noqa: E402
from deepscope.tasks.segment.volume import (segment_volume_classical, segment_volume_flows25d,  # noqa: E402
                                            segment_volume_slices)

DENSITIES = {"sparse": (25, 0.5), "dense": (45, 0.8)}
Z_STEPS = (0.5, 1.0, 2.0)
SEEDS = range(int(sys.argv[sys.argv.index('--seeds') + 1]) if '--seeds' in sys.argv else 2)


def methods(names: list[str]) -> dict:
    out = {}
    if "classical" in names:
        out["classical"] = lambda stack, vs: segment_volume_classical(stack, voxel_size=vs)
    if {"flows25d", "slices"} & set(names):
        import torch

        from deepscope.models import load_model

        torch.set_num_threads(2)
        model = load_model("nuclei", device="cpu")
        if "flows25d" in names:
            out["nuclei_flows25d"] = lambda stack, vs: segment_volume_flows25d(stack, model, voxel_size=vs)
        if "slices" in names:
            def per_plane(stack, vs):
                return segment_volume_slices(stack, lambda plane: model.predict_image(plane, diameter=None))

            out["nuclei_slices"] = per_plane
    return out


def score(true, pred) -> tuple[float, float]:
    return float(match_instances(true, pred, thresholds=0.5).f1[0]), float(dsb_score(true, pred))


def main() -> None:
    import warnings

    warnings.simplefilter("ignore")
    if "--methods" in sys.argv:
        names = sys.argv[sys.argv.index("--methods") + 1].split(",")
    else:
        names = ["classical", "flows25d"] + ([] if "--no-slices" in sys.argv else ["slices"])
    ms = methods(names)
    res: dict[str, object] = {"z_steps": list(Z_STEPS), "seeds": len(SEEDS), "densities": DENSITIES}
    for m, fn in ms.items():
        for dname, (count, touch) in DENSITIES.items():
            f1s, dsbs, secs = [], [], []
            for zs in Z_STEPS:
                for seed in SEEDS:
                    v = generate_volume(count, shape=(int(round(16 / zs)), 128, 128), z_step=zs, touch=touch,
                                        seed=500 + 10 * seed + int(zs * 2))
                    t = time.perf_counter()
                    lab = fn(v.stack, v.voxel_size)
                    secs.append(time.perf_counter() - t)
                    f, d = score(v.labels, lab)
                    f1s.append(f)
                    dsbs.append(d)
                    res[f"synthetic.{dname}.z{zs}.{m}.f1"] = res.get(f"synthetic.{dname}.z{zs}.{m}.f1", 0.0) + f / len(SEEDS)
            res[f"synthetic.{dname}.{m}.f1"] = float(np.mean(f1s))
            res[f"synthetic.{dname}.{m}.dsb"] = float(np.mean(dsbs))
            res[f"synthetic.{dname}.{m}.s_per_stack"] = float(np.mean(secs))
            res[f"synthetic.{dname}.{m}.nuclei_per_stack"] = count
        for name in ("gonuclear1136", "qcanet8", "stardist_synthetic"):
            ip, lp = SHARED / "nuclei3d" / "images" / f"{name}.tif", SHARED / "nuclei3d" / "labels" / f"{name}.tif"
            if not ip.exists():
                continue
            im, lb = read_image(ip), read_image(lp).data
            vs = (im.meta.z_step, *im.meta.pixel_size) if im.meta.z_step and im.meta.pixel_size else (1.0, 1.0, 1.0)
            t = time.perf_counter()
            lab = fn(im.data, vs)
            sec = time.perf_counter() - t
            f, d = score(lb, lab)
            res[f"nuclei3d.{name}.{m}.f1"] = f
            res[f"nuclei3d.{name}.{m}.dsb"] = d
            res[f"nuclei3d.{name}.{m}.seconds"] = sec
    # speed on the reference size: 48 x 160 x 160
    v = generate_volume(40, shape=(48, 160, 160), z_step=0.5, seed=900)
    for m, fn in ms.items():
        t = time.perf_counter()
        fn(v.stack, v.voxel_size)
        res[f"speed_48x160x160.{m}.seconds"] = time.perf_counter() - t
    report("volume_segment", res)


if __name__ == "__main__":
    main()
