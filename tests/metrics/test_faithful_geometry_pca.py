"""Faithfulness review of the geometry analyses (straightness, Henaff et al. 2019; the participation
ratio of SAMI Fig. 3H) and the per-unit PCA-1 of DisDiff's ``evaluate.py`` (sklearn ``PCA(1)
.fit_transform`` per concept) against hand-derived values and a brute-force SVD
(docs/metrics.md#geometry, docs/methods/sami.md#analyses)."""

import math

import numpy as np
import pytest

from diffrep.metrics.geometry import participation_ratio, straightness
from diffrep.metrics.pca import pca1_units


def test_straightness_and_curvature_of_a_right_angle_turn():
    # steps (1, 0), (0, 1), (0, 1): cosines 0 and 1, angles 90 and 0 degrees
    r = straightness(np.array([[0.0, 0], [1, 0], [1, 1], [1, 2]]))
    assert r["straightness"] == pytest.approx(0.5, abs=1e-15)
    assert r["curvature_deg"] == pytest.approx(45.0, abs=1e-12)
    # two trajectories: the mean of the per-trajectory means (a straight line scores 1)
    both = straightness(np.stack([np.array([[0.0, 0], [1, 0], [1, 1], [1, 2]]),
                                  np.array([[0.0, 0], [1, 1], [2, 2], [3, 3]])]))
    assert both["straightness"] == pytest.approx(0.75, abs=1e-15)
    # a 60-degree turn: cos = 1/2
    t = np.array([[0.0, 0], [1, 0], [1 + 0.5, math.sqrt(3) / 2]])
    assert straightness(t)["curvature_deg"] == pytest.approx(60.0, abs=1e-9)


def test_participation_ratio_between_its_endpoints():
    # ||w||_2^2 / ||w||_4^2: two equal axes of four give sqrt(2); weights (1, 2): 5 / sqrt(17)
    assert participation_ratio(np.array([1.0, -1.0, 0, 0]))["participation_ratio"] == pytest.approx(math.sqrt(2))
    assert participation_ratio(np.array([1.0, 2.0]))["participation_ratio"] == pytest.approx(5 / math.sqrt(17))
    rows = participation_ratio(np.array([[3.0, 0, 0], [1.0, 1.0, 1.0]]))
    assert rows["participation_ratio"] == pytest.approx((1 + math.sqrt(3)) / 2)


def test_pca1_units_equals_a_brute_force_svd_and_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(0)
    units = rng.randn(50, 3, 4) @ rng.randn(4, 4)
    out = pca1_units(units).numpy()
    for u in range(3):
        x = units[:, u, :] - units[:, u, :].mean(0)
        cov = x.T @ x
        w, v = np.linalg.eigh(cov)
        comp = v[:, -1]
        comp = comp * np.sign(comp[np.argmax(np.abs(comp))])  # the documented sign rule
        np.testing.assert_allclose(out[:, u], x @ comp, atol=1e-10)
        sk = PCA(n_components=1).fit_transform(units[:, u, :])[:, 0]
        # the sign rule (largest-magnitude entry of the component positive) is that of sklearn's
        # svd_flip(u_based_decision=False) in the installed sklearn PCA: the same scalars as DisDiff's PCA(1)
        np.testing.assert_allclose(out[:, u], sk, atol=1e-10)
