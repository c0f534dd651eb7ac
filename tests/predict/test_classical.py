from __future__ import annotations

import numpy as np
import pytest

from deepscope.errors import InputError
from deepscope.evaluate import count_instances, match_instances
from deepscope.predict.classical import IntensityCountRegressor, foreground_intensity, otsu_watershed


def _discs(centres, radius, shape=(96, 96), value=200.0, background=10.0, noise=0.0, seed=0):
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    img = np.full(shape, background)
    truth = np.zeros(shape, np.int32)
    radii = np.broadcast_to(radius, (len(centres),))
    for k, ((r, c), rad) in enumerate(zip(centres, radii), start=1):
        inside = (rr - r) ** 2 + (cc - c) ** 2 <= rad ** 2
        img[inside] = value
        truth[inside & (truth == 0)] = k
    if noise:
        img = img + np.random.default_rng(seed).normal(0, noise, shape)
    return img, truth


def test_separate_and_touching_discs():
    # two discs overlapping by a narrow neck plus one alone: shape declumping splits the pair
    img, truth = _discs([(30, 30), (30, 48), (70, 70)], radius=10, noise=5.0)
    labels = otsu_watershed(img)
    assert labels.dtype == np.int32 and labels.shape == img.shape
    assert count_instances(labels) == 3
    assert set(np.unique(labels)) == {0, 1, 2, 3}  # numbered 1..n
    r = match_instances(truth, labels, thresholds=(0.5, 0.8))
    assert r.tp.tolist() == [3, 3]


@pytest.mark.parametrize("n", [5, 12])
def test_counts_a_seeded_field_and_ignores_scale_and_dtype(n):
    rng = np.random.default_rng(n)
    centres = []
    while len(centres) < n:  # non-overlapping random discs
        p = rng.uniform(10, 118, 2)
        if all(np.hypot(*(p - q)) > 20 for q in centres):
            centres.append(p)
    img, truth = _discs(centres, radius=7, shape=(128, 128), noise=4.0, seed=n)
    a = otsu_watershed(img)
    assert count_instances(a) == n
    b = otsu_watershed(np.clip(img, 0, 255).astype(np.uint8))
    c = otsu_watershed((np.clip(img, 0, 255) * 257).astype(np.uint16))
    # Otsu's threshold does not depend on the intensity scale (up to its histogram binning)
    assert count_instances(c) == n and np.mean((b > 0) == (c > 0)) > 0.999
    np.testing.assert_array_equal(otsu_watershed(img / 1000.0), a)
    assert match_instances(truth, b, thresholds=(0.5,)).f1[0] == 1.0


def test_parameters_change_the_result_as_documented():
    img, _ = _discs([(30, 30), (30, 47)], radius=[10, 9])
    assert count_instances(otsu_watershed(img)) == 2
    assert count_instances(otsu_watershed(img, footprint=80)) == 1  # one maximum per huge window
    img2, _ = _discs([(30, 30), (80, 80)], radius=3)
    assert count_instances(otsu_watershed(img2, min_size=40)) == 0  # 29-pixel discs are too small
    edge, _ = _discs([(5, 48), (50, 50)], radius=8)
    assert count_instances(otsu_watershed(edge)) == 2
    assert count_instances(otsu_watershed(edge, exclude_border=True)) == 1
    ring, _ = _discs([(48, 48)], radius=20)
    ring[(np.mgrid[:96, :96][0] - 48) ** 2 + (np.mgrid[:96, :96][1] - 48) ** 2 < 36] = 10.0  # a hole
    filled = otsu_watershed(ring)
    assert filled[48, 48] > 0 and otsu_watershed(ring, fill_holes=False)[48, 48] == 0


def test_blank_and_rgb_inputs():
    assert not otsu_watershed(np.zeros((32, 32), np.uint8)).any()
    assert not otsu_watershed(np.full((32, 32), 7.0)).any()
    img, _ = _discs([(30, 30)], radius=8, shape=(64, 64))
    rgb = np.repeat(img[..., None], 3, axis=-1)
    np.testing.assert_array_equal(otsu_watershed(rgb), otsu_watershed(img))


def test_real_nuclei(samples_dir):
    import tifffile

    img = tifffile.imread(samples_dir / "img2d.tif")
    truth = tifffile.imread(samples_dir / "mask2d.tif")
    labels = otsu_watershed(img)
    r = match_instances(truth, labels, thresholds=(0.5,))
    assert 0.65 < r.f1[0] < 0.95  # the classical baseline: good, far from perfect
    assert abs(r.n_pred - 125) < 30


def test_foreground_intensity():
    img = np.full((20, 20), 10.0)
    img[5:10, 5:10] = 30.0
    assert foreground_intensity(img, smoothing_sigma=0) == 500.0
    assert foreground_intensity(np.zeros((8, 8))) == 0.0
    assert foreground_intensity(img * 2, smoothing_sigma=0) == 1000.0


