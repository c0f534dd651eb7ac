"""One object scale per movie, checked by how well objects persist between frames (``deepscope.tasks.track.scale``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from skimage.draw import disk

from deepscope.tasks.track.scale import KEEP, REACH, choose_diameter, coherence, pick_diameter

SIZE = 128
CENTRES = [(30, 30), (30, 90), (90, 40), (95, 100)]
RADIUS = 14


def _movie(frames: int = 6) -> np.ndarray:
    """Four bright discs drifting one pixel a frame."""
    out = np.zeros((frames, SIZE, SIZE), np.float32)
    for t in range(frames):
        for y, x in CENTRES:
            rr, cc = disk((y + t, x + t), RADIUS, shape=(SIZE, SIZE))
            out[t, rr, cc] = 1.0
    return out


class FakeSegmenter:
    """Segments the discs of a frame; below ``whole_from`` pixels of diameter each disc comes out cut into pieces
    along a line at a random angle (a new one every call, as a network cuts a textured nucleus differently from one
    frame to the next). Its size estimate is ``estimate`` (None: it gives none)."""

    def __init__(self, estimate: float | None, whole_from: float, seed: int = 0) -> None:
        self.estimate, self.whole_from = estimate, whole_from
        self.rng = np.random.default_rng(seed)
        self.calls: list[float | None] = []

    def __call__(self, frame: np.ndarray, diameter: float | None = None) -> SimpleNamespace:
        self.calls.append(diameter)
        from skimage.measure import label

        objects = label(frame > 0.5)
        d = self.estimate if diameter is None else diameter
        if d is not None and d < self.whole_from:
            yy, xx = np.mgrid[:SIZE, :SIZE]
            out = np.zeros_like(objects)
            n = 0
            for i in range(1, objects.max() + 1):
                m = objects == i
                cy, cx = yy[m].mean(), xx[m].mean()
                a = self.rng.uniform(0, np.pi)
                side = (yy - cy) * np.cos(a) - (xx - cx) * np.sin(a) + self.rng.uniform(-RADIUS / 2, RADIUS / 2) > 0
                for part in (m & side, m & ~side):
                    if part.any():
                        n += 1
                        out[part] = n
            objects = out
        source = "given" if diameter is not None else ("estimated" if self.estimate is not None else "default")
        info = SimpleNamespace(diameter=d if d is not None else 17.0, diameter_source=source)
        return SimpleNamespace(labels=objects.astype(np.int32), info=info)


def test_coherence_counts_objects_matched_between_frames():
    a = np.zeros((10, 10), np.int32)
    a[1:4, 1:4], a[6:9, 6:9] = 1, 2
    assert coherence(a, a * 3) == 1.0  # ids do not matter
    b = np.zeros_like(a)
    b[1:4, 1:4] = 5  # one of the two found again, nothing new
    assert coherence(a, b) == pytest.approx(2 / 3)
    assert coherence(a, np.zeros_like(a)) == 0.0


def test_pick_keeps_a_coherent_estimate_and_moves_off_an_incoherent_one():
    curve = {10.0: 0.86, 11.9: 0.87, 14.1: 0.87, 16.8: 0.7}
    assert pick_diameter(curve, 10.0) == (10.0, "estimate")  # within KEEP of the best
    frag = {20.0: 0.6, 23.8: 0.8, 28.3: 0.97, 33.6: 1.0, 40.0: 1.0}
    assert pick_diameter(frag, 20.0) == (28.3, "coherence")  # the smallest within REACH of the best
    assert pick_diameter({5.0: 0.0, 6.0: 0.0}, 5.0) == (5.0, "estimate")  # nothing matched anywhere
    assert 0.5 < KEEP < REACH < 1.0


def test_a_movie_cut_into_pieces_at_its_estimate_is_segmented_where_objects_persist():
    seg = FakeSegmenter(estimate=12.0, whole_from=20.0)
    d, rec = choose_diameter(_movie(), seg)
    assert rec["reason"] == "coherence" and rec["estimate"] == 12.0
    assert 20.0 <= d < 30.0 and d == rec["diameter"]
    curve = {float(k): v for k, v in rec["coherence"].items()}
    assert curve[12.0] < KEEP * max(curve.values()) and curve[d] == 1.0
    assert rec["frames_segmented"] == len(seg.calls)


def test_a_movie_whole_at_its_estimate_keeps_it():
    seg = FakeSegmenter(estimate=25.0, whole_from=20.0)
    d, rec = choose_diameter(_movie(), seg)
    assert (d, rec["reason"], rec["estimate"]) == (None, "estimate", 25.0)  # each frame at its own estimate
    assert set(rec["coherence"].values()) == {1.0}
    # candidates stop at half the frame's shorter side
    assert max(float(k) for k in rec["coherence"]) <= SIZE / 2


def test_a_model_without_a_size_estimate_gets_no_movie_diameter():
    seg = FakeSegmenter(estimate=None, whole_from=0.0)
    d, rec = choose_diameter(_movie(), seg)
    assert d is None and rec["reason"] == "no estimate"
    assert seg.calls == [None] * 5  # only the probe frames were segmented


def test_progress_counts_every_segmented_frame():
    seen: list[tuple[int, int]] = []
    seg = FakeSegmenter(estimate=25.0, whole_from=20.0)
    choose_diameter(_movie(3), seg, progress=lambda done, total: seen.append((done, total)))
    assert [s[0] for s in seen] == list(range(1, len(seg.calls) + 1))
    assert all(total >= done for done, total in seen)
