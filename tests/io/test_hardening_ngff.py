"""Issue 30 for OME-Zarr: plate paths stay inside the plate, labels only inside ``<image>/labels/``, label names are
one folder name, and chunks are checked before zarr decodes them."""

from __future__ import annotations

import json
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("ome_zarr")

from deepscope.cli.app import app  # noqa: E402
from deepscope.errors import InputError, LimitError  # noqa: E402
from deepscope.io import read_image, read_meta  # noqa: E402
from deepscope.io.limits import override_limits  # noqa: E402
from deepscope.io.ngff import add_ngff_labels, open_ngff_level, plate_fields, write_ngff_labels  # noqa: E402

from .test_ngff import make_plate  # noqa: E402

runner = CliRunner()


def _out(result) -> str:
    return " ".join(result.output.split())


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``: equal snapshots = the store is untouched."""
    return {q.relative_to(folder).as_posix(): (q.read_bytes() if q.is_file() else None)
            for q in sorted(folder.rglob("*"))}


def _victim(tmp_path: Path) -> Path:
    """An OME-Zarr image outside any plate, with a hand-made ``labels/Nuclei``: what an attack would overwrite."""
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image
    import zarr

    victim = tmp_path / "victim.zarr"
    root = zarr.group(store=parse_url(str(victim), mode="w").store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_image(np.full((128, 160), 50, np.uint8), root, axes="yx")
    lab = np.zeros((128, 160), np.int32)
    lab[5:40, 5:40] = 7
    write_ngff_labels(victim, "Nuclei", lab)
    return victim


def _set_ngff(group_path: Path, key: str, value: object) -> None:
    """Rewrite one key of a group's OME metadata (NGFF 0.5 under ``ome``, 0.4 at the top)."""
    import zarr

    g = zarr.open_group(str(group_path), mode="r+")
    attrs = dict(g.attrs)
    if "ome" in attrs:
        g.attrs["ome"] = {**attrs["ome"], key: value}
    else:
        g.attrs[key] = value


def _hostile_plate(tmp_path: Path, victim: Path, attack: str) -> Path:
    """A plate of two wells whose second well's field (or the well itself) leads to ``victim``."""
    plate = tmp_path / "plate.zarr"
    make_plate(plate, wells=(("A", "1"), ("A", "2")), fields=1)
    well = plate / "A" / "2"
    if attack == "dotdot-field":  # plate.zarr/A/2/../../../victim.zarr
        _set_ngff(well, "well", {"images": [{"path": "../../../victim.zarr"}]})
    elif attack == "absolute-field":
        _set_ngff(well, "well", {"images": [{"path": str(victim)}]})
    elif attack == "link-field":  # a field folder that is a symbolic link to the victim
        import shutil

        shutil.rmtree(well / "0")
        (well / "0").symlink_to(victim, target_is_directory=True)
    elif attack == "dotdot-well":
        _set_ngff(plate, "plate", {"rows": [{"name": "A"}], "columns": [{"name": "1"}],
                                   "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0},
                                             {"path": "../outside/A/2", "rowIndex": 0, "columnIndex": 0}]})
    elif attack == "absolute-well":
        _set_ngff(plate, "plate", {"rows": [{"name": "A"}], "columns": [{"name": "1"}],
                                   "wells": [{"path": str(well), "rowIndex": 0, "columnIndex": 0}]})
    else:
        raise AssertionError(attack)
    return plate


WHY = {"dotdot-field": "path '../../../victim.zarr' climbs out of its folder with '..'",
       "absolute-field": "is an absolute path", "link-field": "leads outside the plate (to",
       "dotdot-well": "well path '../outside/A/2' climbs out", "absolute-well": "well path '/"}


@pytest.mark.parametrize("attack", list(WHY))
def test_plate_paths_that_leave_the_plate_are_refused(tmp_path, attack):
    victim = _victim(tmp_path)
    plate = _hostile_plate(tmp_path, victim, attack)
    with pytest.raises(InputError, match="plate.zarr: the plate's .*was refused") as exc:
        plate_fields(plate)
    assert WHY[attack] in " ".join(str(exc.value).split())
    if attack.endswith("field"):
        assert "(of well 'A/2')" in str(exc.value)


