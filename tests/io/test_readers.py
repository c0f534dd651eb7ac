from __future__ import annotations


import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from deepscope.errors import ImageReadError, UnsupportedFormatError
from deepscope.io import image_format, read_image, sha256_file, write_tiff

rng = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("compression", [None, "zlib", "packbits", "lzw"])
def test_tiff_roundtrip_every_bit(tmp_path, dtype, compression):
    if dtype == np.float32 and compression == "packbits":
        pytest.skip("packbits is for integer data")
    a = (rng.random((64, 80)) * (255 if dtype == np.uint8 else 65535)).astype(dtype)
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, a, compression=compression)
    img = read_image(p)
    assert img.data.dtype == dtype
    np.testing.assert_array_equal(img.data, a)
    assert img.axes == "YX"
    assert img.meta.sha256 == sha256_file(p)


def test_multipage_keeps_every_page(tmp_path):
    a = rng.integers(0, 65535, (5, 32, 40), dtype=np.uint16)
    p = tmp_path / "stack.TIF"
    with tifffile.TiffWriter(p) as tw:  # 5 separate pages, no shape metadata
        for page in a:
            tw.write(page, metadata=None)
    img = read_image(p)
    assert img.data.shape == (5, 32, 40)
    assert img.meta.pages == 5
    np.testing.assert_array_equal(img.data, a)
    assert img.axes == "IYX"


def test_rgb16_tiff_not_truncated(tmp_path):
    a = rng.integers(0, 65535, (30, 40, 3), dtype=np.uint16)
    p = tmp_path / "rgb16.tiff"
    tifffile.imwrite(p, a, photometric="rgb")
    img = read_image(p)
    assert img.data.dtype == np.uint16 and img.axes == "YXC"
    np.testing.assert_array_equal(img.data, a)
    assert img.meta.bit_depth == 16


def test_bigtiff(tmp_path):
    a = rng.integers(0, 255, (3, 16, 16), dtype=np.uint8)
    p = tmp_path / "big.tif"
    tifffile.imwrite(p, a, bigtiff=True, photometric="minisblack")
    img = read_image(p)
    assert img.meta.extra["bigtiff"] is True
    np.testing.assert_array_equal(img.data, a)


def test_ome_tiff_metadata(tmp_path):
    a = rng.random((4, 2, 16, 20)).astype(np.float32)
    p = tmp_path / "x.ome.tif"
    tifffile.imwrite(p, a, ome=True, metadata={"axes": "ZCYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325,
                                               "PhysicalSizeZ": 2.0, "Channel": {"Name": ["DAPI", "GFP"]}})
    img = read_image(p)
    assert img.meta.format == "ome-tiff"
    assert img.axes == "ZCYX"
    assert img.meta.pixel_size == pytest.approx((0.325, 0.325))
    assert img.meta.z_step == pytest.approx(2.0)
    assert img.meta.channel_names == ("DAPI", "GFP")
    assert "<OME" in img.meta.ome_xml
    np.testing.assert_array_equal(img.data, a)


def test_imagej_pixel_size(tmp_path):
    a = rng.integers(0, 4095, (3, 16, 16), dtype=np.uint16)
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, a, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "ZYX", "unit": "um",
                                                                        "spacing": 0.5})
    img = read_image(p)
    assert img.meta.format == "imagej-tiff"
    assert img.meta.pixel_size == pytest.approx((0.25, 0.25))
    assert img.meta.z_step == pytest.approx(0.5)


def test_write_tiff_pixel_size_roundtrip(tmp_path):
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    p = write_tiff(tmp_path / "w.tif", a, pixel_size=(0.5, 0.25))
    img = read_image(p)
    assert img.meta.pixel_size == pytest.approx((0.5, 0.25))


def test_several_series_of_different_shapes(tmp_path):
    p = tmp_path / "two.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(np.zeros((8, 8), np.uint8))
        tw.write(np.ones((4, 6), np.uint8))
    with pytest.raises(ImageReadError, match="series=<index>"):
        read_image(p)
    assert read_image(p, series=1).data.shape == (4, 6)


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (16, np.uint16)])
def test_png_grey(tmp_path, bits, dtype):
    import imagecodecs

    a = rng.integers(0, 2**bits - 1, (20, 30), dtype=dtype)
    p = tmp_path / "a.png"
    p.write_bytes(imagecodecs.png_encode(a))
    img = read_image(p)
    assert img.data.dtype == dtype and img.meta.bit_depth == bits
    np.testing.assert_array_equal(img.data, a)


