"""Counting plugins: ``count/density`` (density U-Net with a calibrated 95% interval and the hybrid
object rule) and ``count/regress`` (a network that outputs the count: the book's CountNet)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from deepscope.errors import InputError, user_stacklevel
from deepscope.models import ArchConfig, CountModel, register_task
from deepscope.predict.predictor import softplus
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.tasks.count.files import CountOutputs
from deepscope.tasks.count.options import CountOptions, CountResult
from deepscope.tasks.count.pipeline_step import CountStep
from deepscope.tasks.count.training import CountTask

__all__ = ["DensityCounting", "RegressCounting", "area_per_object", "area_factor"]


def _weights_sha(ref: str) -> str | None:
    """The SHA-256 of a model's weights as its card records it."""
    from deepscope.models import model_card

    w = model_card(ref).weights
    return w.sha256 if w else None


def area_per_object(prepared: np.ndarray, count: float) -> float:
    """Foreground pixels (above Otsu's threshold) per counted object: a cheap object-size estimate.

    Hybrid counters use it to skip the (slow) segmenter on images whose objects are clearly larger
    than their ``max_object_area`` rule allows. A flat image has no foreground and gives 0.
    """
    from skimage.filters import threshold_otsu

    g = prepared[..., 0] if prepared.ndim == 3 else prepared
    if not g.size or float(g.max()) <= float(g.min()):
        return 0.0
    fg = int((g > threshold_otsu(g)).sum())
    return fg / max(float(count), 0.5)


def area_factor(rule: Any, shape: tuple[int, ...] | None) -> float:
    """How much an absolute interval widens for an image larger than those it was calibrated on.

    A count over an image of ``k`` calibration-sized fields adds ``k`` independent field errors, so
    its spread grows as ``sqrt(k)``: the half-width is multiplied by ``sqrt(area / reference_area)``
    (``reference_area`` in pixels, recorded at calibration), never by less than 1. Without a
    ``reference_area`` (cards calibrated before it was recorded) the factor is 1. ``rule`` is an
    :class:`~deepscope.tasks.count.Interval` or :class:`~deepscope.tasks.count.HybridRule`, or its card mapping.

    Examples
    --------
    >>> area_factor({"reference_area": 100.0}, (20, 20)), area_factor({"reference_area": 100.0}, (5, 5))
    (2.0, 1.0)
    """
    ref_area = rule.get("reference_area") if isinstance(rule, Mapping) else getattr(rule, "reference_area", None)
    ref = float(ref_area or 0.0)
    if ref <= 0 or shape is None:
        return 1.0
    return math.sqrt(max(1.0, float(shape[0]) * float(shape[1]) / ref))


def _conformal_quantile(scores: np.ndarray, level: float) -> float:
    n = len(scores)
    return float(np.quantile(scores, min(1.0, math.ceil((n + 1) * level) / n), method="higher"))


def hybrid_interval_scale(true: np.ndarray, est: np.ndarray, level: float = 0.95) -> float:
    """Split-conformal scale of the hybrid rule's ``sqrt-count`` interval: the ``level`` quantile of
    ``|true - est| / sqrt(est + 1)`` on held-out images, so that the half-width grows with the count as the
    errors do (a constant width held 27 of 27 fields below 60 cells but 12 of 15 at 66 or more).

    Examples
    --------
    >>> round(hybrid_interval_scale(np.array([10.0, 50.0]), np.array([11.0, 48.0]), 0.5), 3)
    0.289
    """
    est = np.maximum(np.asarray(est, float), 0.0)
    return _conformal_quantile(np.abs(np.asarray(true, float) - est) / np.sqrt(est + 1.0), level)


#: The strata of the hybrid interval's calibration: thirds of BBBC005's count range (1-100 cells).
COUNT_EDGES = (33.5, 66.5)


