"""A new task is one package, one registration line and its CLI command (issue 26).

The toy task "invert" (a model whose result is the image inverted) lives in a package written here, outside
deepscope. It is registered by one line (its package name added to ``deepscope.TASK_PACKAGES``, as a built-in
task is by a line in ``deepscope/tasks/__init__.py``; a third-party package would use the
``deepscope.task_plugins`` entry point), runs from a command registered on the CLI by this test (through the one
file driver, :func:`deepscope.predict.files.predict_files`) and from a pipeline (the generic ``model:`` step),
with nothing of deepscope edited.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

import deepscope
from deepscope.cli.app import app
from deepscope.data.synth import generate_field
from deepscope.io import read_image, write_tiff
from deepscope.models import get_task, list_tasks, load_model, plugins

#: The whole task: options, result, model class, plugin, file outputs.
TOY_PACKAGE = '''
"""The "invert" task: a model whose result is its image inverted (a toy, to show what a task is)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.models import ArchConfig, DeepscopeModel, register_task, select_channels
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.tasks.files import FileOutputs
from deepscope.tasks.options import TaskOptions, card_field


class InvertModel(DeepscopeModel):
    task = "invert"

    @classmethod
    def default_representation(cls, arch: Any) -> str:
        return "image"


@dataclass(frozen=True)
class InvertOptions(TaskOptions):
    maximum: float | None = card_field(None)  # what pixels are inverted against (None: the dtype's maximum)
    channel: int | None = None
    checked: bool = False


@dataclass(frozen=True, eq=False)
class InvertResult:
    image: np.ndarray


class InvertOutputs(FileOutputs):
    command = "invert"
    table_name = "inverted.csv"

    def columns(self) -> list[str]:
        return ["path", "output", "mean", "error"]

    def empty_row(self, path: Any) -> dict[str, Any]:
        return {"path": str(path), "output": "", "mean": np.nan, "error": ""}

    def write(self, path: Any, decoded: Any, result: InvertResult, row: dict[str, Any], run: Any) -> list[Any]:
        from deepscope.io import write_tiff

        out = self.out / f"{decoded.extra['stem']}.inverted.tif"
        run.record(out, inputs=decoded.inputs)
        row.update(output=str(out), mean=float(result.image.mean()))
        return [(functools.partial(lambda p, a: [str(write_tiff(p, a))], out, result.image), {"output": ""})]


@register_task
class Inversion(TorchTaskPlugin):
    task = "invert"
    representation = "image"
    model_class = InvertModel
    options_class = InvertOptions
    file_outputs_class = InvertOutputs

    def default_architecture(self, **options: Any) -> ArchConfig:
        return ArchConfig("unet", 1, 1, base=4, depth=1)

    def default_output(self, arch: ArchConfig, **options: Any) -> dict[str, Any]:
        return {**InvertOptions.parse(**options).card_output()}

    def run(self, model: Any, image: Any, options: InvertOptions) -> InvertResult:
        x = select_channels(np.asarray(image), model.spec, channel=options.channel, model=model.name,
                            checked=options.checked)
        top = options.maximum if options.maximum is not None else (
            np.iinfo(x.dtype).max if np.issubdtype(x.dtype, np.integer) else float(x.max()))
        return InvertResult((top - x).astype(x.dtype))
