"""Trainer: the one training loop every deepscope model uses.

A *task* (counting, segmentation, restoration ...) supplies batches, the loss and the
validation metrics; the Trainer owns everything else: optimiser, schedule, mixed precision,
channels-last, gradient clipping, validation, early stopping, checkpoints (every N steps and
at the best validation score), exact resume, a progress bar and a metrics log.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from deepscope.errors import ConfigError
from deepscope.io import atomic_path, write_text
from deepscope.models.base import BEST_WEIGHTS, resolve_device
from deepscope.train.config import TrainConfig

__all__ = ["Trainer", "Task", "TrainResult", "resolve_device", "CHECKPOINT", "BEST"]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = BEST_WEIGHTS


class Task(Protocol):
    """What a task gives the Trainer."""

    def batches(self, rng: np.random.Generator, device: torch.device) -> Iterator[tuple[Any, Any]]:
        """Yield ``(inputs, targets)`` for one epoch (tensors on ``device``), drawing randomness from ``rng``."""

    def loss(self, outputs: torch.Tensor, targets: Any) -> torch.Tensor:
        """Scalar training loss."""

    def validate(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        """Validation metrics (must include the config's ``monitor`` key, e.g. ``val_loss``)."""

    def steps_per_epoch(self) -> int:
        """Default number of optimiser steps in one epoch."""


@dataclass(frozen=True)
class TrainResult:
    """Summary of a training run."""

    run_dir: str
    epochs_done: int
    steps_done: int
    best_epoch: int
    best_score: float
    stopped_early: bool
    seconds: float
    history: tuple[dict[str, float], ...]


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str) -> None:
    rng.bit_generator.state = json.loads(state)


