"""The open seams of the models package: a new architecture and a new task plugin are registered, not
edited into shared code; the plugin is chosen from the card and runs through the same predictor and
batch runner as the built-in ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.errors import ConfigError, ModelError
from deepscope.models import (ArchConfig, SegmentModel, TaskPlugin, get_task, list_architectures, list_tasks,
                              load_model, plugins, register_architecture, register_task)
from deepscope.models import architectures


def test_builtin_plugins_are_found_through_the_registry():
    assert {("count", "density"), ("count", "regress"), ("segment", "instances"), ("segment", "foreground"),
            ("segment", "flows"), ("segment", "sized-distance"), ("restore", "image")} <= set(list_tasks())
    with pytest.raises(ModelError, match="no task plugin for task 'segment' with representation 'stars'.*"
                                         "registered: .*segment/instances"):
        get_task("segment", "stars")


@pytest.fixture
def registries(monkeypatch):
    """Register test plugins and architectures only for the test."""
    list_tasks()  # deepscope's own first, so the registry restored after the test has them
    monkeypatch.setattr(plugins, "_PLUGINS", dict(plugins._PLUGINS))
    monkeypatch.setattr(architectures, "_REGISTRY", dict(architectures._REGISTRY))


class _Threshold(nn.Module):
    def forward(self, x):
        return x - 0.5


def test_a_new_architecture_is_one_decorated_builder(registries):
    @register_architecture("test-threshold", stride=lambda cfg: 1)
    def build(cfg):
        """A network without weights."""
        return _Threshold()

    assert "test-threshold" in list_architectures()
    assert ArchConfig("test-threshold").stride == 1
    with pytest.raises(ConfigError, match="already registered"):
        register_architecture("test-threshold", stride=lambda cfg: 1)(lambda cfg: _Threshold())


def test_a_second_segmenter_is_a_new_plugin_chosen_from_the_card(registries, tmp_path):
    """Another representation of the segment task (as a flow segmenter would be): its own pre- and
    post-processing, saved in the card, loaded back with its behaviour, run by the batch runner."""
    from deepscope.predict.files import segment_paths
    from deepscope.tasks.segment import SegmentPlugin, SegmentResult

    @register_architecture("test-threshold", stride=lambda cfg: 1)
    def build(cfg):
        return _Threshold()

    @register_task
    class ThresholdSegmentation(SegmentPlugin):
        representation = "test-threshold"

        def default_architecture(self, **options):
            return ArchConfig("test-threshold")

        def default_output(self, arch, **options):
            return {"level": 0.0, **options}

        def run(self, model, image, options, *, out=None):
            from scipy import ndimage as ndi

            x = self.prepare(model, image, channel=options.channel, checked=options.checked)
            out = self.predictor(model).maps([x])[0][0]
            return SegmentResult(ndi.label(out > model.model_card.output["level"])[0].astype(np.int32))

    m = SegmentModel(representation="test-threshold", level=0.1)
    assert isinstance(get_task("segment", "test-threshold"), ThresholdSegmentation)
    m.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model", device="cpu")
    assert loaded.representation == "test-threshold" and loaded.model_card.output["level"] == 0.1
    img = np.zeros((20, 30), np.uint8)
    img[2:6, 2:6] = 200
    img[10:15, 20:25] = 200
    assert loaded.predict_image(img).max() == 2
    from deepscope.io import write_tiff

    write_tiff(tmp_path / "a.tif", img)
    res = segment_paths([tmp_path / "a.tif"], tmp_path / "out", model=loaded, device="cpu", overlay=False)
    assert res.n_failed == 0 and int(res.table["count"].iloc[0]) == 2
    with pytest.raises(ModelError, match="already registered"):
        register_task(type("Other", (TaskPlugin,), {"task": "segment", "representation": "test-threshold"}))


def test_torch_backend_matches_the_network(registries):
    from deepscope.predict import Predictor, TorchBackend

    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)).eval()
    with torch.no_grad():
        net[1].running_mean.fill_(0.3)
    x = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    want = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).detach().numpy()
    got = np.stack(Predictor(TorchBackend(net), stride=8, batch_size=2).maps(list(x)))
    np.testing.assert_allclose(got, want, atol=1e-5)  # BatchNorm folded into the convolution
