"""Issue 30, findings 5-7: only regular files are read, and the zip ratio applies to the whole archive.

A symbolic link to ``/dev/zero`` (``st_size`` 0, read forever) or a FIFO (opening it blocks) named
like an image is refused from its status, never opened: one failed row each, the rest of the batch
runs. Whatever could hang or eat memory if the refusal regressed runs in a child process capped at
2 GiB of address space and a timeout, so that a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepscope.errors import LimitError
from deepscope.io import extract_zip, find_images, write_tiff

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="needs POSIX FIFOs and /dev/zero")

GUARD_SECONDS = 120
GUARD_BYTES = 2 << 30
DEVICE = "character device, not a regular file"
FIFO = "FIFO (named pipe), not a regular file"


def _cap_memory() -> None:  # in the child, before it runs anything
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (GUARD_BYTES, GUARD_BYTES))


def run_guarded(args: list[str], *, timeout: float = GUARD_SECONDS):
    """``python *args`` in a child capped at 2 GiB of address space and ``timeout`` seconds (killed after)."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                              preexec_fn=_cap_memory, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout:g} s: a device or FIFO was read or opened (issue 30)")


def hostile_folder(folder: Path) -> Path:
    """``good.tif``, ``a.tif`` (a link to /dev/zero), ``b.tif`` (a FIFO nobody writes to)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((64, 80), np.uint8)
    img[10:20, 10:20] = img[40:52, 50:60] = 200
    write_tiff(folder / "good.tif", img)
    (folder / "a.tif").symlink_to("/dev/zero")
    os.mkfifo(folder / "b.tif")
    return folder


@pytest.fixture()
def hostile(tmp_path) -> Path:
    return hostile_folder(tmp_path / "in")


READERS = """
import json, sys
from pathlib import Path
from deepscope.data.loader import check_image
from deepscope.io import extract_zip, read_image, read_meta, sha256_file
from deepscope.provenance import Catalog
from deepscope.provenance.sources import file_meta

folder = Path(sys.argv[1])
out = {}
for name in ("a.tif", "b.tif", "c.zarr"):
    for fn in (read_image, read_meta, sha256_file, check_image, file_meta):
        try:
            fn(folder / name)
            out[f"{name} {fn.__name__}"] = "no error"
        except Exception as exc:
            out[f"{name} {fn.__name__}"] = f"{type(exc).__name__}: {exc}"
try:
    extract_zip(folder / "d.zip", folder / "unzipped")
    out["d.zip extract_zip"] = "no error"
except Exception as exc:
    out["d.zip extract_zip"] = f"{type(exc).__name__}: {exc}"
with Catalog(f"sqlite:///{folder.parent / 'cat.db'}") as cat:
    rep = cat.add(folder)
out["catalog"] = {Path(r.path).name: [r.status, r.detail] for r in rep.results}
from deepscope.data import ImageLoader
for validate in ("header", "full"):
    ds = ImageLoader(on_error="skip", validate=validate, include="*.tif").load(folder)
    out[f"loader {validate}"] = [[Path(p).name for p in ds.paths], {Path(p).name: r for p, r in ds.skipped}]
