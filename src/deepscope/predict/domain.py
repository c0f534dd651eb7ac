"""Domain checks: does an image look like the images a model was trained on?

A model that is confidently wrong on an image unlike its training data is a bug. Every shipped model
carries a small domain check in its card, fitted on its development images only. Two methods:

``feature-ranges`` (:class:`RangeDomain`, the generalist segmenters): eleven interpretable
features of the image as the model sees it (:func:`image_features`: power-spectrum slope, gradient,
median, bright fraction, skewness, colour and the share of the histogram mode, and the model's own
behaviour: flow strength, uncertain-probability share and foreground share), compared with the 1st
and 99th percentiles of the training images of the same kind (fluorescence, brightfield, stained);
the score is the summed excess outside those ranges, in units of each range's width. Images where
the model finds no objects are judged on the image features alone.

``knn-pca`` (:class:`DomainModel`, the counters):

- an image's *features* are what the network's encoder sees, summarised: the per-channel mean and
  standard deviation of its deepest level (:meth:`deepscope.models.networks.UNet.encode`), computed
  at the model's working scale;
- features are standardised and projected on the leading principal components of the training
  features; the *score* of an image is its mean distance to its ``k`` nearest training images in
  that space plus the part of its features the components do not explain (so an image unlike every
  training image scores high even where it projects near them);
- the threshold is the ``quantile`` of the scores of held-out development images (validation parts)
  times ``margin``. Images scoring above it get ``in_domain = False`` and a warning.

``feature-ranges`` version 2 adds a *picture check* (:class:`PictureCheck`): a logistic regression on
standardised features (some of the eleven above and :data:`PICTURE_FEATURES`: the share of pixels at
the ends of the normalised range, gradient energy along the image axes, noise relative to contrast,
saturation, edge density, the two fullest histogram bins, structure-tensor coherence at two scales,
and the number and box fill of the model's objects) fitted on development microscopy images against
generated non-microscopy pictures (:func:`deepscope.data.synth.generate_unfamiliar`: text both ways,
drawings, plots, screenshots, gradients, noise, photographs); its threshold keeps 97% of the
validation images of each kind. An image is in the domain only if the ranges *and* the picture check
accept it; the score is then the larger of the two scores in units of their thresholds (threshold 1).
Cards without a picture check (version 1) load and behave as before.

How well the checks flag pictures no check was calibrated on (held-out photographs, fresh seeds of
the generated kinds) is measured in ``benchmarks/bench_domain.py``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import ModelError, user_stacklevel

__all__ = ["DomainModel", "RangeDomain", "PictureCheck", "DomainResult", "fit_domain", "fit_ranges",
           "fit_picture_check", "domain_from_dict", "image_features", "picture_features", "FEATURES",
           "PICTURE_FEATURES", "ALL_FEATURES", "PICTURE_CHECK_FEATURES", "warn_out_of_domain"]


@dataclass(frozen=True)
class DomainModel:
    """A fitted domain check (see the module docstring); stored in a model card as plain lists."""

    mean: np.ndarray          # (D,) feature means of the training images
    std: np.ndarray           # (D,) feature standard deviations
    components: np.ndarray    # (D, K) leading principal axes of the standardised features
    scale: np.ndarray         # (K,) standard deviation along each axis
    train: np.ndarray         # (N, K) whitened training projections
    residual_scale: float     # typical residual norm of training images
    k: int
    threshold: float
    n_train: int
    calibrated_on: str = ""

    def _project(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.atleast_2d(np.asarray(feats, np.float64))
        if f.shape[1] != self.mean.shape[0]:
            raise ModelError(f"domain check expects {self.mean.shape[0]} features, got {f.shape[1]}")
        z = (f - self.mean) / self.std
        p = z @ self.components
        resid = np.linalg.norm(z - p @ self.components.T, axis=1) / self.residual_scale
        return p / self.scale, resid

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Domain score of each feature row (higher = less like the training images)."""
        w, resid = self._project(feats)
        d = np.sqrt(((w[:, None, :] - self.train[None, :, :]) ** 2).sum(-1))
        k = min(self.k, d.shape[1])
        knn = np.sort(d, axis=1)[:, :k].mean(1) / np.sqrt(self.train.shape[1])
        return knn + resid

    def check(self, feats: np.ndarray) -> tuple[bool, float]:
        """(in_domain, score) of one image's features."""
        s = float(self.scores(feats)[0])
        return bool(s <= self.threshold), s

    @property
    def score_threshold(self) -> float:
        """The threshold the score of :meth:`check` is compared with."""
        return self.threshold

    def to_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray) -> Any:
            return np.round(np.asarray(a, np.float64), 5).tolist()

        return {"method": "knn-pca", "mean": r(self.mean), "std": r(self.std), "components": r(self.components),
                "scale": r(self.scale), "train": r(self.train), "residual_scale": round(float(self.residual_scale), 6),
                "k": int(self.k), "threshold": round(float(self.threshold), 5), "n_train": int(self.n_train),
                "calibrated_on": self.calibrated_on}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DomainModel:
        if d.get("method") != "knn-pca":
            raise ModelError(f"unknown domain check method {d.get('method')!r} in the model card")
        try:
            return cls(mean=np.asarray(d["mean"], np.float64), std=np.asarray(d["std"], np.float64),
                       components=np.asarray(d["components"], np.float64), scale=np.asarray(d["scale"], np.float64),
                       train=np.asarray(d["train"], np.float64), residual_scale=float(d["residual_scale"]),
                       k=int(d["k"]), threshold=float(d["threshold"]), n_train=int(d["n_train"]),
                       calibrated_on=str(d.get("calibrated_on", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the model card's domain check is incomplete or malformed ({exc})") from exc


def fit_domain(train: np.ndarray, valid: np.ndarray, *, n_components: int = 16, k: int = 5,
               quantile: float = 0.99, margin: float = 1.25, calibrated_on: str = "") -> DomainModel:
    """Fit a domain check on training features and set its threshold on held-out in-domain features.

    Parameters
    ----------
    train : (N, D) array
        Features of the training images.
    valid : (M, D) array
        Features of held-out images of the same kinds (never the training images).
    n_components, k : int
        Principal components kept; neighbours averaged.
    quantile, margin : float
        The threshold is ``quantile`` of the held-out scores times ``margin``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> dm = fit_domain(rng.normal(size=(200, 8)), rng.normal(size=(50, 8)), n_components=4)
    >>> dm.check(rng.normal(size=8))[0], dm.check(np.full(8, 25.0))[0]
    (True, False)
    """
    x = np.asarray(train, np.float64)
    mean = x.mean(0)
    std = x.std(0) + 1e-6
    z = (x - mean) / std
    kk = int(min(n_components, z.shape[0] - 1, z.shape[1]))
    _, sv, vt = np.linalg.svd(z, full_matrices=False)
    comps = vt[:kk].T
    p = z @ comps
    scale = p.std(0) + 1e-6
    resid = np.linalg.norm(z - p @ comps.T, axis=1)
    rs = float(np.median(resid)) + 1e-6
    dm = DomainModel(mean, std, comps, scale, p / scale, rs, k, float("inf"), len(x), calibrated_on)
    vs = dm.scores(np.asarray(valid, np.float64))
    thr = float(np.quantile(vs, quantile)) * margin
    return DomainModel(mean, std, comps, scale, p / scale, rs, k, thr, len(x), calibrated_on)


@dataclass(frozen=True)
class DomainResult:
    """Domain check of one image: ``in_domain`` (None when the model has no check), its score and threshold."""

    in_domain: bool | None
    score: float | None
    threshold: float | None


def warn_out_of_domain(path: str, model_name: str, domain: DomainResult) -> None:
    """Warn (naming the file and what to do) when an image looks unlike a model's training images."""
    if domain.in_domain is False:
        warnings.warn(f"{path or 'image'}: looks unlike the images model {model_name!r} was trained on (domain score "
                      f"{domain.score:.2f} > {domain.threshold:.2f}); its objects may be wrong. Check the overlay, "
                      "or fine-tune the model on a few annotated images of this kind", stacklevel=user_stacklevel())


#: The features of :func:`image_features`, in order.
FEATURES = ("power_slope", "log_gradient", "median", "bright_fraction", "signed_log_skew", "chroma", "green_deficit",
            "mode_share", "flow_strength", "uncertain_share", "foreground_share")
_KINDS = ("fluorescence", "brightfield", "he")


def image_features(window: np.ndarray, outputs: np.ndarray | None = None, *, flow_scale: float = 5.0,
                   prob_threshold: float = 0.4) -> np.ndarray:
    """Domain features of a normalised ``(h, w, 3)`` window and (optionally) a flow model's raw outputs on it.

    Returns 11 values (:data:`FEATURES`); the three behaviour features are NaN without outputs or
    when the model found (almost) no foreground.
    """
    win = np.asarray(window, np.float32)
    if win.ndim == 2:
        win = np.repeat(win[..., None], 3, -1)
    g = win.mean(-1)
    h, w = g.shape
    spec = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2).astype(int)
    rad = np.bincount(r.ravel(), spec.ravel()) / np.maximum(np.bincount(r.ravel()), 1)
    k = np.arange(len(rad))
    sel = (k >= max(2, min(h, w) // 64)) & (k <= min(h, w) // 4)
    slope = float(np.polyfit(np.log(k[sel]), np.log(rad[sel] + 1e-12), 1)[0]) if sel.sum() > 3 else 0.0
    gy, gx = np.gradient(g)
    c = g - g.mean()
    skew = float((c ** 3).mean() / (c.std() ** 3 + 1e-9))
    hist, edges = np.histogram(np.clip(g, -0.5, 1.5), bins=40, range=(-0.5, 1.5))
    mode = edges[int(np.argmax(hist))] + 0.025
    feats = [slope, float(np.log(np.sqrt(gy ** 2 + gx ** 2).mean() + 1e-4)), float(np.median(g)),
             float((g > 0.5).mean()), float(np.sign(skew) * np.log1p(abs(skew))),
             float(np.abs(win[..., 0] - win[..., 1]).mean() + np.abs(win[..., 1] - win[..., 2]).mean()),
             float((win[..., 0].mean() + win[..., 2].mean()) / 2 - win[..., 1].mean()),
             float((np.abs(g - mode) < 0.1).mean())]
    beh = [np.nan, np.nan, np.nan]
    if outputs is not None:
        p = 1.0 / (1.0 + np.exp(-np.clip(outputs[0], -60, 60)))
        fg = p > prob_threshold
        if fg.mean() >= 0.002:
            mag = np.sqrt(outputs[1] ** 2 + outputs[2] ** 2) / flow_scale
            beh = [float(mag[fg].mean()), float(((p > 0.1) & (p < 0.9)).mean() / max((p > 0.1).mean(), 1e-3)),
                   float(fg.mean())]
    return np.array(feats + beh, np.float64)


#: Features of :func:`picture_features`, in order (after :data:`FEATURES` in a full feature row).
PICTURE_FEATURES = ("top_share", "bottom_share", "axis_share", "noise_ratio", "saturation", "edge_density",
                    "two_level", "coherence_3", "coherence_8", "log_objects", "object_box_fill")
#: A full feature row: :data:`FEATURES` then :data:`PICTURE_FEATURES`.
ALL_FEATURES = FEATURES + PICTURE_FEATURES
#: The features the shipped picture checks use: chosen by backward elimination from a larger set (the
#: smallest set within 0.001 of the best flagged rate, an exploration that calibrated on each half of
#: the photographs and measured on the other, so both halves were seen while choosing).
PICTURE_CHECK_FEATURES = ("median", "signed_log_skew", "green_deficit", "mode_share", "uncertain_share",
                          "bright_fraction", "foreground_share", "log_gradient", "top_share", "bottom_share",
                          "axis_share", "noise_ratio", "saturation", "edge_density", "two_level", "coherence_3",
                          "coherence_8", "log_objects", "object_box_fill")


def picture_features(window: np.ndarray, outputs: np.ndarray | None = None, *,
                     prob_threshold: float = 0.4) -> np.ndarray:
    """Features that tell text, drawings, screenshots, photographs and noise from microscopy.

    Computed on the same normalised ``(h, w, 3)`` window (and the model's raw outputs there) as
    :func:`image_features`; 11 values (:data:`PICTURE_FEATURES`):

    - ``top_share`` / ``bottom_share``: pixels at or above 0.99 / at or below 0.01 of the normalised
      range (white paper and flat backgrounds sit at an end; microscopy backgrounds are noisy);
    - ``axis_share``: share of the gradient energy whose orientation is within 7.5 degrees of the
      image axes (1/6 for isotropic content; text, tables, plots and screens are drawn on the axes);
    - ``noise_ratio``: log of the robust spread of the Laplacian over the 1-99% intensity range
      (rendered pictures have no noise; photographs little at their scale);
    - ``saturation``: mean of max - min over the channels;
    - ``edge_density``: pixels with a gradient above 0.1 per pixel;
    - ``two_level``: share of the two fullest of 50 histogram bins (two-tone text and drawings);
    - ``coherence_3`` / ``coherence_8``: energy-weighted structure-tensor coherence integrated over
      Gaussians of 3 and 8 pixels (strokes and long edges are coherent at 8 pixels, round nuclei not);
    - ``log_objects``: log(1 + connected regions of the model's foreground) (0 with no foreground);
    - ``object_box_fill``: area-weighted share of each region's bounding box it fills (NaN without
      foreground).

    Examples
    --------
    >>> f = picture_features(np.zeros((64, 64, 3), np.float32))
    >>> len(f) == len(PICTURE_FEATURES), float(f[1])
    (True, 1.0)
    """
    from scipy import ndimage as ndi

    win = np.asarray(window, np.float32)
    if win.ndim == 2:
        win = np.repeat(win[..., None], 3, -1)
    g = win.mean(-1)
    gy, gx = np.gradient(g)
    mag = np.hypot(gy, gx)
    total = float(mag.sum()) + 1e-9
    ang = np.mod(np.arctan2(gy, gx), np.pi / 2)
    near = (ang < np.deg2rad(7.5)) | (ang > np.pi / 2 - np.deg2rad(7.5))
    lap = ndi.laplace(g)
    noise = 1.4826 * float(np.median(np.abs(lap - np.median(lap))))
    contrast = float(np.percentile(g, 99) - np.percentile(g, 1)) + 1e-6
    hist = np.sort(np.histogram(np.clip(g, 0, 1), 50, (0, 1))[0])[::-1]
    feats = [float((g >= 0.99).mean()), float((g <= 0.01).mean()), float(mag[near].sum() / total),
             float(np.log(noise / contrast + 1e-6)), float((win.max(-1) - win.min(-1)).mean()),
             float((mag > 0.1).mean()), float(hist[:2].sum() / max(hist.sum(), 1))]
    for sigma in (3, 8):
        jyy, jxx, jxy = (ndi.gaussian_filter(a, sigma) for a in (gy * gy, gx * gx, gx * gy))
        trace = jyy + jxx
        coh = np.sqrt((jyy - jxx) ** 2 + 4 * jxy ** 2) / (trace + 1e-9)
        feats.append(float((coh * trace).sum() / (trace.sum() + 1e-9)))
    n, fill = 0, np.nan
    if outputs is not None:
        fg = np.asarray(outputs[0], np.float32) > np.log(prob_threshold / (1 - prob_threshold))
        if fg.mean() >= 0.002:
            lab, n = ndi.label(fg)
            areas = np.bincount(lab.ravel())[1:]
            boxes = np.array([(r.stop - r.start) * (c.stop - c.start) for r, c in ndi.find_objects(lab)])
            fill = float(np.average(areas / boxes, weights=areas))
    return np.array(feats + [float(np.log1p(n)), fill], np.float64)


@dataclass(frozen=True)
class PictureCheck:
    """A logistic regression that tells microscopy from other pictures (see the module docstring).

    ``logit = coef . (f - mean) / std + bias`` over the named features (NaN replaced by ``fill``);
    an image is accepted when its logit is at least ``threshold``. Stored in a card as plain lists.
    """

    features: tuple[str, ...]
    fill: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    bias: float
    threshold: float
    n_positive: int
    n_negative: int
    calibrated_on: str = ""

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """Logit of each full feature row (:data:`ALL_FEATURES`; higher = more like the training images)."""
        x = np.atleast_2d(np.asarray(feats, np.float64))
        if x.shape[1] != len(ALL_FEATURES):
            raise ModelError(f"the picture check expects {len(ALL_FEATURES)} features, got {x.shape[1]}")
        z = x[:, [ALL_FEATURES.index(n) for n in self.features]]
        z = np.where(np.isfinite(z), z, self.fill)
        return ((z - self.mean) / self.std) @ self.coef + self.bias

    def ratios(self, feats: np.ndarray) -> np.ndarray:
        """Probability that each row is a picture, over that probability at the threshold (> 1: flagged)."""
        lg = np.clip(self.logits(feats), -60, 60)
        return (1 + np.exp(np.clip(self.threshold, -60, 60))) / (1 + np.exp(lg))

    def accepting(self, feats: np.ndarray) -> PictureCheck:
        """The same check with the threshold lowered (if needed) to accept every given row."""
        lo = float(np.min(self.logits(feats))) if len(np.atleast_2d(feats)) else self.threshold
        return dataclasses.replace(self, threshold=min(self.threshold, lo - 1e-6))

    def to_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray) -> Any:
            return np.round(np.asarray(a, np.float64), 6).tolist()

        return {"method": "logistic", "features": list(self.features), "fill": r(self.fill), "mean": r(self.mean),
                "std": r(self.std), "coef": r(self.coef), "bias": round(float(self.bias), 6),
                "threshold": round(float(self.threshold), 6), "n_positive": int(self.n_positive),
                "n_negative": int(self.n_negative), "calibrated_on": self.calibrated_on}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PictureCheck:
        try:
            names = tuple(str(n) for n in d["features"])
            unknown = [n for n in names if n not in ALL_FEATURES]
            if unknown or d.get("method") != "logistic":
                raise ValueError(f"method {d.get('method')!r} with features {unknown} is not known to this version")
            arr = {k: np.asarray(d[k], np.float64) for k in ("fill", "mean", "std", "coef")}
            if any(a.shape != (len(names),) for a in arr.values()):
                raise ValueError(f"fill, mean, std and coef need {len(names)} values each")
            return cls(names, arr["fill"], arr["mean"], arr["std"], arr["coef"], float(d["bias"]),
                       float(d["threshold"]), int(d["n_positive"]), int(d["n_negative"]),
                       str(d.get("calibrated_on", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"the model card's picture check is incomplete or malformed ({exc})") from exc


def _logistic(z: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weighted L2-penalised logistic regression (Newton's method; the bias is not penalised)."""
    a = np.hstack([z, np.ones((len(z), 1))])
    beta = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], float(l2))
    reg[-1] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ beta, -60, 60)))
        grad = a.T @ (w * (p - y)) + reg * beta
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta[:-1], float(beta[-1])


def fit_picture_check(positives: dict[str, np.ndarray], negatives: dict[str, np.ndarray],
                      valid: dict[str, np.ndarray], *, features: tuple[str, ...] = PICTURE_CHECK_FEATURES,
                      l2: float = 1.0, keep: float = 0.97, min_quantile_n: int = 30,
                      calibrated_on: str = "") -> PictureCheck:
    """Fit a :class:`PictureCheck` on full feature rows (:data:`ALL_FEATURES`) grouped by kind.

    Parameters
    ----------
    positives, negatives : dict of str to (N, len(ALL_FEATURES)) arrays
        Development microscopy images by kind (fluorescence, H&E, ...) and non-microscopy pictures
        by kind (text, photographs, ...). Every group weighs the same within its class, and both
        classes weigh the same.
    valid : dict of str to arrays
        Held-out microscopy images by kind (never the training or test images). The threshold is
        the lowest, over the kinds, of the ``1 - keep`` quantile of their logits (their minimum for
        a kind with fewer than ``min_quantile_n`` images), so at least ``keep`` of each kind is kept.
    features : tuple of str
        Names from :data:`ALL_FEATURES`.
    l2 : float
        Penalty on the coefficients of the standardised features.

    Raises
    ------
    ModelError
        If a feature name is unknown or a class or ``valid`` is empty.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pos = {"a": rng.normal(0, 1, (80, len(ALL_FEATURES)))}
    >>> neg = {"b": rng.normal(3, 1, (80, len(ALL_FEATURES)))}
    >>> pc = fit_picture_check(pos, neg, {"a": rng.normal(0, 1, (40, len(ALL_FEATURES)))})
    >>> bool(pc.logits(np.zeros(len(ALL_FEATURES)))[0] >= pc.threshold), bool(pc.ratios(np.full(len(ALL_FEATURES), 3.0))[0] > 1)
    (True, True)
    """
    unknown = [n for n in features if n not in ALL_FEATURES]
    if unknown:
        raise ModelError(f"unknown features {unknown}; known: {list(ALL_FEATURES)}")
    pos = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in positives.items() if len(v)}
    neg = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in negatives.items() if len(v)}
    val = {k: np.atleast_2d(np.asarray(v, np.float64)) for k, v in valid.items() if len(v)}
    if not pos or not neg or not val:
        raise ModelError("a picture check needs positive, negative and validation images")
    cols = [ALL_FEATURES.index(n) for n in features]
    x = np.concatenate([*pos.values(), *neg.values()])[:, cols]
    y = np.concatenate([np.ones(sum(map(len, pos.values()))), np.zeros(sum(map(len, neg.values())))])
    w = np.concatenate([np.full(len(v), 1.0 / len(v) / len(grp)) for grp in (pos, neg) for v in grp.values()])
    w = w / w.mean()
    fill = np.nanmedian(x[y == 1], 0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    x = np.where(np.isfinite(x), x, fill)
    mean, std = x.mean(0), x.std(0) + 1e-9
    coef, bias = _logistic((x - mean) / std, y, w, l2)
    pc = PictureCheck(tuple(features), fill, mean, std, coef, bias, 0.0, len(x) - int((y == 0).sum()),
                      int((y == 0).sum()), calibrated_on)
    thr = min(float(np.quantile(pc.logits(v), 1 - keep)) if len(v) >= min_quantile_n else float(pc.logits(v).min())
              for v in val.values())
    return dataclasses.replace(pc, threshold=thr)


def _kind(f: np.ndarray) -> str:
    """The kind of image from its features (as :func:`deepscope.tasks.segment.image_kind`)."""
    if f[2] <= 0.5:
        return "fluorescence"
    return "he" if f[5] > 0.05 else "brightfield"


@dataclass(frozen=True)
class RangeDomain:
    """``feature-ranges`` domain check (see the module docstring); stored in a model card as plain lists."""

    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    width: dict[str, np.ndarray]
    threshold: float
    n_train: int
    calibrated_on: str = ""
    #: The picture check (version 2 of the card's dict), or None.
    classifier: PictureCheck | None = None

    def range_scores(self, feats: np.ndarray) -> np.ndarray:
        """Summed excess outside the ranges of each row (its first ``len(FEATURES)`` values)."""
        out = []
        for f in np.atleast_2d(np.asarray(feats, np.float64)):
            if f.shape[0] not in (len(FEATURES), len(ALL_FEATURES)):
                raise ModelError(f"domain check expects {len(FEATURES)} features, got {f.shape[0]}")
            f = f[:len(FEATURES)]
            k = _kind(f)
            if k not in self.low:
                k = next(iter(self.low))
            ex = (np.maximum(self.low[k] - f, 0) + np.maximum(f - self.high[k], 0)) / self.width[k]
            out.append(float(np.nansum(ex)))
        return np.array(out)

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Domain score of each row: the range score, or with a picture check the larger of the range
        score and the picture check's ratio, each in units of its threshold."""
        r = self.range_scores(feats)
        if self.classifier is None:
            return r
        return np.maximum(r / self.threshold, self.classifier.ratios(feats))

    @property
    def score_threshold(self) -> float:
        """The threshold the score of :meth:`check` is compared with (1 with a picture check)."""
        return self.threshold if self.classifier is None else 1.0

    def check(self, feats: np.ndarray) -> tuple[bool, float]:
        s = float(self.scores(feats)[0])
        return bool(s <= self.score_threshold), s

    def widened(self, feats: np.ndarray, *, note: str = "") -> RangeDomain:
        """The same check with each kind's ranges widened to take in more images' features (e.g. of a
        fine-tune's images); a kind absent so far gets the ranges of those images, at the same widths."""
        low = {k: v.copy() for k, v in self.low.items()}
        high = {k: v.copy() for k, v in self.high.items()}
        width = {k: v.copy() for k, v in self.width.items()}
        full = np.atleast_2d(np.asarray(feats, np.float64))
        x = full[:, :len(FEATURES)]
        kinds = np.array([_kind(f) for f in x])
        for k in sorted(set(kinds)):
            sub = x[kinds == k]
            lo, hi = np.nanmin(sub, 0), np.nanmax(sub, 0)
            if k in low:
                low[k] = np.fmin(low[k], lo)
                high[k] = np.fmax(high[k], hi)
            else:
                ref = next(iter(width.values()))
                low[k], high[k] = lo, hi
                width[k] = np.maximum(np.nan_to_num(hi - lo), ref)
        clf = self.classifier
        if clf is not None:  # the picture check accepts them too (its threshold lowered where needed)
            if full.shape[1] != len(ALL_FEATURES):
                raise ModelError(f"widening a check with a picture check needs {len(ALL_FEATURES)} features per image")
            clf = clf.accepting(full)
        return RangeDomain(low, high, width, self.threshold, self.n_train + len(x),
                           "; ".join(s for s in (self.calibrated_on, note) if s), clf)

    def with_classifier(self, classifier: PictureCheck | None) -> RangeDomain:
        """The same ranges with a picture check (None: without one)."""
        return dataclasses.replace(self, classifier=classifier)

    def to_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray) -> Any:
            return np.round(np.asarray(a, np.float64), 5).tolist()

        out = {"method": "feature-ranges", "features": list(FEATURES), "low": {k: r(v) for k, v in self.low.items()},
                "high": {k: r(v) for k, v in self.high.items()}, "width": {k: r(v) for k, v in self.width.items()},
                "threshold": round(float(self.threshold), 5), "n_train": int(self.n_train),
                "calibrated_on": self.calibrated_on}
        if self.classifier is not None:
            out["version"] = 2
            out["classifier"] = self.classifier.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeDomain:
        """Read a card's ``feature-ranges`` dict: version 1 (ranges only, no ``version`` key) or 2 (with
        ``classifier``, a :class:`PictureCheck`)."""
        try:
            version = int(d.get("version", 1))
            if version not in (1, 2):
                raise ValueError(f"version {version} is newer than this deepscope reads (1 or 2); upgrade deepscope")
            if list(d["features"]) != list(FEATURES):
                raise ValueError(f"features {d['features']} are not this version's {list(FEATURES)}")
            arr = {key: {k: np.asarray(v, np.float64) for k, v in d[key].items()} for key in ("low", "high", "width")}
            clf = PictureCheck.from_dict(d["classifier"]) if version >= 2 else None
            return cls(arr["low"], arr["high"], arr["width"], float(d["threshold"]), int(d["n_train"]),
                       str(d.get("calibrated_on", "")), clf)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"the model card's domain check is incomplete or malformed ({exc})") from exc


