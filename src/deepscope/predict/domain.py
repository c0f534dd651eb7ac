"""Domain checks: does an image look like the images a model was trained on?

A model that is confidently wrong on an image unlike its training data is a bug. Every shipped model
carries a small :class:`DomainModel` in its card, fitted on its development images only:

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

from deepscope.errors import ModelError

__all__ = ["DomainModel", "DomainResult", "fit_domain", "warn_out_of_domain"]


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
                      "or fine-tune the model on a few annotated images of this kind", stacklevel=3)
