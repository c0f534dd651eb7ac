"""Finalise trained zoo variants: calibrate on the validation parts, evaluate on the test parts, install.

    .venv/bin/python recipes/finalize.py --runs .gpu/run1 [--only count-bbbc005,nuclei,...]
    .venv/bin/python recipes/finalize.py --only nuclei --refit-domain   # the installed model's domain check only
    .venv/bin/python recipes/finalize.py --only count-bbbc005 --refit-intervals   # the hybrid interval only
    .venv/bin/python recipes/finalize.py --only count-bbbc005 --tta transpose      # its TTA, rules recalibrated
    .venv/bin/python recipes/finalize.py --only cells-bbbc005,count-bbbc005,nuclei --int8   # the int8 networks only

``--int8`` builds a model's int8 network (calibrated on training images), then runs float and int8 on the
model's validation images and records both in the card's ``int8.agreement``; ``int8.cpu_default`` (what
``--backend auto`` follows) is true only where int8 stays within 0.005 F1@0.5 / 0.05 count MAE of float.
A counter's hybrid segmenter runs on the counter's backend, so build ``cells-bbbc005`` before ``count-bbbc005``.

For each shipped model this script takes the chosen variant from the training run folder
(``recipes/zoo.py``), then on this machine (CPU):
- count-bbbc005: split-conformal calibration of the 95% interval on the BBBC005 validation fields;
- nuclei: tunes the post-processing on the development validation images and fits the domain check
  (feature ranges, and a picture check against generated non-microscopy pictures: CPU, ~11 min);
- cells-bbbc005: tunes the thresholds on synthetic validation fields (no real masks exist);
- restoration models: records the input statistics used for the modality warning;
and evaluates each on held-out data (BBBC005 test fields, DSB2018 test images, fresh synthetic fields),
writes the figures into the model card (``metrics``) and installs weights + card into
``src/deepscope/models/zoo/<name>.{safetensors,json}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from pack_data import bbbc005_split, dsb_split, other_split  # noqa: E402

ROOT = HERE.parent
ZOO = ROOT / "src" / "deepscope" / "models" / "zoo"

#: shipped name -> variant folder in the run
CHOICES = {
    "count-bbbc005": "count-q-b16",
    "nuclei": "nuclei-flow-b16-ft",
    # the CPU-trained student (recipes/accumulate.py nuclei-student-b8 ... --export DIR --force, then --runs DIR)
    "nuclei-fast": "nuclei-student-b8",
    "nuclei-fluo": "nuclei-b8",
    "cells-bbbc005": "cells-bbbc005",
    "deblur-bbbc005": "deblur-bbbc005",
    "label-bbbc005-w2": "label-bbbc005-w2",
    "sr2x-bbbc005": "sr2x-bbbc005",
}

SPLIT_NOTE = {
    "bbbc005": "GroupSplitter(by='field') 80/10/10 seed 0 of ../shared/data/bbbc005 (recipes/pack_data.py)",
    "dsb2018": "RandomSplitter 80/10/10 seed 0 of ../shared/data/dsb2018 (recipes/pack_data.py)",
    "dsb2018_other": ("../shared/data/dsb2018_other split by tissue section: H&E tiles grouped by stain appearance "
                      "(deepscope.data.splitters.appearance_groups), GroupSplitter 70/15/15 (H&E seed 6, brightfield "
                      "seed 0; recipes/pack_data.py)"),
}

#: The kinds of image of the generalist nuclei models, as named in metrics.
KINDS = ("fluorescence", "he", "brightfield")


def _round(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_round(v) for v in d]
    if isinstance(d, (float, np.floating)):
        return round(float(d), 4)
    if isinstance(d, np.integer):
        return int(d)
    return d


# ============================================================================ evaluation helpers (also used by benchmarks)

def count_eval(model: Any, part: str = "test", *, tta: str | None = None, by_count: bool = False) -> dict[str, Any]:
    """Count metrics of a count model on a BBBC005 part, overall and per blur/stain (and, with ``by_count``,
    per third of the count range: ``count=1-33``, ``34-66``, ``67-100``)."""
    from deepscope.evaluate import count_metrics

    ds, parts = bbbc005_split()
    idx = np.flatnonzero(parts == part)
    imgs = [ds.get_image(int(i)) for i in idx]
    res = model.count_images(imgs, tta=tta) if tta else model.count_images(imgs)
    pred = np.array([r.count for r in res])
    lo = np.array([r.low for r in res])
    hi = np.array([r.high for r in res])
    md = ds.metadata.iloc[idx].reset_index(drop=True)
    strata = md[["blur", "stain"]].copy()
    if by_count:
        strata["count"] = pd.cut(ds.y[idx], [0, 33.5, 66.5, 1e9], labels=["1-33", "34-66", "67-100"]).astype(str)
    table = count_metrics(ds.y[idx], pred, low=lo, high=hi, strata=strata)
    return {"table": table, "pred": pred, "true": ds.y[idx].astype(float), "metadata": md}


def table_to_dict(table: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, row in table.iterrows():
        key = "overall" if row["stratum"] in ("overall", "all") else \
            f"{row['stratum']}={row['value']}"
        out[key] = {k: row[k] for k in table.columns if k not in ("stratum", "value")}
    return out


def dsb_eval(model: Any, part: str = "test", *, tta: str = "none") -> dict[str, Any]:
    """Instance metrics of a segmentation model on a DSB2018 part."""
    from deepscope.evaluate import match_instances

    ds, parts = dsb_split()
    idx = np.flatnonzero(parts == part)
    rs = []
    for i in idx:
        pred = model.predict_image(ds.get_image(int(i)), tta=tta)
        rs.append(match_instances(ds.get_label(int(i)), pred))
    return instance_summary(rs)


def instance_summary(rs: list[Any]) -> dict[str, Any]:
    th = rs[0].thresholds
    tp = np.sum([r.tp for r in rs], 0)
    fp = np.sum([r.fp for r in rs], 0)
    fn = np.sum([r.fn for r in rs], 0)
    k5, k9 = int(np.argmin(np.abs(th - 0.5))), int(np.argmin(np.abs(th - 0.9)))
    return {
        "n_images": len(rs), "n_true": int(sum(r.n_true for r in rs)), "n_pred": int(sum(r.n_pred for r in rs)),
        "dsb_score": float(np.mean([r.mean_ap for r in rs])),
        "f1@0.5_mean": float(np.mean([r.f1[k5] for r in rs])),
        "f1@0.5_pooled": float(2 * tp[k5] / max(1, 2 * tp[k5] + fp[k5] + fn[k5])),
        "f1@0.75_pooled": float(2 * tp[int(np.argmin(np.abs(th - 0.75)))] / max(1, 2 * tp[int(np.argmin(np.abs(th - 0.75)))]
                                                                                + fp[int(np.argmin(np.abs(th - 0.75)))]
                                                                                + fn[int(np.argmin(np.abs(th - 0.75)))])),
        "f1@0.9_mean": float(np.mean([r.f1[k9] for r in rs])),
        "f1@0.9_pooled": float(2 * tp[k9] / max(1, 2 * tp[k9] + fp[k9] + fn[k9])),
        "pq@0.5_mean": float(np.mean([r.pq[k5] for r in rs])),
    }


def generalist_sets(part: str) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Images and labels of one part of every development set, by kind (fluorescence, H&E, brightfield)."""
    out: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    ds, parts = dsb_split()
    idx = np.flatnonzero(parts == part)
    out["fluorescence"] = ([ds.get_image(int(i)) for i in idx], [ds.get_label(int(i)) for i in idx])
    ods, oparts, kind, _ = other_split()
    for k in ("he", "brightfield"):
        idx = np.flatnonzero((oparts == part) & (kind == k))
        out[k] = ([ods.get_image(int(i)) for i in idx], [ods.get_label(int(i)) for i in idx])
    return out


