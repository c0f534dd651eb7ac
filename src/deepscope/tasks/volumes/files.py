"""Project z-stack files to one image each: read, :func:`deepscope.data.stacks.project`, write with lineage.

Per input, ``<out>/<stem>.<method>.tif`` (the input's dtype for ``max``, float32 for ``mean`` and ``edf``; the
pixel size of the stack written as the TIFF resolution) and its lineage sidecar ``<stem>.<method>.tif.prov.json``
(input SHA-256, method, voxel size, axes and channel used). A stack that cannot be read or projected gets an
error row and the others go on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from deepscope.data.loader import image_stem
from deepscope.data.stacks import PROJECTIONS, as_stack, check_voxel_size, project
from deepscope.errors import DeepscopeError, InputError

__all__ = ["PROJECT_COLUMNS", "ProjectRun", "project_paths"]

log = logging.getLogger(__name__)

#: Columns of :attr:`ProjectRun.table`: one row per stack.
PROJECT_COLUMNS = ("path", "planes", "voxel_size", "method", "output", "error")


@dataclass(frozen=True, eq=False)
class ProjectRun:
    """What :func:`project_paths` did: one row per stack (:data:`PROJECT_COLUMNS`)."""

    table: pd.DataFrame

    @property
    def outputs(self) -> list[str]:
        return [o for o in self.table["output"] if o]

    @property
    def n_failed(self) -> int:
        return int((self.table["error"] != "").sum())

    @property
    def all_failed(self) -> bool:
        return len(self.table) > 0 and self.n_failed == len(self.table)

    def summary(self) -> str:
        n = len(self.table)
        return f"{n - self.n_failed} of {n} stack(s) done, {self.n_failed} failed"


def project_paths(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, method: str = "max",
                  axes: str | None = None, channel: int | None = None,
                  voxel_size: Sequence[float] | None = None, include: str | None = None,
                  recursive: bool = False, smooth: float = 2.0) -> ProjectRun:
    """Project every stack of ``paths`` into ``out/<stem>.<method>.tif`` with a lineage sidecar.

    Parameters
    ----------
    paths : sequence of path
        Stack files or folders of them (:func:`deepscope.io.expand_inputs`).
    out : path
        Output folder (created).
    method : {"max", "mean", "edf"}, default "max"
    axes : str, optional
        Axis letters overriding the file's, e.g. ``"ZYX"`` for a plain multi-page TIFF.
    channel : int, optional
        Channel of multichannel stacks.
    voxel_size : (z, y, x), optional
        Micrometres, overriding the file's; recorded in the lineage and the output's pixel size.
    include : str, optional
        File-name glob for folders.
    recursive : bool, default False
    smooth : float, default 2.0
        EDF choice-map smoothing (pixels).

    Returns
    -------
    ProjectRun

    Raises
    ------
    deepscope.errors.InputError
        A method that is not one of :data:`~deepscope.data.stacks.PROJECTIONS` or a bad ``voxel_size`` (before
        anything runs).
    FileNotFoundError
        A path that does not exist.

    Examples
    --------
    >>> run = project_paths(["stack.tif"], "out", method="edf")  # doctest: +SKIP
    >>> run.outputs                                               # doctest: +SKIP
    ['out/stack.edf.tif']
    """
    from deepscope.io import expand_inputs, read_image, write_tiff
    from deepscope.provenance import lineage

    if method not in PROJECTIONS:
        raise InputError(f"method={method!r} is not a projection; use one of {', '.join(PROJECTIONS)}")
    vs_override = check_voxel_size(voxel_size, name="--voxel-size") if voxel_size is not None else None
    out = Path(out)
    files = expand_inputs(paths, include=include, recursive=recursive, exclude_dirs=[out])
    out.mkdir(parents=True, exist_ok=True)
    params: dict[str, Any] = {"method": method, "axes": axes, "channel": channel, "voxel_size": vs_override,
                              "smooth": smooth if method == "edf" else None}
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    with lineage.Run.start(command="project", params=params) as run:
        for p in files:
            row: dict[str, Any] = {c: "" for c in PROJECT_COLUMNS} | {"path": str(p), "method": method}
            try:
                img = read_image(p)
                stack, vs = as_stack(img, axes=axes, channel=channel, voxel_size=vs_override, path=str(p))
                stem = image_stem(p)
                if stem in seen:
                    raise InputError(f"{p}: another stack of this run ({seen[stem]}) has the output name {stem!r}; "
                                     "project it into another --out folder")
                seen[stem] = str(p)
                image = project(stack, method=method, smooth=smooth)
                pixel = (vs[1], vs[2]) if vs else img.meta.pixel_size
                target = out / f"{stem}.{method}.tif"
                write_tiff(target, image, pixel_size=(float(pixel[0]), float(pixel[1])) if pixel else None)
                rec = run.record(target, inputs=[img.meta], extra={
                    "method": method, "planes": int(stack.shape[0]), "voxel_size": list(vs) if vs else None,
                    "pixel_size": list(pixel) if pixel else None, "axes": axes or img.axes, "channel": channel})
                lineage.attach(target, rec)
                row.update(planes=int(stack.shape[0]), voxel_size=" ".join(f"{v:g}" for v in vs) if vs else "",
                           output=str(target))
            except (DeepscopeError, OSError) as exc:
                log.info("%s: %s", p, exc)
                row["error"] = " ".join(str(exc).split())
            rows.append(row)
    return ProjectRun(pd.DataFrame(rows, columns=list(PROJECT_COLUMNS)))

