"""Segmentation plugins: ``segment/instances`` (foreground + normalised distance maps, optional class maps,
seeded watershed) and ``segment/foreground`` (foreground only, connected components: the book's U-Net)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.models import ArchConfig, SegmentModel, register_task
from deepscope.predict.instances import PostprocessConfig, class_per_instance, instances_from_maps, segmentation_maps
from deepscope.predict.predictor import label_tiles
from deepscope.tasks.base import TorchTaskPlugin
from deepscope.train.tasks import SegmentTask

__all__ = ["InstanceSegmentation", "ForegroundSegmentation"]

#: Pixels sampled for the whole-image normalisation of an image segmented tile by tile.
NORM_SAMPLE = 4_000_000


@register_task
class InstanceSegmentation(TorchTaskPlugin):
    """``segment/instances``: channel 0 foreground logit, channel 1 normalised distance to the boundary,
    then (``n_classes > 1``) one logit per class; seeded watershed on the distance map."""

    task = "segment"
    representation = "instances"
    model_class = SegmentModel
    training_task_class = SegmentTask
    #: Whether the network predicts the distance map (the watershed's seeds).
    distance = True

    def default_architecture(self, *, n_classes: int = 1, **options: Any) -> ArchConfig:
        return ArchConfig("unet", in_channels=1, out_channels=2 + (n_classes if n_classes > 1 else 0), base=8, depth=4)

    def default_output(self, arch: ArchConfig, *, n_classes: int = 1, class_names: list[str] | None = None,
                       **options: Any) -> dict[str, Any]:
        return {"n_classes": n_classes, "class_names": list(class_names or []),
                "postprocess": {"mode": "watershed" if self.distance else "components"}, "tile": 1024, "overlap": 96,
                **options}

    def postprocess_config(self, model: SegmentModel) -> PostprocessConfig:
        return PostprocessConfig(**model.model_card.output.get("postprocess", {}))

    # ------------------------------------------------------------------ inference
    def maps(self, model: SegmentModel, image: np.ndarray, *, tta: str = "none", channel: int | None = None,
             prepared: bool = False, checked: bool = False) -> np.ndarray:
        """Activated output maps ``(C, H, W)`` of one image (no tiling)."""
        x = image if prepared else self.prepare(model, image, channel=channel, checked=checked)
        out = self.predictor(model, tta=tta).maps([x])[0]
        return segmentation_maps(out, x.shape[:2], distance=self.distance, n_classes=model.n_classes)

    def labels_from_maps(self, model: SegmentModel, m: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
        """Post-processing: instance labels and the class of each instance from activated maps."""
        labels = instances_from_maps(m[0], m[1] if self.distance else None, self.postprocess_config(model))
        classes: dict[int, int] = {}
        if model.n_classes > 1:
            classes = class_per_instance(labels, m[2:2 + model.n_classes])
        return labels, classes

    def predict_image(self, model: SegmentModel, image: np.ndarray, *, tile: int | None = None,
                      overlap: int | None = None, tta: str = "none", channel: int | None = None,
                      return_classes: bool = False, out: np.ndarray | None = None, checked: bool = False) -> Any:
        """Instance labels (int32, 0 = background, same height/width as ``image``).

        Images larger than ``tile`` (default from the card, 1024) are processed tile by tile with
        ``overlap`` pixels of context, normalised with the whole image's parameters; each object is kept
        by the one tile whose core holds its centre, so nothing is cut or duplicated at tile borders,
        and memory stays bounded by the tile size plus the output label image (which may be a
        ``numpy.memmap`` passed as ``out``). ``checked=True``: the pixels were checked already (the file
        driver's :func:`deepscope.predict.inputs.model_input`), so they are not scanned again.

        Raises
        ------
        deepscope.errors.InputError
            Image not 2-D, or channels that do not fit the model.
        """
        from deepscope.models.spec import select_channels

        output = model.model_card.output
        x = np.asarray(image)
        tile = int(tile or output.get("tile", 1024))
        overlap = int(overlap if overlap is not None else output.get("overlap", 96))
        h, w = x.shape[:2]
        if h <= tile and w <= tile:
            labels, classes = self.labels_from_maps(model, self.maps(model, x, tta=tta, channel=channel,
                                                                     checked=checked))
            if out is not None:
                out[...] = labels
                labels = out
        else:
            x = select_channels(x, model.spec, channel=channel, model=model.name, checked=checked)
            lo, scale = model.spec.norm_params(x, max_pixels=NORM_SAMPLE)

            def one_tile(read: tuple[slice, slice]) -> tuple[np.ndarray, dict[int, int]]:
                sub = (np.asarray(x[read], dtype=np.float32) - lo) / scale
                return self.labels_from_maps(model, self.maps(model, sub if sub.ndim == 3 else sub[..., None],
                                                              tta=tta, prepared=True))

            labels, classes = label_tiles((h, w), tile, overlap, one_tile, out=out)
        return (labels, classes) if return_classes else labels

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
