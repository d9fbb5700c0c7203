"""``frechet_distance`` refuses a "covariance" that is far from symmetric (eigh read one triangle of it and
returned a number), and still takes one whose asymmetry is rounding (docs/metrics.md, "FID")."""

import numpy as np
import pytest

from diffrep.metrics import generation as G
from diffrep.metrics.generation_features import ASYMMETRY_TOLERANCE


def test_a_non_symmetric_matrix_is_refused_naming_it():
    m = np.zeros(2)
    s = np.array([[2.0, 1.0], [0.0, 2.0]])  # upper triangular: max |S - S^T| = 1, max |S| = 2
    for args, name in (((m, s, m, np.eye(2)), "sigma1"), ((m, np.eye(2), m, s), "sigma2")):
        with pytest.raises(ValueError) as e:
            G.frechet_distance(*args)
        assert str(e.value) == (f"{name} is not a covariance: not symmetric (max |S - S^T| = 1, max |S| = 2); pass "
                                "np.cov(features, rowvar=False) or feature_statistics(features)[1]")


def test_rounding_asymmetry_is_taken_as_the_symmetric_matrix():
    # S1 = diag(4, 9), S2 = I: FID = tr S1 + tr S2 - 2 tr S1^(1/2) = 13 + 2 - 2 (2 + 3) = 5 (means equal)
    s1 = np.diag([4.0, 9.0])
    noisy = s1 + np.array([[0.0, 1e-7], [0.0, 0.0]])  # 1.1e-8 relative: float32 covariances carry ~1e-7
    assert 1e-7 / 9.0 < ASYMMETRY_TOLERANCE
    assert G.frechet_distance(np.zeros(2), s1, np.zeros(2), np.eye(2)) == pytest.approx(5.0, rel=1e-14)
    assert G.frechet_distance(np.zeros(2), noisy, np.zeros(2), np.eye(2)) == pytest.approx(5.0, abs=1e-6)
    f32 = np.cov(np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32), rowvar=False)
    assert G.frechet_distance(np.zeros(6), f32, np.zeros(6), f32) == pytest.approx(0.0, abs=1e-9)
