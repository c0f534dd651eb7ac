"""Training that accumulates, chunk after chunk, in a committed folder (issue 29).

    # one chunk of about 15 minutes on this machine's CPU (continues the run where the last chunk stopped);
    # on the CPU it lowers its own priority and its session's (setsid: a session of its own) to use idle time only
    PYTHONPATH=src OMP_NUM_THREADS=1 setsid .venv/bin/python recipes/accumulate.py nuclei-student-b8 \
        --budget 900 --threads 1
    # the same run on a GPU (recipes/gpu/run.sh has the line)
    PYTHONPATH=src python recipes/accumulate.py nuclei-student-b8 --budget 420 --device cuda

The run's whole state lives in ``recipes/checkpoints/<variant>/`` (committed; small files only):
``state.safetensors`` (student weights, their running average and the optimiser's moments, fp32, so
the resume is exact) and ``trainer.json`` (step, epoch, data-order and torch random states, history,
settings), written by :mod:`deepscope.train.portable`; ``teacher.json`` (the teacher's validation
score by the same measure, computed once); ``chunks.jsonl`` (one line per chunk: steps, seconds,
device, machine, validation score, git commit).

A chunk trains whole epochs (``steps_per_epoch`` optimiser steps, then validation and the state
saved), as many as fit in ``--budget`` seconds (at least one), so two chunks of one epoch give the
same weights as one chunk of two. The learning rate is constant after a warm-up: the run has no end. A variant with ``init`` and ``epochs``
is a phase that ends: it starts from another run's weight average at a recorded step (that run's folder must
still be at that step, or its own weights would be a different start) with a fresh optimiser, and its
learning rate follows a cosine from ``lr`` to zero over ``epochs`` epochs (an anneal: the constant rate of
the run it continues stops gaining once its validation wanders about a plateau).

The variants are knowledge distillations (:class:`deepscope.tasks.segment.training_generalist.DistillFlowTask`):
a smaller, faster student learns the shipped teacher's raw outputs on the teacher's own training crops
(the train part of the generalist data, recipes/pack_data.py --only dsb,other), and is validated on the
validation part against the TRUE labels, the measure the teacher is scored by too. ``--export DIR``
writes the student as a model folder (``DIR/<variant>/model.safetensors`` + ``model.json``) for
``recipes/finalize.py`` to calibrate, test and install, only once its validation score beats the
teacher's (``--force`` to export anyway, e.g. to measure it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

#: variant -> settings of the run (fixed for the run's life: changing one starts a different run)
VARIANTS: dict[str, dict[str, Any]] = {
    # base 8 (teacher: base 16, depth 4): a quarter of the convolution FLOPs and weights
    "nuclei-student-b8": dict(teacher="nuclei", base=8, depth=4, crop=128, batch=8, steps_per_epoch=150, lr=1e-3,
                              warmup=100, weight_decay=1e-4, ema=0.999, seed=31, hard_weight=0.0),
    # the run above annealed: from its weight average at 20,550 steps (validation 0.4314, best 0.4361 at 16,650,
    # the constant 1e-3 wandering), a cosine from 3e-4 to 0 over 60 epochs (9,000 steps)
    "nuclei-student-b8-anneal": dict(teacher="nuclei", base=8, depth=4, crop=128, batch=8, steps_per_epoch=150,
                                     lr=3e-4, warmup=100, weight_decay=1e-4, ema=0.999, seed=37, hard_weight=0.0,
                                     init=("nuclei-student-b8", 20550), epochs=60),
    # the anneal above with the true labels mixed in (issue 29): distilled on the teacher's outputs alone the student
    # settled 0.005 under its teacher; here 30% of the loss is the ground-truth loss of the flow task, so the student
    # can learn where the teacher is wrong. Same start (20,550 steps), a shorter cosine: 30 epochs = 4,500 steps
    "nuclei-student-b8-hard": dict(teacher="nuclei", base=8, depth=4, crop=128, batch=8, steps_per_epoch=150,
                                   lr=3e-4, warmup=100, weight_decay=1e-4, ema=0.999, seed=41, hard_weight=0.3,
                                   init=("nuclei-student-b8", 20550), epochs=30),
    # the shipped counter's own network fine-tuned with a weight average (issue 29: MAE 0.957 on the test fields, bar
    # 0.95): from its weights (pinned by their sha256) at 1/20 of its first run's peak rate, a cosine to 0 over 60
    # passes of the 951 training fields, EMA 0.999; validated on the 120 validation fields, network alone, one pass
    "count-bbbc005-ema": dict(task="count", teacher="count-bbbc005", batch=16, steps_per_epoch=60, lr=1e-4,
                              warmup=200, weight_decay=1e-4, ema=0.999, seed=43, jitter=0.1, epochs=60,
                              init_sha256="08819ecbf10e49eb9498557ad9cce6cd997c0f104cc8cc1ba874eabd0fa9eb4a",
                              monitor="val_mae", mode="min"),
}
CHUNKS = "chunks.jsonl"
TEACHER = "teacher.json"


def checkpoint_folder(variant: str) -> Path:
    return HERE / "checkpoints" / variant


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _machine(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _tiny_data(seed: int = 0) -> dict[str, list[Any]]:
    """Small synthetic fields (deepscope.data.synth): 3 to train, 1 to validate; for tests of the recipe."""
    from deepscope.data.synth import generate_field

    out: dict[str, list[Any]] = {"images": [], "labels": [], "group": [], "split": []}
    for i in range(4):
        f = generate_field(6, size=(96, 128), blurs=(1,), stains=(1,), seed=seed + i)
        out["images"].append(f.images[(1, 1)])
        out["labels"].append(f.nuclei.astype(np.int32))
        out["group"].append("fluo")
        out["split"].append(1 if i == 3 else 0)
    return out


def build(variant: str, args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(task, student network, teacher model, device) of a variant."""
    import torch

    from deepscope.models import ArchConfig, load_model
    from deepscope.models.networks import build_network
    from deepscope.models.spec import prepare_image
    from deepscope.tasks.segment.flows import FlowPostprocessConfig
    from deepscope.tasks.segment.training_generalist import DistillFlowTask, FlowAugment
    import zoo

    v = VARIANTS[variant]
    if v.get("task") == "count":
        return _build_count(variant, args)
    device = torch.device(args.device)
    teacher = load_model(v["teacher"], device=args.device)
    teacher.backend = "torch"  # the float teacher (--backend auto may run int8 on a CPU)
    out = teacher.model_card.output
    d = _tiny_data() if args.tiny else zoo.load_generalist(Path(args.data), False)
    spec = teacher.spec
    prep = [prepare_image(im, spec) for im in d["images"]]
    split = np.array(d["split"])
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)  # the test part (2) is never loaded here
    arch = ArchConfig("unet", spec.channels, DistillFlowTask.out_channels, base=v["base"], depth=v["depth"])
    task = DistillFlowTask(
        [prep[i] for i in tr], [d["labels"][i] for i in tr], teacher=teacher.net, hard_weight=v["hard_weight"],
        groups=[d["group"][i] for i in tr], group_weights=None if args.tiny else zoo.GROUP_WEIGHTS,
        valid_images=[prep[i] for i in va], valid_labels=[d["labels"][i] for i in va],
        valid_groups=[d["group"][i] for i in va], target_diameter=float(out["target_diameter"]),
        crop=64 if args.tiny else v["crop"], batch_size=2 if args.tiny else v["batch"],
        samples_per_epoch=(2 if args.tiny else v["batch"]) * (args.steps_per_epoch or v["steps_per_epoch"]),
        stride=arch.stride, augment=FlowAugment(), device=device,
        postprocess=FlowPostprocessConfig.from_dict(dict(out["postprocess"])))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(v["seed"])
        net = build_network(arch)
    return task, net, teacher, device