def generalist_eval(model: Any, sets: dict[str, tuple[list[np.ndarray], list[np.ndarray]]], *,
                    tta: str = "none") -> dict[str, Any]:
    """Instance metrics per kind, with the diameter error and the domain verdicts (default options)."""
    from deepscope.evaluate import match_instances
    from deepscope.tasks.segment.flows import object_diameters

    out: dict[str, Any] = {}
    for kind, (images, labels) in sets.items():
        rs, derr, ind = [], [], []
        for im, lab in zip(images, labels):
            pred, info, dom = model.predict_image(im, tta=tta, return_info=True)
            rs.append(match_instances(lab, pred))
            d = float(np.median(list(object_diameters(lab).values())))
            derr.append(abs(np.log(info.diameter / d)))
            ind.append(dom.in_domain)
        if not rs:
            continue
        res = instance_summary(rs)
        res["diameter_error_median"] = float(np.exp(np.median(derr)) - 1)
        res["in_domain_share"] = float(np.mean([v is not False for v in ind]))
        out[kind] = res
    return out


def finalize_generalist(model: Any) -> None:
    """Tune the post-processing and fit the domain check on the development sets; evaluate on their test parts.

    The variant ``nuclei-flow-b16-ft`` was chosen over ``nuclei-flow-b32-ft`` (same recipe, base 32):
    after the same tuning, base 32 scored within 0.005 of it on every kind of validation image
    (fluorescence DSB 0.593 vs 0.591) at three times the CPU time, and over the distance-map
    representation (``nuclei-dist-b16``), which trailed on every kind during training.
    """
    plugin = model.plugin
    valid = generalist_sets("valid")
    train = generalist_sets("train")
    vi = [im for k in KINDS for im in valid[k][0]]
    vl = [lab for k in KINDS for lab in valid[k][1]]
    grid = {"prob_threshold": (0.35, 0.4, 0.45, 0.5), "min_size": (12, 24, 36)}
    pp = plugin.tune_postprocess(model, vi, vl, grid=grid)
    model.update_output(postprocess_tuned_on=f"development validation images ({len(vi)}: "
                        + ", ".join(f"{len(valid[k][0])} {k}" for k in KINDS) + "), mean DSB score")
    fit_generalist_domain(model, train, valid)
    metrics = {"test": generalist_eval(model, generalist_sets("test")), "valid": generalist_eval(model, valid)}
    with model.edit_card() as card:
        card["metrics"] = metrics
        card["evaluation"] = {"fluorescence": SPLIT_NOTE["dsb2018"], "he+brightfield": SPLIT_NOTE["dsb2018_other"]}
        card["training_data"] = {
            "modalities": {"fluorescence": len(train["fluorescence"][0]), "he": len(train["he"][0]),
                           "brightfield": len(train["brightfield"][0])},
            "object_diameters": "about 8 to 100 pixels through size estimation and rescaling (trained at 17 px with "
                                "zoom 0.25-2.5)",
            "sources": "DSB2018 stage1 (BBBC038v1): ../shared/data/dsb2018 and dsb2018_other"}
        card["description"] = (
            "Generalist nuclei instance segmentation for fluorescence, brightfield "
            "and H&E images (grey or RGB, any object size): U-Net (base " + str(model.arch.base) + ") predicting "
            "Cellpose-style flow fields and an object-size map; estimates each image's nucleus diameter and "
            "rescales to 17 px; says when an image looks unlike its training images (in_domain)")
        if model.name == "nuclei-fast":
            t = card.get("training") or {}
            card["description"] = (
                "The fast generalist: nuclei's outputs distilled into a quarter-size network on the CPU (teacher "
                f"'{t.get('teacher', 'nuclei')}', {t.get('step', '?')} steps), ~2.7x faster a pass and a little less "
                "accurate (the metrics below; nuclei's are on its own card). " + card["description"])
            card["training_data"] = {**card["training_data"], "sources": (
                "the teacher's outputs on the training crops of DSB2018 stage1 (BBBC038v1: ../shared/data/dsb2018 and "
                "dsb2018_other); validated against their true labels")}
    print("postprocess", pp)


#: Kinds of non-microscopy picture drawn more often for the picture check (the hardest to tell apart).
HARD_KINDS = ("text-dark", "text-light", "photo-grey", "photo-colour")


def unfamiliar_pictures(photos: tuple[str, ...], *, n: int, n_hard: int, base: int) -> dict[str, list[np.ndarray]]:
    """Non-microscopy pictures by kind (:func:`deepscope.data.synth.generate_unfamiliar`): ``n`` of each
    kind (``n_hard`` of :data:`HARD_KINDS`), seeds ``base + 1000 * kind index + i``, sides drawn
    log-uniformly in 160-800 pixels, photographs only from ``photos``."""
    from deepscope.data.synth import UNFAMILIAR_KINDS, generate_unfamiliar

    out: dict[str, list[np.ndarray]] = {}
    for ki, kind in enumerate(UNFAMILIAR_KINDS):
        for i in range(n_hard if kind in HARD_KINDS else n):
            seed = base + 1000 * ki + i
            rng = np.random.default_rng(seed)
            size = tuple(int(np.exp(rng.uniform(np.log(160), np.log(800)))) for _ in range(2))
            out.setdefault(kind, []).append(generate_unfamiliar(kind, seed, size, photos=photos))
    return out


