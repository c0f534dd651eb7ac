"""Outputs of every shipped model on a fixed set of seeded synthetic images.

``tests/models/zoo_reference.json`` holds these outputs as recorded *before* the models package was
redesigned (issue 13); ``tests/models/test_zoo_reference.py`` recomputes them through the current
code and compares. Only public API is used here (``load_model``, ``count_images``, ``predict_image``),
so the same file records and checks.

Record (only when a change of outputs is intended and understood)::

    OMP_NUM_THREADS=1 .venv/bin/python -m tests.models.zoo_reference --write [--only nuclei,...]

With ``--only`` the named models are recomputed (a model that was retrained or replaced) and every
other entry is kept as recorded; entries of models no longer shipped are dropped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = Path(__file__).with_name("zoo_reference.json")


def images() -> dict[str, np.ndarray]:
    """The fixed inputs: BBBC005-sized fields (8-bit, in focus and blurred, both stains), a 16-bit field
    and a small odd-sized one."""
    from deepscope.data.synth import generate_field

    big = generate_field(30, size=(520, 696), blurs=(1, 23), seed=1301)
    few = generate_field(6, size=(520, 696), blurs=(1,), stains=(1,), seed=1302)
    deep = generate_field(12, size=(200, 260), blurs=(1,), stains=(1,), bit_depth=16, seed=1303)
    small = generate_field(4, size=(97, 131), blurs=(1,), stains=(1,), seed=1304)
    return {"w1_f1": big.image(1, 1), "w2_f1": big.image(2, 1), "w1_f23": big.image(1, 23),
            "few_w1": few.image(1, 1), "u16_w1": deep.image(1, 1), "small_w1": small.image(1, 1),
            # the tiled and test-time-augmented paths on a 288 x 352 corner (2 x 2 tiles of 256): the same
            # code paths as on a whole field at a third of the cost
            "w1_f1_crop": big.image(1, 1)[:288, :352], "w1_f23_crop": big.image(1, 23)[:288, :352]}


def _sha(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def _labels_summary(labels: np.ndarray) -> dict[str, Any]:
    lab = np.asarray(labels)
    sizes = np.bincount(lab.ravel())[1:]
    sizes = sizes[sizes > 0]
    return {"dtype": str(lab.dtype), "shape": list(lab.shape), "n_objects": int(len(sizes)),
            "foreground": int((lab > 0).sum()), "sha": _sha(lab)}


def _pixels_summary(x: np.ndarray) -> dict[str, Any]:
    a = np.asarray(x)
    f = a.astype(np.float64)
    h, w = a.shape[:2]
    blocks = [float(f[r * h // 4:(r + 1) * h // 4, c * w // 4:(c + 1) * w // 4].mean())
              for r in range(4) for c in range(4)]
    return {"dtype": str(a.dtype), "shape": list(a.shape), "mean": float(f.mean()), "std": float(f.std()),
            "min": float(f.min()), "max": float(f.max()), "blocks": blocks, "sha": _sha(a)}


def compute(only: set[str] | None = None) -> dict[str, Any]:
    """Outputs of every shipped model (or those in ``only``) on :func:`images` (plus tiled runs of the
    large-image paths)."""
    from deepscope.models import list_models, load_model

    ims = images()
    out: dict[str, Any] = {}
    for info in list_models():
        if only is not None and info.name not in only:
            continue
        model = load_model(info.name, device="cpu")
        # the float network, whatever the CPU default (``auto``: int8 where the card allows it): this reference
        # pins the code around the network; the int8 networks are held to float in tests/predict/test_int8.py
        model.backend = "torch"
        res: dict[str, Any] = {"task": info.task}
        if info.task == "count":
            whole = {k: v for k, v in ims.items() if not k.endswith("_crop")}
            for k, r in zip(whole, model.count_images(list(whole.values()))):
                res[k] = {"count": r.count, "low": r.low, "high": r.high, "std": r.std, "method": r.method,
                          "estimate": r.estimate}
        elif info.task == "segment":
            for k in ("w1_f1", "w2_f1", "w1_f23", "u16_w1", "small_w1"):
                res[k] = _labels_summary(model.predict_image(ims[k]))
            res["w1_f1_crop_tiled"] = _labels_summary(model.predict_image(ims["w1_f1_crop"], tile=256, overlap=48))
            res["w1_f1_crop_flips"] = _labels_summary(model.predict_image(ims["w1_f1_crop"], tta="flips"))
        else:
            for k in ("w1_f1", "w1_f23", "u16_w1", "small_w1"):
                res[k] = _pixels_summary(model.predict_image(ims[k]))
            res["w1_f23_crop_tiled"] = _pixels_summary(model.predict_image(ims["w1_f23_crop"], tile=256, overlap=32))
            res["small_w1_float32"] = _pixels_summary(model.predict_image(ims["small_w1"], dtype="float32"))
        out[info.name] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {REFERENCE.name} (else print)")
    ap.add_argument("--only", default="", help="comma-separated models to recompute; the others keep their record")
    args = ap.parse_args(argv)
    if args.only:
        from deepscope.models import list_models

        shipped = {m.name for m in list_models()}
        old = json.loads(REFERENCE.read_text())
        result = {k: v for k, v in old.items() if k in shipped}
        result.update(compute(set(args.only.split(","))))
    else:
        result = compute()
    text = json.dumps(result, indent=1, sort_keys=True) + "\n"
    if args.write:
        REFERENCE.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
