"""Training runs as ``deepscope train`` makes them, as a library: split, settings, run folder, fit.

:func:`fit_model` is what ``model.fit``, ``deepscope train`` and the recipes all call, so a model
trained from Python has the same run folder as one trained on the command line:

``model.safetensors`` + ``model.json``
    The trained model (loadable with ``load_model(RUN_DIR)`` / ``--model RUN_DIR``).
``checkpoint.pt``, ``best.safetensors``, ``metrics.jsonl``, ``train_config.json``
    The Trainer's: resumable checkpoint, best validation weights, one line per epoch.
``train.yaml``
    The resolved training settings and task options (reusable as ``--config``).
``run.yaml``, ``split.csv``
    What was trained on: the data, the split and its parts; which image went to which part.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepscope.errors import ConfigError, InputError, user_stacklevel
from deepscope.train.config import TrainConfig

__all__ = ["DEFAULT_FRACTIONS", "FINE_TUNE_FRACTIONS", "SMALL_FINE_TUNE", "default_fractions", "PARTS",
           "FINE_TUNE_DEFAULTS", "resolve_split", "split_parts", "load_train_settings", "resolve_train_config",
           "task_options", "write_run_files", "fit_model", "data_hashes"]

#: Split fractions (train, valid, test) of ``deepscope train`` and ``evaluate --subset``.
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
#: Split of a fine-tune on fewer than :data:`SMALL_FINE_TUNE` images: no test part (a user with 10 annotated
#: images cannot spare one for a test nobody reads), 30% to validate on (3 of 10 images, not 1).
FINE_TUNE_FRACTIONS = (0.7, 0.3, 0.0)
#: Below this many images a fine-tune splits by :data:`FINE_TUNE_FRACTIONS`.
SMALL_FINE_TUNE = 30
#: Names of the parts of a split, in the order of the fractions.
PARTS = ("train", "valid", "test")
#: Training settings of a fine-tune where not given: a learning rate 5x below a fresh run's, short
#: epochs (10 steps, then validation), three minutes of training (the schedule follows the clock)
#: and early stopping after 8 epochs without a better validation score. Sized for a laptop CPU and
#: 5-20 annotated images.
FINE_TUNE_DEFAULTS: dict[str, Any] = {"lr": 2e-4, "epochs": 1000, "steps_per_epoch": 10, "time_budget": 180.0,
                                      "clock": "time", "early_stopping": 8, "warmup_steps": 0}
#: Training-task arguments the plugin sets from the model and the data (never from a config).
_TASK_OWNED = {"images", "counts", "labels", "inputs", "targets", "valid_images", "valid_counts", "valid_labels",
               "valid_inputs", "valid_targets", "valid_classes", "classes", "densities", "head", "n_classes", "mode",
               "postprocess", "stride", "upscale", "loss", "batch_size", "device"}


def resolve_split(dataset: Any, split: str | None) -> str:
    """The splitter name: ``split``, or ``field`` when the metadata has a field column, else ``random``."""
    if split is not None:
        return split
    return "field" if "field" in dataset.metadata.columns else "random"


def default_fractions(n_images: int, *, fine_tune: bool = False) -> tuple[float, float, float]:
    """The split fractions (train, valid, test) when none are given: :data:`DEFAULT_FRACTIONS`, or for a
    fine-tune on fewer than :data:`SMALL_FINE_TUNE` images :data:`FINE_TUNE_FRACTIONS` (no test part).

    Examples
    --------
    >>> default_fractions(10, fine_tune=True), default_fractions(10)
    ((0.7, 0.3, 0.0), (0.8, 0.1, 0.1))
    """
    return FINE_TUNE_FRACTIONS if fine_tune and n_images < SMALL_FINE_TUNE else DEFAULT_FRACTIONS


def split_parts(dataset: Any, *, split: str | None = None, seed: int = 0,
                fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> dict[str, Any]:
    """Split a dataset into ``{"train", "valid", "test"}`` parts (``split=None``: by field when there is one)."""
    from deepscope.data import get_splitter

    parts = get_splitter(resolve_split(dataset, split)).train_valid_test_split(dataset, *fractions, seed=seed)
    return dict(zip(PARTS, parts))


def task_options(task_class: Any) -> set[str]:
    """Keyword options of a training-task class that a config may set (``crop``, ``jitter`` ...)."""
    params = inspect.signature(task_class.__init__).parameters
    return {n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n not in _TASK_OWNED}


def load_train_settings(path: str | os.PathLike[str] | None, *, allowed_task_options: set[str]
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a training YAML: :class:`TrainConfig` keys and a ``task:`` mapping of task options.

    Raises
    ------
    FileNotFoundError
        No such file.
    deepscope.errors.ConfigError
        Not YAML, not a mapping, or an unknown key (named, with the known ones).
    deepscope.errors.LimitError
        Over ``limits().yaml_bytes`` or, aliases expanded, ``limits().yaml_nodes``.
    """
    if path is None:
        return {}, {}
    from deepscope.io.yamlsafe import load_yaml, read_yaml_file

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such config file: '{p}'")
    # a regular file within limits().yaml_bytes; nesting and node count (aliases expanded) checked
    doc = load_yaml(read_yaml_file(p, what="training config"), source=str(p)) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"'{p}' must hold a mapping of settings (key: value), got {type(doc).__name__}")
    task = doc.pop("task", None) or {}
    if not isinstance(task, dict):
        raise ConfigError(f"'{p}': 'task' must be a mapping of task options (e.g. crop: 256)")
    known = set(TrainConfig.__dataclass_fields__)
    for key in doc:
        if key not in known:
            raise ConfigError(f"'{p}': unknown training setting {key!r}; known: {sorted(known)} and 'task' "
                              f"(task options: {sorted(allowed_task_options)})")
    for key in task:
        if key not in allowed_task_options:
            raise ConfigError(f"'{p}': unknown task option {key!r} under 'task'; known: {sorted(allowed_task_options)}")
    return dict(doc), dict(task)