print(json.dumps(out))
"""


def test_readers_refuse_device_and_fifo_without_opening(hostile):
    os.mkfifo(hostile / "c.zarr")  # an OME-Zarr name, but not a folder
    os.mkfifo(hostile / "d.zip")
    r = run_guarded(["-c", READERS, str(hostile)])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for fn in ("read_image", "read_meta", "check_image", "file_meta"):  # a reader's error: a batch skips the file
        assert out[f"a.tif {fn}"] == f"ImageReadError: {hostile / 'a.tif'}: this file is a {DEVICE}; only " \
                                     "regular files are read (a device or pipe would be read forever). Point at " \
                                     "the file itself"
        assert out[f"b.tif {fn}"].startswith(f"ImageReadError: {hostile / 'b.tif'}: this file is a {FIFO}")
        zarr = "an OME-Zarr image must be a folder" if fn == "check_image" else f"this file is a {FIFO}"
        assert out[f"c.zarr {fn}"].startswith(f"ImageReadError: {hostile / 'c.zarr'}: {zarr}")
    assert out["a.tif sha256_file"].startswith(f"InputError: {hostile / 'a.tif'}: this file is a {DEVICE}")
    assert out["b.tif sha256_file"].startswith(f"InputError: {hostile / 'b.tif'}: this file is a {FIFO}")
    assert out["d.zip extract_zip"].startswith(f"InputError: {hostile / 'd.zip'}: this zip archive is a {FIFO}")
    cat = out["catalog"]  # the catalog's discovery: failed rows with the reason, the good image added
    assert cat["good.tif"][0] == "added"
    assert cat["a.tif"][0] == "failed" and DEVICE in cat["a.tif"][1]
    assert cat["b.tif"][0] == "failed" and FIFO in cat["b.tif"][1]
    for validate in ("header", "full"):  # the data loader: skipped with the reason
        kept, skipped = out[f"loader {validate}"]
        assert kept == ["good.tif"] and sorted(skipped) == ["a.tif", "b.tif"], out[f"loader {validate}"]
        assert skipped["a.tif"].startswith(f"this file is a {DEVICE}")
        assert skipped["b.tif"].startswith(f"this file is a {FIFO}")


def test_discovery_keeps_devices_and_fifos_as_inputs(hostile):
    """Not silently dropped: they are listed, so that each gets its error row."""
    assert [p.name for p in find_images(hostile)] == ["a.tif", "b.tif", "good.tif"]


def test_pipeline_inputs_keep_a_link_to_a_device_under_its_own_name(hostile):
    """A link to a regular file is read as its target; a link to /dev/zero keeps its name (and error row)."""
    from deepscope.pipeline import Pipeline
    from deepscope.pipeline.inputs import discover_image_sets

    p = Pipeline.from_dict({"inputs": {"paths": [str(hostile)], "pattern": r"(?P<name>\w+)\.tif"},
                            "steps": [{"segment": {"model": "otsu-watershed"}}]})
    sets, _ = discover_image_sets(p.inputs)
    assert [(s.set_id, Path(s.paths[0]).name) for s in sets] == [("a.tif", "a.tif"), ("b.tif", "b.tif"),
                                                               ("good.tif", "good.tif")]
    assert sets[0].paths[0] == os.path.abspath(hostile / "a.tif")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from deepscope.models import ArchConfig, CountModel, SegmentModel

    d = tmp_path_factory.mktemp("m")
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(d / "count")
    SegmentModel(ArchConfig("unet", 1, 2, base=4, depth=2)).save(d / "segment")
    return d


CLI = "from deepscope.cli.app import main; main()"


def test_count_reports_device_and_fifo_as_failed_rows(hostile, tiny_models, tmp_path):
    csv = tmp_path / "counts.csv"
    r = run_guarded(["-c", CLI, "count", str(hostile), "--model", str(tiny_models / "count"), "--output", str(csv),
                     "--device", "cpu"])
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, out
    assert "1 of 3 image(s) done, 2 failed" in out
    t = pd.read_csv(csv, keep_default_na=False).set_index("path")
    rows = {Path(p).name: e for p, e in t["error"].items()}
    assert rows["good.tif"] == ""
    assert f"a.tif: this file is a {DEVICE}" in rows["a.tif"]
    assert f"b.tif: this file is a {FIFO}" in rows["b.tif"]


def test_segment_reports_device_and_fifo_as_failed_rows(hostile, tiny_models, tmp_path):
    out_dir = tmp_path / "seg"
    r = run_guarded(["-c", CLI, "segment", str(hostile), "--model", str(tiny_models / "segment"), "-o", str(out_dir),
                     "--device", "cpu"])
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 0, out
    assert "1 of 3 image(s) done, 2 failed" in out
    t = pd.read_csv(out_dir / "counts.csv", keep_default_na=False).set_index("path")
    rows = {Path(p).name: e for p, e in t["error"].items()}
    assert rows["good.tif"] == ""
    assert f"a.tif: this file is a {DEVICE}" in rows["a.tif"]
    assert f"b.tif: this file is a {FIFO}" in rows["b.tif"]
    assert sorted(p.name for p in out_dir.glob("*.tif")) == ["good.labels.tif"]


# --------------------------------------------------------------------------- zip: the whole archive's ratio

def _zeros_zip(path: Path, members: int, size: int = 1 << 20) -> Path:
    block = bytes(size)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(members):
            zf.writestr(f"img{i:03d}.tif", block)
    return path


def test_many_small_members_are_refused_by_the_whole_archive_ratio(tmp_path):
    """70 members of exactly 1 MiB (none over the per-member 1 MiB threshold): 70 MiB from ~70 KB."""
    archive = _zeros_zip(tmp_path / "bomb.zip", 70)
    assert archive.stat().st_size < 200_000
    dest = tmp_path / "out"
    with pytest.raises(LimitError, match=r"bomb\.zip' unpacks [\d,]+ times its packed size \([\d,]+ -> 73,400,320 "
                                         r"bytes in 70 members\), over the limit of 200 for a whole archive that "
                                         r"unpacks to over 64 MiB.*Nothing was extracted.*DEEPSCOPE_MAX_ZIP_RATIO"):
        extract_zip(archive, dest)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_whole_archive_ratio_applies_only_over_64_mib(tmp_path):
    archive = _zeros_zip(tmp_path / "small.zip", 3)  # 3 MiB: a compressible archive this small is fine
    extract_zip(archive, tmp_path / "out")
    assert sorted(p.stat().st_size for p in (tmp_path / "out").iterdir()) == [1 << 20] * 3


def test_bytes_written_are_counted_across_members(tmp_path):
    """Members share one count of the bytes really written, stopped at the archive's declared total."""
    from deepscope.io.discover import _extract_member

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.tif", b"0123456789")
    dest = tmp_path / "out"
    dest.mkdir()
    with zipfile.ZipFile(archive) as zf, pytest.raises(LimitError, match="more than the 15 bytes its members declare"):
        _extract_member(zf, zf.infolist()[0], dest, archive, written=[8], total=15)
    assert list(dest.iterdir()) == []
