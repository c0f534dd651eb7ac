"""Rendering helpers shared by the synthetic scene generators (internal).

Everything here works on float32 canvases in the 0-255 intensity scale of an 8-bit
image; :func:`quantize` converts to the requested bit depth at the very end.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage as ndi

from deepscope.errors import InputError

__all__ = ["Seed", "as_rng", "gaussian", "quantize", "polar_grid", "texture_bank", "texture_patch",
           "check_size", "camera_noise", "texture_mix", "BIT_DEPTHS", "N_BINS"]

Seed = int | np.random.Generator | None

#: Bit depths the generators write: 8 (uint8, like BBBC005) or 16 (uint16, the same image x 257).
BIT_DEPTHS = (8, 16)
#: Angular resolution of the radial shape functions (bins over 2*pi).
N_BINS = 256
_TEXTURE_SIZE = 512


def as_rng(seed: Seed) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from an int, a Generator (used as is) or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an int, a numpy.random.Generator or None; got {type(seed).__name__}")
    return np.random.default_rng(seed)


def check_size(size: object, *, name: str = "size", minimum: int = 16) -> tuple[int, int]:
    """Validate an image size given as (rows, cols)."""
    try:
        h, w = (int(v) for v in size)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"{name} must be (rows, cols), e.g. (520, 696); got {size!r}") from None
    if h < minimum or w < minimum:
        raise InputError(f"{name}={size!r} is too small: rows and cols must be >= {minimum}")
    return h, w


def gaussian(image: np.ndarray, sigma: float, *, truncate: float = 4.0) -> np.ndarray:
    """Separable Gaussian low-pass in float32, reflecting at the borders.

    The kernel has radius ``int(truncate * sigma + 0.5)`` like :func:`scipy.ndimage.gaussian_filter`
    (whose result it equals to float32 precision); 3-tap kernels take a fast path. ``sigma <= 0``
    returns a float32 copy.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage as ndi
    >>> x = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    >>> bool(np.allclose(gaussian(x, 0.6, truncate=2), ndi.gaussian_filter(x, 0.6, truncate=2), atol=1e-5))
    True
    """
    if sigma <= 0:
        return image.astype(np.float32, copy=True)
    radius = int(truncate * float(sigma) + 0.5)
    if radius == 1:
        edge = math.exp(-0.5 / (float(sigma) ** 2))
        return _three_tap(_three_tap(image.astype(np.float32, copy=False), edge, 0), edge, 1)
    out = ndi.gaussian_filter1d(image, sigma, axis=0, truncate=truncate, mode="reflect",
                                output=np.float32)
    return ndi.gaussian_filter1d(out, sigma, axis=1, truncate=truncate, mode="reflect", output=np.float32)


def _three_tap(x: np.ndarray, edge: float, axis: int) -> np.ndarray:
    """Normalised kernel ``[edge, 1, edge]`` along ``axis`` with reflect (edge pixel repeated) borders."""
    norm = 1.0 + 2.0 * edge
    c, e = np.float32(1.0 / norm), np.float32(edge / norm)

    def sl(a: int | None, b: int | None) -> tuple[slice, ...]:
        return (slice(a, b),) if axis == 0 else (slice(None), slice(a, b))

    out = x * c
    if x.shape[axis] > 1:
        out[sl(1, None)] += e * x[sl(None, -1)]
        out[sl(None, -1)] += e * x[sl(1, None)]
    out[sl(0, 1)] += e * x[sl(0, 1)]
    out[sl(-1, None)] += e * x[sl(-1, None)]
    return out


def quantize(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round a 0-255-scale float image to uint8, or to uint16 scaled by 257 (full 16-bit range)."""
    if bit_depth == 8:
        out = np.rint(image)
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
    out = np.rint(image * np.float32(257.0))
    np.clip(out, 0, 65535, out=out)
    return out.astype(np.uint16)


