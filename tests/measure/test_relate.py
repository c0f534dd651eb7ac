from __future__ import annotations

import numpy as np
import pytest

from deepscope.errors import InputError
from deepscope.measure import filter_objects, measure_objects, relate_objects


def _cells_and_nuclei():
    cells = np.zeros((20, 40), np.int32)
    cells[:, :20] = 10
    cells[:, 20:] = 30
    nuclei = np.zeros_like(cells)
    nuclei[2:6, 2:6] = 1          # inside cell 10
    nuclei[10:14, 8:12] = 2       # inside cell 10
    nuclei[5:9, 17:25] = 3        # straddles: 3 columns in cell 10, 5 in cell 30 -> 30
    nuclei[12:16, 18:22] = 4      # tie 2 / 2 columns -> smallest id, 10
    return cells, nuclei


def test_relate_by_maximum_overlap():
    cells, nuclei = _cells_and_nuclei()
    cells[0:2, 35:40] = 0
    nuclei[0:2, 36:38] = 5        # on background only
    rel = relate_objects(cells, nuclei)
    assert rel.children["ObjectNumber"].tolist() == [1, 2, 3, 4, 5]
    assert rel.children["Parent_Cells"].tolist() == [10, 10, 30, 10, 0]
    assert rel.parents.set_index("ObjectNumber")["Children_Nuclei_Count"].to_dict() == {10: 3, 30: 1}


def test_relate_names_and_joins_with_measurements():
    cells, nuclei = _cells_and_nuclei()
    rel = relate_objects(cells, nuclei, parent_name="Cytoplasm", child_name="Speckles")
    assert list(rel.children.columns) == ["ObjectNumber", "Parent_Cytoplasm"]
    assert list(rel.parents.columns) == ["ObjectNumber", "Children_Speckles_Count"]
    table = measure_objects(nuclei).merge(rel.children, on="ObjectNumber")
    assert len(table) == 4 and table["Parent_Cytoplasm"].tolist() == [10, 10, 30, 10]
    empty = relate_objects(cells, np.zeros_like(nuclei))
    assert empty.children.empty and empty.parents["Children_Nuclei_Count"].tolist() == [0, 0]


def test_filter_with_dict_and_query():
    lab = np.zeros((30, 30), np.int32)
    lab[1:3, 1:3] = 9      # area 4
    lab[5:15, 5:15] = 4    # area 100
    lab[20:26, 20:26] = 7  # area 36
    table = measure_objects(lab, object_name="Nuclei")
    kept, t = filter_objects(lab, table, {"AreaShape_Area": (10, None)})
    assert t["ObjectNumber"].tolist() == [1, 2] and t["Parent_Nuclei"].tolist() == [4, 7]
    assert set(np.unique(kept)) == {0, 1, 2} and kept.dtype == np.int32
    assert (kept == 1).sum() == 100 and (kept == 2).sum() == 36 and kept[1, 1] == 0
    kept2, t2 = filter_objects(lab, table, "AreaShape_Area < 50 and AreaShape_Solidity > 0.99", relabel=False)
    assert t2["ObjectNumber"].tolist() == [7, 9] and set(np.unique(kept2)) == {0, 7, 9}
    assert "Parent_Nuclei" not in t2
    none, t3 = filter_objects(lab, table, {"AreaShape_Area": (1000, 2000)})
    assert t3.empty and not none.any()
    # the relabelled table measures the relabelled image
    again = measure_objects(kept)
    np.testing.assert_array_equal(again["AreaShape_Area"], t["AreaShape_Area"])


def test_filter_errors():
    lab = np.zeros((10, 10), np.int32)
    lab[2:5, 2:5] = 3
    table = measure_objects(lab)
    with pytest.raises(InputError, match="table has no 'ObjectNumber' column"):
        filter_objects(lab, table.drop(columns="ObjectNumber"), {"AreaShape_Area": (1, 2)})
    with pytest.raises(InputError, match="do not match the label ids"):
        filter_objects(np.where(lab > 0, 8, 0), table, {"AreaShape_Area": (1, 2)})
    with pytest.raises(InputError, match="no column 'Area' to filter on"):
        filter_objects(lab, table, {"Area": (1, 2)})
    with pytest.raises(InputError, match="must be a \\(min, max\\) pair"):
        filter_objects(lab, table, {"AreaShape_Area": 5})
    with pytest.raises(InputError, match="filter 'Nope > 1': no column 'Nope'; columns are"):
        filter_objects(lab, table, "Nope > 1")
    with pytest.raises(InputError, match="criteria must be a filter string or a dict"):
        filter_objects(lab, table, 5)  # type: ignore[arg-type]


def test_relate_errors():
    with pytest.raises(InputError, match=r"parents has shape \(4, 4\) but children has shape \(4, 5\)"):
        relate_objects(np.zeros((4, 4), np.int32), np.zeros((4, 5), np.int32))
    with pytest.raises(InputError, match="parent_name 'my cells' is not a valid name"):
        relate_objects(np.zeros((4, 4), np.int32), np.zeros((4, 4), np.int32), parent_name="my cells")
