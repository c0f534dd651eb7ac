from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.errors import InputError, ModelError
from deepscope.evaluate import match_instances
from deepscope.models import (ArchConfig, CountModel, InputSpec, RestoreModel, SegmentModel, list_models,
                              load_model, model_card)
from deepscope.models import build_network
from deepscope.models.networks import BookCountNet, BookUNet


def _blobs(shape=(96, 128), n=12, r=5, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, np.int32)
    k = 0
    while k < n:
        cr, cc = rng.integers(r + 2, shape[0] - r - 2), rng.integers(r + 2, shape[1] - r - 2)
        m = (yy - cr) ** 2 + (xx - cc) ** 2 <= r * r
        if lab[m].any():
            continue
        k += 1
        lab[m] = k
    img = (lab > 0) * 180 + rng.integers(0, 10, shape)
    return img.astype(np.uint8), lab


class _Handmade(nn.Module):
    """A local, deterministic 'segmentation network': fg = image, dist = blurred image (5x5 box)."""

    def forward(self, x):  # noqa: D401
        fg = 20 * (x - 0.4)
        k = torch.ones(1, 1, 7, 7) / 49
        d = nn.functional.conv2d(x, k, padding=3)
        return torch.cat([fg, 20 * (d - 0.75)], 1)


def test_book_networks_follow_the_chapter():
    net = BookCountNet(1, (520, 696))
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128, 256]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert net(torch.zeros(2, 1, 520, 696)).shape == (2, 1)
    u = BookUNet()
    assert [u.conv1.out_channels, u.conv2.out_channels, u.conv3.out_channels] == [16, 32, 64]
    assert u.conv4.kernel_size == (1, 1) and u.final.kernel_size == (5, 5)
    assert u(torch.zeros(1, 1, 520, 696)).shape == (1, 1, 520, 696)


def test_save_load_roundtrip_and_checksum(tmp_path):
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    card_path = m.save(tmp_path / "c")
    card = json.loads(card_path.read_text())
    assert card["task"] == "count" and card["weights"]["sha256"]
    m2 = load_model(tmp_path / "c", device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 52), dtype=np.uint8)
    assert m.predict_image(img).count == pytest.approx(m2.predict_image(img).count, rel=1e-5)
    w = tmp_path / "c" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelError, match="sha256 .* but the model card says"):
        load_model(tmp_path / "c")


def test_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    p = tmp_path / "weights.pt"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelError, match="not a deepscope model.*nothing was loaded or executed"):
        load_model(p)
    assert not marker.exists()
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        load_model("nope")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid model card"):
        load_model(tmp_path / "bad.json")


def test_wrong_task_refused(tmp_path):
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(tmp_path / "s")
    with pytest.raises(ModelError, match="is a segment model; this command needs a count model"):
        load_model(tmp_path / "s", task="count")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_count_accepts_dtypes_sizes_and_blank_images(dtype):
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    rng = np.random.default_rng(1)
    for shape in [(37, 53), (64, 64), (17, 9)]:
        img = (rng.random(shape) * 1000).astype(dtype)
        r = m.predict_image(img)
        assert np.isfinite(r.count) and r.low <= r.count <= r.high and r.low >= 0
    r = m.predict_image(np.zeros((64, 80), dtype))
    assert np.isfinite(r.count)


def test_rgb_rule():
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    grey = np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)
    same = np.stack([grey] * 3, -1)
    assert m.predict_image(same).count == pytest.approx(m.predict_image(grey).count, rel=1e-5)
    diff = np.stack([grey, grey // 2, grey], -1)
    with pytest.raises(InputError, match="3 distinct channels but model 'count-model' takes one grey channel; "
                                         "choose one with --channel N \\(Python: channel=N\\)"):
        m.predict_image(diff)
    m.predict_image(diff, channel=1)


def test_interval_calibration_covers():
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    rng = np.random.default_rng(0)
    true = rng.integers(0, 100, 200).astype(float)
    std = rng.uniform(0.5, 3, 200)
    pred = true + rng.normal(0, 1, 200) * std
    q = m.calibrate_interval(true, pred, std, name="synthetic")
    assert 1.5 < q < 2.6
    lo, hi = zip(*[m.interval(p, s) for p, s in zip(pred, std)])
    assert np.mean((true >= np.array(lo)) & (true <= np.array(hi))) >= 0.95


def _handmade_segmenter():
    m = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2), InputSpec(normalize="fixed", scale=255.0))
    m.net = _Handmade()
    m.update_output(postprocess={"fg_threshold": 0.5, "seed_threshold": 0.5, "min_size": 5})
    return m


