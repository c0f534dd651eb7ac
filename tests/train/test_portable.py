"""Portable checkpoints (safetensors + JSON): a run moved through them resumes exactly (issue 29)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepscope.errors import InputError
from deepscope.models import ArchConfig, build_network
from deepscope.tasks.count.training import CountTask
from deepscope.train import Trainer, TrainConfig
from deepscope.train.portable import STATE, TRAINER_STATE, export_checkpoint, import_checkpoint
from deepscope.train.trainer import CHECKPOINT


def _task():
    rng = np.random.default_rng(0)
    imgs = [rng.random((32, 32)).astype(np.float32) for _ in range(9)]
    counts = [float(i % 4) for i in range(9)]
    return CountTask(imgs[:6], counts[:6], valid_images=imgs[6:], valid_counts=counts[6:], batch_size=3)


def _net(seed=0):
    torch.manual_seed(seed)
    return build_network(ArchConfig("unet", 1, 2, base=4, depth=2))


def _weights(net):
    return torch.cat([p.detach().flatten() for p in net.state_dict().values() if p.is_floating_point()])


def test_resume_through_a_portable_folder_is_exact(tmp_path):
    # constant rate: a cosine over `epochs` would differ between the 1- and 2-epoch configs
    cfg = dict(batch_size=3, lr=1e-2, seed=3, device="cpu", monitor="val_mae", ema=0.9, schedule="constant",
               warmup_steps=3)
    a = _net()
    Trainer(a, _task(), TrainConfig(epochs=2, **cfg), tmp_path / "a", progress=False).fit()
    b = _net()
    Trainer(b, _task(), TrainConfig(epochs=1, **cfg), tmp_path / "b", progress=False).fit()
    meta = export_checkpoint(tmp_path / "b" / CHECKPOINT, tmp_path / "portable")
    assert meta["step"] == 2 and meta["has_ema"]
    assert {p.name for p in (tmp_path / "portable").iterdir()} == {STATE, TRAINER_STATE}
    assert import_checkpoint(tmp_path / "portable", tmp_path / "c" / CHECKPOINT)["step"] == 2
    c = _net(seed=9)  # everything must come from the folder
    tc = Trainer(c, _task(), TrainConfig(epochs=2, **cfg), tmp_path / "c", progress=False)
    tc.fit()
    torch.testing.assert_close(_weights(a), _weights(c), rtol=0, atol=0)


def test_import_refuses_a_mismatched_pair(tmp_path):
    assert import_checkpoint(tmp_path / "none", tmp_path / CHECKPOINT) is None
    Trainer(_net(), _task(), TrainConfig(epochs=1, batch_size=3, seed=0, device="cpu", monitor="val_mae"),
            tmp_path / "run", progress=False).fit()
    export_checkpoint(tmp_path / "run" / CHECKPOINT, tmp_path / "p")
    meta = json.loads((tmp_path / "p" / TRAINER_STATE).read_text())
    meta["step"] += 1
    (tmp_path / "p" / TRAINER_STATE).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="restore both files"):
        import_checkpoint(tmp_path / "p", tmp_path / CHECKPOINT)
    with pytest.raises(FileNotFoundError, match="No such checkpoint"):
        export_checkpoint(tmp_path / "missing.pt", tmp_path / "q")
