"""Pictures that are not microscopy, for calibrating and measuring domain checks.

A domain check (:mod:`deepscope.predict.domain`) must say "this is not an image I know" for text,
drawings, screenshots, photographs and noise. :func:`generate_unfamiliar` draws such pictures,
deterministic for a seed, from what every installation has offline: fonts and sample data shipped
with matplotlib, scikit-image's bundled photographs, Pillow's drawing and NumPy's noise.

Kinds (:data:`UNFAMILIAR_KINDS`):

- ``text-dark`` / ``text-light``: rendered lines of words, dark on light and light on dark, in
  matplotlib's TrueType fonts (DejaVu, STIX, Computer Modern) and Pillow's bitmap font scaled up,
  8-64 px high, sometimes coloured, rotated a quarter turn or softened like a scan;
- ``line-art``: outlines of lines, polylines, polygons, circles and ellipses, either polarity;
- ``plot``: a matplotlib chart (lines, scatter, bars, histogram, contours) with axes and labels;
- ``screenshot``: a window with a title bar, sidebar, buttons, table lines and text blocks;
- ``gradient``: linear or radial ramps, grey or colour, some banded;
- ``noise-uniform``, ``noise-gaussian``, ``noise-salt-pepper``, ``noise-smooth`` (Perlin-like sums
  of smoothed octaves), grey or colour;
- ``checkerboard``: squares of a random size, levels and angle;
- ``photo-grey`` / ``photo-colour``: a random crop and rescale of a photograph or scan
  (:data:`PHOTOS`; grey: its luminance; colour: the colour ones, and maps in a colour map).

The photographs are few, so they are split: :data:`CALIBRATION_PHOTOS` (fit a check on these) and
:data:`HELD_OUT_PHOTOS` (report its rate on these), alternating in alphabetical order; pass one of
them as ``photos=``. Microscopy images that ship with scikit-image (``cell``,
``immunohistochemistry``) are not in the list.

Examples
--------
>>> from deepscope.data.synth import generate_unfamiliar
>>> a = generate_unfamiliar("text-dark", 1, size=(64, 96))
>>> a.shape, a.dtype.name, bool((a == generate_unfamiliar("text-dark", 1, size=(64, 96))).all())
((64, 96), 'uint8', True)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.data.synth._render import Seed, as_rng, check_size, gaussian
from deepscope.errors import InputError

__all__ = ["generate_unfamiliar", "unfamiliar_photo", "UNFAMILIAR_KINDS", "PHOTOS", "CALIBRATION_PHOTOS",
           "HELD_OUT_PHOTOS"]

UNFAMILIAR_KINDS = ("text-dark", "text-light", "line-art", "plot", "screenshot", "gradient", "noise-uniform",
                    "noise-gaussian", "noise-salt-pepper", "noise-smooth", "checkerboard", "photo-grey",
                    "photo-colour")

#: Photographs, scans and maps available offline: scikit-image's bundled data (``name``) and
#: matplotlib's sample data (``mpl:name``).
PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "mpl:grace_hopper",
          "grass", "gravel", "horse", "hubble_deep_field", "mpl:jacksboro_dem", "logo", "mpl:logo2", "microaneurysms",
          "mpl:minduka", "moon", "mpl:mri", "page", "retina", "rocket", "shepp_logan_phantom", "text",
          "mpl:topobathy")
_SORTED = tuple(sorted(PHOTOS, key=lambda n: n.split(":")[-1]))
#: Photographs for calibration (every other one of :data:`PHOTOS` in alphabetical order).
CALIBRATION_PHOTOS = _SORTED[::2]
#: Photographs never used for calibration (the others), for reporting a check's rate.
HELD_OUT_PHOTOS = _SORTED[1::2]
_MAPS = ("mpl:jacksboro_dem", "mpl:topobathy")

_WORDS = ("the", "of", "and", "image", "cell", "nucleus", "microscopy", "deepscope", "quick", "brown", "fox",
          "jumps", "over", "lazy", "dog", "lorem", "ipsum", "dolor", "sit", "amet", "Figure", "Table", "2024",
          "results", "were", "analysed", "with", "p < 0.05", "mean", "SD", "n = 12", "(a)", "(b)", "Methods",
          "READ", "ME", "print(x)", "def", "return", "0.125", "42", "Hello", "World", "OK", "Cancel", "File", "Edit")


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple[str, ...]:
    """matplotlib's bundled TrueType fonts (the same on every installation of a matplotlib version)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    # symbol fonts and the Display faces (a handful of glyphs): no letters, so nothing would be drawn
    skip = ("cmex", "cmsy", "STIXSiz", "STIXNonUni", "LastResort", "DejaVuSansDisplay", "DejaVuSerifDisplay")
    return tuple(str(p) for p in sorted(folder.glob("*.ttf")) if not p.name.startswith(skip))


