"""Generalist inference: size estimation, rescaling to the model's scale, tiling, labels at the input's size.

A stand-in for the network returns the outputs an ideal flow model would give for whatever it is
shown (probability logits, flows and the log-size map of the objects it sees), so these tests check
the estimation and rescaling logic itself, exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from deepscope.errors import InputError
from deepscope.evaluate import match_instances
from deepscope.tasks.segment.flows import FLOW_SCALE, FlowPostprocessConfig, diameter_map, masks_to_flows
from deepscope.tasks.segment.sizing import GeneralistConfig, estimate_diameter, segment_generalist

D0 = 17.0


def discs(shape: tuple[int, int], diameter: float, seed: int = 0) -> np.ndarray:
    """Non-touching discs of one diameter on a grid with jitter."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.int32)
    step = int(diameter * 1.6)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    k = 1
    for r in range(step // 2, shape[0] - step // 2, step):
        for c in range(step // 2, shape[1] - step // 2, step):
            rc, cc = r + rng.integers(-2, 3), c + rng.integers(-2, 3)
            lab[(yy - rc) ** 2 + (xx - cc) ** 2 <= (diameter / 2) ** 2] = k
            k += 1
    return lab


def ideal_run(calls: list[tuple[int, int]]):
    """What a perfect model outputs for a prepared image whose objects are bright."""
    def run(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[:2])
        lab, _ = ndi.label(x[..., 0] > 0.5)
        fg = lab > 0
        logit = np.where(fg, 8.0, -8.0)
        size = np.where(fg, np.log(np.maximum(diameter_map(lab), 1e-3) / D0), 0.0)
        return np.concatenate([logit[None], FLOW_SCALE * masks_to_flows(lab), size[None]]).astype(np.float32)
    return run


def prepared(lab: np.ndarray) -> np.ndarray:
    return np.repeat((lab > 0).astype(np.float32)[..., None], 3, axis=-1)


@pytest.mark.parametrize("diameter", [9.0, 17.0, 40.0, 90.0])
def test_objects_of_any_size_are_found_at_their_scale(diameter):
    lab = discs((260, 300) if diameter < 50 else (330, 330), diameter)
    calls: list = []
    out, info = segment_generalist(prepared(lab), ideal_run(calls), mode="flows",
                                   postprocess=FlowPostprocessConfig(min_size=4), config=GeneralistConfig())
    assert out.shape == lab.shape and out.dtype == np.int32
    assert info.diameter_source == "estimated"
    assert abs(math.log(info.diameter / diameter)) < 0.15
    # segmented at the model's scale: exactly, or by the probe when it was already within tolerance
    assert abs(math.log(info.scale * info.diameter / D0)) < math.log(GeneralistConfig().tolerance) + 1e-3
    r = match_instances(lab, out)
    assert r.f1[0] > 0.95, (diameter, r.f1[0], info)


def test_given_diameter_skips_the_estimate():
    lab = discs((200, 200), 34.0)
    calls: list = []
    out, info = segment_generalist(prepared(lab), ideal_run(calls), mode="flows",
                                   postprocess=FlowPostprocessConfig(min_size=4), config=GeneralistConfig(),
                                   diameter=34.0)
    assert info.diameter_source == "given" and info.passes == 1 and info.scale == pytest.approx(0.5, abs=1e-3)
    assert calls == [(100, 100)]  # one pass, at the model's scale
    assert match_instances(lab, out).f1[0] > 0.95
    with pytest.raises(InputError, match="diameter must be a positive"):
        segment_generalist(prepared(lab), ideal_run([]), mode="flows", postprocess=FlowPostprocessConfig(),
                           config=GeneralistConfig(), diameter=0)


def test_tiled_matches_untiled():
    """Each tile is rescaled on its own, so outlines may move by a pixel; no object is cut or doubled."""
    lab = discs((420, 460), 20.0, seed=3)
    cfg = dict(mode="flows", postprocess=FlowPostprocessConfig(min_size=4))
    whole, _ = segment_generalist(prepared(lab), ideal_run([]), config=GeneralistConfig(), diameter=20.0, **cfg)
    calls: list = []
    tiled, _ = segment_generalist(prepared(lab), ideal_run(calls), config=GeneralistConfig(tile=256, overlap=48),
                                  diameter=20.0, **cfg)
    assert len(calls) > 1
    r = match_instances(whole, tiled)
    assert r.n_true == r.n_pred and r.f1[0] == 1.0  # none cut or doubled
    assert r.f1[5] > 0.95  # and at IoU 0.75 nearly all still match


def test_empty_image_has_no_objects():
    out, info = segment_generalist(np.zeros((64, 80, 3), np.float32), ideal_run([]), mode="flows",
                                   postprocess=FlowPostprocessConfig(), config=GeneralistConfig())
    assert out.max() == 0 and info.diameter_source == "default"


def test_estimate_is_a_median_over_objects_not_pixels():
    # 9 small objects and one huge one: the pixel median would be the huge one's size
    lab = np.zeros((300, 300), np.int32)
    for k in range(9):
        r, c = 20 + 30 * (k // 3), 20 + 30 * (k % 3)
        lab[r - 5:r + 5, c - 5:c + 5] = k + 1
    lab[150:290, 150:290] = 10
    run = ideal_run([])
    est = estimate_diameter(run(prepared(lab)), D0)
    assert est == pytest.approx(2 * np.sqrt(100 / np.pi), rel=0.05)


def test_the_domain_check_reuses_the_segmentation_pass_only_where_it_is_the_window():
    """A generalist's domain check takes the pass that segmented the image where that pass is the whole window (one
    network pass fewer per image, the same features); where the image at the model's scale is larger than the
    window, the window gets a pass of its own as before (a window cut from a larger pass sees context instead of
    padding, and moved the checks' scores)."""
    from deepscope.data.synth import generate_field
    from deepscope.models import list_models, load_model
    from deepscope.predict.backends import inference_backend

    if "nuclei" not in {m.name for m in list_models()}:
        pytest.skip("needs the shipped nuclei model")
    model = load_model("nuclei", device="cpu")
    model.backend = "torch"
    plugin, opts = model.plugin, model.options()
    be = inference_backend(model)
    calls = []
    forward = type(be).forward
    be.forward = lambda x: (calls.append(x.shape), forward(be, x))[1]  # type: ignore[method-assign]
    try:
        for size, seed, extra in (((160, 200), 5, 0), ((520, 696), 6, 1)):
            im = generate_field(12, size=size, blurs=(1,), stains=(1,), seed=seed).image(1, 1)
            calls.clear()
            _, info, dom = model.predict_image(im, return_info=True)
            assert dom.score is not None and len(calls) == info.passes + extra, (size, len(calls), info.passes)
            x = plugin.prepare(model, im)
            keep: dict = {}
            segment_generalist(x, lambda a: plugin.raw_outputs(model, a), mode=plugin.postprocess_mode,
                               postprocess=opts.postprocess, config=plugin.generalist_config(model, options=opts),
                               keep=keep)
            assert set(keep) == {"scaled", "outputs"} and keep["outputs"].shape[-2:] == keep["scaled"].shape[:2]
            calls.clear()
            reused = plugin.features(model, x, info.scale, keep)
            assert len(calls) == extra
            np.testing.assert_allclose(reused, plugin.features(model, x, info.scale), rtol=1e-5, atol=1e-6)
    finally:
        del be.forward
