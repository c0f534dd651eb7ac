"""Reading movies and masks for tracking: axes, channels, units from the file, and the refusals (issue 28)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from deepscope.errors import InputError
from deepscope.io import write_tiff
from deepscope.tasks.track import read_masks, read_movie, track_movie


def test_imagej_hyperstack_gives_frame_interval_and_pixel_size(tmp_path):
    data = np.arange(3 * 16 * 20, dtype=np.uint16).reshape(3, 16, 20)
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "finterval": 2.5, "unit": "um"})
    mv = read_movie(tmp_path / "ij.tif")
    assert mv.frames.shape == (3, 16, 20) and mv.frame_interval == 2.5 and mv.pixel_size == pytest.approx(0.5)
    assert mv.stem == "ij"


def test_plain_multipage_tiff_pages_are_frames(tmp_path):
    write_tiff(tmp_path / "plain.tif", np.zeros((4, 16, 16), np.uint16))
    mv = read_movie(tmp_path / "plain.tif")
    assert mv.frames.shape == (4, 16, 16) and mv.frame_interval is None


def test_channel_of_a_tcyx_movie(tmp_path):
    data = np.stack([np.full((3, 8, 8), 1, np.uint16), np.full((3, 8, 8), 2, np.uint16)], axis=1)
    write_tiff(tmp_path / "tc.ome.tif", data, axes="TCYX", ome=True)
    assert int(read_movie(tmp_path / "tc.ome.tif", channel=1).frames.max()) == 2
    with pytest.raises(InputError, match="2 channels"):
        read_movie(tmp_path / "tc.ome.tif")
    with pytest.raises(InputError, match="out of range"):
        read_movie(tmp_path / "tc.ome.tif", channel=5)


def test_a_z_stack_is_not_a_movie(tmp_path):
    write_tiff(tmp_path / "z.ome.tif", np.zeros((4, 8, 8), np.uint16), axes="ZYX", ome=True)
    with pytest.raises(InputError, match="z-stack"):
        read_movie(tmp_path / "z.ome.tif")


def test_masks_of_another_shape_or_float_values(tmp_path):
    write_tiff(tmp_path / "m.tif", np.zeros((3, 8, 9), np.int32), axes="TYX")
    with pytest.raises(InputError, match="8 x 9 but the movie's frames are 8 x 8"):
        read_masks(tmp_path / "m.tif", n_frames=3, shape=(8, 8))
    write_tiff(tmp_path / "f.tif", np.full((3, 8, 8), 0.5, np.float32), axes="TYX")
    with pytest.raises(InputError, match="integer label images"):
        read_masks(tmp_path / "f.tif", n_frames=3, shape=(8, 8))
    with pytest.raises(FileNotFoundError):
        read_masks(tmp_path / "nope.tif", n_frames=3, shape=(8, 8))


def test_units_given_override_the_file_and_nan_is_refused(tmp_path):
    from deepscope.data.synth import generate_movie

    m = generate_movie(4, frames=3, size=(48, 48), seed=0)
    write_tiff(tmp_path / "m.tif", m.frames, axes="TYX")
    res = track_movie(tmp_path / "m.tif", masks=m.labels, pixel_size=0.5, frame_interval=3.0)
    assert res.pixel_size == 0.5 and res.frame_interval == 3.0
    with pytest.raises(InputError, match="frame interval"):
        track_movie(tmp_path / "m.tif", masks=m.labels, frame_interval=float("nan"))


def test_ome_zarr_movie_with_time_scale(tmp_path):
    zarr = pytest.importorskip("zarr")
    from deepscope.data.synth import generate_movie

    m = generate_movie(4, frames=3, size=(48, 48), seed=0)
    root = tmp_path / "m.ome.zarr"
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    g.create_array("0", shape=m.frames.shape, dtype=m.frames.dtype)[...] = m.frames
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "t", "type": "time", "unit": "minute"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [5.0, 0.5, 0.5]}]}]}]
    mv = read_movie(root)
    assert mv.stem == "m" and mv.frames.shape == (3, 48, 48)
    assert mv.frame_interval == 5.0 and mv.pixel_size == 0.5
    res = track_movie(mv, masks=m.labels)
    assert res.frame_interval == 5.0 and res.n_tracks == len(m.tracks)