def _tiny_count_data(seed: int = 0) -> dict[str, Any]:
    """Small synthetic fields binned 2x (as the BBBC005 pack is) with their counts: 6 to train, 2 to validate."""
    from deepscope.data.synth import generate_field
    import zoo

    half, count, split = [], [], []
    for i in range(8):
        f = generate_field(4 + 3 * i, size=(192, 256), blurs=(1,), stains=(1,), seed=seed + i)
        half.append(zoo._bin2(f.images[(1, 1)].astype(np.float32)))
        count.append(4 + 3 * i)
        split.append(1 if i >= 6 else 0)
    return {"half": half, "count": np.array(count, np.float32), "split": np.array(split),
            "p": np.array([zoo._pct(h) for h in half], np.float32)}


def _build_count(variant: str, args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """A counter fine-tuned from the shipped model's own weights: (task, network, reference, device), where the
    reference is the shipped network on the same footing (its score is the one to beat)."""
    import copy
    import dataclasses
    import types

    import torch

    from deepscope.models import load_model
    from deepscope.models.networks import build_network
    from deepscope.tasks.count.training import CountTask
    import zoo

    v = VARIANTS[variant]
    device = torch.device(args.device)
    ref = load_model(v["teacher"], device="cpu")
    sha = getattr(ref.model_card.weights, "sha256", None)
    if sha != v["init_sha256"] and not args.tiny:
        raise SystemExit(f"{variant} starts from {v['teacher']} with weights {v['init_sha256'][:12]}..., but the "
                         f"installed ones are {str(sha)[:12]}...: a new start is a new variant")
    d = _tiny_count_data() if args.tiny else zoo.load_bbbc005_half(Path(args.data), False)
    imgs = [zoo._pct_norm(d["half"][i], d["p"][i][0], d["p"][i][1]) for i in range(len(d["half"]))]
    split = np.asarray(d["split"])
    tr, va = np.flatnonzero(split == 0), np.flatnonzero(split == 1)  # the test part (2) is never used here
    task = CountTask([imgs[i] for i in tr], np.asarray(d["count"])[tr], valid_images=[imgs[i] for i in va],
                     valid_counts=np.asarray(d["count"])[va], head="density", batch_size=4 if args.tiny else v["batch"],
                     device=device, jitter=v["jitter"])
    # the data is binned 2x already: the training network bins the rest (the binning layer has no weights)
    arch = dataclasses.replace(ref.arch, pool_input=max(1, int(ref.arch.pool_input) // 2))
    net = build_network(arch)
    net.load_state_dict(ref.net.state_dict())
    reference = types.SimpleNamespace(name=ref.name, net=copy.deepcopy(net).to(device))
    return task, net.to(device), reference, device


def _monitor(variant: str) -> tuple[str, str]:
    """(validation metric, "max" or "min") a variant is judged by."""
    v = VARIANTS[variant]
    return v.get("monitor", "val_dsb"), v.get("mode", "max")


def _beats(variant: str, score: float, reference: float) -> bool:
    return score < reference if _monitor(variant)[1] == "min" else score > reference


def _total_epochs(variant: str, args: argparse.Namespace) -> int:
    """The epochs of a phase that ends (0: the run has no end); ``--anneal-epochs`` overrides (tests)."""
    return int(args.anneal_epochs or VARIANTS[variant].get("epochs", 0))


def _config(variant: str, args: argparse.Namespace, epochs: int) -> Any:
    from deepscope.train import TrainConfig

    v = VARIANTS[variant]
    total = _total_epochs(variant, args)
    # a phase that ends follows a cosine over all its epochs: the Trainer's schedule counts steps of `epochs`
    # epochs, so it is given the phase's whole length and each chunk stops at its own epoch (stop_epoch)
    return TrainConfig(epochs=total or epochs, steps_per_epoch=args.steps_per_epoch or v["steps_per_epoch"],
                       batch_size=v["batch"], optimizer="adamw", lr=v["lr"], weight_decay=v["weight_decay"],
                       schedule="cosine" if total else "constant", warmup_steps=2 if args.tiny else v["warmup"], grad_clip=1.0,
                       amp=args.amp, device=args.device, seed=v["seed"], monitor=_monitor(variant)[0],
                       mode=_monitor(variant)[1],
                       ema=v["ema"], checkpoint_every=0)


MEASURES = {
    "distill": "DistillFlowTask.validate: mean over kinds of the DSB score against the true labels of the validation "
               "part, each image at its true object scale, the teacher's post-processing",
    "count": "CountTask.validate: mean absolute error of the network's count (one pass, no test-time augmentation, "
             "no hybrid rule) on the validation fields",
}


def teacher_score(folder: Path, task: Any, teacher: Any, device: Any, *, tiny: bool, variant: str) -> dict[str, float]:
    """The teacher's validation metrics on the task's validation images (computed once, kept in the folder)."""
    from deepscope.train.trainer import validate_network

    path = folder / TEACHER
    if path.exists():
        return json.loads(path.read_text())["metrics"]
    t = time.perf_counter()
    metrics = validate_network(teacher.net, task, device)
    doc = {"teacher": teacher.name, "metrics": metrics, "seconds": round(time.perf_counter() - t, 1),
           "measure": MEASURES[VARIANTS[variant].get("task", "distill")],
           "tiny": tiny}
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return metrics


def run_chunk(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    """Continue the run in its folder for about ``args.budget`` seconds of whole epochs; returns the chunk's record."""
    import torch

    from deepscope.train import Trainer
    from deepscope.train.portable import export_checkpoint, import_checkpoint
    from deepscope.train.trainer import CHECKPOINT

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    folder = Path(args.folder) if args.folder else checkpoint_folder(variant)
    task, net, teacher, device = build(variant, args)
    teacher_metrics = teacher_score(folder, task, teacher, device, tiny=args.tiny, variant=variant)
    t_setup = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix=f"accumulate-{variant}-") as work:
        work_dir = Path(work)
        meta = import_checkpoint(folder, work_dir / CHECKPOINT)
        start_step = int(meta["step"]) if meta else 0
        start_epoch = int(meta["epoch"]) if meta else 0
        if meta is None:  # a fresh run: the global torch generator too starts from the variant's seed
            torch.manual_seed(VARIANTS[variant]["seed"])
            if "init" in VARIANTS[variant]:
                _initialise(net, variant, args)
        total = _total_epochs(variant, args)
        key = _monitor(variant)[0]
        epoch, step, last = start_epoch, start_step, {}
        epoch_seconds: list[float] = []
        while True:
            spent = time.perf_counter() - t0
            if epoch_seconds and args.max_epochs and epoch - start_epoch >= args.max_epochs:
                break
            if epoch_seconds and spent + float(np.mean(epoch_seconds)) > args.budget:
                break
            if args.stop_file and Path(args.stop_file).exists():
                break
            te = time.perf_counter()
            if total and epoch >= total:
                break
            trainer = Trainer(net, task, _config(variant, args, epoch + 1), work_dir, progress=False)
            result = trainer.fit(resume=True, until_epoch=epoch + 1)
            epoch, step = result.epochs_done, result.steps_done
            last = dict(result.history[-1])
            export_checkpoint(work_dir / CHECKPOINT, folder)  # every epoch: a stopped chunk loses at most one
            epoch_seconds.append(time.perf_counter() - te)
            print(f"[{variant}] epoch {epoch} step {step} {key} {last.get(key, float('nan')):.4f} "
                  f"(teacher {teacher_metrics[key]:.4f}) {epoch_seconds[-1]:.0f}s", flush=True)
    record = {"chunk": _count_chunks(folder) + 1, "start_step": start_step, "end_step": step,
              "start_epoch": start_epoch, "end_epoch": epoch, "seconds": round(time.perf_counter() - t0, 1),
              "setup_seconds": round(t_setup, 1), "started": started,
              "ended": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "device": str(device),
              "machine": _machine(device), "amp": args.amp, "torch": torch.__version__, "git_commit": _git_commit(),
              "steps_per_s": round((step - start_step) / max(sum(epoch_seconds), 1e-9), 4),
              key: last.get(key), f"best_{key}": last.get("best"), f"teacher_{key}": teacher_metrics[key],
              "val": {k: v for k, v in last.items() if k.startswith("val_") and k != "val_loss"}, "tiny": args.tiny}
    with open(folder / CHUNKS, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return record


def averaged_weights(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The network weights of a run's folder: its weight average where it keeps one, else its weights."""
    from safetensors.torch import load_file

    from deepscope.train.portable import STATE

    part = "ema/" if meta["has_ema"] else "model/"
    return {k[len(part):]: w for k, w in load_file(str(folder / STATE)).items() if k.startswith(part)}


def _initialise(net: Any, variant: str, args: argparse.Namespace) -> None:
    """A phase's first weights: the weight average of the run it continues, at the step its settings record."""
    from deepscope.train.portable import TRAINER_STATE

    name, step = VARIANTS[variant]["init"]
    src = Path(args.init_folder) if args.init_folder else checkpoint_folder(name)
    if not (src / TRAINER_STATE).exists():
        raise SystemExit(f"{variant} starts from the run '{name}', but {src} holds no run (--init-folder)")
    meta = json.loads((src / TRAINER_STATE).read_text())
    if int(meta["step"]) != int(step) and not args.tiny:
        raise SystemExit(f"{variant} starts from '{name}' at step {step}, but {src} is at step {meta['step']}: "
                         f"check out the commit whose chunks.jsonl ends at step {step}")
    net.load_state_dict(averaged_weights(src, meta))


def _count_chunks(folder: Path) -> int:
    p = folder / CHUNKS
    return len(p.read_text().strip().splitlines()) if p.exists() and p.read_text().strip() else 0


def export(variant: str, args: argparse.Namespace) -> Path:
    """Write the run's network (its weight average) as a model folder for recipes/finalize.py: a distilled student
    as a new segmenter with its teacher's settings, a fine-tuned counter as its reference model with new weights."""
    from deepscope.models import ArchConfig, SegmentModel, load_model
    from deepscope.train.portable import TRAINER_STATE

    v = VARIANTS[variant]
    key, _ = _monitor(variant)
    folder = Path(args.folder) if args.folder else checkpoint_folder(variant)
    meta = json.loads((folder / TRAINER_STATE).read_text())
    teacher = json.loads((folder / TEACHER).read_text())["metrics"]
    history = json.loads(meta["history"])
    if not history:
        raise SystemExit(f"{variant}: no epoch trained yet in {folder}")
    score = float(history[-1][key])
    if not _beats(variant, score, teacher[key]) and not args.force:
        raise SystemExit(f"{variant}: validation {key} {score:.4f} does not beat the teacher's {teacher[key]:.4f}; "
                         "not exported (--force to export anyway)")
    t = load_model(v["teacher"], device="cpu")
    t.backend = "torch"  # the float teacher (--backend auto may run int8 on a CPU)
    weights = averaged_weights(folder, meta)
    if v.get("task") == "count":
        model = t  # the shipped counter, its settings kept (finalize.py re-calibrates what depends on the weights)
        model.net.load_state_dict(weights)
        model.name = variant
    else:
        arch = ArchConfig("unet", t.spec.channels, 4, base=v["base"], depth=v["depth"])
        model = SegmentModel(arch, t.spec, representation=t.representation, card={"name": variant, "description": (
            f"Distilled student (U-Net base {v['base']}, depth {v['depth']}) of '{v['teacher']}': "
            + t.model_card.description)})
        model.net.load_state_dict(weights)
    with model.edit_card() as card:
        card["name"] = variant
        if v.get("task") != "count":
            # the teacher's output settings, less what was calibrated on the teacher's outputs (finalize refits them)
            teacher_out = json.loads(json.dumps(t.model_card.output, default=dict))
            card["output"].update({k: w for k, w in teacher_out.items()
                                   if k not in ("domain", "postprocess_tuned_dsb", "postprocess_tuned_on")})
        chunks = [json.loads(line) for line in (folder / CHUNKS).read_text().splitlines() if line.strip()] \
            if (folder / CHUNKS).exists() else []
        keep = ("chunk", "start_step", "end_step", "seconds", "device", "machine", "torch", "git_commit", key,
                "ended")
        card["training"] = {"recipe": f"recipes/accumulate.py {variant}", "teacher": v["teacher"],
                            "step": meta["step"], "epoch": meta["epoch"], key: score,
                            f"teacher_{key}": teacher[key], "settings": v,
                            # every chunk of the run, as recipes/checkpoints/<variant>/chunks.jsonl records it
                            "chunks": [{k: c[k] for k in keep if k in c} for c in chunks]}
        if v.get("task") == "count":
            card["training"]["initialised_from"] = f"{v['teacher']} (weights sha256 {v['init_sha256']})"
            card["training"]["first_run"] = t.model_card.training
        if "init" in v:  # a phase: the run it continues, chunk by chunk up to the step it started from
            name, step = v["init"]
            src = checkpoint_folder(name) / CHUNKS
            before = [json.loads(line) for line in src.read_text().splitlines() if line.strip()] if src.exists() else []
            card["training"]["continues"] = {
                "variant": name, "step": step, "recipe": f"recipes/accumulate.py {name}", "settings": VARIANTS[name],
                "chunks": [{k: c[k] for k in keep if k in c} for c in before if c.get("end_step", 0) <= step]}
    dst = Path(args.export) / variant
    model.save(dst)
    return dst


def lowest_priority() -> None:
    """Give way to every other process: ``nice 19`` for this process *and* its scheduling group.

    With Linux's autogroup scheduling (on by default on desktops and this VM) CPU time is shared between
    sessions first, so ``nice -n 19`` alone only ranks a process within its own terminal session: a training
    chunk started from another session still took a whole core from a test run (measured here: 87% of a core
    beside two busy pytest workers). Raising the group's nice value as well (``/proc/self/autogroup``, allowed
    without privileges) makes the chunk use only idle time."""
    try:
        os.nice(19 - os.nice(0))
    except OSError:
        pass
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("19")
    except OSError:  # no autogroup (other kernels, macOS): nice alone is what there is
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("--budget", type=float, default=900.0,
                    help="seconds of this chunk: whole epochs while the next one is expected to fit (at least one)")
    ap.add_argument("--data", default=str(ROOT / ".gpu" / "data"), help="packed data (recipes/pack_data.py)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="off", choices=["auto", "bf16", "fp16", "off"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--folder", default="", help="the run's folder (default recipes/checkpoints/VARIANT)")
    ap.add_argument("--max-epochs", type=int, default=0, help="stop after this many epochs (0: only the budget)")
    ap.add_argument("--stop-file", default="", help="stop at the next epoch end once this file exists")
    ap.add_argument("--steps-per-epoch", type=int, default=0, help="override (tests; changes the run)")
    ap.add_argument("--anneal-epochs", type=int, default=0, help="override a phase's length (tests; changes the run)")
    ap.add_argument("--init-folder", default="",
                    help="for a phase that continues another run: that run's folder (default its checkpoints folder)")
    ap.add_argument("--tiny", action="store_true", help="toy data (synthetic fields), for a check of the recipe")
    ap.add_argument("--export", default="", help="write the student as a model folder here instead of training")
    ap.add_argument("--force", action="store_true", help="with --export: even if it does not beat the teacher")
    ap.add_argument("--foreground", action="store_true",
                    help="on the CPU, keep normal priority (default: the lowest, for it and its session: lowest_priority)")
    args = ap.parse_args(argv)
    if not args.foreground and not args.export and args.device == "cpu":
        lowest_priority()
    import torch

    import deepscope.tasks  # noqa: F401  (registers the task plugins)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        print(export(args.variant, args))
        return 0
    print(json.dumps(run_chunk(args.variant, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
