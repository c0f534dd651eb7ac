"""The report as one self-contained HTML page: inline CSS and script, figures and thumbnails as data URIs.

Nothing is loaded from the network or from other files, so the page can be mailed, archived with
the run, or opened on a machine without deepscope.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.report.qc import BLUR_SLOPE

if TYPE_CHECKING:
    import pandas as pd

    from deepscope.report.data import Results

__all__ = ["render_html", "render_track_html", "TABLE_ROWS", "GALLERY_SIZE"]

#: Rows of the per-image table in the page (the tables in the folder have all).
TABLE_ROWS = 500
#: Thumbnails in the gallery: the worst images by quality first.
GALLERY_SIZE = 36

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3a5f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;font-size:13px;opacity:.85}main{padding:8px 24px 40px;max-width:1300px}
h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #ddd;border-radius:6px;
padding:8px 14px;min-width:120px}.card b{display:block;font-size:20px}.card span{font-size:12px;color:#555}
.card.warn b{color:#b45309}.card.bad b{color:#b91c1c}
.figs{display:flex;flex-wrap:wrap;gap:12px}.figs figure{margin:0;background:#fff;border:1px solid #ddd;
border-radius:6px;padding:6px}.figs img{max-width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#555;max-width:620px}
table{border-collapse:collapse;font-size:12px;background:#fff}th,td{border:1px solid #ddd;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#eef2f7;cursor:pointer;position:sticky;top:0;white-space:nowrap}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged td{background:#fff4e5}tr.failed td{background:#fde8e8}.scroll{max-height:520px;overflow:auto;
border:1px solid #ddd}.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:10px}
.gallery figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:4px}
.gallery img{width:100%;height:auto;display:block}.gallery figcaption{font-size:11px;word-break:break-all}
.flag{color:#b45309;font-weight:600}dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px;
font-size:13px}dt{color:#555}dd{margin:0;word-break:break-all}code{font-size:12px}
.note{font-size:12px;color:#555}
"""

_JS = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img'), broken = 0;
  imgs.forEach(function (im) { if (!im.complete || im.naturalWidth === 0) { broken += 1; } });
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-broken-images', String(broken));
  document.body.setAttribute('data-report-ready', '1');
});
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('th');
  heads.forEach(function (th, col) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains('asc');
      heads.forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _thumbnail(path: str, size: int = 360) -> str | None:
    """A JPEG data URI of an overlay image, at most ``size`` pixels wide, or None if it cannot be read."""
    from PIL import Image as PILImage

    from scipy.ndimage import maximum_filter

    try:
        with PILImage.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
            # outlines are 1 pixel wide: thicken the coloured pixels so they survive the shrinking
            coloured = (rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)) > 100
            if coloured.any() and max(rgb.shape[:2]) > size:
                grown = maximum_filter(np.where(coloured[..., None], rgb, 0), size=(3, 3, 1))
                rgb = np.where(maximum_filter(coloured, size=3)[..., None], grown, rgb)
            im = PILImage.fromarray(np.ascontiguousarray(rgb))
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=85)
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v: Any, digits: int = 3) -> tuple[str, str]:
    """(shown text, sort value) of a cell."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "", ""
    if isinstance(v, (bool, np.bool_)):
        return ("yes" if v else "no"), str(int(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v)}", f"{int(v)}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isinf(f):
            return ("-inf" if f < 0 else "inf"), ("-1e308" if f < 0 else "1e308")
        text = f"{f:.{digits}g}" if abs(f) < 1e5 else f"{f:.0f}"
        return text, repr(f)
    return str(v), str(v)


def _table(df: pd.DataFrame, columns: list[tuple[str, str]], *, row_class: Any = None, digits: int = 3) -> str:
    head = "".join(f"<th>{_e(label)}</th>" for _, label in columns)
    body = []
    for i, (_, r) in enumerate(df.iterrows()):
        cells = []
        for col, _ in columns:
            text, sort = _fmt(r.get(col), digits)
            num = isinstance(r.get(col), (int, float, np.integer, np.floating)) and not isinstance(r.get(col), bool)
            cells.append(f'<td{" class=num" if num else ""} data-v="{_e(sort)}">{_e(text)}</td>')
        cls = row_class(r) if row_class else ""
        body.append(f'<tr{f" class={cls}" if cls else ""}>{"".join(cells)}</tr>')
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _cards(res: Results, images: pd.DataFrame) -> str:
    ok = images["ok"]
    n_flagged = int(((images["flags"] != "") & ok).sum())
    cards: list[tuple[Any, str, str]] = [
        (len(images), "images" if res.kind != "analysis" else "image sets", ""),
        (int((~ok).sum()), "failed", "bad" if (~ok).any() else "")]
    if res.kind != "count":
        n_obj = res.summary.get("n_objects")
        cards.append((n_obj if n_obj is not None else int(images.loc[ok, "count"].sum()), f"{res.object_name}", ""))
    counts = images.loc[ok, "count"].to_numpy(dtype=float)
    if np.isfinite(counts).any():
        cards.append((f"{np.nanmean(counts):.1f}", f"mean {res.object_name.lower()} per image", ""))
    cards.append((n_flagged, "flagged by QC", "warn" if n_flagged else ""))
    out = _n_out_of_domain(images["in_domain"])
    if out is not None:
        cards.append((out, "out of the model's domain", "warn" if out else ""))
    truth = images[ok & images["true_count"].notna() & images["count"].notna()]
    if len(truth):
        mae = float(np.mean(np.abs(truth["count"].astype(float) - truth["true_count"].astype(float))))
        cards.append((f"{mae:.2f}", "MAE vs true count", ""))
    return _card_row(cards)


def _card_row(cards: list[tuple[Any, str, str]]) -> str:
    """Summary cards ``(value, label, css class: "" | "warn" | "bad")``."""
    return '<div class="cards">' + "".join(
        f'<div class="card {cls}"><b>{_e(v)}</b><span>{_e(label)}</span></div>' for v, label, cls in cards) + "</div>"


def _n_out_of_domain(in_domain: pd.Series) -> int | None:
    """How many rows a model's domain check said no to; None when no check ran."""
    known = in_domain.map(lambda v: isinstance(v, (bool, np.bool_)))
    if not known.any():
        return None
    return int((known & ~in_domain.map(lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else True)).sum())


