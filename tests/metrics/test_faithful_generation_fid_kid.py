"""Faithfulness of FID (Heusel et al. 2017, Eq. 6; pytorch-fid / TTUR statistics: mean and the
ddof-1 covariance in float64) and KID (Binkowski et al. 2018, Sec. 3 and App. D: the unbiased
MMD^2 with the kernel (x.y / d + 1)^3 over random subsets, torch-fidelity's procedure) against
closed forms on Gaussians, hand-derived cases and brute force written here (docs/metrics.md,
"FID", "KID")."""

import inspect
import math

import numpy as np
import pytest
import scipy.linalg

from diffrep.metrics import generation as G


# ------------------------------------------------------------------------------------------------ FID

def test_fid_hand_case_uses_the_unbiased_covariance():
    # real {0, 2}: mean 1, var (ddof 1) 2; fake {0, 4}: mean 2, var 8.
    # FID = (1 - 2)^2 + (sqrt 2 - sqrt 8)^2 = 1 + 2 = 3 (ddof 0 would give var 1 and 4: 1 + 1 = 2)
    assert G.fid_from_features([[0.0], [2.0]], [[0.0], [4.0]]) == pytest.approx(3.0, rel=1e-14)
    assert G.frechet_distance_from_features([[0.0], [2.0]], [[0.0], [4.0]]) == pytest.approx(3.0, rel=1e-14)
    mu, sigma = G.feature_statistics([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]])
    np.testing.assert_allclose(mu, [2.0, 2.0])
    # centred rows (-2, -1), (0, -1), (2, 2): sums of products (8, 6, 6) / (3 - 1)
    np.testing.assert_allclose(sigma, [[4.0, 3.0], [3.0, 3.0]], rtol=1e-14)
    # the device-side statistics of evaluate (G._statistics) follow the same ddof-1 rule
    mu2, sigma2 = G._statistics(np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 4.0]], np.float32), "cpu")
    np.testing.assert_allclose(mu2, [2.0, 2.0])
    np.testing.assert_allclose(sigma2, [[4.0, 3.0], [3.0, 3.0]], rtol=1e-12)


def test_frechet_distance_of_diagonal_and_commuting_gaussians_equals_the_closed_form():
    rng = np.random.default_rng(0)
    d = 6
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    want = ((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert G.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(want, rel=1e-12)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]  # same eigenvectors: the closed form still holds
    assert G.frechet_distance(q @ m1, q @ np.diag(a) @ q.T, q @ m2, q @ np.diag(b) @ q.T) == pytest.approx(want,
                                                                                                          rel=1e-10)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert G.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0, rel=1e-14)


def _general_pair(rng, d):
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d), rng.normal(size=d), b @ b.T / d


def test_frechet_distance_equals_the_pytorch_fid_sqrtm_and_the_eigvals_routes():
    """pytorch-fid: tr sqrtm(S1 S2), real part; torch-fidelity 0.4: sum sqrt(eigvals(S1 S2)).real."""
    rng = np.random.default_rng(1)
    for d in (3, 17, 64):
        m1, s1, m2, s2 = _general_pair(rng, d)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        assert np.abs(np.diagonal(covmean).imag).max() < 1e-3  # pytorch-fid's tolerance
        by_sqrtm = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)
        by_eig = (((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                  - 2 * np.sqrt(np.linalg.eigvals(s1 @ s2).astype(np.complex128)).real.sum())
        got = G.frechet_distance(m1, s1, m2, s2)
        assert got == pytest.approx(by_sqrtm, rel=1e-9)
        assert got == pytest.approx(by_eig, rel=1e-9)
        assert got == pytest.approx(G.frechet_distance(m2, s2, m1, s1), rel=1e-10)  # symmetric


def test_fid_with_singular_covariances_equals_the_nuclear_norm_route():
    """N < d (allow_singular): tr (S1 S2)^(1/2) = ||X1c X2c^T||_* / sqrt((n1 - 1)(n2 - 1)), exact, where
    pytorch-fid's sqrtm may need its eps = 1e-6 diagonal offset (a shift of order d * 1e-6)."""
    rng = np.random.default_rng(2)
    n1, n2, d = 9, 12, 30
    x, y = rng.normal(size=(n1, d)), rng.normal(size=(n2, d)) * 1.3 + 0.2
    xc, yc = x - x.mean(0), y - y.mean(0)
    cross = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    want = (((x.mean(0) - y.mean(0)) ** 2).sum() + (xc ** 2).sum() / (n1 - 1) + (yc ** 2).sum() / (n2 - 1)
            - 2 * cross)
    with pytest.raises(ValueError, match="at least as many samples as feature dimensions"):
        G.fid_from_features(x, y)
    # the eigenvalue route takes square roots of the ~1e-15 rounding noise of the d - n zero
    # eigenvalues (each up to ~3e-8): measured relative error 1e-8 here
    assert G.fid_from_features(x, y, allow_singular=True) == pytest.approx(want, rel=1e-7)


def test_fid_scales_quadratically_and_ignores_a_common_shift():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(80, 5)), rng.normal(size=(70, 5)) @ rng.normal(size=(5, 5))
    base = G.fid_from_features(x, y)
    assert G.fid_from_features(3.0 * x, 3.0 * y) == pytest.approx(9.0 * base, rel=1e-10)
    assert G.fid_from_features(x + 7.0, y + 7.0) == pytest.approx(base, rel=1e-9)
    assert G.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)  # not clamped: tiny either sign


