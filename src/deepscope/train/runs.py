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
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepscope.errors import ConfigError, InputError
from deepscope.train.config import TrainConfig

__all__ = ["DEFAULT_FRACTIONS", "PARTS", "FINE_TUNE_DEFAULTS", "resolve_split", "split_parts", "load_train_settings",
           "resolve_train_config", "task_options", "write_run_files", "fit_model", "data_hashes"]

#: Split fractions (train, valid, test) of ``deepscope train`` and ``evaluate --subset``.
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
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
              progress: bool | None = None, on_epoch_end: Any = None, fine_tune: bool = False) -> Any:
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

    Returns
    -------
    TrainResult

    Raises
    ------
    deepscope.errors.InputError
        No training images.
    """
    from deepscope.models.base import BEST_WEIGHTS, resolve_device
    from deepscope.train.trainer import Trainer

    if train is None or not len(train):
        raise InputError("no training images: the training part of the split is empty; use more images or other "
                         "split fractions")
    has_valid = valid is not None and len(valid) > 0
    if not has_valid:
        valid = None
        warnings.warn("no validation images: the best training-loss weights are kept and nothing is calibrated",
                      stacklevel=2)
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
    result = Trainer(model.net, task, config, run, progress=progress, on_epoch_end=on_epoch_end).fit(resume=resume)
    if (run / BEST_WEIGHTS).exists():
        model.load_weights(run / BEST_WEIGHTS)
    model.plugin.after_fit(model, task, valid)
    training = {**({} if parent else dict(model.model_card.training)), "config": config.to_dict(),
                "epochs_done": result.epochs_done, "best_epoch": result.best_epoch, "best_score": result.best_score,
                "seconds": round(result.seconds, 1), "n_train": len(train), "n_valid": len(valid) if valid else 0}
    if parent:
        model.plugin.after_fine_tune(model, train, valid)
        training.update(parent=parent, data={"train": data_hashes(train),
                                             "valid": data_hashes(valid) if valid is not None else []})
        model.update_card(name=run.name, training=training, metrics={}, evaluation={}, headline=(), created="",
                          variant="", description=f"{parent['name']} fine-tuned on {len(train)} image(s) "
                          f"({run.name})" + (f"; was: {d}" if (d := model.model_card.description) else ""))
    else:
        model.update_card(training=training)
    model.save(run)
    return result
