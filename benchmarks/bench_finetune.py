"""Fine-tuning a shipped model on a few annotated images of a kind it handles badly (issue 20).

    .venv/bin/python benchmarks/bench_finetune.py [--budget 240] [--skip-count] [--skip-segment]
    .venv/bin/python benchmarks/bench_finetune.py --he      # issue 31: 10 H&E tiles, scored on the others

Segmentation: ``nuclei`` on rods-and-cocci scenes with long, thin, touching rods
(``generate_two_class(60, gap=0, rod_length=(30, 60), rod_width=(4, 6))``, 256 x 256), a shape of
object the generalist never saw. 10 annotated scenes (8 to train, 2 to validate, split by image) are
fine-tuned on for at most ``--budget`` seconds of this CPU with the fine-tuning defaults
(``FINE_TUNE_DEFAULTS``); F1 @ IoU 0.5 is measured on 20 other scenes (other seeds) before and after,
and on the shipped model's own validation images (DSB2018 + H&E + brightfield validation parts of
``../shared/data``; needs the shared data) to see what the fine-tune costs elsewhere. Two ways:
*substitute* (only the 10 new images are trained on: what a user without the parent's training data
does) and *add* (beside them, 256 x 256 crops of 30 training images of the parent's kinds, from the
training parts of the same development sets: 16 fluorescence, 10 H&E, 4 brightfield, 24 to train and
6 to validate with the 2 new ones; never the validation images the cost is measured on).

Counting: ``count-bbbc005`` on BBBC005-like fields whose nuclei and cells are ~2x larger in area
(``nucleus_area=3000``, ``cell_area=7500``), 10 annotated fields (8 + 2) fine-tuned on for at most
``--budget`` seconds; MAE on 20 other fields before and after.

Result: ``benchmarks/results/finetune.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "recipes"))
from _util import SHARED, report  # noqa: E402

ROD_SCENE = {"gap": 0, "rod_length": (30.0, 60.0), "rod_width": (4.0, 6.0)}
BIG_CELLS = {"nucleus_area": 3000.0, "cell_area": 7500.0}


def rod_scenes(seeds: range) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from deepscope.data.synth.two_class import generate_two_class

    scenes = [generate_two_class(60, size=(256, 256), seed=s, **ROD_SCENE) for s in seeds]  # type: ignore[arg-type]
    return [s.image for s in scenes], [s.labels for s in scenes]


def big_fields(seeds: range) -> tuple[list[np.ndarray], list[float]]:
    from deepscope.data.synth.cells import generate_field

    rng = np.random.default_rng(seeds.start)
    counts = [int(c) for c in rng.integers(10, 60, len(seeds))]
    fields = [generate_field(n, seed=s, blurs=(1,), stains=(1,), **BIG_CELLS) for n, s in zip(counts, seeds)]
    return [f.images[(1, 1)] for f in fields], [float(n) for n in counts]


def f1(model, images, labels) -> float:  # type: ignore[no-untyped-def]
    from deepscope.evaluate import match_instances

    return float(np.mean([match_instances(lab, model.predict_image(im)).f1 for im, lab in zip(images, labels)]))


def fine_tune(model, train, valid, run: Path, budget: float) -> dict:  # type: ignore[no-untyped-def]
    from deepscope.train.runs import fit_model, resolve_train_config

    cfg = resolve_train_config(model, {"time_budget": budget, "device": "cpu"}, has_valid=True, fine_tune=True)
    t = time.perf_counter()
    res = fit_model(model, train, valid, run_dir=run, config=cfg, fine_tune=True, progress=False)
    return {"seconds_training": round(res.seconds, 1), "seconds_total": round(time.perf_counter() - t, 1),
            "epochs": res.epochs_done, "best_epoch": res.best_epoch, "best_score": res.best_score}


def parent_crops(n: dict[str, int], size: int = 256, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random crops of training images of the parent's kinds (the development sets' training parts)."""
    from finalize import generalist_sets

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for kind, (ims, labs) in generalist_sets("train").items():
        for i in rng.permutation(len(ims))[:n.get(kind, 0)]:
            im, lab = ims[int(i)], labs[int(i)]
            r = int(rng.integers(0, max(1, im.shape[0] - size + 1)))
            c = int(rng.integers(0, max(1, im.shape[1] - size + 1)))
            xs.append(im[r:r + size, c:c + size])
            ys.append(lab[r:r + size, c:c + size])
    order = rng.permutation(len(xs))
    return [xs[int(i)] for i in order], [ys[int(i)] for i in order]


