"""Resource limits (issue 14): refused from the header, before any memory is taken, with a clear error."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from deepscope.errors import ImageReadError, InputError, LimitError, ModelError
from deepscope.io import extract_zip, read_image, read_meta
from deepscope.io.limits import DEFAULTS, ENV, check_pixels, limits, override_limits, set_limits


def big_tiff(path: Path, side: int = 30000) -> Path:
    """A ~1 MB zlib TIFF whose header declares side x side uint8 pixels (written tile by tile)."""
    tile = np.zeros((1024, 1024), np.uint8)
    n = -(-side // 1024)
    tifffile.imwrite(path, (tile for _ in range(n * n)), shape=(side, side), dtype=np.uint8, tile=(1024, 1024),
                     compression="zlib", compressionargs={"level": 1})
    return path


def test_header_declared_30000_square_is_refused_before_decoding(tmp_path):
    p = big_tiff(tmp_path / "big.tif")
    assert p.stat().st_size < 2 << 20
    with pytest.raises(LimitError, match=r"big\.tif: the image is 30000 x 30000 = 900,000,000 values, over the "
                                         r"limit of 250,000,000 .* DEEPSCOPE_MAX_PIXELS=N"):
        read_image(p)
    meta = read_meta(p)  # the header only: inspect reports it
    assert meta.shape == (30000, 30000) and meta.dtype == "uint8" and len(meta.sha256) == 64


@pytest.mark.parametrize("fmt", ["png", "jpg", "tif"])
def test_every_reader_checks_the_limit_from_the_header(tmp_path, fmt):
    import imagecodecs

    data = np.full((40, 30), 7, np.uint8)
    p = tmp_path / f"a.{fmt}"
    if fmt == "png":
        p.write_bytes(imagecodecs.png_encode(data))
    elif fmt == "jpg":
        p.write_bytes(imagecodecs.jpeg8_encode(data))
    else:
        tifffile.imwrite(p, data)
    assert read_meta(p).shape == (40, 30)
    with override_limits(max_pixels=1199):
        with pytest.raises(LimitError, match="40 x 30 = 1,200 values, over the limit of 1,199"):
            read_image(p)
        assert read_meta(p).shape == (40, 30)
    with override_limits(max_pixels=0):  # 0: no limit
        assert read_image(p).shape == (40, 30)
    assert read_image(p).shape == (40, 30)


def test_png_meta_from_the_header_matches_the_decoded_image(tmp_path):
    import imagecodecs

    for data in (np.zeros((5, 6, 3), np.uint8), np.zeros((5, 6), np.uint16), np.zeros((5, 6, 4), np.uint8)):
        p = tmp_path / "x.png"
        p.write_bytes(imagecodecs.png_encode(data))
        m, img = read_meta(p), read_image(p)
        assert (m.shape, m.dtype, m.axes, m.sha256) == (img.meta.shape, img.meta.dtype, img.meta.axes, img.meta.sha256)


def test_zarr_limit(tmp_path):
    import zarr

    p = tmp_path / "img.zarr"
    g = zarr.open_group(str(p), mode="w")
    g.create_array("0", shape=(64, 64), dtype="uint16", chunks=(32, 32))[...] = 1
    g.attrs["multiscales"] = [{"axes": [{"name": "y"}, {"name": "x"}], "datasets": [{"path": "0"}]}]
    with override_limits(max_pixels=100):
        with pytest.raises(LimitError, match="64 x 64 = 4,096 values"):
            read_image(p)
        assert read_meta(p).shape == (64, 64)


def test_empty_and_complex_images_are_refused(tmp_path):
    with pytest.warns(UserWarning):
        tifffile.imwrite(tmp_path / "zero.tif", np.zeros((0, 0), np.uint8))
    tifffile.imwrite(tmp_path / "c.tif", np.ones((4, 4), np.complex64))
    with pytest.raises(ImageReadError, match=r"zero\.tif: holds no pixels \(shape \(0, 0\)\)"):
        read_image(tmp_path / "zero.tif")
    with pytest.raises(ImageReadError, match=r"c\.tif: holds complex values \(complex64\); .* \(numpy\.abs"):
        read_image(tmp_path / "c.tif")


def _bomb(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("images/a.tif", "w", force_zip64=True) as fh:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                fh.write(block)
    return path


def test_zip_members_are_capped_in_ratio_size_and_total(tmp_path):
    z = _bomb(tmp_path / "bomb.zip", 64 << 20)
    out = tmp_path / "out"
    with pytest.raises(LimitError, match=r"member 'images/a\.tif' unpacks [\d,]+ times its packed size .* zip bomb"):
        extract_zip(z, out)
    assert not list(out.rglob("*.tif"))
    with override_limits(zip_ratio=0, zip_member_bytes=32 << 20):
        with pytest.raises(LimitError, match="over the limit of 33,554,432 per member.*DEEPSCOPE_MAX_ZIP_MEMBER"):
            extract_zip(z, out)
    with override_limits(zip_ratio=0, zip_total_bytes=1 << 20):
        with pytest.raises(LimitError, match="over the limit of 1,048,576 per archive"):
            extract_zip(z, out)
    with override_limits(zip_ratio=0):
        extract_zip(z, out)
    assert (out / "images" / "a.tif").stat().st_size == 64 << 20


def test_a_member_larger_than_its_header_says_is_stopped(tmp_path):
    z = tmp_path / "lie.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.tif", bytes(5000))
    raw = bytearray(z.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size: local and central headers
        i = raw.index(sig)
        raw[i + off:i + off + 4] = (100).to_bytes(4, "little")
    z.write_bytes(bytes(raw))
    with pytest.raises((LimitError, InputError), match="a.tif"):
        extract_zip(z, tmp_path / "o")


def test_limits_from_the_environment(monkeypatch):
    assert limits().max_pixels == DEFAULTS["max_pixels"]
    monkeypatch.setenv(ENV["max_pixels"], "1e6")
    assert limits().max_pixels == 1_000_000
    monkeypatch.setenv(ENV["max_pixels"], "lots")
    with pytest.raises(LimitError, match="DEEPSCOPE_MAX_PIXELS='lots' is not a number"):
        limits()
    monkeypatch.delenv(ENV["max_pixels"])
    with pytest.raises(LimitError, match="unknown limit 'pixels'"):
        set_limits(pixels=5)
    with pytest.raises(LimitError, match="must be >= 0"):
        set_limits(max_pixels=-1)
    check_pixels("ok.tif", (10, 10))


# --------------------------------------------------------------------------- model cards

def _card(tmp_path: Path, **arch) -> Path:
    from deepscope.models import ZOO

    card = json.loads((ZOO / "count-bbbc005.json").read_text())
    card["architecture"].update(arch)
    p = tmp_path / "m" / "model.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(card))
    (p.parent / "model.safetensors").write_bytes(b"not read")
    return p


def test_a_crafted_card_is_refused_before_any_allocation(tmp_path):
    from deepscope.models import load_model

    with pytest.raises(ModelError, match=r"2,061,235,134,465 parameters, over the limit of 250,000,000 .*"
                                         "DEEPSCOPE_MAX_PARAMETERS"):
        load_model(_card(tmp_path, base=4096, depth=6, out_channels=1, in_channels=1, pool_input=1)).net
    with pytest.raises(ModelError, match=r"base=5000 is over the largest allowed \(4096\)"):
        load_model(_card(tmp_path / "b", base=5000))


def test_card_size_and_nesting_are_checked_before_parsing(tmp_path):
    from deepscope.models.card import read_card_json

    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 100 + "]" * 100 + "}")
    with pytest.raises(ModelError, match="nests 101 levels deep, over the limit of 32"):
        read_card_json(deep)
    with override_limits(card_bytes=10):
        with pytest.raises(ModelError, match="over the limit of 10 for a model card"):
            read_card_json(deep)


def test_weights_larger_than_the_network_are_not_read(tmp_path):
    import torch

    from deepscope.models.weights import load_weights

    w = tmp_path / "w.safetensors"
    w.write_bytes(bytes(17 << 20))
    with pytest.raises(ModelError, match="belongs to another model"):
        load_weights(torch.nn.Linear(2, 2), w)
