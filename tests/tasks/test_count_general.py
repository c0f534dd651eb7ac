"""Counting any image: the shipped counter chooses its method per image by its domain checks.

A BBBC005-like field goes to the density model, a sparse fluorescence image of another size to the
instances of the generalist segmenter (with an interval), and pictures unlike both (noise, a colour
photograph, text) get a count flagged ``in_domain = False`` and no interval, with a warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from deepscope.data.synth.cells import generate_field
from deepscope.models import list_models, load_model, model_card

pytestmark = pytest.mark.skipif(
    "count-bbbc005" not in [m.name for m in list_models()]
    or not model_card("count-bbbc005").output.get("general"),
    reason="needs the shipped counter with general counting")


@pytest.fixture(scope="module")
def counter():
    return load_model("count-bbbc005", device="cpu")


def sparse_fluorescence(shape: tuple[int, int], n: int, diameter: float, seed: int) -> np.ndarray:
    """Bright round nuclei of one size on a dark background (a DSB2018-like grey fluorescence image)."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    placed = 0
    while placed < n:
        r, c = rng.uniform(diameter, shape[0] - diameter), rng.uniform(diameter, shape[1] - diameter)
        disc = (yy - r) ** 2 + (xx - c) ** 2 <= (diameter / 2 + 2) ** 2
        if img[disc].any():  # apart, so the true count is n
            continue
        img[(yy - r) ** 2 + (xx - c) ** 2 <= (diameter / 2) ** 2] = rng.uniform(0.5, 1.0)
        placed += 1
    img = ndi.gaussian_filter(img, 1.0) + rng.normal(0.05, 0.01, shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def pictures() -> dict[str, np.ndarray]:
    import skimage.data as data

    # 256 x 256 noise: at 300 x 300 the generalist follows ~5,000 "objects" in it (8 s of CPU) for the same verdict
    return {"noise": np.random.default_rng(0).integers(0, 256, (256, 256)).astype(np.uint8),
            "astronaut": data.astronaut()[:256, 128:384], "text": data.text()}


def test_a_bbbc005_like_field_goes_to_the_density_model(counter):
    image = generate_field(40, seed=3, blurs=(1,), stains=(1,)).images[(1, 1)]
    r = counter.predict_image(image)
    assert r.method.startswith("density") and r.in_domain is True
    assert abs(r.count - 40) <= 3 and r.low <= 40 <= r.high


@pytest.mark.parametrize(("shape", "n", "diameter"), [((256, 320), 25, 14), ((400, 300), 40, 20)])
def test_a_sparse_fluorescence_image_of_another_size_is_counted_by_instances(counter, shape, n, diameter):
    r = counter.predict_image(sparse_fluorescence(shape, n, diameter, seed=n))
    assert r.method == "instances" and r.in_domain is True
    assert abs(r.count - n) <= 2 and r.low <= n <= r.high


def test_pictures_unlike_every_counter_get_no_interval_and_a_warning(counter):
    for name, image in pictures().items():
        with pytest.warns(UserWarning, match="looks unlike the images of both the counter"):
            r = counter.predict_image(image)
        assert r.in_domain is False, name
        assert np.isnan(r.low) and np.isnan(r.high), name


def test_count_paths_writes_method_and_in_domain_and_empty_intervals(counter, tmp_path):
    from deepscope.io import write_png, write_tiff
    from deepscope.predict.files import count_paths

    write_tiff(tmp_path / "field.tif", generate_field(30, seed=5, blurs=(1,), stains=(1,)).images[(1, 1)])
    write_png(tmp_path / "nuclei.png", sparse_fluorescence((256, 320), 25, 14, seed=25))
    for name, image in pictures().items():
        if name != "text":  # noise (grey) and a colour photograph are enough here; the test above has text
            write_png(tmp_path / f"{name}.png", image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = count_paths([tmp_path], output=tmp_path / "out" / "counts.csv", model=counter)
    t = res.table.set_index(res.table["path"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert (t["error"] == "").all()  # the colour photograph is counted too, not refused
    assert t.loc["field.tif", "method"].startswith("density") and t.loc["nuclei.png", "method"] == "instances"
    assert list(t.loc[["field.tif", "nuclei.png"], "in_domain"]) == [True, True]
    for name in ("noise.png", "astronaut.png"):
        assert t.loc[name, "in_domain"] is False or t.loc[name, "in_domain"] is np.False_
        assert np.isnan(t.loc[name, "count_low"]) and np.isnan(t.loc[name, "count_high"])
    written = (tmp_path / "out" / "counts.csv").read_text().splitlines()
    assert written[0].startswith("path,count,count_low,count_high,count_estimate,std,method,in_domain")
    noise = next(line for line in written if "noise.png" in line).split(",")
    assert noise[2] == "" and noise[3] == "" and noise[7] == "False"
