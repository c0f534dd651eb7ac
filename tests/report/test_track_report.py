"""The report of a ``deepscope track`` folder (issue 28): per movie tracks over a frame and lineage trees, speeds
and cell-cycle times, a per-movie table whose tracks and divisions are those of res_track.txt, in_domain shown."""

from __future__ import annotations

import base64
import io
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_movie
from deepscope.io import write_tiff
from deepscope.io.ctc import read_ctc_tracks
from deepscope.report import load_results, write_report

pytest.importorskip("laptrack")

runner = CliRunner()


@pytest.fixture(scope="module")
def movie():
    # short cycles so that 8 frames hold divisions and cells that divide twice (cell-cycle times)
    return generate_movie(6, frames=8, size=(64, 64), cycle=(3, 6), max_cells=12, seed=1)


@pytest.fixture(scope="module")
def tracked(movie, tmp_path_factory):
    d = tmp_path_factory.mktemp("track")
    write_tiff(d / "movie.tif", movie.frames, axes="TYX", pixel_size=(0.65, 0.65))
    write_tiff(d / "masks.tif", movie.labels, axes="TYX")
    r = runner.invoke(app, ["track", str(d / "movie.tif"), "--masks", str(d / "masks.tif"), "--out", str(d / "out"),
                            "--frame-interval", "10"])
    assert r.exit_code == 0, r.output
    return d / "out"


def _ctc_counts(folder):
    tracks = read_ctc_tracks(folder / "res_track.txt")
    _, n_children = np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True)
    return len(tracks), int((n_children == 2).sum()), tracks


def _figures(html):
    """alt -> decoded PNG of every inline figure."""
    from PIL import Image

    out = {}
    for uri, alt in re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', html):
        im = Image.open(io.BytesIO(base64.b64decode(uri)))
        im.load()
        out[alt] = im
    return out


def _movie_rows(html):
    table = html[html.index("<h2>Movies</h2>"):html.index("<h2>Figures</h2>")]
    head = re.findall(r"<th>(.*?)</th>", table)
    rows = [dict(zip(head, re.findall(r"<td[^>]*>(.*?)</td>", r))) for r in re.findall(r"<tr[^>]*>(.*?)</tr>",
                                                                                      table[table.index("<tbody>"):])]
    return rows


def test_report_of_a_track_folder_has_its_figures_and_the_counts_of_res_track(tracked, movie):
    n_tracks, n_div, tracks = _ctc_counts(tracked / "movie")
    assert n_div > 0 and n_tracks == len(movie.tracks)  # linking the true masks recovers them
    r = runner.invoke(app, ["report", str(tracked)])
    assert r.exit_code == 0, r.output
    html = (tracked / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained
    figs = _figures(html)
    assert set(figs) == {"Tracks: movie", "Lineage: movie", "Speed distribution", "Cell-cycle time"}
    assert figs["Tracks: movie"].size[0] > 200 and figs["Lineage: movie"].size[1] > 150
    [row] = _movie_rows(html)
    assert row["movie"] == "movie" and row["frames"] == "8"
    assert int(row["tracks"]) == n_tracks and int(row["divisions"]) == n_div
    assert row["speed unit"] == "um/time unit" and float(row["mean speed"]) > 0
    assert "<th>in domain</th>" in html
    assert row["in domain"] == ""  # masks were given: no model checked the frames
    assert f"<b>{n_tracks}</b><span>tracks</span>" in html and f"<b>{n_div}</b><span>divisions</span>" in html
    assert "deepscope track" in html  # the lineage record: how the tracks were made


def test_results_hold_each_movie_and_its_speeds_and_cycle_times(tracked):
    res = load_results(tracked)
    assert res.kind == "track" and len(res.movies) == 1 and res.images["ok"].all()
    mv = res.movies[0]
    n_tracks, n_div, tracks = _ctc_counts(tracked / "movie")
    assert (mv.n_tracks, mv.n_divisions) == (n_tracks, n_div)
    np.testing.assert_array_equal(mv.tracks, tracks)
    summary = pd.read_csv(tracked / "movie.track_summary.csv")
    speeds = summary["mean_speed"].dropna().to_numpy()
    np.testing.assert_allclose(np.sort(mv.speeds()), np.sort(speeds))
    assert res.images.loc[0, "mean_speed"] == pytest.approx(speeds.mean())
    cycles = summary["cycle_time"].dropna().to_numpy()
    assert cycles.size and res.images.loc[0, "median_cycle_time"] == pytest.approx(np.median(cycles))
    assert mv.frame_index == 7 and mv.frame.shape == (64, 64) and mv.frame_interval == 10.0
    assert set(np.unique(mv.frame)) - {0} <= set(tracks[:, 0])  # the mask drawn is labelled by track id
    assert load_results(tracked / "movies.csv").kind == "track"  # the table itself works too


def test_lineage_layout_puts_each_mother_between_her_daughters(tracked):
    from deepscope.report.plots import _tree_layout, lineage_trees

    tracks = read_ctc_tracks(tracked / "movie" / "res_track.txt")
    trees, row = _tree_layout(tracks)
    assert sorted(k for t in trees for k in t) == sorted(tracks[:, 0].tolist())  # every track in one tree
    kids: dict[int, list[int]] = {}
    for lab, _, _, p in tracks.tolist():
        if p:
            kids.setdefault(p, []).append(lab)
    for mother, daughters in kids.items():
        if len(daughters) == 2:
            assert row[mother] == pytest.approx(np.mean([row[d] for d in daughters]))
    assert len({row[k] for k in row if k not in kids}) == sum(1 for k in row if k not in kids)  # one row per leaf
    png, drawn = lineage_trees(tracks, max_tracks=len(tracks))
    assert png.startswith(b"\x89PNG") and drawn == len(tracks)
    _, drawn = lineage_trees(tracks, max_tracks=5)
    assert 0 < drawn < len(tracks)  # whole trees only, the largest first


def test_failed_movies_and_out_of_domain_movies_are_shown(tracked, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tracked, out)
    table = pd.read_csv(out / "movies.csv", keep_default_na=False)
    table.loc[0, "in_domain"] = "False"
    bad = {c: "" for c in table.columns} | {"path": "broken.tif", "error": "broken.tif: not a TIFF file"}
    pd.concat([table, pd.DataFrame([bad])]).to_csv(out / "movies.csv", index=False)
    html = write_report(out).read_text()
    rows = _movie_rows(html)
    assert [r["movie"] for r in rows] == ["movie", "broken.tif"]
    assert rows[0]["in domain"] == "no" and "not a TIFF file" in rows[1]["error"]
    assert "<b>1</b><span>failed</span>" in html and "<b>1</b><span>out of the model&#x27;s domain</span>" in html
    assert "Lineage: movie" in _figures(html)