def hybrid_stratum_scales(true: np.ndarray, est: np.ndarray, level: float = 0.95,
                          edges: Sequence[float] = COUNT_EDGES) -> list[float]:
    """Per-stratum (Mondrian) split-conformal scales of the ``sqrt-count`` interval: images are put in a stratum
    by their *estimated* count (what is known when counting), and each stratum's scale is its own quantile of
    ``|true - est| / sqrt(est + 1)``, never below the scale of all images together (a stratum of few images
    gives its largest score). A stratum without images gets the overall scale."""
    est = np.maximum(np.asarray(est, float), 0.0)
    scores = np.abs(np.asarray(true, float) - est) / np.sqrt(est + 1.0)
    overall = _conformal_quantile(scores, level)
    which = np.searchsorted(np.asarray(edges, float), est, side="right")
    return [max(overall, _conformal_quantile(scores[which == k], level)) if (which == k).any() else overall
            for k in range(len(edges) + 1)]


class _Counting(TorchTaskPlugin):
    """What both count representations share: intervals, calibration, the hybrid rule, training."""

    task = "count"
    model_class = CountModel
    training_task_class = CountTask
    options_class = CountOptions
    file_outputs_class = CountOutputs
    pipeline_step = CountStep
    #: How the interval half-width is made from the standard deviation (``scaled-std``) or not (``absolute``).
    interval_method: ClassVar[str] = "absolute"
    postprocessing_note = ("channel 0 is a density map whose sum over the image is the count; channel 1 sums to the "
                           "count's variance. deepscope calibrates a 95% interval from it, and (for count-bbbc005) "
                           "checks the image against the training images and counts other images by instances.")

    @property
    def option_defaults(self) -> Mapping[str, Any]:  # type: ignore[override]
        return {"interval": {"method": self.interval_method}}

    def default_architecture(self, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=1, out_channels=2, base=8, depth=4, pool_input=2)

    def default_output(self, arch: ArchConfig, **options: Any) -> dict[str, Any]:
        # counting networks train on whole, unpadded images (the U-Net accepts any size), so they also
        # predict unpadded: reflect-padding adds content whose density would be counted
        return {**self.options_class.parse(defaults=self.option_defaults).card_output(("pad_input", "interval")),
                **options}

    # ------------------------------------------------------------------ prediction
    def count_prepared(self, model: CountModel, prepared: list[np.ndarray], *, batch_size: int | None = None,
                       paths: list[str] | None = None, tta: str | None = None,
                       options: CountOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Counts and standard deviations of pre-processed images (``options``, or the card's with ``tta`` and
        ``batch_size``)."""
        raise NotImplementedError

    def count_arrays(self, model: CountModel, images: list[np.ndarray], *, batch_size: int | None = None,
                     channel: int | None = None, paths: list[str] | None = None, tta: str | None = None,
                     checked: bool = False) -> tuple[np.ndarray, np.ndarray]:
        opts = self.options(model, batch_size=batch_size, channel=channel, tta=tta, checked=checked)
        prepared = [self.prepare(model, im, path=(paths[i] if paths else ""), channel=channel, checked=checked)
                    for i, im in enumerate(images)]
        return self.count_prepared(model, prepared, paths=paths, options=opts)

    def interval(self, model: CountModel, count: float, std: float, *, shape: tuple[int, ...] | None = None,
                 options: CountOptions | None = None) -> tuple[float, float]:
        """The calibrated interval of a count: ``scale * std`` (``scaled-std``: the standard deviation already
        grows with the image) or ``scale`` widened by :func:`area_factor` for an image of ``shape`` (``absolute``)."""
        iv = (options or self.options(model)).interval
        half = iv.scale * (std if iv.method == "scaled-std" else area_factor(iv, shape))
        return max(0.0, count - half), count + half

    def calibrate_interval(self, model: CountModel, true: np.ndarray, pred: np.ndarray, std: np.ndarray, *,
                           level: float = 0.95, name: str = "") -> float:
        err = np.abs(np.asarray(true, float) - np.asarray(pred, float))
        if len(err) == 0:
            raise InputError("interval calibration needs at least one held-out image")
        scores = err / np.maximum(std, 1e-3) if self.interval_method == "scaled-std" else err
        q = _conformal_quantile(scores, level)
        model.update_output(interval={"method": self.interval_method, "scale": q, "level": level,
                                      "calibrated_on": name, "n": len(err)})
        return q

    def run(self, model: CountModel, image: np.ndarray, options: CountOptions) -> CountResult:
        """Count one raw image (see :meth:`run_batch`)."""
        return self.run_batch(model, [image], options)[0]

    def predict_image(self, model: CountModel, image: np.ndarray, **given: Any) -> CountResult:
        return self.count_images(model, [image], **given)[0]

    def predict_batch(self, model: CountModel, images: Sequence[np.ndarray], **given: Any) -> list[CountResult]:
        return self.count_images(model, list(images), **given)

    def count_images(self, model: CountModel, images: list[np.ndarray], *, paths: list[str] | None = None,
                     hybrid: bool | None = None, **given: Any) -> list[CountResult]:
        """:meth:`run_batch` with the card's options and ``given`` (``hybrid`` overrides the rule's ``enabled``)."""
        return self.run_batch(model, images, self.options(model, use_hybrid=hybrid, **given), paths=paths)

    def run_batch(self, model: CountModel, images: Sequence[np.ndarray], options: CountOptions, *,
                  paths: Sequence[str] | None = None) -> list[CountResult]:
        """Count each raw image: :class:`CountResult` (count, low, high, std, method).

        ``options.checked``: the pixels were checked already (the file driver's
        :func:`deepscope.predict.inputs.model_input`), so they are not scanned again.

        For cards with a hybrid rule (``options.hybrid``; ``options.use_hybrid`` overrides its ``enabled``),
        images whose objects are small (median segmented area below ``max_object_area``) get the mean of the
        network's count and the number of objects a segmenter finds, unless their foreground area per
        counted object is above the gate (then the segmenter is not run).
        """
        images = list(images)
        channel, checked = options.channel, options.checked
        prepared: list[np.ndarray | None] = []
        for i, im in enumerate(images):
            try:
                prepared.append(self.prepare(model, im, path=(paths[i] if paths else ""), channel=channel,
                                             checked=checked))
            except InputError:
                # colour (distinct channels, no --channel): not a counter image; the general segmenter reads colour
                if options.general is None or channel is not None:
                    raise
                prepared.append(None)
        grey = [k for k, p in enumerate(prepared) if p is not None]
        counts = np.full(len(images), np.nan)
        std = np.full(len(images), np.nan)
        if grey:
            c, sd = self.count_prepared(model, [p for p in prepared if p is not None],
                                        paths=[paths[k] for k in grey] if paths else None, options=options)
            counts[grey], std[grey] = c, sd
        domain = [False if p is None else self.check_domain(model, p, options) for p in prepared]
        hy = options.hybrid if options.hybrid_on else None
        gate = float(hy.gate_area_per_object or 0.0) if hy is not None else 0.0
        out = []
        for k, (c, s) in enumerate(zip(counts, std)):
            ok = domain[k]
            if ok is False:  # unlike the training images: count instances instead, or claim no interval
                where = paths[k] if paths else "image"
                if options.general is not None:
                    out.append(self._count_instances(model, images[k], options, path=where))
                else:
                    warnings.warn(f"{where}: looks unlike the images count model {model.name!r} was trained on; "
                                  "its count is a guess and gets no interval", stacklevel=user_stacklevel())
                    out.append(CountResult.whole(float(c), float("nan"), float("nan"), float(s), self.representation,
                                                 False))
                continue
            method = self.representation
            # clearly large objects (area per counted cell above the gate): the rule would not use the
            # segmenter's count, so do not run it
            pk = prepared[k]
            assert pk is not None  # images that could not be prepared are out of the domain (above)
            if hy is not None and not (gate and area_per_object(pk, c) > gate):
                n_obj, area = self._objects(model, images[k], channel=channel, checked=checked)
                if n_obj > 0 and area < hy.max_object_area:
                    c = 0.5 * (c + n_obj)
                    method = "density+objects"
            shape = np.shape(images[k])[:2]
            if method == self.representation:
                lo, hi = self.interval(model, float(c), float(s), shape=shape, options=options)
            else:  # the segmenter's branch: its own calibrated half-width
                assert hy is not None
                q = hy.half_width(float(c), shape)
                lo, hi = max(0.0, float(c) - q), float(c) + q
            out.append(CountResult.whole(float(c), lo, hi, float(s), method, ok))
        return out

    # ------------------------------------------------------------------ domain check and general images
    def check_domain(self, model: CountModel, prepared: np.ndarray, options: CountOptions | None = None) -> bool | None:
        """Whether a prepared image looks like the counter's training images (None: the card has no check)."""
        from deepscope.predict.backends import torch_backend
        from deepscope.predict.domain import domain_from_dict

        d = (options or self.options(model)).domain
        if not d:
            return None
        if model.runtime.domain is None:
            model.runtime.domain = domain_from_dict(dict(d))
        feats = torch_backend(model, precision=self.precision).features(prepared.transpose(2, 0, 1)[None])[0]
        return model.runtime.domain.check(feats)[0]

    def fit_domain_check(self, model: CountModel, train_images: list[np.ndarray], valid_images: list[np.ndarray],
                         *, calibrated_on: str = "", **options: Any) -> dict[str, Any]:
        """Fit the counter's domain check on raw training images, threshold on held-out ones (stored in the card)."""
        from deepscope.predict.backends import torch_backend
        from deepscope.predict.domain import fit_domain

        be = torch_backend(model, precision=self.precision)

        def feats(images: list[np.ndarray]) -> np.ndarray:
            return np.array([be.features(self.prepare(model, im).transpose(2, 0, 1)[None])[0] for im in images])

        dm = fit_domain(feats(train_images), feats(valid_images), calibrated_on=calibrated_on, **options)
        model.update_output(domain=dm.to_dict())
        model.runtime.domain = None
        return {"threshold": dm.threshold, "n_train": dm.n_train}

    def general_segmenter(self, model: CountModel) -> Any:
        """The card's generalist segmenter, which counts images unlike the counter's (loaded once per model)."""
        general = self.options(model).general
        if general is None:
            raise InputError(f"count model {model.name!r} has no general segmenter (card output.general)")

        def load() -> Any:
            from deepscope.models import load_model

            return load_model(general.segmenter, device=model.device_name, task="segment")

        return model.runtime.helper("general_segmenter", load)

    def _count_instances(self, model: CountModel, image: np.ndarray, options: CountOptions, *,
                         path: str) -> CountResult:
        """Count by the objects of the card's generalist segmenter, with its calibrated interval where in its domain."""
        from deepscope.tasks.segment.generalist import image_kind

        general = options.general
        assert general is not None
        seg = self.general_segmenter(model)
        r = seg.plugin.run(seg, image, seg.options(channel=options.channel, checked=options.checked))
        labels = r.labels
        n = float(len(np.unique(labels[labels > 0])))
        if r.in_domain is False:
            warnings.warn(f"{path}: looks unlike the images of both the counter {model.name!r} and the segmenter "
                          f"{seg.name!r}; its count ({n:.0f} objects) is a guess and gets no interval", stacklevel=user_stacklevel())
            return CountResult.whole(n, float("nan"), float("nan"), float("nan"), "instances", False)
        scales = general.interval
        q = float(scales.get(image_kind(seg.prepare(image, channel=options.channel, checked=True)),  # checked above
                             scales.get("all", float("nan"))))
        half = q * math.sqrt(n + 1.0)
        return CountResult.whole(n, max(0.0, n - half), n + half, math.sqrt(n + 1.0), "instances", True)

    def calibrate_general(self, model: CountModel, sets: dict[str, tuple[list[np.ndarray], list[float]]], *,
                          segmenter: str, level: float = 0.95) -> dict[str, Any]:
        """Set the segmenter that counts images out of the counter's domain, and calibrate its interval per kind.

        ``sets`` maps a kind of image (``fluorescence``, ``he``, ``brightfield``: see
        :func:`deepscope.tasks.segment.generalist.image_kind`) to held-out images and their true counts. The
        half-width is ``q * sqrt(n + 1)`` for ``n`` objects, ``q`` the split-conformal quantile of
        ``|n - true| / sqrt(n + 1)`` on that kind (and over all kinds for images of another kind).
        """
        model.update_output(general={"segmenter": segmenter, "interval": {},
                                     "segmenter_sha256": _weights_sha(segmenter)})
        model.runtime.helpers.pop("general_segmenter", None)
        seg = self.general_segmenter(model)
        scores: dict[str, list[float]] = {}
        for kind, (images, true) in sets.items():
            for im, t in zip(images, true):
                labels = seg.predict_image(im)
                n = float(len(np.unique(labels[labels > 0])))
                scores.setdefault(kind, []).append(abs(n - float(t)) / math.sqrt(n + 1.0))
        iv = {k: round(_conformal_quantile(np.array(v), level), 4) for k, v in scores.items() if v}
        iv["all"] = round(_conformal_quantile(np.concatenate([np.array(v) for v in scores.values()]), level), 4)
        general = {"segmenter": segmenter, "interval": iv, "level": level,
                   "n": {k: len(v) for k, v in scores.items()},
                   "segmenter_sha256": _weights_sha(segmenter)}
        model.update_output(general=general)
        return general

    # ------------------------------------------------------------------ hybrid counting
    def _segmenter(self, model: CountModel) -> Any:
        hy = self.options(model).hybrid
        if hy is None:
            raise InputError(f"count model {model.name!r} has no hybrid rule (card output.hybrid)")

        def load() -> Any:
            from deepscope.models import load_model

            seg = load_model(hy.segmenter, device=model.device_name, task="segment")
            want = hy.segmenter_sha256
            have = seg.model_card.weights.sha256 if seg.model_card.weights else None
            if want and have and want != have:
                warnings.warn(f"count model {model.name!r} was calibrated with segmenter {hy.segmenter!r} "
                              f"weights {want[:12]}... but {have[:12]}... are installed; its intervals may be off",
                              stacklevel=user_stacklevel())
            return seg

        seg = model.runtime.helper("segmenter", load)
        seg.backend = model.backend  # the counter's backend (auto: each model's own choice) runs the segmenter too
        return seg

    def _objects(self, model: CountModel, image: np.ndarray, *, channel: int | None = None,
                 checked: bool = False) -> tuple[int, float]:
        """Number of segmented objects and their median area (pixels)."""
        seg = self._segmenter(model)
        labels = seg.plugin.run(seg, image, seg.options(channel=channel, checked=checked)).labels
        sizes = np.bincount(labels.ravel())[1:]
        sizes = sizes[sizes > 0]
        return int(len(sizes)), float(np.median(sizes)) if len(sizes) else 0.0

    def calibrate_hybrid(self, model: CountModel, images: list[np.ndarray], true: np.ndarray, *, segmenter: str,
                         max_object_area: float, level: float = 0.95, name: str = "",
                         gate: bool = True) -> dict[str, Any]:
        """Set up hybrid counting and calibrate both interval branches by split conformal on held-out images.

        With ``gate``, images whose foreground area per counted object (:func:`area_per_object`) is
        above ``gate_area_per_object`` skip the segmenter. The gate is set to 1.25 x ``max_object_area``,
        raised where needed so that every held-out image the rule counted with objects stays above it
        by 10%: on the held-out images it never changes a result, it only saves time.
        """
        true = np.asarray(true, float)
        hy: dict[str, Any] = {"segmenter": segmenter, "max_object_area": float(max_object_area), "combine": "mean",
                              "interval_scale": 0.0, "interval_method": "sqrt-count", "enabled": True,
                              "reference_area": float(np.median([np.prod(np.shape(im)[:2]) for im in images])),
                              "segmenter_sha256": _weights_sha(segmenter)}
        model.update_output(hybrid=hy)
        model.runtime.helpers.pop("segmenter", None)
        res = self.count_images(model, images)
        small = np.array([r.method != self.representation for r in res])
        est = np.array([r.estimate for r in res])
        std = np.array([r.std for r in res])
        n = int(small.sum())
        hy["interval_scale"] = hybrid_interval_scale(true[small], est[small], level) if n else 0.0
        if n:
            hy["count_edges"] = list(COUNT_EDGES)
            hy["stratum_scales"] = hybrid_stratum_scales(true[small], est[small], level)
        if (~small).any():
            self.calibrate_interval(model, true[~small], est[~small], std[~small], level=level, name=name)
        hy["calibrated_on"] = f"{name} ({n} small-object images)"
        if gate:
            prepared = [self.prepare(model, im) for im in images]
            dens, _ = self.count_prepared(model, prepared)
            apo = np.array([area_per_object(p, c) for p, c in zip(prepared, dens)])
            g = 1.25 * float(max_object_area)
            if n:
                g = max(g, 1.1 * float(apo[small].max()))
            hy["gate_area_per_object"] = round(g, 1)
            hy["gate_skips_on_calibration"] = int((apo > g).sum())
        model.update_output(hybrid=hy)
        return hy

    def recalibrate_hybrid_interval(self, model: CountModel, images: list[np.ndarray], true: Any, *, level: float = 0.95,
                                    name: str = "") -> dict[str, Any]:
        """Re-calibrate only the hybrid rule's interval as ``sqrt-count`` on held-out images (the counts, the gate
        and every other part of the rule unchanged); returns the new rule as stored in the card."""
        opts = self.options(model)
        if opts.hybrid is None:
            raise InputError(f"count model {model.name!r} has no hybrid rule (card output.hybrid)")
        true = np.asarray(true, float)
        res = self.count_images(model, images)
        small = np.array([r.method == "density+objects" for r in res])
        if not small.any():
            raise InputError("none of the held-out images is counted by the hybrid rule; nothing to calibrate on")
        est = np.array([r.estimate for r in res])
        hy = {**opts.hybrid.to_dict(), "interval_method": "sqrt-count",
              "interval_scale": round(hybrid_interval_scale(true[small], est[small], level), 4),
              "count_edges": list(COUNT_EDGES),
              "stratum_scales": [round(q, 4) for q in hybrid_stratum_scales(true[small], est[small], level)],
              "calibrated_on": f"{name} ({int(small.sum())} small-object images)"}
        model.update_output(hybrid=hy)
        return hy

    # ------------------------------------------------------------------ training
    def default_monitor(self, model: CountModel) -> tuple[str, str]:
        return "val_mae", "min"

    def training_task(self, model: CountModel, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int,
                      **options: Any) -> CountTask:
        if dataset.label_kind != "value":
            raise InputError("counting needs a dataset with one count per image (labels='count' or a CSV)")
        vy = valid_dataset.y.astype(np.float32) if valid_dataset is not None else np.zeros(0, np.float32)
        return CountTask(self.prepare_dataset(model, dataset), dataset.y.astype(np.float32),
                         valid_images=self.prepare_dataset(model, valid_dataset), valid_counts=vy,
                         head=self.representation, batch_size=batch_size, device=device, **options)

    def after_fit(self, model: CountModel, task: Any, valid_dataset: Any) -> None:
        if valid_dataset is None or not len(valid_dataset):
            return
        counts, std = self.count_arrays(model, [valid_dataset.get_image(i) for i in range(len(valid_dataset))])
        self.calibrate_interval(model, valid_dataset.y.astype(float), counts, std, name="validation split")

    def after_fine_tune(self, model: CountModel, train_dataset: Any, valid_dataset: Any) -> None:
        """The hybrid rule was calibrated on the parent's images: dropped. The domain check describes the
        parent network's features: refitted on the new network's features of the user's images (at
        least 4 training and 1 validation image), else dropped with a warning."""
        opts = self.options(model)
        if opts.hybrid is not None:
            model.update_output(hybrid=None)
        if not opts.domain:
            return
        model.update_output(domain=None)
        model.runtime.domain = None
        n_valid = len(valid_dataset) if valid_dataset is not None else 0
        if len(train_dataset) < 4 or not n_valid:
            warnings.warn(f"{model.name}: too few images to refit the domain check (need 4 training and 1 validation "
                          "image); the fine-tuned counter has none and counts every image itself", stacklevel=user_stacklevel())
            return
        train = [train_dataset.get_image(i) for i in range(len(train_dataset))]
        valid = [valid_dataset.get_image(i) for i in range(n_valid)]
        self.fit_domain_check(model, train, valid, k=min(5, len(train) - 1), calibrated_on=(
            f"features of the {len(train)} fine-tuning images; threshold: 99th percentile of the {n_valid} validation "
            "images x 1.25"))


