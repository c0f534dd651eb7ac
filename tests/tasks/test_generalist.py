"""The shipped generalist nuclei models: any input layout, object sizes, and an honest domain check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from deepscope.models import load_model
from deepscope.tasks.segment.generalist import generalist_spec, image_kind


def nuclei_image(seed: int = 0, shape=(256, 256), diameter: float = 16.0, n: int = 25) -> tuple[np.ndarray, int]:
    """A seeded fluorescence-like image of separated blurred nuclei (uint8) and its number of nuclei."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    placed: list[tuple[int, int]] = []
    while len(placed) < n:
        r, c = rng.integers(diameter, shape[0] - diameter), rng.integers(diameter, shape[1] - diameter)
        if all((r - a) ** 2 + (c - b) ** 2 > (1.6 * diameter) ** 2 for a, b in placed):
            placed.append((r, c))
            a, b = diameter / 2 * rng.uniform(0.8, 1.1), diameter / 2 * rng.uniform(0.8, 1.1)
            img[((yy - r) / a) ** 2 + ((xx - c) / b) ** 2 <= 1] = rng.uniform(0.5, 1.0)
    img = ndi.gaussian_filter(img, 1.0) + rng.normal(0.03, 0.01, shape)
    return np.clip(img * 220, 0, 255).astype(np.uint8), n


@pytest.fixture(scope="module")
def nuclei_fast():
    return load_model("nuclei", device="cpu")


def test_inputs_need_no_channel_option(nuclei_fast):
    grey, n = nuclei_image(1)
    counts = {}
    counts["grey"] = nuclei_fast.predict_image(grey).max()
    counts["rgb"] = nuclei_fast.predict_image(np.dstack([grey] * 3)).max()
    counts["rgba"] = nuclei_fast.predict_image(np.dstack([grey] * 3 + [np.full_like(grey, 255)])).max()
    counts["blue-only"] = nuclei_fast.predict_image(np.dstack([np.zeros_like(grey)] * 2 + [grey])).max()
    counts["uint16"] = nuclei_fast.predict_image(grey.astype(np.uint16) * 200).max()
    # brightfield-like: dark nuclei on a bright background
    counts["inverted"] = nuclei_fast.predict_image(255 - grey).max()
    for k, v in counts.items():
        assert abs(int(v) - n) <= 0.2 * n, (k, v, n)


@pytest.mark.parametrize("diameter", [10.0, 40.0])
def test_object_size_is_estimated_and_used(nuclei_fast, diameter):
    img, n = nuclei_image(2, shape=(int(16 * diameter), int(16 * diameter)), diameter=diameter, n=20)
    labels, info, dom = nuclei_fast.predict_image(img, return_info=True)
    assert info.diameter_source == "estimated"
    assert 0.6 * diameter < info.diameter < 1.5 * diameter
    assert abs(int(labels.max()) - n) <= 0.2 * n
    given, ginfo, _ = nuclei_fast.predict_image(img, diameter=diameter, return_info=True)
    assert ginfo.diameter_source == "given" and ginfo.diameter == diameter


def test_domain_check_accepts_development_images_and_flags_others(nuclei_fast, shared_data):
    from PIL import Image

    dev = sorted((shared_data / "dsb2018" / "images").glob("*.png"))[:3]
    dev += sorted((shared_data / "dsb2018_other" / "images").glob("*.png"))[:2]
    for f in dev:
        assert nuclei_fast.predict_image(np.array(Image.open(f)), return_info=True)[2].in_domain, f.name
    import skimage.data

    rng = np.random.default_rng(0)
    # a 256 x 256 crop of the photograph (her face and shoulder) is flagged as the whole one is, in a fifth of the time
    for name, pic in (("astronaut", skimage.data.astronaut()[:256, 128:384]),
                      ("noise", rng.integers(0, 256, (256, 256), np.uint8))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dom = nuclei_fast.predict_image(pic, return_info=True)[2]
        assert dom.in_domain is False, name
        assert dom.score > dom.threshold


def test_image_kind():
    from deepscope.models.spec import prepare_image

    grey, _ = nuclei_image(3)
    spec = generalist_spec()
    assert image_kind(prepare_image(grey, spec)) == "fluorescence"
    assert image_kind(prepare_image(255 - grey, spec)) == "brightfield"
    tinted = np.dstack([255 - grey, (255 - grey) * 0.6, 255 - grey * 0.3]).astype(np.uint8)
    assert image_kind(prepare_image(tinted, spec)) == "he"
    assert image_kind(prepare_image(np.dstack([np.zeros_like(grey)] * 2 + [grey]), spec)) == "fluorescence"
