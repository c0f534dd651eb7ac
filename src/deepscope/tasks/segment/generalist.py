"""Generalist segmentation plugins: any modality, any object size, and a domain check.

``segment/flows`` (Cellpose-style flow fields, :mod:`deepscope.tasks.segment.flows`) and
``segment/sized-distance`` (foreground + distance maps with a seeded watershed) share everything but
their representation: a three-channel input (grey images are replicated, RGBA loses its alpha), a
per-pixel object-size map that lets the model estimate each image's object diameter and rescale it
to the scale it was trained at (:mod:`deepscope.tasks.segment.sizing`), and a domain check
(:mod:`deepscope.predict.domain`) that says when an image looks unlike every training image.

Card ``output`` keys: ``target_diameter`` (pixels), ``probe_side``, ``tile``, ``overlap``,
``postprocess`` (the representation's config), ``domain`` (the fitted domain check, or absent).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from deepscope.errors import InputError
from deepscope.models import ArchConfig, InputSpec, SegmentModel, register_task
from deepscope.predict.domain import DomainResult, warn_out_of_domain
from deepscope.tasks.segment.sizing import GeneralistConfig, instances_from_outputs, segment_generalist
from deepscope.tasks.segment.options import NO_DOMAIN, SegmentOptions, SegmentResult
from deepscope.tasks.segment.plugins import Progress, SegmentPlugin
from deepscope.tasks.segment.training_generalist import DistanceSegmentTask, FlowSegmentTask

__all__ = ["GeneralistSegmentation", "FlowSegmentation", "SizedDistanceSegmentation", "DomainResult",
           "generalist_spec", "warn_out_of_domain", "image_kind"]

#: Side (pixels, at the model's scale) of the central window whose encoder features feed the domain check.
DOMAIN_WINDOW = 256


def generalist_spec() -> InputSpec:
    """The input spec of the generalist models: grey or colour, percentile-normalised over all channels."""
    return InputSpec(channels=3, colour="rgb", normalize="percentile", low=1, high=99.8)


class GeneralistSegmentation(SegmentPlugin):
    """Shared behaviour of the generalist segmenters (see the module docstring)."""

    training_task_class: ClassVar[type] = FlowSegmentTask
    out_channels: ClassVar[int] = 4
    estimates_diameter = True
    #: This representation's post-processing (``flows`` or ``distance``: :func:`instances_from_outputs`).
    postprocess_mode: ClassVar[str] = ""

    @property
    def option_defaults(self) -> Mapping[str, Any]:  # type: ignore[override]
        return MappingProxyType({"overlap": 64, "size_channel": True,
                                 "postprocess": getattr(self.training_task_class, "default_postprocess")().to_dict()})

    # ------------------------------------------------------------------ card
    def default_architecture(self, *, base: int = 32, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=3, out_channels=self.out_channels, base=base, depth=4)

    def default_output(self, arch: ArchConfig, **options: Any) -> dict[str, Any]:
        defaults = self.options_class.parse(defaults=self.option_defaults)
        return {**defaults.card_output(("n_classes", "class_names", "target_diameter", "probe_side", "tile",
                                        "overlap", "size_channel", "postprocess")), **options}

    def generalist_config(self, model: SegmentModel, *, tile: int | None = None, overlap: int | None = None,
                          options: SegmentOptions | None = None) -> GeneralistConfig:
        opts = options or self.options(model, tile=tile, overlap=overlap)
        return GeneralistConfig(target_diameter=float(opts.target_diameter), probe_side=int(opts.probe_side),
                                tile=int(opts.tile), overlap=int(opts.overlap))

    # ------------------------------------------------------------------ inference
    def raw_outputs(self, model: SegmentModel, x: np.ndarray, *, tta: str = "none") -> np.ndarray:
        """Raw network outputs ``(K, h, w)`` of a prepared ``(h, w, C)`` image (no tiling).

        ``tta="flips"`` averages the image and its three flips, flipping vector components with
        the image (a mirrored flow field points the other way along the mirror axis).
        """
        pred = self.predictor(model)
        if tta == "none":
            return pred.maps([x])[0]
        if tta != "flips":
            raise InputError(f"tta={tta!r}: generalist models take 'none' or 'flips'")
        acc = None
        for fr, fc in ((False, False), (True, False), (False, True), (True, True)):
            xi = x[::-1] if fr else x
            xi = xi[:, ::-1] if fc else xi
            o = pred.maps([np.ascontiguousarray(xi)])[0]
            o = o[:, ::-1] if fr else o
            o = np.array(o[:, :, ::-1] if fc else o)
            self.flip_vectors(o, fr, fc)
            acc = o if acc is None else acc + o
        assert acc is not None
        return np.asarray(acc / 4.0)

    def flip_vectors(self, out: np.ndarray, rows: bool, cols: bool) -> None:
        """Fix vector components of outputs flipped along rows / columns (in place); default: none."""

    def maps(self, model: SegmentModel, image: np.ndarray, *, tta: str = "none", channel: int | None = None,
             prepared: bool = False) -> np.ndarray:
        """Raw output maps ``(K, H, W)`` of one image at its own scale (no rescaling, no tiling)."""
        x = image if prepared else self.prepare(model, image, channel=channel)
        return self.raw_outputs(model, x, tta=tta)

    def run(self, model: SegmentModel, image: np.ndarray, options: SegmentOptions, *,
            out: np.ndarray | None = None) -> SegmentResult:
        """Instance labels (int32, 0 = background, the input's height and width), the size information and the
        domain verdict.

        The object diameter is estimated (or ``options.diameter`` in pixels), the image rescaled to the
        model's scale, segmented (tile by tile when large) and the labels made at the input's
        resolution. ``info`` is :class:`deepscope.tasks.segment.sizing.SegmentInfo` (diameter, its source,
        scale, passes), ``domain`` the :class:`DomainResult` of the image at the scale it was segmented.
        """
        x = self.prepare(model, image, channel=options.channel, checked=options.checked)
        cfg = self.generalist_config(model, options=options)

        def run(a: np.ndarray) -> np.ndarray:
            return self.raw_outputs(model, a, tta=options.tta)

        keep: dict[str, np.ndarray] = {}
        labels, info = segment_generalist(x, run, mode=self.postprocess_mode, postprocess=options.postprocess,
                                          config=cfg, diameter=options.diameter, device=model.device, out=out,
                                          keep=keep)
        return SegmentResult(labels, {}, info, self.check_domain(model, x, info.scale, options, seen=keep))

    def run_large(self, model: SegmentModel, x: Any, options: SegmentOptions, *, out: Any,
                  progress: Progress | None = None) -> SegmentResult:
        """Estimate the object diameter once, on the central window (or take ``options.diameter``), and segment
        every tile at that scale into ``out``."""
        from deepscope.tasks.segment.sizing import SegmentInfo, _central

        cfg = self.generalist_config(model, options=options)
        h, w = x.shape[:2]
        done, total = [0], [0]

        def run(a: np.ndarray) -> np.ndarray:
            done[0] += 1
            if progress is not None:
                progress(done[0], max(total[0], done[0]))
            return self.raw_outputs(model, a, tta=options.tta)

        diameter = options.diameter
        if diameter is None:  # estimate once, on the central window, so every tile uses one scale
            side = 4 * cfg.probe_side
            centre = _central(x, side) if max(h, w) > side else x[:, :]
            _, probe = segment_generalist(centre, run, mode=self.postprocess_mode, postprocess=options.postprocess,
                                          config=cfg, device=model.device)
            diameter, source = probe.diameter, probe.diameter_source
        else:
            source = "given"
        scale = cfg.target_diameter / float(diameter)
        tile_in = max(32, int(cfg.tile / scale))
        total[0] = done[0] + math.ceil(h / tile_in) * math.ceil(w / tile_in)
        whole = x[:, :] if max(h, w) <= tile_in else x  # a small image is segmented in one piece
        _, info = segment_generalist(whole, run, mode=self.postprocess_mode, postprocess=options.postprocess,
                                     config=cfg, diameter=diameter, device=model.device, out=out)
        dom = self.check_domain(model, x, info.scale, options)
        return SegmentResult(out, {}, SegmentInfo(float(diameter), source, info.scale, done[0]), dom)

    # ------------------------------------------------------------------ domain check
    def features(self, model: SegmentModel, x: np.ndarray, scale: float,
                 seen: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Domain features (:func:`deepscope.predict.domain.image_features`, then
        :func:`~deepscope.predict.domain.picture_features`) of a prepared image seen at ``scale``: its
        central window of ``DOMAIN_WINDOW`` pixels at the model's scale, and the model's outputs there.

        ``seen`` (``"scaled"``: the whole image at the model's scale, ``"outputs"``: the model's raw outputs on
        it, as :func:`deepscope.tasks.segment.sizing.segment_generalist` keeps them) saves the window's own
        network pass where the window is the whole image: the features are then those of that pass. Only there:
        a window cut from a larger pass sees context where a pass of its own sees padding, and the checks'
        scores moved by up to 1.9 that way (a held-out photograph 646 x 213 scored 2.75 on its own pass and 0.84
        cut from the segmentation pass, below the threshold 1.0; BENCHMARKS.md).
        """
        from deepscope.predict.domain import image_features, picture_features
        from deepscope.tasks.segment.flows import FLOW_SCALE
        from deepscope.predict.scale import rescale_image

        h, w = x.shape[:2]
        side = int(np.ceil(DOMAIN_WINDOW / max(scale, 1e-6)))
        if seen and "scaled" in seen and "outputs" in seen and side >= max(h, w):
            win = seen["scaled"]
            out = seen["outputs"] if self.postprocess_mode == "flows" else None
        else:
            r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
            win = rescale_image(x[r0:r0 + side, c0:c0 + side], scale)
            out = self.raw_outputs(model, win) if self.postprocess_mode == "flows" else None
        return np.concatenate([image_features(win, out, flow_scale=FLOW_SCALE), picture_features(win, out)])

    def check_domain(self, model: SegmentModel, x: np.ndarray, scale: float,
                     options: SegmentOptions | None = None, seen: dict[str, np.ndarray] | None = None
                     ) -> DomainResult:
        """Whether a prepared image looks like the model's training images (at the scale it was segmented;
        ``seen``: that pass's input and outputs, see :meth:`features`)."""
        from deepscope.predict.domain import domain_from_dict

        d = (options or self.options(model)).domain
        if not d:
            return NO_DOMAIN
        if model.runtime.domain is None:
            model.runtime.domain = domain_from_dict(dict(d))
        dm = model.runtime.domain
        ok, score = dm.check(self.features(model, x, scale, seen))
        return DomainResult(ok, round(score, 4), dm.score_threshold)

    def _domain_features(self, model: SegmentModel, images: list[np.ndarray]) -> np.ndarray:
        """Domain features of raw images, each seen as :meth:`run` sees it: segmented with the default options, at
        the scale it was segmented at (:meth:`features`, with the segmentation pass where it is the window)."""
        from deepscope.tasks.segment.sizing import segment_generalist

        opts = self.options(model)
        cfg = self.generalist_config(model, options=opts)
        rows = []
        for im in images:
            x = self.prepare(model, im)
            keep: dict[str, np.ndarray] = {}
            _, info = segment_generalist(x, lambda a: self.raw_outputs(model, a), mode=self.postprocess_mode,
                                         postprocess=opts.postprocess, config=cfg, device=model.device, keep=keep)
            rows.append(self.features(model, x, info.scale, keep))
        return np.array(rows)

    def fit_domain_check(self, model: SegmentModel, train_images: list[np.ndarray], valid_images: list[np.ndarray],
                         *, calibrated_on: str = "", **options: Any) -> dict[str, Any]:
        """Fit the domain check on raw training images and set its threshold on held-out ones (stored in the card).

        Each image is seen at the scale the model segments it at (its estimated diameter).
        """
        from deepscope.predict.domain import fit_ranges

        dm = fit_ranges(self._domain_features(model, train_images), self._domain_features(model, valid_images),
                        calibrated_on=calibrated_on, **options)
        model.update_output(domain=dm.to_dict())
        model.runtime.domain = None
        return {"threshold": dm.threshold, "n_train": dm.n_train}

    def fit_picture_check(self, model: SegmentModel, positives: dict[str, list[np.ndarray]],
                          negatives: dict[str, list[np.ndarray]], valid: dict[str, list[np.ndarray]], *,
                          calibrated_on: str = "", **options: Any) -> dict[str, Any]:
        """Add a picture check (:func:`deepscope.predict.domain.fit_picture_check`) to the card's
        ``feature-ranges`` domain check: raw microscopy images by kind (``positives``, ``valid``: never
        test images) against non-microscopy pictures by kind (``negatives``), each seen as the model
        sees it. The ranges are kept as they are; an image is in the domain only if both accept it.

        Raises
        ------
        ModelError
            If the card has no ``feature-ranges`` domain check to extend.
        """
        from deepscope.errors import ModelError
        from deepscope.predict.domain import RangeDomain, domain_from_dict, fit_picture_check

        d = self.options(model).domain
        dm = domain_from_dict(dict(d)) if d else None
        if not isinstance(dm, RangeDomain):
            raise ModelError(f"{model.name}: a picture check extends a feature-ranges domain check; fit that first "
                             "(fit_domain_check)")

        def feats(groups: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
            return {k: self._domain_features(model, v) for k, v in groups.items() if len(v)}

        pc = fit_picture_check(feats(positives), feats(negatives), feats(valid), calibrated_on=calibrated_on,
                               **options)
        model.update_output(domain=dm.with_classifier(pc).to_dict())
        model.runtime.domain = None
        return {"threshold": pc.threshold, "n_positive": pc.n_positive, "n_negative": pc.n_negative}

    # ------------------------------------------------------------------ tuning and training
    def tune_postprocess(self, model: SegmentModel, images: list[np.ndarray], labels: list[np.ndarray], *,
                         grid: dict[str, tuple[Any, ...]] | None = None) -> dict[str, Any]:
        """Choose post-processing settings that maximise the mean DSB score on held-out images.

        The network runs once per image (at its estimated scale); ``grid`` maps post-processing
        fields to the values tried (default: the probability threshold and the minimum size).
        """
        import itertools

        from deepscope.evaluate import match_instances
        from deepscope.tasks.segment.sizing import _probe
        from deepscope.predict.scale import rescale_image

        cfg = self.generalist_config(model)
        grid = grid or {"prob_threshold" if self.postprocess_mode == "flows" else "fg_threshold": (0.4, 0.5, 0.6),
                        "min_size": (12, 24, 36)}
        cached = []
        for im in images:
            x = self.prepare(model, im)
            est = _probe(x, lambda a: self.raw_outputs(model, a), cfg)[0]
            s = cfg.target_diameter / est if est else 1.0
            cached.append((self.raw_outputs(model, rescale_image(x, s)), x.shape[:2]))
        base = self.postprocess_config(model)
        best = (-1.0, base)
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            pp = dataclasses.replace(base, **dict(zip(keys, values)))
            score = float(np.mean([match_instances(lab, instances_from_outputs(o, self.postprocess_mode, pp,
                                                                               shape=shape)).mean_ap
                                   for (o, shape), lab in zip(cached, labels)]))
            if score > best[0]:
                best = (score, pp)
        model.update_output(postprocess=best[1].to_dict(), postprocess_tuned_dsb=round(best[0], 4))
        return best[1].to_dict()

    def default_monitor(self, model: SegmentModel) -> tuple[str, str]:
        return "val_dsb", "max"

    def training_task(self, model: SegmentModel, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int,
                      **options: Any) -> Any:
        if dataset.label_kind != "mask":
            raise InputError("segmentation needs a dataset of images paired with label images (masks=...)")

        opts = self.options(model)
        images, valid = self.prepare_dataset(model, dataset), self.prepare_dataset(model, valid_dataset)
        return self.training_task_class(
            images, self.mask_labels(dataset, images), batch_size=batch_size,
            valid_images=valid, valid_labels=self.mask_labels(valid_dataset, valid),
            target_diameter=float(opts.target_diameter), postprocess=opts.postprocess,
            stride=model.arch.stride, device=device, **options)

    def after_fit(self, model: SegmentModel, task: Any, valid_dataset: Any) -> None:
        if valid_dataset is None or not len(valid_dataset):
            return
        images = [valid_dataset.get_image(i) for i in range(len(valid_dataset))]
        labels = [valid_dataset.get_label(i) for i in range(len(valid_dataset))]
        self.tune_postprocess(model, images, labels)

    def after_fine_tune(self, model: SegmentModel, train_dataset: Any, valid_dataset: Any) -> None:
        """Widen the domain check's ranges to take in the user's images (the parent's kinds stay accepted)."""
        d = self.options(model).domain
        if not d:
            return
        from deepscope.predict.domain import RangeDomain

        parts = [p for p in (train_dataset, valid_dataset) if p is not None]
        images = [p.get_image(i) for p in parts for i in range(len(p))]
        dm = RangeDomain.from_dict(dict(d)).widened(self._domain_features(model, images),
                                             note=f"widened to the {len(images)} fine-tuning images")
        model.update_output(domain=dm.to_dict())
        model.runtime.domain = None


@register_task
class FlowSegmentation(GeneralistSegmentation):
    """``segment/flows``: probability logit, 5 x flow (row, col), log object size; instances by following the flows."""

    representation = "flows"
    postprocess_mode = "flows"
    output_names = ("probability_logit", "flow_y", "flow_x", "log_size")
    training_task_class = FlowSegmentTask
    out_channels = 4

    def parse_postprocess(self, settings: Any) -> Any:
        from deepscope.tasks.segment.flows import FlowPostprocessConfig

        return settings if isinstance(settings, FlowPostprocessConfig) else FlowPostprocessConfig.from_dict(
            dict(settings or {}))

    def flip_vectors(self, out: np.ndarray, rows: bool, cols: bool) -> None:
        if rows:
            out[1] = -out[1]
        if cols:
            out[2] = -out[2]


@register_task
class SizedDistanceSegmentation(GeneralistSegmentation):
    """``segment/sized-distance``: foreground logit, distance logit, log object size; seeded watershed."""

    representation = "sized-distance"
    postprocess_mode = "distance"
    training_task_class = DistanceSegmentTask
    out_channels = 3

    def parse_postprocess(self, settings: Any) -> Any:
        from deepscope.tasks.segment.instances import PostprocessConfig

        return settings if isinstance(settings, PostprocessConfig) else PostprocessConfig(**dict(settings or {}))


def image_kind(prepared: np.ndarray) -> str:
    """``"fluorescence"``, ``"brightfield"`` or ``"he"``: the kind of a prepared (normalised) image.

    Bright objects on a dark background are fluorescence, whatever the colour (a DAPI image saved in
    the blue channel of an RGB file too); on a bright background, distinct colour channels make it a
    stained (H&E-like) image and equal ones brightfield. Used to pick kind-specific calibrations.
    """
    x = np.asarray(prepared, np.float32)
    grey = x.mean(-1) if x.ndim == 3 else x
    if float(np.median(grey)) <= 0.5:
        return "fluorescence"
    if x.ndim == 3 and x.shape[-1] >= 3:
        spread = float(np.mean(np.abs(x[..., 0] - x[..., 1])) + np.mean(np.abs(x[..., 1] - x[..., 2])))
        if spread > 0.05:
            return "he"
    return "brightfield"
