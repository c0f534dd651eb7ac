"""Evaluation metrics (NumPy/SciPy only, never torch): segmentation, counting, restoration.

>>> from deepscope.evaluate import match_instances, dsb_score, count_metrics, psnr

Segmentation
    :func:`pixel_accuracy`, :func:`dice`, :func:`iou` for masks; :func:`match_instances`
    (IoU-matched TP/FP/FN, precision, recall, F1, AP, panoptic quality per threshold),
    :func:`dsb_score`, :func:`match_labels` (the matched pairs), :func:`label_overlap` (sparse
    IoU), :func:`evaluate_instances` (many images: per image and overall), :func:`count_instances`.
Counting
    :func:`count_metrics` (MAE, RMSE, bias, exact share, interval coverage, per stratum),
    :func:`count_summary`.
Restoration
    :func:`psnr`, :func:`ssim`, :func:`pearson`, :func:`false_structure` (hallucinated objects).
Files
    :func:`evaluate_label_folders` (``deepscope evaluate segment``), :func:`pair_label_files`,
    :func:`read_label_image`.

Imports: ``evaluate`` imports ``io``, ``data`` and ``errors`` only; ``train``, ``predict``,
``measure``, ``tasks``, ``pipeline`` and ``cli`` import it.
"""

from __future__ import annotations

from deepscope.evaluate.counting import CountMetrics, count_metrics, count_summary
from deepscope.evaluate.files import LABELS_SUFFIX, evaluate_label_folders, pair_label_files, read_label_image
from deepscope.evaluate.restoration import FalseStructure, false_structure, pearson, psnr, ssim
from deepscope.evaluate.segmentation import (DSB_THRESHOLDS, InstanceReport, LabelOverlap, Matching, MatchResult,
                                             count_instances, dice, dsb_score, evaluate_instances, iou,
                                             label_overlap, match_instances, match_labels, pixel_accuracy)

__all__ = [
    "DSB_THRESHOLDS", "pixel_accuracy", "dice", "iou", "count_instances", "label_overlap", "LabelOverlap",
    "match_labels", "Matching", "match_instances", "MatchResult", "dsb_score", "evaluate_instances",
    "InstanceReport", "count_metrics", "count_summary", "CountMetrics", "psnr", "ssim", "pearson",
    "false_structure", "FalseStructure", "LABELS_SUFFIX", "pair_label_files", "read_label_image",
    "evaluate_label_folders",
]
