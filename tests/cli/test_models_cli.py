"""`deepscope models` and `deepscope models show` on a zoo of tiny models made in tmp_path."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.cli.models_cmd import key_metrics  # noqa: E402
from deepscope.models import ArchConfig, CountModel, SegmentModel, registry  # noqa: E402

runner = CliRunner()


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture()
def zoo(tmp_path, monkeypatch):
    z = tmp_path / "zoo"
    c = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2), name="tiny-count")
    c.update_card(description="A tiny counter for tests",
                  metrics={"bbbc005-test": {"mae": 0.612, "rmse": 0.9, "coverage": 0.95}})
    c.save(z / "tiny-count.json")
    s = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2), name="tiny-seg")
    s.update_card(description="A tiny segmenter", metrics={"f1@0.5": 0.91, "dsb": 0.7})
    s.save(z / "tiny-seg.json")
    monkeypatch.setattr(registry, "ZOO", z)
    return z


def test_models_lists_name_task_description_and_metrics(zoo):
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0, r.output
    out = _out(r)
    assert "2 shipped model(s)" in out and "tiny-count" in out and "tiny-seg" in out
    assert "A tiny counter for tests" in out and "bbbc005-test: mae 0.612" in out and "dsb 0.7" in out
    r = runner.invoke(app, ["models", "--task", "segment", "--json"])
    rows = json.loads(r.output)
    assert [row["name"] for row in rows] == ["tiny-seg"] and rows[0]["metrics"]["f1@0.5"] == 0.91


def test_models_show_prints_a_readable_card_and_json_on_request(zoo):
    r = runner.invoke(app, ["models", "show", "tiny-count"])
    assert r.exit_code == 0, r.output
    text = r.output
    assert not text.lstrip().startswith("{")  # a page, not raw JSON
    assert text.startswith("tiny-count  (count model") and "A tiny counter for tests" in text
    for heading in ("Input", "Architecture", "Weights"):
        assert f"\n{heading}\n" in text
    assert max(len(line) for line in text.splitlines()) <= 80
    r = runner.invoke(app, ["models", "show", "tiny-count", "--json"])
    assert r.exit_code == 0, r.output
    card = json.loads(r.output)
    assert card["task"] == "count" and card["architecture"]["base"] == 4
    assert card["weights"]["sha256"] == json.loads((zoo / "tiny-count.json").read_text())["weights"]["sha256"]
    r = runner.invoke(app, ["models", "show", "no-such-model"])
    assert r.exit_code == 2 and "unknown model 'no-such-model'" in _out(r) and "tiny-count" in _out(r)


def test_shipped_names_load_by_name(zoo, tmp_path):
    from deepscope.data.synth import generate_field
    from deepscope.io import write_tiff

    f = write_tiff(tmp_path / "a.tif", generate_field(3, size=(64, 96), seed=0).images[(1, 1)])
    r = runner.invoke(app, ["count", str(f), "--model", "tiny-count", "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["segment", str(f), "--model", "tiny-seg", "-o", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "a.labels.tif").exists()


def test_empty_zoo_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "ZOO", tmp_path)
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0 and "no shipped models installed" in _out(r)


def test_key_metrics_flattens_nested_and_skips_non_numbers():
    card = {"metrics": {"test": {"mae": 0.5, "note": "x", "ok": True, "n": 40}, "speed": 21.5}}
    assert key_metrics(card) == ["test: mae 0.5", "test: n 40", "speed 21.5"]
    assert key_metrics({}) == []
