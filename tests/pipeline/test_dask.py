"""Dask distributed: a LocalCluster gives the local tables, a killed worker loses nothing, bad schedulers fail fast."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from deepscope.errors import ConfigError
from deepscope.pipeline import DaskExecutor, Pipeline, SchedulerError, run_pipeline

from ._hooks import KillOnceDaskExecutor
from ._data import segment_pipeline
from .test_runner import assert_same_tables

pytest.importorskip("distributed")


def test_local_cluster_gives_the_serial_tables(nuclei_dir, tmp_path):
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    serial = run_pipeline(p, tmp_path / "serial", jobs=0)
    dask = run_pipeline(p, tmp_path / "dask", executor=DaskExecutor(workers=2, processes=False))
    assert dask.n_processed == 6 and dask.n_failed == 0
    assert_same_tables(serial.run_dir, dask.run_dir)


def test_killed_worker_loses_no_image_and_duplicates_none(nuclei_dir, tmp_path):
    """One of two worker processes dies on its first image set; Dask reruns that set elsewhere."""
    marker = tmp_path / "killed.txt"
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    result = run_pipeline(p, tmp_path / "run", executor=KillOnceDaskExecutor(str(marker), workers=2))
    assert marker.exists(), "no worker was killed"
    victim = marker.read_text().split()[1]
    images = pd.read_parquet(result.tables["images.parquet"])
    assert result.n_sets == 6 and result.n_failed == 0
    assert sorted(images["set_id"]) == [f"img_{i:02d}.tif" for i in range(6)]  # each exactly once
    assert images.set_index("set_id").loc[victim, "status"] == "ok"
    serial = run_pipeline(p, tmp_path / "serial", jobs=0)
    assert_same_tables(serial.run_dir, result.run_dir)


def test_unreachable_scheduler_fails_fast_with_a_clear_error(nuclei_dir, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    with pytest.raises(SchedulerError, match=rf"could not reach the Dask scheduler at tcp://127\.0\.0\.1:{port} "
                                             r"within 1 s .*leave out --scheduler"):
        run_pipeline(p, tmp_path / "run", scheduler=f"127.0.0.1:{port}", connect_timeout=1)
    assert not (tmp_path / "run").exists()  # nothing was written


def test_scheduler_address_and_executor_options_are_checked():
    with pytest.raises(ConfigError, match=r"scheduler address 'http://x:1/a b' is not like tcp://HOST:8786"):
        DaskExecutor("http://x:1/a b")
    with pytest.raises(ConfigError, match="give one of scheduler="):
        DaskExecutor("tcp://x:8786", workers=2)
    with pytest.raises(ConfigError, match=r"workers=0: give a number of Dask workers >= 1"):
        DaskExecutor(workers=0)
