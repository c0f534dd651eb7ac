"""Runs: resume after an interruption, changed pipelines and inputs, lineage, the local process pool."""

from __future__ import annotations

import json
import os
import signal

import pandas as pd
import pytest

from deepscope.data.synth import generate_field
from deepscope.io import write_tiff
from deepscope.pipeline import Pipeline, RunDirError, SerialExecutor, load_pipeline, read_manifest, run_pipeline
from deepscope.provenance import lineage

from ._data import SIZE, segment_pipeline, start_run, wait_until, write_nuclei


def tables(run_dir):
    """The committed tables without what legitimately differs between sessions (run id, timings)."""
    images = pd.read_parquet(run_dir / "images.parquet").drop(columns=["run_id", "seconds"])
    objects = pd.read_parquet(run_dir / "objects.parquet")
    return images, objects


def assert_same_tables(a, b):
    for x, y in zip(tables(a), tables(b), strict=True):
        pd.testing.assert_frame_equal(x, y)


def n_parts(run_dir):
    return sum(1 for p in (run_dir / "parts").glob("*/*.parquet") if not p.name.startswith("."))


class StopAfter(SerialExecutor):
    """Processes ``n`` image sets, then behaves as if Ctrl-C was pressed."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def map_unordered(self, fn, tasks, *, window=None):
        for i, out in enumerate(super().map_unordered(fn, tasks)):
            if i == self.n:
                raise KeyboardInterrupt
            yield out


def test_interrupted_run_resumes_to_the_same_tables(nuclei_dir, tmp_path):
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    clean = run_pipeline(p, tmp_path / "clean", jobs=0)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(p, tmp_path / "run", executor=StopAfter(2))
    run = tmp_path / "run"
    assert not (run / "images.parquet").exists() and n_parts(run) == 3  # the third finished before Ctrl-C
    assert read_manifest(run)["status"] == "interrupted"
    seen = []
    resumed = run_pipeline(p, run, jobs=0, progress=lambda d, t, f: seen.append(d))
    assert (resumed.n_done_before, resumed.n_processed, resumed.n_sets) == (3, 3, 6)
    assert seen == [3, 4, 5, 6]
    assert_same_tables(clean.run_dir, run)
    again = run_pipeline(p, run, jobs=0)  # nothing left to do: the tables are rebuilt, identical
    assert again.n_processed == 0 and again.n_done_before == 6
    assert_same_tables(clean.run_dir, run)
    m = read_manifest(run)
    assert m["status"] == "complete" and [s["status"] for s in m["sessions"]] == ["interrupted", "complete",
                                                                                   "complete"]


def test_killed_local_run_resumes_to_the_same_tables(tmp_path):
    """SIGKILL the driver and its worker process mid-run; the same command finishes the rest."""
    proc, run = start_run(tmp_path, n=40, jobs=1)
    spec = tmp_path / "p.yaml"
    try:
        wait_until(lambda: (run / "parts").is_dir() and n_parts(run) >= 3, seconds=120, what="no result parts appeared",
                   alive=lambda: proc.poll() is None)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_at_kill = n_parts(run)
    assert 3 <= done_at_kill < 40 and not (run / "images.parquet").exists()
    resumed = run_pipeline(load_pipeline(spec), run, jobs=0)
    assert resumed.n_done_before >= done_at_kill and resumed.n_done_before + resumed.n_processed == 40
    clean = run_pipeline(load_pipeline(spec), tmp_path / "clean", jobs=0)
    assert_same_tables(clean.run_dir, run)
    images, _ = tables(run)
    assert images["set_id"].is_unique and len(images) == 40 and (images["status"] == "ok").all()


def test_another_pipeline_is_refused_or_rerun(nuclei_dir, tmp_path):
    run = tmp_path / "run"
    run_pipeline(Pipeline.from_dict(segment_pipeline(nuclei_dir)), run, jobs=0)
    other = segment_pipeline(nuclei_dir)
    other["steps"][0]["segment"]["options"] = {"min_size": 40}
    with pytest.raises(RunDirError, match=r"holds the results of another pipeline \('test', hash [0-9a-f]{12}.*"
                                          r"--on-change rerun"):
        run_pipeline(Pipeline.from_dict(other), run, jobs=0)
    result = run_pipeline(Pipeline.from_dict(other), run, jobs=0, on_change="rerun")
    assert result.n_processed == 6 and result.n_done_before == 0
    assert read_manifest(run)["pipeline_hash"] == result.pipeline_hash
    assert len(list((run / "labels").glob("*.tif"))) == 6


def test_changed_input_is_refused_or_rerun_and_new_images_are_added(nuclei_dir, tmp_path):
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    run = tmp_path / "run"
    first = run_pipeline(p, run, jobs=0)
    old_sha = pd.read_parquet(first.tables["images.parquet"]).set_index("set_id").loc["img_03.tif", "Sha256_Image"]
    write_tiff(nuclei_dir / "img_03.tif", generate_field(9, size=SIZE, stains=1, seed=99).image(1))
    with pytest.raises(RunDirError, match=r"1 image set\(s\) changed since their results .* img_03\.tif: img_03\.tif "
                                          r"changed \(SHA-256 differs.*--on-change rerun"):
        run_pipeline(p, run, jobs=0)
    result = run_pipeline(p, run, jobs=0, on_change="rerun")
    assert (result.n_changed, result.n_processed, result.n_done_before) == (1, 1, 5)
    images = pd.read_parquet(result.tables["images.parquet"]).set_index("set_id")
    assert images.loc["img_03.tif", "Sha256_Image"] != old_sha
    for f in write_nuclei(tmp_path / "more", 8)[6:]:  # img_06 and img_07 join the folder
        f.rename(nuclei_dir / f.name)
    os.utime(nuclei_dir / "img_00.tif", ns=(1, 1))  # touched, same bytes: not "changed" (SHA-256 compared)
    grown = run_pipeline(p, run, jobs=0)
    assert (grown.n_sets, grown.n_processed, grown.n_changed, grown.n_done_before) == (8, 2, 0, 6)


def test_rehash_finds_changed_bytes_behind_an_unchanged_size_and_time(nuclei_dir, tmp_path):
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    run_pipeline(p, tmp_path / "run", jobs=0)
    f = nuclei_dir / "img_01.tif"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes, then the old modification time back
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run_pipeline(p, tmp_path / "run", jobs=0).n_processed == 0  # size + mtime are trusted by default
    with pytest.raises(RunDirError, match=r"1 image set\(s\) changed .* img_01\.tif changed"):
        run_pipeline(p, tmp_path / "run", jobs=0, rehash=True)


def test_incomplete_fields_skipped_are_listed(plate_dir, tmp_path):
    (plate_dir / "plate1_B01_s1_w2.tif").unlink()
    spec = {"inputs": {"paths": [str(plate_dir)], "pattern": "plate-well-site-channel",
                       "channels": {"by": "channel", "names": {1: "DNA", 2: "Cells"}, "incomplete": "skip"}},
            "steps": [{"segment": {"channel": "DNA", "model": "otsu-watershed"}}, {"measure": {}}]}
    result = run_pipeline(Pipeline.from_dict(spec), tmp_path / "run", jobs=0)
    assert result.n_sets == 2 and [sid for sid, _ in result.skipped] == ["plate=plate1,well=B01,site=1"]
    skipped = pd.read_csv(tmp_path / "run" / "skipped.csv")
    assert skipped["set_id"].tolist() == ["plate=plate1,well=B01,site=1"]
    assert skipped["reason"].str.contains("missing Cells").all()


def test_folder_that_is_not_a_run_is_refused(nuclei_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.docx").write_text("precious")
    with pytest.raises(RunDirError, match=r"is not empty and holds no deepscope run "
                                          r"\(no run\.json; found thesis\.docx\)"):
        run_pipeline(Pipeline.from_dict(segment_pipeline(nuclei_dir)), tmp_path / "busy", jobs=0)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["thesis.docx"]  # not even a lock file added


def test_every_row_traces_to_inputs_pipeline_models_and_version(nuclei_dir, tmp_path):
    import deepscope

    result = run_pipeline(Pipeline.from_dict(segment_pipeline(nuclei_dir)), tmp_path / "run", jobs=0)
    images = pd.read_parquet(result.tables["images.parquet"])
    objects = pd.read_csv(result.tables["objects.csv"])
    assert (images["pipeline_hash"] == result.pipeline_hash).all()
    assert (images["deepscope_version"] == deepscope.__version__).all()
    assert images["ModelSha256_Nuclei"].str.fullmatch("[0-9a-f]{64}").all()
    assert images["input_sha256"].tolist() == images["Sha256_Image"].tolist()
    assert objects["ImageNumber"].isin(images["ImageNumber"]).all()  # every object joins to its image row
    for name in ("images.parquet", "objects.parquet", "images.csv", "objects.csv"):
        rec = lineage.read(tmp_path / "run" / name)
        assert rec.params["pipeline_hash"] == result.pipeline_hash
        assert [(i.path, i.sha256) for i in rec.inputs] == list(zip(images["path"], images["Sha256_Image"]))
        assert rec.models[0].name == "otsu-watershed" and rec.extra["image_sets"] == 6
    from deepscope.io import sha256_file

    first = images.iloc[0]
    assert sha256_file(first["path"]) == first["Sha256_Image"]


def test_image_that_kills_its_worker_becomes_an_error_row(nuclei_dir, tmp_path):
    from ._hooks import PoisonLocalExecutor

    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    result = run_pipeline(p, tmp_path / "run", executor=PoisonLocalExecutor("img_03.tif", jobs=2))
    images = pd.read_parquet(result.tables["images.parquet"]).set_index("set_id")
    assert result.n_sets == 6 and result.n_failed == 1  # the others, in flight when it struck, are not blamed
    assert images.loc["img_03.tif", "status"] == "failed"
    assert "WorkerLost: the worker process died twice while processing img_03.tif" in images.loc["img_03.tif", "error"]
    assert (images.drop("img_03.tif")["status"] == "ok").all()


def test_workers_that_cannot_load_the_model_stop_the_run_with_a_clear_error(nuclei_dir, tmp_path):
    pytest.importorskip("torch")
    from deepscope.models import SegmentModel
    from deepscope.pipeline import WorkerStartError

    SegmentModel().save(tmp_path / "seg")
    weights = tmp_path / "seg" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")  # no longer the card's SHA-256
    spec = segment_pipeline(nuclei_dir)
    spec["steps"][0]["segment"]["model"] = str(tmp_path / "seg")
    with pytest.raises(WorkerStartError, match=r"the worker processes could not start: they died while loading "
                                               r"the pipeline or its models"):
        run_pipeline(Pipeline.from_dict(spec), tmp_path / "run", jobs=1)
    assert read_manifest(tmp_path / "run")["status"] == "failed" and n_parts(tmp_path / "run") == 0
    from deepscope.errors import ModelError

    with pytest.raises(ModelError, match="have sha256 .* but the model card says"):  # in-process: the cause itself
        run_pipeline(Pipeline.from_dict(spec), tmp_path / "run", jobs=0)


def test_failed_sets_are_kept_unless_retried(nuclei_dir, tmp_path):
    (nuclei_dir / "img_04.tif").write_bytes(b"not an image at all")
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    first = run_pipeline(p, tmp_path / "run", jobs=0)
    assert first.n_failed == 1
    again = run_pipeline(p, tmp_path / "run", jobs=0)
    assert (again.n_processed, again.n_failed) == (0, 1)
    retried = run_pipeline(p, tmp_path / "run", jobs=0, retry_failed=True)
    assert (retried.n_processed, retried.n_failed) == (1, 1)


def test_local_process_pool_gives_the_serial_tables(nuclei_dir, tmp_path):
    p = Pipeline.from_dict(segment_pipeline(nuclei_dir, overlays=True))
    serial = run_pipeline(p, tmp_path / "serial", jobs=0)
    pooled = run_pipeline(p, tmp_path / "pool", jobs=2)
    assert pooled.executor == "local, 2 processes"
    assert_same_tables(serial.run_dir, pooled.run_dir)
    assert len(list((tmp_path / "pool" / "overlays").glob("*.png"))) == 6
    assert lineage.read(tmp_path / "pool" / "overlays" / "img_00.png").inputs[0].path.endswith("img_00.tif")


def test_tables_committed_in_blocks_on_the_workers(nuclei_dir, tmp_path, monkeypatch):
    import deepscope.pipeline.runner as runner

    p = Pipeline.from_dict(segment_pipeline(nuclei_dir))
    serial = run_pipeline(p, tmp_path / "serial", jobs=0)
    monkeypatch.setattr(runner, "COMMIT_BLOCK", 2)  # 3 blocks of 2 image sets, built by the 2 worker processes
    blocks = run_pipeline(p, tmp_path / "blocks", jobs=2)
    assert_same_tables(serial.run_dir, blocks.run_dir)
    assert not (tmp_path / "blocks" / "commit").exists()  # the blocks are removed once concatenated
    assert lineage.read(blocks.tables["images.parquet"]).extra["inputs_digest"] == \
        lineage.read(serial.tables["images.parquet"]).extra["inputs_digest"]


def test_catalog_records_the_run_and_images(nuclei_dir, tmp_path):
    from deepscope.provenance import Catalog

    db = tmp_path / "cat.db"
    result = run_pipeline(Pipeline.from_dict(segment_pipeline(nuclei_dir, catalog=str(db))), tmp_path / "run", jobs=0)
    run_id = pd.read_parquet(result.tables["images.parquet"])["run_id"].iloc[0]
    with Catalog(db) as cat:
        assert cat.count() == 6
        info = cat.get_run(run_id)
        assert info["status"] == "ok" and info["command"] == "run"
        assert json.loads(json.dumps(info, default=str))  # plain data


def test_a_single_image_set_runs_in_this_process_by_default(tmp_path):
    """One image set and no jobs/workers given: no worker process is started for it (seconds of start-up for
    nothing to run beside); the tables are those of an explicit jobs=0."""
    folder = tmp_path / "one"
    write_nuclei(folder, n=1)
    result = run_pipeline(Pipeline.from_dict(segment_pipeline(folder)), tmp_path / "run")
    assert result.n_sets == 1 and result.n_failed == 0
    assert read_manifest(tmp_path / "run")["sessions"][-1]["executor"] == "serial (this process)"
    explicit = run_pipeline(Pipeline.from_dict(segment_pipeline(folder)), tmp_path / "run0", jobs=0)
    assert_same_tables(tmp_path / "run", tmp_path / "run0")
    assert explicit.n_sets == 1
