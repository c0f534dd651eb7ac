"""The report's figures (matplotlib, drawn off-screen) as PNG bytes.

Each function takes the report's tables and returns PNG bytes, or None when there is nothing to
draw (no wells, no objects ...). Figures are small (about 6 x 3.5 inches at 100 dpi) so that a
report of a large run stays a few megabytes.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plate_heatmap", "count_distributions", "size_distributions", "quality_scatter", "count_vs_truth",
           "figure_png", "well_position", "track_colours", "tracks_over_frame", "lineage_trees", "value_histograms",
           "LINEAGE_TRACKS"]

_WELL = re.compile(r"^([A-Pa-p])(\d{1,2})$")
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (then closed).

    The layout is fitted once (``tight_layout``: titles, labels, colour bars and the in-axes legends of these
    figures) and the figure drawn once; ``bbox_inches="tight"`` would draw it twice, ~20% of a report's time."""
    import warnings

    plt = _pyplot()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not compatible with tight_layout": drawn as laid out
        fig.tight_layout(pad=0.4)
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def well_position(well: Any) -> tuple[int, int] | None:
    """(row, column) 0-based of a well name such as ``B07``, or None.

    Examples
    --------
    >>> well_position("B07"), well_position("x")
    ((1, 6), None)
    """
    m = _WELL.match(str(well)) if well is not None else None
    if not m:
        return None
    return ord(m.group(1).upper()) - ord("A"), int(m.group(2)) - 1


def plate_heatmap(images: pd.DataFrame, *, value: str = "count", label: str = "mean count per image") -> bytes | None:
    """Plate map: the mean of ``value`` per well (96- or 384-well layout); None without wells."""
    pos = [well_position(w) for w in images["well"]]
    if not any(p is not None for p in pos):
        return None
    plt = _pyplot()
    df = images.assign(_pos=pos)
    df = df[df["_pos"].notna() & df["ok"]]
    rows = max(p[0] for p in df["_pos"]) + 1 if len(df) else 8
    cols = max(p[1] for p in df["_pos"]) + 1 if len(df) else 12
    n_rows, n_cols = (8, 12) if rows <= 8 and cols <= 12 else (16, 24)
    grid = np.full((n_rows, n_cols), np.nan)
    failed = np.zeros((n_rows, n_cols), int)
    for p, g in df.groupby("_pos")[value]:
        grid[p] = float(np.nanmean(g.to_numpy(dtype=float))) if g.notna().any() else np.nan
    for p in [well_position(w) for w in images.loc[~images["ok"], "well"]]:
        if p is not None and p[0] < n_rows and p[1] < n_cols:
            failed[p] += 1
    fig, ax = plt.subplots(figsize=(6.4, 4.0 if n_rows == 8 else 4.6))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="equal")
    ax.set_xticks(range(n_cols), [str(c + 1) for c in range(n_cols)], fontsize=7)
    ax.set_yticks(range(n_rows), [chr(ord("A") + r) for r in range(n_rows)], fontsize=7)
    ax.tick_params(length=0)
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v) and n_cols <= 12:
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v < np.nanmean(grid) else "black")
        if failed[r, c]:
            ax.text(c, r + 0.35, "x", ha="center", va="center", fontsize=8, color="red", fontweight="bold")
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    ax.set_title(f"Plate map: {label} (grey: no images, red x: failed)", fontsize=9)
    return figure_png(fig)


def _groups(values: pd.Series, by: pd.Series) -> list[tuple[str, np.ndarray]]:
    def key(v: str) -> tuple[int, float | str]:
        try:
            return 0, float(v)
        except ValueError:
            return 1, v

    out = []
    for k in sorted(by.dropna().unique(), key=lambda v: key(str(v))):
        x = values[by == k].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if x.size:
            out.append((str(k), x))
    return out


def _box_strip(ax: Any, groups: list[tuple[str, np.ndarray]], rng: np.random.Generator) -> None:
    ax.boxplot([g for _, g in groups], showfliers=False, widths=0.5, medianprops={"color": "black"})
    for i, (_, g) in enumerate(groups, start=1):
        shown = g if g.size <= 2000 else rng.choice(g, 2000, replace=False)
        ax.scatter(i + rng.uniform(-0.18, 0.18, shown.size), shown, s=8, alpha=0.5,
                   color=_COLORS[(i - 1) % len(_COLORS)], linewidths=0)
    ax.set_xticks(range(1, len(groups) + 1), [k for k, _ in groups], fontsize=8, rotation=30 if len(groups) > 6
                  else 0)


