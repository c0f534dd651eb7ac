from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from deepscope.errors import InputError
from deepscope.io import read_image, write_tiff
from deepscope.provenance import lineage
from deepscope.provenance.catalog import Catalog

SHA_W = "ab" * 32


def _inputs(tmp_path, n=2):
    paths = []
    for i in range(n):
        p = tmp_path / f"in_{i}.tif"
        write_tiff(p, np.full((4, 5), i, np.uint16))
        paths.append(p)
    return paths


def test_record_roundtrip_through_sidecar(tmp_path):
    ins = _inputs(tmp_path)
    img = read_image(ins[0])
    out = tmp_path / "counts.csv"
    out.write_text("image,count\nin_0.tif,3\n")
    run = lineage.Run.start(command="count", params={"model": "count-bbbc005", "out": tmp_path, "t": np.float32(0.5)},
                            models=[lineage.ModelRef("count-bbbc005", SHA_W, card={"arch": "CountNet"})])
    rec = run.record(out, inputs=[img, ins[1]], extra={"n": np.int64(1)})
    where = lineage.attach(out, rec)
    assert where == tmp_path / "counts.csv.prov.json"
    back = lineage.read(out)
    assert back == lineage.Record.from_dict(json.loads(where.read_text()))
    assert back.run_id == run.run_id and len(back.run_id) == 32 and back.command == "count"
    assert [i.sha256 for i in back.inputs] == [img.meta.sha256, read_image(ins[1]).meta.sha256]
    assert back.models == (lineage.ModelRef("count-bbbc005", SHA_W, {"arch": "CountNet"}),)
    assert back.params == {"model": "count-bbbc005", "out": str(tmp_path), "t": 0.5} and back.extra == {"n": 1}
    assert back.output == str(out) and back.output_sha256 is not None
    assert back.deepscope_version and back.software["python"] and back.user and back.host
    json.dumps(back.to_dict())  # JSON-serialisable
    run.finish("ok", {"images": 2})
    assert run.status == "ok" and run.finished


def test_changed_output_warns(tmp_path):
    out = tmp_path / "labels.npy"
    out.write_bytes(b"v1")
    run = lineage.Run.start(command="segment")
    lineage.attach(out, run.record(out, inputs=[lineage.InputRef("x.tif", "00" * 32)]))
    out.write_bytes(b"v2")
    with pytest.warns(lineage.LineageWarning, match="has changed since its provenance record"):
        assert lineage.read(out).command == "segment"


def test_folder_output_gets_a_sidecar(tmp_path):
    out = tmp_path / "labels.ome.zarr"
    (out / "0").mkdir(parents=True)
    (out / "0" / "c").write_bytes(b"chunk")
    run = lineage.Run.start(command="segment")
    assert lineage.attach(out, run.record(out)) == tmp_path / "labels.ome.zarr.prov.json"
    assert lineage.read(out).output_sha256 is not None
    (out / "0" / "c").write_bytes(b"other")
    with pytest.warns(lineage.LineageWarning, match="has changed"):
        lineage.read(out)


def test_parquet_embeds_record_and_keeps_the_table(tmp_path):
    import pandas as pd

    out = tmp_path / "objects.parquet"
    pd.DataFrame({"label": [1, 2], "area": [10.5, 20.0]}).to_parquet(out, index=False)
    run = lineage.Run.start(command="measure", params={"channels": [0, 1]})
    assert lineage.attach(out, run.record(out, inputs=[lineage.InputRef("a.tif", "11" * 32)])) == out
    assert not lineage.sidecar_path(out).exists()
    df = pd.read_parquet(out)
    assert df["area"].tolist() == [10.5, 20.0]  # pandas metadata kept, table intact
    rec = lineage.read(out)
    assert rec.command == "measure" and rec.inputs[0].sha256 == "11" * 32 and rec.params == {"channels": [0, 1]}


def test_records_embedded_at_write_time_in_tiff_and_safetensors(tmp_path):
    from safetensors.numpy import save_file

    run = lineage.Run.start(command="train")
    tif = tmp_path / "labels.tif"
    rec = run.record(tif, inputs=[lineage.InputRef("a.tif", "22" * 32)])
    write_tiff(tif, np.zeros((4, 4), np.int32), description=lineage.embed_metadata(rec))
    assert lineage.read(tif) == rec
    st = tmp_path / "model.safetensors"
    rec2 = run.record(st)
    save_file({"w": np.ones(3, np.float32)}, str(st), metadata=lineage.embed_metadata(rec2))
    assert lineage.read(st) == rec2
    plain = tmp_path / "plain.tif"
    write_tiff(plain, np.zeros((4, 4), np.uint8))
    assert lineage.read(plain) is None


