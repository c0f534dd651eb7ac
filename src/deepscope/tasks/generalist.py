"""Generalist segmentation plugins: any modality, any object size, and a domain check.

``segment/flows`` (Cellpose-style flow fields, :mod:`deepscope.predict.flows`) and
``segment/sized-distance`` (foreground + distance maps with a seeded watershed) share everything but
their representation: a three-channel input (grey images are replicated, RGBA loses its alpha), a
per-pixel object-size map that lets the model estimate each image's object diameter and rescale it
to the scale it was trained at (:mod:`deepscope.predict.generalist`), and a domain check
(:mod:`deepscope.predict.domain`) that says when an image looks unlike every training image.

Card ``output`` keys: ``target_diameter`` (pixels), ``probe_side``, ``tile``, ``overlap``,
``postprocess`` (the representation's config), ``domain`` (the fitted domain check, or absent).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from deepscope.errors import InputError
from deepscope.models import ArchConfig, InputSpec, SegmentModel, register_task
from deepscope.predict.domain import DomainResult, warn_out_of_domain
from deepscope.predict.generalist import GeneralistConfig, instances_from_outputs, segment_generalist
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.train.generalist import DistanceSegmentTask, FlowSegmentTask

__all__ = ["GeneralistSegmentation", "FlowSegmentation", "SizedDistanceSegmentation", "DomainResult",
           "generalist_spec", "warn_out_of_domain", "image_kind"]

#: Side (pixels, at the model's scale) of the central window whose encoder features feed the domain check.
DOMAIN_WINDOW = 256


def generalist_spec() -> InputSpec:
    """The input spec of the generalist models: grey or colour, percentile-normalised over all channels."""
    return InputSpec(channels=3, colour="rgb", normalize="percentile", low=1, high=99.8)


class GeneralistSegmentation(TorchTaskPlugin):
    """Shared behaviour of the generalist segmenters (see the module docstring)."""

    task = "segment"
    model_class = SegmentModel
    training_task_class: ClassVar[type] = FlowSegmentTask
    out_channels: ClassVar[int] = 4
    #: predict_image(return_info=True) returns (labels, [classes,] SegmentInfo, DomainResult).
    reports_info: ClassVar[bool] = True

    # ------------------------------------------------------------------ card
    def default_architecture(self, *, base: int = 32, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=3, out_channels=self.out_channels, base=base, depth=4)

    def default_output(self, arch: ArchConfig, **options: Any) -> dict[str, Any]:
        return {"n_classes": 1, "class_names": [], "target_diameter": 17.0, "probe_side": 256, "tile": 1024,
                "overlap": 64, "size_channel": True,
                "postprocess": self.training_task_class.default_postprocess().to_dict(), **options}

    def postprocess_config(self, model: SegmentModel) -> Any:
        raise NotImplementedError

    def generalist_config(self, model: SegmentModel, *, tile: int | None = None,
                          overlap: int | None = None) -> GeneralistConfig:
        out = model.model_card.output
        return GeneralistConfig(target_diameter=float(out.get("target_diameter", 17.0)),
                                probe_side=int(out.get("probe_side", 256)), tile=int(tile or out.get("tile", 1024)),
                                overlap=int(out.get("overlap", 64) if overlap is None else overlap))

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
        return acc / 4.0

    def flip_vectors(self, out: np.ndarray, rows: bool, cols: bool) -> None:
        """Fix vector components of outputs flipped along rows / columns (in place); default: none."""

    def maps(self, model: SegmentModel, image: np.ndarray, *, tta: str = "none", channel: int | None = None,
             prepared: bool = False) -> np.ndarray:
        """Raw output maps ``(K, H, W)`` of one image at its own scale (no rescaling, no tiling)."""
        x = image if prepared else self.prepare(model, image, channel=channel)
        return self.raw_outputs(model, x, tta=tta)

    def predict_image(self, model: SegmentModel, image: np.ndarray, *, tile: int | None = None,
                      overlap: int | None = None, tta: str = "none", channel: int | None = None,
                      return_classes: bool = False, out: np.ndarray | None = None, diameter: float | None = None,
                      return_info: bool = False, checked: bool = False) -> Any:
        """Instance labels (int32, 0 = background, the input's height and width).

        The object diameter is estimated (or ``diameter=`` in pixels), the image rescaled to the
        model's scale, segmented (tile by tile when large) and the labels made at the input's
        resolution. ``return_info=True`` also returns :class:`deepscope.predict.generalist.SegmentInfo`
        (diameter, its source, scale, passes) and the :class:`DomainResult`. ``checked=True``: the pixels
        were checked already (:func:`deepscope.predict.inputs.model_input`).
        """
        x = self.prepare(model, image, channel=channel, checked=checked)
        cfg = self.generalist_config(model, tile=tile, overlap=overlap)

        def run(a: np.ndarray) -> np.ndarray:
            return self.raw_outputs(model, a, tta=tta)

        labels, info = segment_generalist(x, run, mode=self.postprocess_mode, postprocess=self.postprocess_config(model),
                                          config=cfg, diameter=diameter, device=model.device, out=out)
        result: tuple[Any, ...] = (labels,)
        if return_classes:
            result += ({},)
        if return_info:
            result += (info, self.check_domain(model, x, info.scale))
        return result if len(result) > 1 else labels

    postprocess_mode: ClassVar[str] = ""

    # ------------------------------------------------------------------ domain check
    def features(self, model: SegmentModel, x: np.ndarray, scale: float) -> np.ndarray:
        """Domain features (:func:`deepscope.predict.domain.image_features`) of a prepared image seen at
        ``scale``: its central window of ``DOMAIN_WINDOW`` pixels at the model's scale, and the model's
        outputs there."""
        from deepscope.predict.domain import image_features
        from deepscope.predict.flows import FLOW_SCALE
        from deepscope.predict.scale import rescale_image

        h, w = x.shape[:2]
        side = int(np.ceil(DOMAIN_WINDOW / max(scale, 1e-6)))
        r0, c0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        win = rescale_image(x[r0:r0 + side, c0:c0 + side], scale)
        out = self.raw_outputs(model, win) if self.postprocess_mode == "flows" else None
        return image_features(win, out, flow_scale=FLOW_SCALE)

    def check_domain(self, model: SegmentModel, x: np.ndarray, scale: float) -> DomainResult:
        """Whether a prepared image looks like the model's training images (at the scale it was segmented)."""
        from deepscope.predict.domain import domain_from_dict

        d = model.model_card.output.get("domain")
        if not d:
            return DomainResult(None, None, None)
        dm = model.runtime.get("domain_model")
        if dm is None:
            dm = model.runtime["domain_model"] = domain_from_dict(d)
        ok, score = dm.check(self.features(model, x, scale))
        return DomainResult(ok, round(score, 4), dm.threshold)

    def _domain_features(self, model: SegmentModel, images: list[np.ndarray]) -> np.ndarray:
        """Domain features of raw images, each seen at the scale the model segments it at (its estimated diameter)."""
        from deepscope.predict.generalist import _probe

        cfg = self.generalist_config(model)
        rows = []
        for im in images:
            x = self.prepare(model, im)
            est = _probe(x, lambda a: self.raw_outputs(model, a), cfg)[0]
            rows.append(self.features(model, x, cfg.target_diameter / est if est else 1.0))
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
        model.runtime.pop("domain_model", None)
        return {"threshold": dm.threshold, "n_train": dm.n_train}

    # ------------------------------------------------------------------ tuning and training
    def tune_postprocess(self, model: SegmentModel, images: list[np.ndarray], labels: list[np.ndarray], *,
                         grid: dict[str, tuple[Any, ...]] | None = None) -> dict[str, Any]:
        """Choose post-processing settings that maximise the mean DSB score on held-out images.

        The network runs once per image (at its estimated scale); ``grid`` maps post-processing
        fields to the values tried (default: the probability threshold and the minimum size).
        """
        import itertools

        from deepscope.evaluate import match_instances
        from deepscope.predict.generalist import _probe
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

        out = model.model_card.output
        images, valid = self.prepare_dataset(model, dataset), self.prepare_dataset(model, valid_dataset)
        return self.training_task_class(
            images, self.mask_labels(dataset, images), batch_size=batch_size,
            valid_images=valid, valid_labels=self.mask_labels(valid_dataset, valid),
            target_diameter=float(out.get("target_diameter", 17.0)), postprocess=self.postprocess_config(model),
            stride=model.arch.stride, device=device, **options)

    def after_fit(self, model: SegmentModel, task: Any, valid_dataset: Any) -> None:
        if valid_dataset is None or not len(valid_dataset):
            return
        images = [valid_dataset.get_image(i) for i in range(len(valid_dataset))]
        labels = [valid_dataset.get_label(i) for i in range(len(valid_dataset))]
        self.tune_postprocess(model, images, labels)

    def after_fine_tune(self, model: SegmentModel, train_dataset: Any, valid_dataset: Any) -> None:
        """Widen the domain check's ranges to take in the user's images (the parent's kinds stay accepted)."""
        d = model.model_card.output.get("domain")
        if not d:
            return
        from deepscope.predict.domain import RangeDomain

        parts = [p for p in (train_dataset, valid_dataset) if p is not None]
        images = [p.get_image(i) for p in parts for i in range(len(p))]
        dm = RangeDomain.from_dict(d).widened(self._domain_features(model, images),
                                             note=f"widened to the {len(images)} fine-tuning images")
        model.update_output(domain=dm.to_dict())
        model.runtime.pop("domain_model", None)


@register_task
class FlowSegmentation(GeneralistSegmentation):
    """``segment/flows``: probability logit, 5 x flow (row, col), log object size; instances by following the flows."""

    representation = "flows"
    postprocess_mode = "flows"
    training_task_class = FlowSegmentTask
    out_channels = 4

    def postprocess_config(self, model: SegmentModel) -> Any:
        from deepscope.predict.flows import FlowPostprocessConfig

        return FlowPostprocessConfig.from_dict(model.model_card.output.get("postprocess", {}))

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

    def postprocess_config(self, model: SegmentModel) -> Any:
        from deepscope.predict.instances import PostprocessConfig

        return PostprocessConfig(**model.model_card.output.get("postprocess", {}))


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