def _font(rng: np.random.Generator, px: int) -> tuple[Any, int]:
    """A font of about ``px`` pixels and the factor to upscale its rendering by (bitmap font: > 1)."""
    from PIL import ImageFont

    fonts = _fonts()
    if not fonts or rng.random() < 0.15:
        return ImageFont.load_default_imagefont(), max(1, round(px / 11))
    return ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], size=max(6, px)), 1


def _phrase(rng: np.random.Generator, n: int) -> str:
    words = [str(_WORDS[int(i)]) for i in rng.integers(0, len(_WORDS), n)]
    if rng.random() < 0.3:
        words.append("".join(chr(int(c)) for c in rng.integers(33, 127, int(rng.integers(3, 9)))))
    return " ".join(words)


def _grey_levels(rng: np.random.Generator, dark_on_light: bool) -> tuple[int, int]:
    """(background, ink) grey levels."""
    bg, ink = int(rng.integers(190, 256)), int(rng.integers(0, 90))
    return (bg, ink) if dark_on_light else (255 - bg, 255 - ink)


def _colour(rng: np.random.Generator, level: int, colour: bool) -> tuple[int, int, int]:
    if not colour:
        return (level, level, level)
    c = np.clip(level + rng.normal(0, 70, 3), 0, 255).astype(int)
    return (int(c[0]), int(c[1]), int(c[2]))


