"""Domain checks: share of out-of-domain pictures flagged and of in-domain images accepted.

    .venv/bin/python benchmarks/bench_domain.py [--models nuclei,count-bbbc005]

In-domain images are held-out test parts of the development sets (never used to fit or calibrate
the checks): DSB2018 fluorescence, H&E and brightfield test images for the nuclei models, BBBC005
test fields for the counter. Out-of-domain pictures are ones no model here is made for: the
photographs, drawings and scans bundled with scikit-image (astronaut, camera, coffee, rocket, moon,
a text page, a retina fundus, the Hubble deep field ...), and generated ones (uniform and Gaussian
noise, salt-and-pepper, rendered text, smooth gradients, random rectangles). Neither set is used by
the recipes. Two bundled microscopy images (skimage's ``cell`` and ``immunohistochemistry``) are
reported on their own: they are microscopy of kinds the models were not trained on.
Result: ``benchmarks/results/domain.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report  # noqa: E402

PHOTOS = ("astronaut", "brick", "camera", "chelsea", "checkerboard", "clock", "coffee", "coins", "colorwheel", "grass",
          "gravel", "horse", "hubble_deep_field", "logo", "microaneurysms", "moon", "page", "retina", "rocket", "text",
          "shepp_logan_phantom")
OTHER_MICROSCOPY = ("cell", "immunohistochemistry")


def skimage_pictures(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    import skimage.data as data

    out = {}
    for n in names:
        x = np.asarray(getattr(data, n)())
        if x.dtype == bool:
            x = x.astype(np.uint8) * 255
        if x.dtype.kind == "f":
            x = (np.clip(x, 0, 1) * 255).astype(np.uint8)
        out[n] = x
    return out


def generated_pictures(seed: int = 0) -> dict[str, np.ndarray]:
    """Noise, text, gradients and shapes (seeded)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for i in range(3):
        out[f"uniform-noise-{i}"] = rng.integers(0, 256, (256 + 64 * i, 320), dtype=np.uint8)
        out[f"gaussian-noise-{i}"] = np.clip(rng.normal(128, 40, (300, 300 + 50 * i)), 0, 255).astype(np.uint8)
        sp = np.full((256, 256), 128, np.uint8)
        m = rng.random(sp.shape)
        sp[m < 0.05] = 0
        sp[m > 0.95] = 255
        out[f"salt-pepper-{i}"] = sp
        out[f"colour-noise-{i}"] = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        img = Image.new("L", (400, 300), 255)
        d = ImageDraw.Draw(img)
        words = ["deepscope", "microscopy", "nucleus", "the quick brown fox", "12345", "lorem ipsum dolor"]
        for k in range(14):
            d.text((int(rng.integers(0, 300)), 20 * k), " ".join(rng.choice(words, 3)), fill=0)
        out[f"text-{i}"] = np.array(img)
        yy, xx = np.mgrid[0:256, 0:384]
        out[f"gradient-{i}"] = ((xx * (i + 1) + yy) % 256).astype(np.uint8)
        rect = np.zeros((300, 300, 3), np.uint8)
        for _ in range(12):
            r0, c0 = rng.integers(0, 250, 2)
            rect[r0:r0 + rng.integers(10, 60), c0:c0 + rng.integers(10, 60)] = rng.integers(0, 256, 3)
        out[f"rectangles-{i}"] = rect
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="nuclei,count-bbbc005")
    args = ap.parse_args(argv)
    import warnings

    from finalize import bbbc005_split, generalist_sets

    from deepscope.models import load_model

    warnings.simplefilter("ignore")
    ood = {**skimage_pictures(PHOTOS), **generated_pictures()}
    other = skimage_pictures(OTHER_MICROSCOPY)
    result: dict[str, object] = {"n_out_of_domain": len(ood)}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        model = load_model(name, device="cpu")
        if model.task == "segment":
            def verdict(im: np.ndarray, model=model) -> bool | None:
                return model.predict_image(im, return_info=True)[2].in_domain

            test = generalist_sets("test")
            ind = {k: [verdict(im) for im in v[0]] for k, v in test.items()}
        else:
            def verdict(im: np.ndarray, model=model) -> bool | None:
                from deepscope.errors import InputError

                try:
                    x = model.prepare(im)
                except InputError:  # colour: never a counter image (count sends it to instance counting)
                    return False
                return model.plugin.check_domain(model, x)

            ds, parts = bbbc005_split()
            ind = {"bbbc005": [verdict(ds.get_image(int(i))) for i in np.flatnonzero(parts == "test")]}
        ood_v = {k: verdict(v) for k, v in ood.items()}
        res = {
            "in_domain_accepted": {k: float(np.mean([v is not False for v in vs])) for k, vs in ind.items()},
            "in_domain_n": {k: len(vs) for k, vs in ind.items()},
            "out_of_domain_flagged": float(np.mean([v is False for v in ood_v.values()])),
            "out_of_domain_missed": sorted(k for k, v in ood_v.items() if v is not False),
            "other_microscopy": {k: verdict(v) for k, v in other.items()},
            "seconds": round(time.perf_counter() - t0, 1),
        }
        all_in = [v for vs in ind.values() for v in vs]
        res["in_domain_accepted_all"] = float(np.mean([v is not False for v in all_in]))
        result[name] = res
    report("domain", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
