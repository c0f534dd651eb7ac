"""``deepscope train``: train counting, segmentation and restoration models on your own images.

Every sub-command loads the images (with a file-name pattern), builds the model, and calls the
library's :func:`deepscope.train.split_parts` (by field of view where the metadata has one,
seeded) and :func:`deepscope.train.fit_model` (the same run as ``model.fit``), which writes the
run folder: ``model.safetensors`` + ``model.json`` (loadable with ``--model
RUN_DIR``), ``checkpoint.pt`` (a rerun with the same ``--out`` resumes), ``metrics.jsonl``,
``train.yaml`` (the resolved training config, reusable as ``--config``), ``run.yaml`` (data,
split, model) and ``split.csv`` (which image went to which part).

Training settings come from ``--config train.yaml`` (keys of :class:`~deepscope.train.TrainConfig`,
plus a ``task:`` mapping of task options such as ``crop``), overridden by command-line options.

``--init MODEL`` (a shipped name such as ``nuclei``, or an earlier run folder) fine-tunes that model
instead of training a new one: its weights, architecture, normalisation and post-processing are the
start, the defaults are :data:`deepscope.train.runs.FINE_TUNE_DEFAULTS` (lower learning rate, three
minutes, early stopping), and the new card records the parent and the SHA-256 of every image used.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import typer

from deepscope.cli._common import (console, err_console, handle_errors, out_option, output_alias, pick_out,
                                   recursive_option)
from deepscope.train.runs import DEFAULT_FRACTIONS as _FRACTIONS

app = typer.Typer(
    rich_markup_mode=None, help="Train counting, segmentation and restoration models (the run folder is loadable with "
                       "--model RUN_DIR).", no_args_is_help=True, add_completion=False)

#: Split fractions (train, valid, test) used by `train` and `evaluate --subset`.
DEFAULT_FRACTIONS = ",".join(str(f) for f in _FRACTIONS)


# --------------------------------------------------------------------------- shared helpers

FRACTIONS_HELP = (f"Train, validation, test fractions (default {DEFAULT_FRACTIONS}; a fine-tune (--init) on fewer "
                  "than 30 images: 0.7,0.3,0, no test part).")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> (0.8, 0.1, 0.1), with a clear error."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--fractions: {text!r} is not three numbers like 0.8,0.1,0.1") from None
    if len(vals) != 3:
        raise typer.BadParameter(f"--fractions: give three fractions (train, valid, test), got {text!r}")
    return vals  # type: ignore[return-value]


def select_subset(dataset: Any, subset: str, *, split: str | None, seed: int, fractions: str) -> Any:
    """The part ``subset`` (all, train, valid, test) of a dataset split as ``deepscope train`` splits it."""
    from deepscope.train.runs import PARTS, split_parts

    if subset == "all":
        return dataset
    if subset not in PARTS:
        raise typer.BadParameter(f"--subset {subset!r} is not one of all, {', '.join(PARTS)}")
    part = split_parts(dataset, split=split, seed=seed, fractions=parse_fractions(fractions))[subset]
    if not len(part):
        raise typer.BadParameter(f"--subset {subset}: the split leaves no image in this part (fractions {fractions})")
    return part


def init_option() -> Any:
    return typer.Option(None, "--init", help="Fine-tune this trained model (a shipped name, e.g. nuclei, or a run "
                        "folder) instead of training a new one; architecture options are then taken from it.")


def keep_worse_option() -> Any:
    return typer.Option(False, "--keep-worse", help="With --init: keep the fine-tuned weights even when they score "
                        "below the parent on the validation images (by default the run then holds the parent "
                        "unchanged); both scores are recorded either way.")


def time_budget_option() -> Any:
    return typer.Option(None, "--time-budget", help="Stop training after this many seconds (fine-tuning default: "
                        "180).")


def load_init(init: str, task: str, **arch_options: Any) -> Any:
    """The model to fine-tune (``--init``); architecture options cannot be combined with it."""
    from deepscope.models import load_model

    given = [f"--{k.replace('_', '-')}" for k, v in arch_options.items() if v is not None]
    if given:
        raise typer.BadParameter(f"{', '.join(given)} cannot be combined with --init: a fine-tune keeps the "
                                 f"architecture of {init!r}")
    return load_model(init, task=task)


def _train(model: Any, ds: Any, *, out: Path, config: Path | None, split: str | None, fractions: str | None,
           overrides: dict[str, Any], task_opts: dict[str, Any], run_info: dict[str, Any],
           fine_tune: bool = False, keep_better: bool = True) -> None:
    """Split, resolve the settings and train through the library (:func:`deepscope.train.fit_model`)."""
    from deepscope.train.runs import (default_fractions, fit_model, load_train_settings, resolve_split,
                                      resolve_train_config, split_parts)

    settings, opts = load_train_settings(config, allowed_task_options=model.plugin.training_options())
    seed = int(overrides.get("seed") if overrides.get("seed") is not None else settings.get("seed", 0))
    fracs = parse_fractions(fractions) if fractions else default_fractions(len(ds), fine_tune=fine_tune)
    fractions = ",".join(f"{f:g}" for f in fracs)
    parts = split_parts(ds, split=split, seed=seed, fractions=fracs)
    if not len(parts["train"]):
        raise typer.BadParameter("the split leaves no training images; use more images or other --fractions")
    if not len(parts["valid"]):
        err_console.print("[yellow]warning:[/] the split leaves no validation images; the last epoch's weights are "
                          "kept (monitor train_loss)")
    given = {k: v for k, v in overrides.items() if v is not None}
    tc = resolve_train_config(model, {**settings, **given, "seed": seed}, has_valid=bool(len(parts["valid"])),
                              fine_tune=fine_tune)
    opts = {**opts, **{k: v for k, v in task_opts.items() if v is not None}}
    what = f"fine-tuning {model.name}" if fine_tune else "training"
    console.print(f"{what} on {len(parts['train'])} image(s), validating on {len(parts['valid'])}, "
                  f"{len(parts['test'])} held out for testing -> {out}")
    info = {**run_info, "split": resolve_split(ds, split), "seed": seed, "fractions": fractions}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no validation images")  # said above
        warnings.filterwarnings("ignore", message="the fine-tune did not beat")  # said below, with both scores
        result = fit_model(model, parts["train"], parts["valid"] or None, test=parts["test"], run_dir=out,
                           config=tc, task_opts=opts, run_info=info, on_epoch_end=epoch_line(tc.epochs),
                           fine_tune=fine_tune, keep_better=keep_better)
    best = f", best {tc.monitor} {result.best_score:.4g} at epoch {result.best_epoch}" if result.best_epoch else ""
    console.print(f"done: {result.epochs_done} epoch(s), {result.steps_done} step(s) in {result.seconds:.0f} s{best}; "
                  f"model: {out} (use --model {out})")
    guard = model.model_card.training.get("fine_tune") if fine_tune else None
    if guard:
        def score(v: Any) -> str:
            return "n/a" if v is None else f"{v:.4g}"

        kept = ("the fine-tuned weights (better than the parent)" if guard["kept"] == "fine-tuned" else
                "the parent's weights unchanged (the fine-tune did not beat it; --keep-worse keeps it anyway)"
                if guard["kept"] == "parent" else "the fine-tuned weights, as --keep-worse asked")
        console.print(f"on your {guard['n_valid']} validation image(s), {guard['monitor']}: parent "
                      f"{score(guard['parent_score'])}, fine-tuned {score(guard['fine_tuned_score'])}; {out} holds {kept}")


def epoch_line(epochs: int) -> Any:
    """``on_epoch_end`` callback printing one line per epoch: losses, validation scores, best so far, time."""

    def report(epoch: int, metrics: dict[str, Any]) -> None:
        skip = {"epoch", "step", "best", "seconds", "lr"}
        scores = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in metrics.items() if k not in skip)
        console.print(f"epoch {epoch}/{epochs}  {scores}  best {metrics.get('best', float('nan')):.4g}  "
                      f"lr {metrics.get('lr', float('nan')):.3g}  {metrics.get('seconds', 0.0):.0f} s", soft_wrap=True)

    return report


def _common(epochs: int | None, lr: float | None, batch_size: int | None, device: str | None,
            seed: int | None, time_budget: float | None = None) -> dict[str, Any]:
    return {"epochs": epochs, "lr": lr, "batch_size": batch_size, "device": device, "seed": seed,
            "time_budget": time_budget}


# --------------------------------------------------------------------------- count

@app.command("count")
@handle_errors
def count(
    data: Path = typer.Option(..., "--data", help="Folder (or zip) of training images."),
    out: Path | None = out_option(help="Run folder (required; a rerun with the same folder resumes)."),
    output: Path | None = output_alias(),
    pattern: str | None = typer.Option(None, "--pattern", "-p", help="File-name pattern: a preset (bbbc005) or a "
                                       "regex with named groups; its 'count' group is the label."),
    labels: Path | None = typer.Option(None, "--labels", help="CSV of counts keyed by file name, instead of the "
                                       "pattern's count group."),
    label_column: str | None = typer.Option(None, "--label-column", help="Column holding the count (pattern group "
                                            "or CSV column; default 'count', or the CSV's only value column)."),
    split: str | None = typer.Option(None, "--split", help="random, field (default when the pattern gives a field) "
                                     "or stratified (by count)."),
    fractions: str | None = typer.Option(None, "--fractions", help=FRACTIONS_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default from --config, else 50)."),
    config: Path | None = typer.Option(None, "--config", help="Training YAML (TrainConfig keys + task: options)."),
    model: str | None = typer.Option(None, "--model", help="density (default: deepscope's density U-Net with 95% "
                                     "intervals) or book (the chapter's CountNet)."),
    base: int | None = typer.Option(None, "--base", help="U-Net filters of the first level (density; default 8)."),
    depth: int | None = typer.Option(None, "--depth", help="U-Net down-sampling steps (density; default 4)."),
    init: str | None = init_option(),
    keep_worse: bool = keep_worse_option(),
    time_budget: float | None = time_budget_option(),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda ..."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size."),
    seed: int | None = typer.Option(None, "--seed", help="Seeds the split, the weights and the data stream "
                                    "(default from --config, else 0)."),
    include: str | None = typer.Option(None, "--include", help="Glob on file names, e.g. '*_w1.TIF'."),
    recursive: bool = recursive_option(),
) -> None:
    """Train a counting model on images with known counts (e.g. BBBC005, split by field)."""
    from deepscope.data import ImageLoader
    from deepscope.models import ArchConfig, CountModel

    if model not in (None, "density", "book"):
        raise typer.BadParameter(f"--model {model!r} is not one of density, book")
    label = label_column or (None if labels is not None else "count")
    loader = ImageLoader(pattern=pattern, labels=labels if labels is not None else label, label_column=label_column,
                         include=include, recursive=recursive)
    ds = loader.load(data)
    if init is not None:
        net = load_init(init, "count", model=model, base=base, depth=depth)
    elif model == "book":
        net = CountModel.book(input_size=tuple(ds.get_image(0).shape[:2]))
    else:
        net = CountModel(ArchConfig("unet", in_channels=1, out_channels=2, base=base or 8, depth=depth or 4,
                                    pool_input=2))
    _train(net, ds, out=pick_out(out, output), config=config, split=split, fractions=fractions,
           overrides=_common(epochs, lr, batch_size, device, seed, time_budget), task_opts={},
           run_info={"command": "train count", "data": str(data), "pattern": pattern,
                     "labels": str(labels) if labels else label, "model": model or "density", "init": init},
           fine_tune=init is not None, keep_better=not keep_worse)


# --------------------------------------------------------------------------- segment

def parse_pairing(text: str, masks: Path) -> Any:
    """``same-stem`` | ``sub:REGEX=>REPL`` | ``template:TEXT`` -> a :class:`~deepscope.data.PairRule`."""
    import re

    from deepscope.data import PairRule

    if text == "same-stem":
        return PairRule(masks)
    if text.startswith("sub:"):
        body = text[4:]
        if "=>" not in body:
            raise typer.BadParameter(f"--pairing {text!r}: write sub:REGEX=>REPLACEMENT, e.g. 'sub:_F\\d+_=>_F1_'")
        regex, repl = body.split("=>", 1)
        try:
            re.compile(regex)
        except re.error as exc:
            raise typer.BadParameter(f"--pairing: {regex!r} is not a valid regular expression ({exc})") from None
        return PairRule(masks, sub=(regex, repl))
    if text.startswith("template:"):
        return PairRule(masks, template=text[len("template:"):])
    raise typer.BadParameter(f"--pairing {text!r} is not one of same-stem, sub:REGEX=>REPL, template:TEXT")


@app.command("segment")
@handle_errors
def segment(
    images: Path = typer.Option(..., "--images", help="Folder of training images."),
    masks: Path = typer.Option(..., "--masks", help="Folder of instance label images (0 = background)."),
    out: Path | None = out_option(help="Run folder (required; a rerun with the same folder resumes)."),
    output: Path | None = output_alias(),
    pairing: str = typer.Option("same-stem", "--pairing", help="How an image finds its mask: same-stem, "
                                "'sub:REGEX=>REPL' on the file name, or 'template:{stem}_mask.png' over metadata."),
    pattern: str | None = typer.Option(None, "--pattern", "-p", help="File-name pattern (bbbc005 or a regex) for "
                                       "metadata, e.g. the field to split by and template fields."),
    split: str | None = typer.Option(None, "--split", help="random or field (default: field when the pattern gives "
                                     "one, else random)."),
    fractions: str | None = typer.Option(None, "--fractions", help=FRACTIONS_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default from --config, else 50)."),
    config: Path | None = typer.Option(None, "--config", help="Training YAML (TrainConfig keys + task: options)."),
    model: str | None = typer.Option(None, "--model", help="unet (default: foreground + distance, watershed "
                                     "instances) or book (the chapter's U-Net, foreground only)."),
    base: int | None = typer.Option(None, "--base", help="U-Net filters of the first level (unet; default 8)."),
    depth: int | None = typer.Option(None, "--depth", help="U-Net down-sampling steps (unet; default 4)."),
    init: str | None = init_option(),
    keep_worse: bool = keep_worse_option(),
    time_budget: float | None = time_budget_option(),
    crop: int | None = typer.Option(None, "--crop", help="Training crop size (default 256)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda ..."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size."),
    seed: int | None = typer.Option(None, "--seed", help="Seeds the split, the weights and the data stream "
                                    "(default from --config, else 0)."),
    include: str | None = typer.Option(None, "--include", help="Glob on image file names."),
    recursive: bool = recursive_option(),
) -> None:
    """Train an instance segmentation model on images paired with label images."""
    from deepscope.data import ImageLoader
    from deepscope.models import ArchConfig, SegmentModel

    if model not in (None, "unet", "book"):
        raise typer.BadParameter(f"--model {model!r} is not one of unet, book")
    ds = ImageLoader(pattern=pattern, masks=parse_pairing(pairing, masks), include=include,
                     recursive=recursive).load(images)
    if init is not None:
        net = load_init(init, "segment", model=model, base=base, depth=depth)
    else:
        net = (SegmentModel.book() if model == "book" else
               SegmentModel(ArchConfig("unet", in_channels=1, out_channels=2, base=base or 8, depth=depth or 4)))
    _train(net, ds, out=pick_out(out, output), config=config, split=split, fractions=fractions,
           overrides=_common(epochs, lr, batch_size, device, seed, time_budget), task_opts={"crop": crop},
           run_info={"command": "train segment", "images": str(images), "masks": str(masks), "pairing": pairing,
                     "pattern": pattern, "model": model or "unet", "init": init}, fine_tune=init is not None,
           keep_better=not keep_worse)


# --------------------------------------------------------------------------- restore

def restore_pairs(ds: Any, *, input_rule: str | None, target_rule: str, same: str, upscale: int) -> Any:
    """(input, target) pairs for ``train restore`` / ``evaluate restore`` from CLI rules."""
    from deepscope.data import downscale_pairs, pair_by_metadata, parse_rule

    target = parse_rule(target_rule, name="--target")
    if input_rule is None:
        if upscale < 2:
            raise typer.BadParameter("--input is required (e.g. --input blur=48), except for super-resolution "
                                     "(--upscale 2), whose inputs are the --target images reduced")
        return downscale_pairs(ds.where(**{k: list(v) for k, v in target.items()}), upscale)
    pairs = pair_by_metadata(ds, input=parse_rule(input_rule, name="--input"), target=target,
                             same=[s.strip() for s in same.split(",") if s.strip()], on_missing="skip")
    if pairs.skipped:
        err_console.print(f"[yellow]note:[/] {len(pairs.skipped)} input image(s) have no target in the same field "
                          f"and were left out, e.g. {Path(pairs.skipped[0][0]).name}")
    return downscale_pairs(pairs, upscale) if upscale > 1 else pairs


@app.command("restore")
@handle_errors
def restore(
    data: Path = typer.Option(..., "--data", help="Folder of images (inputs and targets together)."),
    out: Path | None = out_option(help="Run folder (required; a rerun with the same folder resumes)."),
    output: Path | None = output_alias(),
    target: str = typer.Option(..., "--target", help="Metadata rule of the target images, e.g. 'blur=1', 'stain=2'."),
    input_rule: str | None = typer.Option(None, "--input", help="Metadata rule of the input images, e.g. 'blur=48' "
                                          "or 'blur=23,48' (omit with --upscale 2: inputs = targets reduced)."),
    pattern: str | None = typer.Option(None, "--pattern", "-p", help="File-name pattern (bbbc005 or a regex) that "
                                       "gives the rule columns and the field."),
    same: str = typer.Option("field", "--same", help="Columns an input and its target share (comma-separated)."),
    upscale: int = typer.Option(1, "--upscale", help="1 (same size) or 2 (2x super-resolution)."),
    loss: str = typer.Option("l1", "--loss", help="l1, l2, ssim or l1+ssim."),
    split: str | None = typer.Option(None, "--split", help="field (default when the pattern gives one) or random."),
    fractions: str | None = typer.Option(None, "--fractions", help=FRACTIONS_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default from --config, else 50)."),
    config: Path | None = typer.Option(None, "--config", help="Training YAML (TrainConfig keys + task: options)."),
    base: int | None = typer.Option(None, "--base", help="U-Net filters of the first level (default 16)."),
    depth: int | None = typer.Option(None, "--depth", help="U-Net down-sampling steps (default 4)."),
    init: str | None = init_option(),
    keep_worse: bool = keep_worse_option(),
    time_budget: float | None = time_budget_option(),
    crop: int | None = typer.Option(None, "--crop", help="Training crop size (default 256)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda ..."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Batch size."),
    seed: int | None = typer.Option(None, "--seed", help="Seeds the split, the weights and the data stream "
                                    "(default from --config, else 0)."),
    include: str | None = typer.Option(None, "--include", help="Glob on image file names."),
    recursive: bool = recursive_option(),
) -> None:
    """Train an image-to-image model (deblurring, stain prediction, 2x super-resolution) on metadata pairs."""
    from deepscope.data import ImageLoader
    from deepscope.models import ArchConfig, RestoreModel
    from deepscope.tasks.restore.training import LOSSES

    if upscale not in (1, 2):
        raise typer.BadParameter(f"--upscale {upscale} is not 1 or 2")
    if loss not in LOSSES:
        raise typer.BadParameter(f"--loss {loss!r} is not one of {', '.join(LOSSES)}")
    ds = ImageLoader(pattern=pattern, include=include, recursive=recursive).load(data)
    pairs = restore_pairs(ds, input_rule=input_rule, target_rule=target, same=same, upscale=upscale)
    if init is not None:
        net = load_init(init, "restore", base=base, depth=depth)
        if net.upscale != upscale:
            raise typer.BadParameter(f"--upscale {upscale} but {init!r} upscales {net.upscale}x")
    else:
        net = RestoreModel(ArchConfig("unet", in_channels=1, out_channels=1, base=base or 16, depth=depth or 4),
                           upscale=upscale, loss=loss)
    _train(net, pairs, out=pick_out(out, output), config=config, split=split, fractions=fractions,
           overrides=_common(epochs, lr, batch_size, device, seed, time_budget), task_opts={"crop": crop},
           run_info={"command": "train restore", "data": str(data), "pattern": pattern, "input": input_rule,
                     "target": target, "same": same, "upscale": upscale, "loss": loss, "init": init},
           fine_tune=init is not None, keep_better=not keep_worse)