def test_tiled_equals_untiled():
    img, lab = _blobs((300, 420), n=60, r=6, seed=3)
    m = _handmade_segmenter()
    whole = m.predict_image(img, tile=2048)
    assert match_instances(lab, whole, thresholds=(0.5,)).f1[0] > 0.95
    tiled = m.predict_image(img, tile=128, overlap=24)
    r = match_instances(whole, tiled, thresholds=(0.99,))
    assert r.n_true == r.n_pred and r.f1[0] == 1.0  # no object cut or duplicated at tile borders
    out = np.zeros(img.shape, np.int32)
    m.predict_image(img, tile=128, overlap=24, out=out)
    assert match_instances(whole, out, thresholds=(0.99,)).f1[0] == 1.0


@pytest.mark.parametrize("shape", [(5, 7), (33, 65), (16, 16)])
def test_segment_small_and_odd_sizes(shape):
    m = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=3))
    lab = m.predict_image(np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8))
    assert lab.shape == shape and lab.dtype == np.int32


def test_segment_black_image_has_no_objects():
    m = _handmade_segmenter()
    assert m.predict_image(np.zeros((64, 64), np.uint16)).max() == 0


def test_multiclass_classes_per_instance():
    m = SegmentModel(ArchConfig("unet", 1, 4, base=4, depth=2), n_classes=2, class_names=["rod", "coccus"])
    labels, classes = m.predict_image(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8),
                                      return_classes=True)
    assert set(classes) == set(np.unique(labels[labels > 0]).tolist())
    assert set(classes.values()) <= {1, 2}


def test_restore_keeps_dtype_and_size():
    m = RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2))
    for dtype in (np.uint8, np.uint16):
        img = np.random.default_rng(0).integers(0, 200, (45, 61)).astype(dtype)
        out = m.predict_image(img)
        assert out.dtype == dtype and out.shape == img.shape
    assert m.predict_image(img, dtype="float32").dtype == np.float32
    with pytest.raises(InputError, match="dtype='int8' is not one of"):
        m.predict_image(img, dtype="int8")
    sr = RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2), upscale=2)
    assert sr.predict_image(img).shape == (90, 122)


def test_restore_tiled_matches_untiled():
    m = RestoreModel(ArchConfig("unet", 1, 1, base=4, depth=2))
    img = np.random.default_rng(0).integers(0, 200, (150, 170)).astype(np.float32)
    whole = m.predict_image(img, tile=1024)
    tiled = m.predict_image(img, tile=96, overlap=32)
    np.testing.assert_allclose(whole, tiled, atol=1e-3 * float(np.abs(whole).max()))


def test_book_api_fit_predict_restore(tmp_path):
    rng = np.random.default_rng(0)
    X = np.zeros((8, 32, 32), np.uint8)
    y = rng.integers(0, 4, 8)
    for i, k in enumerate(y):
        for _ in range(k):
            r, c = rng.integers(3, 29, 2)
            X[i, r - 2:r + 3, c - 2:c + 3] = 200
    from deepscope.data import ImageDataset

    ds = ImageDataset(X, y=y)
    m = CountModel.book(input_size=(32, 32))
    m.fit(ds[:6], nb_epoch=2, valid_dataset=ds[6:], model_dir=tmp_path, batch_size=3, progress=False)
    pred = m.predict(ds)
    assert pred.shape == (8,)
    again = CountModel.book(input_size=(32, 32), model_dir=tmp_path).restore()
    np.testing.assert_allclose(again.predict_on_batch(X), pred, rtol=1e-5)
    assert model_card(tmp_path).training["epochs_done"] == 2


def test_zoo_cards_are_complete():
    for info in list_models():
        card = model_card(info.name).to_dict()
        assert {"task", "architecture", "input", "weights", "training", "metrics"} <= set(card)
        assert card["weights"]["bytes"] <= 20 * 2**20


