"""Synthetic z-stacks of nuclei with exact 3D labels and the all-in-focus truth.

:func:`generate_volume` places textured ellipsoidal nuclei (some touching) in a field sampled on
anisotropic voxels (``z_step`` 0.5-2 um at ``pixel_size`` 0.5 um), and images it like a sectioning
microscope: depth attenuation (deeper planes are dimmer), a point-spread function whose axial width is
``axial_ratio`` (~3) times the lateral one and whose lateral width grows with defocus, then shot (Poisson)
and read (Gaussian) noise on a camera offset. Deterministic for a seed.

The ground truth is exact: ``labels[z, y, x]`` is the nucleus whose ellipsoid holds the centre of voxel
``(z, y, x)`` (touching nuclei split by the nearest normalised ellipsoid distance, the same rule that
shapes their emission), and ``all_in_focus`` is what a perfect extended-depth-of-field projection would
show: at each pixel, the emission of the nucleus dominating that line of sight, at that nucleus's central
plane, blurred only by the in-focus lateral PSF and without noise (``focus`` holds that plane per pixel).

Examples
--------
>>> from deepscope.data.synth import generate_volume
>>> v = generate_volume(6, shape=(12, 48, 48), z_step=1.0, seed=0)
>>> v.stack.shape, v.stack.dtype.name, v.labels.dtype.name, v.voxel_size
((12, 48, 48), 'uint16', 'int32', (1.0, 0.5, 0.5))
>>> v.count == len(set(np.unique(v.labels)) - {0})
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from deepscope.data.synth._render import Seed, as_rng
from deepscope.errors import InputError

__all__ = ["SynthVolume", "generate_volume"]

#: Finest axial step (um) the emission is rendered at before it is imaged onto the stack's planes.
_FINE_Z = 0.5


@dataclass(frozen=True, eq=False)
class SynthVolume:
    """A synthetic z-stack and its exact ground truth.

    Attributes
    ----------
    stack : (Z, Y, X) uint16 ndarray
        The recorded optical sections (plane 0 nearest the objective).
    labels : (Z, Y, X) int32 ndarray
        Instance labels 1..count (0 = background), exact at the voxel centres.
    voxel_size : (float, float, float)
        ``(z, y, x)`` in micrometres.
    all_in_focus : (Y, X) float32 ndarray
        The all-in-focus image in the stack's units (offset included, no noise): the truth for projections.
    focus : (Y, X) int32 ndarray
        The plane each pixel of ``all_in_focus`` comes from.
    centres : (count, 3) float ndarray
        Nucleus centres ``(z, y, x)`` in micrometres.
    semi_axes : (count, 3) float ndarray
        Ellipsoid semi-axes ``(z, a, b)`` in micrometres (``a``, ``b`` in the rotated YX plane).
    touching : int
        Pairs of nuclei whose labels share a face.
    """

    stack: np.ndarray
    labels: np.ndarray
    voxel_size: tuple[float, float, float]
    all_in_focus: np.ndarray
    focus: np.ndarray
    centres: np.ndarray = field(repr=False)
    semi_axes: np.ndarray = field(repr=False)
    touching: int = 0

    @property
    def count(self) -> int:
        """How many nuclei the labels hold."""
        return int(len(np.unique(self.labels[self.labels > 0])))


def generate_volume(count: int = 20, *, shape: tuple[int, int, int] = (32, 128, 128), z_step: float = 1.0,
                    pixel_size: float = 0.5, radius: tuple[float, float] = (3.0, 4.5), flatness: float = 0.8,
                    touch: float = 0.5, psf_sigma: float = 0.4, axial_ratio: float = 3.0, defocus: float = 0.3,
                    haze: float = 0.0, attenuation: float = 0.4, photons: float = 300.0, read_noise: float = 3.0, noise: bool = True,
                    offset: float = 100.0, texture: float = 0.35, seed: Seed = None) -> SynthVolume:
    """Simulate a z-stack of nuclei with exact 3D labels and its all-in-focus image.

    Parameters
    ----------
    count : int, default 20
        Nuclei to place (fewer when the volume is full: ``SynthVolume.count`` says how many).
    shape : (int, int, int), default (32, 128, 128)
        ``(Z, Y, X)`` of the stack; each at least 4 planes / 16 pixels.
    z_step, pixel_size : float
        Voxel size in micrometres (axial, lateral); anisotropy up to 1:10.
    radius : (float, float), default (3.0, 4.5)
        Range of the lateral semi-axes in micrometres.
    flatness : float, default 0.8
        Axial semi-axis as a fraction of the mean lateral one (nuclei are flattened on the coverslip).
    touch : float, default 0.5
        Fraction of nuclei placed against a neighbour (their ellipsoids overlap by up to a quarter of the
        radii; the labels split them exactly).
    psf_sigma : float, default 0.4
        In-focus lateral Gaussian PSF sigma (um); the axial sigma is ``axial_ratio * psf_sigma``.
    axial_ratio : float, default 3.0
    defocus : float, default 0.3
        Growth of the lateral blur with defocus: ``sigma(dz) = hypot(psf_sigma, defocus * dz)``.
    haze : float, default 0.0
        Widefield share of the PSF in [0, 1): that fraction of each plane's light reaches every other plane of
        the stack, blurred laterally by ``hypot(psf_sigma, 0.5 * dz)`` (no optical sectioning; 0 = a sectioning
        microscope such as a confocal, 0.5-0.8 = widefield-like haze).
    attenuation : float, default 0.4
        Fraction of the signal lost from the first to the last plane (exponential in depth).
    photons : float, default 300
        Expected photons (counts) at the brightest nucleus of the first plane: the signal scale and its shot noise.
    read_noise : float, default 3.0
        Camera read noise (standard deviation, counts).
    noise : bool, default True
        False: the noise-free stack (rounded to integers), e.g. to check a method without noise.
    offset : float, default 100
        Camera offset (counts) added to every voxel.
    texture : float, default 0.35
        Amplitude of the chromatin texture (relative).
    seed : int, numpy.random.Generator or None

    Returns
    -------
    SynthVolume

    Raises
    ------
    deepscope.errors.InputError
        A shape, voxel size or parameter out of range.
    """
    rng = as_rng(seed)
    nz, ny, nx = _check_shape(shape)
    for name, v in (("z_step", z_step), ("pixel_size", pixel_size), ("psf_sigma", psf_sigma),
                    ("axial_ratio", axial_ratio), ("photons", photons)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise InputError(f"{name} must be a positive finite number; got {v!r}")
    if not 0 <= haze < 1:
        raise InputError(f"haze must be in [0, 1); got {haze!r}")
    if not 0 <= attenuation < 1:
        raise InputError(f"attenuation must be in [0, 1); got {attenuation!r}")
    if not (0 < radius[0] <= radius[1]):
        raise InputError(f"radius must be (low, high) with 0 < low <= high; got {radius!r}")
    count = int(count)
    if count < 0:
        raise InputError(f"count must be >= 0; got {count}")

    extent = np.array([nz * z_step, ny * pixel_size, nx * pixel_size])
    centres, axes, angles = _place(rng, count, extent, radius, flatness, touch)
    # fine axial grid: the emission is rendered at <= 0.5 um steps (an odd number per plane, so that each stack
    # plane's centre is a fine plane), then imaged onto the stack's planes
    sub = max(1, int(math.ceil(z_step / _FINE_Z - 1e-9)))
    sub += 1 - sub % 2
    fine_step = z_step / sub
    nzf = nz * sub
    zf = (np.arange(nzf) + 0.5) * fine_step
    zc = (np.arange(nz) + 0.5) * z_step
    yc = (np.arange(ny) + 0.5) * pixel_size
    xc = (np.arange(nx) + 0.5) * pixel_size
    emission, labels_f = _render(centres, axes, angles, zf, yc, xc, rng, texture)
    labels = labels_f[sub // 2::sub].copy()  # the stack planes' centres are fine planes: the same rule, exact
    bright = np.concatenate([[1.0], rng.uniform(0.6, 1.0, len(centres))]).astype(np.float32)
    emission *= bright[labels_f]
    depth = np.exp(np.log(1 - attenuation) * (zf - zf[0]) / max(zf[-1] - zf[0], fine_step)).astype(np.float32)
    emission *= depth[:, None, None]

    # axial Gaussian weight (sigma = axial_ratio * psf_sigma) and a lateral blur that grows with defocus,
    # plus the widefield haze: every fine plane's light on every plane, blurred by its defocus
    sig_z = axial_ratio * psf_sigma
    clean = np.zeros((nz, ny, nx), np.float32)
    for k in range(nz):
        dz_um = zf - zc[k]
        w = np.exp(-0.5 * (dz_um / sig_z) ** 2)
        core = np.nonzero(w > 1e-3)[0]
        w = (1 - haze) * w[core] / w[core].sum()
        for jc, wj in zip(core, w):
            s = math.hypot(psf_sigma, defocus * abs(dz_um[jc])) / pixel_size
            clean[k] += np.float32(wj) * ndi.gaussian_filter(emission[jc], s, mode="nearest")
        if haze > 0:
            for j in range(nzf):
                s = math.hypot(psf_sigma, 0.5 * abs(dz_um[j])) / pixel_size
                clean[k] += np.float32(haze / nzf) * ndi.gaussian_filter(emission[j], s, mode="nearest")
    # the all-in-focus truth: the noise-free plane at the centre of each pixel's dominant nucleus
    focus = _focus_planes(labels, centres, z_step)
    truth = np.take_along_axis(clean, focus[None].astype(np.intp), axis=0)[0]
    clean *= photons
    truth = truth * photons + offset
    if noise:
        stack = rng.poisson(clean).astype(np.float32) + rng.normal(0.0, read_noise, clean.shape).astype(np.float32)
    else:
        stack = clean
    stack = np.clip(np.rint(stack + offset), 0, 65535).astype(np.uint16)
    return SynthVolume(stack=stack, labels=labels, voxel_size=(float(z_step), float(pixel_size), float(pixel_size)),
                       all_in_focus=truth.astype(np.float32), focus=focus, centres=centres,
                       semi_axes=axes, touching=_touching_pairs(labels))


def _check_shape(shape: object) -> tuple[int, int, int]:
    try:
        nz, ny, nx = (int(v) for v in shape)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"shape must be (Z, Y, X), e.g. (32, 128, 128); got {shape!r}") from None
    if nz < 4 or ny < 16 or nx < 16:
        raise InputError(f"shape={shape!r} is too small: at least 4 planes and 16 x 16 pixels")
    return nz, ny, nx


def _place(rng: np.random.Generator, count: int, extent: np.ndarray, radius: tuple[float, float], flatness: float,
           touch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (um), semi-axes (z, a, b) and in-plane angles; touching nuclei overlap a little."""
    centres: list[np.ndarray] = []
    axes: list[np.ndarray] = []
    angles: list[float] = []
    tries = 0
    while len(centres) < count and tries < 200 * max(count, 1):
        tries += 1
        a, b = rng.uniform(*radius, 2)
        c = flatness * (a + b) / 2
        ax = np.array([min(c, 0.45 * extent[0]), a, b])
        r_mean = float(ax[1:].mean())
        if centres and rng.random() < touch:  # against a neighbour
            i = int(rng.integers(len(centres)))
            d = rng.normal(size=3)
            d[0] *= 0.3
            d /= np.linalg.norm(d) + 1e-12
            ri = float(axes[i][1:].mean())
            gap = (r_mean + ri) * rng.uniform(0.8, 0.95)
            pos = centres[i] + d * gap
        else:
            pos = rng.uniform(0, 1, 3) * extent
        pos[0] = np.clip(pos[0], min(ax[0], extent[0] / 2), max(extent[0] - ax[0], extent[0] / 2))
        if not (0 <= pos[1] < extent[1] and 0 <= pos[2] < extent[2]):
            continue
        ok = True
        for cj, aj in zip(centres, axes):  # normalised separation: touching allowed, engulfing not
            sep = np.linalg.norm((pos - cj)[1:]) / (r_mean + float(aj[1:].mean()))
            zsep = abs(pos[0] - cj[0]) / (ax[0] + aj[0])
            if max(sep, zsep) < 0.78:
                ok = False
                break
        if ok:
            centres.append(pos)
            axes.append(ax)
            angles.append(float(rng.uniform(0, np.pi)))
    return (np.array(centres, float).reshape(-1, 3), np.array(axes, float).reshape(-1, 3),
            np.array(angles, float))