def _figures_html(figures: list[tuple[str, str, bytes]]) -> str:
    """The figures ``(title, caption, png)`` as inline images (alt = title), or a note when there are none."""
    figs = "".join(f'<figure><img src="{_png_uri(png)}" alt="{_e(t)}"><figcaption><b>{_e(t)}</b>. {_e(c)}'
                   f"</figcaption></figure>" for t, c, png in figures)
    return figs or '<p class="note">Nothing to plot.</p>'


def _lineage(res: Results) -> str:
    lin = res.lineage
    items: list[tuple[str, str]] = [("source", str(res.source)), ("kind", res.kind)]
    for key in ("pipeline", "pipeline_hash", "status", "sessions", "created", "seconds"):
        if res.summary.get(key) not in (None, ""):
            items.append((key.replace("_", " "), str(res.summary[key])))
    if lin:
        items += [("command", f"deepscope {lin.get('command')}"), ("run id", str(lin.get("run_id"))),
                  ("recorded", str(lin.get("created"))), ("by", f"{lin.get('user')}@{lin.get('host')}"),
                  ("deepscope", str(lin.get("deepscope_version"))),
                  ("software", ", ".join(f"{k} {v}" for k, v in (lin.get("software") or {}).items())),
                  ("input files", str(lin.get("n_inputs")))]
        for m in lin.get("models") or []:
            items.append(("model", f"{m.get('name')}  (weights SHA-256 {str(m.get('sha256'))[:16]}...)"))
    out = "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"
    if lin.get("params"):
        out += ("<details><summary>parameters</summary><pre><code>"
                + _e(json.dumps(lin["params"], indent=1, default=str)[:20000]) + "</code></pre></details>")
    if not lin:
        out += '<p class="note">No lineage record was found beside the tables.</p>'
    else:
        out += (f'<p class="note">From the lineage record of {_e(lin.get("record_of"))}; '
                f'<code>deepscope lineage {_e(res.source)}</code> prints it in full.</p>')
    return out