'''


def invert(paths: list[Path] = typer.Argument(..., metavar="PATH"),
           model: str = typer.Option(..., "--model", "-m"), out: Path = typer.Option(..., "--out")) -> None:
    """Invert images (the toy task's CLI command: the one file driver does the rest)."""
    from deepscope.predict.files import predict_files

    res = predict_files(paths, model, out)
    typer.echo(res.summary())
    if res.all_failed:
        raise typer.Exit(code=1)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy package on sys.path and its one registration line; deepscope's registries restored after."""
    pkgs = tmp_path / "pkgs"
    (pkgs / "toy_invert").mkdir(parents=True)
    (pkgs / "toy_invert" / "__init__.py").write_text(TOY_PACKAGE)
    monkeypatch.syspath_prepend(str(pkgs))
    list_tasks()  # deepscope's own registered first, so the registry restored after the test has them
    monkeypatch.setattr(plugins, "_PLUGINS", dict(plugins._PLUGINS))
    monkeypatch.setattr(deepscope, "TASK_PACKAGES", (*deepscope.TASK_PACKAGES, "toy_invert"))  # the registration
    plugins._load_builtin.cache_clear()
    monkeypatch.setattr(app, "registered_commands", list(app.registered_commands))
    app.command("invert")(invert)  # its CLI command
    yield
    plugins._load_builtin.cache_clear()
    sys.modules.pop("toy_invert", None)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        write_tiff(folder / f"img_{i}.tif", generate_field(4 + i, size=(96, 128), stains=1, seed=i).image(1))
    return folder


def test_a_toy_task_is_found_by_its_registration_line(toy, tmp_path):
    assert "toy_invert" not in sys.modules
    assert ("invert", "image") in list_tasks()  # imported through deepscope.TASK_PACKAGES, by name
    plugin = get_task("invert", "image")
    assert isinstance(plugin, plugins.TaskRunner)  # the contract shared code calls
    toy_mod = importlib.import_module("toy_invert")
    toy_mod.InvertModel(name="toy-invert").save(tmp_path / "model")
    model = load_model(tmp_path / "model", device="cpu")
    assert type(model).__name__ == "InvertModel" and model.options().maximum is None
    img = np.arange(12, dtype=np.uint8).reshape(3, 4) * 10
    np.testing.assert_array_equal(model.run(img).image, 255 - img)
    assert model.run(img, maximum=200).image[0, 1] == 190  # a caller's option over the card's
    with pytest.raises(TypeError, match="InvertOptions has no option 'tile'"):
        model.run(img, tile=128)


def test_a_toy_task_runs_from_its_cli_command_and_from_a_pipeline(toy, tmp_path, images):
    importlib.import_module("toy_invert").InvertModel(name="toy-invert").save(tmp_path / "model")
    runner = CliRunner()
    r = runner.invoke(app, ["invert", str(images), "-m", str(tmp_path / "model"), "--out", str(tmp_path / "inv")])
    assert r.exit_code == 0, r.output
    assert "2 of 2 image(s) done, 0 failed" in r.output
    table = pd.read_csv(tmp_path / "inv" / "inverted.csv")
    assert list(table.columns) == ["path", "output", "mean", "error"] and len(table) == 2
    for i in range(2):
        raw = read_image(images / f"img_{i}.tif").data
        np.testing.assert_array_equal(read_image(tmp_path / "inv" / f"img_{i}.inverted.tif").data, 255 - raw)
    assert (tmp_path / "inv" / "inverted.csv.prov.json").exists() or any((tmp_path / "inv").glob("*.prov.json"))

    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"inputs": {"paths": [str(images)]}, "steps": [
        {"segment": {"model": "otsu-watershed"}},
        {"model": {"model": str(tmp_path / "model"), "channel": "Image", "into": "Inverted"}},
        {"measure": {"channels": ["Image", "Inverted"]}}], "outputs": {"labels": False, "overlays": False}}))
    r = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--jobs", "0"])
    assert r.exit_code == 0, r.output
    objects = pd.read_parquet(tmp_path / "run" / "objects.parquet")
    assert len(objects) > 0
    np.testing.assert_allclose(objects["Intensity_MeanIntensity_Inverted"],
                               255 - objects["Intensity_MeanIntensity_Image"], atol=1e-4)


def test_a_model_step_keeps_labels_as_an_object_set(tmp_path, images):
    """The generic ``model:`` step runs any task: a segmentation model's labels make an object set."""
    from deepscope.errors import ConfigError
    from deepscope.models import ArchConfig, SegmentModel
    from deepscope.pipeline import Pipeline

    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(tmp_path / "seg")
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"inputs": {"paths": [str(images)]}, "steps": [
        {"model": {"model": str(tmp_path / "seg"), "objects": "Blobs", "options": {"tta": "flips"}}},
        {"count": {"objects": "Blobs"}}], "outputs": {"labels": True, "overlays": False}}))
    r = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--jobs", "0"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "run" / "labels").iterdir()) == ["img_0.Blobs.tif", "img_1.Blobs.tif"]
    with pytest.raises(ConfigError, match="as an object set .* or as a channel"):
        Pipeline.from_dict({"inputs": {"paths": ["x"]}, "steps": [{"model": {"model": "nuclei"}}]})