def test_run_context_marks_failure_in_catalog(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    with pytest.raises(RuntimeError):
        with lineage.Run.start(command="segment", catalog=cat,
                               models=[lineage.ModelRef("nuclei", SHA_W)]) as run:
            raise RuntimeError("GPU out of memory")
    got = cat.get_run(run.run_id)
    assert got["status"] == "failed" and "GPU out of memory" in got["summary"]["error"]
    assert got["models"] == [{"name": "nuclei", "sha256": SHA_W, "card": None}]
    cat.close()


def test_catalog_records_edges_and_traces_output(tmp_path):
    ins = _inputs(tmp_path, 3)
    cat = Catalog(tmp_path / "c.db")
    cat.add(ins, overrides={"objective.na": 0.45})
    run = lineage.Run.start(command="count", params={"batch": 2}, catalog=cat,
                            models=[lineage.ModelRef("count-bbbc005", SHA_W)])
    out = tmp_path / "counts.csv"
    out.write_text("x\n")
    lineage.attach(out, run.record(out, inputs=[read_image(p) for p in ins]))
    run.finish()
    from deepscope.io import sha256_file

    (run_id,) = cat.runs_for(sha256_file(out))
    got = cat.get_run(run_id)
    assert got["command"] == "count" and got["status"] == "ok" and got["params"] == {"batch": 2}
    assert sorted(i["sha256"] for i in got["inputs"]) == sorted(read_image(p).meta.sha256 for p in ins)
    assert got["outputs"][0]["path"] == str(out.resolve())
    known = cat.images_by_sha(i["sha256"] for i in got["inputs"])
    assert len(known) == 3 and all(k.meta.objective.na == 0.45 for k in known.values())
    assert cat.runs_using(read_image(ins[0]).meta.sha256)[0]["run_id"] == run_id
    # attaching the same record again adds no duplicate edge
    lineage.attach(out, run.record(out, inputs=[read_image(p) for p in ins]))
    assert len(cat.get_run(run_id)["inputs"]) == 3
    cat.close()


def test_lineage_import_is_light():
    code = ("import sys; from deepscope.provenance import lineage; "
            "bad = [m for m in ('sqlalchemy', 'pandas', 'pyarrow', 'torch', 'dask', 'tifffile') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_lineage_errors(tmp_path):
    run = lineage.Run.start(command="x")
    with pytest.raises(InputError, match="params must be JSON-serialisable"):
        lineage.Run.start(command="x", params={"f": object()})
    with pytest.raises(InputError, match="command must be a non-empty name"):
        lineage.Run.start(command=" ")
    with pytest.raises(InputError, match="models must be lineage.ModelRef"):
        lineage.Run.start(command="x", models=["nuclei"])
    with pytest.raises(InputError, match="status='done' is not one of"):
        run.finish("done")
    with pytest.raises(FileNotFoundError, match="write the file first"):
        lineage.attach(tmp_path / "missing.csv", run.record(tmp_path / "missing.csv"))
    with pytest.raises(InputError, match="rec must be a lineage.Record"):
        lineage.attach(tmp_path, {"run_id": "x"})  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="its SHA-256 cannot be recorded"):
        run.record("out.csv", inputs=[tmp_path / "nope.tif"])
    with pytest.raises(InputError, match="is not an InputRef, Image"):
        run.record("out.csv", inputs=[3.5])
    with pytest.raises(InputError, match="not a deepscope lineage record"):
        lineage.Record.from_dict({"schema": "other"})
    with pytest.raises(InputError, match="missing or has a malformed field 'run_id'"):
        lineage.Record.from_dict({"schema": lineage.SCHEMA})
    out = tmp_path / "t.csv"
    out.write_text("a\n")
    lineage.sidecar_path(out).write_text("{not json")
    with pytest.raises(InputError, match="provenance sidecar .* is corrupt"):
        lineage.read(out)
    with pytest.raises(FileNotFoundError, match="No such file"):
        lineage.read(tmp_path / "nothing.csv")
