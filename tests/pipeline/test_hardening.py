"""Issue 14 in pipelines: stable ids, unique outputs, one row per bad file, full disks, killed drivers."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepscope.data.synth import generate_field
from deepscope.errors import OutputError
from deepscope.io import write_png, write_tiff
from deepscope.pipeline import Pipeline, run_pipeline

from ._data import SIZE, segment_pipeline, start_run, wait_until, write_nuclei


def _field(seed: int, n: int = 4) -> np.ndarray:
    return generate_field(n, size=SIZE, stains=1, seed=seed).image(1)


def _images(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "images.parquet")


def test_a_plain_rerun_finishes_the_sets_a_full_disk_failed(nuclei_dir, tmp_path, monkeypatch):
    import deepscope.io

    real = deepscope.io.write_labels

    def full(path, labels, **kw):
        if "img_01" in str(path) or "img_04" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, labels, **kw)

    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    monkeypatch.setattr(deepscope.io, "write_labels", full)
    first = run_pipeline(p, tmp_path / "run", jobs=0)
    assert first.n_failed == 2 and all("No space left" in err for _, err in first.failures)
    monkeypatch.setattr(deepscope.io, "write_labels", real)
    again = run_pipeline(p, tmp_path / "run", jobs=0)  # no --retry-failed
    assert (again.n_processed, again.n_failed, again.n_done_before) == (2, 0, 4)
    assert (_images(again.run_dir)["status"] == "ok").all()


def test_colliding_names_give_distinct_outputs(tmp_path):
    folder = tmp_path / "in"
    write_tiff(folder / "cell 1.tif", _field(1, 3))
    write_tiff(folder / "cell_1.tif", _field(2, 6))
    write_tiff(folder / "y.tif", _field(3, 2))
    write_png(folder / "y.png", _field(4, 5))
    p = Pipeline.from_dict(segment_pipeline(folder))
    with pytest.warns(UserWarning, match="would write labels and overlays under the same name"):
        res = run_pipeline(p, tmp_path / "run", jobs=0)
    labels = sorted(x.name for x in (tmp_path / "run" / "labels").iterdir())
    assert len(labels) == 4 and res.n_failed == 0
    from deepscope.io import read_image

    counts = {n: len(np.unique(read_image(tmp_path / "run" / "labels" / n).data)) - 1 for n in labels}
    images = _images(res.run_dir)
    assert sorted(counts.values()) == sorted(images["Count_Nuclei"].tolist())
    again = run_pipeline(p, tmp_path / "run", jobs=0)  # resumed: the same names, nothing redone
    assert again.n_processed == 0 and sorted(x.name for x in (tmp_path / "run" / "labels").iterdir()) == labels


def test_adding_a_folder_or_a_link_keeps_the_set_ids(tmp_path):
    root = tmp_path / "in"
    write_nuclei(root / "plate1", 3)
    p = Pipeline.from_dict(segment_pipeline(root) | {"inputs": {"paths": [str(root)], "recursive": True}})
    first = run_pipeline(p, tmp_path / "run", jobs=0)
    ids = _images(first.run_dir)["set_id"].tolist()
    assert ids == ["plate1/img_00.tif", "plate1/img_01.tif", "plate1/img_02.tif"]
    write_nuclei(root / "plate2", 2, seed=9)
    (root / "link.tif").symlink_to(root / "plate1" / "img_00.tif")  # the same file again: not a new set
    again = run_pipeline(p, tmp_path / "run", jobs=0)
    assert (again.n_done_before, again.n_processed) == (3, 2)
    assert _images(again.run_dir)["set_id"].tolist() == ids + ["plate2/img_00.tif", "plate2/img_01.tif"]


def test_each_bad_file_is_one_error_row(tmp_path):
    folder = tmp_path / "in"
    write_nuclei(folder, 2)
    with pytest.warns(UserWarning):
        write_tiff(folder / "zero.tif", np.zeros((0, 0), np.uint8))
    nan = _field(5).astype(np.float32)
    nan[3, 4] = np.nan
    write_tiff(folder / "nan.tif", nan)
    (folder / "loop1.tif").symlink_to(folder / "loop2.tif")
    (folder / "loop2.tif").symlink_to(folder / "loop1.tif")
    odd = os.fsdecode(b"caf\xe9.tif")
    write_tiff(folder / odd, _field(6))
    res = run_pipeline(Pipeline.from_dict(segment_pipeline(folder)), tmp_path / "run", jobs=0)
    images = _images(res.run_dir).set_index("set_id")
    assert len(images) == 7 and res.n_failed == 4
    assert "NaN or infinite" in images.loc["nan.tif", "error"]
    assert "holds no pixels" in images.loc["zero.tif", "error"]
    assert "symbolic links" in images.loc["loop1.tif", "error"]
    assert images.loc["caf\\xe9.tif", "status"] == "ok"  # the name kept, its odd byte escaped
    assert pd.read_csv(res.run_dir / "images.csv")["set_id"].str.contains("caf").any()


def test_outputs_that_cannot_be_written_are_refused_before_work(nuclei_dir, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    with pytest.raises(OutputError, match=r"cannot write to output folder .*file/run': Not a directory"):
        run_pipeline(p, tmp_path / "file" / "run", jobs=0)
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda d: shutil._ntuple_diskusage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(OutputError, match=r"only 1\.0 MiB free on its disk"):
        run_pipeline(p, tmp_path / "run", jobs=0)
    assert not (tmp_path / "run" / "parts").exists()


def _group(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_bytes().rsplit(b")", 1)[-1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != b"Z":
                out.append(int(d.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_killed_driver_takes_its_workers_with_it(tmp_path):
    proc, _ = start_run(tmp_path, n=40, jobs=2)
    try:  # driver, resource tracker, forkserver and workers
        wait_until(lambda: len(_group(proc.pid)) >= 4, seconds=120, what="the workers did not start",
                   alive=lambda: proc.poll() is None)
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone
        proc.wait()
        wait_until(lambda: not _group(proc.pid), seconds=30, what="processes of the killed run are still alive")
    finally:
        for pid in _group(proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_processes_dask_starts_ignore_ctrl_c_and_the_driver_does_not():
    """The terminal sends Ctrl-C to the whole process group: Dask's worker processes, started inside
    this context, ignore it (no tracebacks), and only the driver reports the interruption, in one line."""
    from deepscope.pipeline.executors import _children_ignore_sigint

    def ignored(pid: int) -> bool:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        raise AssertionError("no SigIgn line")

    before = signal.getsignal(signal.SIGINT)
    with _children_ignore_sigint():
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert ignored(child.pid)
    finally:
        child.communicate(b"")
    assert signal.getsignal(signal.SIGINT) is before
