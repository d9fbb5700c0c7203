"""Faithfulness of MMD^2 (docs/kernels/mmd.md) against hand-computed cases and a brute force
written here (explicit double sums in float64, not the twin's cdist): Gretton et al. (JMLR 2012)
Eq. 3 (biased V-statistic) and Lemma 6 (unbiased U-statistic), the InfoVAE/InfoDiffusion kernel
exp(-mean_d (x - y)^2 / d), WAE's IMQ sum and its RBF median heuristic (tolstikhin/wae
``mmd_penalty``), and the closed-form gradients."""

import math

import pytest
import torch

from diffrep.ops import mmd, use_backend

from helpers import randn

F64 = torch.float64
BACKENDS = ["cpu", "reference"]


def t(v):
    return torch.tensor(v, dtype=F64)


def brute(x, y, kernel, scales, weights, estimator):
    """sum over (i, j) pairs with Python loops over the pairs, in float64."""
    def k(a, b):
        r2 = ((a - b) ** 2).sum()
        return sum(w * (torch.exp(-r2 / s) if kernel == "rbf" else s / (s + r2)) for s, w in zip(scales, weights))

    n, m = x.shape[0], y.shape[0]
    unb = estimator == "unbiased"
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if not (unb and i == j))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if not (unb and i == j))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    nxx, nyy = (n * (n - 1), m * (m - 1)) if unb else (n * n, m * m)
    return sxx / nxx + syy / nyy - 2 * sxy / (n * m)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_cases(backend):
    with use_backend(backend, strict=True):
        # biased, default h = d^2 = 4 (InfoVAE): r^2 = 2
        v = mmd.mmd2(t([[0.0, 0.0]]), t([[1.0, 1.0]]))
        assert v.item() == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-14)
        # InfoVAE's own form: exp(-mean_d (x - y)^2 / d) = exp(-(2 / 2) / 2)
        assert v.item() == pytest.approx(2 - 2 * math.exp(-1.0 / 2), rel=1e-14)
        # unbiased, d = 1, h = 1: within-set i != j only, over n(n - 1)
        v = mmd.mmd2(t([[0.0], [1.0]]), t([[0.0], [3.0]]), estimator="unbiased")
        e = math.exp
        expect = e(-1) + e(-9) - (1 + e(-9) + e(-1) + e(-4)) / 2
        assert v.item() == pytest.approx(expect, rel=1e-13)
        # the same sets, biased: diagonals in, over n^2
        v = mmd.mmd2(t([[0.0], [1.0]]), t([[0.0], [3.0]]))
        expect = (2 + 2 * e(-1)) / 4 + (2 + 2 * e(-9)) / 4 - (1 + e(-9) + e(-1) + e(-4)) / 2
        assert v.item() == pytest.approx(expect, rel=1e-13)
        # IMQ default C = 2 d = 2 (WAE, unit prior variance): k = 2 / (2 + 1)
        v = mmd.mmd2(t([[0.0]]), t([[1.0]]), "imq")
        assert v.item() == pytest.approx(2 - 4 / 3, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_closed_form_gradient(backend, kernel):
    """x = [a], y = [b], biased: MMD^2 = 2 - 2 k(r^2); d/da = -4 k'(r^2) (a - b), d/db = -d/da."""
    a, b, s = 0.7, -0.4, 1.9
    x, y = t([[a]]).requires_grad_(), t([[b]]).requires_grad_()
    with use_backend(backend, strict=True):
        v = mmd.mmd2(x, y, kernel, bandwidth=s)
    gx, gy = torch.autograd.grad(v, (x, y))
    r2 = (a - b) ** 2
    if kernel == "rbf":
        k, dk = math.exp(-r2 / s), -math.exp(-r2 / s) / s
    else:
        k, dk = s / (s + r2), -s / (s + r2) ** 2
    assert v.item() == pytest.approx(2 - 2 * k, rel=1e-14)
    assert gx.item() == pytest.approx(-4 * dk * (a - b), rel=1e-13)
    assert gy.item() == pytest.approx(4 * dk * (a - b), rel=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", ["rbf", "imq"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_brute_force_values_and_gradients(backend, kernel, estimator):
    x = randn((6, 3), seed=1).requires_grad_()
    y = randn((5, 3), seed=2, scale=1.5).add(0.3).requires_grad_()
    scales, weights = [0.5, 3.0, 9.0], [1.0, 0.25, 2.0]
    want = brute(x, y, kernel, scales, weights, estimator)
    wx, wy = torch.autograd.grad(want, (x, y))
    with use_backend(backend, strict=True):
        got = mmd.mmd2(x, y, kernel, scales=scales, weights=weights, estimator=estimator)
    gx, gy = torch.autograd.grad(got, (x, y))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gx, wx, rtol=1e-11, atol=1e-14)
    torch.testing.assert_close(gy, wy, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wae_rbf_penalty_maps_to_bandwidth_two_sigma2k(backend):
    """WAE's RBF ``mmd_penalty``: sigma2_k = (the half_size-th largest cross distance) + (the
    half_size-th largest q-q distance, diagonal zeros among the n^2 entries), half_size =
    (n^2 - n) / 2; k = exp(-r^2 / (2 sigma2_k)); within-set diagonal masked over n^2 - n. It is
    ``mmd2(qz, pz, bandwidth=2 sigma2_k, estimator="unbiased")`` -- and not ``median_bandwidth``
    (Gretton's pooled median), which docs/kernels/mmd.md says."""
    n, d = 9, 4
    qz, pz = randn((n, d), seed=3, scale=0.5), randn((n, d), seed=4)
    r2 = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)  # noqa: E731
    half = (n * n - n) // 2
    sigma2_k = (torch.topk(r2(qz, pz).flatten(), half).values[-1]
                + torch.topk(r2(qz, qz).flatten(), half).values[-1])
    eye = torch.eye(n, dtype=F64)
    res1 = ((torch.exp(-r2(qz, qz) / 2 / sigma2_k) + torch.exp(-r2(pz, pz) / 2 / sigma2_k)) * (1 - eye)).sum() / (n * n - n)
    res2 = torch.exp(-r2(qz, pz) / 2 / sigma2_k).sum() * 2 / (n * n)
    with use_backend(backend, strict=True):
        got = mmd.mmd2(qz, pz, bandwidth=float(2 * sigma2_k), estimator="unbiased")
    torch.testing.assert_close(got, res1 - res2, rtol=1e-12, atol=1e-14)
    assert mmd.median_bandwidth(qz, pz) < 0.5 * float(2 * sigma2_k)  # a different, narrower width


def test_median_bandwidth_is_the_lower_median_of_distinct_pooled_pairs():
    """Pooled points 0, 1, 3, 7 (d = 1): squared distances of the 6 distinct pairs are
    1, 9, 49, 4, 36, 16 -> sorted 1 4 9 16 36 49; the lower median (torch.median) is 9."""
    x, y = t([[0.0], [1.0]]), t([[3.0], [7.0]])
    assert mmd.median_bandwidth(x, y) == 9.0
    # an odd count: 0, 1, 3 -> 1, 9, 4 -> 4
    assert mmd.median_bandwidth(t([[0.0], [1.0]]), t([[3.0]])) == 4.0


def test_wae_imq_scales_values():
    assert mmd.wae_imq_scales(8) == pytest.approx([1.6, 3.2, 8.0, 16.0, 32.0, 80.0, 160.0])
    assert mmd.wae_imq_scales(3, prior_var=4.0) == pytest.approx([2.4 * s for s in (1, 2, 5, 10, 20, 50, 100)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_matches_brute_force(backend):
    x, y = randn((40, 8), seed=5), randn((33, 8), seed=6, scale=1.3)
    want = brute(x, y, "rbf", [64.0], [1.0], "biased")
    with use_backend(backend, strict=True):
        got = mmd.mmd2(x.float(), y.float())
    assert got.dtype == torch.float32
    assert abs(got.item() - want.item()) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_cancellation_far_from_the_origin(backend):
    """Squared distances come from differences: samples at 1e4 with a 1e-3 spread keep their
    MMD^2 (the |a|^2 - 2ab + |b|^2 form loses about 8 of float64's 16 digits here)."""
    x = 1e4 + randn((30, 3), seed=7, scale=1e-3)  # > 25 rows: torch.cdist's default would take the GEMM form
    y = 1e4 + randn((27, 3), seed=8, scale=1e-3) + 2e-3
    h = 1e-5
    want = brute(x - 1e4, y - 1e4, "rbf", [h], [1.0], "unbiased")  # translation invariant, exact shift
    with use_backend(backend, strict=True):
        got = mmd.mmd2(x, y, bandwidth=h, estimator="unbiased")
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
