from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile

from deepscope.errors import InputError
from deepscope.provenance.catalog import Catalog, CatalogError, parse_where, resolve_url

from .conftest import make_images


def _bbbc_like(folder, n_sites=3):
    """Tiny images named like BBBC005 (blur 1/48, stains 1/2), distinct bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for row, blur in (("A", 1), ("P", 48)):
        for site in range(1, n_sites + 1):
            for stain in (1, 2):
                p = folder / f"SIMCEPImages_{row}05_C18_F{blur}_s{site:02d}_w{stain}.TIF"
                tifffile.imwrite(p, rng.integers(0, 255, (5, 6), dtype=np.uint8))
                paths.append(p)
    return paths


DEFAULTS = ("instrument: {microscope: SIMCEP simulation, modality: widefield}\n"
            "objective: {magnification: 10, na: 0.3}\n"
            "rules:\n  - match: {stain: 1}\n"
            "    set: {channels: [{name: w1, stain: DAPI, emission_wavelength_nm: 461}]}\n"
            "  - match: {stain: 2}\n    set: {channels: [{name: w2, stain: phalloidin}]}\n")


def test_add_query_and_idempotence(db_url, tmp_path):
    imgs = _bbbc_like(tmp_path / "imgs")
    (tmp_path / "d.yaml").write_text(DEFAULTS)
    with Catalog(db_url) as cat:
        rep = cat.add(tmp_path / "imgs", pattern="bbbc005", meta=tmp_path / "d.yaml", batch_size=5)
        assert rep.counts["added"] == 12 and not rep.failed and not rep.conflicts
        blur48 = {p.resolve() for p in imgs if "_F48_" in p.name}
        assert {img.path for img in cat.query("blur=48")} == {str(p) for p in blur48}
        assert len(cat.query(["blur=48", "stain=DAPI"])) == 3          # channel stain from the YAML rule
        assert len(cat.query("channels.stain=dapi")) == 6              # text compares case-insensitively
        assert len(cat.query("stain=1")) == 6                          # the file-name field
        assert len(cat.query("stain=phal*")) == 6 and len(cat.query("stain!=DAPI")) == 6
        assert len(cat.query(["site>=2", "na<0.5", "instrument.modality=widefield"])) == 8
        assert len(cat.query(["format=tiff", "bit_depth=8", "name=*_s01_*"])) == 4
        assert cat.count("well=P05") == 6
        img = cat.get(cat.query("blur=48")[0].sha256[:10])
        assert img.meta.instrument.microscope == "SIMCEP simulation" and img.meta.extras["blur"] == 48
        assert cat.metadata_sources(img.sha256)["extras.blur"] == "pattern"
        assert cat.get(img.path).sha256 == img.sha256 == cat.get(img.name).sha256
        # adding the same folder again adds nothing new
        again = cat.add(tmp_path / "imgs", pattern="bbbc005", meta=tmp_path / "d.yaml")
        assert again.counts["unchanged"] == 12 and again.counts["added"] == 0
        assert cat.count() == 12
        # new metadata for the same bytes is an update, not a new image
        upd = cat.add(tmp_path / "imgs", pattern="bbbc005", meta=tmp_path / "d.yaml", overrides={"operator": "kim"})
        assert upd.counts["updated"] == 12 and cat.count("operator=kim") == 12 and cat.count() == 12


def test_moved_changed_duplicate_and_reverted(db_url, tmp_path):
    imgs = make_images(tmp_path / "a", 4)
    with Catalog(db_url) as cat:
        cat.add(tmp_path / "a")
        sha0 = cat.get(imgs[0]).sha256
        # moved: same bytes at a new path, old path gone -> same image, path updated
        (tmp_path / "b").mkdir()
        moved = tmp_path / "b" / "renamed.tif"
        shutil.move(imgs[0], moved)
        rep = cat.add([tmp_path / "a", tmp_path / "b"])
        assert [(r.status, r.detail) for r in rep.by_status("moved")] == [("moved", str(imgs[0].resolve()))]
        assert cat.get(sha0).path == str(moved.resolve()) and cat.count() == 4
        # duplicate: a copy elsewhere while the original is still there
        shutil.copy(moved, tmp_path / "copy.tif")
        rep = cat.add(tmp_path / "copy.tif")
        assert rep.results[0].status == "duplicate" and rep.results[0].detail == str(moved.resolve())
        assert cat.count() == 4
        # changed: new bytes at a catalogued path -> new image, old one marked replaced
        old_sha = cat.get(imgs[1]).sha256
        old_bytes = imgs[1].read_bytes()
        tifffile.imwrite(imgs[1], np.full((6, 7), 200, np.uint8))
        rep = cat.add(tmp_path / "a")
        (changed,) = rep.by_status("changed")
        assert changed.path == str(imgs[1].resolve()) and changed.detail == old_sha
        assert cat.count() == 4 and cat.count(include_replaced=True) == 5
        assert cat.get(old_sha).replaced_by == changed.sha256
        assert cat.get(imgs[1]).sha256 == changed.sha256                 # the path means the current bytes
        # reverted: the old bytes come back -> changed again, old record current again
        imgs[1].write_bytes(old_bytes)
        rep = cat.add(imgs[1])
        assert rep.results[0].status == "changed" and cat.get(old_sha).replaced_by is None
        assert cat.get(changed.sha256).replaced_by == old_sha and cat.count() == 4


def test_failed_files_do_not_stop_the_batch(db_url, tmp_path):
    make_images(tmp_path, 3)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    (tmp_path / "empty.png").write_bytes(b"")
    with Catalog(db_url) as cat:
        rep = cat.add(tmp_path)
    assert rep.counts["added"] == 3 and len(rep.failed) == 2
    reasons = dict(rep.failed)
    assert "TIFF" in reasons[str(tmp_path / "broken.tif")]
    assert "empty" in reasons[str(tmp_path / "empty.png")]


def test_export_csv_parquet_and_check(db_url, tmp_path):
    import pandas as pd

    from deepscope.provenance import lineage

    _bbbc_like(tmp_path / "imgs", n_sites=1)
    (tmp_path / "d.yaml").write_text(DEFAULTS + "pixel_size_um: 1.0\n")
    with Catalog(db_url) as cat:
        cat.add(tmp_path / "imgs", pattern="bbbc005", meta=tmp_path / "d.yaml")
        out = cat.export(tmp_path / "all.parquet", format="parquet", where="blur=48")
        df = pd.read_parquet(out)
        assert len(df) == 2 and set(df["extras.blur"]) == {48} and df["objective.na"].tolist() == [0.3, 0.3]
        assert sorted(df["channels.0.stain"]) == ["DAPI", "phalloidin"]
        rec = lineage.read(out)
        assert rec.command == "catalog export" and sorted(i.sha256 for i in rec.inputs) == sorted(df["sha256"])
        csv = cat.export(tmp_path / "all.csv")
        assert len(pd.read_csv(csv)) == 4 and lineage.read(csv).params == {"format": "csv", "where": []}
        issues = cat.check(require=["objective.na", "channels.stain", "sample.cell_line", "blur"])
        kinds = sorted((i.kind, i.message.split(":")[0]) for i in issues)
        # every image lacks sample.cell_line; the DAPI channel (461 nm, NA 0.3 -> Nyquist 0.38 um) is
        # undersampled at 1 um pixels; phalloidin has no wavelength, so it cannot be checked
        assert kinds.count(("missing-field", "missing required field sample.cell_line")) == 4
        assert [k for k in kinds if k[0] == "undersampled"] == [("undersampled", "channel 0 (w1)")] * 2
        assert not [k for k in kinds if "objective.na" in k[1] or "channels.stain" in k[1] or "blur" in k[1]]
        victim = cat.query("stain=1")[0]
        shutil.move(victim.path, tmp_path / "gone.tif")
        missing = [i for i in cat.check() if i.kind == "missing-file"]
        assert [i.path for i in missing] == [victim.path]


def test_catalog_errors(tmp_path):
    with pytest.raises(InputError, match="scheme 'mysql' is not supported"):
        Catalog("mysql://u:secret@h/db")
    with pytest.raises(CatalogError, match="folder .* does not exist"):
        Catalog(tmp_path / "no" / "such" / "dir" / "c.db")
    with Catalog(tmp_path / "c.db") as cat:
        with pytest.raises(CatalogError, match="no image 'deadbeef00'"):
            cat.get("deadbeef00")
        with pytest.raises(InputError, match="must be KEY=VALUE"):
            cat.query("blur")
        with pytest.raises(InputError, match="bit_depth is a number"):
            cat.query("bit_depth=eight")
        with pytest.raises(InputError, match="batch_size=0 must be at least 1"):
            cat.add(tmp_path, batch_size=0)
        with pytest.raises(InputError, match="verify='deep' is not one of"):
            cat.add(tmp_path, verify="deep")
        with pytest.raises(FileNotFoundError, match="No such file or folder"):
            cat.add([tmp_path / "missing"])
        with pytest.raises(InputError, match="format='xlsx' is not one of"):
            cat.export(tmp_path / "x.xlsx", format="xlsx")
        with pytest.raises(InputError, match="channels have no field 'colour'"):
            cat.check(require=["channels.colour"])
        with pytest.raises(InputError, match="criterion='sparrow' is not one of"):
            cat.check(criterion="sparrow")
        with pytest.raises(CatalogError, match="no run 'abc'"):
            cat.get_run("abc")
        (tmp_path / "x").mkdir()
        (tmp_path / "y").mkdir()
        tifffile.imwrite(tmp_path / "x" / "same.tif", np.zeros((3, 3), np.uint8))
        tifffile.imwrite(tmp_path / "y" / "same.tif", np.ones((3, 3), np.uint8))
        cat.add([tmp_path / "x", tmp_path / "y"])
        with pytest.raises(CatalogError, match="several catalogued images are named 'same.tif'"):
            cat.get("same.tif")


def test_postgres_server_down_is_a_catalog_error():
    pytest.importorskip("psycopg")
    with pytest.raises(CatalogError, match=r"cannot open catalog postgresql\+psycopg://me:\*\*\*@127.0.0.1:1/x"):
        Catalog("postgresql://me:pw@127.0.0.1:1/x")


def test_url_and_where_parsing():
    assert resolve_url("postgres://a@b/c") == "postgresql+psycopg://a@b/c"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    assert parse_where(" objective.na >= 0.5 ").value == "0.5"
    assert parse_where("stain==DAPI").op == "="
