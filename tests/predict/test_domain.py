"""Domain checks: fit on training features, threshold on held-out ones, store in a card and back."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.errors import ModelError
from deepscope.predict.domain import DomainModel, DomainResult, fit_domain, warn_out_of_domain


def clusters(rng: np.random.Generator, n: int) -> np.ndarray:
    """Three clusters in 20 dimensions (like three modalities)."""
    centres = np.array([np.r_[np.full(5, 3.0), np.zeros(15)], np.r_[np.zeros(5), np.full(5, 3.0), np.zeros(10)],
                        np.r_[np.zeros(10), np.full(5, -3.0), np.zeros(5)]])
    return centres[rng.integers(0, 3, n)] + rng.normal(0, 1, (n, 20))


def test_accepts_held_out_in_domain_and_flags_far_away_features():
    rng = np.random.default_rng(0)
    dm = fit_domain(clusters(rng, 300), clusters(rng, 60), n_components=8)
    test_in = clusters(rng, 200)
    assert np.mean([dm.check(f)[0] for f in test_in]) >= 0.95
    # far from every cluster, and between the clusters in directions no training image varies in
    far = rng.normal(0, 1, (50, 20)) + np.r_[np.zeros(15), np.full(5, 8.0)]
    assert np.mean([not dm.check(f)[0] for f in far]) >= 0.95


def test_round_trip_through_a_card_dict():
    rng = np.random.default_rng(1)
    dm = fit_domain(clusters(rng, 100), clusters(rng, 30), n_components=4)
    back = DomainModel.from_dict(dm.to_dict())
    f = clusters(rng, 5)
    assert np.allclose(back.scores(f), dm.scores(f), rtol=1e-3)
    with pytest.raises(ModelError, match="unknown domain check method"):
        DomainModel.from_dict({"method": "magic"})
    with pytest.raises(ModelError, match="incomplete or malformed"):
        DomainModel.from_dict({"method": "knn-pca", "mean": [0.0]})
    with pytest.raises(ModelError, match="expects 20 features"):
        dm.check(np.zeros(3))


def test_warning_names_the_file():
    with pytest.warns(UserWarning, match=r"photo\.png: looks unlike the images model 'nuclei'"):
        warn_out_of_domain("photo.png", "nuclei", DomainResult(False, 9.0, 2.0))
