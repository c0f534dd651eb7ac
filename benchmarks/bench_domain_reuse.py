"""The generalists' domain check from the segmentation pass against a separate window pass (issue 29).

    .venv/bin/python benchmarks/bench_domain_reuse.py [--models nuclei,nuclei-fast] [--n 5]

A generalist (``nuclei``, ``nuclei-fast``) may take its domain window from the network pass that segmented the
image instead of running the network again on the window (``features(..., seen)``); its checks were fitted on
separate passes. Since 2026-12-07 01:00 it does so only where that pass is the whole window (identical
features); ``results/domain_reuse.json`` holds the comparison of the withdrawn variant that cut the window from
any pass (BENCHMARKS.md). For every image this runs both (``features(model, x, scale, kept)`` and ``features(model, x, scale)``)
and compares the scores and verdicts: the held-out test images of every trained kind, 60 BBBC005 test fields
(every other one) and ``--n`` held-out pictures of each kind of ``benchmarks/bench_domain.py`` (2n of the hard
kinds), seeds never used for calibration. Result: ``benchmarks/results/domain_reuse.json``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import report, start  # noqa: E402


def compare(name: str, n: int) -> dict:
    from bench_domain import held_out_pictures
    from finalize import bbbc005_split, generalist_sets

    from deepscope.models import load_model
    from deepscope.tasks.segment.sizing import segment_generalist

    model = load_model(name, device="cpu")
    plugin, opts = model.plugin, model.options()
    cfg = plugin.generalist_config(model, options=opts)
    plugin.check_domain(model, plugin.prepare(model, np.zeros((64, 64), np.float32)), 1.0, opts)
    dm = model.runtime.domain

    def pair(im: np.ndarray) -> tuple[tuple[bool, float], tuple[bool, float], bool]:
        x = plugin.prepare(model, im)
        keep: dict = {}
        _, info = segment_generalist(x, lambda a: plugin.raw_outputs(model, a), mode=plugin.postprocess_mode,
                                     postprocess=opts.postprocess, config=cfg, keep=keep)
        separate = dm.check(plugin.features(model, x, info.scale))
        return separate, (dm.check(plugin.features(model, x, info.scale, keep)) if keep else separate), bool(keep)

    groups = {k: ims for k, (ims, _) in generalist_sets("test").items()}
    ds, parts = bbbc005_split()
    groups["bbbc005"] = [ds.get_image(int(i)) for i in np.flatnonzero(parts == "test")[::2]]
    groups.update({f"picture {k}": v for k, v in held_out_pictures(n).items()})
    from deepscope.predict.backends import backend_of

    out: dict = {"backend": backend_of(model)}
    changes = total = 0
    for k, ims in groups.items():
        res = [pair(im) for im in ims]
        old = np.array([r[0][0] for r in res])
        new = np.array([r[1][0] for r in res])
        diff = np.abs(np.array([r[0][1] for r in res]) - np.array([r[1][1] for r in res]))
        out[k] = {"n": len(ims), "reused": int(sum(r[2] for r in res)), "accepted_separate": float(old.mean()),
                  "accepted_reused": float(new.mean()), "verdict_changes": int((old != new).sum()),
                  "score_diff_median": float(np.median(diff)), "score_diff_max": float(diff.max())}
        print(name, k, out[k], flush=True)
        changes += out[k]["verdict_changes"]
        total += len(ims)
    out["images"], out["verdict_changes"] = total, changes
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="nuclei,nuclei-fast")
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args(argv)
    if not start("bbbc005", "dsb2018", "dsb2018_other"):
        return 0
    warnings.simplefilter("ignore")
    report("domain_reuse", {name: compare(name, args.n) for name in args.models.split(",")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
