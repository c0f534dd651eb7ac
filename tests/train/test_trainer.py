from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepscope.errors import ConfigError
from deepscope.models import ArchConfig, build_network
from deepscope.tasks.count.training import CountTask
from deepscope.tasks.segment.training import SegmentTask
from deepscope.train import Trainer, TrainConfig


def _count_task(n=12, size=32, seed=0):
    rng = np.random.default_rng(seed)
    imgs, counts = [], []
    for _ in range(n):
        k = int(rng.integers(0, 6))
        img = np.zeros((size, size), np.float32)
        for _ in range(k):
            r, c = rng.integers(4, size - 4, 2)
            img[r - 2:r + 3, c - 2:c + 3] = 1.0
        imgs.append(img)
        counts.append(k)
    return CountTask(imgs[:9], counts[:9], valid_images=imgs[9:], valid_counts=counts[9:], batch_size=3)


def _net(seed=0):
    torch.manual_seed(seed)
    return build_network(ArchConfig("unet", 1, 2, base=4, depth=2))


def _weights(net):
    return torch.cat([p.detach().flatten() for p in net.state_dict().values() if p.is_floating_point()])


def test_exact_resume_matches_uninterrupted(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=3, lr=1e-2, seed=3, device="cpu", monitor="val_mae")
    a = _net()
    Trainer(a, _count_task(), cfg, tmp_path / "a", progress=False).fit()

    def interrupt(epoch, metrics):
        if epoch == 1:
            raise KeyboardInterrupt  # e.g. Ctrl-C right after the epoch-1 checkpoint

    b = _net()
    with pytest.raises(KeyboardInterrupt):
        Trainer(b, _count_task(), cfg, tmp_path / "b", progress=False, on_epoch_end=interrupt).fit()
    c = _net(seed=99)  # different init: everything must come from the checkpoint
    res = Trainer(c, _count_task(), cfg, tmp_path / "b", progress=False).fit()
    assert res.epochs_done == 3
    torch.testing.assert_close(_weights(a), _weights(c), rtol=0, atol=0)
    hist = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_until_epoch_trains_a_schedule_in_pieces(tmp_path):
    """fit(until_epoch=k) stops after epoch k while the cosine still spans the config's epochs: fits of 1, then 3,
    then all epochs give the weights and learning rates of one uninterrupted fit."""
    cfg = TrainConfig(epochs=4, batch_size=3, lr=1e-2, seed=5, device="cpu", monitor="val_mae", schedule="cosine")
    a = _net()
    whole = Trainer(a, _count_task(), cfg, tmp_path / "a", progress=False).fit()
    b = _net()
    first = Trainer(b, _count_task(), cfg, tmp_path / "b", progress=False).fit(until_epoch=1)
    assert first.epochs_done == 1
    assert Trainer(_net(seed=7), _count_task(), cfg, tmp_path / "b", progress=False).fit(until_epoch=3).epochs_done == 3
    c = _net(seed=9)
    last = Trainer(c, _count_task(), cfg, tmp_path / "b", progress=False).fit(until_epoch=10)  # capped at 4
    assert last.epochs_done == 4
    torch.testing.assert_close(_weights(a), _weights(c), rtol=0, atol=0)
    lrs = [h["lr"] for h in whole.history]
    assert [h["lr"] for h in last.history] == lrs and lrs[0] > lrs[1] > lrs[2] > lrs[3]


def test_resume_mid_epoch_from_step_checkpoint(tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=3, lr=1e-2, seed=1, device="cpu", monitor="val_mae")
    a = _net()
    Trainer(a, _count_task(), cfg, tmp_path / "a", progress=False).fit()
    # simulate a kill after step 4 (mid epoch 2): train with a checkpoint every step, stop by time budget hack
    b = _net()
    tr = Trainer(b, _count_task(), TrainConfig(**{**cfg.to_dict(), "checkpoint_every": 1}), tmp_path / "b",
                 progress=False)
    steps = []
    orig = tr._train_step

    def step_then_maybe_die(x, y):
        loss = orig(x, y)
        steps.append(1)
        if len(steps) == 4:
            tr.step += 1
            tr.step_in_epoch += 1
            tr.save_checkpoint()
            raise KeyboardInterrupt
        return loss

    tr._train_step = step_then_maybe_die
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    c = _net(seed=5)
    Trainer(c, _count_task(), cfg, tmp_path / "b", progress=False).fit()
    torch.testing.assert_close(_weights(a), _weights(c), rtol=0, atol=0)