def crops(images: list[np.ndarray], reps: int, seed: int) -> list[np.ndarray]:
    """``reps`` random crops (40-100% of each side) of each image, rescaled by 0.7-1.5 (seeded)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for im in images:
        for _ in range(reps):
            h, w = im.shape[:2]
            f = rng.uniform(0.4, 1.0)
            ch, cw = min(h, max(64, int(h * f))), min(w, max(64, int(w * f)))
            r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            c = np.ascontiguousarray(im[r0:r0 + ch, c0:c0 + cw])
            s = rng.uniform(0.7, 1.5)
            out.append(np.asarray(Image.fromarray(c).resize((max(32, int(cw * s)), max(32, int(ch * s))),
                                                            Image.BILINEAR)))
    return out


def bbbc005_sample(part: str, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` BBBC005 images of one part (both stains, every blur), chosen at random (seeded)."""
    ds, parts = bbbc005_split()
    idx = np.flatnonzero(parts == part)
    idx = np.sort(np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False))
    return [ds.get_image(int(i)) for i in idx]


def finalize_picture_check(model: Any) -> None:
    """Refit the generalist's domain check: the feature ranges as before (training images, threshold on
    the validation images) and a picture check against generated non-microscopy pictures.

    Positives: the development sets' training images by kind, 1 / 3 / 8 random crops of each
    fluorescence / H&E / brightfield training image (more variety for the small kinds) and 120
    BBBC005 training fields; threshold on the validation images (53) and 120 BBBC005 validation
    fields, keeping >= 97% of each kind. Negatives: :func:`unfamiliar_pictures` with the calibration
    half of the photographs (``CALIBRATION_PHOTOS``), 30 of each kind and 100 of :data:`HARD_KINDS`.
    The held-out half and other seeds are for ``benchmarks/bench_domain.py``.
    """
    train, valid = generalist_sets("train"), generalist_sets("valid")
    fit_generalist_domain(model, train, valid)
    model.update_card(metrics={**dict(model.card.get("metrics") or {}),
                               "test": generalist_eval(model, generalist_sets("test")),
                               "valid": generalist_eval(model, valid)})


def fit_generalist_domain(model: Any, train: dict[str, Any], valid: dict[str, Any]) -> None:
    """The generalist's domain check: feature ranges and the picture check (:func:`finalize_picture_check`)."""
    from deepscope.data.synth import CALIBRATION_PHOTOS

    plugin = model.plugin
    ti = [im for k in KINDS for im in train[k][0]]
    vi = [im for k in KINDS for im in valid[k][0]]
    plugin.fit_domain_check(model, ti, vi, calibrated_on=(
        f"feature ranges (1st-99th percentile per kind) of the {len(ti)} training images; threshold: 99th "
        f"percentile of the scores of the {len(vi)} validation images x 1.25"))
    reps = {"fluorescence": 1, "he": 3, "brightfield": 8}
    pos = {k: train[k][0] + crops(train[k][0], reps[k], seed=7 + i) for i, k in enumerate(KINDS)}
    pos["bbbc005"] = bbbc005_sample("train", 120)
    val = {k: valid[k][0] for k in KINDS}
    val["bbbc005"] = bbbc005_sample("valid", 120)
    neg = unfamiliar_pictures(CALIBRATION_PHOTOS, n=30, n_hard=100, base=0)
    n_neg = sum(map(len, neg.values()))
    info = plugin.fit_picture_check(model, pos, neg, val, calibrated_on=(
        f"logistic regression: {sum(map(len, pos.values()))} development images (training parts by kind, random "
        f"crops of them, 120 BBBC005 training fields) against {n_neg} generated pictures "
        "(deepscope.data.synth.generate_unfamiliar, calibration photographs " + ", ".join(CALIBRATION_PHOTOS)
        + "); threshold: keeps >= 97% of each kind of validation image (53 development, 120 BBBC005)"))
    print("picture check", info)


def synth_fields(n: int, seed: int, size: tuple[int, int] = (520, 696)) -> list[Any]:
    from deepscope.data.synth import generate_field

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        count = int(rng.integers(1, 101))
        blur = int(rng.choice([1, 23, 48]))
        out.append((generate_field(count, size=size, blurs=(blur,), stains=(1, 2), seed=int(rng.integers(2**31))),
                    blur))
    return out


def cells_eval(model: Any, fields: list[Any]) -> dict[str, Any]:
    from deepscope.evaluate import match_instances

    out = {}
    for stain, key in ((1, "nuclei"), (2, "cells")):
        rs = [match_instances(f.labels(stain), model.predict_image(f.images[(stain, b)])) for f, b in fields]
        out[f"w{stain}_{key}"] = instance_summary(rs)
    return out


def real_bbbc005_object_counts(model: Any, part: str = "test") -> dict[str, Any]:
    """Real BBBC005 has no masks here: compare the number of segmented objects with the file-name count."""
    ds, parts = bbbc005_split()
    idx = np.flatnonzero(parts == part)
    md = ds.metadata.iloc[idx].reset_index(drop=True)
    n = np.array([int(model.predict_image(ds.get_image(int(i))).max()) for i in idx])
    y = ds.y[idx].astype(float)
    out: dict[str, Any] = {"mae_objects_vs_count": float(np.abs(n - y).mean())}
    for col in ("stain", "blur"):
        for v in sorted(md[col].unique()):
            m = (md[col] == v).to_numpy()
            out[f"mae_{col}={v}"] = float(np.abs(n[m] - y[m]).mean())
    return out


# ============================================================================ per model

