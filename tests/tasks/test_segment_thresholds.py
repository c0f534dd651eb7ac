"""Segmentation thresholds a user can tune without retraining (issue 31): ``prob_threshold``, ``flow_threshold``
and ``min_size`` on the Python API, ``deepscope segment`` and pipeline segment steps; defaults from the model
card, the values used in the lineage, bad values refused naming the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from deepscope.cli.app import app  # noqa: E402
from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import ConfigError, InputError  # noqa: E402
from deepscope.io import read_image, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, SegmentModel, load_model  # noqa: E402
from deepscope.pipeline import Pipeline  # noqa: E402
from deepscope.provenance import lineage  # noqa: E402
from deepscope.tasks.segment.flows import FlowPostprocessConfig, flows_to_instances, masks_to_flows  # noqa: E402
from deepscope.tasks.segment.options import apply_thresholds  # noqa: E402

runner = CliRunner()


def _out(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def nuclei():
    return load_model("nuclei", device="cpu")


@pytest.fixture(scope="module")
def cells():
    return load_model("cells-bbbc005", device="cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """An untrained watershed model (its card has the default post-processing: fg 0.5, min_size 8)."""
    d = tmp_path_factory.mktemp("m") / "seg"
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d)
    return d


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("thr") / "images"
    folder.mkdir()
    for i in range(2):
        write_tiff(folder / f"img_{i}.tif", generate_field(8 + 2 * i, size=(128, 160), stains=1, seed=i).image(1))
    return folder


# ------------------------------------------------------------------ options
def test_defaults_are_the_cards_and_callers_values_replace_them(nuclei, cells):
    card = nuclei.model_card.output["postprocess"]
    assert nuclei.options().thresholds() == {"prob_threshold": card["prob_threshold"],
                                             "flow_threshold": card["flow_threshold"], "min_size": card["min_size"]}
    o = nuclei.options(prob_threshold=0.7, flow_threshold=0.4, min_size=10)
    assert o.thresholds() == {"prob_threshold": 0.7, "flow_threshold": 0.4, "min_size": 10}
    assert (o.postprocess.prob_threshold, o.postprocess.flow_threshold, o.postprocess.min_size) == (0.7, 0.4, 10)
    assert o.postprocess.niter == card["niter"]  # the rest stays the card's
    assert o.replace(prob_threshold=0.3).postprocess.prob_threshold == 0.3  # model.run(image, options, **given)
    # watershed models: prob_threshold is their foreground threshold; there is no flow check
    c = cells.options(prob_threshold=0.8, min_size=5)
    assert (c.postprocess.fg_threshold, c.postprocess.min_size) == (0.8, 5)
    assert c.thresholds()["flow_threshold"] is None
    assert cells.options().thresholds()["prob_threshold"] == cells.model_card.output["postprocess"]["fg_threshold"]


@pytest.mark.parametrize("given, match", [
    ({"prob_threshold": 0.0}, r"prob_threshold must be a probability strictly between 0 and 1, got 0\.0"),
    ({"prob_threshold": 1.0}, "prob_threshold must be a probability strictly between 0 and 1"),
    ({"prob_threshold": 1.5}, "prob_threshold must be a probability"),
    ({"prob_threshold": "high"}, "prob_threshold must be a probability"),
    ({"flow_threshold": -0.1}, r"flow_threshold must be a number >= 0"),
    ({"min_size": -1}, r"min_size must be a whole number of pixels >= 0, got -1"),
    ({"min_size": 2.5}, r"min_size must be a whole number of pixels >= 0, got 2\.5"),
])
def test_bad_values_are_refused_naming_the_option(nuclei, given, match):
    with pytest.raises(InputError, match=match):
        nuclei.options(**given)
    with pytest.raises(InputError, match=match):
        nuclei.predict_image(np.zeros((32, 32), np.uint8), **given)


def test_flow_threshold_is_refused_by_models_without_flows(cells):
    with pytest.raises(InputError, match=r"model 'cells-bbbc005': flow_threshold applies only to models that "
                                         r"follow flows"):
        cells.options(flow_threshold=0.4)


# ------------------------------------------------------------------ what they do
def test_raising_prob_threshold_never_increases_the_count(nuclei, images):
    img = read_image(images / "img_1.tif").data
    counts = [int(nuclei.run(img, prob_threshold=t).count) for t in (0.2, 0.45, 0.7, 0.9, 0.99)]
    assert counts[1] > 0
    assert all(a >= b for a, b in zip(counts, counts[1:])), counts


def test_min_size_removes_small_objects_watershed(tiny):
    net = load_model(str(tiny), device="cpu")
    fg = np.zeros((40, 60), np.float32)
    fg[5:8, 5:8] = 1  # 9 pixels
    fg[20:32, 30:42] = 1  # 144 pixels
    dist = fg.copy()
    maps = np.stack([fg, dist])
    sizes = {}
    for m in (0, 10, 200):
        labels, _ = net.plugin.labels_from_maps(net, maps, net.options(min_size=m))
        sizes[m] = sorted(np.bincount(labels.ravel())[1:].tolist())
    assert sizes == {0: [9, 144], 10: [144], 200: []}


def test_min_size_removes_small_objects_flows():
    lab = np.zeros((48, 64), np.int32)
    lab[4:8, 4:8] = 1  # 16 pixels
    lab[16:40, 20:44] = 2  # 576 pixels
    prob, flows = (lab > 0).astype(np.float32), masks_to_flows(lab)
    base = FlowPostprocessConfig(min_size=1, min_converge=2)
    assert flows_to_instances(prob, flows, base).max() == 2
    assert flows_to_instances(prob, flows, apply_thresholds(base, min_size=100)).max() == 1


def test_min_size_end_to_end(nuclei, images):
    img = read_image(images / "img_0.tif").data
    assert nuclei.run(img, min_size=0).count >= nuclei.run(img).count > 0
    assert nuclei.run(img, min_size=100000).count == 0


@pytest.mark.parametrize("upsample", [1, 2])
def test_flow_threshold_drops_objects_whose_flows_disagree(upsample):
    """Object 2's predicted flows are weak (a fifth of its shape's): the flow check drops it, also when the labels
    are made at another resolution than the flows (the generalist's rescaled images)."""
    lab = np.zeros((48, 80), np.int32)
    lab[8:32, 6:30] = 1
    lab[8:32, 44:68] = 2
    flows = masks_to_flows(lab)
    flows[:, lab == 2] *= 0.2
    prob = (lab > 0).astype(np.float32)
    out_prob = np.kron(prob, np.ones((upsample, upsample), np.float32)) if upsample > 1 else None
    kept = {}
    for thr in (0.0, 0.1):
        cfg = FlowPostprocessConfig(flow_threshold=thr, min_converge=2, min_size=4)
        kept[thr] = int(flows_to_instances(prob, flows, cfg, out_prob=out_prob).max())
    assert kept == {0.0: 2, 0.1: 1}


# ------------------------------------------------------------------ CLI and lineage
def test_cli_options_are_used_and_recorded(tmp_path, images, tiny):
    out = tmp_path / "out"
    r = runner.invoke(app, ["segment", str(images / "img_0.tif"), "-o", str(out), "--model", str(tiny),
                            "--no-overlay", "--prob-threshold", "0.7", "--min-size", "5"])
    assert r.exit_code == 0, r.output
    rec = lineage.read(out / "img_0.labels.tif")
    assert (rec.params["prob_threshold"], rec.params["min_size"], rec.params["flow_threshold"]) == (0.7, 5, None)
    r = runner.invoke(app, ["segment", str(images / "img_0.tif"), "-o", str(out), "--model", str(tiny),
                            "--no-overlay"])
    assert r.exit_code == 0, r.output
    rec = lineage.read(out / "img_0.labels.tif")  # not given: the card's values, recorded
    assert (rec.params["prob_threshold"], rec.params["min_size"]) == (0.5, 8)


def test_cli_refuses_bad_values(tmp_path, images, tiny):
    for args, match in ((["--prob-threshold", "1.5"], "prob_threshold must be a probability strictly between 0 and 1"),
                        (["--min-size", "-3"], "min_size must be a whole number of pixels >= 0"),
                        (["--flow-threshold", "0.4"], "flow_threshold applies only to models that follow flows")):
        r = runner.invoke(app, ["segment", str(images / "img_0.tif"), "-o", str(tmp_path / "o"), "--model",
                                str(tiny), *args])
        assert r.exit_code == 2, r.output
        assert match in _out(r)


# ------------------------------------------------------------------ pipeline
def _pipe(seg: dict) -> Pipeline:
    return Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"segment": {"model": "nuclei", **seg}}]})


