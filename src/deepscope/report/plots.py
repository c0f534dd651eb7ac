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
           "figure_png", "well_position"]

_WELL = re.compile(r"^([A-Pa-p])(\d{1,2})$")
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Any, *, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (then closed)."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
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


def size_distributions(objects: pd.DataFrame, *, condition: str, object_name: str) -> bytes | None:
    """Object area distributions per condition (step histograms on a shared log-spaced axis)."""
    if objects.empty:
        return None
    groups = _groups(objects["area"], objects["condition"])
    if not groups:
        return None
    plt = _pyplot()
    allv = np.concatenate([g for _, g in groups])
    lo, hi = max(float(allv.min()), 1.0), max(float(allv.max()), 2.0)
    bins = np.geomspace(lo, hi * 1.01, 40)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for i, (k, g) in enumerate(groups):
        ax.hist(g, bins=bins, histtype="step", density=True, linewidth=1.5, color=_COLORS[i % len(_COLORS)],
                label=f"{k} (n={g.size}, median {np.median(g):.0f})")
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("area (pixels)")
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
