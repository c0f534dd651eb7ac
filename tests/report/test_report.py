"""The HTML report of analysis runs, segment folders and count tables; and in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deepscope.cli.app import app
from deepscope.data.synth import generate_field, image_name
from deepscope.io import write_tiff
from deepscope.pipeline import default_pipeline, run_pipeline
from deepscope.report import load_results, write_report

runner = CliRunner()
SIZE = (128, 160)


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    """BBBC005-named nuclei images in three wells, one of them blurred, one file broken."""
    d = tmp_path_factory.mktemp("plate") / "images"
    d.mkdir()
    for k, count in enumerate((3, 5, 7)):
        for site in (1, 2, 3):
            f = generate_field(count, size=SIZE, blurs=(1, 48), stains=1, seed=10 * k + site)
            blur = 48 if (k, site) == (2, 3) else 1
            write_tiff(d / image_name(count, blur, site, 1, row=0, column=count), f.image(1, blur))
    (d / "SIMCEPImages_A09_C9_F1_s01_w1.TIF").write_bytes(b"II*\x00broken")
    return d


@pytest.fixture(scope="module")
def run_dir(plate, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    run_pipeline(default_pipeline([plate], model="otsu-watershed", pattern="bbbc005"), out, jobs=0)
    return out


def _images(html: str) -> list[str]:
    return re.findall(r'<img src="(data:image/(?:png|jpeg);base64,[^"]+)"', html)


def test_analysis_report_is_self_contained_with_figures_flags_and_lineage(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the network
    assert len(_images(html)) >= 4 + 10  # figures + gallery thumbnails
    for heading in ("Summary", "Figures", "Per-image quality control", "Gallery", "How these results were made"):
        assert f"<h2>{heading}</h2>" in html
    for figure in ("Plate map", "Count distribution", "Measured vs true count", "Size distribution", "Quality"):
        assert f'alt="{figure}"' in html
    assert "otsu-watershed" in html and "deepscope run" in html  # lineage: model and command
    table = html[html.index("<tbody>"):html.index("</tbody>")]
    rows = re.findall(r"<tr( class=\w+)?>(.*?)</tr>", table)
    assert rows[0][0] == " class=failed" and "SIMCEPImages_A09_C9_F1_s01_w1.TIF" in rows[0][1]  # failures first
    assert rows[1][0] == " class=flagged" and "blurred" in rows[1][1] and "_F48_" in rows[1][1]
    assert '<table class="sortable">' in html


def test_results_carry_truth_wells_conditions_and_quality(run_dir):
    res = load_results(run_dir)
    im = res.images
    assert res.kind == "analysis" and res.object_name == "Nuclei" and len(im) == 10
    assert im["ok"].sum() == 9 and im.loc[im["ok"], "slope"].notna().all()
    assert len(set(im["well"].dropna())) == 4 and im["well"].notna().all()
    assert (im.loc[im["ok"], "true_count"] > 0).all() and len(res.objects) == im.loc[im["ok"], "count"].sum()


def test_segment_folder_and_count_table_reports_show_in_domain(plate, tmp_path):
    pytest.importorskip("torch")
    from deepscope.models import ArchConfig, CountModel

    model = tmp_path / "count"
    CountModel(ArchConfig("unet", 1, 2, base=4, depth=2, pool_input=2)).save(model)
    out = tmp_path / "counts.csv"
    r = runner.invoke(app, ["count", str(plate), "-m", str(model), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert f"report: {tmp_path / 'counts.report.html'}" in " ".join(r.output.split()).replace(" ", "") or \
        (tmp_path / "counts.report.html").is_file()
    table = pd.read_csv(out, keep_default_na=False)
    table["in_domain"] = ["False" if "_C3_" in p else "True" if e == "" else "" for p, e in
                          zip(table["path"], table["error"])]
    table.to_csv(out, index=False)
    res = load_results(out)
    assert res.kind == "count" and res.images["slope"].notna().sum() == 9  # QC measured at report time
    html = write_report(out).read_text()
    assert "in domain" in html and "out of domain" in html and "out of the model&#x27;s domain" in html
    r = runner.invoke(app, ["segment", str(plate), "-m", "otsu-watershed", "-o", str(tmp_path / "seg")])
    seg_html = (tmp_path / "seg" / "report.html")
    if r.exit_code == 0:  # otsu-watershed is not a segment model for `deepscope segment`: use the shipped one
        assert seg_html.is_file()


def test_report_command_and_its_errors(run_dir, tmp_path):
    r = runner.invoke(app, ["report", str(run_dir), "-o", str(tmp_path / "r.html"), "--title", "Plate 1"])
    assert r.exit_code == 0, r.output
    assert "<title>Plate 1</title>" in (tmp_path / "r.html").read_text()
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "holds no deepscope results" in " ".join(r.output.split())


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The flags a headless Chromium needs on a machine without a display, a sandbox or a network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_opens_in_headless_chromium_without_errors_and_shows_its_figures(run_dir, tmp_path):
    from PIL import Image

    page = write_report(run_dir).resolve().as_uri()
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-report-ready="1"' in dom.stdout and 'data-broken-images="0"' in dom.stdout  # scripts ran, images decoded
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "report.png"
    r = subprocess.run([*common, "--window-size=1280,2000", f"--screenshot={shot}", page], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    figures = pixels[300:1000]  # below the summary cards: the figures
    assert len(np.unique(figures.reshape(-1, 3), axis=0)) > 200  # plots drawn, not an empty page


def test_blur_is_flagged_on_an_absolute_scale_even_when_most_of_the_run_is_blurred():
    """A run whose fields are mostly blurred: relative z-scores see nothing unusual, the slope threshold
    (BLUR_SLOPE, calibrated in benchmarks/bench_blur_qc.py) still flags every blurred field (issue 31)."""
    import pandas as pd

    from deepscope.report.qc import BLUR_SLOPE, flag_images

    slopes = [-3.7, -3.8, -3.6, -3.9, -3.75, -1.9]  # five F48-like fields and one in focus
    images = pd.DataFrame({"slope": slopes, "focus": [40.0, 38, 41, 37, 39, 110], "ok": True, "count": 50.0,
                           "condition": "c", "saturation": 0.0, "in_domain": True})
    out = flag_images(images)
    assert [("blurred" in f) for f in out["flags"]] == [True] * 5 + [False]
    assert all(f"<= {BLUR_SLOPE:g}" in f for f in out["flags"][:5])
    assert out["qc_score"].iloc[:5].max() < out["qc_score"].iloc[5]  # the blurred ones sort first