def test_pipeline_keys_are_parsed_round_trip_and_hashed():
    p = _pipe({"prob_threshold": 0.6, "flow_threshold": 0.4, "min_size": 20})
    s = p.steps[0]
    assert (s.prob_threshold, s.flow_threshold, s.min_size) == (0.6, 0.4, 20)
    d = p.to_dict()["steps"][0]["segment"]
    assert (d["prob_threshold"], d["flow_threshold"], d["min_size"]) == (0.6, 0.4, 20)
    assert Pipeline.from_dict(p.to_dict()).steps[0] == s
    plain = _pipe({})
    assert "prob_threshold" not in plain.to_dict()["steps"][0]["segment"]  # older pipelines keep their hash
    assert plain.hash() != p.hash()


@pytest.mark.parametrize("seg, match", [
    ({"prob_threshold": 1.2}, r"steps\[0\]\.segment\.prob_threshold: expected a probability strictly between 0 and 1"),
    ({"prob_threshold": "x"}, r"steps\[0\]\.segment\.prob_threshold: expected a number"),
    ({"flow_threshold": -1}, r"steps\[0\]\.segment\.flow_threshold: expected a number >= 0"),
    ({"min_size": -1}, r"steps\[0\]\.segment\.min_size: expected an integer >= 0"),
    ({"model": "cells-bbbc005", "flow_threshold": 0.4}, r"segment\.flow_threshold: model cells-bbbc005 separates "
                                                         r"objects by a seeded watershed"),
    ({"model": "otsu-watershed", "min_size": 3}, "min_size is for trained models; otsu-watershed takes its "
                                                 "settings from options"),
])
def test_pipeline_bad_values_are_refused(seg, match):
    with pytest.raises(ConfigError, match=match):
        _pipe(seg)