@register_task
class DensityCounting(_Counting):
    """``count/density``: softplus of output channel 0 is a density map whose sum is the count, softplus of
    channel 1 sums to its variance; test-time augmentation averages the densities."""

    representation = "density"
    interval_method = "scaled-std"
    output_names = ("density", "variance")

    def export_activation(self, y: Any) -> Any:
        import torch

        return torch.nn.functional.softplus(y)

    def init_network(self, model: CountModel, net: Any) -> None:
        import torch

        with torch.no_grad():
            net.head.bias.fill_(-7.0)  # start near an empty density map (softplus(-7) ~ 1e-3)

    def count_prepared(self, model: CountModel, prepared: list[np.ndarray], *, batch_size: int | None = None,
                       paths: list[str] | None = None, tta: str | None = None,
                       options: CountOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
        opts = (options or self.options(model)).replace(tta=tta, batch_size=batch_size)
        pool = model.arch.pool_input
        stride = model.arch.stride if opts.pad_input else pool
        # without padding, the network's down-sampling needs a whole multiple of its stride (a 4 x 4 binning
        # and 3 poolings: 32 x 32 pixels); smaller images failed inside torch
        need = pool if opts.pad_input else max(pool, int(model.arch.stride))
        small = [i for i, p in enumerate(prepared) if min(p.shape[:2]) < need]
        if small:
            i = small[0]
            h, w = prepared[i].shape[:2]
            raise InputError(f"{paths[i] if paths else 'image'}: {h} x {w} pixels is smaller than the model's "
                             f"{pool}x{pool} binning and down-sampling need ({need} x {need} pixels); nothing to "
                             "count. Leave the image out, or count it with a model that pads its input")
        # densities are averaged after the softplus (averaging logits would bias sums downwards)
        maps = self.predictor(model, stride=stride, batch_size=opts.batch_size, tta=opts.tta,
                              activation=softplus).maps(prepared)
        counts = np.array([m[0].sum() for m in maps], dtype=float)
        var = np.array([m[1].sum() + 1e-2 for m in maps], dtype=float)
        return counts, np.sqrt(var)


@register_task
class RegressCounting(_Counting):
    """``count/regress``: the network outputs the count of a fixed-size input (the book's CountNet)."""

    representation = "regress"

    def default_architecture(self, **options: Any) -> ArchConfig:
        return ArchConfig("book-countnet")

    def prepare(self, model: CountModel, image: Any, *, path: str = "", channel: int | None = None,
                checked: bool = False) -> np.ndarray:
        x = super().prepare(model, image, path=path, channel=channel, checked=checked)
        size = model.arch.input_size
        if size is not None and x.shape[:2] != tuple(size):
            from skimage.transform import resize

            x = resize(x, tuple(size) + (x.shape[-1],), order=1, anti_aliasing=True,
                       preserve_range=True).astype(np.float32)
        return x

    def count_prepared(self, model: CountModel, prepared: list[np.ndarray], *, batch_size: int | None = None,
                       paths: list[str] | None = None, tta: str | None = None,
                       options: CountOptions | None = None) -> tuple[np.ndarray, np.ndarray]:
        batch_size = (options or self.options(model)).replace(batch_size=batch_size).batch_size
        predictor = self.predictor(model)
        outs = [predictor.run(np.stack(prepared[s:s + batch_size])).reshape(-1)
                for s in range(0, len(prepared), batch_size)]
        counts = np.concatenate(outs).astype(float) if outs else np.zeros(0)
        return np.maximum(counts, 0.0), np.zeros_like(counts)