def finalize_count(model: Any, *, segmenter: str = "nuclei", refit: bool = False, domain: bool = True) -> None:
    """The single-pass counter: interval calibration and the domain check on BBBC005, and counting by
    instances (``segmenter``) for images unlike BBBC005, calibrated per kind on the development sets.

    ``refit``: the model is the shipped one; keep its weights, its counting rule (hybrid) and its BBBC005
    interval, and only (re)fit the domain check and the counting of general images. ``domain=False``: the domain
    check is fitted already (``reweight_count`` fits it before its gate) and is kept.

    The domain check is fitted on whole fields only. Adding random crops (128-520 px) of the training
    fields made BBBC005 crops of 192 px and more count by density, but it also accepted 38 of 38 DSB2018
    test images, which the density model counts badly (MAPE 23% and 45% interval coverage, against 8.9%
    and 100% by instances): smaller BBBC005-like images are counted by instances instead.

    The variant ``count-q-b16`` was chosen on the validation fields (MAE 1.02, against 1.10 and 1.18 for
    the variants trained with pseudo dot density targets, whose counts were biased low); flips TTA
    (0.98) and two-model averages (0.91-0.95) gain too little for 4x or 2x the time.
    """
    ds, parts = bbbc005_split()
    va = np.flatnonzero(parts == "valid")
    tr = np.flatnonzero(parts == "train")
    imgs = [ds.get_image(int(i)) for i in va]
    name = "BBBC005 validation fields (120 images)"
    model.update_output(general=None, **({"domain": None} if domain else {}))
    if not refit:
        model.update_output(tta="none", hybrid=None)
        counts, std = model.count_arrays(imgs)
        model.calibrate_interval(ds.y[va].astype(float), counts, std, name=name)
    if domain:
        fit_count_domain(model, [ds.get_image(int(i)) for i in tr], imgs)
    valid = generalist_sets("valid")
    model.plugin.calibrate_general(model, {k: (v[0], [float(len(np.unique(lab)) - 1) for lab in v[1]])
                                           for k, v in valid.items()}, segmenter=segmenter)
    general = (f"images unlike BBBC005 (domain check) are counted by the instances of {segmenter}, with an "
               "interval calibrated per kind of image")
    if refit:
        model.update_card(description=model.model_card.description.split("; images unlike")[0] + "; " + general)
    else:
        model.update_card(description=(
            "Cell counter: one pass of a density U-Net on 4x-binned input for BBBC005-like fluorescence images "
            "(any size, both stains, any blur), with a calibrated 95% interval; " + general))
    ev = count_eval(model, "test")
    model.update_card(metrics={"bbbc005_test_fields": table_to_dict(ev["table"]),
                               "general_test": general_count_eval(model, generalist_sets("test"))},
                      evaluation={"split": SPLIT_NOTE["bbbc005"], "test_images": int(len(ev["pred"])),
                                  "general": SPLIT_NOTE["dsb2018"] + "; " + SPLIT_NOTE["dsb2018_other"]})


def fit_count_domain(model: Any, train: list[np.ndarray], valid: list[np.ndarray]) -> None:
    """The counter's domain check: feature ranges of the BBBC005 training images (the network's own features, so
    it is refitted with every new set of weights), threshold from the validation images."""
    model.plugin.fit_domain_check(model, train, valid, calibrated_on=(
        f"features of the {len(train)} BBBC005 training images; threshold: 99th percentile of the {len(valid)} "
        "validation images x 1.25"))


def refit_count_intervals(model: Any) -> None:
    """Re-calibrate the hybrid rule's interval of the shipped counter as ``sqrt-count`` on the BBBC005 validation
    fields, and re-evaluate it on the test fields, by blur, stain and third of the count range (1-33, 34-66,
    67-100 cells). Issue 31: a constant +-2.75 held 27/27 fields below 60 cells and 12/15 at 66 or more."""
    ds, parts = bbbc005_split()
    va = np.flatnonzero(parts == "valid")
    model.plugin.recalibrate_hybrid_interval(model, [ds.get_image(int(i)) for i in va], ds.y[va].astype(float),
                                             name="BBBC005 validation fields (120 images)")
    ev = count_eval(model, "test", by_count=True)
    model.update_card(metrics={**model.model_card.metrics, "bbbc005_test_fields": table_to_dict(ev["table"])})


def refit_count_tta(model: Any, tta: str) -> None:
    """Switch the shipped counter's test-time augmentation to ``tta`` and re-calibrate what depends on it: the
    hybrid rule (which images take the object count, its interval by third of the count range, the gate) and
    the density interval, both by split conformal on the BBBC005 validation fields, then re-evaluate on the test
    fields and the development sets. Issue 29: on the validation fields, the two passes of ``transpose`` gave
    MAE 0.934 against 0.933 for the four of ``flips`` (rot180 pairs 0.962, id + anti-transpose 0.952, none 1.011)."""
    ds, parts = bbbc005_split()
    va = np.flatnonzero(parts == "valid")
    hy = dict(model.card["output"]["hybrid"])
    model.update_output(tta=tta)
    model.plugin.calibrate_hybrid(model, [ds.get_image(int(i)) for i in va], ds.y[va].astype(float),
                                  segmenter=hy["segmenter"], max_object_area=float(hy["max_object_area"]),
                                  name="BBBC005 validation fields (120 images)")
    ev = count_eval(model, "test", by_count=True)
    model.update_card(metrics={**model.model_card.metrics, "bbbc005_test_fields": table_to_dict(ev["table"]),
                               "general_test": general_count_eval(model, generalist_sets("test"))})
    from deepscope.predict.predictor import tta_ops

    with model.edit_card() as card:
        n = len(tta_ops(tta))
        card["description"] = re.sub(r"\((flip|\w+ TTA: \d+ passes?)\)|\(flip TTA\)", f"({tta} TTA: {n} pass{'es' if n > 1 else ''})",
                                     card["description"])


def reevaluate_count(model: Any) -> None:
    """The installed counter's test figures again, as it counts now (weights and every calibrated rule unchanged):
    the BBBC005 test fields by blur, stain (and, for count-bbbc005, third of the count range and the development
    sets' general counting). Used when counts became whole numbers (issue 29): the cards' figures were those of
    the unrounded estimates."""
    by_count = model.name == "count-bbbc005"
    ev = count_eval(model, "test", by_count=by_count)
    metrics = {**model.model_card.metrics, "bbbc005_test_fields": table_to_dict(ev["table"])}
    if "general_test" in metrics:
        metrics["general_test"] = general_count_eval(model, generalist_sets("test"))
    model.update_card(metrics=metrics)


