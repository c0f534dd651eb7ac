"""Recipes of the shipped models: train every zoo model (several variants at once) on one machine.

    # on a GPU machine (the shipped models; about 8 minutes on one H100):
    PYTHONPATH=src python recipes/zoo.py train --data .gpu/data --out /tmp/zoo-run --pack OUT --device cuda --budget 420
    # the same at toy size on a CPU (what tests/recipes/test_zoo_recipe.py runs):
    PYTHONPATH=src python recipes/zoo.py train --data .gpu/data --out /tmp/zoo --device cpu --tiny

The data folder is made by ``recipes/pack_data.py`` from ``../shared/data`` (splits recorded
there: BBBC005 by field, DSB2018 by image, seed 0). Every variant runs in its own process with
its own seed and writes ``OUT/<variant>/`` (``model.safetensors`` + ``model.json`` card,
``metrics.jsonl``, ``log.txt``); the variants of one family are packed into ``OUT/<family>.tar``.
``recipes/finalize.py`` then calibrates, evaluates on the held-out test parts and installs
the chosen variants into ``src/deepscope/models/zoo``.

Synthetic data (cells-bbbc005 entirely; counting, deblurring and stain prediction in part) is
generated at the start with ``deepscope.data.synth.generate_field`` on all CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _pack  # noqa: E402

SYNTH_DIR_NAME = "synth"

# variant -> (family, function name, seed)
VARIANTS: dict[str, tuple[str, str, int]] = {
    "count-pct": ("count", "train_count", 1),
    "count-fix": ("count", "train_count", 2),
    "count-pct-synth": ("count", "train_count", 3),
    "count-pct-p4": ("count", "train_count", 11),
    "count-pct-p4-ft": ("count", "train_count", 14),
    "count-p4-dots-ft": ("count", "train_count", 15),
    "countnet-book": ("count", "train_countnet_book", 4),
    "nuclei-b8": ("nuclei", "train_nuclei", 5),
    "nuclei-b16": ("nuclei", "train_nuclei", 6),
    "nuclei-b8-ft": ("nuclei", "train_nuclei", 12),
    "nuclei-b16-ft": ("nuclei", "train_nuclei", 13),
    "nuclei-b8-rs": ("nuclei", "train_nuclei", 16),
    "cells-bbbc005": ("cells", "train_cells", 7),
    "deblur-bbbc005": ("deblur", "train_deblur", 8),
    "label-bbbc005-w2": ("label", "train_label", 9),
    "sr2x-bbbc005": ("sr", "train_sr", 10),
    # generalist nuclei (issue 15): all modalities, size estimation, flows vs distance
    "nuclei-flow-b32": ("nuclei-flow-b32", "train_generalist", 21),
    "nuclei-flow-b16": ("nuclei-flow-b16", "train_generalist", 22),
    "nuclei-dist-b16": ("nuclei-dist-b16", "train_generalist", 23),
    # warm restarts of the flow variants, each alone with its sibling on the GPU (no counters beside)
    "nuclei-flow-b32-ft": ("nuclei-flow-b32-ft", "train_generalist", 27),
    "nuclei-flow-b16-ft": ("nuclei-flow-b16-ft", "train_generalist", 28),
    # single-pass counters (issue 16): quarter-resolution pack, dot density targets, weight averaging
    "count-q-dots-b16": ("count-q", "train_count_q", 24),
    "count-q-dots-b32": ("count-q", "train_count_q", 25),
    "count-q-b16": ("count-q", "train_count_q", 26),
}


# ============================================================================ synthetic pool

def _synth_one(args: tuple[int, int, int, str]) -> str:
    i, seed, size_code, out = args
    from deepscope.data.synth import generate_field

    size = (520, 696) if size_code == 0 else (128, 160)
    rng = np.random.default_rng([seed, i])
    count = int(rng.integers(1, 101)) if size_code == 0 else int(rng.integers(1, 12))
    blur = int(rng.choice(np.arange(4, 49, 3)))
    f = generate_field(count, size=size, blurs=(1, blur), stains=(1, 2), seed=int(rng.integers(2**31)))
    np.savez(Path(out) / f"field_{i:05d}.npz", w1_f1=f.images[(1, 1)], w2_f1=f.images[(2, 1)],
             w1_fb=f.images[(1, blur)], w2_fb=f.images[(2, blur)], nuclei=f.nuclei, cells=f.cells,
             centroids=f.centroids, blur=blur, count=count)
    return str(i)


def make_synth_pool(out: Path, n: int, *, tiny: bool, workers: int) -> None:
    from multiprocessing import Pool

    out.mkdir(parents=True, exist_ok=True)
    todo = [(i, 20261126, 1 if tiny else 0, str(out)) for i in range(n) if not (out / f"field_{i:05d}.npz").exists()]
    with Pool(workers) as pool:
        for _ in pool.imap_unordered(_synth_one, todo, chunksize=4):
            pass


def load_synth(folder: Path, start: int, stop: int) -> list[dict[str, Any]]:
    """The pool's fields with index in [start, stop), in index order."""
    out = []
    for p in sorted(Path(folder).glob("field_*.npz")):
        if start <= int(p.stem.split("_")[1]) < stop:
            with np.load(p) as z:
                out.append({k: z[k] for k in z.files})
    return out


