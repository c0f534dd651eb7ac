from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from deepscope.errors import InputError
from deepscope.evaluate import false_structure, pearson, psnr, ssim


def _cells(seed=0, shape=(96, 96), n=12):
    rng = np.random.default_rng(seed)
    img = np.zeros(shape)
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    for r, c in rng.uniform(10, shape[0] - 10, size=(n, 2)):
        img += np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * 3.0 ** 2))
    return np.clip(img, 0, 1)


def test_psnr_and_ssim_agree_with_skimage():
    truth = _cells()
    noisy = np.clip(truth + np.random.default_rng(1).normal(0, 0.05, truth.shape), 0, 1)
    assert psnr(truth, noisy, data_range=1.0) == pytest.approx(peak_signal_noise_ratio(truth, noisy, data_range=1.0))
    assert ssim(truth, noisy, data_range=1.0) == pytest.approx(structural_similarity(truth, noisy, data_range=1.0))
    assert psnr(truth, truth, data_range=1.0) == float("inf")
    # the range matters: the same images on a 0..255 scale
    t8, n8 = (truth * 255).astype(np.uint8), (noisy * 255).astype(np.uint8)
    assert psnr(t8, n8, data_range=255) == pytest.approx(peak_signal_noise_ratio(t8, n8, data_range=255))
    blurred = ndi.gaussian_filter(truth, 2)
    assert ssim(truth, blurred, data_range=1.0) < ssim(truth, truth, data_range=1.0) == 1.0


def test_pearson():
    a = _cells(seed=2)
    assert pearson(a, 2 * a + 3) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson(a, np.zeros_like(a)) != pearson(a, np.zeros_like(a))  # NaN for a constant image
    assert abs(pearson(a, _cells(seed=3))) < 0.5


def test_false_structure_counts_invented_and_lost_objects():
    truth = _cells(seed=4)
    restored = truth.copy()
    rr, cc = np.mgrid[:96, :96]
    restored += np.exp(-((rr - 5) ** 2 + (cc - 90) ** 2) / (2 * 3.0 ** 2))  # invented cell in a corner
    fs = false_structure(truth, restored, threshold=0.3)
    assert fs.n_restored == fs.n_truth + 1 and fs.n_false == 1 and fs.n_missed == 0
    assert fs.false_fraction == pytest.approx(1 / fs.n_restored)
    assert 0 < fs.false_area_fraction < 0.2
    lost = false_structure(restored, truth, threshold=0.3)  # roles swapped: one true object is missing
    assert lost.n_missed == 1 and lost.n_false == 0
    same = false_structure(truth, truth)  # Otsu threshold of the truth by default
    assert same.n_false == same.n_missed == 0 and same.n_truth > 0
    blank = false_structure(np.zeros((20, 20)), np.zeros((20, 20)))
    assert blank.n_truth == blank.n_restored == 0 and blank.false_fraction == 0.0


def test_errors():
    a = np.zeros((16, 16))
    with pytest.raises(InputError, match=r"truth has shape \(16, 16\) but restored has shape \(16, 8\)"):
        psnr(a, a[:, :8], data_range=1.0)
    with pytest.raises(InputError, match="data_range must be a positive number"):
        psnr(a, a, data_range=0)
    with pytest.raises(InputError, match="data_range must be a positive number"):
        ssim(a, a, data_range=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="ssim needs 2-D grey images"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)), data_range=1.0)
    with pytest.raises(InputError, match="smaller than the SSIM window"):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)), data_range=1.0)
    with pytest.raises(InputError, match="expected a numeric image"):
        pearson(np.array(["a"]), np.array(["b"]))
    with pytest.raises(InputError, match="empty"):
        pearson(np.zeros(0), np.zeros(0))
    with pytest.raises(InputError, match="min_overlap must be in"):
        false_structure(a, a, min_overlap=0)
    with pytest.raises(InputError, match="false_structure needs 2-D"):
        false_structure(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