def _render(centres: np.ndarray, axes: np.ndarray, angles: np.ndarray, zc: np.ndarray, yc: np.ndarray,
            xc: np.ndarray, rng: np.random.Generator, texture: float) -> tuple[np.ndarray, np.ndarray]:
    """Relative emission (Z, Y, X) float32 and labels (Z, Y, X) int32 on the grid of voxel centres zc/yc/xc."""
    shape = (len(zc), len(yc), len(xc))
    best = np.full(shape, np.inf, np.float32)
    labels = np.zeros(shape, np.int32)
    for i, (c, ax, th) in enumerate(zip(centres, axes, angles), start=1):
        r = float(ax.max())
        zs = np.nonzero(np.abs(zc - c[0]) <= ax[0] + 1e-9)[0]
        ys = np.nonzero(np.abs(yc - c[1]) <= r)[0]
        xs = np.nonzero(np.abs(xc - c[2]) <= r)[0]
        if not (len(zs) and len(ys) and len(xs)):
            continue
        dz = (zc[zs] - c[0])[:, None, None] / ax[0]
        dy = (yc[ys] - c[1])[None, :, None]
        dx = (xc[xs] - c[2])[None, None, :]
        u = (np.cos(th) * dy + np.sin(th) * dx) / ax[1]
        v = (-np.sin(th) * dy + np.cos(th) * dx) / ax[2]
        d = np.sqrt(dz ** 2 + u ** 2 + v ** 2).astype(np.float32)
        sl = np.ix_(zs, ys, xs)
        cur = best[sl]
        win = (d < 1.0) & (d < cur)
        cur[win] = d[win]
        best[sl] = cur
        lab = labels[sl]
        lab[win] = i
        labels[sl] = lab
    emit = np.full(shape, 0.02, np.float32)  # faint autofluorescence everywhere
    if len(centres):
        # chromatin texture: mostly lateral (2D, the same through a nucleus) with a little 3D variation
        t2 = ndi.gaussian_filter(rng.normal(size=shape[1:]).astype(np.float32), 1.5)
        t3 = ndi.gaussian_filter(rng.normal(size=shape).astype(np.float32), (1.0, 1.5, 1.5))
        t2 /= t2.std() + 1e-6
        t3 /= t3.std() + 1e-6
        tex = 1 + texture * (0.8 * t2[None] + 0.45 * t3)
        edge = np.clip((1.0 - best) / 0.12, 0, 1)  # soft rim: partial-volume fall-off inside the label
        emit += np.where(labels > 0, edge * np.clip(tex, 0.2, None), 0).astype(np.float32)
    return emit, labels


