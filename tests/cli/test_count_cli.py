"""`deepscope count` and `deepscope evaluate count` with tiny untrained models saved in tmp_path."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field, image_name  # noqa: E402
from deepscope.io import write_png, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, list_models  # noqa: E402

runner = CliRunner()
SIZE = (128, 160)


def _out(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("m") / "count"
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d)
    return d


@pytest.fixture(scope="module")
def bbbc(tmp_path_factory) -> Path:
    """BBBC005-named synthetic images: 3 fields x 2 blur levels x 2 stains."""
    folder = tmp_path_factory.mktemp("bbbc")
    for count, site in ((2, 1), (3, 2), (4, 3)):
        f = generate_field(count, size=SIZE, blurs=(1, 48), stains=(1, 2), seed=count)
        for (stain, blur), img in f.images.items():
            write_tiff(folder / image_name(count, blur, site, stain, row={1: 0, 48: 15}[blur], column=count), img)
    return folder


def test_count_writes_csv_with_error_rows(tmp_path, bbbc, model):
    folder = tmp_path / "imgs"
    for p in sorted(bbbc.glob("*_F1_*"))[:2]:
        (folder / p.name).parent.mkdir(exist_ok=True)
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "notes.png").write_bytes(b"not a png at all")
    out = tmp_path / "counts.csv"
    r = runner.invoke(app, ["count", str(folder), "--model", str(model), "--output", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "2 of 3 image(s) done, 1 failed" in _out(r) and "notes.png" in _out(r)
    t = pd.read_csv(out, keep_default_na=False)
    assert list(t.columns) == ["path", "count", "count_low", "count_high", "count_estimate", "std", "method", "in_domain",
                               "error"]
    assert len(t) == 3 and (t["error"] != "").sum() == 1
    good = t[t["error"] == ""]
    assert (good["count_low"].astype(float) <= good["count"].astype(float)).all()
    assert (tmp_path / "counts.csv.prov.json").exists()


def test_count_exits_1_only_when_all_fail(tmp_path, model):
    (tmp_path / "a.tif").write_bytes(b"garbage")
    r = runner.invoke(app, ["count", str(tmp_path / "a.tif"), "--model", str(model),
                            "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 1 and "0 of 1 image(s) done, 1 failed" in _out(r)


def test_count_rgb_error_names_file_and_channel_fix(tmp_path, model):
    f = generate_field(3, size=SIZE, stains=(1, 2), seed=0)
    rgb = write_png(tmp_path / "rgb.png", np.dstack([f.images[(1, 1)], f.images[(2, 1)], f.images[(1, 1)]]))
    r = runner.invoke(app, ["count", str(rgb), "--model", str(model), "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 1 and "rgb.png has 3 distinct channels" in _out(r) and "--channel N" in _out(r)
    r = runner.invoke(app, ["count", str(rgb), "--model", str(model), "-o", str(tmp_path / "c.csv"),
                            "--channel", "1"])
    assert r.exit_code == 0, r.output


def test_count_16_bit_float_and_all_zero_images(tmp_path, model):
    img = generate_field(3, size=SIZE, seed=1).images[(1, 1)]
    write_tiff(tmp_path / "in" / "u16.tif", img.astype(np.uint16) * 257)
    write_tiff(tmp_path / "in" / "f32.tif", img.astype(np.float32) / 255)
    write_tiff(tmp_path / "in" / "zero.tif", np.zeros((97, 131), np.uint8))  # another, odd size too
    out = tmp_path / "c.csv"
    r = runner.invoke(app, ["count", str(tmp_path / "in"), "--model", str(model), "-o", str(out)])
    assert r.exit_code == 0, r.output
    t = pd.read_csv(out, keep_default_na=False).set_index(pd.read_csv(out)["path"].map(lambda p: Path(p).name))
    assert (t["error"] == "").all()
    assert float(t.loc["u16.tif", "count"]) == pytest.approx(float(t.loc["f32.tif", "count"]), rel=1e-3)
    assert np.isfinite(float(t.loc["zero.tif", "count"])) and float(t.loc["zero.tif", "count_low"]) >= 0


def test_a_pickle_model_file_is_refused_and_not_executed(tmp_path, bbbc):
    marker = tmp_path / "was_unpickled"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(Payload()))
    r = runner.invoke(app, ["count", str(bbbc), "--model", str(evil), "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 2 and "is not a deepscope model" in _out(r) and "nothing was loaded or executed" in _out(r)
    assert not marker.exists() and not (tmp_path / "c.csv").exists()
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"hello": "world"}))
    r = runner.invoke(app, ["count", str(bbbc), "--model", str(card), "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 2 and "is not a deepscope model card" in _out(r)


@pytest.mark.skipif("count-bbbc005" in [m.name for m in list_models()], reason="the shipped counter is installed")
def test_default_model_missing_says_what_is_shipped(tmp_path, bbbc):
    r = runner.invoke(app, ["count", str(bbbc), "-o", str(tmp_path / "c.csv")])
    assert r.exit_code == 2 and "unknown model 'count-bbbc005'" in _out(r)


def test_evaluate_count_overall_and_per_stratum(tmp_path, bbbc, model):
    js, csv = tmp_path / "r.json", tmp_path / "r.csv"
    r = runner.invoke(app, ["evaluate", "count", "--data", str(bbbc), "--pattern", "bbbc005", "--model", str(model),
                            "--json", str(js), "--csv", str(csv), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "blur=48" in r.output and "stain=2" in r.output and "coverage" in _out(r)
    doc = json.loads(js.read_text())
    assert doc["n_images"] == 12 and doc["overall"]["n"] == 12
    assert {(s["stratum"], s["value"]) for s in doc["strata"]} == {("blur", "1"), ("blur", "48"), ("stain", "1"),
                                                                  ("stain", "2")}
    table = pd.read_csv(csv)
    assert doc["overall"]["mae"] == pytest.approx((table["count"] - table["true"]).abs().mean())
    assert sorted(table["true"].unique()) == [2, 3, 4]  # true counts from the file names, never the model


def test_evaluate_count_test_subset_matches_the_training_split(tmp_path, bbbc, model):
    from deepscope.data import GroupSplitter, ImageLoader

    js = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", "count", "--data", str(bbbc), "--pattern", "bbbc005", "--model", str(model),
                            "--subset", "test", "--fractions", "0.34,0.33,0.33", "--seed", "3", "--json", str(js)])
    assert r.exit_code == 0, r.output
    ds = ImageLoader(pattern="bbbc005", labels="count").load(bbbc)
    _, _, test = GroupSplitter(by="field").split(ds, 0.34, 0.33, 0.33, seed=3)
    assert json.loads(js.read_text())["n_images"] == len(test) == 4
    r = runner.invoke(app, ["evaluate", "count", "--data", str(bbbc), "--pattern", "bbbc005", "--model", str(model),
                            "--subset", "holdout"])
    assert r.exit_code == 2 and "--subset 'holdout' is not one of" in _out(r)


def test_tta_is_the_cards_unless_given_and_is_recorded(tmp_path):
    """``--tta``: the shipped counter's own (diagonal, 4 passes) by default; ``none`` runs one pass and gives a
    (slightly) different count; the choice is in the lineage; an unknown mode is one clear error."""
    from deepscope.models import list_models, model_card
    from deepscope.provenance import lineage

    if "count-bbbc005" not in {m.name for m in list_models()}:
        pytest.skip("needs the shipped counter")
    assert model_card("count-bbbc005").output["tta"] == "diagonal"
    sample = Path(__file__).resolve().parents[2] / "src" / "deepscope" / "samples" / "SIMCEPImages_A05_C18_F1_s01_w1.TIF"
    runner = CliRunner()
    counts = {}
    for tta in (None, "none", "diagonal"):
        out = tmp_path / f"{tta}.csv"
        r = runner.invoke(app, ["count", str(sample), "-o", str(out), "--no-report"] + (["--tta", tta] if tta else []))
        assert r.exit_code == 0, r.output
        counts[tta] = float(pd.read_csv(out)["count_estimate"].iloc[0])
        assert lineage.read(out).params["tta"] == tta
    assert counts[None] == counts["diagonal"] != counts["none"]
    assert abs(counts["none"] - 18) < 2 and abs(counts[None] - 18) < 2
    r = runner.invoke(app, ["count", str(sample), "-o", str(tmp_path / "x.csv"), "--tta", "d16"])
    assert r.exit_code != 0 and "tta='d16' is not one of" in r.output
