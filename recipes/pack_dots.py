"""Pseudo dot annotations for the BBBC005 training pack: object centroids per field (CPU, ~1 min).

BBBC005 gives a count per image but no positions. Every blur level and both stains of a field show
the same cells, so the nuclei segmented in the field's sharpest nuclear-stain image (w1 F1, else
w1 F23; ``cells-bbbc005``, trained on synthetic images only) locate the cells in all of its images.
A field is kept only where the number of segmented nuclei equals the field's true count, so the
dots never contradict the count label. ``recipes/zoo.py`` turns them into density-map targets
(variant ``count-p4-dots-ft``).

    PYTHONPATH=src .venv/bin/python recipes/pack_dots.py --data .gpu/data

Writes ``bbbc005_dots.npy.xz`` into the pack: rows ``(field, row, col)`` in full-resolution pixels,
``field`` as in ``bbbc005_field`` (training and validation fields; the test part is never read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _pack  # noqa: E402
import pack_data  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(HERE.parent / ".gpu" / "data"))
    ap.add_argument("--segmenter", default="cells-bbbc005")
    ap.add_argument("--limit", type=int, default=0, help="as for pack_data.py (the same fields must be packed)")
    ap.add_argument("--shared", default=str(pack_data.SHARED), help="the shared data folder")
    args = ap.parse_args(argv)
    pack_data.SHARED = Path(args.shared)
    from scipy import ndimage as ndi

    from deepscope.models import load_model

    seg = load_model(args.segmenter, device="cpu")
    seg.backend = "torch"  # the float segmenter the labels were made with
    ds, part = pack_data._limit(*pack_data.bbbc005_split(), args.limit, by="field")
    md = ds.metadata
    fields = md["field"].to_numpy()
    field_id = np.unique(fields, return_inverse=True)[1]
    rows, stats = [], {"fields": 0, "kept": 0, "no_source": 0, "disagree": 0}
    for f in sorted(set(fields[part != "test"])):
        idx = np.flatnonzero(fields == f)
        stats["fields"] += 1
        src = None
        for blur in (1, 23):
            cand = [i for i in idx if int(md["stain"][i]) == 1 and int(md["blur"][i]) == blur]
            if cand:
                src = cand[0]
                break
        if src is None:
            stats["no_source"] += 1
            continue
        labels = seg.predict_image(ds.get_image(int(src)))
        n = int(labels.max())
        if n != int(ds.y[src]):
            stats["disagree"] += 1
            continue
        cents = np.array(ndi.center_of_mass(labels > 0, labels, np.arange(1, n + 1)), dtype=np.float32).reshape(-1, 2)
        rows.append(np.column_stack([np.full(len(cents), field_id[src], np.float32), cents]))
        stats["kept"] += 1
    dots = np.concatenate(rows) if rows else np.zeros((0, 3), np.float32)
    _pack.save(args.data, "bbbc005_dots", dots.astype(np.float32))
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
