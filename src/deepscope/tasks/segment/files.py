"""What ``deepscope segment`` writes: per image a label image (``<stem>.labels.tif``, with the input's pixel
size and the provenance record), an outline overlay, optionally an ImageJ ROI set and the labels in an OME-Zarr
input's own ``labels/`` group; one row per image in ``counts.csv`` (objects, per class, and for models that
estimate the object size the diameter and the domain verdict)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.predict.runner import Decoded
from deepscope.tasks.files import FileOutputs

__all__ = ["SegmentOutputs"]

logger = logging.getLogger(__name__)


class SegmentOutputs(FileOutputs):
    """Label images, overlays and ``counts.csv`` in the folder ``out``.

    Settings: ``overlay`` (default True), ``rois`` (default False), ``zarr_labels`` (default True: an OME-Zarr
    input also gets its labels in its ``labels/<model>`` group, and one over
    :data:`deepscope.predict.large.OUT_OF_CORE_PIXELS` is segmented tile by tile from its store).
    """

    command = "segment"
    table_name = "counts.csv"

    def __init__(self, model: Any, options: Any, out: str | Path | None = None, *, overlay: bool = True,
                 rois: bool = False, zarr_labels: bool = True, **settings: Any) -> None:
        super().__init__(model, options, out, **settings)
        self.overlay, self.rois, self.zarr_labels = overlay, rois, zarr_labels
        self.class_names = options.class_labels()
        self.count_cols = ["count"] + [f"count_{c}" for c in self.class_names]
        self.info_cols: dict[str, Any] = model.plugin.info_columns()

    def int_columns(self) -> list[str]:
        return self.count_cols

    def params(self) -> dict[str, Any]:
        o = self.options
        return {"tile": o.tile, "overlap": o.overlap, "tta": o.tta, "channel": o.channel, "diameter": o.diameter,
                **o.thresholds()}

    def empty_row(self, path: Path) -> dict[str, Any]:
        return {"path": str(path), **{c: np.nan for c in self.count_cols}, **self.info_cols, "labels": "",
                "error": ""}

    def decode_hook(self, path: Path) -> Decoded | None:
        from deepscope.predict.large import out_of_core

        big = out_of_core(path) if self.zarr_labels else None
        if big is None:
            return None
        logger.info("%s: %d x %d pixels, segmented tile by tile into its labels/%s group", path, *big.meta.shape[-2:],
                    self.model.name)
        return Decoded(None, inputs=[big], extra={"path": str(path), "out_of_core": True})

    def infer(self, decoded: list[Decoded]) -> list[Any]:
        net, o = self.model, self.options
        out = []
        for d in decoded:
            if d.extra.get("out_of_core"):
                from deepscope.predict.large import segment_ngff

                out.append(segment_ngff(d.extra["path"], model=net, channel=o.channel, name=net.name, tile=o.tile,
                                        overlap=o.overlap, tta=o.tta, diameter=o.diameter,
                                        prob_threshold=o.prob_threshold, flow_threshold=o.flow_threshold,
                                        min_size=o.min_size))
            else:
                out.append(net.plugin.run(net, d.data, o))
        return out

    def write(self, path: Path, decoded: Decoded, result: Any, row: dict[str, Any], run: Any) -> list[Any]:
        from deepscope.evaluate import count_instances
        from deepscope.predict.domain import warn_out_of_domain
        from deepscope.provenance import lineage

        net = self.model
        if decoded.extra.get("out_of_core"):  # labels already in the store (deepscope.predict.large)
            row.update(count=result.count, labels=str(result.labels))
            if self.info_cols:
                row.update(diameter=result.diameter, diameter_source=result.diameter_source,
                           in_domain=result.in_domain)
            run.record(result.labels, inputs=decoded.inputs, extra={"count": result.count})
            return [(functools.partial(lambda p: [str(p)], result.labels), {})]
        labels, classes = np.asarray(result.labels, dtype=np.int32), result.classes
        n = count_instances(labels)
        row.update(net.plugin.info_row(result))
        warn_out_of_domain(str(path), net.name, result.domain)
        assert self.out is not None
        stem = decoded.extra["stem"]
        lab_path = self.out / f"{stem}.labels.tif"
        rec = run.record(lab_path, inputs=decoded.inputs, extra={"count": n})
        ov_path = self.out / f"{stem}.overlay.png" if self.overlay else None
        row.update(count=n, labels=str(lab_path))
        for k, name in enumerate(self.class_names, start=1):
            row[f"count_{name}"] = sum(1 for c in classes.values() if int(c) == k)
        # written on the writer thread (zlib releases the GIL) while the next image runs
        meta = getattr(decoded.inputs[0], "meta", None) if decoded.inputs else None
        ngff = path if self.zarr_labels and getattr(meta, "format", "") == "ome-zarr" else None
        fn = functools.partial(write_segment_outputs, lab_path, labels, lineage.embed_metadata(rec), ov_path,
                               decoded.data, dict(classes), pixel_size=getattr(meta, "pixel_size", None),
                               rois_path=self.out / f"{stem}.rois.zip" if self.rois else None,
                               ngff=(ngff, net.name) if ngff is not None else None)
        return [(fn, {c: np.nan for c in self.count_cols} | {"labels": ""})]


def write_segment_outputs(lab_path: Path, labels: np.ndarray, description: Any, ov_path: Path | None,
                          x: np.ndarray, classes: dict[int, int], *, pixel_size: Any = None,
                          rois_path: Path | None = None, ngff: tuple[Path, str] | None = None) -> list[str]:
    """Write one image's label TIFF, overlay, ROI set and OME-Zarr labels (each atomically); the paths written."""
    from deepscope.io import write_labels, write_png
    from deepscope.predict.overlay import overlay_outlines

    out = [str(write_labels(lab_path, labels, description=description, pixel_size=pixel_size))]
    if ov_path is not None:
        out.append(str(write_png(ov_path, overlay_outlines(x, labels, classes=classes))))
    if rois_path is not None:
        from deepscope.io.rois import write_rois

        out.append(str(write_rois(rois_path, labels)))
    if ngff is not None:
        from deepscope.io.ngff import add_ngff_labels

        written = add_ngff_labels(ngff[0], ngff[1], labels)
        if written is not None:
            out.append(str(written))
    return out