# ------------------------------------------------------------------------------------------------ KID

def _kernel(a, b, gamma, coef0, degree):
    return (gamma * float(np.dot(a, b)) + coef0) ** degree


def _mmd2_unbiased_loops(x, y, gamma, coef0, degree):
    """Binkowski et al. 2018, Eq. 3 with m = n, in float64 by explicit loops."""
    m = len(x)
    kxx = sum(_kernel(x[i], x[j], gamma, coef0, degree) for i in range(m) for j in range(m) if i != j)
    kyy = sum(_kernel(y[i], y[j], gamma, coef0, degree) for i in range(m) for j in range(m) if i != j)
    kxy = sum(_kernel(x[i], y[j], gamma, coef0, degree) for i in range(m) for j in range(m))
    return kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (m * m)


def test_kid_hand_case():
    # d = 1, k(a, b) = (a b + 1)^3; X = {0, 1}, Y = {1, 2}:
    # within X: 2 k(0, 1) / 2 = 1; within Y: 2 k(1, 2) / 2 = 27;
    # cross: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37 -> 2 * 37 / 4 = 18.5; MMD^2 = 9.5
    mean, std = G.kid_from_features([[0.0], [1.0]], [[1.0], [2.0]], num_subsets=3, subset_size=2, device="cpu")
    assert (mean, std) == (pytest.approx(9.5, rel=1e-14), pytest.approx(0.0, abs=1e-14))


def test_kid_defaults_are_torch_fidelitys():
    p = inspect.signature(G.kid_from_features).parameters
    assert {k: p[k].default for k in ("num_subsets", "subset_size", "degree", "gamma", "coef0")} == \
        {"num_subsets": 100, "subset_size": 1000, "degree": 3, "gamma": None, "coef0": 1.0}
    ev = inspect.signature(G.evaluate).parameters
    assert (ev["kid_subsets"].default, ev["kid_subset_size"].default) == (100, 1000)


@pytest.mark.parametrize("kw", [{}, {"degree": 2, "gamma": 0.3, "coef0": 0.5}])
def test_kid_equals_brute_force_over_torch_fidelitys_subsets(kw):
    """torch-fidelity metric_kid.py: RandomState(seed); per subset choice over input1 (generated)
    first, then input2 (real), each without replacement; mean and np.std (ddof 0)."""
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(23, 4)), rng.normal(size=(19, 4)) * 1.2 + 0.3
    size, subsets, seed = 7, 5, 2020
    gamma = kw.get("gamma", 1.0 / 4)
    coef0, degree = kw.get("coef0", 1.0), kw.get("degree", 3)
    rs = np.random.RandomState(seed)
    vals = []
    for _ in range(subsets):
        fi = rs.choice(len(fake), size, replace=False)
        ri = rs.choice(len(real), size, replace=False)
        vals.append(_mmd2_unbiased_loops(fake[fi], real[ri], gamma, coef0, degree))
    mean, std = G.kid_from_features(real, fake, num_subsets=subsets, subset_size=size, seed=seed, device="cpu", **kw)
    assert mean == pytest.approx(np.mean(vals), rel=1e-12)
    assert std == pytest.approx(math.sqrt(sum((v - np.mean(vals)) ** 2 for v in vals) / subsets), rel=1e-10)