def test_links_and_dot_paths_inside_the_plate_are_kept(tmp_path):
    plate = tmp_path / "plate.zarr"
    make_plate(plate, wells=(("A", "1"), ("A", "2")), fields=1)
    link = plate / "A" / "2" / "0"
    import shutil

    shutil.rmtree(link)
    link.symlink_to(plate / "A" / "1" / "0", target_is_directory=True)  # a link that stays inside the plate
    assert [f.relative_to(plate).as_posix() for f in plate_fields(plate)] == ["A/1/0", "A/2/0"]
    assert np.array_equal(read_image(plate_fields(plate)[1]).data, read_image(plate / "A" / "1" / "0").data)


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from deepscope.models import ArchConfig, SegmentModel

    d = tmp_path_factory.mktemp("m") / "seg"
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d)
    return d


@pytest.mark.parametrize("attack", ["dotdot-field", "absolute-field", "link-field"])
@pytest.mark.parametrize("command", ["segment", "analyze"])
def test_segment_and_analyze_leave_a_store_outside_the_plate_untouched(tmp_path, attack, command, seg_model):
    """Issue 30, finding 1: analyze replaced the victim's labels/Nuclei, segment added labels/<model> to it."""
    victim = _victim(tmp_path)
    before = _snapshot(victim)
    plate = _hostile_plate(tmp_path, victim, attack)
    model = str(seg_model) if command == "segment" else "otsu-watershed"
    r = runner.invoke(app, [command, str(plate), "--model", model, "--out", str(tmp_path / "out"), "--no-report"]
                      + (["-j", "0"] if command == "analyze" else ["--no-overlay"]))
    assert r.exit_code == 2, r.output
    assert "the plate's field (of well 'A/2') path" in _out(r) and "was refused" in _out(r)
    assert _snapshot(victim) == before


def test_a_labels_folder_linked_out_of_the_image_is_never_replaced(tmp_path):
    victim = _victim(tmp_path)
    before = _snapshot(victim)
    plate = tmp_path / "plate.zarr"
    make_plate(plate, wells=(("A", "1"),), fields=1)
    field = plate / "A" / "1" / "0"
    (field / "labels").symlink_to(victim / "labels", target_is_directory=True)
    lab = np.ones((128, 160), np.int32)
    with pytest.raises(InputError, match="labels/Nuclei' leads to .*victim.zarr/labels/Nuclei' through a symbolic"):
        write_ngff_labels(field, "Nuclei", lab)
    with pytest.warns(UserWarning, match="labels not written into the OME-Zarr image .*symbolic link"):
        assert add_ngff_labels(field, "Nuclei", lab) is None
    r = runner.invoke(app, ["analyze", str(plate), "--model", "otsu-watershed", "--out", str(tmp_path / "run"),
                            "-j", "0", "--no-report"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "labels" / "plate_A_1_0.Nuclei.tif").is_file()  # the run's own labels are written
    assert _snapshot(victim) == before


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "", ".hidden", "x\\y", "a\nb"])
def test_a_label_name_must_be_one_folder_name(tmp_path, name):
    plate = tmp_path / "plate.zarr"
    make_plate(plate, wells=(("A", "1"),), fields=1)
    field = plate / "A" / "1" / "0"
    before = _snapshot(tmp_path)
    with pytest.raises(InputError, match="the label image name .* is not one folder name .*Rename the model"):
        write_ngff_labels(field, name, np.ones((128, 160), np.int32))
    with pytest.warns(UserWarning, match="not one folder name"):
        assert add_ngff_labels(field, name, np.ones((128, 160), np.int32)) is None
    assert _snapshot(tmp_path) == before
    write_ngff_labels(field, "nuclei-2_b", np.ones((128, 160), np.int32))  # an ordinary name is written