class Trainer:
    """Train a network on a task, with checkpoints and exact resume.

    Parameters
    ----------
    net : torch.nn.Module
        The network (built from an ArchConfig).
    task : Task
        Supplies batches, loss and validation metrics.
    config : TrainConfig
    run_dir : str or PathLike
        Folder for ``checkpoint.pt`` (resumable), ``best.safetensors`` (best validation weights),
        ``metrics.jsonl`` (one line per epoch) and ``train_config.json``.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    on_epoch_end : callable, optional
        Called with ``(epoch, metrics)`` after every epoch (e.g. to save a model card).

    Examples
    --------
    >>> trainer = Trainer(net, task, TrainConfig(epochs=2), "runs/demo")   # doctest: +SKIP
    >>> result = trainer.fit()                                            # doctest: +SKIP
    """

    def __init__(self, net: nn.Module, task: Task, config: TrainConfig, run_dir: str | os.PathLike[str], *,
                 progress: bool | None = None, on_epoch_end: Any = None) -> None:
        self._t0 = time.perf_counter()
        self.net = net
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config.device)
        self.progress = progress
        self.on_epoch_end = on_epoch_end
        self.net.to(self.device)
        if self.device.type == "cuda" and config.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.amp_dtype = self._amp_dtype()
        self.optimizer = self._make_optimizer()
        self.steps_per_epoch = int(config.steps_per_epoch or task.steps_per_epoch())
        if self.steps_per_epoch < 1:
            raise ConfigError("the task yields no training batches; is the training set empty?")
        self.total_steps = self.steps_per_epoch * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.rng = np.random.default_rng(config.seed)
        self.epoch = 0            # epochs completed
        self.step = 0             # optimiser steps completed
        self.step_in_epoch = 0
        self.best_score = math.inf if config.mode == "min" else -math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.history: list[dict[str, float]] = []
        self._epoch_rng_state: str | None = None
        self.ema: nn.Module | None = None
        if config.ema > 0:
            import copy

            self.ema = copy.deepcopy(self.net).eval()
            for p in self.ema.parameters():
                p.requires_grad_(False)

    @property
    def eval_net(self) -> nn.Module:
        """The network validated and saved: the weight average when ``ema`` is on, else the network."""
        return self.ema if self.ema is not None else self.net

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        # warm-up: a short run is not dominated by the random initial weights
        d = min(self.config.ema, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.state_dict().values(), self.net.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(p.detach(), alpha=1 - d)
            else:
                e.copy_(p)

    # ---------------------------------------------------------------- setup
    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.config.amp
        if amp == "off" or (amp == "auto" and self.device.type != "cuda"):
            return None
        if amp in ("auto", "bf16"):
            return torch.bfloat16
        return torch.float16

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        params = [p for p in self.net.parameters() if p.requires_grad]
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay, nesterov=True)

    def _lr_lambda(self, step: int) -> float:
        c = self.config
        if c.schedule == "exponential":
            return float(c.decay_rate ** (step // max(c.decay_steps, 1)))
        warm = 1.0
        if c.warmup_steps and step < c.warmup_steps:
            warm = (step + 1) / c.warmup_steps
        if c.schedule == "constant":
            return warm
        if c.schedule == "onecycle":
            prog = self._progress(step)
            if prog < 0.3:
                return 0.04 + 0.96 * prog / 0.3
            t = (prog - 0.3) / 0.7
            return max(0.5 * (1 + math.cos(math.pi * min(t, 1.0))), 1e-3)
        t = min(self._progress(step), 1.0)
        return warm * max(0.5 * (1 + math.cos(math.pi * t)), 1e-3)

    def _progress(self, step: int) -> float:
        if self.config.clock == "time" and self.config.time_budget:
            return (time.perf_counter() - self._t0) / self.config.time_budget
        return step / max(1, self.total_steps)

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write a resumable checkpoint (atomic)."""
        state = {
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            "rng": _rng_state(self.rng),
            "epoch_rng": self._epoch_rng_state or "",
            "torch_rng": torch.get_rng_state(),
            "best_score": float(self.best_score),
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": json.dumps(self.history),
            "config": json.dumps(self.config.to_dict()),
        }
        path = self.run_dir / CHECKPOINT
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return path

    def load_checkpoint(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Restore model, optimiser, scheduler, RNG and counters from ``run_dir/checkpoint.pt``.

        Returns False when there is no checkpoint. Loads with ``weights_only=True``: nothing
        in the file is executed.
        """
        path = Path(path) if path else self.run_dir / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.net.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"] if state.get("ema") else state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.step_in_epoch = int(state["step_in_epoch"])
        _set_rng_state(self.rng, state["rng"])
        self._epoch_rng_state = state["epoch_rng"] or None
        torch.set_rng_state(state["torch_rng"].cpu())
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.history = json.loads(state["history"])
        logger.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.step)
        return True

    def _save_best(self) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.eval_net.state_dict().items()}
        with atomic_path(self.run_dir / BEST) as tmp:
            save_file(tensors, str(tmp))

    # ---------------------------------------------------------------- loop
    def fit(self, *, resume: bool = True, until_epoch: int | None = None) -> TrainResult:
        """Train until ``epochs``, early stopping or the time budget; resume from a checkpoint if present.

        ``until_epoch`` stops after that epoch (validated and checkpointed) while the schedule still
        counts the config's ``epochs``: a run of N epochs trained a few epochs at a time, each ``fit``
        resuming the last, follows the same learning rates as one ``fit`` of all N.

        Returns
        -------
        TrainResult
        """
        c = self.config
        if resume:
            self.load_checkpoint()
        write_text(self.run_dir / "train_config.json", json.dumps(c.to_dict(), indent=2))
        t0 = self._t0 = time.perf_counter()
        stopped_early = False
        out_of_time = False
        bar = _Bar(total=self.total_steps, done=self.step, enabled=self.progress)
        try:
            last = c.epochs if until_epoch is None else min(int(until_epoch), c.epochs)
            while self.epoch < last and not stopped_early and not out_of_time:
                if self.step_in_epoch == 0 or self._epoch_rng_state is None:
                    self._epoch_rng_state = _rng_state(self.rng)
                epoch_rng = np.random.default_rng()
                _set_rng_state(epoch_rng, self._epoch_rng_state)
                # advance the master rng for the next epoch deterministically
                self.net.train()
                losses: list[float] = []
                it = self.task.batches(epoch_rng, self.device)
                for k, (x, y) in enumerate(it):
                    if k >= self.steps_per_epoch:
                        break
                    if k < self.step_in_epoch:  # replay the data stream after a resume
                        continue
                    loss = self._train_step(x, y)
                    losses.append(loss)
                    self.step += 1
                    self.step_in_epoch += 1
                    bar.update(self.step, f"epoch {self.epoch + 1}/{c.epochs} loss {loss:.4g}")
                    if c.checkpoint_every and self.step % c.checkpoint_every == 0:
                        self.save_checkpoint()
                    if c.time_budget is not None and time.perf_counter() - t0 > c.time_budget:
                        out_of_time = True
                        break
                # epoch end (or budget): validate, checkpoint
                self.rng.integers(0, 2**63)  # one draw per epoch keeps epochs' streams distinct
                metrics = {"epoch": self.epoch + 1, "step": self.step,
                           "train_loss": float(np.mean(losses)) if losses else float("nan"),
                           "lr": float(self.scheduler.get_last_lr()[0])}
                metrics.update(self._validate())
                self.epoch += 1
                self.step_in_epoch = 0
                self._epoch_rng_state = None
                score = metrics.get(c.monitor)
                if score is None:
                    raise ConfigError(f"monitor={c.monitor!r} is not among the validation metrics "
                                      f"{sorted(metrics)}")
                better = score < self.best_score if c.mode == "min" else score > self.best_score
                if better:
                    self.best_score = float(score)
                    self.best_epoch = self.epoch
                    self.bad_epochs = 0
                    self._save_best()
                else:
                    self.bad_epochs += 1
                metrics["best"] = float(self.best_score)
                metrics["seconds"] = time.perf_counter() - t0
                self.history.append(metrics)
                with open(self.run_dir / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(metrics) + "\n")
                if self.on_epoch_end is None:  # else the callback reports the epoch
                    bar.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in metrics.items()))
                self.save_checkpoint()
                if self.on_epoch_end is not None:
                    self.on_epoch_end(self.epoch, metrics)
                if c.early_stopping is not None and self.bad_epochs >= c.early_stopping:
                    stopped_early = True
        finally:
            bar.close()
        return TrainResult(str(self.run_dir), self.epoch, self.step, self.best_epoch, float(self.best_score),
                           stopped_early, time.perf_counter() - t0, tuple(self.history))

    def _train_step(self, x: Any, y: Any) -> float:
        c = self.config
        if self.device.type == "cuda" and c.channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            out = self.net(x)
        loss = self.task.loss(out.float(), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.step}; lower lr "
                                     "or check the inputs for NaN")
        self.scaler.scale(loss).backward()
        if c.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.net.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_ema()
        return float(loss.detach())

    def _validate(self) -> dict[str, float]:
        return validate_network(self.eval_net, self.task, self.device, amp_dtype=self.amp_dtype)


def validate_network(net: nn.Module, task: Task, device: torch.device, *,
                     amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """A training task's validation metrics of ``net`` (eval mode, no gradients): what the Trainer monitors.

    Used by the Trainer after each epoch and, before a fine-tune, to score the parent model on the same
    validation images with the same metric, so the two scores can be compared.
    """
    net.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        out = task.validate(net, device)
    return {k: float(v) for k, v in out.items()}


class _Bar:
    """A rich progress bar when interactive; periodic log lines otherwise."""

    def __init__(self, total: int, done: int, enabled: bool | None) -> None:
        import sys

        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("training", total=total, completed=done)

    def update(self, done: int, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, description=text)

    def log(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.log(text)
        else:
            logger.info(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
