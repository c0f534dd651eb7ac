"""Compact array containers for moving training data to a GPU machine (``name.npy.xz`` files).

LZMA-compressed ``.npy`` files: plain arrays, no pickles.
"""

from __future__ import annotations

import io
import lzma
from pathlib import Path

import numpy as np


def save(folder: str | Path, name: str, arr: np.ndarray) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    path = folder / f"{name}.npy.xz"
    tmp = path.with_suffix(".part")
    tmp.write_bytes(lzma.compress(buf.getvalue(), preset=6))
    tmp.replace(path)
    return path


def load(folder: str | Path, name: str) -> np.ndarray:
    raw = lzma.decompress((Path(folder) / f"{name}.npy.xz").read_bytes())
    return np.load(io.BytesIO(raw), allow_pickle=False)


def save_ragged(folder: str | Path, name: str, arrays: list[np.ndarray]) -> None:
    """Arrays of different shapes (same ndim and dtype): one flat array plus shapes."""
    shapes = np.array([a.shape for a in arrays], dtype=np.int64)
    save(folder, f"{name}_shapes", shapes)
    save(folder, f"{name}_flat", np.concatenate([a.ravel() for a in arrays]))


def load_ragged(folder: str | Path, name: str) -> list[np.ndarray]:
    shapes = load(folder, f"{name}_shapes")
    flat = load(folder, f"{name}_flat")
    out, pos = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(flat[pos:pos + n].reshape(s))
        pos += n
    return out