@pytest.mark.parametrize("out_of_core", [False, True])
def test_segment_with_a_card_named_dotdot_gives_no_traceback(tmp_path, seg_model, monkeypatch, out_of_core):
    """Issue 30, finding 7: a card ``name`` of ``../x`` crashed segment on OME-Zarr input with a traceback."""
    import shutil

    import pandas as pd

    model = tmp_path / "model"
    shutil.copytree(seg_model, model)
    card = json.loads((model / "model.json").read_text())
    card["name"] = "../x"
    (model / "model.json").write_text(json.dumps(card))
    plate = tmp_path / "plate.zarr"
    make_plate(plate, wells=(("A", "1"),), fields=1)
    before = _snapshot(plate)
    if out_of_core:  # the store is segmented tile by tile, labels only into its own labels/ group
        monkeypatch.setenv("DEEPSCOPE_OUT_OF_CORE_PIXELS", "100")
    r = runner.invoke(app, ["segment", str(plate), "--model", str(model), "--out", str(tmp_path / "out"),
                            "--no-overlay", "--no-report"])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    row = pd.read_csv(tmp_path / "out" / "counts.csv").iloc[0]
    if out_of_core:  # nothing else to write: one failed row
        assert r.exit_code == 1 and "label image name '../x' is not one folder name" in row["error"]
    else:  # the batch's own label file is written; the store gets a warning
        assert r.exit_code == 0 and not isinstance(row["error"], str), r.output
        assert (tmp_path / "out" / "plate_A_1_0.labels.tif").is_file()
    assert _snapshot(plate) == before


# --------------------------------------------------------------------------- chunks (finding 3)

def _store(path: Path, chunk: int, *, data: bytes | None = None) -> Path:
    """A 10 x 10 uint8 OME-Zarr 0.4 image stored as ONE declared ``chunk`` x ``chunk`` zlib chunk (the chunk's
    bytes: ``data``, else ``chunk``**2 bytes of 7, streamed)."""
    (path / "0").mkdir(parents=True)
    (path / ".zgroup").write_text('{"zarr_format": 2}')
    (path / ".zattrs").write_text(json.dumps({"multiscales": [{
        "version": "0.4", "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}]}]}))
    (path / "0" / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "shape": [10, 10], "chunks": [chunk, chunk], "dtype": "|u1", "order": "C",
        "compressor": {"id": "zlib", "level": 1}, "fill_value": 0, "filters": None}))
    if data is None:
        c = zlib.compressobj(1)
        data = b"".join(c.compress(b"\x07" * chunk) for _ in range(chunk)) + c.flush()
    (path / "0" / "0.0").write_bytes(data)
    return path


def test_a_declared_huge_chunk_is_refused_before_zarr_decodes_it(tmp_path):
    """Issue 30, finding 3: a 10 x 10 image in one 40,000^2 chunk took 3.1 GB to read (here the chunk's bytes are
    junk: only the refusal, before any decode, can give a LimitError)."""
    bomb = _store(tmp_path / "bomb.zarr", 40_000, data=b"\x78\x9c" + os.urandom(64))
    msg = (r"bomb.zarr: its Zarr chunks are 40000 x 40000 uint8 = 1,600,000,000 bytes each decoded, over the limit "
           r"of 268,435,456 bytes per chunk .*DEEPSCOPE_MAX_CHUNK_BYTES=N")
    with pytest.raises(LimitError, match=msg):
        read_image(bomb)
    with pytest.raises(LimitError, match=msg):
        open_ngff_level(bomb)
    assert read_meta(bomb).shape == (10, 10)  # the header alone decodes nothing: it is not refused


def test_the_chunk_limit_is_the_one_to_raise(tmp_path):
    store = _store(tmp_path / "img.zarr", 2048)  # 4 MiB per chunk
    assert np.array_equal(read_image(store).data, np.full((10, 10), 7, np.uint8))
    with override_limits(chunk_bytes=1 << 20):
        with pytest.raises(LimitError, match=r"2048 x 2048 uint8 = 4,194,304 bytes each decoded, over the limit of "
                                             r"1,048,576"):
            read_image(store)
        with pytest.raises(LimitError, match="4,194,304 bytes each decoded"):
            open_ngff_level(store)
    with override_limits(chunk_bytes=0):
        assert read_image(store).data.sum() == 700


def test_a_shard_index_bomb_is_refused(tmp_path):
    import zarr

    g = zarr.open_group(str(tmp_path / "sharded.zarr"), mode="w")
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": "y"}, {"name": "x"}],
                                                         "datasets": [{"path": "0"}]}]}
    g.create_array("0", shape=(10, 10), dtype="uint8", chunks=(1, 1), shards=(65536, 65536))
    with pytest.raises(LimitError, match=r"shards of 65536 x 65536 hold 1 x 1 chunks, an index of 68,719,476,736 "
                                         r"bytes per shard"):
        read_image(tmp_path / "sharded.zarr")
