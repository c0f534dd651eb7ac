"""`deepscope train count|segment|restore` at toy size on seeded synthetic BBBC005-style images."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import MASK_TEMPLATE, write_dataset  # noqa: E402
from deepscope.io import read_image  # noqa: E402
from deepscope.models import load_model  # noqa: E402

runner = CliRunner()
TINY = ["--base", "4", "--depth", "2", "--device", "cpu"]


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> Path:
    """4 counts x 2 sites (8 fields) x blur 1/48 x 2 stains = 32 images with exact masks."""
    d = tmp_path_factory.mktemp("syn") / "bbbc"
    write_dataset(d, counts=[1, 2, 3, 4], blurs=[1, 48], sites=2, stains=[1, 2], size=(128, 160), seed=0)
    return d


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_count_writes_a_loadable_run_and_resumes(tmp_path, syn):
    run = tmp_path / "run"
    args = ["train", "count", "--data", str(syn), "--pattern", "bbbc005", "--split", "field", "--out", str(run),
            "--batch-size", "8", *TINY]
    r = runner.invoke(app, args + ["--epochs", "1"])
    assert r.exit_code == 0, r.output
    epoch_lines = [line for line in r.output.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 1 and epoch_lines[0].startswith("epoch 1/1  train_loss ")  # one line per epoch
    assert "val_mae" in epoch_lines[0]
    assert {"model.json", "model.safetensors", "checkpoint.pt", "metrics.jsonl", "train.yaml", "run.yaml",
            "split.csv"} <= {p.name for p in run.iterdir()}
    cfg = yaml.safe_load((run / "train.yaml").read_text())
    assert cfg["epochs"] == 1 and cfg["seed"] == 0 and cfg["monitor"] == "val_mae" and cfg["batch_size"] == 8
    info = yaml.safe_load((run / "run.yaml").read_text())
    assert info["split"] == "field" and info["seed"] == 0 and sum(info["parts"].values()) == 32
    split = pd.read_csv(run / "split.csv")
    split["field"] = split["path"].str.extract(r"_(C\d+)_F\d+_(s\d+)_").agg("_".join, axis=1)
    assert split.groupby("field")["part"].nunique().max() == 1  # no field in two parts
    model = load_model(run, device="cpu", task="count")
    assert model.card["training"]["epochs_done"] == 1
    # a second run with more epochs continues from the checkpoint instead of starting over
    r = runner.invoke(app, args + ["--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert [m["epoch"] for m in _metrics(run)] == [1, 2]
    r = runner.invoke(app, ["count", str(syn), "--no-recursive", "--model", str(run), "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(tmp_path / "c.csv")) == 32


def test_train_count_config_yaml_and_overrides(tmp_path, syn):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("epochs: 1\nlr: 0.002\nschedule: exponential\ndecay_steps: 10\nbatch_size: 16\n"
                   "task:\n  jitter: 0.0\n")
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "count", "--data", str(syn), "--pattern", "bbbc005", "--config", str(cfg),
                            "--lr", "0.005", "--out", str(run), *TINY])
    assert r.exit_code == 0, r.output
    resolved = yaml.safe_load((run / "train.yaml").read_text())
    assert resolved["lr"] == 0.005 and resolved["schedule"] == "exponential" and resolved["batch_size"] == 16
    assert resolved["task"] == {"jitter": 0.0}
    # the resolved file is itself a valid --config
    r = runner.invoke(app, ["train", "count", "--data", str(syn), "--pattern", "bbbc005", "--config",
                            str(run / "train.yaml"), "--out", str(tmp_path / "run2"), *TINY])
    assert r.exit_code == 0, r.output
    assert _metrics(tmp_path / "run2")[0]["lr"] == pytest.approx(0.005)


@pytest.mark.parametrize("text, match", [
    ("learning_rate: 0.1\n", "unknown training setting 'learning_rate'"),
    ("task:\n  crop: 64\n", "unknown task option 'crop' under 'task'"),
    ("schedule: linear\n", "schedule='linear' is not one of"),
    ("- 1\n- 2\n", "must hold a mapping"),
])
def test_train_config_errors_name_the_key(tmp_path, syn, text, match):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    r = runner.invoke(app, ["train", "count", "--data", str(syn), "--pattern", "bbbc005", "--config", str(cfg),
                            "--out", str(tmp_path / "run"), *TINY])
    assert r.exit_code == 2 and match in _out(r)
    assert not (tmp_path / "run").exists()


def test_train_count_book_countnet_with_labels_csv(tmp_path, syn):
    run = tmp_path / "book"
    r = runner.invoke(app, ["train", "count", "--data", str(syn), "--labels", str(syn / "labels.csv"),
                            "--label-column", "cell_count", "--model", "book", "--epochs", "1", "--out", str(run),
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    model = load_model(run, device="cpu")
    assert model.arch.arch == "book-countnet" and tuple(model.arch.input_size) == (128, 160)
    assert yaml.safe_load((run / "run.yaml").read_text())["split"] == "field"  # from the CSV's field column


def test_train_segment_pairs_masks_by_template(tmp_path, syn):
    run = tmp_path / "seg"
    r = runner.invoke(app, ["train", "segment", "--images", str(syn), "--masks", str(syn / "masks"), "--pattern",
                            "bbbc005", "--pairing", f"template:{MASK_TEMPLATE}", "--epochs", "1", "--crop", "64",
                            "--out", str(run), *TINY])
    assert r.exit_code == 0, r.output
    assert yaml.safe_load((run / "train.yaml").read_text())["task"] == {"crop": 64}
    r = runner.invoke(app, ["segment", str(syn / "SIMCEPImages_A01_C1_F1_s01_w1.TIF"), "--model", str(run),
                            "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert read_image(tmp_path / "out" / "SIMCEPImages_A01_C1_F1_s01_w1.labels.tif").data.shape == (128, 160)


def test_train_segment_unpaired_masks_are_named(tmp_path, syn):
    # same-stem pairing: the blurred images have no mask of their own name
    r = runner.invoke(app, ["train", "segment", "--images", str(syn), "--masks", str(syn / "masks"), "--epochs", "1",
                            "--out", str(tmp_path / "seg"), *TINY])
    assert r.exit_code == 2
    assert "16 of 32 images have no mask in" in _out(r) and "SIMCEPImages_P01_C1_F48_s01_w1.TIF" in _out(r)
    r = runner.invoke(app, ["train", "segment", "--images", str(syn), "--masks", str(syn / "masks"),
                            "--pairing", "regex:_F48_", "--out", str(tmp_path / "seg")])
    assert r.exit_code == 2 and "--pairing 'regex:_F48_' is not one of same-stem" in _out(r)


def test_train_segment_book_unet_with_sub_pairing(tmp_path, syn):
    run = tmp_path / "book"
    rule = r"sub:^SIMCEPImages_[A-P](\d\d)_(C\d+)_F\d+_=>SIMCEPImages_A\1_\2_F1_"
    r = runner.invoke(app, ["train", "segment", "--images", str(syn), "--masks", str(syn / "masks"), "--pattern",
                            "bbbc005", "--pairing", rule, "--model", "book", "--epochs", "1", "--crop", "64",
                            "--out", str(run), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert load_model(run, device="cpu").arch.arch == "book-unet"


def test_train_restore_deblur_and_super_resolution(tmp_path, syn):
    run = tmp_path / "deblur"
    r = runner.invoke(app, ["train", "restore", "--data", str(syn), "--pattern", "bbbc005", "--input", "blur=48",
                            "--target", "blur=1", "--split", "field", "--epochs", "1", "--crop", "64",
                            "--out", str(run), *TINY])
    assert r.exit_code == 0, r.output
    assert "training on" in _out(r)
    info = yaml.safe_load((run / "run.yaml").read_text())
    assert sum(info["parts"].values()) == 16 and info["input"] == "blur=48"
    r = runner.invoke(app, ["restore", str(syn / "SIMCEPImages_P01_C1_F48_s01_w1.TIF"), "--model", str(run),
                            "-o", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    run2 = tmp_path / "sr"
    r = runner.invoke(app, ["train", "restore", "--data", str(syn), "--pattern", "bbbc005", "--target", "blur=1",
                            "--upscale", "2", "--epochs", "1", "--crop", "64", "--out", str(run2), *TINY])
    assert r.exit_code == 0, r.output
    assert load_model(run2, device="cpu").upscale == 2


def test_train_restore_rule_errors(tmp_path, syn):
    base = ["train", "restore", "--data", str(syn), "--pattern", "bbbc005", "--out", str(tmp_path / "r"), *TINY]
    r = runner.invoke(app, base + ["--input", "blur=48", "--target", "blur=23"])
    assert r.exit_code == 2 and "target rule 'blur=23' matches none of the 32 images" in _out(r)
    r = runner.invoke(app, base + ["--input", "focus=48", "--target", "blur=1"])
    assert r.exit_code == 2 and "names column 'focus'" in _out(r)
    r = runner.invoke(app, base + ["--input", "blur=48", "--target", "blur=1", "--upscale", "3"])
    assert r.exit_code == 2 and "--upscale 3 is not 1 or 2" in _out(r)
