"""PNG writing without imagecodecs (e.g. a GPU machine that lacks its wheel): Pillow encodes the same pixels."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from deepscope.errors import InputError
from deepscope.io import read_image, write_png


@pytest.mark.parametrize("shape,dtype", [((9, 11), np.uint8), ((9, 11), np.uint16), ((9, 11, 3), np.uint8),
                                         ((9, 11, 4), np.uint8)])
def test_png_without_imagecodecs_round_trips(tmp_path, monkeypatch, shape, dtype):
    a = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # import imagecodecs now raises ImportError
    write_png(tmp_path / "a.png", a)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(tmp_path / "a.png").data.reshape(a.shape), a)


def test_png_pillow_cannot_write_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    with pytest.raises(InputError, match="pip install imagecodecs"):
        write_png(tmp_path / "rgb16.png", np.zeros((4, 4, 3), np.uint16))
    assert not list(tmp_path.iterdir())  # nothing half-written
