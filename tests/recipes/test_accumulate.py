"""recipes/accumulate.py at toy size: a run continued chunk after chunk resumes exactly (issue 29)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VARIANT = "nuclei-student-b8"
ANNEAL = "nuclei-student-b8-anneal"


def _recipe():
    """recipes/accumulate.py as a module: its chunks run in this process (three interpreter starts, each importing
    torch, cost more than the toy chunks themselves)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_accumulate_recipe", ROOT / "recipes" / "accumulate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _chunk(folder: Path, epochs: int, variant: str = VARIANT, *extra: str) -> dict:
    import contextlib
    import io

    import torch

    out = io.StringIO()
    threads = torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out):
            assert _recipe().main([variant, "--tiny", "--foreground", "--folder", str(folder), "--max-epochs",
                                   str(epochs), "--steps-per-epoch", "2", "--threads", "1", "--budget", "600",
                                   *extra]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    two = tmp_path_factory.mktemp("two-chunks")
    one = tmp_path_factory.mktemp("one-chunk")
    first, second = _chunk(two, 1), _chunk(two, 1)
    whole = _chunk(one, 2)
    return two, one, (first, second, whole)


def test_two_chunks_equal_one_run(runs):
    from safetensors.torch import load_file

    from deepscope.train.portable import STATE, TRAINER_STATE

    two, one, _ = runs
    a, b = load_file(str(two / STATE)), load_file(str(one / STATE))
    assert a.keys() == b.keys()
    assert any(k.startswith("ema/") for k in a) and any(k.startswith("optimizer/") for k in a)
    for k in a:  # weights, weight average, optimiser moments and the torch random state, bit for bit
        assert a[k].dtype == b[k].dtype and bool((a[k] == b[k]).all()), k
    ta, tb = json.loads((two / TRAINER_STATE).read_text()), json.loads((one / TRAINER_STATE).read_text())
    for key in ("step", "epoch", "rng", "optimizer_param_groups", "scheduler"):
        assert ta[key] == tb[key], key
    assert ta["step"] == 4 and ta["epoch"] == 2


def test_chunks_are_recorded(runs):
    two, one, (first, second, whole) = runs
    lines = [json.loads(s) for s in (two / "chunks.jsonl").read_text().splitlines()]
    assert [ln["chunk"] for ln in lines] == [1, 2]
    assert (lines[0]["start_step"], lines[0]["end_step"], lines[1]["start_step"], lines[1]["end_step"]) == (0, 2, 2, 4)
    for ln in lines:
        assert ln["device"] == "cpu" and ln["machine"] and ln["seconds"] > 0
        assert 0.0 <= ln["val_dsb"] <= 1.0 and "teacher_val_dsb" in ln and "git_commit" in ln
    assert len((one / "chunks.jsonl").read_text().splitlines()) == 1 and whole["end_step"] == 4
    # the teacher is scored once, by the measure the student is validated with
    teacher = json.loads((two / "teacher.json").read_text())
    assert teacher["metrics"]["val_dsb"] == lines[0]["teacher_val_dsb"] == lines[1]["teacher_val_dsb"]
    # small enough to commit
    assert sum(p.stat().st_size for p in two.iterdir()) < 8.5e6


def test_an_anneal_starts_from_the_run_and_ends(runs, tmp_path):
    """A phase that ends (``init`` + ``epochs``): it starts from the other run's weight average, its cosine spans
    the whole phase whatever the chunks (two chunks of one epoch = one chunk of two), and it stops at its end."""
    from safetensors.torch import load_file

    from deepscope.train.portable import STATE, TRAINER_STATE

    two, _, _ = runs
    phase = ("--init-folder", str(two), "--anneal-epochs", "3")
    a, b = tmp_path / "a", tmp_path / "b"
    first = _chunk(a, 1, ANNEAL, *phase)
    assert first["start_step"] == 0 and first["end_step"] == 2
    _chunk(a, 1, ANNEAL, *phase)
    _chunk(b, 2, ANNEAL, *phase)
    sa, sb = load_file(str(a / STATE)), load_file(str(b / STATE))
    for k in sa:
        assert bool((sa[k] == sb[k]).all()), k
    ta, tb = json.loads((a / TRAINER_STATE).read_text()), json.loads((b / TRAINER_STATE).read_text())
    assert ta["scheduler"] == tb["scheduler"] and ta["step"] == 4
    lrs = [h["lr"] for h in json.loads(ta["history"])]
    assert lrs[0] > lrs[1] > 0  # decaying, not constant
    # the start is the other run's weight average, not the variant's seed
    import argparse

    from deepscope.models import ArchConfig
    from deepscope.models.networks import build_network

    base = load_file(str(two / STATE))
    net = build_network(ArchConfig("unet", base["ema/down.0.0.weight"].shape[1], 4, base=8, depth=4))
    _recipe()._initialise(net, ANNEAL, argparse.Namespace(init_folder=str(two), tiny=True))
    for k, w in net.state_dict().items():
        assert bool((w == base[f"ema/{k}"]).all()), k
    last = _chunk(a, 5, ANNEAL, *phase)  # one epoch left of three, though five are allowed
    assert last["end_epoch"] == 3 and _chunk(a, 5, ANNEAL, *phase)["end_epoch"] == 3


def test_an_anneal_needs_its_run():
    with pytest.raises(SystemExit, match="holds no run"):
        _recipe().main([ANNEAL, "--tiny", "--foreground", "--folder", "/nonexistent-out", "--init-folder",
                        "/nonexistent-run", "--max-epochs", "1", "--steps-per-epoch", "2", "--threads", "1"])


def test_export_refuses_a_student_that_does_not_beat_the_teacher(runs, tmp_path):
    two, _, (first, second, _) = runs
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "recipes/accumulate.py", VARIANT, "--folder", str(two), "--export", str(tmp_path)]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if second["val_dsb"] <= second["teacher_val_dsb"]:
        assert r.returncode != 0 and "does not beat the teacher" in r.stderr
    r = subprocess.run(cmd + ["--force"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    from deepscope.models import load_model

    model = load_model(tmp_path / VARIANT, device="cpu")
    assert model.arch.base == 8 and model.representation == "flows"
    assert model.model_card.output["target_diameter"] == 17.0 and "domain" not in model.model_card.output


def test_distill_loss_is_zero_when_the_student_is_the_teacher():
    import numpy as np
    import torch

    from deepscope.models import ArchConfig
    from deepscope.models.networks import build_network
    from deepscope.tasks.segment.training_generalist import DistillFlowTask

    torch.manual_seed(0)
    teacher = build_network(ArchConfig("unet", 1, 4, base=4, depth=2)).eval()
    lab = np.zeros((64, 64), np.int32)
    lab[10:26, 10:26], lab[30:46, 30:46] = 1, 2
    img = np.random.default_rng(0).random((64, 64, 1), np.float32)
    task = DistillFlowTask([img], [lab], teacher=teacher, crop=32, batch_size=2, samples_per_epoch=2, stride=4)
    x, y = next(task.batches(np.random.default_rng(0), torch.device("cpu")))
    with torch.no_grad():
        out = teacher(x)
    soft = torch.sigmoid(out[:, 0])
    entropy = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], soft)
    assert float(task.loss(out, y)) == pytest.approx(float(entropy), abs=1e-6)  # the BCE floor: soft targets
    assert float(task.loss(out + 0.5, y)) > float(entropy)
    with pytest.raises(Exception, match="hard_weight"):
        DistillFlowTask([img], [lab], teacher=teacher, hard_weight=1.5, crop=32, stride=4)


