"""Segmentation plugins: what every segment plugin shares (:class:`SegmentPlugin`: options, the result, the
file outputs) and ``segment/instances`` (foreground + normalised distance maps, optional class maps, seeded
watershed) and ``segment/foreground`` (foreground only, connected components: the book's U-Net)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from deepscope.errors import InputError, ModelError
from deepscope.models import ArchConfig, SegmentModel, register_task
from deepscope.tasks.segment.instances import (PostprocessConfig, class_per_instance, instances_from_maps,
                                               segmentation_maps)
from deepscope.predict.predictor import label_tiles
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.tasks.options import shrink_overlap
from deepscope.tasks.segment.files import SegmentOutputs
from deepscope.tasks.segment.options import SegmentOptions, SegmentResult
from deepscope.tasks.segment.pipeline_step import SegmentStep
from deepscope.tasks.segment.training import SegmentTask

__all__ = ["SegmentPlugin", "InstanceSegmentation", "ForegroundSegmentation", "Progress"]

#: Pixels sampled for the whole-image normalisation of an image segmented tile by tile.
NORM_SAMPLE = 4_000_000

#: ``progress(done, total)`` after each tile of an out-of-core image.
Progress = Callable[[int, int], None]


class SegmentPlugin(TorchTaskPlugin):
    """What every segment plugin shares: :class:`SegmentOptions` (with the tile-overlap rule and the diameter
    check), :class:`SegmentResult` and the legacy ``predict_image`` forms."""

    task = "segment"
    model_class = SegmentModel
    options_class = SegmentOptions
    file_outputs_class = SegmentOutputs
    pipeline_step = SegmentStep
    #: Whether the plugin estimates the object diameter (and takes ``diameter``) and reports it in its results.
    estimates_diameter: ClassVar[bool] = False
    postprocessing_note = ("instances are made from the maps by deepscope's post-processing (seeded watershed on the "
                           "distance map, or following the flows for the generalist), with the thresholds in "
                           "config.deepscope.card.output.")

    def options(self, model: SegmentModel, *, tile: int | None = None, overlap: int | None = None,
                **given: Any) -> SegmentOptions:
        """The options of one call. ``tile`` without ``overlap`` shrinks the card's overlap to a quarter of a tile
        too small to hold it (:func:`deepscope.tasks.options.shrink_overlap`), so ``tile: 128`` works everywhere.

        ``prob_threshold``, ``flow_threshold`` and ``min_size`` replace the card's post-processing values
        (:class:`SegmentOptions`).

        Raises
        ------
        deepscope.errors.ModelError
            ``diameter`` for a model that segments images at their own scale.
        deepscope.errors.InputError
            A threshold out of range, or ``flow_threshold`` for a model that does not follow flows.
        """
        opts: SegmentOptions = super().options(model, **given)
        if opts.diameter is not None and not self.estimates_diameter:
            raise ModelError(f"model {model.name!r} segments images at their own scale and takes no diameter; the "
                             "generalist model (nuclei) rescales images to their object size")
        tile = tile or None  # 0: the card's
        used = shrink_overlap(int(opts.overlap), tile, overlap)
        try:  # the typed post-processing takes the caller's thresholds (prob_threshold, flow_threshold, min_size)
            return dataclasses.replace(opts, tile=int(tile or opts.tile),
                                       overlap=int(opts.overlap if used is None else used),
                                       postprocess=self.parse_postprocess(opts.postprocess))
        except InputError as exc:
            raise InputError(f"model {model.name!r}: {exc}") from None

    def parse_postprocess(self, settings: Any) -> Any:
        """The representation's typed post-processing settings from the card's ``postprocess`` mapping (default:
        the mapping as it is)."""
        return settings

    def postprocess_config(self, model: SegmentModel) -> Any:
        """The model's post-processing settings (typed)."""
        return self.options(model).postprocess

    def run(self, model: SegmentModel, image: np.ndarray, options: SegmentOptions, *,
            out: np.ndarray | None = None) -> SegmentResult:
        """Instance labels of one raw image (``out``: where to write them, e.g. a memory map)."""
        raise NotImplementedError

    def run_large(self, model: SegmentModel, x: Any, options: SegmentOptions, *, out: Any,
                  progress: Progress | None = None) -> SegmentResult:
        """Segment a prepared image read lazily region by region (:class:`deepscope.predict.large.LazyInput`)
        into ``out`` tile by tile, with ``progress(done, total)`` after each tile."""
        raise NotImplementedError

    def info_columns(self) -> dict[str, Any]:
        """The columns this representation adds to a segment table (with their empty values): the diameter an
        image was segmented at and the domain check's verdict, for models that estimate the object size."""
        if not self.estimates_diameter:
            return {}
        return {"diameter": np.nan, "diameter_source": "", "in_domain": None, "domain_score": np.nan}

    def info_row(self, result: SegmentResult) -> dict[str, Any]:
        """The values of :meth:`info_columns` for one result."""
        if not self.estimates_diameter or result.info is None:
            return {}
        dom = result.domain
        return {"diameter": result.info.diameter, "diameter_source": result.info.diameter_source,
                "in_domain": dom.in_domain, "domain_score": np.nan if dom.score is None else dom.score}

    def predict_image(self, model: SegmentModel, image: np.ndarray, *, return_classes: bool = False,
                      return_info: bool = False, out: np.ndarray | None = None, **given: Any) -> Any:
        """Instance labels (int32, 0 = background, same height/width as ``image``); with ``return_classes``
        also the class of each instance, with ``return_info`` also the size information and the domain verdict:
        ``(labels, [classes,] info, domain)``. :meth:`run` gives them all as a :class:`SegmentResult`."""
        r = self.run(model, image, self.options(model, **given), out=out)
        got: tuple[Any, ...] = (r.labels,)
        if return_classes:
            got += (dict(r.classes),)
        if return_info:
            got += (r.info, r.domain)
        return got if len(got) > 1 else r.labels


