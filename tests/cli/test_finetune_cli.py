"""`deepscope train ... --init MODEL`: fine-tuning a trained model on a few images, at toy size.

The parent is a tiny model trained here (and, where installed, the shipped ``nuclei``); the checks are
what a fine-tune must keep or change: the parent's weights are the start (not a fresh network), the
card records the parent and every image's SHA-256, lineage reaches the parent, and wrong
combinations of options or data are refused with a message naming the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import MASK_TEMPLATE, write_dataset  # noqa: E402
from deepscope.io.readers import sha256_file  # noqa: E402
from deepscope.models import list_models, load_model  # noqa: E402

runner = CliRunner()


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("syn") / "bbbc"
    write_dataset(d, counts=[1, 2, 3, 4], blurs=[1], sites=2, stains=[1], size=(96, 128), seed=0)
    return d


@pytest.fixture(scope="module")
def parent(syn, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("parent") / "parent"
    r = runner.invoke(app, ["train", "count", "--data", str(syn), "--pattern", "bbbc005", "--out", str(run),
                            "--base", "4", "--depth", "2", "--device", "cpu", "--epochs", "1"])
    assert r.exit_code == 0, r.output
    return run


def test_fine_tune_starts_from_the_parent_and_records_it(tmp_path, syn, parent):
    run = tmp_path / "ft"
    # the parent's split (a fine-tune of fewer than 30 images splits 0.7/0.3 by default), so the first epoch's
    # training loss compares with the parent's on the same images
    r = runner.invoke(app, ["train", "count", "--init", str(parent), "--data", str(syn), "--pattern", "bbbc005",
                            "--out", str(run), "--device", "cpu", "--epochs", "1", "--time-budget", "30",
                            "--fractions", "0.8,0.1,0.1"])
    assert r.exit_code == 0, r.output
    assert "fine-tuning count-model on" in _out(r)
    cfg = yaml.safe_load((run / "train.yaml").read_text())
    assert cfg["lr"] == 2e-4 and cfg["steps_per_epoch"] == 10 and cfg["time_budget"] == 30.0  # fine-tune defaults
    card = json.loads((run / "model.json").read_text())
    parent_card = json.loads((parent / "model.json").read_text())
    assert card["name"] == "ft" and card["architecture"] == parent_card["architecture"]
    t = card["training"]
    assert t["parent"]["name"] == "count-model" and Path(t["parent"]["source"]) == parent / "model.json"
    assert t["parent"]["weights_sha256"] == parent_card["weights"]["sha256"]
    assert t["parent"]["training"]["epochs_done"] == 1  # the parent's own record travels with it
    used = {Path(d["path"]).name: d["sha256"] for d in t["data"]["train"] + t["data"]["valid"]}
    assert used and all(sha256_file(syn / name) == sha for name, sha in used.items())
    assert card["weights"]["sha256"] != parent_card["weights"]["sha256"]
    # the first epoch started from the parent's weights: its loss is near the parent's last, not a fresh start's
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    fresh = json.loads((parent / "metrics.jsonl").read_text().splitlines()[0])
    assert first["train_loss"] < fresh["train_loss"]

    # the fine-tuned run is a model like any other, and lineage reaches the parent
    out = tmp_path / "c.csv"
    r = runner.invoke(app, ["count", str(syn), "--no-recursive", "--model", str(run), "-o", str(out), "--no-report"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["lineage", str(out)])
    assert r.exit_code == 0, r.output
    assert f"fine-tuned from count-model weights sha256 {parent_card['weights']['sha256']}" in _out(r)


def test_fine_tune_option_and_data_errors(tmp_path, syn, parent):
    base = ["train", "count", "--data", str(syn), "--pattern", "bbbc005", "--out", str(tmp_path / "x")]
    r = runner.invoke(app, base + ["--init", str(parent), "--base", "8"])
    assert r.exit_code == 2 and "--base cannot be combined with --init" in _out(r)
    r = runner.invoke(app, base + ["--init", "no-such-model"])
    assert r.exit_code != 0 and "no-such-model" in _out(r)
    r = runner.invoke(app, ["train", "segment", "--init", str(parent), "--images", str(syn), "--masks",
                            str(syn / "masks"), "--pairing", f"template:{MASK_TEMPLATE}", "--pattern", "bbbc005",
                            "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "count" in _out(r)  # a counter cannot be fine-tuned as a segmenter
    assert not (tmp_path / "x").exists() or not (tmp_path / "x" / "model.json").exists()


def test_fine_tune_from_python_keeps_the_weights_it_starts_from(tmp_path, parent):
    from deepscope.data import ImageDataset
    from deepscope.data.synth import generate_field

    fields = [generate_field(n, size=(96, 128), blurs=(1,), stains=(1,), seed=n) for n in (2, 3, 4, 5)]
    ds = ImageDataset([f.images[(1, 1)] for f in fields], y=np.array([2.0, 3, 4, 5]), label_kind="value")
    model = load_model(parent, device="cpu")
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    model.fit(ds, nb_epoch=1, valid_dataset=ds, model_dir=tmp_path / "py", fine_tune=True, time_budget=20,
              steps_per_epoch=1, lr=1e-12, device="cpu")
    after = model.net.state_dict()
    # with a vanishing learning rate, the trained weights are the parent's, not a fresh initialisation
    conv = [k for k in before if k.endswith("weight") and before[k].ndim == 4]
    assert all(np.allclose(before[k].numpy(), after[k].numpy(), atol=1e-6) for k in conv)
    card = load_model(tmp_path / "py", device="cpu").card
    assert Path(card["training"]["parent"]["source"]) == parent / "model.json"
    assert [d["path"] for d in card["training"]["data"]["train"]] == ["#0", "#1", "#2", "#3"]  # in-memory images


@pytest.mark.skipif("nuclei" not in [m.name for m in list_models()], reason="needs the shipped nuclei model")
def test_fine_tune_shipped_nuclei_retunes_and_widens_its_domain_check(tmp_path, syn):
    run = tmp_path / "nuc"
    r = runner.invoke(app, ["train", "segment", "--init", "nuclei", "--images", str(syn), "--masks",
                            str(syn / "masks"), "--pairing", f"template:{MASK_TEMPLATE}", "--pattern", "bbbc005",
                            "--out", str(run), "--device", "cpu", "--epochs", "1", "--crop", "64",
                            "--batch-size", "2", "--time-budget", "5", "--keep-worse"])
    assert r.exit_code == 0, r.output
    card = json.loads((run / "model.json").read_text())
    shipped = load_model("nuclei").card
    assert card["training"]["parent"]["name"] == "nuclei" and card["metrics"] == {}
    assert card["output"]["postprocess_tuned_dsb"] is not None  # thresholds re-tuned on the user's validation images
    dom = card["output"]["domain"]
    assert dom["n_train"] > shipped["output"]["domain"]["n_train"] and "widened" in dom["calibrated_on"]
    for kind, low in shipped["output"]["domain"]["low"].items():  # the parent's kinds stay accepted
        assert np.all(np.nan_to_num(dom["low"][kind], nan=0) <= np.nan_to_num(low, nan=0) + 1e-9)
    if "classifier" in shipped["output"]["domain"]:  # the picture check is kept, its threshold never raised
        assert dom["classifier"]["threshold"] <= shipped["output"]["domain"]["classifier"]["threshold"]


def test_binary_masks_become_instances_and_bad_masks_are_named(tmp_path):
    from scipy import ndimage as ndi

    from deepscope.data import ImageLoader, PairRule
    from deepscope.data.synth import generate_field
    from deepscope.io import write_png, write_tiff
    from deepscope.models import ArchConfig, SegmentModel

    images, masks = tmp_path / "images", tmp_path / "masks"
    truth = []
    for i in range(4):
        f = generate_field(3, size=(96, 112), blurs=(1,), stains=(1,), seed=i)
        write_tiff(images / f"im{i}.tif", f.images[(1, 1)])
        write_png(masks / f"im{i}.png", ((f.nuclei > 0) * 255).astype(np.uint8))  # 0/255, no instance ids
        truth.append(ndi.label(f.nuclei > 0)[0].max())
    model = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    ds = ImageLoader(masks=PairRule(masks)).load(images)
    assert [int(lab.max()) for lab in model.plugin.mask_labels(ds)] == truth  # connected components
    tiny = ["--base", "4", "--depth", "2", "--device", "cpu", "--epochs", "1", "--crop", "32"]
    r = runner.invoke(app, ["train", "segment", "--images", str(images), "--masks", str(masks),
                            "--out", str(tmp_path / "ok"), *tiny])
    assert r.exit_code == 0, r.output

    write_png(masks / "im0.png", np.zeros((32, 40), np.uint8))  # the mask of another image size
    r = runner.invoke(app, ["train", "segment", "--images", str(images), "--masks", str(masks),
                            "--out", str(tmp_path / "bad"), *tiny])
    assert r.exit_code != 0
    flat = "".join(r.output.split())  # long temporary paths wrap anywhere in the console
    assert "im0.png'is(32,40)butitsimage" in flat and "im0.tif'is(96,112)" in flat
    assert not (tmp_path / "bad" / "model.json").exists()


@pytest.fixture(scope="module")
def weak(tmp_path_factory) -> Path:
    """A parent saved straight from its random weights (seeded): val MAE ~0.53 on the toy fields."""
    from deepscope.models import ArchConfig, CountModel

    folder = tmp_path_factory.mktemp("weak") / "weak"
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(folder)
    return folder


def _fine_tune(syn, parent, out, *extra):
    return runner.invoke(app, ["train", "count", "--init", str(parent), "--data", str(syn), "--pattern", "bbbc005",
                               "--device", "cpu", "--out", str(out), *extra])


def test_a_fine_tune_that_does_not_beat_its_parent_leaves_the_parent_unchanged(tmp_path, syn, weak):
    """Four epochs at lr 3e-3 end at val MAE ~0.92, worse than the parent's ~0.53 on the same validation
    images: the run holds the parent's weights, the card and the console give both scores, and --keep-worse
    keeps the fine-tuned weights instead."""
    args = ("--epochs", "4", "--lr", "3e-3")
    r = _fine_tune(syn, weak, tmp_path / "same", *args)
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "same" / "model.json").read_text())
    parent_card = json.loads((weak / "model.json").read_text())
    guard = card["training"]["fine_tune"]
    assert guard["kept"] == "parent" and guard["monitor"] == "val_mae" and guard["n_valid"] >= 2
    assert guard["fine_tuned_score"] > guard["parent_score"]
    kept, original = load_model(str(tmp_path / "same")), load_model(str(weak))
    for (k, a), b in zip(kept.net.state_dict().items(), original.net.state_dict().values()):
        assert torch.equal(a, b), k  # the parent's tensors, unchanged (buffers too)
    assert card["name"] == "same" and card["training"]["parent"]["name"] == parent_card["name"]
    out = _out(r)
    assert f"parent {guard['parent_score']:.4g}, fine-tuned {guard['fine_tuned_score']:.4g}" in out
    assert "holds the parent's weights unchanged" in out
    r = _fine_tune(syn, weak, tmp_path / "forced", *args, "--keep-worse")
    assert r.exit_code == 0, r.output
    forced = json.loads((tmp_path / "forced" / "model.json").read_text())
    assert forced["training"]["fine_tune"]["kept"].startswith("fine-tuned (asked")
    assert forced["weights"]["sha256"] != parent_card["weights"]["sha256"]


def test_a_fine_tune_that_beats_its_parent_is_kept_with_both_scores(tmp_path, syn, weak):
    """Ten epochs at lr 1e-2 reach val MAE ~0.15 against the parent's ~0.53: the fine-tuned weights are kept."""
    r = _fine_tune(syn, weak, tmp_path / "ft", "--epochs", "10", "--lr", "1e-2")
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "ft" / "model.json").read_text())
    guard = card["training"]["fine_tune"]
    assert guard["kept"] == "fine-tuned" and guard["fine_tuned_score"] < guard["parent_score"], (guard, _out(r))
    assert card["weights"]["sha256"] != json.loads((weak / "model.json").read_text())["weights"]["sha256"]
    assert "holds the fine-tuned weights (better than the parent)" in _out(r)


def test_a_small_fine_tune_validates_on_several_images_and_spends_none_on_a_test_part(tmp_path, syn, parent):
    r = runner.invoke(app, ["train", "count", "--init", str(parent), "--data", str(syn), "--pattern", "bbbc005",
                            "--device", "cpu", "--epochs", "1", "--lr", "1e-12", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    parts = (tmp_path / "r" / "split.csv").read_text().splitlines()[1:]
    kinds = [line.rsplit(",", 1)[1] for line in parts]
    assert "test" not in kinds and kinds.count("valid") >= 2  # 8 images: 0.7 / 0.3 / 0, by field
