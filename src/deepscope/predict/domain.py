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

Nothing about out-of-domain pictures is used to fit or calibrate the check; how well it flags them
(photographs, text, noise) is measured in ``benchmarks/bench_domain.py``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import ModelError, user_stacklevel

__all__ = ["DomainModel", "RangeDomain", "DomainResult", "fit_domain", "fit_ranges", "domain_from_dict",
           "image_features", "FEATURES", "warn_out_of_domain"]


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


def _kind(f: np.ndarray) -> str:
    """The kind of image from its features (as :func:`deepscope.tasks.generalist.image_kind`)."""
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

    def scores(self, feats: np.ndarray) -> np.ndarray:
        out = []
        for f in np.atleast_2d(np.asarray(feats, np.float64)):
            if f.shape[0] != len(FEATURES):
                raise ModelError(f"domain check expects {len(FEATURES)} features, got {f.shape[0]}")
            k = _kind(f)
            if k not in self.low:
                k = next(iter(self.low))
            ex = (np.maximum(self.low[k] - f, 0) + np.maximum(f - self.high[k], 0)) / self.width[k]
            out.append(float(np.nansum(ex)))
        return np.array(out)

    def check(self, feats: np.ndarray) -> tuple[bool, float]:
        s = float(self.scores(feats)[0])
        return bool(s <= self.threshold), s

    def widened(self, feats: np.ndarray, *, note: str = "") -> RangeDomain:
        """The same check with each kind's ranges widened to take in more images' features (e.g. of a
        fine-tune's images); a kind absent so far gets the ranges of those images, at the same widths."""
        low = {k: v.copy() for k, v in self.low.items()}
        high = {k: v.copy() for k, v in self.high.items()}
        width = {k: v.copy() for k, v in self.width.items()}
        x = np.atleast_2d(np.asarray(feats, np.float64))
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
        return RangeDomain(low, high, width, self.threshold, self.n_train + len(x),
                           "; ".join(s for s in (self.calibrated_on, note) if s))

    def to_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray) -> Any:
            return np.round(np.asarray(a, np.float64), 5).tolist()

        return {"method": "feature-ranges", "features": list(FEATURES), "low": {k: r(v) for k, v in self.low.items()},
                "high": {k: r(v) for k, v in self.high.items()}, "width": {k: r(v) for k, v in self.width.items()},
                "threshold": round(float(self.threshold), 5), "n_train": int(self.n_train),
                "calibrated_on": self.calibrated_on}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RangeDomain:
        try:
            if list(d["features"]) != list(FEATURES):
                raise ValueError(f"features {d['features']} are not this version's {list(FEATURES)}")
            arr = {key: {k: np.asarray(v, np.float64) for k, v in d[key].items()} for key in ("low", "high", "width")}
            return cls(arr["low"], arr["high"], arr["width"], float(d["threshold"]), int(d["n_train"]),
                       str(d.get("calibrated_on", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"the model card's domain check is incomplete or malformed ({exc})") from exc


def fit_ranges(train: np.ndarray, valid: np.ndarray, *, q: float = 1.0, floor: float = 0.1, quantile: float = 0.99,
               margin: float = 1.25, calibrated_on: str = "") -> RangeDomain:
    """Fit a ``feature-ranges`` check on training features (rows of :func:`image_features`), threshold on held-out ones.

    Per kind of image, each feature's range is its ``q``-th to ``100 - q``-th percentile over the
    training images (width at least ``floor`` times the 5-95% spread over all of them); the
    threshold is ``quantile`` of the held-out scores times ``margin``.
    """
    x = np.asarray(train, np.float64)
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
    thr = float(np.quantile(dm.scores(np.asarray(valid, np.float64)), quantile)) * margin
    return RangeDomain(low, high, width, max(thr, 0.25), len(x), calibrated_on)


def domain_from_dict(d: dict[str, Any]) -> DomainModel | RangeDomain:
    """The domain check a card stores (by its ``method``)."""
    if d.get("method") == "feature-ranges":
        return RangeDomain.from_dict(d)
    return DomainModel.from_dict(d)