def resolve_train_config(model: Any, settings: Mapping[str, Any], *, has_valid: bool,
                         fine_tune: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` of a run: ``settings`` (``None`` values dropped) over the defaults
    (with ``fine_tune``, over :data:`FINE_TUNE_DEFAULTS` first).

    Without ``monitor``, the model's plugin chooses (e.g. ``val_mae`` for counting); without
    validation data the lowest training loss is kept. ``device`` defaults to the model's.
    """
    merged = {**(FINE_TUNE_DEFAULTS if fine_tune else {}), **{k: v for k, v in settings.items() if v is not None}}
    if fine_tune and merged.get("clock") == "time" and not merged.get("time_budget"):
        merged["clock"] = "steps"
    if "monitor" not in merged:
        monitor, mode = model.default_monitor() if has_valid else ("train_loss", "min")
        merged["monitor"] = monitor
        merged.setdefault("mode", mode)
    merged.setdefault("device", model.device_name)
    return TrainConfig.from_dict(merged)


def write_run_files(run_dir: str | os.PathLike[str], config: TrainConfig, task_opts: Mapping[str, Any],
                    run_info: Mapping[str, Any], parts: Mapping[str, Any]) -> None:
    """Write ``train.yaml``, ``run.yaml`` and ``split.csv`` into a run folder (atomically)."""
    import pandas as pd
    import yaml

    from deepscope import __version__
    from deepscope.io import csv_text, to_jsonable, write_text

    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = config.to_dict()
    if task_opts:
        doc["task"] = dict(task_opts)
    write_text(out / "train.yaml", "# resolved training config (reusable with --config)\n"
               + yaml.safe_dump(to_jsonable(doc), sort_keys=False))
    info = {"deepscope_version": __version__, **run_info,
            "parts": {k: len(v) if v is not None else 0 for k, v in parts.items()}}
    write_text(out / "run.yaml", yaml.safe_dump(to_jsonable(info), sort_keys=False))
    rows = []
    for name, part in parts.items():
        if part is None:
            continue
        paths = part.paths or [str(i) for i in part.ids]
        rows += [{"path": str(p), "part": name} for p in paths]
    write_text(out / "split.csv", csv_text(pd.DataFrame(rows, columns=["path", "part"])))


def data_hashes(dataset: Any) -> list[dict[str, str]]:
    """``[{"path", "sha256"}]`` of a dataset's images: the file's SHA-256, or of the pixels for in-memory ones."""
    import hashlib

    import numpy as np

    from deepscope.io.readers import sha256_file

    out = []
    paths = list(dataset.paths or [])
    for i in range(len(dataset)):
        p = paths[i] if i < len(paths) else ""
        if p and Path(p).is_file():
            out.append({"path": str(p), "sha256": sha256_file(p)})
        else:
            a = np.ascontiguousarray(dataset.get_image(i))
            digest = hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()
            out.append({"path": str(p) or f"#{i}", "sha256": digest})
    return out


def fit_model(model: Any, train: Any, valid: Any = None, *, run_dir: str | os.PathLike[str],
              config: TrainConfig | None = None, task_opts: Mapping[str, Any] | None = None,
              run_info: Mapping[str, Any] | None = None, test: Any = None, resume: bool = True,
              progress: bool | None = None, on_epoch_end: Any = None, fine_tune: bool = False,
              keep_better: bool = True) -> Any:
    """Train a model into a run folder: the one training path of deepscope.

    Parameters
    ----------
    model : DeepscopeModel
        Trained in place (its network is rebuilt from ``config.seed`` first, then the best weights are
        loaded and its plugin's ``after_fit`` runs, e.g. interval calibration on ``valid``).
        With ``fine_tune``, a trained model (a shipped name or an earlier run folder, loaded) whose
        weights are the starting point instead.
    train, valid, test : ImageDataset
        The parts of the split (``test`` is only recorded in ``split.csv``).
    run_dir : str or PathLike
        The run folder (module docstring); a rerun with the same folder resumes.
    config : TrainConfig, optional
        Default: :func:`resolve_train_config` of no settings.
    task_opts : mapping, optional
        Options of the plugin's training task (e.g. ``crop``).
    run_info : mapping, optional
        What ``run.yaml`` records besides the parts (command, data, split ...).
    resume : bool
    progress : bool, optional
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, metrics)`` after each epoch (the CLI prints one line per epoch with it).
    fine_tune : bool
        Start from the model's weights and card (architecture, normalisation, post-processing). The
        plugin's ``after_fit`` re-tunes post-processing or recalibrates intervals on ``valid``, and its
        ``after_fine_tune`` updates what was fitted on the parent's data (domain checks, input
        statistics). The new card is named after the run folder and records its parent (name and
        weights SHA-256, its training record) and the SHA-256 of every training and validation image;
        the parent's metrics are dropped (they were measured on the parent). Use
        :func:`resolve_train_config` with ``fine_tune=True`` for the fine-tuning defaults.
        Before training, the parent is scored on ``valid`` with the metric that picks the best epoch
        (``config.monitor``); the card's ``training.fine_tune`` records both scores and which was kept.
    keep_better : bool
        With ``fine_tune`` and validation images: when the fine-tune's best score does not beat the
        parent's, the run holds the parent unchanged (weights, post-processing, metrics) and a warning
        says so, so a fine-tune never makes a model worse on the user's own images. ``False`` keeps the
        fine-tuned weights anyway (both scores are still recorded).

    Returns
    -------
    TrainResult

    Raises
    ------
    deepscope.errors.InputError
        No training images.
    """
    from deepscope.models.base import BEST_WEIGHTS, resolve_device
    from deepscope.train.trainer import Trainer, validate_network

    if train is None or not len(train):
        raise InputError("no training images: the training part of the split is empty; use more images or other "
                         "split fractions")
    has_valid = valid is not None and len(valid) > 0
    if not has_valid:
        valid = None
        warnings.warn("no validation images: the best training-loss weights are kept and nothing is calibrated",
                      stacklevel=user_stacklevel())
    parent = None
    if fine_tune:
        card = model.model_card
        if card.weights is None:
            raise InputError(f"fine-tuning needs a trained model to start from (a shipped name, a run folder or a "
                             f"model file); {model.name!r} has no weights yet")
        parent = {"name": card.name, "weights_sha256": card.weights.sha256, "variant": card.variant,
                  "source": model.source or card.name, "training": dict(card.training)}
    config = config or resolve_train_config(model, {}, has_valid=has_valid, fine_tune=fine_tune)
    opts = dict(task_opts or {})
    run = Path(run_dir)
    info = {"command": "fit", **dict(run_info or {}), "architecture": model.arch.to_dict(),
            "representation": model.representation}
    if parent:
        info["fine_tuned_from"] = {k: parent[k] for k in ("name", "weights_sha256")}
    write_run_files(run, config, opts, info, {"train": train, "valid": valid, "test": test})
    model.model_dir = run
    if parent is None:
        model.reset_network(seed=config.seed)
    device = resolve_device(config.device)
    task = model.plugin.training_task(model, train, valid, device=device, batch_size=config.batch_size, **opts)
    guard = None
    if parent is not None and valid is not None:  # the parent, scored as the fine-tune will be, before training
        parent_weights = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
        parent_score = validate_network(model.net.to(device), task, device).get(config.monitor)
        guard = {"monitor": config.monitor, "mode": config.mode, "n_valid": len(valid),
                 "parent_score": None if parent_score is None else float(parent_score)}
    result = Trainer(model.net, task, config, run, progress=progress, on_epoch_end=on_epoch_end).fit(resume=resume)
    if (run / BEST_WEIGHTS).exists():
        model.load_weights(run / BEST_WEIGHTS)
    if guard is not None:
        guard["fine_tuned_score"] = float(result.best_score) if result.best_epoch >= 0 else None
        guard["kept"] = "fine-tuned" if _beats(guard) else "parent"
        if guard["kept"] == "parent" and not keep_better:
            guard["kept"] = "fine-tuned (asked to keep it although it scored below the parent)"
        if guard["kept"] == "parent":
            return _keep_parent(model, parent_weights, parent, guard, run, config, result, train, valid)
    model.plugin.after_fit(model, task, valid)
    training = {**({} if parent else dict(model.model_card.training)), "config": config.to_dict(),
                "epochs_done": result.epochs_done, "best_epoch": result.best_epoch, "best_score": result.best_score,
                "seconds": round(result.seconds, 1), "n_train": len(train), "n_valid": len(valid) if valid else 0}
    if parent:
        model.plugin.after_fine_tune(model, train, valid)
        training.update(parent=parent, data={"train": data_hashes(train),
                                             "valid": data_hashes(valid) if valid is not None else []})
        if guard is not None:
            training["fine_tune"] = guard
        model.update_card(name=run.name, training=training, metrics={}, evaluation={}, headline=(), created="",
                          variant="", description=f"{parent['name']} fine-tuned on {len(train)} image(s) "
                          f"({run.name})" + (f"; was: {d}" if (d := model.model_card.description) else ""))
    else:
        model.update_card(training=training)
    model.save(run)
    return result


def _beats(guard: Mapping[str, Any]) -> bool:
    """Whether the fine-tune's best validation score is strictly better than the parent's (same metric, same
    images); a parent without a score (its metric undefined there) is beaten by any score."""
    new, old = guard.get("fine_tuned_score"), guard.get("parent_score")
    if new is None or not math.isfinite(new):
        return False
    if old is None or not math.isfinite(old):
        return True
    return new < old if guard["mode"] == "min" else new > old


def _keep_parent(model: Any, weights: Mapping[str, Any], parent: Mapping[str, Any], guard: Mapping[str, Any],
                 run: Path, config: TrainConfig, result: Any, train: Any, valid: Any) -> Any:
    """Save the parent, unchanged, as the run's model: the fine-tune did not beat it on the validation images.

    Its weights, post-processing and metrics are the parent's (they still hold); the card is named after
    the run and records the attempt (both scores) and the data, so a user sees what happened.
    """
    model.net.load_state_dict(dict(weights))
    training = {**dict(model.model_card.training), "config": config.to_dict(), "epochs_done": result.epochs_done,
                "best_epoch": result.best_epoch, "best_score": result.best_score, "seconds": round(result.seconds, 1),
                "n_train": len(train), "n_valid": len(valid), "parent": dict(parent), "fine_tune": dict(guard),
                "data": {"train": data_hashes(train), "valid": data_hashes(valid)}}
    model.update_card(name=run.name, training=training, description=f"{parent['name']}, kept unchanged: fine-tuning "
                      f"on {len(train)} image(s) did not beat it on {len(valid)} validation image(s) ({run.name})")
    model.save(run)
    warnings.warn(f"the fine-tune did not beat {parent['name']} on your {len(valid)} validation image(s) "
                  f"({guard['monitor']}: {parent['name']} {_fmt(guard.get('parent_score'))}, fine-tuned "
                  f"{_fmt(guard.get('fine_tuned_score'))}); {run} holds {parent['name']}'s weights unchanged. Annotate "
                  "more images, or train longer (--time-budget)", stacklevel=user_stacklevel())
    return result


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"
