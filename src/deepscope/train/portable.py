"""Portable training checkpoints: the Trainer's ``checkpoint.pt`` as safetensors + JSON, and back.

A run that goes on for many sessions (on a CPU, chunk after chunk, or on a GPU now and then) keeps
its state in a small folder that can be committed: no pickle, every tensor in one safetensors file,
every counter, random state and setting in one JSON file. The conversion is exact both ways (fp32
tensors; JSON round-trips Python floats), so a run resumed from the folder continues exactly as
if it had not stopped.

``state.safetensors``
    ``model/<name>``, ``ema/<name>`` (weight average, when the run keeps one),
    ``optimizer/<param index>/<name>`` (e.g. Adam's ``exp_avg``, ``exp_avg_sq``, ``step``) and
    ``torch_rng`` (uint8).
``trainer.json``
    Step and epoch counters, the data-order random states, best score, history, the optimiser's
    param groups, the scheduler's and gradient scaler's states, and the training settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deepscope.errors import InputError
from deepscope.io import atomic_path

__all__ = ["export_checkpoint", "import_checkpoint", "STATE", "TRAINER_STATE"]

STATE = "state.safetensors"
TRAINER_STATE = "trainer.json"


def export_checkpoint(checkpoint: str | os.PathLike[str], folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Write a Trainer checkpoint (``checkpoint.pt``) as ``folder/state.safetensors`` + ``folder/trainer.json``.

    Parameters
    ----------
    checkpoint : path
        A file written by :meth:`deepscope.train.Trainer.save_checkpoint`.
    folder : path
        Created if missing; both files are replaced atomically (one after the other; the step is
        recorded in both, and :func:`import_checkpoint` refuses a mismatched pair).

    Returns
    -------
    dict
        The JSON part (counters, states, settings).

    Raises
    ------
    FileNotFoundError
        No such checkpoint.
    """
    import torch
    from safetensors.torch import save_file

    src = Path(checkpoint)
    if not src.exists():
        raise FileNotFoundError(f"No such checkpoint: '{src}'")
    state = torch.load(src, map_location="cpu", weights_only=True)
    tensors: dict[str, torch.Tensor] = {}
    for part in ("model", "ema"):
        for k, v in (state.get(part) or {}).items():
            tensors[f"{part}/{k}"] = v.detach().cpu().contiguous().clone()
    opt = state["optimizer"]
    for idx, per in opt["state"].items():
        for k, v in per.items():
            if not isinstance(v, torch.Tensor):
                v = torch.tensor(v)
            tensors[f"optimizer/{int(idx)}/{k}"] = v.detach().cpu().contiguous().clone()
    tensors["torch_rng"] = state["torch_rng"].cpu().contiguous().clone()
    meta = {k: v for k, v in state.items() if k not in ("model", "ema", "optimizer", "torch_rng")}
    meta["optimizer_param_groups"] = opt["param_groups"]
    meta["has_ema"] = bool(state.get("ema"))
    meta["format"] = 1
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / STATE) as tmp:
        save_file(tensors, str(tmp), metadata={"step": str(state["step"])})
    text = json.dumps(meta, indent=1)
    with atomic_path(out / TRAINER_STATE) as tmp:
        Path(tmp).write_text(text)
    return meta


def import_checkpoint(folder: str | os.PathLike[str], checkpoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Rebuild the Trainer's ``checkpoint.pt`` from a folder written by :func:`export_checkpoint`.

    Returns the JSON part, or None when the folder holds no state (a run not yet started).

    Raises
    ------
    deepscope.errors.InputError
        The two files are of different steps (a copy interrupted between them).
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    src = Path(folder)
    if not (src / STATE).exists() or not (src / TRAINER_STATE).exists():
        return None
    meta = json.loads((src / TRAINER_STATE).read_text())
    with safe_open(str(src / STATE), framework="pt") as fh:
        step = (fh.metadata() or {}).get("step")
    if step != str(meta["step"]):
        raise InputError(f"'{src}': {STATE} is of step {step} but {TRAINER_STATE} of step {meta['step']}; "
                         "restore both files from the same commit")
    tensors = load_file(str(src / STATE))
    state: dict[str, Any] = {k: v for k, v in meta.items()
                             if k not in ("optimizer_param_groups", "has_ema", "format")}
    state["model"] = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    state["ema"] = {k[len("ema/"):]: v for k, v in tensors.items() if k.startswith("ema/")} if meta["has_ema"] else {}
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optimizer/"):
            _, idx, name = k.split("/", 2)
            opt_state.setdefault(int(idx), {})[name] = v
    state["optimizer"] = {"state": dict(sorted(opt_state.items())), "param_groups": meta["optimizer_param_groups"]}
    state["torch_rng"] = tensors["torch_rng"]
    dst = Path(checkpoint)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        torch.save(state, tmp)
    return meta
