"""What a run is given (deepscope.predict.inputs) and how the file driver uses it: a model passed in is
never changed, the tile overlap has one rule, each image's pixels are checked once, and warnings name
the caller's file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("torch")

from deepscope.data import transforms  # noqa: E402
from deepscope.io import write_png, write_tiff  # noqa: E402
from deepscope.models import ArchConfig, CountModel, SegmentModel  # noqa: E402
from deepscope.predict.files import count_paths, segment_paths  # noqa: E402
from deepscope.predict.inputs import resolve_model, tile_overlap  # noqa: E402


@pytest.fixture(scope="module")
def net():
    return SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))


def test_resolve_model_leaves_the_callers_model_as_it_was(net):
    assert (net.backend, net.device_name) == ("auto", "auto")
    assert resolve_model(net, task="segment") is net  # nothing to change: the model itself
    on_onnx = resolve_model(net, task="segment", backend="onnx")
    assert on_onnx is not net and on_onnx.backend == "onnx" and on_onnx.net is net.net  # the weights shared
    on_cpu = resolve_model(net, task="segment", device="cpu", backend="torch")
    assert on_cpu.device_name == "cpu" and on_cpu.net is not net.net
    for a, b in zip(on_cpu.net.state_dict().values(), net.net.state_dict().values()):
        assert np.array_equal(a.cpu().numpy(), b.cpu().numpy())
    assert (net.backend, net.device_name) == ("auto", "auto")  # the caller's model unchanged


def test_tile_overlap_is_one_rule(net):
    card = int(net.model_card.output["overlap"])  # 96
    assert tile_overlap(net, None, None) is None  # the model's own default
    assert tile_overlap(net, 2 * card + 1, None) == card
    assert tile_overlap(net, 128, None) == 32  # a quarter of a tile too small for the card's overlap
    assert tile_overlap(net, 128, 10) == 10  # as given


def test_each_image_is_checked_once(net, tmp_path, monkeypatch):
    """The driver checks the pixels when it reads them and tells the model so (checked=True): one scan per
    image on the segment and count paths, not one in the driver and another in the model's prepare."""
    calls: list[tuple[int, ...]] = []
    real = transforms.check_finite

    def counting(image, *, path=""):
        calls.append(np.shape(image))
        return real(image, path=path)

    monkeypatch.setattr(transforms, "check_finite", counting)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_tiff(tmp_path / "in" / f"f{i}.tif", rng.random((48, 64)).astype(np.float32))
    res = segment_paths([tmp_path / "in"], tmp_path / "seg", model=net, overlay=False, jobs=1)
    assert res.n_failed == 0 and len(calls) == 2
    calls.clear()
    counter = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    res = count_paths([tmp_path / "in"], model=counter, jobs=1, batch_size=2)
    assert res.n_failed == 0 and len(calls) == 2
    calls.clear()
    net.predict_image(rng.random((48, 64)).astype(np.float32))  # called directly: the model checks
    assert len(calls) == 1


def test_warnings_name_the_callers_file(net, tmp_path):
    """A fixed stacklevel points at the wrong frame once code moves; the warning names this file."""
    img = np.random.default_rng(1).integers(0, 255, (40, 48), dtype=np.uint8)
    write_tiff(tmp_path / "in" / "y.tif", img)
    write_png(tmp_path / "in" / "y.png", img)
    with pytest.warns(UserWarning, match="which an earlier input uses") as record:
        segment_paths([tmp_path / "in"], tmp_path / "out", model=net, overlay=False, jobs=1)
    mine = [w for w in record if "earlier input uses" in str(w.message)]
    assert mine and mine[0].filename == __file__


def test_user_stacklevel_skips_deepscope_frames():
    from deepscope.errors import user_stacklevel

    assert user_stacklevel() == 1  # called from outside deepscope: the caller itself
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        warnings.warn("here", stacklevel=user_stacklevel())
    assert record[0].filename == __file__