def reweight_count(model: Any, src: Path, *, force: bool = False) -> None:
    """New weights for the installed counter (``recipes/accumulate.py count-bbbc005-ema --export DIR``): the hybrid
    rule, its gate and both intervals re-calibrated for them on the validation fields (as ``--tta`` does), then a
    gate before anything else is measured (the domain check, which reads the network's features, refitted first):
    the whole count (the card's test-time augmentation, hybrid rule, domain
    check) must have a lower validation MAE than the installed weights by the same procedure (``force``: go on
    anyway). Only then are the domain check and general counting refitted and the test fields evaluated."""
    from safetensors.torch import load_file

    ds, parts = bbbc005_split()
    va = np.flatnonzero(parts == "valid")
    before = float(table_to_dict(count_eval(model, "valid")["table"])["overall"]["mae"])
    weights = load_file(str(src / "model.safetensors"))
    model.net.load_state_dict(weights)
    # the domain check reads the network's features: refit it for the new weights first (else fields the new
    # network counts well fall out of its domain and are counted by instances)
    valid = [ds.get_image(int(i)) for i in va]
    fit_count_domain(model, [ds.get_image(int(i)) for i in np.flatnonzero(parts == "train")], valid)
    hy = dict(model.card["output"]["hybrid"])
    model.plugin.calibrate_hybrid(model, valid, ds.y[va].astype(float),
                                  segmenter=hy["segmenter"], max_object_area=float(hy["max_object_area"]),
                                  name="BBBC005 validation fields (120 images)")
    after = table_to_dict(count_eval(model, "valid")["table"])
    blurs = ", ".join(f"{k} {float(v['mae']):.3f}" for k, v in after.items() if k.startswith("blur"))
    print(f"validation MAE (whole count, {model.card['output'].get('tta')} TTA, hybrid rule calibrated on these "
          f"fields): installed weights {before:.4f}, new {float(after['overall']['mae']):.4f} ({blurs})", flush=True)
    if float(after["overall"]["mae"]) >= before and not force:
        raise SystemExit("the new weights do not lower the validation MAE: not installed (--force to go on)")
    finalize_count(model, refit=True, domain=False)
    fine = json.loads((src / "model.json").read_text()).get("training", {})
    with model.edit_card() as card:
        first = {k: w for k, w in card.get("training", {}).items() if k != "fine_tune"}
        card["training"] = {**first, "fine_tune": {k: w for k, w in fine.items() if k != "first_run"},
                            "validation_mae_whole_count": {"before": round(before, 4),
                                                           "after": round(float(after["overall"]["mae"]), 4)}}


def general_count_eval(model: Any, sets: dict[str, tuple[list[np.ndarray], list[np.ndarray]]]) -> dict[str, Any]:
    """Counting metrics on the development sets by kind: MAPE, coverage of the interval, methods used."""
    out: dict[str, Any] = {}
    for kind, (images, labels) in sets.items():
        if not images:
            continue
        true = np.array([len(np.unique(lab)) - 1 for lab in labels], float)
        res = model.count_images(images)
        pred = np.array([r.count for r in res])
        lo = np.array([r.low for r in res])
        hi = np.array([r.high for r in res])
        has = np.isfinite(lo)
        out[kind] = {"n_images": len(images), "mape": float(np.mean(np.abs(pred - true) / np.maximum(true, 1))),
                     "mae": float(np.mean(np.abs(pred - true))),
                     "coverage": float(np.mean((true >= lo) & (true <= hi))) if has.any() else None,
                     "with_interval": float(has.mean()),
                     "methods": {m: int(sum(r.method == m for r in res)) for m in sorted({r.method for r in res})}}
    return out


def finalize_nuclei(model: Any) -> None:
    from deepscope.evaluate import match_instances
    from deepscope.tasks.segment.instances import PostprocessConfig, instances_from_maps

    ds, parts = dsb_split()
    va = np.flatnonzero(parts == "valid")
    maps = [model.maps(ds.get_image(int(i))) for i in va]
    labs = [ds.get_label(int(i)) for i in va]
    best: tuple[float, Any] = (-1.0, None)
    for fg in (0.4, 0.5, 0.6):
        for s in (0.4, 0.5, 0.6):
            for ms in (8, 20, 40):
                for mss in (2, 10):
                    cfg = PostprocessConfig(fg_threshold=fg, seed_threshold=s, min_size=ms, min_seed_size=mss)
                    sc = float(np.mean([match_instances(l, instances_from_maps(m[0], m[1], cfg)).mean_ap
                                        for m, l in zip(maps, labs)]))
                    if sc > best[0]:
                        best = (sc, cfg)
    model.update_output(postprocess=best[1].to_dict(),
                        postprocess_tuned_on=f"DSB2018 validation images ({len(va)}), DSB score {best[0]:.4f}")
    model.update_card(metrics={"dsb2018_test": dsb_eval(model, "test"), "dsb2018_valid": dsb_eval(model, "valid")},
                      evaluation={"split": SPLIT_NOTE["dsb2018"]})


def finalize_cells(model: Any) -> None:
    from deepscope.evaluate import match_instances
    from deepscope.tasks.segment.instances import PostprocessConfig, instances_from_maps

    valid = synth_fields(12, seed=101)
    items = []
    for f, b in valid:
        for stain in (1, 2):
            items.append((model.maps(f.images[(stain, b)]), f.labels(stain)))
    best: tuple[float, Any] = (-1.0, None)
    for fg in (0.4, 0.5, 0.6):
        for s in (0.3, 0.4, 0.5, 0.6):
            for mss in (2, 10, 30):
                cfg = PostprocessConfig(fg_threshold=fg, seed_threshold=s, min_size=30, min_seed_size=mss)
                sc = float(np.mean([match_instances(l, instances_from_maps(m[0], m[1], cfg)).mean_ap for m, l in items]))
                if sc > best[0]:
                    best = (sc, cfg)
    model.update_output(postprocess=best[1].to_dict(),
                        postprocess_tuned_on=f"24 synthetic validation images (seed 101), DSB score {best[0]:.4f}")
    model.update_card(metrics={
        "synthetic_test_fields_seed202": cells_eval(model, synth_fields(12, seed=202)),
        "bbbc005_test_fields_object_count": real_bbbc005_object_counts(model, "test"),
    }, evaluation={"synthetic": "12 fresh fields (counts 1-100, blur 1/23/48), both stains",
                   "real": "number of objects vs file-name count on " + SPLIT_NOTE["bbbc005"]})


