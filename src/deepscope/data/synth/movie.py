"""Synthetic time-lapse movies of moving, dividing nuclei with exact Cell Tracking Challenge ground truth.

:func:`generate_movie` simulates fluorescent nuclei in a 2-D field: each moves with persistence (a correlated
random walk), nuclei push each other apart so they never overlap, each grows through its cell cycle and divides
(one mother -> two daughters, each a new track whose parent is the mother), cells enter through the borders and
leave when their centre crosses one, and their brightness blinks from frame to frame. The frames carry a
background, texture, blur and camera noise. Deterministic for a seed.

The ground truth is exact: ``labels[t]`` holds each visible nucleus with its track id, ``tracks`` is the CTC
table ``L B E P`` (:mod:`deepscope.io.ctc` writes both as a CTC sequence).

Examples
--------
>>> from deepscope.data.synth import generate_movie
>>> m = generate_movie(8, frames=6, size=(96, 96), seed=0)
>>> m.frames.shape, m.frames.dtype.name, m.labels.shape
((6, 96, 96), 'uint16', (6, 96, 96))
>>> bool(set(m.tracks[:, 0]) == set(int(v) for v in np.unique(m.labels) if v))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepscope.data.synth._render import Seed, as_rng, check_size, gaussian
from deepscope.errors import InputError

__all__ = ["SynthMovie", "generate_movie"]


@dataclass(frozen=True, eq=False)
class SynthMovie:
    """A synthetic time-lapse and its exact ground truth.

    Attributes
    ----------
    frames : (T, Y, X) uint16 ndarray
        The movie.
    labels : (T, Y, X) int32 ndarray
        Label = track id (0 = background).
    tracks : (N, 4) int64 ndarray
        CTC track table ``L B E P`` (label, first frame, last frame, parent label or 0).
    centres : dict of int to (T_i, 3) float ndarray
        Per track, the rows ``(frame, y, x)`` of its true centre.
    pixel_size : float
        Micrometres per pixel (as a movie file would state it).
    frame_interval : float
        Minutes between frames.
    """

    frames: np.ndarray
    labels: np.ndarray
    tracks: np.ndarray
    centres: dict[int, np.ndarray] = field(repr=False)
    pixel_size: float = 0.65
    frame_interval: float = 10.0

    @property
    def n_divisions(self) -> int:
        """How many mothers have two daughters."""
        parents, counts = np.unique(self.tracks[:, 3][self.tracks[:, 3] > 0], return_counts=True)
        return int((counts == 2).sum())

    @property
    def parents(self) -> dict[int, int]:
        """Track id -> parent track id, for tracks with a parent."""
        return {int(r[0]): int(r[3]) for r in self.tracks if r[3]}

    def write_ctc(self, folder: Any, name: str = "01") -> Any:
        """Write the movie as a CTC sequence (``<name>/t000.tif`` ... and ``<name>_GT/TRA``, ``<name>_GT/SEG``);
        returns the ``<name>_GT`` folder."""
        from deepscope.io.ctc import write_ctc_ground_truth

        return write_ctc_ground_truth(folder, self.labels, self.tracks, frames=self.frames, name=name)


class _Cell:
    __slots__ = ("ident", "y", "x", "vy", "vx", "r0", "age", "cycle", "bright", "phase", "ecc", "angle")

    def __init__(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self, k, v)

    def radius(self) -> float:
        return float(self.r0 * (1.0 + 0.35 * min(self.age / self.cycle, 1.0)))


def generate_movie(n_cells: int = 30, *, frames: int = 40, size: tuple[int, int] = (256, 256),
                   radius: tuple[float, float] = (5.5, 7.5), speed: float = 1.5, persistence: float = 0.8,
                   cycle: tuple[int, int] = (14, 34), max_cells: int | None = None, enter_rate: float = 0.15,
                   blink: float = 0.3, noise: float = 8.0, snr: float = 12.0, blur: float = 1.0, spacing: float = 1.15,
                   pixel_size: float = 0.65, frame_interval: float = 10.0, seed: Seed = None) -> SynthMovie:
    """Simulate a fluorescence time-lapse of moving, dividing nuclei with exact CTC ground truth.

    Parameters
    ----------
    n_cells : int, default 30
        Nuclei in the first frame.
    frames : int, default 40
        Number of frames (>= 2).
    size : (int, int), default (256, 256)
        Frame size (rows, cols).
    radius : (float, float), default (5.5, 7.5)
        Range of nuclear radii at birth, in pixels (a nucleus grows by 35 % through its cycle).
    speed : float, default 1.5
        Typical step per frame, in pixels.
    persistence : float, default 0.8
        Correlation of a nucleus's velocity from one frame to the next (0 = Brownian, towards 1 = straight).
    cycle : (int, int), default (14, 34)
        Range of cell-cycle lengths in frames; first-frame nuclei start at a random phase, so a 40-frame movie has
        many divisions.
    max_cells : int, optional
        Population cap (divisions wait while the field holds this many); default ``2 * n_cells``.
    enter_rate : float, default 0.15
        Mean number of nuclei entering through the borders per frame.
    blink : float, default 0.3
        Relative frame-to-frame fluctuation of each nucleus's brightness.
    noise : float, default 8.0
        Camera read noise (grey levels, on top of shot noise).
    snr : float, default 12.0
        Mean nuclear signal over the read noise.
    blur : float, default 1.0
        Gaussian blur (pixels) of the optics.
    spacing : float, default 1.15
        Closest two nuclei come, as a multiple of the sum of their longest semi-axes (1.0: they may touch, and
        sisters are born touching).
    pixel_size, frame_interval : float
        Micrometres per pixel and minutes per frame, recorded on the result.
    seed : int, numpy.random.Generator or None

    Returns
    -------
    SynthMovie

    Raises
    ------
    deepscope.errors.InputError
        If a parameter is out of range.
    """
    rng = as_rng(seed)
    h, w = check_size(size)
    if int(frames) < 2:
        raise InputError(f"frames must be >= 2 for a time-lapse; got {frames}")
    if int(n_cells) < 0:
        raise InputError(f"n_cells must be >= 0; got {n_cells}")
    if not 0.8 <= spacing <= 3:
        raise InputError(f"spacing must be in [0.8, 3]; got {spacing}")
    if not 0 <= persistence < 1:
        raise InputError(f"persistence must be in [0, 1); got {persistence}")
    if not (0 < radius[0] <= radius[1]) or not (2 <= cycle[0] <= cycle[1]):
        raise InputError(f"radius {radius} and cycle {cycle} must be increasing positive ranges (cycle >= 2)")
    n_frames = int(frames)
    cap = int(max_cells) if max_cells is not None else int(math.ceil(2 * max(n_cells, 1)))
    signal = snr * noise
    background = 4.0 * noise

    next_id = [1]
    tracks: dict[int, list[int]] = {}  # id -> [B, E, P]
    centres: dict[int, list[tuple[float, float, float]]] = {}

    def new_cell(y: float, x: float, t: int, parent: int = 0, *, r0: float | None = None, age: float = 0.0,
                 v: tuple[float, float] | None = None) -> _Cell:
        ident = next_id[0]
        next_id[0] += 1
        tracks[ident] = [t, t, parent]
        if v is None:
            a = rng.uniform(0, 2 * math.pi)
            v = (speed * math.sin(a), speed * math.cos(a))
        return _Cell(ident=ident, y=y, x=x, vy=v[0], vx=v[1],
                     r0=float(r0 if r0 is not None else rng.uniform(*radius)), age=age,
                     cycle=float(rng.integers(cycle[0], cycle[1] + 1)), bright=float(rng.uniform(0.7, 1.3)),
                     phase=float(rng.uniform(0, 2 * math.pi)), ecc=float(rng.uniform(0.0, 0.2)),
                     angle=float(rng.uniform(0, math.pi)))

    cells: list[_Cell] = []
    for _ in range(int(n_cells)):
        for _try in range(200):
            y, x = rng.uniform(4, h - 4), rng.uniform(4, w - 4)
            if all(math.hypot(y - c.y, x - c.x) > 2.6 * radius[1] for c in cells):
                break
        c = new_cell(y, x, 0)
        c.age = float(rng.uniform(0, c.cycle))
        cells.append(c)

    movie = np.empty((n_frames, h, w), np.uint16)
    labels = np.zeros((n_frames, h, w), np.int32)
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(n_frames):
        if t > 0:
            born: list[_Cell] = []
            survivors: list[_Cell] = []
            for c in cells:
                c.age += 1
                if c.age >= c.cycle and len(cells) + len(born) < cap:  # division: the mother's track ends
                    r_div = c.radius()
                    rd = r_div / math.sqrt(2.0)
                    a = rng.uniform(0, math.pi)
                    uy, ux = math.sin(a), math.cos(a)
                    off = rd + 0.75
                    for s in (1.0, -1.0):
                        d = new_cell(min(max(c.y + s * off * uy, 1.0), h - 2.0),
                                     min(max(c.x + s * off * ux, 1.0), w - 2.0), t, c.ident, r0=rd,
                                     v=(c.vy * 0.5 + s * 0.8 * uy, c.vx * 0.5 + s * 0.8 * ux))
                        born.append(d)
                    continue
                # correlated random walk
                k = math.sqrt(1 - persistence ** 2)
                c.vy = persistence * c.vy + k * speed * rng.normal()
                c.vx = persistence * c.vx + k * speed * rng.normal()
                c.y += c.vy
                c.x += c.vx
                c.angle += rng.normal(0, 0.1)
                survivors.append(c)
            cells = survivors + born
            _repel(cells, spacing, iterations=8)
            for d in born:  # both daughters stay in the field for their first frame (a division is never half-seen)
                d.y, d.x = min(max(d.y, 0.5), h - 1.5), min(max(d.x, 0.5), w - 1.5)
            cells = [c for c in cells if 0 <= c.y < h and 0 <= c.x < w]  # a centre outside: the cell left
            for _ in range(int(rng.poisson(enter_rate))):  # entering through a border, heading inwards
                side = int(rng.integers(4))
                p = rng.uniform(0.1, 0.9)
                y, x, v = [(1.0, p * w, (speed, 0.0)), (h - 2.0, p * w, (-speed, 0.0)),
                           (p * h, 1.0, (0.0, speed)), (p * h, w - 2.0, (0.0, -speed))][side]
                if all(math.hypot(y - c.y, x - c.x) > 2.6 * radius[1] for c in cells):
                    e = new_cell(y, x, t, v=v)
                    e.age = float(rng.uniform(0, e.cycle))
                    cells.append(e)
        # render: nuclei never overlap (repulsion), so each pixel belongs to at most one
        canvas = np.zeros((h, w), np.float32)
        lab = labels[t]
        for c in cells:
            r = c.radius()
            ra, rb = r * (1 + c.ecc), r * (1 - c.ecc)
            m = int(math.ceil(ra)) + 2
            y0, y1 = max(int(c.y) - m, 0), min(int(c.y) + m + 1, h)
            x0, x1 = max(int(c.x) - m, 0), min(int(c.x) + m + 1, w)
            dy, dx = yy[y0:y1, x0:x1] - c.y, xx[y0:y1, x0:x1] - c.x
            ca, sa = math.cos(c.angle), math.sin(c.angle)
            u, v = dx * ca + dy * sa, -dx * sa + dy * ca
            inside = (u / ra) ** 2 + (v / rb) ** 2 <= 1.0
            if not inside.any():  # a sliver: keep the centre pixel so the cell stays present
                inside = (np.abs(dy) < 1) & (np.abs(dx) < 1)
                if not inside.any():
                    cy, cx = min(max(int(round(c.y)), 0), h - 1), min(max(int(round(c.x)), 0), w - 1)
                    inside = np.zeros_like(dy, bool)
                    inside[cy - y0, cx - x0] = True
            free = inside & (lab[y0:y1, x0:x1] == 0)
            if not free.any():  # fully covered (repulsion not yet settled): the cell keeps its centre pixel
                free = np.zeros_like(inside)
                free[min(max(int(c.y), y0), y1 - 1) - y0, min(max(int(c.x), x0), x1 - 1) - x0] = True
            lab[y0:y1, x0:x1][free] = c.ident
            flick = 1.0 + blink * (0.6 * math.sin(c.phase + 0.9 * t) + 0.4 * rng.normal())
            mitotic = 1.35 if c.age >= c.cycle - 1 else 1.0  # condensed chromatin before division
            level = signal * c.bright * max(flick, 0.35) * mitotic
            canvas[y0:y1, x0:x1][free] += level
            tracks[c.ident][1] = t
            centres.setdefault(c.ident, []).append((t, c.y, c.x))
        tex = gaussian(rng.normal(0, 1, (h, w)).astype(np.float32), 1.5)
        canvas *= 1.0 + 0.5 * tex
        img = gaussian(canvas, blur) + background
        img = rng.poisson(np.maximum(img, 0)).astype(np.float32) + rng.normal(0, noise, (h, w)).astype(np.float32)
        movie[t] = np.clip(np.rint(img), 0, 65535).astype(np.uint16)

    # a track that never rendered (a cell that entered and left at once) has no frames: drop it
    present = {int(v) for v in np.unique(labels) if v}
    table = np.array([[k, b, e, p] for k, (b, e, p) in sorted(tracks.items()) if k in present],
                     dtype=np.int64).reshape(-1, 4)
    kept = set(table[:, 0].tolist())
    table[:, 3] = [p if p in kept else 0 for p in table[:, 3]]
    return SynthMovie(movie, labels, table, {k: np.array(v) for k, v in centres.items() if k in kept},
                      float(pixel_size), float(frame_interval))


def _repel(cells: list[_Cell], factor: float, iterations: int = 4) -> None:
    """Push overlapping nuclei apart (each pair to ``factor`` x the sum of their longest semi-axes)."""
    if len(cells) < 2:
        return
    for _ in range(iterations):
        pos = np.array([(c.y, c.x) for c in cells])
        reach = np.array([c.radius() * (1 + c.ecc) for c in cells])
        d = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((d ** 2).sum(-1)) + np.eye(len(cells)) * 1e9
        need = factor * (reach[:, None] + reach[None, :])
        over = np.clip(need - dist, 0, None)
        if not over.any():
            return
        dist = np.maximum(dist, 1e-6)
        push = (d / dist[..., None] * (over / 2)[..., None]).sum(1)
        for c, (py, px) in zip(cells, push):
            c.y += float(py)
            c.x += float(px)