def segment_part(budget: float, tmp: Path, modes: tuple[str, ...]) -> dict:
    from deepscope.data import ImageDataset
    from deepscope.models import load_model

    x, y = rod_scenes(range(1000, 1010))
    test_x, test_y = rod_scenes(range(2000, 2020))
    model = load_model("nuclei", device="cpu")
    out: dict = {"kind": f"rods-and-cocci, {ROD_SCENE}", "n_train": 8, "n_valid": 2, "n_test": 20,
                 "shipped_f1_test": f1(model, test_x, test_y)}
    own = None
    if (SHARED / "dsb2018").exists():
        from finalize import generalist_sets

        own = [(im, lab) for ims, labs in generalist_sets("valid").values() for im, lab in zip(ims, labs)]
        out["shipped_f1_own_valid"] = f1(model, [a for a, _ in own], [b for _, b in own])
        out["own_valid_n"] = len(own)
    for mode in modes:
        if mode == "add" and own is None:
            continue
        tx, ty, vx, vy = list(x[:8]), list(y[:8]), list(x[8:]), list(y[8:])
        if mode == "add":
            px, py = parent_crops({"fluorescence": 16, "he": 10, "brightfield": 4})
            tx, ty, vx, vy = tx + px[:24], ty + py[:24], vx + px[24:], vy + py[24:]
        model = load_model("nuclei", device="cpu")
        res: dict = {"n_train_images": len(tx), "n_valid_images": len(vx)}
        res["fine_tune"] = fine_tune(model, ImageDataset(tx, y=ty, label_kind="mask"),
                                     ImageDataset(vx, y=vy, label_kind="mask"), tmp / f"seg-{mode}", budget)
        tuned = load_model(tmp / f"seg-{mode}", device="cpu")
        res["fine_tuned_f1_test"] = f1(tuned, test_x, test_y)
        res["lift_f1_test"] = res["fine_tuned_f1_test"] - out["shipped_f1_test"]
        if own is not None:
            res["fine_tuned_f1_own_valid"] = f1(tuned, [a for a, _ in own], [b for _, b in own])
            res["loss_f1_own_valid"] = out["shipped_f1_own_valid"] - res["fine_tuned_f1_own_valid"]
        out[mode] = res
    return out


