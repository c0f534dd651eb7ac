"""The shipped hybrid counter: the area gate skips the segmenter only where the hybrid rule would not use it."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.data.synth import generate_field
from deepscope.models import list_models, load_model
from deepscope.tasks.count import area_per_object

pytestmark = pytest.mark.skipif("count-bbbc005" not in [m.name for m in list_models()],
                                reason="the shipped counter is not installed")


@pytest.fixture(scope="module")
def fields():
    return [generate_field(n, stains=(1, 2), blurs=(1, 48), seed=40 + n) for n in (25, 60)]


def test_area_per_object_flat_and_simple():
    assert area_per_object(np.zeros((20, 30, 1), np.float32), 3.0) == 0.0
    img = np.zeros((20, 30, 1), np.float32)
    img[:10, :10] = 1.0  # 100 foreground pixels
    assert area_per_object(img, 4.0) == pytest.approx(25.0)
    assert area_per_object(img, 0.0) == pytest.approx(200.0)  # counts below 0.5 are taken as 0.5


def test_gate_skips_the_segmenter_only_on_large_objects(fields, monkeypatch):
    m = load_model("count-bbbc005", device="cpu")
    gate = m.card["output"]["hybrid"]["gate_area_per_object"]
    assert gate >= m.card["output"]["hybrid"]["max_object_area"]
    nuclei = [f.images[(1, b)] for f in fields for b in (1, 48)]
    bodies = [f.images[(2, b)] for f in fields for b in (1, 48)]

    ungated = load_model("count-bbbc005", device="cpu")
    ungated.update_output(hybrid={k: v for k, v in ungated.card["output"]["hybrid"].items()
                                  if k != "gate_area_per_object"})
    want = ungated.count_images(bodies)
    assert all(r.method == "density" for r in want)  # cell bodies are too large for the object rule

    calls = []
    plugin = type(m.plugin)
    real = plugin._objects
    monkeypatch.setattr(plugin, "_objects", lambda self, model, im, **kw: calls.append(1) or real(self, model, im, **kw))
    got = m.count_images(bodies)
    assert calls == []  # gated: the segmenter never ran
    assert [r.count for r in got] == pytest.approx([r.count for r in want])
    assert [v for r in got for v in (r.low, r.high)] == pytest.approx([v for r in want for v in (r.low, r.high)])

    res = m.count_images(nuclei)
    assert len(calls) == len(nuclei)  # small objects: segmented, and the object count is used
    assert all(r.method == "density+objects" for r in res)
    truth = np.repeat([f.count for f in fields], 2)
    assert np.abs(np.array([r.count for r in res]) - truth).max() < 0.15 * truth.max()


def _mosaic(images, k):
    return np.concatenate([np.concatenate(images[r * k:(r + 1) * k], axis=1) for r in range(k)], axis=0)


def test_intervals_scale_with_the_image_and_cover_mosaics():
    """Issue 14: the object branch's interval was a fixed +-2.76 whatever the image size; issue 31: it was the
    same at every count (12/15 covered at 66 cells or more). It is now ``q * sqrt(count + 1)``: it grows with
    the count, so a mosaic of k x k fields (k^2 times the cells) gets about k times a field's. A card calibrated
    before (``absolute``) keeps its fixed width, widened by sqrt(area / reference_area). The density branch's
    grows with its variance."""
    import math

    from deepscope.tasks.count import area_factor

    m = load_model("count-bbbc005", device="cpu")
    hy = m.card["output"]["hybrid"]
    assert hy["interval_method"] == "sqrt-count"
    q_lo, q_hi = hy["stratum_scales"][0], hy["stratum_scales"][-1]  # calibrated per third of the count range
    assert q_hi >= q_lo >= hy["interval_scale"] > 0
    fields = [generate_field(n, stains=(1, 2), blurs=1, seed=70 + i) for i, n in enumerate((12, 30, 45, 20))]
    true = sum(int(f.nuclei.max()) for f in fields)
    one = m.count_images([fields[0].images[(1, 1)]])[0]
    mos = m.count_images([_mosaic([f.images[(1, 1)] for f in fields], 2)])[0]
    assert one.method == mos.method == "density+objects"
    assert one.count < 33.5 < 66.5 < mos.count
    # the interval is calibrated around the estimate, then widened to whole numbers
    for r, q in ((one, q_lo), (mos, q_hi)):
        assert r.count == math.floor(r.estimate + 0.5)
        assert r.high == math.ceil(r.estimate + q * math.sqrt(r.estimate + 1))
        assert r.low == math.floor(max(0.0, r.estimate - q * math.sqrt(r.estimate + 1)))
    assert mos.high - mos.low > 2 * (one.high - one.low)  # ~9x the cells: ~3x the width
    assert mos.low <= true <= mos.high

    old = load_model("count-bbbc005", device="cpu")
    old.update_output(hybrid={**{k: v for k, v in hy.items() if k not in ("count_edges", "stratum_scales")},
                              "interval_method": "absolute", "interval_scale": 2.75})
    one_old = old.count_images([fields[0].images[(1, 1)]])[0]
    mos_old = old.count_images([_mosaic([f.images[(1, 1)] for f in fields], 2)])[0]
    assert one_old.high == math.ceil(one_old.estimate + 2.75) and mos_old.high == math.ceil(mos_old.estimate + 5.5)
    assert area_factor(hy, (1040, 1392)) == pytest.approx(2.0)
    bodies_one = m.count_images([fields[1].images[(2, 1)]], hybrid=False)[0]
    bodies_mos = m.count_images([_mosaic([f.images[(2, 1)] for f in fields], 2)], hybrid=False)[0]
    assert bodies_mos.high - bodies_mos.low > 1.5 * (bodies_one.high - bodies_one.low)