def test_best_checkpoint_and_early_stopping(tmp_path):
    cfg = TrainConfig(epochs=50, batch_size=3, lr=1e-9, seed=0, device="cpu", monitor="val_mae", early_stopping=2)
    res = Trainer(_net(), _count_task(), cfg, tmp_path, progress=False).fit()
    assert res.stopped_early and res.epochs_done < 50
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "checkpoint.pt").exists()
    assert json.loads((tmp_path / "train_config.json").read_text())["early_stopping"] == 2


def test_training_reduces_count_error(tmp_path):
    task = _count_task(n=24)
    cfg = TrainConfig(epochs=12, batch_size=3, lr=3e-3, seed=0, device="cpu", monitor="val_mae")
    net = _net()
    with torch.no_grad():
        net.head.bias.fill_(-5)
    before = task.validate(net.eval(), torch.device("cpu"))["val_mae"]
    res = Trainer(net, task, cfg, tmp_path, progress=False).fit()
    assert res.best_score < before * 0.6


def test_book_exponential_schedule(tmp_path):
    cfg = TrainConfig(epochs=1, steps_per_epoch=1, schedule="exponential", lr=1e-3, decay_rate=0.9, decay_steps=250,
                      device="cpu", monitor="val_mae")
    tr = Trainer(_net(), _count_task(), cfg, tmp_path, progress=False)
    assert tr._lr_lambda(0) == 1.0 and tr._lr_lambda(249) == 1.0
    assert tr._lr_lambda(250) == pytest.approx(0.9) and tr._lr_lambda(750) == pytest.approx(0.729)


def test_time_budget_stops(tmp_path):
    cfg = TrainConfig(epochs=10**6, batch_size=3, time_budget=0.5, clock="time", device="cpu", monitor="val_mae")
    res = Trainer(_net(), _count_task(), cfg, tmp_path, progress=False).fit()
    assert res.epochs_done >= 1 and res.seconds < 30


def test_segment_task_learns_foreground(tmp_path):
    rng = np.random.default_rng(0)
    imgs, labs = [], []
    for _ in range(6):
        lab = np.zeros((48, 48), np.int32)
        for i in range(4):
            r, c = rng.integers(6, 42, 2)
            lab[r - 4:r + 4, c - 4:c + 4] = i + 1
        imgs.append((lab > 0).astype(np.float32) + rng.normal(0, 0.1, lab.shape).astype(np.float32))
        labs.append(lab)
    task = SegmentTask(imgs[:4], labs[:4], valid_images=imgs[4:], valid_labels=labs[4:], crop=32, batch_size=4,
                       stride=4)
    cfg = TrainConfig(epochs=15, batch_size=4, lr=1e-2, device="cpu", monitor="val_loss")
    res = Trainer(build_network(ArchConfig("unet", 1, 2, base=4, depth=2)), task, cfg, tmp_path,
                  progress=False).fit()
    assert res.history[-1]["val_loss"] < res.history[0]["val_loss"]


def test_config_errors():
    with pytest.raises(ConfigError, match="optimizer='lion' is not one of"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ConfigError, match="schedule='linear' is not one of"):
        TrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match="clock='time' needs time_budget"):
        TrainConfig(clock="time")
    with pytest.raises(ConfigError, match="unknown training settings \\['epoch'\\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_monitor_must_exist(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=3, device="cpu", monitor="val_dice")
    with pytest.raises(ConfigError, match="monitor='val_dice' is not among the validation metrics"):
        Trainer(_net(), _count_task(), cfg, tmp_path, progress=False).fit()
