"""The napari plugin inside a real (headless, offscreen Qt) napari viewer: the reader opens a label TIFF as a
calibrated Labels layer, and the segment and count widgets run on an image layer and add their results.

Runs where napari and pytest-qt are installed (``pip install "deepscope[napari]" pyqt5 pytest-qt``) and Qt
has a display with OpenGL (a desktop, or Xvfb: ``QT_QPA_PLATFORM=xcb xvfb-run -a python -m pytest
tests/test_napari_qt.py``; the ``offscreen`` platform has no OpenGL context, which image layers need).
CI's environment has no napari, so this module skips there and ``tests/test_napari_plugin.py`` covers the
same functions without Qt.
"""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.io import write_labels  # noqa: E402


def test_reader_gives_a_calibrated_labels_layer(make_napari_viewer, tmp_path):
    f = generate_field(6, size=(96, 128), seed=2, stains=(1,))
    write_labels(tmp_path / "a.labels.tif", f.nuclei, pixel_size=(0.65, 0.65))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "a.labels.tif"), plugin="deepscope")
    assert isinstance(layer, napari.layers.Labels)
    assert np.array_equal(np.asarray(layer.data), f.nuclei)
    assert tuple(layer.scale) == pytest.approx((0.65, 0.65))


def _layers(viewer, kind):
    return [layer for layer in viewer.layers if isinstance(layer, kind)]


def test_segment_and_count_widgets_add_their_layers(make_napari_viewer, qtbot):
    """The widgets run on a worker thread (the viewer stays responsive) and add their layer when done."""
    viewer = make_napari_viewer()
    f = generate_field(8, size=(160, 200), seed=3, stains=(1,))
    image = viewer.add_image(f.images[(1, 1)], name="field")
    _, seg = viewer.window.add_plugin_dock_widget("deepscope", "Segment (deepscope)")
    assert seg.image.value is image  # the one image layer is chosen (its data, and its scale for a z-stack)
    seg.model.value = "cells-bbbc005"
    worker = seg()
    assert not _layers(viewer, napari.layers.Labels)  # nothing yet: it runs in the background
    qtbot.waitUntil(lambda: bool(_layers(viewer, napari.layers.Labels)), timeout=120_000)
    assert not worker.is_running or qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000) is None
    labels = _layers(viewer, napari.layers.Labels)
    assert len(labels) == 1 and labels[0].data.shape == (160, 200)
    n = len(np.unique(labels[0].data)) - 1
    assert abs(n - 8) <= 2 and labels[0].name == f"cells-bbbc005: {n} objects"
    assert len(labels[0].features) == n and "AreaShape_Area" in labels[0].features
    viewer.layers.remove(image)
    field = viewer.add_image(generate_field(30, seed=4, stains=(1,)).images[(1, 1)], name="bbbc005-like")
    _, count = viewer.window.add_plugin_dock_widget("deepscope", "Count (deepscope)")
    assert count.image.value is field.data
    count()
    qtbot.waitUntil(lambda: bool(_layers(viewer, napari.layers.Points)), timeout=120_000)
    points = _layers(viewer, napari.layers.Points)
    assert len(points) == 1 and points[0].name.startswith("count-bbbc005: ") and "95%" in points[0].name
    assert abs(points[0].metadata["deepscope"]["count"] - 30) <= 3


def test_a_cancelled_widget_adds_nothing(make_napari_viewer, qtbot, monkeypatch):
    """napari's cancel (``worker.quit()``) stops the run at its next step: no layer is added. The model load is
    held until the cancel is made, so the worker is certainly mid-run when it comes."""
    import threading

    import deepscope.models
    from qtpy.QtCore import QThreadPool

    entered, release = threading.Event(), threading.Event()
    real = deepscope.models.load_model

    def held_load(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(deepscope.models, "load_model", held_load)
    viewer = make_napari_viewer()
    viewer.add_image(generate_field(8, size=(160, 200), seed=3, stains=(1,)).images[(1, 1)], name="field")
    _, seg = viewer.window.add_plugin_dock_widget("deepscope", "Segment (deepscope)")
    seg.model.value = "cells-bbbc005"
    worker = seg()
    qtbot.waitUntil(entered.is_set, timeout=30_000)  # running: in its first step
    worker.quit()
    release.set()
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=60_000)
    qtbot.wait(300)  # deliver the worker's last signals
    assert not _layers(viewer, napari.layers.Labels)
    assert worker.abort_requested