def _gallery(images: pd.DataFrame) -> str:
    shown = images[images["overlay"].astype(str) != ""].sort_values("qc_score", kind="stable")
    if shown.empty:
        return '<p class="note">No overlays in this folder (segment with overlays, or analyze, to get them).</p>'
    if len(shown) > GALLERY_SIZE:  # the worst ones, and a few of the best for comparison
        shown = shown.iloc[list(range(GALLERY_SIZE - 6)) + list(range(len(shown) - 6, len(shown)))]
    figs = []
    for _, r in shown.iterrows():
        uri = _thumbnail(str(r["overlay"]))
        if uri is None:
            continue
        flags = f'<br><span class="flag">{_e(r["flags"])}</span>' if r["flags"] else ""
        count = _fmt(r["count"])[0]
        true = f", true {_fmt(r['true_count'])[0]}" if isinstance(r["true_count"], float) and not math.isnan(
            r["true_count"]) else ""
        figs.append(f'<figure><img src="{uri}" alt="{_e(r["name"])}" loading="lazy">'
                    f'<figcaption>{_e(r["name"])}<br>count {_e(count)}{_e(true)}, QC score '
                    f'{_e(_fmt(r["qc_score"], 2)[0])}{flags}</figcaption></figure>')
    return ('<p class="note">Overlays sorted by QC score, worst first (failed, out of domain, saturated, blurred).'
            '</p><div class="gallery">' + "".join(figs) + "</div>")


def render_html(res: Results, images: pd.DataFrame, figures: list[tuple[str, str, bytes]], *, title: str) -> str:
    """The page: summary cards, lineage, figures, the per-image QC table, the overlay gallery, the files.

    ``images`` is :func:`deepscope.report.qc.flag_images` of ``res.images``; ``figures`` are
    ``(title, caption, png)``.
    """
    figs = _figures_html(figures)
    order = images.assign(_failed=~images["ok"], _flagged=images["flags"] != "").sort_values(
        ["_failed", "_flagged", "qc_score"], ascending=[False, False, True], kind="stable")
    shown = order.head(TABLE_ROWS)
    cols = [("name", "image"), ("condition", res.condition or "condition"), ("well", "well"),
            ("count", f"{res.object_name} count")]
    if images["true_count"].notna().any():
        cols.append(("true_count", "true count"))
    if "count_method" in images:
        cols.append(("count_method", "count from"))
    if "model_count" in images:
        cols.append(("model_count", "model count"))
    cols += [("focus", "focus score"), ("slope", "blur: power-log-log slope"), ("saturation", "% at max"),
             ("qc_score", "QC score")]
    if res.kind == "analysis" or images["in_domain"].map(lambda v: isinstance(v, (bool, np.bool_))).any():
        cols.append(("in_domain", "in domain"))  # an analysis always shows it (blank: no model checked)
    cols += [("flags", "flags"), ("error", "error")]

    def row_class(r: Any) -> str:
        return "failed" if not r["ok"] else "flagged" if r["flags"] else ""

    more = (f'<p class="note">The {TABLE_ROWS} rows to look at first of {len(images)}; the tables in the folder '
            "have every row.</p>" if len(images) > TABLE_ROWS else "")
    qc_note = ("" if images["slope"].notna().any() else
               '<p class="note">No quality measurements (too many images to read again for the report; deepscope '
               "analyze measures them as it goes).</p>")
    files = "".join(f"<li><code>{_e(t)}</code></li>" for t in res.tables)
    method_note = (f" Count from: <code>counter</code> where the image is blurred and the count model finds it in its "
                   f"domain (the {_e(res.object_name)} objects then undercount), else <code>objects</code>; the "
                   f"objects' count is <code>Count_{_e(res.object_name)}_Objects</code> in the tables."
                   if "count_method" in images else "")
    body = f"""<h2>Summary</h2>{_cards(res, images)}
<h2>Figures</h2><div class="figs">{figs}</div>
<h2>Per-image quality control</h2>
<p class="note">Flags: failed images; blurred (power-log-log slope at or below {BLUR_SLOPE:g}, whatever the rest of the
run looks like, or slope or log focus score far below the run's median, robust z &le; -3);
saturated (more than 1% of pixels at the maximum); unusual count (robust z beyond &plusmn;3.5 within the condition);
out of the model's domain (in domain: no; the console warned about these images too). Blank in domain: no model
checked the image.{method_note} Click a column to sort.</p>{qc_note}{more}
<div class="scroll">{_table(shown, cols, row_class=row_class)}</div>
<h2>Gallery</h2>{_gallery(images)}
<h2>How these results were made</h2>{_lineage(res)}
<h2>Files</h2><ul>{files}</ul>"""
    return _page(title, res.source, body)


