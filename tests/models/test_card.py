"""The typed model card: version-1 cards load (upgraded in memory), cards are frozen, bad cards are refused."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from deepscope.errors import ModelError
from deepscope.models import (CARD_SCHEMA, ZOO, ArchConfig, CountModel, InputSpec, ModelCard, SegmentModel,
                              list_models, load_card, load_model, model_card, upgrade_card)


def _shipped(version: int) -> list[str]:
    """Shipped models whose card file was written with card schema ``version`` (files stay as written)."""
    out = []
    for m in list_models():
        raw = json.loads((ZOO / f"{m.name}.json").read_text())
        if raw.get("schema_version", raw.get("card_version")) == version:
            out.append(m.name)
    return out


def test_shipped_cards_are_of_a_known_schema():
    assert sorted(_shipped(1) + _shipped(CARD_SCHEMA)) == sorted(m.name for m in list_models())
    assert _shipped(1) and _shipped(CARD_SCHEMA)  # both paths below are exercised by real shipped cards


@pytest.mark.parametrize("name", _shipped(CARD_SCHEMA))
def test_shipped_current_cards_round_trip(name):
    raw = json.loads((ZOO / f"{name}.json").read_text())
    card = load_card(ZOO / f"{name}.json")
    assert card.name == name and card.task == raw["task"] and card.representation == raw["representation"]
    assert card.weights.sha256 == raw["weights"]["sha256"]
    assert ModelCard.from_dict(card.to_dict()) == card


@pytest.mark.parametrize("name", _shipped(1))
def test_shipped_version1_cards_upgrade(name):
    raw = json.loads((ZOO / f"{name}.json").read_text())
    assert raw["card_version"] == 1
    card = load_card(ZOO / f"{name}.json")
    assert card.schema_version == CARD_SCHEMA and card.task == raw["task"] and card.name == name
    assert card.architecture.to_dict() == {k: v for k, v in raw["architecture"].items() if k != "extra"}
    assert card.weights.sha256 == raw["weights"]["sha256"]
    assert card.representation == {"count": raw["output"].get("head", "density"),
                                   "segment": raw["output"].get("mode"), "restore": "image"}[raw["task"]]
    assert dict(card.input.stats) == raw.get("input_stats", {})
    assert card.to_dict()["schema_version"] == CARD_SCHEMA and ModelCard.from_dict(card.to_dict()) == card


def test_a_version1_card_file_written_by_deepscope_01_loads(tmp_path):
    """A run folder of deepscope 0.1 (card_version 1, output.mode, architecture.extra) loads and predicts."""
    m = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    m.save(tmp_path / "run")
    v1 = {"name": "old", "task": "segment", "card_version": 1, "init_seed": 0,
          "architecture": {**m.arch.to_dict(), "extra": {}},
          "input": {**m.spec.to_dict(), "stats": {}},
          "output": {"mode": "instances", "n_classes": 1, "class_names": [], "tile": 1024, "overlap": 96,
                     "postprocess": {"mode": "watershed", "min_size": 3}},
          "weights": m.model_card.weights.to_dict(), "training": {"epochs_done": 1}}
    (tmp_path / "run" / "model.json").write_text(json.dumps(v1))
    old = load_model(tmp_path / "run", device="cpu")
    assert isinstance(old, SegmentModel) and old.representation == "instances" and old.postprocess.min_size == 3
    assert old.model_card.training["epochs_done"] == 1
    img = np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)
    np.testing.assert_array_equal(old.predict_image(img), m.predict_image(img))
    assert json.loads((tmp_path / "run" / "model.json").read_text()) == v1  # never rewritten on load
    assert model_card(tmp_path / "run").schema_version == CARD_SCHEMA


def test_card_is_frozen_and_replaced():
    card = load_card(ZOO / "nuclei.json")
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        card.output["tile"] = 5  # type: ignore[index]
    new = card.with_output(tile=512)
    assert new.output["tile"] == 512 and card.output["tile"] == 1024


def test_the_card_dict_view_is_read_only_and_cards_change_through_validated_updates():
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    with pytest.raises(TypeError):
        m.card["output"]["tta"] = "flips"  # type: ignore[index]
    m.update_output(tta="flips")
    m.update_card(training={**m.model_card.training, "recipe": "here"})
    m.card = {**m.card, "input_stats": {"mean": 0.5}}  # the version-1 place of the training-input statistics
    assert m.model_card.output["tta"] == "flips" and m.model_card.training["recipe"] == "here"
    assert m.options().tta == "flips" and m.card["output"]["tta"] == "flips"
    assert m.spec.stats == {"mean": 0.5}
    with pytest.raises(ModelError, match="arch='resnet' is not one of"):
        m.card = {**m.card, "architecture": {"arch": "resnet"}}
    with pytest.raises(ModelError, match="task, representation and architecture are fixed"):
        m.card = {**m.card, "architecture": {**m.arch.to_dict(), "base": 8}}
    assert m.arch.base == 4 and m.card["architecture"]["base"] == 4


@pytest.mark.parametrize("change, match", [
    ({"schema_version": 99}, "schema 99 is newer than this deepscope reads"),
    ({"architecture": {"arch": "unet", "extra": {"x": 1}}}, "'extra' settings"),
    ({"task": "classify", "card_version": 1}, "version-1 model card has task 'classify'"),
    ({"input": {"normalise": "fixed"}}, "unknown input keys \\['normalise'\\]"),
])
def test_invalid_cards_are_refused(tmp_path, change, match):
    raw = {**json.loads((ZOO / "nuclei-fluo.json").read_text()), **change}  # a version-1 card
    (tmp_path / "m.json").write_text(json.dumps(raw))
    shutil.copy(ZOO / "nuclei-fluo.safetensors", tmp_path / "m.safetensors")
    with pytest.raises(ModelError, match=match):
        load_model(tmp_path / "m.json")


def test_upgrade_is_a_copy():
    raw = json.loads((ZOO / "deblur-bbbc005.json").read_text())
    before = json.dumps(raw, sort_keys=True)
    up = upgrade_card(raw)
    assert json.dumps(raw, sort_keys=True) == before and "input_stats" not in up and up["input"]["stats"]


def test_input_spec_rejects_unknown_modes():
    from deepscope.errors import ConfigError

    with pytest.raises(ConfigError, match="grey='median' is not one of"):
        InputSpec(grey="median")