def fit_ranges(train: np.ndarray, valid: np.ndarray, *, q: float = 1.0, floor: float = 0.1, quantile: float = 0.99,
               margin: float = 1.25, calibrated_on: str = "") -> RangeDomain:
    """Fit a ``feature-ranges`` check on training features (rows of :func:`image_features`), threshold on held-out ones.

    Per kind of image, each feature's range is its ``q``-th to ``100 - q``-th percentile over the
    training images (width at least ``floor`` times the 5-95% spread over all of them); the
    threshold is ``quantile`` of the held-out scores times ``margin``.
    """
    x = np.atleast_2d(np.asarray(train, np.float64))[:, :len(FEATURES)]
    spread = np.nanpercentile(x, 95, 0) - np.nanpercentile(x, 5, 0)
    spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
    kinds = np.array([_kind(f) for f in x])
    low, high, width = {}, {}, {}
    for k in _KINDS:
        sub = x[kinds == k]
        if not len(sub):
            continue
        lo, hi = np.nanpercentile(sub, q, 0), np.nanpercentile(sub, 100 - q, 0)
        low[k], high[k] = lo, hi
        width[k] = np.maximum(np.nan_to_num(hi - lo), floor * spread)
    dm = RangeDomain(low, high, width, float("inf"), len(x), calibrated_on)
    thr = float(np.quantile(dm.range_scores(np.asarray(valid, np.float64)), quantile)) * margin
    return RangeDomain(low, high, width, max(thr, 0.25), len(x), calibrated_on)


def domain_from_dict(d: dict[str, Any]) -> DomainModel | RangeDomain:
    """The domain check a card stores (by its ``method``)."""
    if d.get("method") == "feature-ranges":
        return RangeDomain.from_dict(d)
    return DomainModel.from_dict(d)