@register_task
class InstanceSegmentation(SegmentPlugin):
    """``segment/instances``: channel 0 foreground logit, channel 1 normalised distance to the boundary,
    then (``n_classes > 1``) one logit per class; seeded watershed on the distance map."""

    representation = "instances"
    training_task_class = SegmentTask
    #: Whether the network predicts the distance map (the watershed's seeds).
    distance: ClassVar[bool] = True
    output_names: ClassVar[tuple[str, ...]] = ("foreground", "distance")

    def export_activation(self, y: Any) -> Any:
        import torch

        return torch.cat([torch.sigmoid(y[:, :1]), y[:, 1:]], dim=1)

    @property
    def option_defaults(self) -> Mapping[str, Any]:  # type: ignore[override]
        return MappingProxyType({"postprocess": {"mode": "watershed" if self.distance else "components"}})

    def default_architecture(self, *, n_classes: int = 1, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=1, out_channels=2 + (n_classes if n_classes > 1 else 0), base=8, depth=4)

    def default_output(self, arch: ArchConfig, *, n_classes: int = 1, class_names: list[str] | None = None,
                       **options: Any) -> dict[str, Any]:
        defaults = self.options_class.parse(defaults=self.option_defaults, n_classes=n_classes,
                                            class_names=tuple(class_names or ()))
        return {**defaults.card_output(("n_classes", "class_names", "postprocess", "tile", "overlap")), **options}

    def parse_postprocess(self, settings: Any) -> PostprocessConfig:
        return settings if isinstance(settings, PostprocessConfig) else PostprocessConfig(**dict(settings or {}))

    # ------------------------------------------------------------------ inference
    def maps(self, model: SegmentModel, image: np.ndarray, *, tta: str = "none", channel: int | None = None,
             prepared: bool = False, checked: bool = False) -> np.ndarray:
        """Activated output maps ``(C, H, W)`` of one image (no tiling)."""
        x = image if prepared else self.prepare(model, image, channel=channel, checked=checked)
        out = self.predictor(model, tta=tta).maps([x])[0]
        return segmentation_maps(out, x.shape[:2], distance=self.distance, n_classes=model.n_classes)

    def labels_from_maps(self, model: SegmentModel, m: np.ndarray,
                         options: SegmentOptions | None = None) -> tuple[np.ndarray, dict[int, int]]:
        """Post-processing: instance labels and the class of each instance from activated maps."""
        opts = options or self.options(model)
        labels = instances_from_maps(m[0], m[1] if self.distance else None, opts.postprocess)
        classes: dict[int, int] = {}
        if opts.n_classes > 1:
            classes = class_per_instance(labels, m[2:2 + opts.n_classes])
        return labels, classes

    def run(self, model: SegmentModel, image: np.ndarray, options: SegmentOptions, *,
            out: np.ndarray | None = None) -> SegmentResult:
        """Instance labels (int32, 0 = background, same height/width as ``image``) and classes.

        Images larger than ``options.tile`` are processed tile by tile with ``options.overlap`` pixels of
        context, normalised with the whole image's parameters; each object is kept by the one tile whose core
        holds its centre, so nothing is cut or duplicated at tile borders, and memory stays bounded by the
        tile size plus the output label image (which may be a ``numpy.memmap`` passed as ``out``).

        Raises
        ------
        deepscope.errors.InputError
            Image not 2-D, or channels that do not fit the model.
        """
        from deepscope.models.spec import select_channels

        x = np.asarray(image)
        tile, overlap, tta = int(options.tile), int(options.overlap), options.tta
        h, w = x.shape[:2]
        if h <= tile and w <= tile:
            labels, classes = self.labels_from_maps(model, self.maps(model, x, tta=tta, channel=options.channel,
                                                                     checked=options.checked), options)
            if out is not None:
                out[...] = labels
                labels = out
        else:
            x = select_channels(x, model.spec, channel=options.channel, model=model.name, checked=options.checked)
            lo, scale = model.spec.norm_params(x, max_pixels=NORM_SAMPLE)

            def one_tile(read: tuple[slice, slice]) -> tuple[np.ndarray, dict[int, int]]:
                sub = (np.asarray(x[read], dtype=np.float32) - lo) / scale
                return self.labels_from_maps(model, self.maps(model, sub if sub.ndim == 3 else sub[..., None],
                                                              tta=tta, prepared=True), options)

            labels, classes = label_tiles((h, w), tile, overlap, one_tile, out=out)
        return SegmentResult(labels, classes)

    def run_large(self, model: SegmentModel, x: Any, options: SegmentOptions, *, out: Any,
                  progress: Progress | None = None) -> SegmentResult:
        from deepscope.predict.engine import tile_grid

        h, w = x.shape[:2]
        tile, overlap = int(options.tile), int(options.overlap)
        grid = tile_grid((h, w), tile, overlap)
        done = [0]

        def one_tile(read: tuple[slice, slice]) -> tuple[np.ndarray, dict[int, int]]:
            labels, classes = self.labels_from_maps(model, self.maps(model, x[read], tta=options.tta, prepared=True),
                                                    options)
            done[0] += 1
            if progress is not None:
                progress(done[0], len(grid))
            return labels, classes

        labels, classes = label_tiles((h, w), tile, overlap, one_tile, out=out)
        return SegmentResult(labels, classes, info=None)

    def tune_postprocess(self, model: SegmentModel, images: list[np.ndarray], labels: list[np.ndarray], *,
                         fg: tuple[float, ...] = (0.4, 0.5, 0.6),
                         seed: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)) -> dict[str, Any]:
        """Choose foreground and seed thresholds that maximise the DSB score on held-out images."""
        from deepscope.evaluate import match_instances

        maps = [self.maps(model, im) for im in images]
        base = self.postprocess_config(model)
        best = (-1.0, base)
        for f in fg:
            for s in seed:
                cfg = PostprocessConfig(fg_threshold=f, seed_threshold=s, min_size=base.min_size,
                                        min_seed_size=base.min_seed_size, mode="watershed")
                score = float(np.mean([match_instances(lab, instances_from_maps(m[0], m[1], cfg)).mean_ap
                                       for m, lab in zip(maps, labels)]))
                if score > best[0]:
                    best = (score, cfg)
        model.update_output(postprocess=best[1].to_dict(), postprocess_tuned_dsb=best[0])
        return best[1].to_dict()

    # ------------------------------------------------------------------ training
    def default_monitor(self, model: SegmentModel) -> tuple[str, str]:
        return "val_dsb", "max"

    def training_task(self, model: SegmentModel, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int,
                      **options: Any) -> SegmentTask:
        if dataset.label_kind != "mask":
            raise InputError("segmentation needs a dataset of images paired with label images (masks=...)")
        binary = model.n_classes == 1  # a class map keys instance ids: keep them as given
        images, valid = self.prepare_dataset(model, dataset), self.prepare_dataset(model, valid_dataset)
        return SegmentTask(images, self.mask_labels(dataset, images, binary=binary),
                           n_classes=model.n_classes, mode=self.representation, batch_size=batch_size,
                           valid_images=valid, valid_labels=self.mask_labels(valid_dataset, valid, binary=binary),
                           postprocess=self.postprocess_config(model),
                           stride=model.arch.stride, device=device, **options)

    def after_fit(self, model: SegmentModel, task: Any, valid_dataset: Any) -> None:
        if valid_dataset is None or not len(valid_dataset):
            return
        images = [valid_dataset.get_image(i) for i in range(len(valid_dataset))]
        labels = [valid_dataset.get_label(i) for i in range(len(valid_dataset))]
        self.tune_postprocess(model, images, labels)


@register_task
class ForegroundSegmentation(InstanceSegmentation):
    """``segment/foreground``: one foreground logit; instances are its connected components (the book's U-Net)."""

    representation = "foreground"
    distance = False
    output_names = ()

    def export_activation(self, y: Any) -> Any:
        return y  # the raw logit, as exported before

    def default_architecture(self, **options: Any) -> ArchConfig:
        return ArchConfig("book-unet")

    def default_monitor(self, model: SegmentModel) -> tuple[str, str]:
        return "val_loss", "min"

    def tune_postprocess(self, model: SegmentModel, images: list[np.ndarray], labels: list[np.ndarray],
                         **options: Any) -> dict[str, Any]:
        raise InputError("foreground-only models have no seed threshold to tune (instances are connected "
                         "components of the foreground)")

    def after_fit(self, model: SegmentModel, task: Any, valid_dataset: Any) -> None:
        """Nothing to tune."""
