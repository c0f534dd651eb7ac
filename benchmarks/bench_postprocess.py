"""Can post-processing close the gap of ``nuclei`` to the segmentation bars? Variants on validation images.

    .venv/bin/python benchmarks/bench_postprocess.py

The shipped ``nuclei`` network's maps on the 38 DSB2018 validation images (RandomSplitter 80/10/10
seed 0; the images its thresholds were tuned on, never the test part), turned into instances by:
the shipped seeded watershed; its seed threshold swept; h-maxima seeds on the smoothed distance map;
removing objects smaller than a fraction of the image's median object; filling holes; growing every
object by 1 px; flip TTA. Mean DSB score and F1 @ 0.5 per variant, and matched-object IoU by size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from _util import report  # noqa: E402


def main() -> int:
    from dataclasses import replace

    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima
    from skimage.segmentation import expand_labels, watershed

    from deepscope.evaluate import match_instances
    from deepscope.models import load_model
    from deepscope.tasks.segment.instances import instances_from_maps
    from pack_data import dsb_split

    ds, parts = dsb_split()
    va = np.flatnonzero(parts == "valid")
    model = load_model("nuclei", device="cpu")
    imgs = [ds.get_image(int(i)) for i in va]
    labs = [ds.get_label(int(i)) for i in va]
    maps = [model.maps(im) for im in imgs]
    cfg = model.postprocess

    def score(fn, ms=maps):  # type: ignore[no-untyped-def]
        r = [match_instances(lab, fn(m)) for m, lab in zip(ms, labs)]
        return {"dsb": float(np.mean([x.mean_ap for x in r])), "f1@0.5": float(np.mean([x.f1[0] for x in r]))}

    def shipped(m, c=cfg):  # type: ignore[no-untyped-def]
        return instances_from_maps(m[0], m[1], c)

    def hmax(m, h):  # type: ignore[no-untyped-def]
        mask = m[0] > cfg.fg_threshold
        dist = ndi.gaussian_filter(m[1], 1)
        lab = watershed(-dist, ndi.label(h_maxima(dist, h) & mask)[0], mask=mask)
        sizes = np.bincount(lab.ravel())
        small = sizes < cfg.min_size
        small[0] = False
        lab[small[lab]] = 0
        return lab

    def relmin(lab, frac):  # type: ignore[no-untyped-def]
        s = np.bincount(lab.ravel())
        if len(s) < 2 or not (s[1:] > 0).any():
            return lab
        small = s < frac * np.median(s[1:][s[1:] > 0])
        small[0] = False
        lab = lab.copy()
        lab[small[lab]] = 0
        return lab

    def fill(lab):  # type: ignore[no-untyped-def]
        out = lab.copy()
        for i, sl in enumerate(ndi.find_objects(lab), 1):
            if sl is not None:
                out[sl][ndi.binary_fill_holes(lab[sl] == i) & (lab[sl] == 0)] = i
        return out

    res = {"shipped": score(shipped), "postprocess": cfg.to_dict()}
    for s in (0.3, 0.4, 0.6, 0.7):
        res[f"seed_threshold_{s}"] = score(lambda m, s=s: shipped(m, replace(cfg, seed_threshold=s)))
    for h in (0.1, 0.2, 0.3):
        res[f"h_maxima_{h}"] = score(lambda m, h=h: hmax(m, h))
    for f in (0.1, 0.2):
        res[f"drop_below_{f}_median"] = score(lambda m, f=f: relmin(shipped(m), f))
    res["fill_holes"] = score(lambda m: fill(shipped(m)))
    res["grow_1px"] = score(lambda m: expand_labels(shipped(m), 1))
    res["flip_tta"] = score(shipped, [model.maps(im, tta="flips") for im in imgs])
    # matched objects: IoU and predicted/true area by true-object size
    rows = []
    for m, lab in zip(maps, labs):
        pred = shipped(m)
        nt, npd = int(lab.max()) + 1, int(pred.max()) + 1
        c = np.bincount(lab.ravel().astype(np.int64) * npd + pred.ravel(), minlength=nt * npd).reshape(nt, npd)
        at, ap = c.sum(1), c.sum(0)
        for t in range(1, nt):
            if at[t] and npd > 1:
                j = int(np.argmax(c[t, 1:])) + 1
                iou = c[t, j] / (at[t] + ap[j] - c[t, j])
                if iou > 0.5:
                    rows.append((at[t], ap[j] / at[t], iou))
    a = np.array(rows)
    res["matched_by_true_area"] = {}
    for lo, hi in ((0, 100), (100, 200), (200, 400), (400, 1000), (1000, 10**9)):
        b = a[(a[:, 0] >= lo) & (a[:, 0] < hi)]
        res["matched_by_true_area"][f"{lo}-{hi}px"] = {"n": len(b), "mean_iou": float(b[:, 2].mean()),
                                                       "median_area_ratio": float(np.median(b[:, 1]))}
    report("postprocess", res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
