"""The batch runner holds only what its writer still needs (issue 14), and tells environmental failures apart."""

from __future__ import annotations

import errno
import gc
import weakref
from types import SimpleNamespace

import numpy as np

from deepscope.predict.runner import BatchRunner, Decoded, InputFile, is_transient


class Pixels:
    """A decoded image whose life the test follows."""

    def __init__(self) -> None:
        self.data = np.ones((64, 64), np.float32)


def test_decoded_pixels_are_freed_once_written_and_only_paths_are_kept():
    alive: list[weakref.ref] = []
    most = [0]

    def decode(i: int) -> Decoded:
        px = Pixels()
        alive.append(weakref.ref(px))
        image = SimpleNamespace(data=px, meta=SimpleNamespace(path=f"/in/{i}.tif", sha256=f"{i:064d}"))
        return Decoded(px, inputs=[image])

    def write(i, d, result, row):
        px = d.data
        return [(lambda: [f"/out/{i}.tif"] if px is not None else [], {})]

    def progress(done: int, total: int) -> None:
        gc.collect()
        most[0] = max(most[0], sum(r() is not None for r in alive))

    runner = BatchRunner(row=lambda i: {"error": ""}, decode=decode, infer=lambda ds: [None] * len(ds), write=write,
                         deferred=True, progress=progress)
    gc.freeze()  # the collections above then scan only what the run made, not the whole test session's heap
    try:
        out = runner.run(range(30))
    finally:
        gc.unfreeze()
    assert len(out.outputs) == 30 and out.n_failed == 0
    assert most[0] <= runner.max_pending + 2  # not one per item: the pixels of written items are gone
    assert out.inputs[3] == InputFile("/in/3.tif", f"{3:064d}")


def test_disk_full_is_transient_a_bad_file_is_not():
    def write(i, d, result, row):
        def fn():
            raise OSError(errno.ENOSPC if i == 1 else errno.EACCES, "nope")
        return [(fn, {})]

    out = BatchRunner(row=lambda i: {"error": ""}, decode=lambda i: Decoded(i), infer=lambda ds: [None] * len(ds),
                      write=write, deferred=True).run(range(3))
    assert out.n_failed == 3 and out.transient == {1}
    assert is_transient(MemoryError()) and not is_transient(ValueError("x"))
    try:
        try:
            raise OSError(errno.EIO, "I/O error")
        except OSError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as exc:
        assert is_transient(exc)
