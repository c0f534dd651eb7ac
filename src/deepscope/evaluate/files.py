"""Evaluating folders of predicted label images against folders of ground truth.

``deepscope segment`` writes ``OUT_DIR/<stem>.labels.tif`` per input image; ground truth is a
folder of label images (PNG or TIFF) named after the same stems, e.g.
``../shared/data/dsb2018/labels/<id>.png``. Files are paired by stem, never by position.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import DeepscopeError, InputError, PairingError
from deepscope.evaluate.segmentation import DSB_THRESHOLDS, InstanceReport, evaluate_instances

__all__ = ["LABELS_SUFFIX", "pair_label_files", "read_label_image", "evaluate_label_folders"]

#: File-name ending of the label images ``deepscope segment`` writes.
LABELS_SUFFIX = ".labels.tif"


def _listing(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def pair_label_files(pred_dir: str | os.PathLike[str], truth_dir: str | os.PathLike[str], *,
                     pred_suffix: str = LABELS_SUFFIX, subset: bool = False) -> list[tuple[str, Path, Path]]:
    """Pair predicted label files with truth label images by stem.

    Parameters
    ----------
    pred_dir : str or PathLike
        Folder holding ``<stem><pred_suffix>`` files (not searched recursively).
    truth_dir : str or PathLike
        Folder of truth label images (PNG, TIFF, ...; searched recursively); the stem is the
        file name without its image extension.
    pred_suffix : str, default ".labels.tif"
        Ending of the prediction files (case-insensitive).
    subset : bool, default False
        Allow truth images without a prediction (they are left out). By default every truth
        image must have a prediction, so an image that failed to segment is not silently dropped.

    Returns
    -------
    list of (stem, pred_path, truth_path)
        Sorted by stem.

    Raises
    ------
    FileNotFoundError
        If a folder does not exist.
    deepscope.errors.PairingError
        If there is no prediction file, a prediction has no truth, a truth image has no
        prediction (unless ``subset``), or two truth files share a stem; the message names them.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from deepscope.io import write_labels
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_labels(d / "out" / "a.labels.tif", np.ones((4, 4), np.int32))
    >>> _ = write_labels(d / "truth" / "a.tif", np.ones((4, 4), np.int32))
    >>> [(s, p.name, t.name) for s, p, t in pair_label_files(d / "out", d / "truth")]
    [('a', 'a.labels.tif', 'a.tif')]
    """
    from deepscope.data.loader import image_stem
    from deepscope.io import find_images

    pdir, tdir = Path(pred_dir), Path(truth_dir)
    for what, d in (("prediction folder", pdir), ("truth folder", tdir)):
        if not d.exists():
            raise FileNotFoundError(f"No such {what}: '{d}'")
        if not d.is_dir():
            raise InputError(f"{what} '{d}' is a file; give a folder")
    suffix = pred_suffix.lower()
    preds: dict[str, Path] = {}
    for f in sorted(pdir.iterdir()):
        if f.is_file() and f.name.lower().endswith(suffix) and not f.name.startswith("."):
            preds[f.name[: -len(suffix)]] = f
    if not preds:
        raise PairingError(f"no '*{pred_suffix}' files in prediction folder '{pdir}'; run `deepscope segment "
                           f"... --output {pdir}` first, or give --pred-suffix for other names")
    truths: dict[str, Path] = {}
    for f in find_images(tdir):
        stem = image_stem(f)
        if stem in truths:
            raise PairingError(f"truth folder '{tdir}' has two files with stem {stem!r}: '{truths[stem]}' and "
                               f"'{f}'; keep one")
        truths[stem] = f
    no_truth = sorted(set(preds) - set(truths))
    if no_truth:
        raise PairingError(f"{len(no_truth)} prediction(s) in '{pdir}' have no truth image in '{tdir}': "
                           f"{_listing([preds[s].name for s in no_truth])}. Predicted files are paired with "
                           "truth files of the same stem")
    no_pred = sorted(set(truths) - set(preds))
    if no_pred and not subset:
        raise PairingError(f"{len(no_pred)} truth image(s) in '{tdir}' have no prediction in '{pdir}': "
                           f"{_listing([truths[s].name for s in no_pred])}. Segment them, or evaluate only the "
                           "predicted images with subset=True (--subset)")
    return [(s, preds[s], truths[s]) for s in sorted(preds)]


def read_label_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a label image (any format deepscope reads) as a 2-D integer array.

    Leading axes of length 1 are dropped; grey PNGs saved as RGB(A) with equal channels are
    accepted.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    deepscope.errors.ImageReadError
        If the file cannot be read.
    deepscope.errors.InputError
        If it is not a 2-D integer image.
    """
    from deepscope.io import read_image

    img = read_image(path, checksum=False)
    data, axes = img.data, img.axes
    while data.ndim > 2 and data.shape[0] == 1:
        data, axes = data[0], axes[1:]
    if data.ndim == 3 and axes[-1] in "SC" and data.shape[-1] in (3, 4) and all(
            np.array_equal(data[..., 0], data[..., k]) for k in range(1, 3)):
        data = data[..., 0]
    if data.ndim != 2:
        raise InputError(f"{path}: a label image must be 2-D, got shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        if np.issubdtype(data.dtype, np.floating) and np.all(data == np.round(data)) and data.min() >= 0:
            return data.astype(np.int64)
        raise InputError(f"{path}: a label image holds integer ids (0 = background), got dtype {data.dtype}")
    return data


def evaluate_label_folders(pred_dir: str | os.PathLike[str], truth_dir: str | os.PathLike[str], *,
                           pred_suffix: str = LABELS_SUFFIX, subset: bool = False,
                           thresholds: Sequence[float] = DSB_THRESHOLDS) -> InstanceReport:
    """Score a folder of predicted label images against a folder of truth label images.

    Pairs files with :func:`pair_label_files`, then scores them with
    :func:`~deepscope.evaluate.evaluate_instances`. A pair that cannot be scored (unreadable
    file, different shapes) gets a row in ``report.errors`` naming both files, and the others
    are still scored.

    Parameters
    ----------
    pred_dir, truth_dir : str or PathLike
        Folders of predictions (``<stem>.labels.tif``) and of truth label images.
    pred_suffix : str, default ".labels.tif"
        Ending of the prediction files.
    subset : bool, default False
        Allow truth images without a prediction.
    thresholds : sequence of float, default :data:`DSB_THRESHOLDS`
        IoU thresholds.

    Returns
    -------
    InstanceReport
        ``per_image`` has the stems in ``image``.

    Raises
    ------
    FileNotFoundError, deepscope.errors.PairingError
        As :func:`pair_label_files`.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from deepscope.io import write_labels
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> lab = np.zeros((8, 8), np.int32); lab[1:4, 1:4] = 1; lab[5:8, 5:8] = 2
    >>> _ = write_labels(d / "out" / "a.labels.tif", lab)
    >>> _ = write_labels(d / "truth" / "a.tif", lab)
    >>> evaluate_label_folders(d / "out", d / "truth").summary["dsb_score"]
    1.0
    """
    pairs = pair_label_files(pred_dir, truth_dir, pred_suffix=pred_suffix, subset=subset)
    read_errors: list[dict[str, str]] = []

    def load() -> Iterator[tuple[str, Any, Any]]:
        for stem, pred_path, truth_path in pairs:
            try:
                truth = read_label_image(truth_path)
                pred = read_label_image(pred_path)
            except (DeepscopeError, OSError) as exc:
                read_errors.append({"image": stem, "error": str(exc)})
                continue
            if truth.shape != pred.shape:
                read_errors.append({"image": stem, "error": f"prediction '{pred_path}' has shape {pred.shape} but "
                                                            f"truth '{truth_path}' has shape {truth.shape}"})
                continue
            yield stem, truth, pred

    report = evaluate_instances(load(), thresholds=thresholds, on_error="skip")
    if not read_errors:
        return report
    import pandas as pd

    errors = pd.concat([pd.DataFrame(read_errors, columns=["image", "error"]), report.errors], ignore_index=True)
    errors = errors.sort_values("image", kind="stable").reset_index(drop=True)
    summary = dict(report.summary)
    summary["n_failed"] = len(errors)
    return InstanceReport(report.per_image, report.per_threshold, summary, errors)
