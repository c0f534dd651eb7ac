"""SegmentTask's validation of a multi-class model scores the classes it was given (valid_classes)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from deepscope.errors import InputError  # noqa: E402
from deepscope.tasks.segment import instances  # noqa: E402
from deepscope.tasks.segment.training import SegmentTask  # noqa: E402


def _scene():
    lab = np.zeros((32, 32), np.int32)
    lab[4:12, 4:12] = 1
    lab[18:28, 18:28] = 2
    return lab


def test_validation_reports_the_class_accuracy_of_matched_objects(monkeypatch):
    lab = _scene()
    img = np.zeros((32, 32), np.float32)
    task = SegmentTask([img], [lab], classes=[{1: 1, 2: 2}], n_classes=2, crop=32, batch_size=1,
                       valid_images=[img], valid_labels=[lab], valid_classes=[{1: 1, 2: 2}])
    maps = np.zeros((4, 32, 32), np.float32)
    maps[0] = lab > 0
    maps[2][lab == 1] = 0.9  # object 1 predicted class 1: right
    maps[3][lab == 2] = 0.1  # object 2 predicted class 1: wrong
    maps[2][lab == 2] = 0.9
    monkeypatch.setattr(task, "maps", lambda net, image, device: maps)
    monkeypatch.setattr(instances, "instances_from_maps", lambda fg, dist, cfg: lab.copy())  # perfect objects
    scores = task.validate(None, torch.device("cpu"))
    assert scores["val_class_acc"] == 0.5 and scores["val_f1"] == 1.0
    plain = SegmentTask([img], [lab], classes=[{1: 1, 2: 2}], n_classes=2, crop=32, batch_size=1,
                        valid_images=[img], valid_labels=[lab])
    monkeypatch.setattr(plain, "maps", lambda net, image, device: maps)
    assert "val_class_acc" not in plain.validate(None, torch.device("cpu"))  # no classes given: not scored
    with pytest.raises(InputError, match="1 class maps \\(valid_classes\\) for 2 validation label images"):
        SegmentTask([img], [lab], classes=[{1: 1, 2: 2}], n_classes=2, valid_images=[img, img],
                    valid_labels=[lab, lab], valid_classes=[{1: 1}])