def count_distributions(images: pd.DataFrame, *, condition: str, object_name: str) -> bytes | None:
    """Objects per image, per condition (box plot with every image as a dot)."""
    ok = images[images["ok"]]
    groups = _groups(ok["count"], ok["condition"])
    if not groups:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    _box_strip(ax, groups, np.random.default_rng(0))
    ax.set_ylabel(f"{object_name} per image")
    ax.set_xlabel(condition or "")
    ax.set_title(f"{object_name} per image" + (f" by {condition}" if condition else ""), fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    return figure_png(fig)


def size_distributions(objects: pd.DataFrame, *, condition: str, object_name: str, value: str = "area",
                       xlabel: str = "area (pixels)") -> bytes | None:
    """Object size distributions per condition (step histograms on a shared log-spaced axis): the ``value`` column
    (``area`` in pixels; ``volume`` in um^3 for z-stacks)."""
    if objects.empty or value not in objects:
        return None
    groups = _groups(objects[value], objects["condition"])
    if not groups:
        return None
    plt = _pyplot()
    allv = np.concatenate([g for _, g in groups])
    lo = max(float(allv.min()), 1.0) if value == "area" else max(float(allv.min()), 1e-3)
    hi = max(float(allv.max()), 2 * lo)
    bins = np.geomspace(lo, hi * 1.01, 40)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for i, (k, g) in enumerate(groups):
        ax.hist(g, bins=bins, histtype="step", density=True, linewidth=1.5, color=_COLORS[i % len(_COLORS)],
                label=f"{k} (n={g.size}, median {np.median(g):.0f})")
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{object_name} size" + (f" by {condition}" if condition else ""), fontsize=9)
    return figure_png(fig)


def quality_scatter(images: pd.DataFrame) -> bytes | None:
    """Blur (power-log-log slope) against saturation per image; flagged images in red."""
    ok = images[images["ok"] & images["slope"].notna()]
    if ok.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    flagged = ok["flags"].astype(str) != ""
    sat = ok["saturation"].fillna(0.0).to_numpy(dtype=float)
    ax.scatter(ok.loc[~flagged, "slope"], sat[~flagged.to_numpy()], s=14, alpha=0.7, label="ok", color="#1f77b4")
    if flagged.any():
        ax.scatter(ok.loc[flagged, "slope"], sat[flagged.to_numpy()], s=22, color="#d62728", label="flagged")
    ax.set_xlabel("power-log-log slope (lower = blurrier)")
    ax.set_ylabel("% pixels at the maximum")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Per-image quality", fontsize=9)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def count_vs_truth(images: pd.DataFrame, *, object_name: str) -> bytes | None:
    """Measured against true count (from the file names) with the identity line; None without truth."""
    ok = images[images["ok"] & images["true_count"].notna() & images["count"].notna()]
    if ok.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    t = ok["true_count"].to_numpy(dtype=float)
    c = ok["count"].to_numpy(dtype=float)
    ax.scatter(t, c, s=16, alpha=0.7, label=f"{object_name} (segmented)")
    if "model_count" in ok:
        ax.scatter(t, ok["model_count"].to_numpy(dtype=float), s=16, alpha=0.7, marker="s", label="count model")
    top = float(np.nanmax(np.concatenate([t, c]))) * 1.05 + 1
    ax.plot([0, top], [0, top], color="grey", linewidth=1, linestyle="--", label="measured = true")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("true count (file name)")
    ax.set_ylabel("measured count")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"Measured vs true count (MAE {np.mean(np.abs(c - t)):.2f})", fontsize=9)
    return figure_png(fig)


#: Most tracks a lineage figure draws (the largest trees first); the tables have every track.
LINEAGE_TRACKS = 120


def track_colours(ids: Any) -> np.ndarray:
    """RGB (N, 3) floats in [0, 1]: one colour per track id (matplotlib's tab20, cycled), the same in every figure.

    Examples
    --------
    >>> c = track_colours([1, 2, 21])
    >>> c.shape, bool((c[0] == c[2]).all()), bool((c[0] == c[1]).all())
    ((3, 3), True, False)
    """
    plt = _pyplot()
    table = np.asarray(plt.get_cmap("tab20").colors, dtype=float)
    return table[(np.asarray(ids, dtype=np.int64) - 1) % len(table)]


def tracks_over_frame(labels: np.ndarray, objects: pd.DataFrame, *, frame: int, title: str) -> bytes | None:
    """The objects of one frame (label = track id, filled in their track's colour) with every track's path up to
    that frame (centres from the per-object table, ``track_id, frame, y_px, x_px``) in the same colour."""
    if labels.ndim != 2 or objects.empty:
        return None
    plt = _pyplot()
    lab = np.asarray(labels, dtype=np.int64)
    rgb = np.full(lab.shape + (3,), 0.08)
    fg = lab > 0
    rgb[fg] = 0.25 + 0.5 * track_colours(lab[fg])
    h, w = lab.shape
    fig, ax = plt.subplots(figsize=(5.2, 5.2 * h / w if w else 5.2))
    ax.imshow(rgb, interpolation="nearest")
    upto = objects[objects["frame"] <= frame].sort_values(["track_id", "frame"])
    for k, g in upto.groupby("track_id"):
        colour = track_colours([k])[0]
        ax.plot(g["x_px"], g["y_px"], color=colour, linewidth=1.4)
        last = g.iloc[-1]
        if int(last["frame"]) == frame:
            ax.plot(last["x_px"], last["y_px"], "o", color=colour, markersize=3, markeredgecolor="white",
                    markeredgewidth=0.5)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return figure_png(fig)