def he_part(budget: float, tmp: Path, draws: int = 3) -> dict:
    """Issue 31: ``nuclei`` fine-tuned on 10 H&E tiles it never trained on, scored on the other H&E tiles.

    The 10 tiles are drawn from the held-out (validation + test) H&E tiles of the development split, split
    7 to train and 3 to validate as ``deepscope train segment --init nuclei`` does below 30 images, with the
    defaults (``FINE_TUNE_DEFAULTS``, the parent guard on). F1 @ 0.5 before and after on the remaining
    held-out H&E tiles (never seen by either model) and on the parent's own H&E training tiles."""
    from finalize import generalist_sets

    from deepscope.data import ImageDataset
    from deepscope.models import load_model

    held = [(im, lab) for part in ("valid", "test") for im, lab in zip(*generalist_sets(part)["he"])]
    own = list(zip(*generalist_sets("train")["he"]))
    parent = load_model("nuclei", device="cpu")
    out: dict = {"n_held_out": len(held), "n_parent_training_tiles": len(own), "budget_s": budget, "draws": []}
    parent_own = f1(parent, [a for a, _ in own], [b for _, b in own])
    for d in range(draws):
        order = np.random.default_rng(d).permutation(len(held))
        tune, others = [held[int(i)] for i in order[:10]], [held[int(i)] for i in order[10:]]
        model = load_model("nuclei", device="cpu")
        run = tmp / f"he-{d}"
        res: dict = {"seed": d, "fine_tune": fine_tune(
            model, ImageDataset([a for a, _ in tune[:7]], y=[b for _, b in tune[:7]], label_kind="mask"),
            ImageDataset([a for a, _ in tune[7:]], y=[b for _, b in tune[7:]], label_kind="mask"), run, budget)}
        card = load_model(run, device="cpu")
        res["guard"] = dict(card.model_card.training.get("fine_tune") or {})  # a read-only view: JSON needs a dict
        ox, oy = [a for a, _ in others], [b for _, b in others]
        res["n_others"] = len(others)
        res["parent_f1_others"] = f1(parent, ox, oy)
        res["fine_tuned_f1_others"] = f1(card, ox, oy)
        res["parent_f1_own_training"] = parent_own
        res["fine_tuned_f1_own_training"] = f1(card, [a for a, _ in own], [b for _, b in own])
        res["never_below_parent"] = bool(res["fine_tuned_f1_others"] >= res["parent_f1_others"] - 0.005)
        out["draws"].append(res)
        print(f"H&E draw {d}: kept {res['guard'] and res['guard'].get('kept')}, others F1 parent "
              f"{res['parent_f1_others']:.3f} -> {res['fine_tuned_f1_others']:.3f}", flush=True)
    out["never_below_parent_all"] = all(r["never_below_parent"] for r in out["draws"])
    return out


def count_part(budget: float, tmp: Path) -> dict:
    from deepscope.data import ImageDataset
    from deepscope.models import load_model

    x, y = big_fields(range(3000, 3010))
    test_x, test_y = big_fields(range(4000, 4020))
    model = load_model("count-bbbc005", device="cpu")

    def mae(m) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
        res = m.count_images(test_x)
        methods = {k: sum(r.method == k for r in res) for k in sorted({r.method for r in res})}
        return float(np.mean([abs(r.count - t) for r, t in zip(res, test_y)])), methods

    out: dict = {"kind": f"BBBC005-like fields, {BIG_CELLS}", "n_train": 8, "n_valid": 2, "n_test": 20}
    out["shipped_mae_test"], out["shipped_methods"] = mae(model)
    train = ImageDataset(x[:8], y=np.array(y[:8]), label_kind="value")
    valid = ImageDataset(x[8:], y=np.array(y[8:]), label_kind="value")
    out["fine_tune"] = fine_tune(model, train, valid, tmp / "count", budget)
    tuned = load_model(tmp / "count", device="cpu")
    out["fine_tuned_mae_test"], out["fine_tuned_methods"] = mae(tuned)
    out["mae_ratio"] = out["fine_tuned_mae_test"] / max(out["shipped_mae_test"], 1e-9)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=240.0, help="seconds of training per fine-tune")
    ap.add_argument("--skip-count", action="store_true")
    ap.add_argument("--skip-segment", action="store_true")
    ap.add_argument("--he", action="store_true", help="only the H&E fine-tune of issue 31 (needs the shared data)")
    ap.add_argument("--he-budget", type=float, default=180.0, help="seconds of training per H&E fine-tune")
    ap.add_argument("--modes", default="substitute,add", help="segmentation: substitute, add or both")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    result: dict = {"budget_s": args.budget}
    with tempfile.TemporaryDirectory() as tmp:
        if args.he:
            result = {"he": he_part(args.he_budget, Path(tmp))}
            report("finetune_he", result)
            return 0
        if not args.skip_segment:
            result["segment"] = segment_part(args.budget, Path(tmp), tuple(args.modes.split(",")))
        if not args.skip_count:
            result["count"] = count_part(args.budget, Path(tmp))
    report("finetune", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