# ============================================================================ helpers

def _pct_norm(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((np.asarray(x, np.float32) - lo) / (hi - lo + 1e-6)).astype(np.float32)


def _pct(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(x, [1, 99.8])
    return float(lo), float(hi)


def _bin2(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = np.asarray(x[:h, :w], np.float32)
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _density(centroids: np.ndarray, shape: tuple[int, int], scale: float, sigma: float = 2.0,
             mode: str = "constant") -> np.ndarray:
    """Gaussian dots at ``centroids / scale``; ``mode="reflect"`` keeps every dot's mass inside the image."""
    from scipy.ndimage import gaussian_filter

    d = np.zeros(shape, np.float32)
    for r, c in np.asarray(centroids).reshape(-1, 2):
        rr, cc = int(r / scale), int(c / scale)
        if 0 <= rr < shape[0] and 0 <= cc < shape[1]:
            d[rr, cc] += 1.0
    return gaussian_filter(d, sigma, mode=mode)


def _config(args: argparse.Namespace, **kw: Any) -> Any:
    from deepscope.train import TrainConfig

    base = dict(epochs=10**6, device=args.device, time_budget=args.budget, clock="time", seed=args.seed,
                checkpoint_every=0, amp=args.amp)
    base.update(kw)
    if args.tiny:
        base.update(time_budget=None, clock="steps", epochs=2, steps_per_epoch=2)
    if args.budget_steps:
        base.update(time_budget=None, clock="steps", epochs=1, steps_per_epoch=args.budget_steps)
    return TrainConfig(**base)


def _card(variant: str, family: str, args: argparse.Namespace, extra: dict[str, Any]) -> dict[str, Any]:
    card = {"name": variant, "training": {"recipe": f"recipes/zoo.py train --only {variant} (data: "
                                                    "recipes/pack_data.py)", "seed": args.seed,
                                          "device": args.device, "budget_s": args.budget, "tiny": args.tiny}}
    card.update(extra)
    return card


def _finish(model: Any, run: Path, result: Any, t0: float, *, dtype: str = "float32") -> None:
    from deepscope.train.trainer import BEST

    if (run / BEST).exists():
        model.load_weights(run / BEST)
    with model.edit_card() as card:
        card.setdefault("training", {}).update(
            {"epochs_done": result.epochs_done, "steps_done": result.steps_done, "best_epoch": result.best_epoch,
             "best_score": result.best_score, "seconds": round(time.perf_counter() - t0, 1)})
        try:
            import torch

            if torch.cuda.is_available():
                card["training"]["hardware"] = torch.cuda.get_device_name(0)
        except Exception:  # noqa: BLE001 - informational only
            pass
        card["training"]["history_tail"] = list(result.history[-3:])
    model.save(run, dtype=dtype)


# ============================================================================ counting

def load_bbbc005_half(data: Path, tiny: bool) -> dict[str, np.ndarray]:
    d = {k: _pack.load(data, f"bbbc005_{k}") for k in ("half", "count", "blur", "stain", "p", "split", "field")}
    if tiny:
        keep = np.concatenate([np.flatnonzero(d["split"] == 0)[:24], np.flatnonzero(d["split"] == 1)[:8]])
        d = {k: v[keep] for k, v in d.items()}
    return d


def train_count(variant: str, args: argparse.Namespace, run: Path) -> None:
    from deepscope.models import ArchConfig, CountModel, InputSpec
    from deepscope.models.networks import build_network
    from deepscope.tasks.count.training import CountTask
    from deepscope.train import Trainer
    import torch

    t0 = time.perf_counter()
    d = load_bbbc005_half(Path(args.data), args.tiny)
    fixed = variant == "count-fix"
    spec = InputSpec(normalize="fixed", scale=255.0) if fixed else InputSpec(normalize="percentile", low=1, high=99.8)

    def norm(i: int) -> np.ndarray:
        x = d["half"][i].astype(np.float32)
        return x / 255.0 if fixed else _pct_norm(x, d["p"][i, 0], d["p"][i, 1])

    tr = np.flatnonzero(d["split"] == 0)
    va = np.flatnonzero(d["split"] == 1)
    imgs = [norm(i) for i in tr]
    counts = d["count"][tr].astype(np.float32)
    dens = None
    if variant.endswith("synth"):
        pool = load_synth(Path(args.synth), 0, 10**6)
        simgs, scounts, sdens = [], [], []
        for f in pool:
            for key in ("w1_f1", "w2_f1", "w1_fb", "w2_fb"):
                full = f[key]
                lo, hi = _pct(full)
                half = _bin2(full)
                simgs.append(_pct_norm(half, lo, hi))
                scounts.append(float(f["count"]))
                sdens.append(_density(f["centroids"], half.shape, 2.0))
        # real images carry no density maps: give them the synthetic-free loss by a separate task
        # mix: one task over real + synthetic, densities only where known (zeros weight via NaN mask)
        imgs = imgs + simgs
        counts = np.concatenate([counts, np.array(scounts, np.float32)])
        dens = [np.full(im.shape, np.nan, np.float32) for im in imgs[: len(tr)]] + sdens
    pool, base, depth = (4, 16, 3) if "p4" in variant else (2, 8, 4)
    if "dots" in variant:
        # pseudo dot annotations (recipes/pack_dots.py): density targets at the output resolution
        # (the half-size pack binned once more) for the images of fields whose dots match the count
        dots = _pack.load(Path(args.data), "bbbc005_dots")
        fields = d["field"]
        dens = []
        for i, im in zip(tr, imgs):
            shape = (im.shape[0] // 2, im.shape[1] // 2)
            pts = dots[dots[:, 0] == fields[i], 1:]
            dens.append(_density(pts, shape, 4.0, sigma=1.5, mode="reflect") if len(pts) else np.full(shape, np.nan, np.float32))
    arch = ArchConfig("unet", in_channels=1, out_channels=2, base=base, depth=depth, pool_input=pool)
    model = CountModel(arch, spec, card=_card(variant, "count", args, {
        "description": "Counts cells in BBBC005-like fluorescence images (any size): density U-Net on 2x-binned "
                       "input with a 95% interval.",
        "init_seed": args.seed}))
    device = torch.device(args.device)
    task = CountTask(imgs, counts, valid_images=[norm(i) for i in va], valid_counts=d["count"][va],
                     head="density", densities=dens, batch_size=16, device=device, jitter=0.1,
                     density_weight=0.25 if "dots" in variant else 1.0)
    # training network: the same weights without the input binning (data is binned already)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = build_network(ArchConfig("unet", 1, 2, base=base, depth=depth, pool_input=pool // 2))
    with torch.no_grad():
        net.head.bias.fill_(-7.0)
    finetune = variant.endswith("-ft")
    if finetune:  # continue a first run (same weights: the binning layer has no parameters)
        from safetensors.torch import load_file

        first = "count-pct-p4" if "dots" in variant else variant.removesuffix("-ft")
        init = Path(args.init) / first / "model.safetensors"
        net.load_state_dict(load_file(str(init)))
        model.update_card(training={**model.model_card.training, "initialised_from": f"{first} (first run)"})
    cfg = _config(args, batch_size=16, lr=3e-4 if finetune else 2e-3, weight_decay=1e-4, schedule="cosine",
                  warmup_steps=0 if finetune else 100, monitor="val_mae", mode="min")
    result = Trainer(net, task, cfg, run, progress=False).fit()
    model._net = build_network(arch)
    _finish(model, run, result, t0)


def train_countnet_book(variant: str, args: argparse.Namespace, run: Path) -> None:
    """The book's CountNet and recipe (L2, Adam 1e-3 x 0.9 every 250 steps, batch 100, 50 epochs), at half size."""
    from deepscope.models import ArchConfig, CountModel, InputSpec
    from deepscope.tasks.count.training import CountTask
    from deepscope.train import Trainer, TrainConfig
    import torch

    t0 = time.perf_counter()
    d = load_bbbc005_half(Path(args.data), args.tiny)
    tr = np.flatnonzero(d["split"] == 0)
    va = np.flatnonzero(d["split"] == 1)
    shape = tuple(d["half"].shape[1:])
    model = CountModel(ArchConfig("book-countnet", input_size=shape), InputSpec(normalize="fixed", scale=255.0),
                       card=_card(variant, "count", args, {
                           "description": "The book chapter's CountNet (for comparison), trained on 2x-binned "
                                          "BBBC005 images", "init_seed": args.seed}))
    net = model.net
    task = CountTask([d["half"][i] / 255.0 for i in tr], d["count"][tr], valid_images=[d["half"][i] / 255.0 for i in va],
                     valid_counts=d["count"][va], head="regress", batch_size=100, device=torch.device(args.device),
                     jitter=0.0)
    cfg = TrainConfig(epochs=2 if args.tiny else 50, steps_per_epoch=2 if args.tiny else None, batch_size=100,
                      optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="exponential", decay_rate=0.9,
                      decay_steps=250, grad_clip=None, amp="off", device=args.device, seed=args.seed,
                      monitor="val_mae", mode="min")
    result = Trainer(net, task, cfg, run, progress=False).fit()
    _finish(model, run, result, t0)


# ============================================================================ segmentation

def train_nuclei(variant: str, args: argparse.Namespace, run: Path) -> None:
    from deepscope.models import ArchConfig, InputSpec, SegmentModel
    from deepscope.tasks.segment.instances import PostprocessConfig
    from deepscope.tasks.segment.training import SegmentTask
    from deepscope.train import Trainer
    import torch

    t0 = time.perf_counter()
    data = Path(args.data)
    images = _pack.load_ragged(data, "dsb_images")
    labels = _pack.load_ragged(data, "dsb_labels")
    split = _pack.load(data, "dsb_split")
    if args.tiny:
        keep = np.concatenate([np.flatnonzero(split == 0)[:6], np.flatnonzero(split == 1)[:2]])
        images, labels, split = [images[i] for i in keep], [labels[i] for i in keep], split[keep]
    spec = InputSpec(normalize="percentile", low=1, high=99.8)
    norm = [spec.normalize_image(im)[..., None] if im.ndim == 2 else spec.normalize_image(im.mean(-1))[..., None]
            for im in images]
    base = 16 if "b16" in variant else 8
    arch = ArchConfig("unet", 1, 2, base=base, depth=4)
    finetune = variant.endswith("-ft")  # continue with zoom and gamma augmentation
    restart = variant.endswith("-rs")  # continue with the first run's augmentation (a warm restart)
    model = SegmentModel(arch, spec, card=_card(variant, "nuclei", args, {
        "description": "Fluorescence nuclei instance segmentation (U-Net: foreground + distance, seeded watershed), "
                       "trained on DSB2018 stage1 (grey fluorescence)", "init_seed": args.seed}))
    tr = np.flatnonzero(split == 0)
    va = np.flatnonzero(split == 1)
    pp = PostprocessConfig(fg_threshold=0.5, seed_threshold=0.5, min_size=8)
    if not (finetune or restart):
        va = va[:24]  # validation each epoch on 24 images (the full held-out evaluation runs after training)
    # fine-tuning continues a first run with zoom and gamma augmentation (objects of other sizes, dim objects)
    task = SegmentTask([norm[i] for i in tr], [labels[i].astype(np.int32) for i in tr], crop=64 if args.tiny else 256,
                       batch_size=4 if args.tiny else 16, valid_images=[norm[i] for i in va],
                       valid_labels=[labels[i].astype(np.int32) for i in va], postprocess=pp, stride=arch.stride,
                       device=torch.device(args.device),
                       samples_per_epoch=4096 if finetune else 1024 if restart else 2048, jitter=0.3,
                       scale_range=(0.6, 1.6) if finetune else None, gamma_range=(0.5, 2.0) if finetune else None)
    net = model.net
    if finetune or restart:
        first = variant.removesuffix("-ft").removesuffix("-rs")
        model.load_weights(Path(args.init) / first / "model.safetensors")
        model.update_card(training={**model.model_card.training, "initialised_from": f"{first} (first run, 420 s)"})
    cfg = _config(args, batch_size=16, lr=1e-3 if finetune else 5e-4 if restart else 3e-3, weight_decay=1e-4,
                  schedule="cosine", warmup_steps=50 if finetune else 20 if restart else 200, monitor="val_dsb",
                  mode="max")
    result = Trainer(net, task, cfg, run, progress=False).fit()
    _finish(model, run, result, t0)


def train_cells(variant: str, args: argparse.Namespace, run: Path) -> None:
    from deepscope.models import ArchConfig, InputSpec, SegmentModel
    from deepscope.tasks.segment.instances import PostprocessConfig
    from deepscope.tasks.segment.training import SegmentTask
    from deepscope.train import Trainer
    import torch

    t0 = time.perf_counter()
    pool = load_synth(Path(args.synth), 0, 10**6)
    n_valid = max(2, len(pool) // 20)
    spec = InputSpec(normalize="percentile", low=1, high=99.8)

    def items(fields: list[dict[str, Any]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        xs, ys = [], []
        for f in fields:
            for key, lab in (("w1_f1", "nuclei"), ("w1_fb", "nuclei"), ("w2_f1", "cells"), ("w2_fb", "cells")):
                xs.append(spec.normalize_image(f[key])[..., None])
                ys.append(f[lab].astype(np.int32))
        return xs, ys

    vx, vy = items(pool[:n_valid])
    tx, ty = items(pool[n_valid:])
    arch = ArchConfig("unet", 1, 2, base=16, depth=4, pool_input=2)
    model = SegmentModel(arch, spec, card=_card(variant, "cells", args, {
        "description": "Cell (w2 stain) and nucleus (w1 stain) instance segmentation for BBBC005-like images, "
                       "trained on deepscope's synthetic SIMCEP-style fields", "init_seed": args.seed}))
    model.update_output(overlap=160)
    pp = PostprocessConfig(fg_threshold=0.5, seed_threshold=0.5, min_size=30)
    task = SegmentTask(tx, ty, crop=64 if args.tiny else 256, batch_size=4 if args.tiny else 16,
                       valid_images=vx[:8], valid_labels=vy[:8], postprocess=pp, stride=arch.stride,
                       device=torch.device(args.device), samples_per_epoch=2048, jitter=0.3)
    cfg = _config(args, batch_size=16, lr=2e-3, weight_decay=1e-4, schedule="cosine", warmup_steps=200,
                  monitor="val_dsb", mode="max")
    result = Trainer(model.net, task, cfg, run, progress=False).fit()
    _finish(model, run, result, t0)


# ============================================================================ generalist nuclei

#: Object diameter (pixels) the generalist nuclei models work at (Cellpose's nuclei convention).
TARGET_DIAMETER = 17.0
#: Share of training crops per kind of image.
GROUP_WEIGHTS = {"fluo": 0.55, "he": 0.3, "brightfield": 0.15}


def load_generalist(data: Path, tiny: bool) -> dict[str, list[Any]]:
    """Development images of every modality with labels, kind and part (0 train, 1 valid)."""
    out: dict[str, list[Any]] = {"images": [], "labels": [], "group": [], "split": []}
    for prefix, group in (("dsb", "fluo"), ("he", "he"), ("bf", "brightfield")):
        images = _pack.load_ragged(data, f"{prefix}_images")
        labels = _pack.load_ragged(data, f"{prefix}_labels")
        split = _pack.load(data, f"{prefix}_split")
        idx = np.arange(len(images))
        if tiny:
            idx = np.concatenate([np.flatnonzero(split == 0)[:3], np.flatnonzero(split == 1)[:1]])
        for i in idx:
            out["images"].append(images[i])
            out["labels"].append(labels[i].astype(np.int32))
            out["group"].append(group)
            out["split"].append(int(split[i]))
    return out


def generalist_spec() -> Any:
    from deepscope.models import InputSpec

    return InputSpec(channels=3, colour="rgb", normalize="percentile", low=1, high=99.8)


def train_generalist(variant: str, args: argparse.Namespace, run: Path) -> None:
    from deepscope.models import ArchConfig, SegmentModel
    from deepscope.models.networks import build_network
    from deepscope.models.spec import prepare_image
    from deepscope.train import Trainer
    from deepscope.tasks.segment.training_generalist import DistanceSegmentTask, FlowAugment, FlowSegmentTask
    import torch

    t0 = time.perf_counter()
    d = load_generalist(Path(args.data), args.tiny)
    spec = generalist_spec()
    flows = "-flow-" in variant
    finetune = variant.endswith("-ft")
    base = 32 if variant.removesuffix("-ft").endswith("b32") else 16
    klass = FlowSegmentTask if flows else DistanceSegmentTask
    arch = ArchConfig("unet", 3, klass.out_channels, base=base, depth=4)
    prep = [prepare_image(im, spec) for im in d["images"]]
    split = np.array(d["split"])
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    task = klass([prep[i] for i in tr], [d["labels"][i] for i in tr], groups=[d["group"][i] for i in tr],
                 group_weights=GROUP_WEIGHTS, valid_images=[prep[i] for i in va],
                 valid_labels=[d["labels"][i] for i in va], valid_groups=[d["group"][i] for i in va],
                 target_diameter=TARGET_DIAMETER, crop=64 if args.tiny else 256,
                 batch_size=4 if args.tiny else 16, samples_per_epoch=64 if args.tiny else 16384,
                 stride=arch.stride, augment=FlowAugment(), device=torch.device(args.device))
    model = SegmentModel(arch, spec, card=_card(variant, "nuclei", args, {
        "description": "Generalist nuclei instance segmentation (fluorescence, brightfield, H&E; any object size): "
                       + ("Cellpose-style flow fields" if flows else "foreground + distance, seeded watershed")
                       + " with a per-pixel object-size map for rescaling, trained on DSB2018 stage1 (all modalities)",
        "init_seed": args.seed}))
    with model.edit_card() as card:
        card["output"].update({"mode": "flows" if flows else "distance", "target_diameter": TARGET_DIAMETER,
                               "postprocess": task.postprocess.to_dict(), "size_channel": True})
        card["training"].update({"augment": task.aug.to_dict(), "group_weights": GROUP_WEIGHTS,
                                 "n_train": {g: int(sum(d["group"][i] == g for i in tr)) for g in GROUP_WEIGHTS},
                                 "n_valid": {g: int(sum(d["group"][i] == g for i in va)) for g in GROUP_WEIGHTS}})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = build_network(arch)
    model._net = net
    if finetune:  # continue a first run (warm restart at a lower learning rate)
        first = variant.removesuffix("-ft")
        model.load_weights(Path(args.init) / first / "model.safetensors")
        model.update_card(training={**model.model_card.training,
                                    "initialised_from": f"{first} (first run, {args.init})"})
    # validation images have many sizes: cuDNN autotuning each new shape costs more than it saves
    torch.backends.cudnn.benchmark = False
    cfg = _config(args, batch_size=task.batch_size, lr=1e-3 if finetune else 2e-3, weight_decay=1e-4,
                  schedule="cosine", warmup_steps=5 if args.tiny else (50 if finetune else 300),
                  monitor="val_dsb", mode="max", ema=0.999)
    result = Trainer(net, task, cfg, run, progress=False).fit()
    _finish(model, run, result, t0, dtype="float16" if base >= 32 else "float32")


# ============================================================================ single-pass counters

def train_count_q(variant: str, args: argparse.Namespace, run: Path) -> None:
    """Density U-Net on the quarter-resolution pack (the shipped network bins 4x itself), with dot targets."""
    from deepscope.models import ArchConfig, CountModel, InputSpec
    from deepscope.models.networks import build_network
    from deepscope.tasks.count.training import CountTask
    from deepscope.train import Trainer
    import torch

    t0 = time.perf_counter()
    data = Path(args.data)
    d = {k: _pack.load(data, f"bbbc005_{k}") for k in ("quarter", "count", "blur", "stain", "p", "split", "field")}
    if args.tiny:
        keep = np.concatenate([np.flatnonzero(d["split"] == 0)[:24], np.flatnonzero(d["split"] == 1)[:8]])
        d = {k: v[keep] for k, v in d.items()}
    tr = np.flatnonzero(d["split"] == 0)
    va = np.flatnonzero(d["split"] == 1)

    def norm(i: int) -> np.ndarray:
        return _pct_norm(d["quarter"][i].astype(np.float32), d["p"][i, 0], d["p"][i, 1])

    imgs = [norm(i) for i in tr]
    dens = None
    if "dots" in variant:
        dots = _pack.load(data, "bbbc005_dots")
        dens = []
        for i, im in zip(tr, imgs):
            pts = dots[dots[:, 0] == d["field"][i], 1:]
            dens.append(_density(pts, im.shape, 4.0, sigma=1.5, mode="reflect") if len(pts)
                        else np.full(im.shape, np.nan, np.float32))
    base = 32 if variant.endswith("b32") else 16
    arch = ArchConfig("unet", in_channels=1, out_channels=2, base=base, depth=3, pool_input=4)
    model = CountModel(arch, InputSpec(normalize="percentile", low=1, high=99.8), card=_card(variant, "count", args, {
        "description": "Counts cells in BBBC005-like fluorescence images (any size) in one network pass: density "
                       "U-Net on 4x-binned input, trained with dot-annotation density targets, with a 95% interval.",
        "init_seed": args.seed}))
    task = CountTask(imgs, d["count"][tr].astype(np.float32), valid_images=[norm(i) for i in va],
                     valid_counts=d["count"][va], head="density", densities=dens, batch_size=16,
                     device=torch.device(args.device), jitter=0.1, density_weight=1.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = build_network(ArchConfig("unet", 1, 2, base=base, depth=3, pool_input=1))
    with torch.no_grad():
        net.head.bias.fill_(-7.0)
    # ~600 steps between validations (a pass over 951 images is only 60 steps on a GPU)
    cfg = _config(args, batch_size=16, lr=2e-3, weight_decay=1e-4, schedule="cosine", warmup_steps=100,
                  monitor="val_mae", mode="min", ema=0.998, steps_per_epoch=600)
    result = Trainer(net, task, cfg, run, progress=False).fit()
    model._net = build_network(arch)
    if "dots" in variant:
        model.update_card(training={**model.model_card.training,
                                    "dot_fields": int(len(np.unique(_pack.load(data, "bbbc005_dots")[:, 0])))})
    _finish(model, run, result, t0)


# ============================================================================ image-to-image

def _crops(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    crops = _pack.load(Path(args.data), "bbbc005_crops")
    meta = _pack.load(Path(args.data), "bbbc005_crops_meta")  # field, blur, stain, split, p_lo, p_hi
    if args.tiny:
        keep = np.flatnonzero(np.isin(meta[:, 0], np.unique(meta[:, 0])[:12]))
        crops, meta = crops[keep], meta[keep]
    return crops, meta


def _pairs(crops: np.ndarray, meta: np.ndarray, rule: str) -> dict[int, tuple[list, list]]:
    """(input, target) pairs by a metadata rule, normalised by the input image's full-size percentiles."""
    out: dict[int, tuple[list, list]] = {0: ([], []), 1: ([], [])}
    key = {(int(m[0]), int(m[1]), int(m[2])): i for i, m in enumerate(meta)}
    for i, m in enumerate(meta):
        field, blur, stain, split = (int(v) for v in m[:4])
        if rule == "deblur":
            if blur == 1 or (field, 1, stain) not in key:
                continue
            j = key[(field, 1, stain)]
        elif rule == "label":
            if stain != 1 or (field, blur, 2) not in key:
                continue
            j = key[(field, blur, 2)]
        else:
            raise ValueError(rule)
        lo, hi = float(m[4]), float(m[5])
        out[split][0].append(_pct_norm(crops[i], lo, hi))
        out[split][1].append(_pct_norm(crops[j], lo, hi))
    return out


def _synth_pairs(args: argparse.Namespace, rule: str, limit: int) -> tuple[list, list]:
    xs, ys = [], []
    for f in load_synth(Path(args.synth), 0, limit):
        for s in (1, 2):
            if rule == "deblur":
                x, y = f[f"w{s}_fb"], f[f"w{s}_f1"]
            else:
                if s == 2:
                    continue
                x, y = f["w1_fb"], f["w2_fb"]
            lo, hi = _pct(x)
            xs.append(_pct_norm(x, lo, hi))
            ys.append(_pct_norm(y, lo, hi))
    return xs, ys


def _train_restore(variant: str, args: argparse.Namespace, run: Path, rule: str, description: str,
                   *, synth_limit: int) -> None:
    from deepscope.models import ArchConfig, InputSpec, RestoreModel
    from deepscope.tasks.restore.training import RestoreTask
    from deepscope.train import Trainer
    import torch

    t0 = time.perf_counter()
    crops, meta = _crops(args)
    pairs = _pairs(crops, meta, rule)
    sx, sy = _synth_pairs(args, rule, synth_limit)
    tx, ty = pairs[0][0] + sx, pairs[0][1] + sy
    spec = InputSpec(normalize="percentile", low=1, high=99.8)
    arch = ArchConfig("unet", 1, 1, base=16, depth=4)
    model = RestoreModel(arch, spec, loss="l1+ssim", card=_card(variant, rule, args, {
        "description": description, "init_seed": args.seed}))
    model.card = {**model.card, "input_stats": _input_stats(pairs[0][0])}
    nv = 4 if args.tiny else 40
    task = RestoreTask(tx, ty, valid_inputs=pairs[1][0][:nv], valid_targets=pairs[1][1][:nv], loss="l1+ssim",
                       crop=64 if args.tiny else 192, batch_size=4 if args.tiny else 16, stride=arch.stride,
                       device=torch.device(args.device), samples_per_epoch=1024)
    cfg = _config(args, batch_size=16, lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_steps=200,
                  monitor="val_loss", mode="min")
    result = Trainer(model.net, task, cfg, run, progress=False).fit()
    model.update_card(training={**model.model_card.training, "n_real_pairs": len(pairs[0][0]),
                                "n_synthetic_pairs": len(sx)})
    _finish(model, run, result, t0)


def _input_stats(xs: list[np.ndarray]) -> dict[str, float]:
    from deepscope.models import input_stats

    return input_stats(xs)


def train_deblur(variant: str, args: argparse.Namespace, run: Path) -> None:
    _train_restore(variant, args, run, "deblur",
                   "Deblurring of BBBC005-like fluorescence images: any focus blur -> in focus (U-Net, L1+SSIM), "
                   "trained on real BBBC005 F23/F48 -> F1 pairs and synthetic pairs at every blur level",
                   synth_limit=10**6)


def train_label(variant: str, args: argparse.Namespace, run: Path) -> None:
    _train_restore(variant, args, run, "label",
                   "In-silico labelling for BBBC005-like images: predicts the cell-body stain (w2) from the "
                   "nuclear stain (w1) of the same field", synth_limit=10**6)


def train_sr(variant: str, args: argparse.Namespace, run: Path) -> None:
    from deepscope.models import ArchConfig, InputSpec, RestoreModel
    from deepscope.tasks.restore.training import RestoreTask
    from deepscope.train import Trainer
    import torch

    t0 = time.perf_counter()
    crops, meta = _crops(args)
    spec = InputSpec(normalize="percentile", low=1, high=99.8)
    data: dict[int, tuple[list, list]] = {0: ([], []), 1: ([], [])}
    for c, m in zip(crops, meta):
        if int(m[1]) != 1:
            continue
        lo, hi = float(m[4]), float(m[5])
        data[int(m[3])][0].append(_pct_norm(_bin2(c), lo, hi))
        data[int(m[3])][1].append(_pct_norm(c, lo, hi))
    arch = ArchConfig("unet", 1, 1, base=16, depth=4)
    model = RestoreModel(arch, spec, upscale=2, loss="l1", card=_card(variant, "sr", args, {
        "description": "2x super-resolution of in-focus BBBC005-like images (input bicubic-upsampled, U-Net "
                       "restores detail), trained on real F1 crops and their 2x2-binned versions",
        "init_seed": args.seed}))
    task = RestoreTask(data[0][0], data[0][1], valid_inputs=data[1][0][:40], valid_targets=data[1][1][:40],
                       loss="l1", upscale=2, crop=64 if args.tiny else 192, batch_size=4 if args.tiny else 16,
                       stride=arch.stride, device=torch.device(args.device), samples_per_epoch=1024)
    cfg = _config(args, batch_size=16, lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_steps=200,
                  monitor="val_loss", mode="min")
    result = Trainer(model.net, task, cfg, run, progress=False).fit()
    _finish(model, run, result, t0)


# ============================================================================ driver

def run_one(args: argparse.Namespace) -> int:
    variant = args.only
    family, fn, seed = VARIANTS[variant]
    args.seed = seed
    run = Path(args.out) / variant
    run.mkdir(parents=True, exist_ok=True)
    import logging

    logging.basicConfig(filename=run / "log.txt", level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        import torch

        import deepscope.tasks  # noqa: F401  (registers the task plugins when deepscope is not installed)

        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
        globals()[fn](variant, args, run)
    except Exception:  # noqa: BLE001 - report any failure of this variant and let the others finish
        (run / "error.txt").write_text(traceback.format_exc())
        print(f"[{variant}] FAILED\n{traceback.format_exc()}", flush=True)
        return 1
    print(f"[{variant}] done in {time.perf_counter() - T0:.0f}s", flush=True)
    return 0


T0 = time.perf_counter()


def train_all(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [v for v in (args.models.split(",") if args.models else VARIANTS)]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"unknown variant {v!r}; known: {sorted(VARIANTS)}")
    synth = Path(args.synth)
    if any(VARIANTS[v][1] in ("train_cells", "train_deblur", "train_label") or v.endswith("synth") for v in variants):
        t = time.perf_counter()
        make_synth_pool(synth, 8 if args.tiny else args.synth_fields, tiny=args.tiny,
                        workers=max(1, (os.cpu_count() or 2) - 1))
        print(f"synthetic pool ready in {time.perf_counter() - t:.0f}s", flush=True)
    procs = {}
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    for v in variants:
        cmd = [sys.executable, __file__, "one", "--only", v, "--data", args.data, "--out", str(out), "--device",
               args.device, "--budget", str(args.budget), "--synth", str(synth), "--amp", args.amp,
               "--init", args.init] + (
                   ["--tiny"] if args.tiny else [])
        procs[v] = subprocess.Popen(cmd, env=env)
    deadline = time.perf_counter() + args.budget + args.grace
    status = {}
    for v, p in procs.items():
        try:
            status[v] = p.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            p.kill()
            status[v] = "killed"
    families: dict[str, list[str]] = {}
    for v in variants:
        families.setdefault(VARIANTS[v][0], []).append(v)
    pack = Path(args.pack) if args.pack else out
    pack.mkdir(parents=True, exist_ok=True)
    for fam, vs in families.items():
        with tarfile.open(pack / f"{fam}.tar", "w") as tar:
            for v in vs:
                d = out / v
                for name in ("model.safetensors", "model.json", "metrics.jsonl", "log.txt", "error.txt",
                             "train_config.json"):
                    if (d / name).exists():
                        tar.add(d / name, arcname=f"{v}/{name}")
    summary = {v: {"status": status[v], "last": _last_metrics(out / v)} for v in variants}
    (pack / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, indent=1, default=str), flush=True)
    return 0


def _last_metrics(run: Path) -> Any:
    p = run / "metrics.jsonl"
    if not p.exists():
        return None
    lines = p.read_text().strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["train", "one"])
    ap.add_argument("--data", default=str(HERE.parent / ".gpu" / "data"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=420.0, help="training seconds per variant")
    ap.add_argument("--grace", type=float, default=90.0, help="seconds after the budget before stragglers are killed")
    ap.add_argument("--models", default="", help="comma-separated variants (default: all)")
    ap.add_argument("--only", default="")
    ap.add_argument("--pack", default="", help="folder for the <family>.tar archives (default: --out)")
    ap.add_argument("--init", default="", help="folder of first-run models that -ft variants continue from")
    ap.add_argument("--synth", default="/tmp/deepscope-synth")
    ap.add_argument("--synth-fields", type=int, default=400)
    ap.add_argument("--tiny", action="store_true", help="toy sizes, for a CPU check of the recipe")
    ap.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"])
    ap.add_argument("--budget-steps", type=int, default=0, help="train this many steps instead of a time budget")
    args = ap.parse_args(argv)
    args.seed = 0
    return run_one(args) if args.command == "one" else train_all(args)


if __name__ == "__main__":
    sys.exit(main())