def test_segment_and_run_give_identical_labels_with_thresholds(images, tmp_path):
    opts = {"prob_threshold": 0.6, "flow_threshold": 0.4, "min_size": 60}
    r = runner.invoke(app, ["segment", str(images), "--model", "nuclei", "--out", str(tmp_path / "seg"),
                            "--no-overlay", "--jobs", "1", "--prob-threshold", "0.6", "--flow-threshold", "0.4",
                            "--min-size", "60"])
    assert r.exit_code == 0, r.output
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"inputs": {"paths": [str(images)]},
                                    "steps": [{"segment": {"model": "nuclei", **opts}}],
                                    "outputs": {"labels": True, "overlays": False}}))
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--jobs", "0"])
    assert r.exit_code == 0, r.output
    default = load_model("nuclei", device="cpu")
    changed = []
    for i in range(2):
        by_cli = read_image(tmp_path / "seg" / f"img_{i}.labels.tif").data
        by_run = read_image(tmp_path / "run" / "labels" / f"img_{i}.Nuclei.tif").data
        assert by_cli.max() > 0
        np.testing.assert_array_equal(by_cli, by_run)
        changed.append(not np.array_equal(by_cli, default.predict_image(read_image(images / f"img_{i}.tif").data)))
    assert any(changed), "the thresholds changed nothing: the comparison would not show they reach the step"


def test_analyze_takes_the_thresholds_into_its_segment_step(tmp_path):
    """``deepscope analyze --prob-threshold/--flow-threshold/--min-size``: the segment step of the one-line pipeline
    carries them (RUN_DIR/pipeline.yaml shows them), and a model they do not go with is refused before any work."""
    from deepscope.pipeline import default_pipeline

    folder = tmp_path / "images"
    folder.mkdir()
    write_tiff(folder / "a.tif", generate_field(5, size=(96, 128), stains=1, seed=3).image(1))
    seg = default_pipeline([folder], prob_threshold=0.3, flow_threshold=0.5, min_size=12).to_dict()["steps"][0]
    assert (seg["segment"]["prob_threshold"], seg["segment"]["flow_threshold"], seg["segment"]["min_size"]) == (
        0.3, 0.5, 12)
    assert "prob_threshold" not in default_pipeline([folder]).to_dict()["steps"][0]["segment"]
    r = CliRunner().invoke(app, ["analyze", str(folder), "--model", "otsu-watershed", "--min-size", "12", "--out",
                                 str(tmp_path / "run")])
    assert r.exit_code != 0 and "min_size is for trained models" in _out(r)
    assert not (tmp_path / "run" / "images.parquet").exists()
    r = CliRunner().invoke(app, ["analyze", str(folder), "--prob-threshold", "1.5", "--out", str(tmp_path / "run2")])
    assert r.exit_code != 0 and "strictly between 0 and 1" in _out(r)