def restore_pairs(rule: str, part: str = "test") -> list[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    ds, parts = bbbc005_split()
    md = ds.metadata
    key = {(md.field[i], int(md.blur[i]), int(md.stain[i])): i for i in range(len(ds))}
    out = []
    for i in np.flatnonzero(parts == part):
        f, b, s = md.field[i], int(md.blur[i]), int(md.stain[i])
        if rule == "deblur" and b != 1 and (f, 1, s) in key:
            j = key[(f, 1, s)]
        elif rule == "label" and s == 1 and (f, b, 2) in key:
            j = key[(f, b, 2)]
        elif rule == "sr" and b == 1:
            j = i
        else:
            continue
        out.append((ds.get_image(int(i)), ds.get_image(int(j)), {"field": f, "blur": b, "stain": s,
                                                                 "count": int(ds.y[i])}))
    return out


def restore_eval(model: Any, rule: str, part: str = "test") -> dict[str, Any]:
    from deepscope.evaluate import pearson, psnr, ssim

    rows = []
    for x, y, meta in restore_pairs(rule, part):
        if rule == "sr":
            h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
            xs = x[:h, :w].astype(np.float32)
            x = (0.25 * (xs[0::2, 0::2] + xs[1::2, 0::2] + xs[0::2, 1::2] + xs[1::2, 1::2]))
            y = y[:h, :w]
        out = model.predict_image(x, dtype="float32")
        rows.append({**meta, "psnr": psnr(y.astype(np.float32), out, data_range=255.0),
                     "ssim": ssim(y.astype(np.float32), out, data_range=255.0),
                     "pearson": pearson(y.astype(np.float32), out)})
    import pandas as pd

    df = pd.DataFrame(rows)
    res: dict[str, Any] = {"n_pairs": len(df)}
    for col in ("psnr", "ssim", "pearson"):
        res[col] = float(df[col].mean())
    for b in sorted(df.blur.unique()):
        for col in ("psnr", "ssim", "pearson"):
            res[f"{col}_blur={b}"] = float(df[df.blur == b][col].mean())
    return res


def finalize_restore(model: Any, rule: str) -> None:
    model.update_card(metrics={"bbbc005_test_fields": restore_eval(model, rule, "test")},
                      evaluation={"split": SPLIT_NOTE["bbbc005"],
                                  "pairs": {"deblur": "F23/F48 -> F1, same field and stain",
                                            "label": "w1 -> w2, same field and blur",
                                            "sr": "2x2-binned F1 -> F1"}[rule]})


#: Cautions written into the cards (figures from benchmarks/bench_restore.py on the BBBC005 test fields).
CAUTIONS = {
    "deblur-bbbc005": (
        "A restored image is a prediction. On 52 real test pairs the model invented no foreground objects "
        "(false_structure: 0 per image), but at F48 touching cells stay merged and the boundaries drawn inside "
        "merged blobs are guesses: cells-bbbc005 miscounts restored F48 cell-stain images by 4.1 cells per image "
        "(4.9 on raw F48), and count-bbbc005 is no more accurate on restored than on raw F48 images (MAE 1.40 vs "
        "1.39; count-bbbc005-fast does gain, 1.58 -> 1.32, but stays behind count-bbbc005 on the raw images). "
        "Count and segment the raw images with the default models; use restoration for viewing. Trained on BBBC005-like "
        "fluorescence only: other modalities get a warning from the input statistics."),
    "label-bbbc005-w2": (
        "Predicted stains are not measurements: the w2 image is inferred from the w1 image of the same field "
        "(Pearson 0.96-0.97 with the truth on test fields), and the cell outlines come from what BBBC005-like "
        "training fields made likely. cells-bbbc005 segments predicted w2 images into 2.9 objects per image more "
        "or fewer than the true w2 images."),
    "sr2x-bbbc005": "Gains little over bicubic upsampling on these smooth images (+0.3 dB PSNR on test fields).",
}


def headline(name: str, m: dict[str, Any]) -> list[str]:
    """Two or three figures for ``deepscope models`` (the full tables stay under ``metrics``)."""
    try:
        if name.startswith("count"):
            o = m["bbbc005_test_fields"]["overall"]
            return [f"BBBC005 test MAE {o['mae']:.2f}", f"RMSE {o['rmse']:.2f}", f"95% cover {o['coverage']:.2f}"]
        if name in ("nuclei", "nuclei-fast"):
            t = m["test"]
            return [f"fluorescence F1@0.5 {t['fluorescence']['f1@0.5_mean']:.3f} DSB {t['fluorescence']['dsb_score']:.3f}",
                    f"H&E F1 {t['he']['f1@0.5_mean']:.2f} DSB {t['he']['dsb_score']:.2f}",
                    f"brightfield F1 {t['brightfield']['f1@0.5_mean']:.2f} DSB {t['brightfield']['dsb_score']:.2f}"]
        if name == "nuclei-fluo":
            o = m["dsb2018_test"]
            return [f"DSB2018 test F1@0.5 {o['f1@0.5_mean']:.3f}", f"DSB score {o['dsb_score']:.3f}",
                    f"F1@0.9 {o['f1@0.9_mean']:.3f}"]
        if name == "cells-bbbc005":
            o = m["synthetic_test_fields_seed202"]
            r = m["bbbc005_test_fields_object_count"]
            return [f"synthetic DSB w1 {o['w1_nuclei']['dsb_score']:.2f} w2 {o['w2_cells']['dsb_score']:.2f}",
                    f"real count MAE w1 {r['mae_stain=1']:.2f} w2 {r['mae_stain=2']:.2f}"]
        o = m["bbbc005_test_fields"]
        return [f"BBBC005 test PSNR {o['psnr']:.1f} dB", f"SSIM {o['ssim']:.3f}", f"Pearson {o['pearson']:.3f}"]
    except KeyError:
        return []


# ============================================================================ driver

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=[str(ROOT / ".gpu" / "run1")],
                    help="training run folders to look for variants in (first match wins)")
    ap.add_argument("--only", default="", help="comma-separated shipped names")
    ap.add_argument("--zoo", default=str(ZOO))
    ap.add_argument("--refit", action="store_true",
                    help="start from the installed model in --zoo (keep its weights and training record) instead of "
                         "a run folder; count-bbbc005 only: refits the domain check and general counting")
    ap.add_argument("--refit-intervals", action="store_true",
                    help="count-bbbc005 only: start from the installed model and re-calibrate the hybrid rule's "
                         "interval so that it grows with the count (sqrt-count), then re-evaluate on the test fields; "
                         "weights, counts and every other rule unchanged")
    ap.add_argument("--tta", default="", choices=["", "none", "transpose", "diagonal", "flips", "d8"],
                    help="count-bbbc005 only: start from the installed model, switch its test-time augmentation and "
                         "re-calibrate the hybrid rule and the intervals on the validation fields; weights unchanged")
    ap.add_argument("--refit-domain", action="store_true",
                    help="nuclei only: start from the installed model and refit its domain check (feature ranges "
                         "and the picture check), then re-evaluate it; weights and post-processing unchanged")
    ap.add_argument("--weights", default="",
                    help="count-bbbc005 only: a model folder with new weights for the installed counter (recipes/"
                         "accumulate.py count-bbbc005-ema --export DIR: DIR/count-bbbc005-ema); its rules are "
                         "re-calibrated on the validation fields and it is installed only if it lowers the "
                         "validation MAE of the whole count")
    ap.add_argument("--force", action="store_true", help="with --weights: install even without a validation gain")
    ap.add_argument("--reevaluate", action="store_true",
                    help="count-bbbc005 and count-bbbc005-fast: start from the installed model and measure its test "
                         "figures again as it counts now (whole-number counts); weights and rules unchanged")
    ap.add_argument("--int8", action="store_true",
                    help="start from the installed model and build its int8 network (<name>.int8.onnx, for "
                         "--backend onnx-int8) calibrated on development images (training parts); compare it with "
                         "float on the validation images; record both in the card's int8 entry (cpu_default: "
                         "within the rule); weights and everything else unchanged")
    args = ap.parse_args(argv)
    from deepscope.models import load_model

    names = args.only.split(",") if args.only else list(CHOICES)
    zoo = Path(args.zoo)
    zoo.mkdir(parents=True, exist_ok=True)
    for name in names:
        if args.int8:
            build_int8(zoo, name)
            continue
        if args.reevaluate:
            if name not in ("count-bbbc005", "count-bbbc005-fast"):
                raise SystemExit(f"--reevaluate: only the counters, not {name}")
            refit_installed(zoo, name, reevaluate_count, "--reevaluate")
            continue
        if args.weights:
            if name != "count-bbbc005":
                raise SystemExit(f"--weights: only count-bbbc005 takes new weights this way, not {name}")
            refit_installed(zoo, name, lambda m: reweight_count(m, Path(args.weights), force=args.force),
                            "--weights DIR/count-bbbc005-ema (DIR: recipes/accumulate.py count-bbbc005-ema in chunks, "
                            "then its --export DIR), then --int8", new_weights=True)
            continue
        if args.tta:
            if name != "count-bbbc005":
                raise SystemExit(f"--tta: only count-bbbc005 can be switched this way, not {name}")
            refit_installed(zoo, name, lambda m: refit_count_tta(m, args.tta), f"--tta {args.tta}")
            continue
        if args.refit_domain or args.refit_intervals:
            flag, only, step = (("--refit-domain", "nuclei", finalize_picture_check) if args.refit_domain else
                                ("--refit-intervals", "count-bbbc005", refit_count_intervals))
            if name != only:
                raise SystemExit(f"{flag}: only {only} can be refitted this way, not {name}")
            refit_installed(zoo, name, step, flag)
            continue
        if args.refit:
            if name != "count-bbbc005":
                raise SystemExit(f"--refit: only count-bbbc005 can be refitted, not {name}")
            refit_installed(zoo, name, lambda m: finalize_count(m, refit=True), "--refit")
            continue
        variant = CHOICES[name]
        src = next((Path(r) / variant for r in args.runs if (Path(r) / variant / "model.json").exists()), None)
        if src is None:
            print(f"{name}: variant {variant} not found in {args.runs}; skipped")
            continue
        t = time.perf_counter()
        model = load_model(src, device="cpu")
        model.backend = "torch"  # the card's figures are float (--backend auto may run int8 on a CPU)
        model.name = name
        recipe = (f"recipes/pack_data.py, then recipes/zoo.py train --only {variant} (GPU; see recipes/README.md), "
                  f"then recipes/finalize.py --only {name}")
        if name == "nuclei-fast":
            recipe = (f"recipes/pack_data.py --only dsb,other, then recipes/accumulate.py {variant} in chunks (CPU; "
                      f"state in recipes/checkpoints/{variant}/, one line per chunk in its chunks.jsonl), then "
                      f"recipes/accumulate.py {variant} --export DIR --force, then recipes/finalize.py --only {name} "
                      "--runs DIR")
        model.update_card(variant=variant, training={**model.model_card.training, "recipe": recipe})
        if name == "count-bbbc005":
            finalize_count(model)
        elif name in ("nuclei", "nuclei-fast"):
            finalize_generalist(model)
        elif name == "nuclei-fluo":
            finalize_nuclei(model)
        elif name == "cells-bbbc005":
            finalize_cells(model)
        elif name == "deblur-bbbc005":
            finalize_restore(model, "deblur")
        elif name == "label-bbbc005-w2":
            finalize_restore(model, "label")
        elif name == "sr2x-bbbc005":
            finalize_restore(model, "sr")
        _install(model, zoo, name, src, t)
    return 0


