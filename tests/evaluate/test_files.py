from __future__ import annotations

import numpy as np
import pytest
import tifffile

from deepscope.errors import InputError, PairingError
from deepscope.evaluate import evaluate_label_folders, pair_label_files, read_label_image
from deepscope.io import write_labels, write_png


def test_pairing_by_stem_with_mixed_formats(tmp_path):
    lab = np.zeros((8, 8), np.int32)
    lab[2:5, 2:5] = 7
    for stem in ("img_2", "img_10", "img_1"):
        write_labels(tmp_path / "out" / f"{stem}.labels.tif", lab)
    write_png(tmp_path / "truth" / "img_1.png", lab.astype(np.uint16))
    write_labels(tmp_path / "truth" / "sub" / "img_2.tif", lab)  # truth is searched recursively
    tifffile.imwrite(tmp_path / "truth" / "img_10.tiff", lab[None].astype(np.uint8))  # (1, H, W) page
    pairs = pair_label_files(tmp_path / "out", tmp_path / "truth")
    assert [s for s, _, _ in pairs] == ["img_1", "img_10", "img_2"]
    rep = evaluate_label_folders(tmp_path / "out", tmp_path / "truth")
    assert rep.summary["n_images"] == 3 and rep.summary["dsb_score"] == 1.0


def test_read_label_image_rules(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0.0, 2.0], [3.0, 0.0]], np.float32))
    assert read_label_image(tmp_path / "f.tif").dtype == np.int64  # whole-number floats are fine
    tifffile.imwrite(tmp_path / "frac.tif", np.array([[0.5, 2.0]], np.float32))
    with pytest.raises(InputError, match="holds integer ids"):
        read_label_image(tmp_path / "frac.tif")
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((3, 4, 4), np.uint16), photometric="minisblack")
    with pytest.raises(InputError, match=r"must be 2-D, got shape \(3, 4, 4\)"):
        read_label_image(tmp_path / "vol.tif")


def test_pairing_errors(tmp_path):
    lab = np.ones((4, 4), np.int32)
    write_labels(tmp_path / "out" / "a.labels.tif", lab)
    write_labels(tmp_path / "truth" / "a.tif", lab)
    write_png(tmp_path / "truth" / "a.png", lab.astype(np.uint8))
    with pytest.raises(PairingError, match="two files with stem 'a'"):
        pair_label_files(tmp_path / "out", tmp_path / "truth")
    with pytest.raises(FileNotFoundError, match="No such truth folder"):
        pair_label_files(tmp_path / "out", tmp_path / "missing")
    with pytest.raises(InputError, match="is a file; give a folder"):
        pair_label_files(tmp_path / "out" / "a.labels.tif", tmp_path / "truth")
    with pytest.raises(PairingError, match=r"no '\*.mask.tif' files"):
        pair_label_files(tmp_path / "out", tmp_path / "truth", pred_suffix=".mask.tif")
