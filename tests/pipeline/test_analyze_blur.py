"""``deepscope analyze`` on blurred fields (issue 31): ``Count_Nuclei`` is the counter's estimate on images the QC
finds blurred (and the counter's domain check accepts), the objects' count elsewhere; the table says which
(``Count_Nuclei_Method``) and keeps the objects' count; the report shows in_domain and the flags."""

from __future__ import annotations

import warnings
from types import SimpleNamespace as NS

import numpy as np
import pandas as pd
import pytest

from deepscope.errors import ConfigError
from deepscope.pipeline import Pipeline, default_pipeline
from deepscope.pipeline.steps import route_count
from deepscope.report.qc import BLUR_SLOPE

NAN = float("nan")


def _counter(**result):
    calls = []

    def count(step, image):
        calls.append(step)
        return NS(**{"count": 81.6, "low": 78.9, "high": 84.4, "method": "density", "in_domain": True, **result})

    return count, calls


@pytest.mark.parametrize("slope, result, method", [
    (BLUR_SLOPE - 0.8, {}, "counter"),
    (BLUR_SLOPE, {}, "counter"),                          # at the threshold: blurred
    (BLUR_SLOPE + 0.8, {}, "objects"),                    # in focus: the counter does not run
    (NAN, {}, "objects"),                                 # no quality measure (a made channel)
    (BLUR_SLOPE - 0.8, {"in_domain": False}, "objects"),  # the counter's domain check refuses the image
    (BLUR_SLOPE - 0.8, {"method": "instances"}, "objects"),  # its generalist fallback: not the counter's own count
    (BLUR_SLOPE - 0.8, {"in_domain": None}, "counter"),   # a counter without a domain check
])
def test_route_count_takes_the_counter_on_blurred_images_in_its_domain(slope, result, method):
    count, calls = _counter(**result)
    r = route_count(NS(objects="Nuclei"), 62, np.zeros((4, 4)), slope=slope, count=count)
    assert r["Count_Nuclei_Method"] == method and r["Count_Nuclei_Objects"] == 62
    assert r["Count_Nuclei"] == (82 if method == "counter" else 62) and isinstance(r["Count_Nuclei"], int)
    assert bool(calls) == bool(slope <= BLUR_SLOPE)  # the counter runs on blurred images only
    assert np.isnan(r["Count_Nuclei_Counter"]) != bool(calls)
    assert (r["Count_Nuclei_Low"], r["Count_Nuclei_High"]) == (78.9, 84.4) if method == "counter" else \
        np.isnan(r["Count_Nuclei_Low"]) and np.isnan(r["Count_Nuclei_High"])


def test_the_pipeline_step_and_default_analysis():
    p = default_pipeline(["/data"], model="otsu-watershed")
    step = p.steps[1]
    assert (step.kind, step.model, step.objects, step.name) == ("count", "count-bbbc005", "Nuclei", "Nuclei")
    p = default_pipeline(["/data"], model="otsu-watershed", counter="objects")
    assert (p.steps[1].model, p.steps[1].model_refs) == ("objects", ())
    spec = {"inputs": {"paths": ["/data"]}, "steps": [{"segment": {"model": "otsu-watershed"}},
                                                       {"count": {"model": "count-bbbc005", "objects": "Nuclei"}}]}
    assert Pipeline.from_dict(spec).steps[1].name == "Nuclei"
    spec["steps"][1]["count"]["name"] = "Cells"
    with pytest.raises(ConfigError, match="gives the column Count_Nuclei; leave out name"):
        Pipeline.from_dict(spec)


@pytest.fixture(scope="module")
def blurred_run(tmp_path_factory):
    """One synthetic BBBC005-like field (60 nuclei, 520 x 696) in focus (F1) and most blurred (F48)."""
    pytest.importorskip("torch")
    from deepscope.data.synth import generate_field, image_name
    from deepscope.io import write_tiff
    from deepscope.pipeline import run_pipeline

    d = tmp_path_factory.mktemp("blur") / "images"
    d.mkdir()
    field = generate_field(60, blurs=(1, 48), stains=1, seed=60)
    for blur, row in ((1, 0), (48, 15)):
        write_tiff(d / image_name(60, blur, 1, 1, row=row, column=17), field.image(1, blur))
    out = d.parent / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_pipeline(default_pipeline([d], model="otsu-watershed", pattern="bbbc005", overlays=False), out, jobs=0)
    return out, [str(w.message) for w in caught]


def test_analyze_counts_the_blurred_field_with_the_counter_and_says_so(blurred_run):
    out, messages = blurred_run
    images = pd.read_csv(out / "images.csv").sort_values("Metadata_blur")
    nuclei = pd.read_csv(out / "Nuclei.csv")
    assert list(images["Metadata_blur"]) == [1, 48] and (images["status"] == "ok").all()
    assert list(images["Count_Nuclei_Method"]) == ["objects", "counter"]
    assert list(images["Count_Nuclei_Objects"]) == [int((nuclei["ImageNumber"] == n).sum())
                                                    for n in images["ImageNumber"]]  # the objects measured
    f1, f48 = images.iloc[0], images.iloc[1]
    assert f1["Count_Nuclei"] == f1["Count_Nuclei_Objects"] and np.isnan(f1["Count_Nuclei_Counter"])
    assert abs(f48["Count_Nuclei"] - 60) <= 4 and f48["Count_Nuclei_Low"] <= f48["Count_Nuclei"] <= \
        f48["Count_Nuclei_High"]
    assert (images["Model_Count_Nuclei"] == "count-bbbc005").all()
    assert any("1 of 2 images look blurred" in m and "Count_Nuclei_Method = counter" in m for m in messages), messages


def test_analyze_report_shows_in_domain_the_count_method_and_every_flag(blurred_run, tmp_path):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepscope.report import load_results, write_report

    run = tmp_path / "run"
    shutil.copytree(blurred_run[0], run)
    # as a trained segmenter reports it: the in-focus field out of its domain (what the console warns about)
    t = pq.read_table(run / "images.parquet")
    dom = [0.0 if str(b) == "1" else 1.0 for b in t.column("Metadata_blur").to_pylist()]
    pq.write_table(t.append_column("InDomain_Nuclei", pa.array(dom)), run / "images.parquet")
    res = load_results(run)
    im = res.images.sort_values("Metadata_blur")
    assert list(im["in_domain"]) == [False, True] and list(im["count_method"]) == ["objects", "counter"]
    html = write_report(run).read_text()
    table = html[html.index("<tbody>"):html.index("</tbody>")]
    for text in ("in domain", "count from", "Count_Nuclei_Objects"):
        assert text in html, text
    rows = {("F1" if "_F1_" in r else "F48"): r for r in table.split("</tr>") if "SIMCEP" in r}
    assert ">counter<" in rows["F48"] and "blurred (slope" in rows["F48"] and ">yes<" in rows["F48"]
    assert ">objects<" in rows["F1"] and "out of domain" in rows["F1"] and ">no<" in rows["F1"]