def test_png_rgb16_keeps_16_bits(tmp_path):
    import imagecodecs

    a = rng.integers(0, 65535, (10, 12, 3), dtype=np.uint16)
    p = tmp_path / "rgb16.png"
    p.write_bytes(imagecodecs.png_encode(a))
    img = read_image(p)
    np.testing.assert_array_equal(img.data, a)


def test_png_palette_expanded(tmp_path):
    idx = (np.arange(16 * 16).reshape(16, 16) % 4).astype(np.uint8)
    im = PILImage.fromarray(idx, mode="L").convert("P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 12))
    p = tmp_path / "pal.png"
    im.save(p)
    img = read_image(p)
    assert img.data.shape == (16, 16, 3)
    assert img.meta.extra["png_color_type"] == "palette"
    np.testing.assert_array_equal(img.data[0, 1], [255, 0, 0])


def test_jpeg(tmp_path):
    a = (np.linspace(0, 255, 32 * 32).reshape(32, 32)).astype(np.uint8)
    p = tmp_path / "a.JPEG"
    PILImage.fromarray(a).save(p, quality=95)
    img = read_image(p)
    assert img.data.shape == (32, 32) and img.meta.format == "jpeg"
    assert np.abs(img.data.astype(int) - a).max() < 12


def test_ome_zarr(tmp_path):
    zarr = pytest.importorskip("zarr")
    a = rng.integers(0, 65535, (2, 16, 20), dtype=np.uint16)
    root = tmp_path / "img.ome.zarr"
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    g.create_array("0", shape=a.shape, dtype=a.dtype)[...] = a
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "c", "type": "channel"},
                                                          {"name": "y", "type": "space", "unit": "micrometer"},
                                                          {"name": "x", "type": "space", "unit": "micrometer"}],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [1.0, 0.5, 0.5]}]}]}]
    img = read_image(root)
    assert img.axes == "CYX" and img.meta.format == "ome-zarr"
    assert img.meta.pixel_size == (0.5, 0.5)
    np.testing.assert_array_equal(img.data, a)


def test_extension_case_variants():
    for name in ["a.tif", "a.TIF", "a.tiff", "a.ome.tif", "a.OME.TIFF"]:
        assert image_format(name) == "tiff"


# ---------------------------------------------------------------- bad input

def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such image"):
        read_image(tmp_path / "nope.tif")


def test_unsupported_extension(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(UnsupportedFormatError, match="unsupported file type '.txt'"):
        read_image(p)


def test_not_an_image(tmp_path):
    p = tmp_path / "fake.tif"
    p.write_text("this is not a tiff")
    with pytest.raises(ImageReadError, match="fake.tif: not a readable TIFF"):
        read_image(p)


def test_png_renamed_text(tmp_path):
    p = tmp_path / "fake.png"
    p.write_bytes(b"GIF89a....")
    with pytest.raises(ImageReadError, match="not a PNG"):
        read_image(p)


@pytest.mark.parametrize("compression", [None, "zlib", "packbits", "lzw"])
def test_truncated_tiff(tmp_path, compression):
    a = rng.integers(0, 65535, (64, 80), dtype=np.uint16)
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, a, compression=compression)
    raw = p.read_bytes()
    q = tmp_path / "trunc.tif"
    q.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="trunc.tif"):
        read_image(q)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty"):
        read_image(p)


def test_real_bbbc005_packbits_and_zlib(bbbc005_dir):
    files = sorted(bbbc005_dir.glob("*.TIF"))
    comps = {}
    for f in files[:200]:
        img = read_image(f)
        assert img.data.dtype == np.uint8 and img.data.shape == (520, 696)
        comps[img.meta.compression] = f
    assert len(comps) >= 1
    # decoded pixels equal plain tifffile's
    for f in comps.values():
        np.testing.assert_array_equal(read_image(f).data, tifffile.imread(f))


def test_real_sample_uint16(samples_dir):
    img = read_image(samples_dir / "img2d.tif")
    assert img.data.dtype == np.uint16 and img.data.shape == (512, 512)
    np.testing.assert_array_equal(img.data, tifffile.imread(samples_dir / "img2d.tif"))




def test_written_files_follow_umask(tmp_path):
    import os
    import stat

    p = write_tiff(tmp_path / "perm.tif", np.zeros((2, 2), np.uint8))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