def camera_noise(rng: np.random.Generator, size: tuple[int, int], sd: float, mean: float = 0.0) -> np.ndarray:
    """Zero-correlation noise of the given mean and standard deviation, float32.

    Each pixel is the sum of two uniform random bytes (a triangular distribution), rescaled:
    five times faster than Gaussian draws, and Gaussian to the eye once smoothed by the
    camera's point-spread (a sum of several such pixels).
    """
    h, w = size
    raw = np.frombuffer(rng.bytes(2 * h * w), np.uint8).reshape(2, h, w)
    out = raw[0].astype(np.float32)
    out += raw[1]
    out -= np.float32(255.0)
    out *= np.float32(sd / math.sqrt(2 * (256**2 - 1) / 12.0))
    out += np.float32(mean)
    return out


@functools.lru_cache(maxsize=8)
def polar_grid(half: int) -> tuple[np.ndarray, np.ndarray]:
    """Radius and angle bin of every offset in a (2*half+1)^2 grid centred on a pixel.

    Returns ``(rho, bins)``: float32 distances and indices (intp, the fastest for
    :func:`numpy.take`) into a radial table of :data:`N_BINS` angles. Cached; read-only.
    """
    ax = np.arange(-half, half + 1, dtype=np.float32)
    dy, dx = np.meshgrid(ax, ax, indexing="ij")
    rho = np.hypot(dy, dx).astype(np.float32)
    phi = np.arctan2(dy, dx)
    bins = (np.floor((phi + math.pi) / (2 * math.pi) * N_BINS).astype(np.intp) % N_BINS).astype(np.intp)
    rho.setflags(write=False)
    bins.setflags(write=False)
    return rho, bins


def bin_angles() -> np.ndarray:
    """Centre angle (radians, in [-pi, pi)) of each radial bin."""
    return (np.arange(N_BINS) + 0.5) * (2 * math.pi / N_BINS) - math.pi


@functools.lru_cache(maxsize=8)
def texture_bank(sigma: float) -> np.ndarray:
    """A fixed, periodic, zero-mean unit-variance texture: white noise low-passed at ``sigma`` pixels.

    Built once per process from a constant seed, so it adds no randomness of its own: objects
    sample it at random offsets drawn from the caller's generator.
    """
    rng = np.random.default_rng([20070101, int(round(sigma * 1000))])
    white = rng.standard_normal((_TEXTURE_SIZE, _TEXTURE_SIZE)).astype(np.float32)
    t = ndi.gaussian_filter(white, sigma, mode="wrap")
    t -= t.mean()
    t /= t.std()
    t = t.astype(np.float32)
    t.setflags(write=False)
    return t


@functools.lru_cache(maxsize=8)
def texture_mix(scales: tuple[float, float], amplitudes: tuple[float, float]) -> np.ndarray:
    """``amplitudes[0] * bank(scales[0]) + amplitudes[1] * bank(scales[1])``: a two-octave texture."""
    t = texture_bank(float(scales[0])) * np.float32(amplitudes[0])
    t += texture_bank(float(scales[1])) * np.float32(amplitudes[1])
    t.setflags(write=False)
    return t


def texture_patch(bank: np.ndarray, shape: tuple[int, int], offset: tuple[int, int], flip: int) -> np.ndarray:
    """A (rows, cols) window of a periodic texture ``bank`` at ``offset`` (any ints), flipped by ``flip`` (0-3).

    Windows that fit the bank are views; larger ones wrap around.
    """
    n = bank.shape[0]
    hh, ww = shape
    if hh <= n and ww <= n:
        r0, c0 = offset[0] % (n - hh + 1), offset[1] % (n - ww + 1)
        t = bank[r0:r0 + hh, c0:c0 + ww]
    else:
        t = bank[np.ix_((np.arange(hh) + offset[0]) % n, (np.arange(ww) + offset[1]) % n)]
    if flip & 1:
        t = t[::-1]
    if flip & 2:
        t = t[:, ::-1]
    return t
