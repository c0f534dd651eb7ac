from __future__ import annotations

import numpy as np
import pytest

from deepscope.data import normalize_percentile
from deepscope.data.transforms import _int_percentiles
from deepscope.errors import InputError


@pytest.mark.parametrize("dtype,high", [(np.uint8, 255), (np.uint16, 65535), (np.uint16, 300)])
@pytest.mark.parametrize("q", [(1.0, 99.8), (0.0, 100.0), (50.0, 50.5), (0.5, 99.99)])
def test_histogram_percentiles_equal_numpy(dtype, high, q):
    rng = np.random.default_rng(int(q[0] * 100) + high)
    for shape in [(1,), (7, 3), (97, 131)]:
        a = rng.integers(0, high + 1, shape).astype(dtype)
        np.testing.assert_allclose(_int_percentiles(a, q), np.percentile(a.astype(np.float64), q), rtol=0,
                                   atol=1e-3)


def test_normalize_percentile_same_for_int_and_float():
    a = np.random.default_rng(0).integers(0, 4000, (64, 80)).astype(np.uint16)
    np.testing.assert_allclose(normalize_percentile(a), normalize_percentile(a.astype(np.float32)), atol=1e-6)
    with pytest.raises(InputError, match="0 <= low < high <= 100"):
        normalize_percentile(a, 50, 10)
