"""What the object size costs on the real stacks (issue 27): each 3D method given the TRUE nucleus size (an oracle)
against its own estimate, on the three stacks of ../shared/data/nuclei3d.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_volume_oracle.py

The size is taken from the true labels: the median equivalent-sphere diameter of the nuclei in um (``classical``'s
``diameter``) and that over the lateral pixel size (``flows25d``'s, in pixels), and, for ``flows25d``, a sweep of
0.7-1.4x the 90th percentile of the nuclei's 2-D cross-section diameters (the largest sections: what a 2-D size
estimate reads). No setting chosen here is shipped; it says whether the real-stack bar (F1 >= 0.8 on each stack)
is within reach of a better size estimate or needs a 3-D network. Result: ``benchmarks/results/volume_oracle.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import SHARED, report, start  # noqa: E402

STACKS = ("gonuclear1136", "qcanet8", "stardist_synthetic")
SWEEP = (0.7, 0.85, 1.0, 1.2, 1.4)


def main() -> int:
    if not start("nuclei3d"):
        return 0
    from skimage.measure import regionprops

    from deepscope.evaluate.segmentation import dsb_score, match_instances
    from deepscope.io import read_image
    from deepscope.models import load_model
    from deepscope.tasks.segment.volume import segment_volume_classical, segment_volume_flows25d

    model = load_model("nuclei", device="cpu")
    model.backend = "torch"  # the figures of bench_volume_segment.py are float

    def score(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        return {"f1": round(float(match_instances(true, pred, thresholds=0.5).f1[0]), 4),
                "dsb": round(float(dsb_score(true, pred)), 4), "n": int(len(np.unique(pred)) - 1)}

    res: dict[str, object] = {"sweep": list(SWEEP)}
    for name in STACKS:
        im = read_image(SHARED / "nuclei3d" / "images" / f"{name}.tif")
        true = read_image(SHARED / "nuclei3d" / "labels" / f"{name}.tif").data
        vs = (im.meta.z_step, *im.meta.pixel_size) if im.meta.z_step and im.meta.pixel_size else (1.0, 1.0, 1.0)
        volumes = np.array([r.area for r in regionprops(true)]) * float(np.prod(vs))
        d_um = float(np.median((6 * volumes / np.pi) ** (1 / 3)))
        sections = [r.equivalent_diameter_area for z in range(true.shape[0]) for r in regionprops(true[z])]
        d90 = float(np.percentile(sections, 90))
        out: dict[str, object] = {"nuclei": int(len(np.unique(true)) - 1), "diameter_um": round(d_um, 3),
                                  "diameter_px": round(d_um / vs[2], 2), "section_p90_px": round(d90, 2)}
        out["classical"] = score(true, segment_volume_classical(im.data, voxel_size=vs))
        out["classical_oracle"] = score(true, segment_volume_classical(im.data, voxel_size=vs, diameter=d_um))
        out["flows25d"] = score(true, segment_volume_flows25d(im.data, model, voxel_size=vs))
        out["flows25d_oracle"] = score(true, segment_volume_flows25d(im.data, model, voxel_size=vs,
                                                                     diameter=d_um / vs[2]))
        out["flows25d_sweep"] = {str(f): score(true, segment_volume_flows25d(im.data, model, voxel_size=vs,
                                                                             diameter=f * d90)) for f in SWEEP}
        best = max(out["flows25d_sweep"].values(), key=lambda s: s["f1"])
        out["flows25d_best_f1"] = best["f1"]
        print(name, out, flush=True)
        res[name] = out
    report("volume_oracle", res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