def test_network_builder_rejects_bad_config():
    from deepscope.errors import ConfigError

    with pytest.raises(ConfigError, match="arch='resnet' is not one of"):
        ArchConfig("resnet")
    with pytest.raises(ConfigError, match="base must be a positive integer"):
        ArchConfig("unet", base=0)
    assert build_network(ArchConfig("unet", 1, 3, base=4, depth=2))(torch.zeros(1, 1, 8, 8)).shape == (1, 3, 8, 8)


def test_fit_without_validation_and_restore_keeps_card(tmp_path):
    from deepscope.data import ImageDataset

    img, lab = _blobs((64, 64), n=5, r=5)
    ds = ImageDataset(np.stack([img, img]), y=[lab, lab])
    m = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    with pytest.warns(UserWarning, match="no validation images"):
        res = m.fit(ds, nb_epoch=1, model_dir=tmp_path, batch_size=2, crop=32, progress=False)
    assert {"train.yaml", "run.yaml", "split.csv"} <= {p.name for p in tmp_path.iterdir()}  # as deepscope train
    assert res.epochs_done == 1 and (tmp_path / "best.safetensors").exists()
    card = json.loads((tmp_path / "model.json").read_text())
    card["output"]["postprocess"]["seed_threshold"] = 0.77
    (tmp_path / "model.json").write_text(json.dumps(card))
    again = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2), model_dir=tmp_path).restore()
    assert again.postprocess.seed_threshold == 0.77


def test_count_image_smaller_than_binning():
    m = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=4))
    with pytest.raises(InputError, match="smaller than the model's 4x4 binning"):
        m.predict_image(np.zeros((3, 40), np.uint8))


@pytest.mark.slow
def test_multiclass_training_on_two_class_scenes(tmp_path):
    """Rods vs cocci (synthetic, exact classes): the per-instance class is learned above chance."""
    from deepscope.data import ImageDataset
    from deepscope.data.synth import generate_two_class
    from deepscope.tasks.segment.training import SegmentTask
    from deepscope.train import Trainer, TrainConfig

    scenes = [generate_two_class(14, size=(96, 96), seed=s) for s in range(10)]
    m = SegmentModel(ArchConfig("unet", 1, 4, base=8, depth=2), n_classes=2, class_names=["rod", "coccus"])
    imgs = [m.prepare(s.image) for s in scenes]
    classes = [{int(i): int(s.classes[i]) for i in np.unique(s.labels) if i} for s in scenes]
    task = SegmentTask(imgs[:8], [s.labels for s in scenes[:8]], classes=classes[:8], n_classes=2, crop=64,
                       batch_size=8, stride=4, valid_images=imgs[8:], valid_labels=[s.labels for s in scenes[8:]])
    Trainer(m.net, task, TrainConfig(epochs=100, batch_size=8, lr=5e-3, device="cpu", monitor="val_loss"),
            tmp_path, progress=False).fit()
    correct = total = 0
    for s, c in zip(scenes[8:], classes[8:]):
        lab, pred_cls = m.predict_image(s.image, return_classes=True)
        r = match_instances(s.labels, lab, thresholds=(0.5,))
        from deepscope.evaluate import match_labels

        mt = match_labels(s.labels, lab, threshold=0.5)
        for t_id, p_id in zip(mt.true_ids, mt.pred_ids):
            correct += int(pred_cls[int(p_id)] == c[int(t_id)])
            total += 1
        assert r.f1[0] > 0.5
    assert total >= 10 and correct / total > 0.75


def test_class_loss_drives_class_channels():
    """Fast cover of the multi-class path: the class term of the loss pulls class logits to the right class."""
    from deepscope.tasks.segment.training import SegmentTask

    lab = np.zeros((32, 32), np.int32)
    lab[4:12, 4:12] = 1
    lab[18:28, 18:28] = 2
    task = SegmentTask([np.zeros((32, 32), np.float32)], [lab], classes=[{1: 1, 2: 2}], n_classes=2, crop=32,
                       batch_size=1)
    out = torch.zeros(1, 4, 32, 32, requires_grad=True)
    _, targets = next(task.batches(np.random.default_rng(0), torch.device("cpu")))
    loss = task.loss(out, targets)
    loss.backward()
    g = out.grad[0]
    cls = targets[0, 2]
    # gradient descent raises the logit of the true class inside each object
    assert (g[2][cls == 1] < 0).all() and (g[3][cls == 2] < 0).all()
