"""The throughput engine (issue 17): worker threads give the serial results, fail per image, stop cleanly.

The commands run the shipped default models (``nuclei``, ``count-bbbc005``, ``deblur-bbbc005``) on a mixed
folder: images of several sizes and types, a truncated TIFF and a text file named like an image.
Speed is measured in ``benchmarks/bench_engine.py``, not here.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from deepscope.data.synth import generate_field  # noqa: E402
from deepscope.errors import InputError  # noqa: E402
from deepscope.io import read_image, write_png, write_tiff  # noqa: E402
from deepscope.predict.files import count_paths, restore_paths, segment_paths  # noqa: E402
from deepscope.predict.runner import BatchRunner, Decoded  # noqa: E402


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Good images of four sizes and three types, a corrupt TIFF and a text file, in one folder."""
    folder = tmp_path_factory.mktemp("mixed")
    big = generate_field(16, size=(160, 208), blurs=(1,), stains=(1,), seed=11).images[(1, 1)]
    small = generate_field(5, size=(97, 131), blurs=(1, 23), stains=(1,), seed=12).images
    write_tiff(folder / "a_field.tif", big)
    write_tiff(folder / "b_odd.tif", small[(1, 1)])
    write_tiff(folder / "c_blurred16.tif", (small[(1, 23)].astype(np.uint16) * 257))
    write_png(folder / "d_rgb.png", np.dstack([big, big // 2, np.zeros_like(big)]))
    write_tiff(folder / "e_tiny.tif", big[:40, :52])
    (folder / "f_broken.tif").write_bytes(b"II*\x00 truncated")
    (folder / "g_text.png").write_text("not an image")
    write_tiff(folder / "h_last.tif", big[::-1])
    return folder


def _same_table(a: pd.DataFrame, b: pd.DataFrame, drop: tuple[str, ...] = ()) -> None:
    cols = [c for c in a.columns if c not in drop]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


def test_segment_with_workers_equals_serial(mixed, tmp_path):
    serial = segment_paths([mixed], tmp_path / "s", jobs=1, device="cpu")
    workers = segment_paths([mixed], tmp_path / "w", jobs=3, device="cpu")
    assert workers.jobs == 3 and serial.jobs == 1
    assert serial.n_images == 8 and serial.n_failed == 2  # the truncated TIFF and the text file
    assert list(serial.table["error"] != "") == list(workers.table["error"] != "")
    _same_table(serial.table, workers.table, drop=("labels",))
    assert serial.table["count"].sum() > 20
    for name in sorted(os.listdir(tmp_path / "s")):
        if name.endswith((".labels.tif", ".overlay.png")):
            a = read_image(tmp_path / "s" / name).data
            b = read_image(tmp_path / "w" / name).data
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert sorted(os.listdir(tmp_path / "s")) == sorted(os.listdir(tmp_path / "w"))
    # the time per stage is recorded: reading, inference and the network within it, writing
    st = workers.stages
    assert {"read", "infer", "network", "write", "wall"} <= set(st)
    assert 0 < st["network"] <= st["infer"] + 1e-3


def test_count_with_workers_equals_serial(mixed):
    serial = count_paths([mixed], jobs=1, batch_size=2, device="cpu")
    workers = count_paths([mixed], jobs=2, batch_size=2, device="cpu")
    _same_table(serial.table, workers.table)
    assert serial.n_failed == 2 and np.isfinite(serial.table["count"]).sum() == 6


def test_restore_with_workers_equals_serial(mixed, tmp_path):
    serial = restore_paths([mixed], tmp_path / "s", model="deblur-bbbc005", jobs=1, device="cpu")
    workers = restore_paths([mixed], tmp_path / "w", model="deblur-bbbc005", jobs=2, device="cpu")
    _same_table(serial.table, workers.table, drop=("output",))
    # the RGB picture is refused (the restorer takes one channel); the text file and truncated TIFF fail
    assert serial.n_failed == 3
    for p in serial.table["output"]:
        if p:
            name = Path(p).name
            np.testing.assert_array_equal(read_image(tmp_path / "s" / name).data,
                                          read_image(tmp_path / "w" / name).data)


def test_jobs_must_be_a_positive_number(mixed, tmp_path):
    with pytest.raises(InputError, match="jobs=0"):
        count_paths([mixed], jobs=0)
    with pytest.raises(InputError, match="jobs"):
        BatchRunner(row=dict, decode=Decoded, infer=list, write=list, jobs=-1)


def _runner(jobs: int, crash_on: set[int], **kw):
    def decode(i: int) -> Decoded:
        if i == 7:
            raise KeyError("a bug in reading item 7")
        return Decoded(i)

    def infer(ds: list[Decoded]) -> list[int]:
        if any(d.data in crash_on for d in ds):
            raise TypeError("a bug met by one odd image")
        return [d.data * 10 for d in ds]

    def write(i, d, result, row):
        row["value"] = result
        return []

    return BatchRunner(row=lambda i: {"value": None, "error": ""}, decode=decode, infer=infer, write=write,
                       jobs=jobs, **kw)


@pytest.mark.parametrize("jobs", [1, 3])
def test_a_worker_crash_fails_only_its_image(jobs, caplog):
    with caplog.at_level(logging.ERROR, logger="deepscope.predict.runner"):
        out = _runner(jobs, {4}, batch_size=2).run(range(12))
    errors = {i: r["error"] for i, r in enumerate(out.rows) if r["error"]}
    assert set(errors) == {4, 7}
    assert "internal error" in errors[4] and "TypeError: a bug met by one odd image" in errors[4]
    assert "KeyError" in errors[7]
    # item 5 shared item 4's batch: rerun alone, it stands
    assert [r["value"] for r in out.rows] == [i * 10 if i not in (4, 7) else None for i in range(12)]
    assert any("Traceback" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_the_window_bounds_the_batches_in_flight():
    busy, most = [0], [0]
    lock = threading.Lock()

    def infer(ds):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        time.sleep(0.01)
        with lock:
            busy[0] -= 1
        return [0] * len(ds)

    decoded: list[int] = []
    written: list[int] = []

    def decode(i):
        decoded.append(i)
        assert i - len(written) <= 2 * 4 + 1  # never more than the window ahead of the writer
        return Decoded(i)

    def write(i, d, r, row):
        written.append(i)
        return []

    out = BatchRunner(row=lambda i: {"error": ""}, decode=decode, infer=infer, write=write, jobs=4,
                      window=8).run(range(60))
    assert out.n_failed == 0 and written == list(range(60))  # written in input order
    assert 2 <= most[0] <= 4


def test_ctrl_c_stops_and_keeps_what_was_written(tmp_path):
    """An interrupt (raised from the progress callback here) lets deferred writes finish, starts no new batch."""
    started: list[int] = []

    def decode(i: int) -> Decoded:
        started.append(i)
        return Decoded(i)

    def write(i, d, r, row):
        def fn():
            time.sleep(0.02)  # a slow disk: the writes are still pending when Ctrl-C comes
            p = tmp_path / f"{i}.txt"
            p.write_text(str(i))
            return [str(p)]
        return [(fn, {})]

    def progress(done, total):
        if done == 5:
            raise KeyboardInterrupt

    runner = BatchRunner(row=lambda i: {"error": ""}, decode=decode, infer=lambda ds: [None] * len(ds),
                         write=write, deferred=True, jobs=2, window=2, progress=progress)
    with pytest.raises(KeyboardInterrupt):
        runner.run(range(100))
    assert sorted(int(p.stem) for p in tmp_path.glob("*.txt")) == [0, 1, 2, 3, 4]
    assert len(started) <= 5 + 2  # the window: no batch starts after the interrupt


def test_ctrl_c_on_the_command_leaves_finished_outputs_intact(mixed, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    src = read_image(mixed / "a_field.tif").data
    for k in range(120):
        write_tiff(folder / f"img{k:02d}.tif", np.roll(src, 7 * k, axis=1))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for attempt in range(2):  # a loaded machine may finish the run before the interrupt lands: once more
        out = tmp_path / f"out{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", "from deepscope.cli.app import main; main()", "segment",
                                 str(folder), "-o", str(out), "--jobs", "2", "--no-report", "--device", "cpu"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                # as from a terminal: SIGINT at its default (a process started while its parent
                                # ignores SIGINT keeps ignoring it, and Python then installs no Ctrl-C handler)
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(list(out.glob("*.labels.tif"))) < 3:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        log = proc.communicate(timeout=120)[0].decode(errors="replace")
        if not (proc.returncode == 0 and "120 of 120 image(s) done" in log):
            break
    assert proc.returncode == 130, log
    done = sorted(out.glob("*.labels.tif"))
    assert 3 <= len(done) < 120
    for p in done:  # every label image there is whole
        lab = read_image(p).data
        assert lab.shape[:2] == src.shape and lab.dtype == np.int32 and lab.max() > 0
    assert not [p for p in out.iterdir() if ".part" in p.name]  # no half-written file left behind
    assert not (out / "counts.csv").exists()