def _page(title: str, source: Any, body: str) -> str:
    """The self-contained HTML page around ``body``: styles, header (title, source, when, deepscope version),
    script."""
    import deepscope

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body><header><h1>{_e(title)}</h1><p>{_e(source)} &middot; made {_e(now)} by deepscope {_e(deepscope.__version__)}
</p></header><main>
{body}
</main><script>{_JS}</script></body></html>
"""


def render_track_html(res: Results, figures: list[tuple[str, str, bytes]], *, title: str) -> str:
    """The page of a ``deepscope track`` folder: summary cards, the per-movie table (tracks, divisions, mean speed,
    cell-cycle time, ``in_domain``), the figures (:func:`deepscope.report.tracks.track_figures`), lineage, files."""
    movies = res.images
    ok = movies["ok"]
    speeds = movies.loc[ok, "mean_speed"].to_numpy(dtype=float)
    units = sorted(set(movies.loc[ok, "speed_unit"].astype(str)) - {""})
    cards: list[tuple[Any, str, str]] = [
        (len(movies), "movies", ""), (int((~ok).sum()), "failed", "bad" if (~ok).any() else ""),
        (res.summary.get("n_tracks", 0), "tracks", ""), (res.summary.get("n_divisions", 0), "divisions", "")]
    if np.isfinite(speeds).any():
        cards.append((f"{np.nanmean(speeds):.3g}", f"mean track speed ({units[0] if len(units) == 1 else 'mixed'})",
                      ""))
    out = _n_out_of_domain(movies["in_domain"])
    if out is not None:
        cards.append((out, "out of the model's domain", "warn" if out else ""))
    cols = [("name", "movie"), ("frames", "frames"), ("tracks", "tracks"), ("divisions", "divisions"),
            ("objects", "objects"), ("mean_speed", "mean speed"), ("speed_unit", "speed unit"),
            ("median_cycle_time", "median cell-cycle time"), ("diameter", "diameter (px)"),
            ("diameter_source", "diameter from"), ("pixel_size", "pixel size (um)"),
            ("frame_interval", "frame interval"), ("in_domain", "in domain"), ("error", "error")]

    def row_class(r: Any) -> str:
        return "failed" if not r["ok"] else "flagged" if r["in_domain"] is False else ""

    figs = _figures_html(figures)
    files = "".join(f"<li><code>{_e(t)}</code></li>" for t in res.tables)
    cycle_note = ("" if movies["median_cycle_time"].notna().any() else
                  '<p class="note">No cell-cycle time: no cell born by a division divides again within these movies '
                  "(a movie longer than a cell cycle shows them).</p>")
    body = f"""<h2>Summary</h2>{_card_row(cards)}
<h2>Movies</h2>
<p class="note">One row per movie. Tracks and divisions (mothers with two daughters) are counted from each movie's
res_track.txt; mean speed is the mean over its tracks of two frames or more (um where the pixel size is known, per
the frame interval's time unit where it is known, else px and frames); the cell-cycle time is from division to
division. Diameter: the object size every frame was segmented at, from --diameter ("given") or from the movie's
scale check ("scale check": objects cut at the size estimate did not persist from frame to frame); blank where each
frame was segmented at its own estimate ("per frame"), at the model's own scale, or masks were given. In domain:
whether every frame looked like the segmentation model's training images (blank: masks were given, or the model
has no check). Click a column to sort.</p>
<div class="scroll">{_table(movies, cols, row_class=row_class)}</div>
<h2>Figures</h2><div class="figs">{figs}</div>{cycle_note}
<h2>How these results were made</h2>{_lineage(res)}
<h2>Files</h2><ul>{files}</ul>"""
    return _page(title, res.source, body)
