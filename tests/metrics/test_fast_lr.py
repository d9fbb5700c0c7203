"""The fast (batched torch L-BFGS) logistic-regression estimator against sklearn, and the
estimator switch of the LR-heavy metrics."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from diffrep.metrics.infomec import infomec
from diffrep.metrics.linear import fit_logistic
from diffrep.metrics.modularity import modularity_explicitness
from helpers import sample_factors


@pytest.fixture
def xy():
    rng = np.random.RandomState(0)
    y = np.stack([rng.randint(0, 4, 800), rng.randint(0, 2, 800), rng.randint(3, 6, 800)], 1)
    x = np.hstack([y + 0.8 * rng.randn(800, 3), rng.randn(800, 2)])
    return (x - x.mean(0)) / x.std(0), y


@pytest.mark.parametrize("C, cw", [(1.0, None), (0.1, "balanced"), (np.inf, "balanced")])
def test_fit_logistic_matches_sklearn_optimum(xy, C, cw):
    x, y = xy
    model = fit_logistic(x, [y[:, j] for j in range(3)], C=C, class_weight=cw, tol=1e-9, max_iter=2000)
    assert all(model.converged)
    for j, p in enumerate(model.predict_proba(x)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = LogisticRegression(C=C, class_weight=cw, tol=1e-10, max_iter=5000).fit(x, y[:, j])
        np.testing.assert_array_equal(model.classes[j], ref.classes_)
        np.testing.assert_allclose(p, ref.predict_proba(x), atol=2e-5)  # K = 2 uses the binary model


def test_fit_logistic_rejects_bad_input(xy):
    x, y = xy
    with pytest.raises(ValueError, match="single class"):
        fit_logistic(x, [np.zeros(len(x))])
    with pytest.raises(ValueError, match="class_weight"):
        fit_logistic(x, [y[:, 0]], class_weight="auto")


def test_explicitness_fast_agrees_with_sklearn(rng):
    f = sample_factors(1500, rng)[:, :3]
    z = np.hstack([f + 0.5 * rng.randn(*f.shape), rng.randn(1500, 2)])
    fast = modularity_explicitness(z[:1000], f[:1000], z[1000:], f[1000:])
    ref = modularity_explicitness(z[:1000], f[:1000], z[1000:], f[1000:], estimator="sklearn")
    assert fast.meta["estimator"] == "fast" and ref.meta["estimator"] == "sklearn"
    assert fast["modularity"] == ref["modularity"]
    for key in ("explicitness_train", "explicitness_test"):
        assert abs(fast[key] - ref[key]) < 1e-3
    par = modularity_explicitness(z[:1000], f[:1000], z[1000:], f[1000:], mode="parity")
    assert par.meta["estimator"] == "sklearn"
    with pytest.raises(ValueError, match="estimator"):
        modularity_explicitness(z, f, z, f, estimator="svm")
    with pytest.raises(ValueError, match="lbfgs"):
        modularity_explicitness(z, f, z, f, estimator="fast", solver="liblinear-ovr")


def test_infoe_fast_agrees_with_sklearn(rng):
    f = sample_factors(1200, rng)[:, [2, 4]]
    z = np.hstack([f + 0.6 * rng.randn(*f.shape), rng.randn(1200, 2)])
    fast = infomec(z, f)
    ref = infomec(z, f, estimator="sklearn")
    assert fast.meta["estimator"] == "fast" and ref.meta["estimator"] == "sklearn"
    assert fast["infom"] == ref["infom"] and fast["infoc"] == ref["infoc"]
    assert abs(fast["infoe"] - ref["infoe"]) < 2e-3