#: Development images the int8 networks are calibrated on: (set, part, images per kind). Training parts only,
#: never a test part; a seeded sample (rng 0) of each kind.
INT8_CALIBRATION = {
    "count-bbbc005": ("bbbc005", "train", {"bbbc005": 16}),
    "count-bbbc005-fast": ("bbbc005", "train", {"bbbc005": 16}),
    "nuclei": ("generalist", "train", {"fluorescence": 12, "he": 4, "brightfield": 2}),
    "nuclei-fluo": ("dsb2018", "train", {"fluorescence": 12}),
    "nuclei-fast": ("generalist", "train", {"fluorescence": 12, "he": 4, "brightfield": 2}),
    "cells-bbbc005": ("bbbc005", "train", {"bbbc005": 16}),
}
#: issue 29's rule for int8 as a default: F1@0.5 no more than this below float (segmenters, every kind) ...
INT8_F1_TOLERANCE = 0.005
#: ... and a count MAE no more than this above float (counters; segmenters of BBBC005 fields: objects vs count)
INT8_MAE_TOLERANCE = 0.05


def int8_calibration_images(name: str) -> tuple[list[np.ndarray], str]:
    """The calibration images of a model's int8 network and a note of where they come from (split and part)."""
    what, part, per_kind = INT8_CALIBRATION[name]
    rng = np.random.default_rng(0)
    if what == "bbbc005":
        ds, parts = bbbc005_split()
        idx = np.sort(rng.choice(np.flatnonzero(parts == part), per_kind["bbbc005"], replace=False))
        return [ds.get_image(int(i)) for i in idx], f"{len(idx)} images of the {part} part of {SPLIT_NOTE['bbbc005']}"
    if what == "dsb2018":
        ds, parts = dsb_split()
        idx = np.sort(rng.choice(np.flatnonzero(parts == part), per_kind["fluorescence"], replace=False))
        return [ds.get_image(int(i)) for i in idx], f"{len(idx)} images of the {part} part of {SPLIT_NOTE['dsb2018']}"
    images, notes = [], []
    sets = generalist_sets(part)
    for kind, n in per_kind.items():
        imgs = sets[kind][0]
        idx = np.sort(rng.choice(len(imgs), min(n, len(imgs)), replace=False))
        images += [imgs[int(i)] for i in idx]
        notes.append(f"{len(idx)} {kind}")
    return images, (f"{', '.join(notes)} images of the {part} parts of {SPLIT_NOTE['dsb2018']} (fluorescence) and "
                    f"{SPLIT_NOTE['dsb2018_other']} (he, brightfield)")