def _focus_planes(labels: np.ndarray, centres: np.ndarray, z_step: float) -> np.ndarray:
    """Per pixel, the central plane of the nucleus with the longest run along that line of sight
    (background: that of the nearest such pixel)."""
    nz, ny, nx = labels.shape
    n = len(centres)
    if n == 0:
        return np.full((ny, nx), nz // 2, np.int32)
    runs = np.zeros((n + 1, ny, nx), np.int16)
    for k in range(nz):
        plane = labels[k]
        np.add.at(runs, (plane, np.arange(ny)[:, None], np.arange(nx)[None, :]), 1)
    runs[0] = 0
    owner = runs.argmax(0)
    plane_of = np.clip(np.floor(centres[:, 0] / z_step).astype(int), 0, nz - 1)
    focus = np.where(owner > 0, plane_of[np.maximum(owner - 1, 0)], -1)
    if (focus < 0).all():
        return np.full((ny, nx), nz // 2, np.int32)
    _, (iy, ix) = ndi.distance_transform_edt(focus < 0, return_indices=True)
    return focus[iy, ix].astype(np.int32)


def _touching_pairs(labels: np.ndarray) -> int:
    pairs: set[tuple[int, int]] = set()
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)
        p, q = a[:-1].ravel(), a[1:].ravel()
        m = (p > 0) & (q > 0) & (p != q)
        for u, v in zip(p[m], q[m]):
            pairs.add((min(u, v), max(u, v)))
    return len(pairs)