def test_kid_is_an_unbiased_estimate_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    same, _ = G.kid_from_features(x, y, num_subsets=20, subset_size=200, device="cpu")
    shifted, _ = G.kid_from_features(x, y + 0.5, num_subsets=20, subset_size=200, device="cpu")
    # shift s along every axis, d = 6: population MMD^2 is positive and far above the noise of `same`
    assert abs(same) < 0.02 < shifted


def test_kid_refuses_a_subset_larger_than_a_set_as_torch_fidelity():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="subset_size=6 exceeds the smaller feature set"):
        G.kid_from_features(x, np.ones((9, 2)), subset_size=6)


def test_statistics_and_frechet_terms_are_float64_whatever_the_input_dtype():
    """Float32 features/statistics are promoted before any sum (TTUR/pytorch-fid: np.cov -> float64)."""
    rng = np.random.default_rng(6)
    x = (rng.normal(size=(300, 7)) * 10 + 50).astype(np.float32)
    mu, sigma = G._statistics(x, "cpu")
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mu, x64.mean(0), rtol=1e-13)
    np.testing.assert_allclose(sigma, np.cov(x64, rowvar=False), rtol=1e-11)
    m1, s1, m2, s2 = _general_pair(rng, 9)
    m1, s1, m2, s2 = (a.astype(np.float32) for a in (m1, s1, m2, s2))
    want = G.frechet_distance(*(a.astype(np.float64) for a in (m1, s1, m2, s2)))
    assert G.frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-13)
    bad = np.eye(3)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="means and covariances must be finite"):
        G.frechet_distance(np.zeros(3), bad, np.zeros(3), np.eye(3))


def test_kid_default_subsets_are_100_and_of_1000_each_default_on_its_own():
    """Each default taken alone, the other passed small (exact equalities, so any size shows them): 100 subsets
    (of 2 rows here; 101 would differ), and subsets of 1000 rows (1 subset here; 999 rows refuse). The same
    with both defaults at once on 1000 rows (200 kernel matrices of 1000 x 1000): the slow-marked test below."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2)) + 0.1
    few = G.kid_from_features(x[:4], y[:4], subset_size=2, device="cpu")
    assert few == G.kid_from_features(x[:4], y[:4], num_subsets=100, subset_size=2, device="cpu")
    assert few != G.kid_from_features(x[:4], y[:4], num_subsets=101, subset_size=2, device="cpu")
    one = G.kid_from_features(x, y, num_subsets=1, device="cpu")  # exactly 1000 rows: the default subset size fits
    assert one == G.kid_from_features(x, y, num_subsets=1, subset_size=1000, device="cpu")
    assert one != G.kid_from_features(x, y, num_subsets=1, subset_size=999, device="cpu")
    with pytest.raises(ValueError, match="subset_size=1000 exceeds"):
        G.kid_from_features(x[:999], y, num_subsets=1, device="cpu")


@pytest.mark.slow
def test_kid_default_subsets_are_100_of_1000():
    """Both defaults in one call (~5 s of CPU): slow; the default run has
    test_kid_default_subsets_are_100_and_of_1000_each_default_on_its_own and test_kid_defaults_are_torch_fidelitys."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2)) + 0.1
    got = G.kid_from_features(x, y, device="cpu")  # exactly 1000 rows: the default subset size fits
    assert got == G.kid_from_features(x, y, num_subsets=100, subset_size=1000, device="cpu")  # 101 would differ
    with pytest.raises(ValueError, match="subset_size=1000 exceeds"):
        G.kid_from_features(x[:999], y, device="cpu")