def _tree_layout(tracks: np.ndarray) -> tuple[list[list[int]], dict[int, float]]:
    """Trees of an ``L B E P`` table (largest first, ties by first frame) and each track's row: leaves on
    consecutive rows, a mother midway between her daughters."""
    ids = {int(r[0]) for r in tracks}
    children: dict[int, list[int]] = {}
    for lab, b, _, p in sorted(tracks.tolist(), key=lambda r: (r[1], r[0])):
        if p and int(p) in ids:
            children.setdefault(int(p), []).append(int(lab))
    start = {int(r[0]): int(r[1]) for r in tracks}
    roots = [int(r[0]) for r in tracks if not (r[3] and int(r[3]) in ids)]

    def members(k: int) -> list[int]:
        out, todo = [], [k]
        while todo:
            n = todo.pop()
            out.append(n)
            todo += children.get(n, [])
        return out

    trees = sorted((members(r) for r in roots), key=lambda m: (-len(m), start[m[0]], m[0]))
    row: dict[int, float] = {}
    next_row = 0.0

    def place(k: int) -> float:
        nonlocal next_row
        kids = children.get(k, [])
        if not kids:
            row[k] = next_row
            next_row += 1.0
        else:
            ys = [place(c) for c in kids]
            row[k] = float(np.mean(ys))
        return row[k]

    for tree in trees:
        place(tree[0])
        next_row += 0.6  # a little space between trees
    return trees, row


def lineage_trees(tracks: np.ndarray, *, frame_interval: float | None = None, title: str = "Lineage",
                  max_tracks: int = LINEAGE_TRACKS) -> tuple[bytes | None, int]:
    """Lineage trees of a CTC ``L B E P`` table: each track a horizontal bar from its first to its last frame
    (x = time), a mother joined to her daughters (solid) and a track to its continuation after a gap (dotted).

    Returns the PNG (None for an empty table) and the number of tracks drawn (the largest trees first, at most
    ``max_tracks`` tracks).
    """
    tracks = np.asarray(tracks, dtype=np.int64).reshape(-1, 4)
    if not len(tracks):
        return None, 0
    trees, _ = _tree_layout(tracks)
    shown: list[int] = []
    for tree in trees:
        if shown and len(shown) + len(tree) > max_tracks:
            break
        shown += tree
    keep = set(shown)
    sub = tracks[np.isin(tracks[:, 0], list(keep))]
    _, row = _tree_layout(sub)
    span = {int(r[0]): (int(r[1]), int(r[2])) for r in sub}
    parent = {int(r[0]): int(r[3]) for r in sub if r[3] and int(r[3]) in keep}
    n_kids: dict[int, int] = {}
    for p in parent.values():
        n_kids[p] = n_kids.get(p, 0) + 1
    dt = frame_interval if frame_interval else 1.0
    plt = _pyplot()
    height = float(max(row.values())) + 1 if row else 1.0
    fig, ax = plt.subplots(figsize=(6.4, min(2.0 + 0.13 * height, 12.0)))
    for k, (b, e) in span.items():
        colour = track_colours([k])[0]
        ax.plot([b * dt, (e + 1) * dt], [row[k], row[k]], color=colour, linewidth=2.2, solid_capstyle="butt")
        if k in parent:
            p = parent[k]
            x = (span[p][1] + 1) * dt
            style = "-" if n_kids[p] == 2 else ":"
            ax.plot([x, x, b * dt], [row[p], row[k], row[k]], color="#555555", linewidth=0.8, linestyle=style)
        if len(span) <= 60:
            ax.text(b * dt, row[k] - 0.25, str(k), fontsize=6, color="#333333")
    ax.set_ylim(height, -1)
    ax.set_yticks([])
    ax.set_xlabel("time" if frame_interval else "frame")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    return figure_png(fig), len(span)


def value_histograms(groups: list[tuple[str, np.ndarray]], *, xlabel: str, title: str) -> bytes | None:
    """Step histograms of one value per group (a movie) on shared bins, with n and the median in the legend;
    None when no group has a finite value."""
    groups = [(k, v[np.isfinite(v)]) for k, v in ((k, np.asarray(v, dtype=float)) for k, v in groups)]
    groups = [(k, v) for k, v in groups if v.size]
    if not groups:
        return None
    plt = _pyplot()
    allv = np.concatenate([v for _, v in groups])
    lo, hi = float(allv.min()), float(allv.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, min(30, max(5, allv.size // 2)) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for i, (k, v) in enumerate(groups):
        ax.hist(v, bins=bins, histtype="step", linewidth=1.5, color=_COLORS[i % len(_COLORS)],
                label=f"{k} (n={v.size}, median {np.median(v):.3g})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("tracks")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    return figure_png(fig)
