"""The chapter 7 examples run end to end at toy size (bundled samples and seeded synthetic images)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "src" / "deepscope" / "samples"


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_counting_example_on_the_bundled_samples(tmp_path):
    main = _example("chapter7_counting").main
    res = main(["--data", str(SAMPLES), "--limit", "0", "--epochs", "1", "--out", str(tmp_path / "run"),
                "--device", "cpu", "--seed", "0"])
    assert res["n_train"] + res["n_valid"] + res["n_test"] == 10  # the bundled w1/w2 samples, masks left out
    assert res["n_test"] > 0 and res["rmse"] >= res["mae"] >= 0
    assert res["restored_matches"]
    assert (tmp_path / "run" / "model.json").exists() and (tmp_path / "run" / "metrics.jsonl").exists()


def test_counting_example_density_model_reports_coverage(tmp_path, capsys):
    main = _example("chapter7_counting").main
    res = main(["--data", str(SAMPLES), "--limit", "6", "--epochs", "1", "--model", "density",
                "--out", str(tmp_path / "run"), "--device", "cpu"])
    assert res["restored_matches"] and "95% interval coverage" in capsys.readouterr().out


def test_segmentation_example_on_synthetic_images(tmp_path, capsys):
    main = _example("chapter7_segmentation").main
    res = main(["--epochs", "1", "--fields", "2", "--counts", "3,6", "--size", "128x160", "--crop", "64",
                "--limit", "2", "--out", str(tmp_path / "work"), "--device", "cpu"])
    assert res["n_train"] > 0 and res["n_test"] > 0
    assert 0.0 <= res["pixel_accuracy"] <= 1.0 and 0.0 <= res["object_f1"] <= 1.0
    assert res["restored_matches"]
    out = capsys.readouterr().out
    assert "pixel accuracy" in out and "object F1@0.5" in out
    assert (tmp_path / "work" / "synth" / "masks").is_dir() and (tmp_path / "work" / "model" / "model.json").exists()
    if (ROOT.parent / "shared" / "data" / "bbbc005" / "images").exists():
        assert res["n_real"] == 2 and "file name says" in out


@pytest.mark.slow
def test_counting_example_on_real_bbbc005(tmp_path, bbbc005_dir):
    main = _example("chapter7_counting").main
    res = main(["--data", str(bbbc005_dir), "--limit", "40", "--epochs", "2", "--out", str(tmp_path / "run"),
                "--device", "cpu"])
    assert res["n_test"] > 0 and res["restored_matches"]
