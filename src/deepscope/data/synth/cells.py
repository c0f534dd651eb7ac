"""SIMCEP-style fluorescence cell populations with exact ground truth (BBBC005-like).

The model follows SIMCEP (Lehmussola et al., IEEE TMI 2007), the simulator that made
BBBC005, and is calibrated against the real BBBC005 images (see ``benchmarks/bench_synth.py``):

1. *Placement*: nucleus centres are drawn one by one inside the image, uniformly or, with
   probability ``clustering``, next to an earlier cell (their bodies touch or overlap).
   Nuclei may touch but barely overlap (``min_distance``); cell bodies overlap freely, as in
   BBBC005, whose cell-stain foreground fraction follows the coverage of freely overlapping cells.
2. *Shapes*: every nucleus and cell body is a deformed ellipse: a star-shaped polygon of
   jittered vertices (7-11 for nuclei, 4-8 for cell bodies) with edges bent in or out,
   stretched along a random axis and scaled to a random area. A cell body is built around
   its nucleus and always contains it.
3. *Appearance*: per-cell brightness, a two-octave texture, a brightness ramp across the
   nucleus, a faint cytoplasm signal in the nuclear stain, soft edges whose sharpness differs
   between cells (each cell lies in a sharp or a soft focal plane; the planes are combined by
   their maximum, so overlapping cells never add up), optional vignetting (``illumination``).
4. *Acquisition*: additive camera noise, smoothed by the camera and clipped at 0, then focus
   blur with a Gaussian of sigma ``0.25 * F`` cut at 2 sigma (the kernel of BBBC005: its F23 and
   F48 images equal their F1 image filtered by it), then rounding to uint8 (like BBBC005) or uint16.

Labels: where objects overlap, a pixel belongs to the object it lies deepest inside (its
radius relative to the object's outline in that direction), so every object keeps its centre
and touching objects are split along a natural line.

Stain 1 (``w1``) is the nuclear stain (nucleus-sized objects), stain 2 (``w2``) the cell-body
stain; every stain and blur level of one :class:`SynthField` shows the same simulated field.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepscope.data.synth._render import (BIT_DEPTHS, N_BINS, Seed, as_rng, bin_angles, check_size, gaussian,
                                          camera_noise, polar_grid, quantize, texture_mix, texture_patch)
from deepscope.errors import InputError

__all__ = ["CellParams", "SynthField", "generate_field", "STAINS", "focus_sigma"]

logger = logging.getLogger(__name__)

#: Stain numbers: 1 = nuclear stain (BBBC005 ``w1``), 2 = cell-body stain (``w2``).
STAINS = (1, 2)


@dataclass(frozen=True)
class CellParams:
    """Appearance and acquisition parameters of :func:`generate_field` (defaults: BBBC005).

    Areas are in pixels, intensities on the 0-255 scale of an 8-bit image (a 16-bit image
    is the same image times 257). Each field can be overridden by keyword in
    :func:`generate_field`, e.g. ``generate_field(10, nucleus_area=400)``.

    Parameters
    ----------
    nucleus_area, cell_area : float
        Mean area of a nucleus / cell body mask.
    nucleus_area_cv, cell_area_cv : float
        Coefficient of variation of the areas between cells.
    nucleus_vertices, cell_vertices : (int, int)
        Range of polygon vertices of the deformed-ellipse shapes.
    nucleus_irregularity, cell_irregularity : float
        Relative radial jitter of the vertices (0 = regular polygon).
    nucleus_elongation, cell_elongation : float
        Largest ``1 - minor/major`` axis ratio of the stretch applied to a shape.
    nucleus_curvature, cell_curvature : (float, float)
        Range of the bend of polygon edges at their middle, as a fraction of the radius:
        > 0 bends inwards (concave notches, common in BBBC005's cell bodies), < 0 outwards.
    nucleus_offset : float
        How far off-centre a nucleus may sit in its cell (fraction of the cell radius).
    min_distance : float
        Nucleus centres keep at least ``min_distance * (r_i + r_j)`` apart (equivalent nucleus
        radii; below 1 nuclei may touch, which BBBC005's merged nuclei at high counts require).
    cluster_distance : (float, float)
        A clustered cell is placed ``U(a, b) * (R_i + R_j)`` from a random earlier one
        (equivalent cell-body radii).
    nucleus_intensity, cell_intensity : float
        Mean brightness of a nucleus (stain 1) / cell body (stain 2).
    nucleus_intensity_cv, cell_intensity_cv : float
        Brightness variation between cells (coefficient of variation).
    nucleus_texture, cell_texture : (float, float)
        Relative amplitude (standard deviation) of the fine and the coarse texture.
    texture_scales : (float, float)
        Grain (pixels, the sigma of low-passed noise) of the fine and the coarse texture.
    nucleus_gradient : float
        Relative brightness change from the centre to the edge of a nucleus along a random direction.
    cytoplasm_in_nuclear_stain : float
        Faint signal of the cell bodies in the nuclear stain (BBBC005 shows about 1 grey level).
    edge_sigma : (float, float)
        Softness of object edges (sigma of a Gaussian, pixels) of the sharp and the soft cells:
        each cell (nucleus and body) lies in one of two focal planes, as in BBBC005.
    sharp_fraction : float
        Probability that a cell is in the sharp plane.
    illumination : float
        Vignetting: objects at the image corners are this fraction dimmer (0 = flat, as in BBBC005).
    noise_sd : (float, float)
        CCD noise standard deviation in stain 1 and stain 2 (BBBC005's w2 is less noisy).
    noise_mean, noise_sigma : float
        Mean of the noise, and the sigma (pixels) of the Gaussian that smooths it before it is
        clipped at 0 (gives BBBC005's dark background of values 0-4 and its pixel correlation).
    blur_scale : float
        Focus blur sigma per blur index: ``sigma = blur_scale * F``.
    blur_truncate : float
        The focus-blur kernel is cut at this many sigmas.
    max_fill : float
        Refuse counts whose nuclei would cover more than this fraction of the image.

    Examples
    --------
    >>> p = CellParams()
    >>> p.nucleus_area < p.cell_area
    True
    >>> dataclasses.replace(p, illumination=0.2).illumination
    0.2
    """

    nucleus_area: float = 800.0
    nucleus_area_cv: float = 0.06
    nucleus_vertices: tuple[int, int] = (7, 11)
    nucleus_irregularity: float = 0.07
    nucleus_elongation: float = 0.15
    nucleus_curvature: tuple[float, float] = (-0.06, 0.0)
    cell_area: float = 3230.0
    cell_area_cv: float = 0.10
    cell_vertices: tuple[int, int] = (4, 8)
    cell_irregularity: float = 0.3
    cell_elongation: float = 0.3
    cell_curvature: tuple[float, float] = (-0.12, 0.2)
    nucleus_offset: float = 0.15
    min_distance: float = 0.8
    cluster_distance: tuple[float, float] = (1.1, 1.7)
    nucleus_intensity: float = 154.0
    nucleus_intensity_cv: float = 0.14
    nucleus_texture: tuple[float, float] = (0.08, 0.21)
    nucleus_gradient: float = 0.25
    cell_intensity: float = 152.0
    cell_intensity_cv: float = 0.075
    cell_texture: tuple[float, float] = (0.10, 0.13)
    texture_scales: tuple[float, float] = (1.2, 5.0)
    cytoplasm_in_nuclear_stain: float = 1.0
    edge_sigma: tuple[float, float] = (1.5, 2.6)
    sharp_fraction: float = 0.5
    illumination: float = 0.0
    noise_sd: tuple[float, float] = (3.0, 2.25)
    noise_mean: float = 0.5
    noise_sigma: float = 0.6
    blur_scale: float = 0.25
    blur_truncate: float = 2.0
    max_fill: float = 0.5

    def __post_init__(self) -> None:
        for name in ("nucleus_area", "cell_area", "nucleus_intensity", "cell_intensity", "blur_scale",
                     "blur_truncate", "max_fill"):
            if not float(getattr(self, name)) > 0:
                raise InputError(f"{name} must be > 0; got {getattr(self, name)!r}")
        for name in ("nucleus_area_cv", "cell_area_cv", "nucleus_irregularity", "cell_irregularity",
                     "nucleus_intensity_cv", "cell_intensity_cv",
                     "nucleus_gradient", "cytoplasm_in_nuclear_stain", "noise_sigma", "min_distance", "nucleus_offset"):
            if float(getattr(self, name)) < 0:
                raise InputError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        for name in ("nucleus_elongation", "cell_elongation", "illumination"):
            v = float(getattr(self, name))
            if not 0 <= v < 1:
                raise InputError(f"{name} must be in [0, 1); got {v!r}")
        for name in ("nucleus_vertices", "cell_vertices"):
            lo, hi = getattr(self, name)
            if not 3 <= lo <= hi:
                raise InputError(f"{name} must be (low, high) with 3 <= low <= high; got {(lo, hi)!r}")
        for name in ("noise_sd", "nucleus_texture", "cell_texture", "texture_scales", "edge_sigma"):
            v = getattr(self, name)
            if len(v) != 2 or min(v) < 0:
                raise InputError(f"{name} must be two values >= 0; got {v!r}")
        if min(self.texture_scales) <= 0:
            raise InputError(f"texture_scales must be > 0; got {self.texture_scales!r}")
        if self.edge_sigma[0] > self.edge_sigma[1]:
            raise InputError(f"edge_sigma must be (sharp, soft) with sharp <= soft; got {self.edge_sigma!r}")
        if not 0 <= self.sharp_fraction <= 1:
            raise InputError(f"sharp_fraction must be in [0, 1]; got {self.sharp_fraction!r}")
        for name in ("nucleus_curvature", "cell_curvature"):
            lo, hi = getattr(self, name)
            if not -1 < lo <= hi < 1:
                raise InputError(f"{name} must be (low, high) with -1 < low <= high < 1; got {(lo, hi)!r}")
        lo, hi = self.cluster_distance
        if not 0 < lo <= hi:
            raise InputError(f"cluster_distance must be (low, high) with 0 < low <= high; got {(lo, hi)!r}")

    @classmethod
    def names(cls) -> list[str]:
        """The parameter names accepted as keyword options by :func:`generate_field`."""
        return [f.name for f in dataclasses.fields(cls)]


@dataclass(frozen=True)
class SynthField:
    """One simulated field of view: images at every requested stain and blur, and its ground truth.

    Attributes
    ----------
    count : int
        Number of cells (every cell has exactly one nucleus).
    nuclei : numpy.ndarray of int32, shape (H, W)
        Instance labels of the nuclei, ids ``1..count``, 0 = background.
    cells : numpy.ndarray of int32, shape (H, W)
        Instance labels of the cell bodies; a cell has the id of its nucleus and contains it.
        Where bodies overlap, a pixel belongs to the cell it lies deepest inside.
    images : dict of (int, int) to numpy.ndarray
        ``images[(stain, blur)]``: uint8 or uint16 (H, W) image.
    in_focus : dict of int to numpy.ndarray
        ``in_focus[stain]``: the F1 rendering of the same field (the same noise realisation).
    centroids : numpy.ndarray of float64, shape (count, 2)
        ``(row, col)`` of each cell's nucleus centre, row ``i`` for id ``i + 1``.
    bit_depth : int
        8 or 16.
    params : CellParams
        The parameters the field was made with.
    """

    count: int
    nuclei: np.ndarray
    cells: np.ndarray
    images: dict[tuple[int, int], np.ndarray]
    in_focus: dict[int, np.ndarray]
    centroids: np.ndarray
    bit_depth: int = 8
    params: CellParams = field(default_factory=CellParams, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """Image size as (rows, cols)."""
        return (int(self.nuclei.shape[0]), int(self.nuclei.shape[1]))

    def image(self, stain: int = 1, blur: int = 1) -> np.ndarray:
        """``images[(stain, blur)]`` with a clear error for a level that was not generated.

        Raises
        ------
        deepscope.errors.InputError
            If that stain and blur were not requested from :func:`generate_field`.
        """
        try:
            return self.images[(stain, blur)]
        except KeyError:
            raise InputError(f"no image for stain={stain}, blur={blur}; generated: {sorted(self.images)}") from None

    def labels(self, stain: int = 1) -> np.ndarray:
        """The instance labels matching a stain: nuclei for stain 1, cell bodies for stain 2."""
        if stain not in STAINS:
            raise InputError(f"stain must be one of {STAINS}; got {stain!r}")
        return self.nuclei if stain == 1 else self.cells


def focus_sigma(blur: int, *, scale: float = 0.25) -> float:
    """Gaussian sigma (pixels) of the focus blur of index ``blur`` (SIMCEP/BBBC005: ``0.25 * F``).

    Examples
    --------
    >>> focus_sigma(1), focus_sigma(48)
    (0.25, 12.0)
    """
    return float(scale) * float(blur)


def generate_field(count: int, *, size: tuple[int, int] = (520, 696), blurs: Iterable[int] | int = (1,),
                   stains: Iterable[int] | int = STAINS, clustering: float = 0.25, bit_depth: int = 8,
                   seed: Seed = None, params: CellParams | None = None, **options: Any) -> SynthField:
    """Simulate one BBBC005-like field of fluorescent cells with exact instance labels.

    Parameters
    ----------
    count : int
        Number of cells (>= 0; 0 gives an empty field).
    size : (int, int), default (520, 696)
        Image size as (rows, cols); BBBC005 images are 520 x 696.
    blurs : int or iterable of int, default (1,)
        Focus-blur indices F >= 1 to render (Gaussian sigma ``0.25 * F``); BBBC005 uses 1-48.
    stains : int or iterable of int, default (1, 2)
        1 = nuclear stain (w1), 2 = cell-body stain (w2).
    clustering : float, default 0.25
        Probability that a cell is placed next to an earlier one (SIMCEP/BBBC005 use 0.25).
    bit_depth : {8, 16}, default 8
        uint8 like BBBC005, or uint16 (the same image scaled by 257).
    seed : int, numpy.random.Generator or None
        Randomness; the same int seed and arguments give identical arrays.
    params : CellParams, optional
        Base parameters (default: calibrated to BBBC005).
    **options
        Overrides of single :class:`CellParams` fields, e.g. ``illumination=0.2``.

    Returns
    -------
    SynthField
        Images ``images[(stain, blur)]``, ``in_focus[stain]``, labels ``nuclei``/``cells`` (int32)
        and ``centroids``. The field (positions, shapes, noise) does not depend on which stains
        and blur levels are requested.

    Raises
    ------
    deepscope.errors.InputError
        If ``count`` < 0 or not an integer, a blur index is < 1, a stain is unknown, ``bit_depth``
        is not 8 or 16, ``clustering`` is outside [0, 1], an option is unknown or invalid, or
        ``size`` is too small to hold ``count`` cells.

    Examples
    --------
    >>> f = generate_field(12, size=(260, 348), blurs=(1, 23), seed=0)
    >>> f.count, int(f.nuclei.max()), f.images[(1, 23)].dtype, f.images[(2, 1)].shape
    (12, 12, dtype('uint8'), (260, 348))
    >>> bool((f.cells[f.nuclei > 0] == f.nuclei[f.nuclei > 0]).all())
    True
    """
    p = _resolve_params(params, options)
    count = _check_count(count)
    h, w = check_size(size)
    blur_list = _check_blurs(blurs)
    stain_list = _check_stains(stains)
    if isinstance(clustering, bool) or not isinstance(clustering, (int, float)) or not 0 <= clustering <= 1:
        raise InputError(f"clustering must be a probability in [0, 1]; got {clustering!r}")
    if bit_depth not in BIT_DEPTHS:
        raise InputError(f"bit_depth must be one of {BIT_DEPTHS}; got {bit_depth!r}")
    fill = count * p.nucleus_area / (h * w)
    if fill > p.max_fill:
        raise InputError(f"size={(h, w)} is too small to hold {count} cells: their nuclei alone would cover "
                         f"{fill:.0%} of the image (at most {p.max_fill:.0%}); use a larger size or fewer cells "
                         f"(at most {int(p.max_fill * h * w / p.nucleus_area)} at this size)")
    rng = as_rng(seed)

    # --- 1. every random draw of the field, in a fixed order (independent of stains and blurs)
    n_area = p.nucleus_area * _lognormal(rng, p.nucleus_area_cv, count)
    n_radius = np.sqrt(n_area / math.pi)
    c_area = p.cell_area * _lognormal(rng, p.cell_area_cv, count)
    centres = _place(rng, n_radius, np.sqrt(c_area / math.pi), (h, w), clustering=float(clustering),
                     min_distance=p.min_distance, cluster_distance=p.cluster_distance)
    angles = bin_angles()
    n_tab = _shapes(rng, angles, n_area, p.nucleus_vertices, p.nucleus_irregularity, p.nucleus_elongation, 0.0,
                    p.nucleus_curvature)
    c_tab = _shapes(rng, angles, c_area, p.cell_vertices, p.cell_irregularity, p.cell_elongation,
                    p.nucleus_offset, p.cell_curvature)
    np.maximum(c_tab, n_tab * np.float32(1.15) + np.float32(2.0), out=c_tab)
    n_bright = p.nucleus_intensity * _lognormal(rng, p.nucleus_intensity_cv, count)
    c_bright = p.cell_intensity * _lognormal(rng, p.cell_intensity_cv, count)
    grad_dir = rng.uniform(0, 2 * math.pi, count)
    grad_amp = p.nucleus_gradient * rng.uniform(0.3, 1.0, count)
    tex_off = rng.integers(0, 1 << 16, (count, 2, 2))  # cell, stain, (row, col)
    tex_flip = rng.integers(0, 4, (count, 2))
    sharp = (rng.random(count) < p.sharp_fraction).astype(np.intp)  # focal plane of each cell
    noise_seeds = rng.integers(0, 2**63 - 1, len(STAINS))

    # --- 2. labels (and the appearance of each requested stain) with depth buffers
    # Every buffer has two focal planes, [soft, sharp]: within a plane a pixel belongs to the object
    # it lies deepest inside (depth: 0 at its centre, 1 on its outline); across planes objects overlap
    # (each is whole in its own plane) and the labels again follow the smallest depth.
    far = np.float32(1.0 + 1e-6)
    nuc_planes = [np.zeros((h, w), np.int32) for _ in range(2)]
    cell_planes = [np.zeros((h, w), np.int32) for _ in range(2)]
    zbuf_n = [np.full((h, w), far, np.float32) for _ in range(2)]
    zbuf_c = [np.full((h, w), far, np.float32) for _ in range(2)]
    canvas = {s: [np.zeros((h, w), np.float32) for _ in range(2)] for s in stain_list}
    n_ext, c_ext = _extents(n_tab, angles), _extents(c_tab, angles)
    n_inv, c_inv = np.float32(1.0) / n_tab, np.float32(1.0) / c_tab
    half = max(64, int(np.abs(c_ext).max(initial=0)) + 1)
    half = 32 * ((half + 31) // 32)
    rho, bins = polar_grid(half)
    axis = np.arange(-half, half + 1, dtype=np.float32)
    bank = {1: texture_mix(p.texture_scales, p.nucleus_texture), 2: texture_mix(p.texture_scales, p.cell_texture)}
    extent = np.array([[h, 0, w, 0], [h, 0, w, 0]])  # rows and cols holding objects, per plane
    for i in range(count):
        cy, cx = int(centres[i, 0]), int(centres[i, 1])
        ident, plane = i + 1, int(sharp[i])
        # cell body (stain 2)
        win, rs, cs, _ = _paint(zbuf_c[plane], cell_planes[plane], ident, cy, cx, c_inv[i], c_ext[i], rho, bins, half)
        e = extent[plane]
        e[0], e[1], e[2], e[3] = min(e[0], rs.start), max(e[1], rs.stop), min(e[2], cs.start), max(e[3], cs.stop)
        if 2 in canvas:
            b = np.float32(c_bright[i])
            val = texture_patch(bank[2], win.shape, (int(tex_off[i, 1, 0]), int(tex_off[i, 1, 1])),
                                int(tex_flip[i, 1])) * b
            val += b
            np.copyto(canvas[2][plane][rs, cs], val, where=win)
        # nucleus (stain 1): texture and a brightness ramp across it
        win, rs, cs, (g_r, g_c) = _paint(zbuf_n[plane], nuc_planes[plane], ident, cy, cx, n_inv[i], n_ext[i], rho,
                                         bins, half)
        if 1 in canvas:
            b = np.float32(n_bright[i])
            slope = b * grad_amp[i] / float(n_radius[i])
            val = texture_patch(bank[1], win.shape, (int(tex_off[i, 0, 0]), int(tex_off[i, 0, 1])),
                                int(tex_flip[i, 0])) * b
            val += b
            val += (axis[g_r] * np.float32(slope * math.sin(grad_dir[i])))[:, None]
            val += axis[g_c] * np.float32(slope * math.cos(grad_dir[i]))
            np.copyto(canvas[1][plane][rs, cs], val, where=win)
    nuclei, cells = nuc_planes[0], cell_planes[0]
    np.copyto(nuclei, nuc_planes[1], where=zbuf_n[1] < zbuf_n[0])
    np.copyto(cells, cell_planes[1], where=zbuf_c[1] < zbuf_c[0])
    del nuc_planes, cell_planes, zbuf_n, zbuf_c
    nuc_px = nuclei > 0
    cells[nuc_px] = nuclei[nuc_px]  # a nucleus always lies in its own cell
    if 1 in canvas and p.cytoplasm_in_nuclear_stain > 0:
        np.maximum(canvas[1][0], np.float32(p.cytoplasm_in_nuclear_stain) * (cells > 0), out=canvas[1][0])

    # --- 3. optics and camera, per stain
    illum = _illumination((h, w), p.illumination) if p.illumination > 0 else None
    s_sharp, s_soft = p.edge_sigma
    images: dict[tuple[int, int], np.ndarray] = {}
    in_focus: dict[int, np.ndarray] = {}
    both = np.array([extent[:, 0].min(), extent[:, 1].max(), extent[:, 2].min(), extent[:, 3].max()])
    for s in stain_list:
        # each plane blurred by its own sigma; max-compositing keeps abutting cells from adding up
        # (the faint cytoplasm of the nuclear stain lies in the soft plane under every cell)
        base = _blur_region(canvas[s][0], s_soft, both if s == 1 and p.cytoplasm_in_nuclear_stain > 0 else extent[0])
        np.maximum(base, _blur_region(canvas[s][1], s_sharp, extent[1]), out=base)
        canvas[s] = []
        if illum is not None:
            base *= illum
        base += camera_noise(np.random.default_rng(int(noise_seeds[s - 1])), (h, w), p.noise_sd[s - 1],
                             p.noise_mean)
        # camera blur of the noise, then clipping: the in-focus image. Its focus blur (sigma 0.25 * 1)
        # is merged into the camera blur (Gaussians compose), which is exact where nothing clips and
        # saves a pass; the other blur levels filter the clipped image.
        in_focus[s] = quantize(np.maximum(gaussian(base, math.hypot(p.noise_sigma, focus_sigma(1, scale=p.blur_scale)),
                                                   truncate=2.0), 0), bit_depth)
        if any(f > 1 for f in blur_list):
            base = gaussian(base, p.noise_sigma, truncate=2.0)
            np.maximum(base, 0, out=base)
        for f in blur_list:
            images[(s, f)] = in_focus[s] if f == 1 else quantize(
                gaussian(base, focus_sigma(f, scale=p.blur_scale), truncate=p.blur_truncate), bit_depth)
    return SynthField(count=count, nuclei=nuclei, cells=cells, images=images, in_focus=in_focus,
                      centroids=centres.astype(np.float64), bit_depth=bit_depth, params=p)


# ---------------------------------------------------------------------------- internals
def _resolve_params(params: CellParams | None, options: dict[str, Any]) -> CellParams:
    base = params if params is not None else CellParams()
    if not isinstance(base, CellParams):
        raise InputError(f"params must be a CellParams; got {type(base).__name__}")
    unknown = sorted(set(options) - set(CellParams.names()))
    if unknown:
        raise InputError(f"unknown option(s) {unknown} for generate_field; valid options are the CellParams "
                         f"fields: {', '.join(CellParams.names())}")
    return dataclasses.replace(base, **options) if options else base


def _check_count(count: object) -> int:
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise InputError(f"count must be an integer >= 0; got {count!r}")
    if count < 0:
        raise InputError(f"count must be >= 0; got {count}")
    return int(count)


def _check_blurs(blurs: Iterable[int] | int) -> list[int]:
    items = [blurs] if isinstance(blurs, (int, np.integer)) else list(blurs)
    if not items:
        raise InputError("blurs is empty; give at least one blur index, e.g. blurs=(1,)")
    out: list[int] = []
    for b in items:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise InputError(f"blur indices must be integers >= 1 (F1 = in focus); got {b!r}")
        if b < 1:
            raise InputError(f"blur index must be >= 1 (F1 = in focus, BBBC005 goes to F48); got {b}")
        if int(b) not in out:
            out.append(int(b))
    return out


def _check_stains(stains: Iterable[int] | int) -> list[int]:
    items = [stains] if isinstance(stains, (int, np.integer)) else list(stains)
    if not items:
        raise InputError(f"stains is empty; give one or more of {STAINS}")
    out: list[int] = []
    for s in items:
        if isinstance(s, bool) or s not in STAINS:
            raise InputError(f"unknown stain {s!r}: stains are 1 (nuclei, w1) and 2 (cell bodies, w2)")
        if int(s) not in out:
            out.append(int(s))
    return out


def _lognormal(rng: np.random.Generator, cv: float, n: int) -> np.ndarray:
    """Positive multiplicative factors with mean 1 and coefficient of variation ``cv``."""
    if cv <= 0:
        rng.standard_normal(n)  # keep the number of draws independent of cv
        return np.ones(n)
    s2 = math.log1p(cv * cv)
    return np.exp(rng.standard_normal(n) * math.sqrt(s2) - s2 / 2)


def _shapes(rng: np.random.Generator, angles: np.ndarray, area: np.ndarray, vertices: tuple[int, int],
            irregularity: float, elongation: float, offset: float, curvature: tuple[float, float]) -> np.ndarray:
    """Radial functions r(angle), shape (n, N_BINS), of deformed ellipses (star-shaped polygons).

    Each shape is a polygon of ``vertices`` jittered vertices whose edges are bent in (curvature
    > 0) or out (< 0) by a random ``U(curvature)`` fraction at their middle, stretched along a
    random axis, its origin moved off-centre by up to ``offset``, then scaled to its ``area``.
    """
    n = len(area)
    k_max = vertices[1]
    k = rng.integers(vertices[0], vertices[1] + 1, n)
    start = rng.uniform(0, 2 * math.pi, n)
    jitter = rng.uniform(-0.3, 0.3, (n, k_max))
    rad = 1.0 + irregularity * rng.uniform(-1.0, 1.0, (n, k_max))
    q = 1.0 - elongation * rng.uniform(0.0, 1.0, n)
    alpha = rng.uniform(0, math.pi, n)
    beta = rng.uniform(0, 2 * math.pi, n)
    shift = offset * rng.uniform(0.0, 1.0, n)
    bend = rng.uniform(curvature[0], curvature[1], (n, k_max))
    if n == 0:
        return np.zeros((0, N_BINS), np.float32)
    kk = k[:, None]
    step = 2 * math.pi / kk
    # vertex j sits at angle (j + 0.3 + jitter) * step after ``start``: inside [j, j + 0.6] steps
    j = np.arange(k_max)[None, :]
    th = (j + 0.3 + jitter) * step
    px, py = rad * np.cos(th), rad * np.sin(th)
    nxt = (j + 1) % kk
    ex = np.take_along_axis(px, nxt, 1) - px
    ey = np.take_along_axis(py, nxt, 1) - py
    num = px * ey - py * ex  # segment s (vertex s -> s + 1): ray hits it at num / cross(u, e)
    # trigonometry of (bin angle - per-shape angle) by the angle-difference identities: no (n, B) cos/sin
    cphi, sphi = np.cos(angles)[None, :], np.sin(angles)[None, :]

    def cos_sin(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ct, st = np.cos(t)[:, None], np.sin(t)[:, None]
        return cphi * ct + sphi * st, sphi * ct - cphi * st

    ca, sa = cos_sin(start)
    a = np.mod(angles[None, :] - start[:, None], 2 * math.pi)  # (n, B) angle after ``start``
    m = np.minimum((a / step).astype(np.intp), kk - 1)
    idx = m - (a < np.take_along_axis(th, m, 1))  # the segment whose angular span holds a
    idx = np.where(idx < 0, kk - 1, idx)
    r = np.take_along_axis(num, idx, 1) / (ca * np.take_along_axis(ey, idx, 1) - sa * np.take_along_axis(ex, idx, 1))
    # bend each edge: r *= 1 - bend * sin(pi * t), t = position along the edge's angular span
    th_end = np.where(j + 1 < kk, np.take_along_axis(th, np.minimum(j + 1, k_max - 1), 1), 2 * math.pi + th[:, :1])
    t0 = np.take_along_axis(th, idx, 1)
    span = np.take_along_axis(th_end, idx, 1) - t0
    t = np.mod(a - t0, 2 * math.pi) / span
    r *= 1.0 - np.take_along_axis(bend, idx, 1) * np.sin(math.pi * np.clip(t, 0.0, 1.0))
    cal, sal = cos_sin(alpha)
    r = r / np.sqrt(cal**2 + (sal / q[:, None]) ** 2)
    cb, _ = cos_sin(beta)
    r = np.abs(r * (1.0 + shift[:, None] * cb))
    scale = np.sqrt(area / (math.pi * np.mean(r * r, axis=1)))
    return (r * scale[:, None]).astype(np.float32)


def _extents(tab: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Integer bounding offsets (top, bottom, left, right) of each radial shape, shape (n, 4)."""
    rows = tab * np.sin(angles).astype(np.float32)[None, :]
    cols = tab * np.cos(angles).astype(np.float32)[None, :]
    out = np.stack([np.floor(rows.min(axis=1, initial=0.0)) - 1, np.ceil(rows.max(axis=1, initial=0.0)) + 1,
                    np.floor(cols.min(axis=1, initial=0.0)) - 1, np.ceil(cols.max(axis=1, initial=0.0)) + 1], 1)
    return out.astype(np.int64)


class _Uniform:
    """Uniform [0, 1) numbers drawn from a generator in blocks (fast scalar draws, deterministic)."""

    def __init__(self, rng: np.random.Generator, block: int) -> None:
        self.rng, self.block = rng, max(16, block)
        self.buf: list[float] = []
        self.pos = 0

    def __call__(self) -> float:
        if self.pos == len(self.buf):
            self.buf, self.pos = self.rng.random(self.block).tolist(), 0
        self.pos += 1
        return self.buf[self.pos - 1]


def _place(rng: np.random.Generator, radius: np.ndarray, cell_radius: np.ndarray, size: tuple[int, int], *,
           clustering: float, min_distance: float, cluster_distance: tuple[float, float]) -> np.ndarray:
    """Integer nucleus centres (row, col) inside the image, apart by ``min_distance * (r_i + r_j)``.

    With probability ``clustering`` a cell is first sought next to a random earlier cell, at
    ``U(cluster_distance) * (R_i + R_j)`` (cell-body radii: the bodies touch or overlap), in 30
    tries; else (or then) uniformly, in 5,000 tries. A bucket grid keeps the distance checks local.
    """
    h, w = size
    n = len(radius)
    pos = np.zeros((n, 2), np.float64)
    if n == 0:
        return pos
    r, rc = radius.tolist(), cell_radius.tolist()
    cell = max(1.0, 2.0 * max(r) * min_distance)
    grid: dict[tuple[int, int], list[int]] = {}
    ys: list[float] = []
    xs: list[float] = []
    cluster = (rng.random(n) < clustering).tolist()
    u = _Uniform(rng, 8 * n)
    lo, hi = cluster_distance

    def free(i: int, y: float, x: float) -> bool:
        gy, gx = int(y // cell), int(x // cell)
        for by in (gy - 1, gy, gy + 1):
            for bx in (gx - 1, gx, gx + 1):
                for j in grid.get((by, bx), ()):
                    need = min_distance * (r[i] + r[j])
                    if (ys[j] - y) ** 2 + (xs[j] - x) ** 2 < need * need:
                        return False
        return True

    for i in range(n):
        found = False
        if i > 0 and cluster[i]:
            for _ in range(30):
                j = int(u() * i)
                d = (rc[i] + rc[j]) * (lo + (hi - lo) * u())
                ang = 2 * math.pi * u()
                y, x = math.floor(ys[j] + d * math.sin(ang)), math.floor(xs[j] + d * math.cos(ang))
                if 0 <= y < h and 0 <= x < w and free(i, y, x):
                    found = True
                    break
        if not found:
            for _ in range(5000):
                y, x = math.floor(u() * h), math.floor(u() * w)
                if free(i, y, x):
                    found = True
                    break
        if not found:
            raise InputError(f"size={size} is too small to hold {n} cells: only {i} nuclei could be placed "
                             f"apart from each other; use a larger size or fewer cells")
        ys.append(float(y))
        xs.append(float(x))
        grid.setdefault((int(y // cell), int(x // cell)), []).append(i)
    pos[:, 0], pos[:, 1] = ys, xs
    return pos


def _paint(zbuf: np.ndarray, labels: np.ndarray, ident: int, cy: int, cx: int, inv_r: np.ndarray,
           ext: np.ndarray, rho: np.ndarray, bins: np.ndarray, half: int
           ) -> tuple[np.ndarray, slice, slice, tuple[slice, slice]]:
    """Write one star-shaped object into ``labels`` where it lies deeper than what ``zbuf`` holds.

    Depth is the normalised radius ``rho / r(angle)`` (0 at the centre, 1 on the outline; ``inv_r``
    is ``1 / r`` per angle bin), so where objects overlap a pixel goes to the object it lies
    deepest inside; ``zbuf`` starts just above 1 so only pixels inside the object are written.
    ``ext`` holds the object's bounding offsets (top, bottom, left, right). Returns the mask of
    pixels written (over the patch), the patch's row and column slices in the image and in the
    polar grid.
    """
    h, w = labels.shape
    r0, r1 = max(cy + int(ext[0]), 0), min(cy + int(ext[1]) + 1, h)
    c0, c1 = max(cx + int(ext[2]), 0), min(cx + int(ext[3]) + 1, w)
    rs, cs = slice(r0, r1), slice(c0, c1)
    g_r = slice(r0 - cy + half, r1 - cy + half)
    g_c = slice(c0 - cx + half, c1 - cx + half)
    depth = np.take(inv_r, bins[g_r, g_c])
    depth *= rho[g_r, g_c]
    zb = zbuf[rs, cs]
    win = depth < zb
    np.copyto(zb, depth, where=win)
    np.copyto(labels[rs, cs], np.int32(ident), where=win)
    return win, rs, cs, (g_r, g_c)


def _blur_region(plane: np.ndarray, sigma: float, extent: np.ndarray, truncate: float = 2.5) -> np.ndarray:
    """Gaussian blur of ``plane`` computed only around ``extent`` (rows r0:r1, cols c0:c1 holding all
    non-zero pixels): identical to blurring the whole plane, since the rest is zero."""
    out = np.zeros_like(plane)
    r0, r1, c0, c1 = (int(v) for v in extent)
    if r0 >= r1 or c0 >= c1:
        return out
    h, w = plane.shape
    m = int(truncate * sigma + 0.5) + 1
    rs, cs = slice(max(r0 - m, 0), min(r1 + m, h)), slice(max(c0 - m, 0), min(c1 + m, w))
    out[rs, cs] = gaussian(plane[rs, cs], sigma, truncate=truncate)
    return out


def _illumination(size: tuple[int, int], strength: float) -> np.ndarray:
    """Multiplicative vignetting: 1 at the centre, ``1 - strength`` at the corners (quadratic)."""
    h, w = size
    yy = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / ((h - 1) / 2 or 1)
    xx = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / ((w - 1) / 2 or 1)
    r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 2.0
    return (1.0 - strength * r2).astype(np.float32)
