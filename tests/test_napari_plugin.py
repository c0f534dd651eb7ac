"""The napari plugin: its manifest validates (with imports), and its reader and widget functions work
headless. napari itself is not installed here (its Qt stack is an optional extra), so the widgets are
tested as the plain functions napari calls."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import generate_field
from deepscope.io import write_labels, write_tiff
from deepscope.models import list_models
from deepscope.napari import count_image, get_reader, read_layers, segment_image

SHIPPED = {m.name for m in list_models()}


def test_manifest_validates_and_every_command_imports():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManifest.from_distribution("deepscope")  # found through the napari.manifest entry point
    pm.validate_imports()
    assert {c.id for c in pm.contributions.commands} == {"deepscope.get_reader", "deepscope.segment",
                                                         "deepscope.count", "deepscope.segment_widget",
                                                         "deepscope.count_widget", "deepscope.track_widget"}
    assert {w.command for w in pm.contributions.widgets} == {"deepscope.segment_widget", "deepscope.count_widget",
                                                             "deepscope.track_widget"}


def test_reader_opens_labels_as_a_calibrated_labels_layer_and_images_as_images(tmp_path):
    f = generate_field(6, size=(96, 128), seed=2, stains=(1,))
    write_labels(tmp_path / "a.labels.tif", f.nuclei, pixel_size=(0.65, 0.65))
    write_tiff(tmp_path / "a.tif", f.images[(1, 1)], pixel_size=(0.65, 0.65))
    write_tiff(tmp_path / "rgb.tif", np.dstack([f.images[(1, 1)]] * 2 + [np.zeros((96, 128), np.uint8)]))
    assert get_reader(str(tmp_path / "notes.txt")) is None
    reader = get_reader(str(tmp_path / "a.labels.tif"))
    [(data, kwargs, kind)] = reader(str(tmp_path / "a.labels.tif"))
    assert kind == "labels" and np.array_equal(data, f.nuclei)
    assert kwargs["scale"] == pytest.approx((0.65, 0.65)) and kwargs["name"] == "a"
    [(data, kwargs, kind)] = read_layers(str(tmp_path / "a.tif"))
    assert kind == "image" and data.shape == (96, 128) and kwargs["scale"] == pytest.approx((0.65, 0.65))
    [(data, kwargs, kind)] = read_layers(str(tmp_path / "rgb.tif"))
    assert kind == "image" and kwargs["rgb"] is True and kwargs["scale"] == (1.0, 1.0)


@pytest.mark.skipif("cells-bbbc005" not in SHIPPED, reason="needs the shipped cells-bbbc005")
def test_segment_widget_returns_labels_with_measurements():
    f = generate_field(8, size=(160, 200), seed=3, stains=(1,))
    labels, kwargs, kind = segment_image(f.images[(1, 1)], model="cells-bbbc005")
    assert kind == "labels" and labels.shape == (160, 200) and labels.dtype == np.int32
    n = len(np.unique(labels)) - 1
    assert abs(n - 8) <= 2 and kwargs["name"] == f"cells-bbbc005: {n} objects"
    assert len(kwargs["features"]) == n and "AreaShape_Area" in kwargs["features"]
    assert kwargs["metadata"]["deepscope"]["count"] == n


@pytest.mark.skipif("count-bbbc005" not in SHIPPED or "nuclei" not in SHIPPED, reason="needs the shipped models")
def test_count_widget_names_the_count_and_shows_instances():
    field = generate_field(30, seed=4, stains=(1,)).images[(1, 1)]
    points, kwargs, kind = count_image(field)
    meta = kwargs["metadata"]["deepscope"]
    assert kind == "points" and meta["method"].startswith("density") and abs(meta["count"] - 30) <= 3
    assert kwargs["name"].startswith("count-bbbc005: ") and "95%" in kwargs["name"] and len(points) == 0
    sparse = np.zeros((200, 240), np.uint8)
    yy, xx = np.mgrid[:200, :240]
    for r, c in ((40, 40), (40, 150), (120, 90), (160, 200), (100, 200)):
        sparse[(yy - r) ** 2 + (xx - c) ** 2 <= 64] = 200
    points, kwargs, _ = count_image(sparse)
    assert kwargs["metadata"]["deepscope"]["method"] == "instances" and len(points) == 5


@pytest.mark.skipif("nuclei" not in SHIPPED, reason="needs the shipped nuclei")
def test_segment_widget_says_when_an_image_is_out_of_domain():
    noise = np.random.default_rng(0).integers(0, 256, (200, 200)).astype(np.uint8)
    labels, kwargs, kind = segment_image(noise)
    assert kwargs["metadata"]["deepscope"]["in_domain"] is False and kwargs["name"].endswith("OUT OF DOMAIN")
    field = generate_field(20, seed=5, stains=(1,)).images[(1, 1)]
    _, kwargs, _ = segment_image(field)
    assert kwargs["metadata"]["deepscope"]["in_domain"] is True and "OUT OF DOMAIN" not in kwargs["name"]


def test_widgets_work_in_steps_a_worker_can_stop_between():
    """The widgets' worker runs these steps (progress per step, cancel between steps); run to the end they give
    what the plain functions give."""
    from deepscope.napari import _count_steps, _segment_steps

    f = generate_field(8, size=(160, 200), seed=3, stains=(1,))
    steps = _segment_steps(f.images[(1, 1)], model="cells-bbbc005")
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            labels, kwargs, kind = stop.value
            break
    assert [s[:2] for s in seen] == [(0, 3), (1, 3), (2, 3)] and seen[1][2] == "segmenting"
    plain, plain_kwargs, _ = segment_image(f.images[(1, 1)], model="cells-bbbc005")
    assert kind == "labels" and np.array_equal(labels, plain) and kwargs["name"] == plain_kwargs["name"]
    counted = _count_steps(f.images[(1, 1)])
    assert next(counted)[:2] == (0, 3)
    counted.close()  # a cancel before the model loads: nothing more runs, nothing is returned
    with pytest.raises(StopIteration):
        next(counted)


# ---------------------------------------------------------------------------------------------- z-stacks (issue 27)
def _stack_file(path, vol):
    import tifffile

    vz, vy, vx = vol.voxel_size
    tifffile.imwrite(path, vol.stack, imagej=True, resolution=(1 / vx, 1 / vy),
                     metadata={"axes": "ZYX", "spacing": vz, "unit": "um"})


def test_reader_opens_a_z_stack_and_its_3d_labels_at_the_voxel_size(tmp_path):
    """The stack and the labels `deepscope segment` writes for it open with scale = the file's voxel size, so the
    two layers overlay."""
    from deepscope.data.synth import generate_volume
    from deepscope.io import read_image
    from deepscope.tasks.segment.volume_files import segment_stack_paths

    vol = generate_volume(5, shape=(12, 48, 48), z_step=2.0, pixel_size=0.5, seed=4)
    _stack_file(tmp_path / "stack.tif", vol)
    segment_stack_paths([tmp_path / "stack.tif"], tmp_path / "out")
    [(data, kwargs, kind)] = read_layers(str(tmp_path / "stack.tif"))
    assert kind == "image" and data.shape == (12, 48, 48)
    assert kwargs["scale"] == pytest.approx((2.0, 0.5, 0.5)) == vol.voxel_size
    labels_file = tmp_path / "out" / "stack.labels.tif"
    [(lab, lkw, lkind)] = read_layers(str(labels_file))
    meta = read_image(labels_file).meta
    assert lkind == "labels" and lab.shape == (12, 48, 48) and lkw["name"] == "stack"
    assert lkw["scale"] == pytest.approx((meta.z_step, *meta.pixel_size))
    assert lkw["scale"] == pytest.approx(kwargs["scale"])


def test_segment_image_on_a_z_stack_runs_the_3d_path():
    from skimage.measure import regionprops

    from deepscope.data.synth import generate_volume
    from deepscope.tasks.segment.volume_files import segment_stack

    vol = generate_volume(6, shape=(12, 48, 48), z_step=1.0, pixel_size=0.5, seed=11)
    labels, kwargs, kind = segment_image(vol.stack, voxel_size=vol.voxel_size)
    assert kind == "labels" and labels.shape == vol.stack.shape and labels.dtype == np.int32
    assert kwargs["scale"] == pytest.approx(vol.voxel_size)
    assert kwargs["metadata"]["deepscope"]["count"] == vol.count == 6 == len(kwargs["features"])
    np.testing.assert_array_equal(labels, segment_stack(vol.stack, voxel_size=vol.voxel_size))
    props = {p.label: p.area for p in regionprops(labels, spacing=vol.voxel_size)}
    feats = kwargs["features"]
    np.testing.assert_allclose(feats["AreaShape_Volume_um3"], [props[i] for i in feats["ObjectNumber"]])
    with pytest.raises(ValueError, match="voxel size"):
        segment_image(vol.stack, voxel_size=(0, 0.5, 0.5))


@pytest.mark.skipif("cells-bbbc005" not in SHIPPED, reason="needs the shipped cells-bbbc005")
def test_segment_widget_takes_the_thresholds_of_deepscope_segment():
    """The widget's threshold fields: the card's values by default; a larger minimum size keeps fewer objects (as
    ``deepscope segment --min-size``), recorded in the layer's metadata; a flow check on a watershed model and any
    threshold on a z-stack are clear errors."""
    from deepscope.errors import InputError
    from deepscope.napari import _thresholds

    assert _thresholds(0.0, -1.0, -1) == {}
    assert _thresholds(0.3, 0.0, 0) == {"prob_threshold": 0.3, "flow_threshold": 0.0, "min_size": 0}
    image = generate_field(12, size=(160, 200), seed=5, stains=(1,)).images[(1, 1)]
    default, kw0, _ = segment_image(image, model="cells-bbbc005")
    strict, kw1, _ = segment_image(image, model="cells-bbbc005", min_size=2000)
    assert "thresholds" not in kw0["metadata"]["deepscope"]
    assert kw1["metadata"]["deepscope"]["thresholds"] == {"min_size": 2000}
    assert len(np.unique(strict)) < len(np.unique(default))
    with pytest.raises(InputError, match="flow"):
        segment_image(image, model="cells-bbbc005", flow_threshold=0.4)
    with pytest.raises(InputError, match="z-stack layer"):
        segment_image(np.stack([image] * 4), min_size=10)


@pytest.mark.skipif(not {"count-bbbc005-fast", "cells-bbbc005"} <= set(SHIPPED), reason="needs the shipped models")
def test_count_and_segment_widgets_take_tta_as_the_commands_do():
    """``tta`` in the count and segment functions (and so their widgets) is ``--tta``: empty keeps the card's, a
    mode gives the library's result with that mode and is recorded in the layer's metadata; an unknown mode and a
    mode on a z-stack are clear errors."""
    from deepscope.errors import InputError
    from deepscope.models import load_model

    field = generate_field(40, size=(256, 320), seed=6, stains=(1,)).images[(1, 1)]
    counter = load_model("count-bbbc005-fast")  # its card: tta none
    card, want = counter.predict_image(field).estimate, counter.predict_image(field, tta="d8").estimate
    assert card != want
    _, kw, _ = count_image(field, model="count-bbbc005-fast")
    assert kw["metadata"]["deepscope"]["estimate"] == pytest.approx(card) and "tta" not in kw["metadata"]["deepscope"]
    _, kw, _ = count_image(field, model="count-bbbc005-fast", tta="d8")
    assert kw["metadata"]["deepscope"]["estimate"] == pytest.approx(want) and kw["metadata"]["deepscope"]["tta"] == "d8"
    with pytest.raises(InputError, match="tta='mirror' is not one of"):
        count_image(field, model="count-bbbc005-fast", tta="mirror")

    labels, kw, _ = segment_image(field, model="cells-bbbc005", tta="flips")
    lib = load_model("cells-bbbc005").run(field, tta="flips").labels
    assert np.array_equal(labels, lib) and kw["metadata"]["deepscope"]["tta"] == "flips"
    with pytest.raises(InputError, match="tta: options of the trained 2-D models"):
        segment_image(np.stack([field] * 4), tta="flips")
