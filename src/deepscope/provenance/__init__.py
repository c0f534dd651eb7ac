"""Provenance: acquisition metadata, a content-addressed catalog, and lineage of every output.

>>> from deepscope.provenance import ImageMeta, lineage, optics
>>> from deepscope.provenance import Catalog            # doctest: +SKIP

Importing this package is light (standard library only): :class:`Catalog` (SQLAlchemy) and the
metadata sources (tifffile, YAML, pandas) are imported on first use.

Imports: ``provenance`` imports ``io`` and ``data``; ``predict``, ``pipeline`` and ``cli`` import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepscope.provenance import lineage, optics
from deepscope.provenance.meta import (IMMERSIONS, MODALITIES, Channel, ImageMeta, Instrument, Objective,
                                       Preparation, Sample)

if TYPE_CHECKING:  # pragma: no cover
    from deepscope.provenance.catalog import AddReport, Catalog, CatalogError, CatalogImage, CheckIssue
    from deepscope.provenance.sources import (Conflict, MergedMeta, MetadataDefaults, MetadataSources,
                                              load_defaults, load_sidecar_csv, merge_sources)

__all__ = [
    "ImageMeta", "Instrument", "Objective", "Channel", "Sample", "Preparation", "MODALITIES", "IMMERSIONS",
    "lineage", "optics", "Catalog", "CatalogError", "CatalogImage", "AddReport", "CheckIssue",
    "MetadataSources", "MetadataDefaults", "MergedMeta", "Conflict", "load_defaults", "load_sidecar_csv",
    "merge_sources",
]

_LAZY = {
    "Catalog": "catalog", "CatalogError": "catalog", "CatalogImage": "catalog", "AddReport": "catalog",
    "CheckIssue": "catalog", "MetadataSources": "sources", "MetadataDefaults": "sources",
    "MergedMeta": "sources", "Conflict": "sources", "load_defaults": "sources", "load_sidecar_csv": "sources",
    "merge_sources": "sources",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"deepscope.provenance.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'deepscope.provenance' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
