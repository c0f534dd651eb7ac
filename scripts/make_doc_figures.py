"""Figures for the docs, made from deepscope's own synthetic images (nothing from ../shared is committed).

    .venv/bin/python scripts/make_doc_figures.py

- docs/images/deblur_hallucination.png: a synthetic F48 field (nuclear and cell stain), its in-focus
  truth, and ``deblur-bbbc005``'s restoration, with objects that exist only in the restoration
  (``deepscope.evaluate.false_structure``) outlined in red and truth objects the restoration lost in blue.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.segmentation import find_boundaries

    from deepscope.data.synth import generate_field
    from deepscope.evaluate import false_structure
    from deepscope.io import write_png
    from deepscope.models import load_model

    model = load_model("deblur-bbbc005", device="cpu")
    rows, stats = [], []
    for stain, count, seed in ((1, 70, 5), (2, 40, 6)):
        f = generate_field(count, blurs=(48,), stains=(stain,), seed=seed)
        x, truth = f.images[(stain, 48)], f.in_focus[stain].astype(np.float32)
        out = model.predict_image(x).astype(np.float32)
        fs = false_structure(truth, out)
        stats.append({"stain": stain, "count": count, **{k: float(v) for k, v in vars(fs).items()}})
        t = fs.threshold
        from skimage.morphology import remove_small_objects

        lt = label(remove_small_objects(truth > t, 9))
        lo = label(remove_small_objects(out > t, 9))
        # objects of the restoration that overlap no truth object: invented; and the reverse: lost
        inv = np.isin(lo, [i for i in np.unique(lo[lo > 0]) if not (lt[lo == i] > 0).mean() >= 0.5])
        lost = np.isin(lt, [i for i in np.unique(lt[lt > 0]) if not (lo[lt == i] > 0).mean() >= 0.5])
        panels = []
        for img in (x.astype(np.float32), out, truth):
            g = np.clip(img / max(float(np.percentile(truth, 99.8)), 1) * 255, 0, 255).astype(np.uint8)
            rgb = np.stack([g] * 3, -1)
            rgb[find_boundaries(inv)] = (255, 40, 40)
            rgb[find_boundaries(lost)] = (60, 120, 255)
            panels.append(rgb[::2, ::2])
        rows.append(np.concatenate(panels, 1))
        _ = threshold_otsu
    fig = np.ascontiguousarray(np.concatenate(rows, 0))
    out_path = ROOT / "docs" / "images" / "deblur_hallucination.png"
    write_png(out_path, fig)
    (out_path.with_suffix(".json")).write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats, indent=1))
    print("wrote", out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