def build_int8(zoo: Path, name: str) -> None:
    """Build ``<name>.int8.onnx`` from the installed model, calibrated on development images
    (:data:`INT8_CALIBRATION`), and record it in the card (``int8``: file, sha256, format, calibration);
    the card's other entries and the weights file stay byte for byte."""
    import hashlib

    import torch

    from deepscope.models import load_model
    from deepscope.predict.backends import export_onnx_int8

    if name not in INT8_CALIBRATION:
        raise SystemExit(f"--int8: no calibration set for {name}; one of {', '.join(INT8_CALIBRATION)}")
    torch.set_num_threads(2)
    t = time.perf_counter()
    model = load_model(zoo / f"{name}.json", device="cpu")
    images, note = int8_calibration_images(name)
    path = zoo / f"{name}.int8.onnx"
    data = export_onnx_int8(model, images, path, calibration=note)
    import onnx

    info = json.loads({p.key: p.value for p in onnx.load_from_string(data).metadata_props}["deepscope_int8"])
    card_path = zoo / f"{name}.json"
    card = json.loads(card_path.read_text())
    card["int8"] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
                    "format": info["format"], "weights": info["weights"], "activations": info["activations"],
                    "calibration": note, "calibration_images": info["calibration_images"],
                    "calibration_inputs": info["calibration_inputs"], "float_nodes": info["float_nodes"],
                    "weights_digest": info["weights_digest"],
                    "recipe": f"recipes/finalize.py --only {name} --int8",
                    "accuracy": "see BENCHMARKS.md, int8 CPU inference (benchmarks/bench_int8.py)"}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{name}: {path.name} {len(data) / 1e6:.2f} MB, {info['calibration_inputs']} calibration inputs "
          f"({note}) in {time.perf_counter() - t:.0f}s")
    agreement = int8_agreement(zoo, name)
    card = json.loads(card_path.read_text())
    card["int8"]["agreement"] = agreement
    card["int8"]["cpu_default"] = agreement["within_rule"]
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{name}: int8 against float on validation images: {agreement['changes']} -> CPU default "
          f"{agreement['within_rule']} ({time.perf_counter() - t:.0f}s)")


def int8_agreement(zoo: Path, name: str) -> dict[str, Any]:
    """Float against int8 on the model's VALIDATION images (never its test images): whether int8 keeps the
    accuracy within issue 29's rule (:data:`INT8_F1_TOLERANCE`, :data:`INT8_MAE_TOLERANCE`), which makes it the
    model's CPU default (``--backend auto``). A counter's hybrid segmenter runs on the counter's backend."""
    from deepscope.models import load_model

    def scores(backend: str) -> dict[str, float]:
        model = load_model(zoo / f"{name}.json", device="cpu")
        model.backend = "torch"  # the card's figures are float (--backend auto may run int8 on a CPU)
        model.backend = backend
        if name.startswith("count-"):
            return {"mae": float(table_to_dict(count_eval(model, "valid")["table"])["overall"]["mae"])}
        if name == "cells-bbbc005":
            return {"mae_objects_vs_count": real_bbbc005_object_counts(model, "valid")["mae_objects_vs_count"]}
        if name == "nuclei-fluo":
            return {"f1@0.5 fluorescence": dsb_eval(model, "valid")["f1@0.5_mean"]}
        return {f"f1@0.5 {k}": v["f1@0.5_mean"] for k, v in generalist_eval(model, generalist_sets("valid")).items()}

    fl, q = scores("torch"), scores("onnx-int8")
    changes = {k: round(q[k] - fl[k], 4) for k in fl}
    ok = all((c <= INT8_MAE_TOLERANCE) if k.startswith("mae") else (c >= -INT8_F1_TOLERANCE) for k, c in changes.items())
    return {"images": "validation part (" + ("BBBC005 fields, " + SPLIT_NOTE["bbbc005"] if name.startswith(("count-", "cells-"))
                                            else "the card's development splits") + ")",
            "float": {k: round(v, 4) for k, v in fl.items()}, "int8": {k: round(v, 4) for k, v in q.items()},
            "changes": changes, "rule": f"F1@0.5 at most {INT8_F1_TOLERANCE} below float, MAE at most "
            f"{INT8_MAE_TOLERANCE} above", "within_rule": bool(ok)}


def keep_weights(zoo: Path, name: str, weights: bytes, entry: dict[str, Any]) -> None:
    """Put back the installed weights file byte for byte, and its card entry: saving the same tensors again
    can order the safetensors header differently, and other cards pin this file's sha256."""
    (zoo / f"{name}.safetensors").write_bytes(weights)
    path = zoo / f"{name}.json"
    card = json.loads(path.read_text())
    card["weights"] = entry
    path.write_text(json.dumps(card, indent=2) + "\n")


def refit_installed(zoo: Path, name: str, step: Any, flag: str, *, new_weights: bool = False) -> None:
    """Refit one part of an installed model (``step(model)``), record ``flag`` in its recipe, install it again
    with its weights file kept byte for byte (``new_weights``: the step gave it new ones, written as they are)."""
    from deepscope.models import load_model

    t = time.perf_counter()
    model = load_model(zoo / f"{name}.json", device="cpu")
    model.backend = "torch"  # the card's figures are float (--backend auto may run int8 on a CPU)
    weights = (zoo / f"{name}.safetensors").read_bytes()
    entry = dict(model.card["weights"])
    step(model)
    training = dict(model.card.get("training") or {})
    if flag not in training.get("recipe", ""):
        model.update_card(training={**training, "recipe": training.get("recipe", "") +
                                    f"; recipes/finalize.py --only {name} {flag}"})
    _install(model, zoo, name, f"{zoo / name}.json", t)
    if not new_weights:
        keep_weights(zoo, name, weights, entry)


def _install(model: Any, zoo: Path, name: str, src: Any, t: float) -> None:
    with model.edit_card() as card:
        card["headline"] = headline(name, card.get("metrics", {}))
        if name in CAUTIONS:
            card["caution"] = CAUTIONS[name]
        card.update(_round(card))
        card.pop("created", None)
    model.save(zoo / f"{name}.json")
    print(f"{name}: installed from {src} in {time.perf_counter() - t:.0f}s")
    print(json.dumps(model.card.get("metrics"), indent=1, default=str)[:2000])


if __name__ == "__main__":
    sys.exit(main())
