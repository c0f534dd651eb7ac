"""The napari reader opens a CTC folder as a Labels layer and a Tracks layer with the lineage (issue 28); plain
functions, tested without napari."""

from __future__ import annotations

import numpy as np

from deepscope.data.synth import generate_movie
from deepscope.io.ctc import write_ctc_result
from deepscope.napari import get_reader, read_layers


def test_ctc_result_and_ground_truth_open_as_labels_and_tracks(tmp_path):
    m = generate_movie(6, frames=6, size=(64, 64), cycle=(3, 6), max_cells=12, seed=1)
    write_ctc_result(tmp_path / "res", m.labels, m.tracks)
    gt = m.write_ctc(tmp_path / "ctc")
    for folder in (tmp_path / "res", gt):
        reader = get_reader(str(folder))
        assert reader is read_layers
        (labels, lk, lkind), (data, tk, tkind) = reader(str(folder))
        assert lkind == "labels" and tkind == "tracks"
        np.testing.assert_array_equal(labels, m.labels)
        assert data.shape == (sum(len(np.unique(f)) - 1 for f in m.labels), 4)
        assert tk["graph"] == {c: [p] for c, p in m.parents.items()} and tk["graph"]
    assert get_reader(str(tmp_path)) is None  # a folder that is not CTC is left to other plugins