def _text(rng: np.random.Generator, h: int, w: int, dark_on_light: bool) -> np.ndarray:
    from PIL import Image, ImageDraw

    colour = rng.random() < 0.25
    bg, ink = _grey_levels(rng, dark_on_light)
    rotate = rng.random() < 0.15
    H, W = (w, h) if rotate else (h, w)
    img = Image.new("RGB", (W, H), _colour(rng, bg, colour))
    draw = ImageDraw.Draw(img)
    px = int(np.exp(rng.uniform(np.log(8), np.log(64))))
    font, up = _font(rng, px)
    fill = _colour(rng, ink, colour)
    row = int(rng.integers(0, max(1, px // 2)))
    spacing = rng.uniform(1.1, 1.8)
    while row < H:
        col = int(rng.integers(0, max(1, W // 6)))
        text = _phrase(rng, int(rng.integers(2, 9)))
        if up > 1:  # the bitmap font rendered small and scaled up with its square pixels
            box = font.getbbox(text)
            small = Image.new("L", (box[2] + 2, box[3] + 2), 0)
            ImageDraw.Draw(small).text((1, 1), text, fill=255, font=font)
            mask = small.resize((small.width * up, small.height * up), Image.NEAREST)
            img.paste(Image.new("RGB", mask.size, fill), (col, row), mask)
        else:
            draw.text((col, row), text, fill=fill, font=font)
        row += int(px * spacing) + (int(rng.integers(0, 3 * px)) if rng.random() < 0.2 else 0)
    a = np.asarray(img)
    if rotate:
        a = np.rot90(a, int(rng.choice([1, 3])))
    if rng.random() < 0.3:  # a scan or a photographed page: soft and noisy
        a = _soften(rng, a)
    return a if colour else a[..., 0]


def _soften(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    f = a.astype(np.float32)
    s = float(rng.uniform(0.4, 1.5))
    f = np.stack([gaussian(f[..., c], s) for c in range(f.shape[-1])], -1) if f.ndim == 3 else gaussian(f, s)
    f += rng.normal(0, rng.uniform(1, 8), f.shape).astype(np.float32)
    return np.clip(f, 0, 255).astype(np.uint8)


def _line_art(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    colour = rng.random() < 0.3
    bg, ink = _grey_levels(rng, rng.random() < 0.7)
    img = Image.new("RGB", (w, h), _colour(rng, bg, colour))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 30))):
        fill = _colour(rng, ink, colour)
        width = int(rng.integers(1, 6))
        kind = int(rng.integers(5))
        pts = [(float(rng.uniform(-0.1, 1.1) * w), float(rng.uniform(-0.1, 1.1) * h))
               for _ in range(int(rng.integers(2, 7)))]
        if kind == 0:
            draw.line(pts[:2], fill=fill, width=width)
        elif kind == 1:
            draw.line(pts, fill=fill, width=width, joint="curve")
        elif kind == 2 and len(pts) >= 3:
            draw.polygon(pts, outline=fill, width=width)
        else:
            r0, c0 = float(rng.uniform(0, h)), float(rng.uniform(0, w))
            rr = float(rng.uniform(4, max(h, w) / 3))
            rc = rr if kind == 3 else float(rng.uniform(4, max(h, w) / 3))
            draw.ellipse([c0 - rc, r0 - rr, c0 + rc, r0 + rr], outline=fill, width=width)
    a = np.asarray(img)
    return a if colour else a[..., 0]


def _plot(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    kind = int(rng.integers(5))
    x = np.linspace(0, rng.uniform(1, 20), 200)
    if kind == 0:
        for _ in range(int(rng.integers(1, 5))):
            ax.plot(x, np.cumsum(rng.normal(size=x.size)) * rng.uniform(0.1, 3), lw=float(rng.uniform(0.5, 3)))
    elif kind == 1:
        n = int(rng.integers(20, 400))
        ax.scatter(rng.normal(size=n), rng.normal(size=n), s=float(rng.uniform(2, 60)), alpha=float(rng.uniform(0.3, 1)))
    elif kind == 2:
        k = int(rng.integers(3, 15))
        ax.bar(np.arange(k), rng.uniform(1, 10, k), color=None if rng.random() < 0.5 else "grey")
    elif kind == 3:
        ax.hist(rng.normal(size=int(rng.integers(100, 2000))), bins=int(rng.integers(10, 60)))
    else:
        yy, xx = np.mgrid[-2:2:80j, -2:2:80j]
        z = np.sin(xx * rng.uniform(0.5, 3)) * np.cos(yy * rng.uniform(0.5, 3))
        ax.contour(xx, yy, z, levels=int(rng.integers(4, 15)))
    ax.set_title(_phrase(rng, 3), fontsize=float(rng.uniform(6, 14)))
    ax.set_xlabel(_phrase(rng, 2), fontsize=float(rng.uniform(5, 12)))
    ax.set_ylabel(_phrase(rng, 1), fontsize=float(rng.uniform(5, 12)))
    if rng.random() < 0.4:
        ax.grid(True)
    fig.canvas.draw()
    a = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    if a.shape[:2] != (h, w):
        a = _resize(a, h, w)
    return a if rng.random() < 0.7 else _luminance(a)


def _screenshot(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    dark = rng.random() < 0.35
    colour = rng.random() < 0.7
    bg, ink = _grey_levels(rng, not dark)
    img = Image.new("RGB", (w, h), _colour(rng, bg, colour and rng.random() < 0.3))
    draw = ImageDraw.Draw(img)
    px = int(rng.integers(9, 17))
    font, up = _font(rng, px)
    font = font if up == 1 else None  # UI text: the default font at its own size
    bar = int(rng.integers(16, 40))
    draw.rectangle([0, 0, w, bar], fill=_colour(rng, int(rng.integers(40, 230)), colour))
    draw.text((8, bar // 4), _phrase(rng, 3), fill=_colour(rng, ink, False), font=font)
    side = int(rng.uniform(0.1, 0.3) * w) if rng.random() < 0.7 else 0
    if side:
        draw.rectangle([0, bar, side, h], fill=_colour(rng, int(rng.integers(30, 240)), colour))
        for r in range(bar + 8, h, px + 10):
            draw.text((6, r), _phrase(rng, 1), fill=_colour(rng, ink, False), font=font)
    r = bar + 10
    while r < h - 10:
        c = side + 10
        what = int(rng.integers(4))
        if what == 0:  # a row of buttons
            while c < w - 60:
                bw = int(rng.integers(40, 110))
                draw.rounded_rectangle([c, r, c + bw, r + px + 10], radius=int(rng.integers(0, 8)),
                                       fill=_colour(rng, int(rng.integers(40, 240)), colour),
                                       outline=_colour(rng, ink, False))
                draw.text((c + 6, r + 4), _phrase(rng, 1), fill=_colour(rng, ink, False), font=font)
                c += bw + int(rng.integers(6, 20))
            r += px + 20
        elif what == 1:  # a table
            rows, cols = int(rng.integers(2, 6)), int(rng.integers(2, 6))
            cw = max(20, (w - c - 10) // cols)
            for i in range(rows + 1):
                draw.line([c, r + i * (px + 8), c + cols * cw, r + i * (px + 8)], fill=_colour(rng, ink, False))
            for j in range(cols + 1):
                draw.line([c + j * cw, r, c + j * cw, r + rows * (px + 8)], fill=_colour(rng, ink, False))
            for i in range(rows):
                for j in range(cols):
                    draw.text((c + j * cw + 4, r + i * (px + 8) + 3), _phrase(rng, 1)[:8],
                              fill=_colour(rng, ink, False), font=font)
            r += rows * (px + 8) + 14
        elif what == 2:  # an image or icon placeholder
            s = int(rng.integers(16, 90))
            draw.rectangle([c, r, c + s, r + s], fill=_colour(rng, int(rng.integers(0, 256)), colour))
            r += s + 10
        else:  # a paragraph
            for _ in range(int(rng.integers(1, 5))):
                draw.text((c, r), _phrase(rng, int(rng.integers(3, 10))), fill=_colour(rng, ink, False), font=font)
                r += px + 6
            r += 8
    a = np.asarray(img)
    return a if colour else a[..., 0]


def _two_levels(rng: np.random.Generator, *, contrast: float = 24.0) -> tuple[float, float]:
    """Two grey levels at least ``contrast`` apart (never a flat picture)."""
    a = float(rng.uniform(0, 255 - contrast))
    b = float(rng.uniform(a + contrast, 255))
    return (a, b) if rng.random() < 0.5 else (b, a)


def _gradient(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:
        t = float(rng.uniform(0, np.pi))
        v = (yy * np.sin(t) + xx * np.cos(t))
    else:
        v = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w))
    v = (v - v.min()) / max(float(v.max() - v.min()), 1e-6)
    if rng.random() < 0.3:
        v = np.floor(v * int(rng.integers(3, 16))) / 16
    if rng.random() < 0.5:
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return np.clip(a + (b - a) * v[..., None], 0, 255).astype(np.uint8)
    a, b = _two_levels(rng)
    return np.clip(a + (b - a) * v, 0, 255).astype(np.uint8)


def _noise(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    shape = (h, w, 3) if rng.random() < 0.3 else (h, w)
    if kind == "noise-uniform":
        lo = float(rng.uniform(0, 128))
        f = rng.uniform(lo, rng.uniform(lo + 30, 255), shape)
    elif kind == "noise-gaussian":
        f = rng.normal(rng.uniform(40, 215), rng.uniform(5, 80), shape)
    elif kind == "noise-salt-pepper":
        f = np.full(shape, rng.uniform(0, 255))
        m = rng.random(shape[:2])
        p = float(rng.uniform(0.005, 0.2))
        f[m < p / 2] = 0
        f[m > 1 - p / 2] = 255
    else:  # Perlin-like: octaves of smoothed white noise, each half the size and amplitude of the last
        f = np.zeros((h, w), np.float32)
        s = float(rng.uniform(8, max(16, min(h, w) / 2)))
        amp, persistence = 1.0, float(rng.uniform(0.3, 0.8))
        for _ in range(int(rng.integers(1, 6))):
            o = gaussian(rng.normal(size=(h, w)).astype(np.float32), s)
            f += amp * o / max(float(o.std()), 1e-6)
            s, amp = s / 2, amp * persistence
        f = (f - f.min()) / max(float(f.max() - f.min()), 1e-6) * 255
        if len(shape) == 3:
            f = f[..., None] * rng.uniform(0.3, 1.0, 3)
    return np.clip(f, 0, 255).astype(np.uint8)


def _checkerboard(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = float(rng.uniform(0, np.pi / 2)) if rng.random() < 0.4 else 0.0
    u, v = yy * np.cos(t) + xx * np.sin(t), -yy * np.sin(t) + xx * np.cos(t)
    cell = float(np.exp(rng.uniform(np.log(3), np.log(64))))
    m = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    a, b = sorted(_two_levels(rng))
    f = a + (b - a) * m
    if rng.random() < 0.3:
        f = gaussian(f.astype(np.float32), float(rng.uniform(0.5, 2)))
    return np.clip(f, 0, 255).astype(np.uint8)


def _luminance(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        return a
    return np.clip(a[..., :3].astype(np.float32) @ np.array([0.2125, 0.7154, 0.0721], np.float32), 0,
                   255).astype(np.uint8)


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR))


@functools.lru_cache(maxsize=32)
def _load_photo(name: str) -> np.ndarray:
    if name.startswith("mpl:"):
        import gzip

        from matplotlib import cbook
        from PIL import Image

        key = name[4:]
        if key in ("grace_hopper", "minduka", "logo2"):
            fname = {"grace_hopper": "grace_hopper.jpg", "minduka": "Minduka_Present_Blue_Pack.png",
                     "logo2": "logo2.png"}[key]
            with cbook.get_sample_data(fname) as f:
                im = Image.open(f)
                im.load()
            return np.asarray(im.convert("RGB"))
        if key == "mri":
            with cbook.get_sample_data("s1045.ima.gz") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            x = np.frombuffer(raw, np.uint16).reshape(256, 256).astype(np.float64)
        else:
            data = np.load(cbook.get_sample_data({"jacksboro_dem": "jacksboro_fault_dem.npz",
                                                  "topobathy": "topobathy.npz"}[key], asfileobj=False))
            x = np.asarray(data["elevation" if key == "jacksboro_dem" else "topo"], np.float64)
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-9)
        return (x * 255).astype(np.uint8)
    import skimage.data

    x = np.asarray(getattr(skimage.data, name)())
    if x.dtype == bool:
        x = x.astype(np.uint8) * 255
    elif x.dtype.kind == "f":
        x = (np.clip(x, 0, 1) * 255).astype(np.uint8)
    return x[..., :3] if x.ndim == 3 else x


def unfamiliar_photo(name: str) -> np.ndarray:
    """One of :data:`PHOTOS` as uint8 ``(H, W)`` or ``(H, W, 3)`` (maps and the MRI scan scaled to 0-255).

    Raises
    ------
    InputError
        If ``name`` is not in :data:`PHOTOS`.
    """
    if name not in PHOTOS:
        raise InputError(f"unknown photograph {name!r}; the available ones are {', '.join(PHOTOS)}")
    return _load_photo(name).copy()


def _photo(rng: np.random.Generator, h: int, w: int, grey: bool, photos: Sequence[str]) -> np.ndarray:
    pool = list(photos)
    if not grey:
        pool = [p for p in pool if _load_photo(p).ndim == 3 or p in _MAPS] or pool
    name = pool[int(rng.integers(len(pool)))]
    x = _load_photo(name)
    if name in _MAPS and not grey:
        from matplotlib import colormaps

        cmap = colormaps[str(rng.choice(["terrain", "viridis", "gist_earth", "jet"]))]
        x = (cmap(x / 255.0)[..., :3] * 255).astype(np.uint8)
    if grey:
        x = _luminance(x)
    ph, pw = x.shape[:2]
    # a crop of 35-100% of the picture with the output's aspect ratio, resized to the output
    f = float(rng.uniform(0.35, 1.0))
    ch, cw = (ph * f, ph * f * w / h) if ph * w / h <= pw else (pw * f * h / w, pw * f)
    ch, cw = max(8, min(ph, int(ch))), max(8, min(pw, int(cw)))
    r0, c0 = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = x[r0:r0 + ch, c0:c0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return _resize(np.ascontiguousarray(crop), h, w)


def generate_unfamiliar(kind: str, seed: Seed = None, size: tuple[int, int] = (256, 256), *,
                        photos: Sequence[str] | None = None) -> np.ndarray:
    """A non-microscopy picture of one kind, deterministic for a seed (see the module docstring).

    Parameters
    ----------
    kind : str
        One of :data:`UNFAMILIAR_KINDS`.
    seed : int, numpy.random.Generator or None
        Randomness of everything drawn (words, fonts, shapes, crops).
    size : (int, int)
        Output (rows, cols), at least 16 each.
    photos : sequence of str, optional
        Names from :data:`PHOTOS` that ``photo-*`` kinds draw from (default: all of them; use
        :data:`CALIBRATION_PHOTOS` or :data:`HELD_OUT_PHOTOS` to keep calibration and evaluation apart).

    Returns
    -------
    numpy.ndarray of uint8, shape (rows, cols) or (rows, cols, 3)
        Grey or RGB (each kind draws grey and colour pictures, except ``photo-grey``/``photo-colour``).

    Raises
    ------
    InputError
        If ``kind``, ``size``, ``seed`` or a name in ``photos`` is not valid.

    Examples
    --------
    >>> generate_unfamiliar("photo-grey", 0, size=(40, 60), photos=HELD_OUT_PHOTOS).shape
    (40, 60)
    """
    if kind not in UNFAMILIAR_KINDS:
        raise InputError(f"unknown kind of picture {kind!r}; valid kinds: {', '.join(UNFAMILIAR_KINDS)}")
    h, w = check_size(size)
    rng = as_rng(seed)
    if kind in ("text-dark", "text-light"):
        return _text(rng, h, w, kind == "text-dark")
    if kind == "line-art":
        return _line_art(rng, h, w)
    if kind == "plot":
        return _plot(rng, h, w)
    if kind == "screenshot":
        return _screenshot(rng, h, w)
    if kind == "gradient":
        return _gradient(rng, h, w)
    if kind == "checkerboard":
        return _checkerboard(rng, h, w)
    if kind.startswith("noise-"):
        return _noise(rng, h, w, kind)
    names = tuple(PHOTOS if photos is None else photos)
    bad = [n for n in names if n not in PHOTOS]
    if bad or not names:
        raise InputError(f"photos={list(names)!r}: expected names from deepscope.data.synth.PHOTOS "
                         f"({', '.join(PHOTOS)})")
    return _photo(rng, h, w, kind == "photo-grey", names)