def test_a_counter_fine_tune_starts_from_the_shipped_weights(tmp_path):
    """count-bbbc005-ema: its first weights are the shipped counter's, it is judged by the validation MAE (lower is
    better, the shipped network scored by the same measure), and it exports as that counter with new weights."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from deepscope.models import load_model
    from deepscope.train.portable import STATE

    import argparse

    rec = _recipe()
    args = argparse.Namespace(tiny=True, device="cpu", data="")
    task, net, reference, _ = rec.build("count-bbbc005-ema", args)
    shipped = load_model("count-bbbc005", device="cpu")
    for k, w in shipped.net.state_dict().items():  # the same weights; only the input binning differs (4x -> 2x)
        assert torch.equal(net.state_dict()[k], w) and torch.equal(reference.net.state_dict()[k], w), k
    assert rec._beats("count-bbbc005-ema", 0.9, 1.0) and not rec._beats("count-bbbc005-ema", 1.1, 1.0)
    assert rec._beats(VARIANT, 0.44, 0.43)

    record = _chunk(tmp_path / "run", 1, "count-bbbc005-ema")
    teacher = json.loads((tmp_path / "run" / "teacher.json").read_text())
    assert record["teacher_val_mae"] == teacher["metrics"]["val_mae"] > 0 and "val_mae" in record
    assert "CountTask" in teacher["measure"]
    assert _recipe().main(["count-bbbc005-ema", "--tiny", "--folder", str(tmp_path / "run"), "--export",
                           str(tmp_path / "out"), "--force"]) == 0
    model = load_model(tmp_path / "out" / "count-bbbc005-ema", device="cpu")
    assert model.arch == shipped.arch and model.card["output"]["tta"] == shipped.card["output"]["tta"]
    ema = {k[4:]: w for k, w in load_file(str(tmp_path / "run" / STATE)).items() if k.startswith("ema/")}
    for k, w in model.net.state_dict().items():
        assert torch.equal(w, ema[k]), k
    assert not all(torch.equal(w, shipped.net.state_dict()[k]) for k, w in model.net.state_dict().items())
    field = np.random.default_rng(0).random((96, 128)).astype(np.float32)
    assert np.isfinite(model.count_images([field])[0].count)
