"""Instance segmentation models: a U-Net predicting foreground + distance maps with seeded watershed,
multi-class output for typed objects, and the book's U-Net; tiled inference for large images."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import InputError
from deepscope.models.base import DeepscopeModel
from deepscope.models.config import ArchConfig
from deepscope.models.spec import InputSpec

__all__ = ["SegmentModel"]


class SegmentModel(DeepscopeModel):
    """Segment objects (nuclei, cells) into instances.

    Output channels: foreground probability, normalised distance to the boundary (seeds for the
    watershed that separates touching objects), and, with ``n_classes > 1``, per-class
    probabilities (the class of each instance is the majority over its pixels).
    ``SegmentModel.book()`` is the chapter's small U-Net (foreground only; instances are its
    connected components).
    """

    task = "segment"

    def __init__(self, arch: ArchConfig | None = None, spec: InputSpec | None = None, *, n_classes: int = 1,
                 class_names: list[str] | None = None, **kwargs: Any) -> None:
        mode_default = "instances"
        if arch is None:
            arch = ArchConfig("unet", in_channels=1, out_channels=2 + (n_classes if n_classes > 1 else 0),
                              base=8, depth=4)
        if arch.arch == "book-unet":
            mode_default = "foreground"
        super().__init__(arch, spec, **kwargs)
        out = self.card["output"]
        out.setdefault("mode", mode_default)
        out.setdefault("n_classes", n_classes)
        out.setdefault("class_names", class_names or [])
        out.setdefault("postprocess", {"mode": "components" if out["mode"] == "foreground" else "watershed"})
        out.setdefault("tile", 1024)
        out.setdefault("overlap", 96)

    @classmethod
    def book(cls, **kwargs: Any) -> SegmentModel:
        """The book's U-Net (inputs scaled by 1/255, sigmoid cross-entropy on the foreground)."""
        return cls(ArchConfig("book-unet"), InputSpec(normalize="fixed", scale=255.0), **kwargs)

    @property
    def mode(self) -> str:
        return str(self.card["output"]["mode"])

    @property
    def n_classes(self) -> int:
        return int(self.card["output"].get("n_classes", 1))

    @property
    def generalist(self) -> bool:
        """True for models that estimate object size and work at one scale (modes "flows"/"distance")."""
        return self.mode in ("flows", "distance")

    @property
    def postprocess(self) -> Any:
        if self.mode == "flows":
            from deepscope.predict.flows import FlowPostprocessConfig

            return FlowPostprocessConfig.from_dict(self.card["output"].get("postprocess", {}))
        from deepscope.predict.instances import PostprocessConfig

        return PostprocessConfig(**self.card["output"].get("postprocess", {}))

    def generalist_config(self) -> Any:
        """Size-estimation and tiling options of a generalist model (from the card)."""
        from deepscope.predict.generalist import GeneralistConfig

        out = self.card["output"]
        return GeneralistConfig(target_diameter=float(out.get("target_diameter", 17.0)),
                                probe_side=int(out.get("probe_side", 256)), tile=int(out.get("tile", 1024)),
                                overlap=int(out.get("overlap", 64)))

    def raw_outputs(self, x: np.ndarray, *, tta: str = "none") -> np.ndarray:
        """Raw network outputs ``(K, h, w)`` of a prepared ``(h, w, C)`` image (no activation, no tiling).

        ``tta="flips"`` averages the outputs of the image and its three flips; flow components are
        flipped with the image (a mirrored flow field points the other way along the mirror axis).
        """
        from deepscope.predict.engine import run_network

        if tta == "none":
            return run_network(self._eval_net(), [x], stride=self.arch.stride, device=self.device)[0]
        if tta != "flips":
            raise InputError(f"tta={tta!r} for a generalist model must be 'none' or 'flips'")
        acc = None
        for fr, fc in ((False, False), (True, False), (False, True), (True, True)):
            xi = x[::-1] if fr else x
            xi = xi[:, ::-1] if fc else xi
            o = run_network(self._eval_net(), [np.ascontiguousarray(xi)], stride=self.arch.stride,
                            device=self.device)[0]
            o = o[:, ::-1] if fr else o
            o = o[:, :, ::-1] if fc else o
            o = np.array(o)
            if self.mode == "flows":
                if fr:
                    o[1] = -o[1]
                if fc:
                    o[2] = -o[2]
            acc = o if acc is None else acc + o
        return acc / 4.0

    # ------------------------------------------------------------------ training
    def default_monitor(self) -> tuple[str, str]:
        return ("val_dsb", "max") if self.mode == "instances" else ("val_loss", "min")

    def make_task(self, dataset: Any, valid_dataset: Any, *, device: Any, batch_size: int, **opts: Any) -> Any:
        from deepscope.train.tasks import SegmentTask

        if dataset.label_kind != "mask":
            raise InputError("segmentation needs a dataset of images paired with label images (masks=...)")
        imgs = [self.prepare(dataset.get_image(i), path=str(dataset.ids[i])) for i in range(len(dataset))]
        labs = [dataset.get_label(i) for i in range(len(dataset))]
        vimgs, vlabs = [], []
        if valid_dataset is not None and len(valid_dataset):
            vimgs = [self.prepare(valid_dataset.get_image(i)) for i in range(len(valid_dataset))]
            vlabs = [valid_dataset.get_label(i) for i in range(len(valid_dataset))]
        return SegmentTask(imgs, labs, n_classes=self.n_classes, mode=self.mode, batch_size=batch_size,
                           valid_images=vimgs, valid_labels=vlabs, postprocess=self.postprocess,
                           stride=self.arch.stride, device=device, **opts)

    def after_fit(self, task: Any, valid_dataset: Any) -> None:
        if self.mode != "instances" or valid_dataset is None or not len(valid_dataset):
            return
        images = [valid_dataset.get_image(i) for i in range(len(valid_dataset))]
        labels = [valid_dataset.get_label(i) for i in range(len(valid_dataset))]
        self.tune_postprocess(images, labels)

    def tune_postprocess(self, images: list[np.ndarray], labels: list[np.ndarray], *,
                         fg: tuple[float, ...] = (0.4, 0.5, 0.6),
                         seed: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)) -> dict[str, Any]:
        """Choose foreground and seed thresholds that maximise the DSB score on held-out images."""
        from deepscope.evaluate import match_instances
        from deepscope.predict.instances import PostprocessConfig, instances_from_maps

        maps = [self.maps(im) for im in images]
        base = self.postprocess
        best = (-1.0, base)
        for f in fg:
            for s in seed:
                cfg = PostprocessConfig(fg_threshold=f, seed_threshold=s, min_size=base.min_size,
                                        min_seed_size=base.min_seed_size, mode="watershed")
                score = float(np.mean([match_instances(lab, instances_from_maps(m[0], m[1], cfg)).mean_ap
                                       for m, lab in zip(maps, labels)]))
                if score > best[0]:
                    best = (score, cfg)
        self.card["output"]["postprocess"] = best[1].to_dict()
        self.card["output"]["postprocess_tuned_dsb"] = best[0]
        return best[1].to_dict()

    # ------------------------------------------------------------------ prediction
    def maps(self, image: np.ndarray, *, tta: str = "none", channel: int | None = None,
             prepared: bool = False) -> np.ndarray:
        """Activated output maps ``(C, H, W)`` of one image (no tiling)."""
        from deepscope.predict.engine import run_network
        from deepscope.train.tasks import activate_segmentation

        x = image if prepared else self.prepare(image, channel=channel)
        out = run_network(self._eval_net(), [x], stride=self.arch.stride, device=self.device, tta=tta)[0]
        if out.shape[-2:] != x.shape[:2]:  # networks working on binned input
            import torch
            import torch.nn.functional as F

            out = F.interpolate(torch.from_numpy(out)[None], size=x.shape[:2], mode="bilinear",
                                align_corners=False)[0].numpy()
        return activate_segmentation(out, self.mode, self.n_classes)

    def _labels_from_maps(self, m: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
        from deepscope.predict.instances import class_per_instance, instances_from_maps

        labels = instances_from_maps(m[0], m[1] if self.mode == "instances" else None, self.postprocess)
        classes: dict[int, int] = {}
        if self.n_classes > 1:
            classes = class_per_instance(labels, m[2:2 + self.n_classes])
        return labels, classes

    def predict_image(self, image: np.ndarray, *, tile: int | None = None, overlap: int | None = None,
                      tta: str = "none", channel: int | None = None, return_classes: bool = False,
                      out: np.ndarray | None = None, diameter: float | None = None,
                      return_info: bool = False) -> Any:
        """Instance labels (int32, 0 = background, same height/width as ``image``).

        Generalist models (``output.mode`` ``"flows"`` or ``"distance"``) estimate the object diameter
        of the image (or take ``diameter=``, in pixels), rescale it to their training scale and back
        (see :mod:`deepscope.predict.generalist`); ``return_info=True`` then also returns the
        :class:`~deepscope.predict.generalist.SegmentInfo` (diameter used, its source, scale, passes).

        Images larger than ``tile`` (default from the card, 1024) are processed tile by tile with
        ``overlap`` pixels of context; each object is kept by the one tile whose core holds its
        centre, so nothing is cut or duplicated at tile borders, and memory stays bounded by the
        tile size plus the output label image (which may be a ``numpy.memmap`` passed as ``out``).

        Raises
        ------
        deepscope.errors.InputError
            Image not 2-D, or channels that do not fit the model.
        """
        from deepscope.data.transforms import to_grey

        if self.generalist:
            return self._predict_generalist(image, tile=tile, overlap=overlap, channel=channel, out=out, tta=tta,
                                            diameter=diameter, return_classes=return_classes,
                                            return_info=return_info)
        if diameter is not None:
            raise InputError(f"model {self.name!r} works at the scale of its input and takes no diameter; "
                             "a generalist model (e.g. 'nuclei') rescales images to its object size")
        x = np.asarray(image)
        tile = int(tile or self.card["output"].get("tile", 1024))
        overlap = int(overlap if overlap is not None else self.card["output"].get("overlap", 96))
        h, w = x.shape[:2]
        if h <= tile and w <= tile:
            m = self.maps(x, tta=tta, channel=channel)
            labels, classes = self._labels_from_maps(m)
            if out is not None:
                out[...] = labels
                labels = out
            return (labels, classes) if return_classes else labels
        # --- tiled: global normalisation parameters from a subsample, per-tile prediction
        if self.spec.channels == 1:
            if channel is not None and x.ndim == 3:
                x = x[..., channel]
            x = to_grey(x, rule=self.spec.grey)
        lo, scale = _norm_params(x, self.spec)
        labels_out = out if out is not None else np.zeros((h, w), dtype=np.int32)
        classes_all: dict[int, int] = {}
        next_id = 1
        from deepscope.predict.engine import tile_grid

        for t in tile_grid((h, w), tile, overlap):
            sub = (np.asarray(x[t.read], dtype=np.float32) - lo) / scale
            if sub.ndim == 2:
                sub = sub[..., None]
            m = self.maps(sub, tta=tta, prepared=True)
            lab, cls = self._labels_from_maps(m)
            n = int(lab.max())
            if n == 0:
                continue
            rr, cc = np.nonzero(lab)
            ids = lab[rr, cc]
            cnt = np.bincount(ids, minlength=n + 1)
            cr = np.bincount(ids, weights=rr, minlength=n + 1) / np.maximum(cnt, 1) + t.read[0].start
            ccn = np.bincount(ids, weights=cc, minlength=n + 1) / np.maximum(cnt, 1) + t.read[1].start
            keep = ((cr >= t.core[0].start) & (cr < t.core[0].stop) & (ccn >= t.core[1].start)
                    & (ccn < t.core[1].stop) & (cnt > 0))
            keep[0] = False
            lut = np.zeros(n + 1, dtype=np.int32)
            kept = np.flatnonzero(keep)
            lut[kept] = np.arange(next_id, next_id + len(kept), dtype=np.int32)
            for k in kept:
                if k in cls:
                    classes_all[int(lut[k])] = cls[k]
            next_id += len(kept)
            region = labels_out[t.read]
            new = lut[lab]
            write = (new > 0) & (region == 0)
            region[write] = new[write]
            labels_out[t.read] = region
        return (labels_out, classes_all) if return_classes else labels_out


    def _predict_generalist(self, image: np.ndarray, *, tile: int | None, overlap: int | None,
                            channel: int | None, tta: str, out: np.ndarray | None, diameter: float | None,
                            return_classes: bool, return_info: bool) -> Any:
        import dataclasses

        from deepscope.predict.generalist import segment_generalist

        cfg = self.generalist_config()
        if tile:
            cfg = dataclasses.replace(cfg, tile=int(tile))
        if overlap is not None:
            cfg = dataclasses.replace(cfg, overlap=int(overlap))
        x = self.prepare(image, channel=channel)
        run = self.raw_outputs if tta == "none" else (lambda a: self.raw_outputs(a, tta=tta))
        labels, info = segment_generalist(x, run, mode=self.mode, postprocess=self.postprocess,
                                          config=cfg, diameter=diameter, device=self.device, out=out)
        result: tuple[Any, ...] = (labels,)
        if return_classes:
            result += ({},)
        if return_info:
            result += (info,)
        return result if len(result) > 1 else labels


def _norm_params(x: np.ndarray, spec: InputSpec) -> tuple[float, float]:
    """Offset and scale of the model's normalisation for a whole (possibly huge) image."""
    if spec.normalize == "fixed":
        return float(spec.offset), float(spec.scale)
    step = max(1, int(np.sqrt(x.size / 4_000_000)))
    sample = np.asarray(x[::step, ::step], dtype=np.float32)
    lo, hi = np.percentile(sample, [spec.low, spec.high])
    return float(lo), float(hi - lo + 1e-6)
