"""An Image from read_image goes wherever an array does: models, measurements, overlays, transforms."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import generate_field
from deepscope.io import Image, as_pixels, read_image, write_labels, write_tiff


@pytest.fixture
def files(tmp_path):
    f = generate_field(4, size=(128, 160), stains=1, seed=3)
    img = write_tiff(tmp_path / "a.tif", f.image(1))
    lab = write_labels(tmp_path / "a.labels.tif", f.labels(1).astype(np.int32))
    rgb = write_tiff(tmp_path / "rgb.tif", np.dstack([f.image(1), np.zeros((128, 160), np.uint8), f.image(1) // 2]))
    return read_image(img), read_image(lab), read_image(rgb)


def test_as_pixels_is_channel_last_and_leaves_arrays_alone(files):
    img, _, rgb = files
    assert as_pixels(img).shape == (128, 160) and as_pixels(rgb).shape == (128, 160, 3)
    a = np.zeros((2, 3))
    assert as_pixels(a) is a and np.asarray(img) is img.data


def test_measure_and_overlay_take_images(files):
    from deepscope.measure import measure_objects, summarize_image
    from deepscope.predict.overlay import overlay_outlines

    img, lab, rgb = files
    by_image = measure_objects(lab, {"DNA": img})
    by_array = measure_objects(lab.data, {"DNA": img.data})
    assert by_image.equals(by_array) and len(by_image) == 4
    assert list(measure_objects(lab, rgb).filter(regex=r"^Intensity_MeanIntensity_C\d$").columns) == [
        "Intensity_MeanIntensity_C0", "Intensity_MeanIntensity_C1", "Intensity_MeanIntensity_C2"]
    assert summarize_image(lab)["Count_Nuclei"] == 4
    assert np.array_equal(overlay_outlines(img, lab), overlay_outlines(img.data, lab.data))


def test_models_take_images(files):
    pytest.importorskip("torch")
    from deepscope.models import ArchConfig, CountModel, SegmentModel

    img, _, rgb = files
    counter = CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2))
    by_image = counter.count_images([img, img])
    assert [r.count for r in by_image] == [r.count for r in counter.count_images([img.data, img.data])]
    with pytest.raises(ValueError, match="rgb.tif"):  # the message names the file the Image came from
        counter.count_images([rgb])
    seg = SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2))
    assert np.array_equal(seg.predict_image(img), seg.predict_image(img.data))


def test_a_volume_image_is_refused_with_the_fix():
    from deepscope.errors import InputError
    from deepscope.io import FileMeta

    shape = (2, 3, 4, 5)
    vol = Image(np.zeros(shape, np.uint8), "ZCYX", FileMeta("v.tif", "tiff", shape, "uint8", 8, 6, "ZCYX"))
    with pytest.raises(InputError, match="Index the volume"):
        as_pixels(vol)