def _field(n, brightness, seed):
    rng = np.random.default_rng(seed)
    img = np.full((60, 60), 8.0) + rng.normal(0, 0.5, (60, 60))
    for k in range(n):  # touching cells: intensity still grows with the count
        r, c = 3 + 5 * (k // 10), 3 + 5 * (k % 10)
        img[r:r + 4, c:c + 5] = 8.0 + brightness
    return img


def test_intensity_regressor_per_stain():
    counts = [2, 5, 9, 14, 20, 27, 33]
    images, groups, y = [], [], []
    for stain, bright in (("w1", 40.0), ("w2", 120.0)):
        for k, n in enumerate(counts):
            images.append(_field(n, bright, seed=k))
            groups.append(stain)
            y.append(n)
    model = IntensityCountRegressor(smoothing_sigma=0).fit(images, y, groups)
    assert set(model.coef_) == {"w1", "w2"}
    assert model.coef_["w1"][0] > model.coef_["w2"][0]  # dimmer stain: more cells per unit intensity
    test = [_field(11, 40.0, 99), _field(11, 120.0, 98), _field(24, 120.0, 97)]
    pred = model.predict(test, ["w1", "w2", "w2"])
    np.testing.assert_allclose(pred, [11, 11, 24], atol=0.6)
    pooled = IntensityCountRegressor(smoothing_sigma=0).fit(images, y)  # one line for both stains is worse
    assert np.abs(pooled.predict(test) - [11, 11, 24]).mean() > np.abs(pred - [11, 11, 24]).mean()
    assert "2 group(s)" in repr(model)


def test_intensity_regressor_errors():
    model = IntensityCountRegressor(smoothing_sigma=0)
    imgs = [_field(n, 50.0, n) for n in (3, 6, 9)]
    with pytest.raises(InputError, match="is not fitted"):
        model.predict(imgs)
    with pytest.raises(InputError, match="3 images but 2 counts"):
        model.fit(imgs, [3, 6])
    with pytest.raises(InputError, match="groups has 2 values for 3 images"):
        model.fit(imgs, [3, 6, 9], ["a", "b"])
    with pytest.raises(InputError, match="group 'b' has 1 image"):
        model.fit(imgs, [3, 6, 9], ["a", "a", "b"])
    model.fit(imgs, [3, 6, 9], ["a", "a", "a"])
    with pytest.raises(InputError, match="give groups="):
        model.predict(imgs)
    with pytest.raises(InputError, match=r"unknown group\(s\) \['z'\]"):
        model.predict(imgs[:1], ["z"])
    with pytest.raises(InputError, match="smoothing_sigma must be >= 0"):
        IntensityCountRegressor(smoothing_sigma=-1)
    with pytest.raises(InputError, match="counts has NaN"):
        model.fit(imgs, [3, np.nan, 9])


def test_otsu_watershed_errors():
    img = np.zeros((16, 16))
    with pytest.raises(InputError, match=r"expected a 2-D image \(H, W\) or \(H, W, C\)"):
        otsu_watershed(np.zeros((2, 2, 16, 16)))
    with pytest.raises(InputError, match="has 3 distinct channels; pass one channel"):
        otsu_watershed(np.random.default_rng(0).random((16, 16, 3)))
    with pytest.raises(InputError, match="NaN or infinite pixels"):
        otsu_watershed(np.full((16, 16), np.nan))
    with pytest.raises(InputError, match="expected a real numeric image"):
        otsu_watershed(np.full((4, 4), "x"))
    with pytest.raises(InputError, match="smoothing_sigma must be >= 0"):
        otsu_watershed(img, smoothing_sigma=-1)
    with pytest.raises(InputError, match="min_size must be >= 0"):
        otsu_watershed(img, min_size=-2)
    with pytest.raises(InputError, match="footprint must be >= 1"):
        otsu_watershed(img, footprint=0)
    with pytest.raises(InputError, match="object_size must be a positive diameter"):
        otsu_watershed(img, object_size=0)


def test_bbbc005_intensity_regression_on_real_fields(bbbc005_dir):
    """A few real fields: the per-stain line fitted on some fields counts others within a few cells."""
    import pandas as pd

    from deepscope.io import read_image

    table = pd.read_csv(bbbc005_dir.parent / "labels.csv")
    table = table[table.blur == 1]
    fields = sorted(table.field.unique())
    rng = np.random.default_rng(0)
    rng.shuffle(fields)
    train = table[table.field.isin(fields[:30])]
    test = table[table.field.isin(fields[30:38])]
    model = IntensityCountRegressor()
    model.fit([read_image(bbbc005_dir / f).data for f in train.filename], train.cell_count, train.stain.tolist())
    pred = model.predict([read_image(bbbc005_dir / f).data for f in test.filename], test.stain.tolist())
    assert len(test) >= 8
    assert np.abs(pred - test.cell_count.to_numpy()).mean() < 10
