"""Issue 30, finding 8: set ids do not depend on the common folder of the paths given."""

from __future__ import annotations

from deepscope.pipeline import Pipeline
from deepscope.pipeline.inputs import discover_image_sets

from ._data import write_nuclei


def _ids(*paths: str, recursive: bool = False) -> dict[str, str]:
    """File -> set id."""
    p = Pipeline.from_dict({"inputs": {"paths": list(paths), "recursive": recursive},
                            "steps": [{"segment": {"model": "otsu-watershed"}}]})
    return {s.paths[0]: s.set_id for s in discover_image_sets(p.inputs)[0]}


def test_adding_a_root_elsewhere_keeps_the_first_roots_ids(tmp_path):
    a = tmp_path / "lab" / "2024" / "plate1"
    b = tmp_path / "elsewhere" / "plate2"
    write_nuclei(a, 2)
    write_nuclei(a / "sub", 1, prefix="deep")
    write_nuclei(b, 2, seed=9)
    alone = _ids(str(a), recursive=True)
    assert sorted(alone.values()) == ["img_00.tif", "img_01.tif", "sub/deep_00.tif"]  # one folder: as before
    both = _ids(str(a), str(b), recursive=True)
    assert {f: i for f, i in both.items() if f in alone} == alone  # before: 'lab/2024/plate1/img_00.tif' ...
    assert sorted(i for f, i in both.items() if f not in alone) == ["plate2/img_00.tif", "plate2/img_01.tif"]
    assert _ids(str(a), str(b), str(b / "img_00.tif"), recursive=True) == both  # a file found twice: one set
    # given files keep their names; a later root named like a folder of the first gets a unique prefix
    assert sorted(_ids(str(a / "img_00.tif"), str(a / "img_01.tif")).values()) == ["img_00.tif", "img_01.tif"]
    other = tmp_path / "x" / "sub"
    write_nuclei(other, 1, prefix="deep")
    ids = _ids(str(a), str(b), str(other), recursive=True)
    assert {f: i for f, i in ids.items() if f in both} == both
    assert ids[str(other / "deep_00.tif")] == "sub_2/deep_00.tif"  # 'sub/deep_00.tif' is a set of the first root
