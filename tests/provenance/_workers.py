"""Worker functions run in separate processes by the concurrency tests (kept import-light)."""

from __future__ import annotations


def add_files(url: str, files: list[str]) -> dict[str, int]:
    """Open the catalog at ``url`` in this process and add ``files``; return the status counts."""
    from deepscope.provenance.catalog import Catalog

    with Catalog(url) as cat:
        return cat.add(files, batch_size=50, pattern=r"img_(?P<index>\d+)").counts
