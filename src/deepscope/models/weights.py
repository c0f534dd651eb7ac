"""Weights I/O: safetensors only (nothing is ever unpickled), SHA-256 checked against the card, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deepscope.errors import ModelError
from deepscope.models.card import WeightsInfo

__all__ = ["save_weights", "read_weights", "load_weights"]

_DTYPES = ("float32", "float16")
#: Bytes a safetensors file may hold beyond its tensors (its JSON header and metadata).
_HEADER_SLACK = 16 << 20


def save_weights(net: Any, path: str | os.PathLike[str], *, dtype: str = "float32",
                 metadata: dict[str, str] | None = None) -> WeightsInfo:
    """Write a network's state as safetensors (atomically) and describe the file.

    Parameters
    ----------
    net : torch.nn.Module
    path : str or PathLike
        The ``.safetensors`` file.
    dtype : {"float32", "float16"}
        Floating-point tensors are stored in this type.
    metadata : dict of str, optional
        Stored in the file's header.

    Returns
    -------
    WeightsInfo
        File name, SHA-256 of the bytes written, dtype, size and number of parameters.

    Raises
    ------
    deepscope.errors.ModelError
        An unknown ``dtype``.
    """
    import torch
    from safetensors.torch import save_file

    from deepscope.io import atomic_path, sha256_file

    if dtype not in _DTYPES:
        raise ModelError(f"dtype={dtype!r} is not one of {_DTYPES}")
    tdt = {"float32": torch.float32, "float16": torch.float16}[dtype]
    tensors = {k: (v.detach().cpu().to(tdt) if v.is_floating_point() else v.detach().cpu()).contiguous()
               for k, v in net.state_dict().items()}
    p = Path(path)
    with atomic_path(p) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return WeightsInfo(file=p.name, sha256=sha256_file(p), dtype=dtype, bytes=p.stat().st_size,
                       parameters=int(sum(v.numel() for v in tensors.values())))


def read_weights(path: str | os.PathLike[str], *, expected_sha256: str | None = None) -> dict[str, Any]:
    """The tensors of a safetensors file, after checking its SHA-256 when one is expected.

    Raises
    ------
    FileNotFoundError
        No such file.
    deepscope.errors.ModelError
        Checksum mismatch, not a regular file (a device or a FIFO: never opened), or not a safetensors file
        (nothing is loaded or executed).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from deepscope.errors import InputError
    from deepscope.io import sha256_file
    from deepscope.io.limits import check_regular_file

    w = Path(path)
    try:  # a device would be hashed forever and opening a FIFO blocks: stat it, never open it
        check_regular_file(w, what="weights file")
    except InputError as exc:
        raise ModelError(f"{exc}; nothing was loaded") from None
    if expected_sha256:
        got = sha256_file(w)
        if got != expected_sha256:
            raise ModelError(f"weights '{w}' have sha256 {got[:12]}... but the model card says "
                             f"{expected_sha256[:12]}...; the file was changed or belongs to another model")
    try:
        return load_file(str(w))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"'{w}' is not a valid safetensors weights file ({exc}); nothing was loaded") from exc


def load_weights(net: Any, path: str | os.PathLike[str], *, expected_sha256: str | None = None,
                 architecture: str = "") -> None:
    """Load safetensors weights into ``net`` (cast to its dtypes), checking the SHA-256 when given.

    Raises
    ------
    FileNotFoundError, deepscope.errors.ModelError
        As :func:`read_weights`, or weights that do not fit the network (``architecture`` names it),
        including a file larger than the network's weights (checked before it is read).
    """
    ref = net.state_dict()
    expected = sum(v.numel() * v.element_size() for v in ref.values())
    w = Path(path)
    if w.is_file() and w.stat().st_size > expected + _HEADER_SLACK:
        raise ModelError(f"weights '{w}' are {w.stat().st_size:,} bytes but the architecture {architecture} holds "
                         f"{expected:,} bytes of weights; the file belongs to another model (nothing was loaded)")
    state = read_weights(path, expected_sha256=expected_sha256)
    state = {k: v.to(ref[k].dtype) if k in ref and v.is_floating_point() else v for k, v in state.items()}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"weights '{path}' do not fit the architecture {architecture}: "
                         f"{str(exc).splitlines()[0]}") from exc
