"""Scoring a model on labelled images: it runs the model over a dataset, :mod:`deepscope.evaluate` scores it.

:func:`evaluate_counts` counts every image of a dataset with true counts (through the file driver,
:func:`deepscope.predict.files.count_paths`); :func:`evaluate_restoration` restores (input, target)
pairs and measures the effect on counting and segmentation. The metrics themselves are NumPy-only
functions of :mod:`deepscope.evaluate`; running models is this package's work.

Examples
--------
>>> from deepscope.data import ImageLoader
>>> from deepscope.predict.evaluation import evaluate_counts
>>> ds = ImageLoader(pattern="bbbc005", labels="count").load("../shared/data/bbbc005/images")  # doctest: +SKIP
>>> evaluate_counts(ds).metrics.head(1)                                                        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import InputError
from deepscope.predict.files import count_paths
from deepscope.predict.inputs import model_input, resolve_model
from deepscope.predict.runner import PER_IMAGE_ERRORS, Progress, error_text

if TYPE_CHECKING:
    import pandas as pd

    from deepscope.data import ImageDataset

__all__ = ["CountEvaluation", "RestoreEvaluation", "evaluate_counts", "evaluate_restoration"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CountEvaluation:
    """Counting scores of a model on labelled images.

    Attributes
    ----------
    per_image : pandas.DataFrame
        ``path``, ``true``, ``count``, ``count_low``, ``count_high``, ``std``, ``error`` and the
        stratum columns.
    metrics : pandas.DataFrame
        :func:`deepscope.evaluate.count_metrics` over the images that worked: overall, then per
        stratum (``stratum``, ``value``, ``n``, ``mae``, ``rmse``, ``bias``, ``exact``,
        ``coverage``, ``mean_width``).
    n_failed : int
        Images that could not be counted (left out of the scores).
    """

    per_image: pd.DataFrame
    metrics: pd.DataFrame
    n_failed: int


def evaluate_counts(dataset: ImageDataset, *, model: Any = "count-bbbc005", by: Sequence[str] = ("blur", "stain"),
                    device: str = "auto", channel: int | None = None, batch_size: int = 8,
                    progress: Progress | None = None) -> CountEvaluation:
    """Count every image of a dataset with value labels and score the counts, overall and per stratum.

    Parameters
    ----------
    dataset : ImageDataset
        Lazy dataset with one true count per image (e.g. ``ImageLoader(pattern="bbbc005",
        labels="count")``).
    model : str, PathLike or CountModel, default "count-bbbc005"
    by : sequence of str, default ("blur", "stain")
        Metadata columns to break the scores down by (those missing from the metadata are skipped).
    device, channel, batch_size, progress
        As for :func:`count_paths`.

    Returns
    -------
    CountEvaluation

    Raises
    ------
    deepscope.errors.InputError
        A dataset without value labels or without file paths, or every image failed.

    Examples
    --------
    >>> from deepscope.data import ImageLoader
    >>> ds = ImageLoader(pattern="bbbc005", labels="count").load("../shared/data/bbbc005/images")  # doctest: +SKIP
    >>> evaluate_counts(ds).metrics.head(1)                                                        # doctest: +SKIP
    """
    from deepscope.evaluate import count_metrics

    if dataset.label_kind != "value":
        raise InputError("evaluate_counts needs one true count per image (load with labels='count' or a CSV)")
    if dataset.paths is None:
        raise InputError("evaluate_counts needs a dataset of image files (a lazy ImageLoader dataset)")
    res = count_paths(dataset.paths, model=model, device=device, channel=channel, batch_size=batch_size,
                      progress=progress)
    table = res.table.copy()
    table.insert(1, "true", np.asarray(dataset.y, dtype=float))
    md = dataset.metadata
    cols = [c for c in by if c in md.columns]
    for c in cols:
        table[c] = md[c].to_numpy()
    ok = (table["error"] == "").to_numpy()
    if not ok.any():
        raise InputError(f"none of the {len(table)} images could be counted; first error: {table['error'].iloc[0]}")
    good = table[ok]
    metrics = count_metrics(good["true"], good["count"], low=good["count_low"], high=good["count_high"],
                            strata=good[cols] if cols else None)
    return CountEvaluation(table, metrics, res.n_failed)


@dataclass(frozen=True)
class RestoreEvaluation:
    """Restoration scores: image similarity to the target and the downstream effect on counting/segmenting.

    Attributes
    ----------
    per_image : pandas.DataFrame
        Per pair: ``input``, ``target``, ``psnr_raw``/``psnr_restored``, ``ssim_raw``/``ssim_restored``
        (raw = the input itself, or its bicubic upsampling for a super-resolution model), ``true``
        (count from the metadata, if any), ``count_raw``/``count_restored``/``count_target`` (count
        model), ``objects_raw``/``objects_restored``/``objects_target`` (segmentation model),
        ``error``.
    summary : dict
        Means over the pairs that worked (and ``false_objects``, the total of invented objects),
        counting MAE against the true count (or against the target image's count when there is
        none) and segmentation object-count MAE, for raw, restored and target images.
    """

    per_image: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def _data_range(truth: np.ndarray) -> float:
    if np.issubdtype(truth.dtype, np.integer):
        info = np.iinfo(truth.dtype)
        return float(info.max - info.min)
    rng = float(np.max(truth) - np.min(truth))
    return rng if rng > 0 else 1.0


def _upsample(x: np.ndarray, factor: int) -> np.ndarray:
    from skimage.transform import resize

    out = resize(np.asarray(x, np.float64), (x.shape[0] * factor, x.shape[1] * factor), order=3,
                 preserve_range=True, anti_aliasing=False)
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(x.dtype)
    return out.astype(x.dtype)


def evaluate_restoration(pairs: ImageDataset, *, model: Any, count_model: Any = None, segment_model: Any = None,
                         device: str = "auto", true_column: str = "count",
                         progress: Progress | None = None) -> RestoreEvaluation:
    """Score a restoration model on (input, target) pairs, and its effect on counting and segmentation.

    PSNR and SSIM use the data range of the target's dtype (255 for uint8, 65535 for uint16; the
    target's value range for float images) and are given for the restored image and, as the
    baseline, for the raw input (bicubic-upsampled for a super-resolution model). With a
    ``count_model`` the raw, restored and target images are counted; with a ``segment_model``
    they are segmented and their objects counted.

    Parameters
    ----------
    pairs : ImageDataset
        ``label_kind="image"`` pairs, e.g. from :func:`deepscope.data.pair_by_metadata` (or
        :func:`deepscope.data.downscale_pairs` for a super-resolution model).
    model : str, PathLike or RestoreModel
    count_model : str, PathLike or CountModel, optional
    segment_model : str, PathLike or SegmentModel, optional
    device : str, default "auto"
    true_column : str, default "count"
        Metadata column with the true object count (used when present).
    progress : callable, optional

    Returns
    -------
    RestoreEvaluation

    Raises
    ------
    deepscope.errors.InputError
        Not an image-pair dataset, or every pair failed.
    deepscope.errors.ModelError
        A model cannot be loaded or is of the wrong task.

    Examples
    --------
    >>> ev = evaluate_restoration(pairs, model="deblur-bbbc005", count_model="count-bbbc005")  # doctest: +SKIP
    >>> ev.summary["psnr_restored"] > ev.summary["psnr_raw"]                                  # doctest: +SKIP
    True
    """
    import pandas as pd

    from deepscope.evaluate import count_instances, false_structure, psnr, ssim

    if pairs.label_kind != "image":
        raise InputError("evaluate_restoration needs (input, target) image pairs (label_kind='image'); build them "
                         "with deepscope.data.pair_by_metadata")
    net = resolve_model(model, task="restore", device=device)
    counter = resolve_model(count_model, task="count", device=device) if count_model is not None else None
    segmenter = resolve_model(segment_model, task="segment", device=device) if segment_model is not None else None
    md = pairs.metadata
    truth_counts = md[true_column].to_numpy() if true_column in md.columns else None
    in_paths = pairs.paths or [str(i) for i in pairs.ids]
    tg_paths = pairs.label_paths or [f"target of {i}" for i in pairs.ids]
    rows: list[dict[str, Any]] = []
    for i in range(len(pairs)):
        row: dict[str, Any] = {"input": in_paths[i], "target": tg_paths[i]}
        try:
            raw = model_input(pairs.get_image(i), net, path=in_paths[i])
            target = model_input(pairs.get_label(i), net, path=tg_paths[i])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                restored = net.predict_image(raw, checked=True)  # checked by model_input
            base = raw if net.upscale == 1 else _upsample(raw, net.upscale)
            if restored.shape != target.shape:
                raise InputError(f"restored '{in_paths[i]}' has shape {restored.shape} but its target "
                                 f"'{tg_paths[i]}' has {target.shape}")
            dr = _data_range(target)
            row.update(psnr_raw=psnr(target, base, data_range=dr), psnr_restored=psnr(target, restored, data_range=dr),
                       ssim_raw=ssim(target, base, data_range=dr), ssim_restored=ssim(target, restored, data_range=dr))
            fs = false_structure(target, restored)
            row.update(false_objects=fs.n_false, false_fraction=fs.false_fraction, missed_fraction=fs.missed_fraction)
            if truth_counts is not None:
                row["true"] = float(truth_counts[i])
            images = {"raw": base, "restored": restored, "target": target}
            if counter is not None:
                res = counter.count_images(list(images.values()))
                for k, r in zip(images, res):
                    row[f"count_{k}"] = r.count
            if segmenter is not None:
                for k, im in images.items():
                    row[f"objects_{k}"] = count_instances(segmenter.predict_image(im))
            row["error"] = ""
        except PER_IMAGE_ERRORS as exc:
            row["error"] = error_text(exc)
            logger.warning("%s: %s", in_paths[i], row["error"])
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(pairs))
    table = pd.DataFrame(rows)
    ok = table[table["error"] == ""]
    if ok.empty:
        raise InputError(f"none of the {len(table)} pairs could be evaluated; first error: {table['error'].iloc[0]}")
    summary: dict[str, Any] = {"n_pairs": int(len(table)), "n_failed": int(len(table) - len(ok)),
                               "model": str(net.name), "upscale": int(net.upscale)}
    for key in ("psnr_raw", "psnr_restored", "ssim_raw", "ssim_restored", "false_fraction", "missed_fraction"):
        summary[key] = float(ok[key].mean())
    summary["false_objects"] = int(ok["false_objects"].sum())
    for prefix, what in (("count", "count_mae"), ("objects", "objects_mae")):
        if f"{prefix}_raw" not in ok.columns:
            continue
        ref = ok["true"] if "true" in ok.columns else ok[f"{prefix}_target"]
        summary[f"{what}_reference"] = "true count" if "true" in ok.columns else "target image"
        for k in ("raw", "restored", "target"):
            summary[f"{what}_{k}"] = float(np.mean(np.abs(ok[f"{prefix}_{k}"].astype(float) - ref.astype(float))))
    return RestoreEvaluation(table, summary)
