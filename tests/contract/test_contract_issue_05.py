"""Contract of issue 5: the kernel families HDDC-EM with split and filter (``diffrep.ops.hddc``), fused
MMD (``diffrep.ops.mmd``) and the SAMI guidance score (``diffrep.ops.guidance``), called by the public
paths the issue names and checked against computations written here (brute force, closed forms,
torch.distributions). Issue 16 moved the EM algorithm to ``diffrep.cluster.hddc`` (``ops.hddc.fit`` stays a
thin re-export) and ``HDDCResult.align`` to ``diffrep.methods.dyga.align(result, ...)`` (the method still
works, with a DeprecationWarning).

Deeper value tests live elsewhere: tests/cluster/test_hddc.py (scikit-learn agreement of the full mode,
Cattell and b_k hand cases, planted mixtures), tests/ops/test_hddc_native.py (kernels vs twin),
tests/ops/test_mmd.py (native vs cdist twin, gradcheck, the InfoVAE/WAE conventions, memory),
tests/ops/test_guidance.py (native vs twin to second order, gradgradcheck). The CUDA variants run through
the ``device`` fixture where a GPU is usable.
"""

from __future__ import annotations

import inspect
import math
import warnings

import pytest
import torch

import diffrep.ops.guidance as guidance_ops
import diffrep.ops.hddc as hddc_ops
import diffrep.ops.mmd as mmd_ops

_EMPTY = inspect.Parameter.empty


def _params(fn):
    return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]


def _positional(fn, n):
    """The first n parameters as (name, default) and a check that they are positional."""
    ps = list(inspect.signature(fn).parameters.values())[:n]
    assert all(p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for p in ps), ps
    return [(p.name, p.default) for p in ps]


# --------------------------------------------------------------------------- public names and signatures
def test_public_names_are_importable_from_the_issue_paths():
    from diffrep.cluster import hddc as cluster_hddc

    assert hddc_ops.fit is cluster_hddc.fit                 # the thin re-export of issue 16
    assert hddc_ops.HDDCResult is cluster_hddc.HDDCResult
    assert tuple(hddc_ops.SPLIT_RULES) == ("bic", "dyga")
    assert callable(mmd_ops.mmd2) and callable(guidance_ops.log_posterior)


def test_fit_signature():
    assert _positional(hddc_ops.fit, 9) == [
        ("x", _EMPTY), ("n_components", 8), ("max_components", 32), ("model", "AkjBkQkDk"), ("max_iter", 30),
        ("tol", 1e-3), ("split", True), ("min_mass", 10), ("seed", 0)]
    kw = {name: default for name, default, kind in _params(hddc_ops.fit) if kind == inspect.Parameter.KEYWORD_ONLY}
    assert kw["split_rule"] == "bic"                        # diffrep's default; "dyga" is the paper's rule


def test_result_method_signatures():
    R = hddc_ops.HDDCResult
    assert _positional(R.responsibilities, 2) == [("self", _EMPTY), ("x", _EMPTY)]
    assert _positional(R.labels, 2) == [("self", _EMPTY), ("x", _EMPTY)]
    assert _positional(R.align, 4) == [("self", _EMPTY), ("features", _EMPTY), ("lam", 0.1), ("tau", 1e-4)]
    from diffrep.methods.dyga import align
    assert _positional(align, 4) == [("mixture", _EMPTY), ("features", _EMPTY), ("lam", 0.1), ("tau", 1e-4)]


def test_mmd2_signature():
    assert _positional(mmd_ops.mmd2, 6) == [("x", _EMPTY), ("y", _EMPTY), ("kernel", "rbf"), ("bandwidth", None),
                                            ("scales", None), ("estimator", "biased")]


def test_log_posterior_signature():
    assert _positional(guidance_ops.log_posterior, 3) == [("z", _EMPTY), ("mu", _EMPTY), ("logvar", _EMPTY)]


# --------------------------------------------------------------------------- HDDC
def _planted(U, centres, per, sd, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    c = torch.as_tensor(centres, dtype=dtype)
    k, d = c.shape
    y = torch.arange(k).repeat_interleave(per).expand(U, -1)
    return c[y] + sd * torch.randn(U, k * per, d, generator=g, dtype=dtype), y


def _hddc_covariances(r):
    """Sigma_k = Q diag(a_1..a_dk, b, .., b) Q^T (Eq. 3) from the result's own fields."""
    d = r.means.shape[-1]
    sig = torch.arange(d) < r.dims[..., None]
    lam = torch.where(sig, r.a, r.b[..., None].expand_as(r.a))
    return (r.subspaces * lam[..., None, :]) @ r.subspaces.transpose(-1, -2)


def _log_joint(x, r, cov):
    """log pi_k N(x_i | mu_k, Sigma_k) (U, n, K) with torch.distributions, -inf for inactive components."""
    U, K = r.weights.shape
    out = torch.full((U, x.shape[1], K), -math.inf, dtype=x.dtype)
    for u in range(U):
        for k in range(K):
            if r.active[u, k]:
                mvn = torch.distributions.MultivariateNormal(r.means[u, k], covariance_matrix=cov[u, k])
                out[u, :, k] = r.weights[u, k].log() + mvn.log_prob(x[u])
    return out


def _ari(a, b):
    """Adjusted Rand index (Hubert & Arabie) from the contingency table."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    ia, ib = torch.unique(a, return_inverse=True)[1], torch.unique(b, return_inverse=True)[1]
    table = torch.zeros(int(ia.max()) + 1, int(ib.max()) + 1, dtype=torch.float64)
    table.index_put_((ia, ib), torch.ones(len(a), dtype=torch.float64), accumulate=True)
    c2 = lambda v: (v * (v - 1) / 2).sum()
    idx, rows, cols, n = c2(table), c2(table.sum(1)), c2(table.sum(0)), len(a) * (len(a) - 1) / 2
    exp = rows * cols / n
    return float((idx - exp) / ((rows + cols) / 2 - exp))


CENTRES = [[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 8.0]]


@pytest.fixture(scope="module")
def planted_fit():
    x, y = _planted(2, CENTRES, 80, 0.6, seed=11)
    return x, y, hddc_ops.fit(x, n_components=2, max_components=6, seed=0)


def test_fit_result_fields_shapes_and_mask(planted_fit):
    x, _, r = planted_fit
    U, n, d = x.shape
    K = r.weights.shape[1]
    assert K == int(r.n_components.max())  # "padded to the largest K and a mask"
    # a unit's components fill its first n_components[u] slots; the rest is padding
    assert torch.equal(r.active, torch.arange(K)[None, :] < r.n_components[:, None])
    assert r.weights.shape == (U, K) and r.means.shape == (U, K, d)
    assert r.n_components.shape == (U,) and r.log_likelihood.shape == (U,)
    assert r.active.shape == (U, K) and r.active.dtype == torch.bool
    assert r.subspaces.shape == (U, K, d, d) and r.a.shape == (U, K, d) and r.b.shape == (U, K)
    assert r.dims.shape == (U, K)
    assert torch.equal(r.n_components, r.active.sum(1))
    assert bool((r.weights[~r.active] == 0).all())
    torch.testing.assert_close(r.weights.sum(1), torch.ones(U, dtype=x.dtype))
    assert set(r.events) >= {"splits", "filtered", "deactivated", "floored"}


def test_split_and_filter_find_the_planted_k_and_labels_recover_it(planted_fit):
    x, y, r = planted_fit
    assert r.n_components.tolist() == [3, 3]                 # from 2, by the BIC split rule
    labels = r.labels(x)
    assert labels.shape == y.shape
    for u in range(x.shape[0]):
        assert _ari(y[u], labels[u]) >= 0.95


def test_log_likelihood_and_responsibilities_are_those_of_the_returned_mixture(planted_fit):
    x, _, r = planted_fit
    lj = _log_joint(x, r, _hddc_covariances(r))
    torch.testing.assert_close(r.log_likelihood, lj.logsumexp(-1).sum(-1), rtol=1e-8, atol=1e-8)
    resp = r.responsibilities(x)
    assert resp.shape == (*x.shape[:2], r.weights.shape[1])
    torch.testing.assert_close(resp, torch.softmax(lj, -1), rtol=1e-8, atol=1e-10)
    assert torch.equal(r.labels(x), lj.argmax(-1))
    # new points: the E-step op works on any n
    xn = x[:, :7] + 0.1
    assert r.responsibilities(xn).shape == (2, 7, r.weights.shape[1]) and r.labels(xn).shape == (2, 7)


def test_one_component_is_hdclassif_by_hand():
    """K = 1: mu = mean, W = biased scatter, a = its leading d_k eigenvalues, b = (tr W - sum a)/(d - d_k),
    d_k from Cattell's scree test at threshold 0.2 (HDclassif's hdclassif_dim_choice)."""
    g = torch.Generator().manual_seed(3)
    n, d = 400, 5
    rot = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) * torch.tensor([3.0, 2.0, 0.4, 0.3, 0.3])) @ rot.T + 1.5
    r = hddc_ops.fit(x[None], n_components=1, max_components=1, split=False)
    mu = x.mean(0)
    W = (x - mu).T @ (x - mu) / n
    lam = torch.linalg.eigvalsh(W).flip(0)
    gap = (lam[:-1] - lam[1:]).abs()
    dk = max(j + 1 for j in range(d - 1) if gap[j] > 0.2 * gap.max())
    torch.testing.assert_close(r.means[0, 0], mu)
    assert int(r.dims[0, 0]) == dk == 2
    torch.testing.assert_close(r.a[0, 0, :dk], lam[:dk])
    torch.testing.assert_close(r.b[0, 0], (W.trace() - lam[:dk].sum()) / (d - dk))
    # full-covariance mode: Sigma = W + 1e-6 I (scikit-learn's reg_covar), log-likelihood by hand
    f = hddc_ops.fit(x[None], n_components=1, max_components=1, split=False, model="full")
    torch.testing.assert_close(f.covariances[0, 0], W + 1e-6 * torch.eye(d, dtype=x.dtype))
    ll = torch.distributions.MultivariateNormal(mu, covariance_matrix=W + 1e-6 * torch.eye(d, dtype=x.dtype)).log_prob(x).sum()
    torch.testing.assert_close(f.log_likelihood[0], ll)


def test_split_rule_dyga_splits_unconditionally():
    # psi = 0.5 is an absolute distance: on unnormalised data every cluster is a candidate (docs/kernels/hddc.md)
    x, _ = _planted(1, [[0.0, 0.0], [10.0, 0.0]], 100, 2.0, seed=4)
    paper = hddc_ops.fit(x, n_components=2, max_components=6, split_rule="dyga", max_iter=10)
    default = hddc_ops.fit(x, n_components=2, max_components=6, max_iter=10)
    assert int(paper.n_components[0]) > int(default.n_components[0]) == 2


def test_degenerate_data_never_nan_and_same_seed_same_result():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 6, 8, generator=g, dtype=torch.float64)   # n = 6 < d = 8
    x[1] = x[1, 0]                                               # every point a duplicate
    x[2, 3:] = x[2, :3]                                          # duplicated half
    for model in ("AkjBkQkDk", "full"):
        r = hddc_ops.fit(x, n_components=2, max_components=4, model=model, min_mass=1)
        for v in (r.weights, r.means, r.log_likelihood, r.responsibilities(x)):
            assert not torch.isnan(v).any()
        assert int(sum(v.sum() for v in r.events.values())) > 0   # the result says what was regularised
        again = hddc_ops.fit(x, n_components=2, max_components=4, model=model, min_mass=1)
        for a, b in ((r.means, again.means), (r.weights, again.weights), (r.log_likelihood, again.log_likelihood)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_seeded_initialisations(planted_fit, init):
    x, y, _ = planted_fit
    a = hddc_ops.fit(x, n_components=3, max_components=3, split=False, init=init, seed=3)
    b = hddc_ops.fit(x, n_components=3, max_components=3, split=False, init=init, seed=3)
    assert torch.equal(a.means, b.means) and torch.equal(a.log_likelihood, b.log_likelihood)
    assert torch.isfinite(a.log_likelihood).all()
    if init == "kmeans++":  # random-point seeding may start two centres in one cluster (a local optimum)
        assert min(_ari(y[u], a.labels(x)[u]) for u in range(2)) >= 0.95


def test_dimension_limit_and_bad_model():
    with pytest.raises(ValueError, match="d=65"):
        hddc_ops.fit(torch.randn(1, 20, 65))
    r = hddc_ops.fit(torch.randn(1, 80, 64, dtype=torch.float64), n_components=1, max_components=1, split=False)
    assert r.means.shape == (1, 1, 64)
    with pytest.raises(ValueError, match="model"):
        hddc_ops.fit(torch.randn(1, 20, 2), model="diag")
    with pytest.raises(ValueError, match="split_rule"):
        hddc_ops.fit(torch.randn(1, 20, 2), split_rule="always")


def test_align_eq6_by_hand_and_autograd(planted_fit):
    from diffrep.methods.dyga import align

    x, _, r = planted_fit
    c = x.transpose(0, 1)[::20].clone()                          # features (B, U, d)
    out = align(r, c, 0.1, 1e-4, assignment="hard")
    lab = r.labels(c.transpose(0, 1))                            # (U, B)
    mu_hat = torch.stack([r.means[u, lab[u]] for u in range(r.means.shape[0])], 1)   # (B, U, d)
    delta = 0.1 * torch.exp(-((c - mu_hat) / (c.abs() + 1e-6)).abs().mean(-1, keepdim=True))
    torch.testing.assert_close(out, c + delta * (mu_hat - c))
    # the Gumbel-softmax path (Algorithm 3) is differentiable w.r.t. the features
    f = c.clone().requires_grad_(True)
    y = align(r, f, generator=torch.Generator().manual_seed(0))
    (gf,) = torch.autograd.grad(y.square().sum(), f)
    assert gf.shape == f.shape and torch.isfinite(gf).all() and bool((gf != 0).any())
    # the issue's result.align(features, lam, tau) still works (moved by issue 16: it warns and delegates)
    with pytest.warns(DeprecationWarning, match="diffrep.methods.dyga.align"):
        old = r.align(c, 0.1, 1e-4, assignment="hard")
    torch.testing.assert_close(old, out)


# --------------------------------------------------------------------------- MMD
def _kernel_sum(a, b, kernel, widths):
    r2 = (a[:, None, :] - b[None, :, :]).square().sum(-1)
    if kernel == "rbf":
        return sum(torch.exp(-r2 / h) for h in widths)
    return sum(C / (C + r2) for C in widths)


def _mmd2_brute(x, y, kernel, widths, estimator):
    kxx, kyy, kxy = (_kernel_sum(a, b, kernel, widths) for a, b in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())


D = 3
MMD_CASES = [  # (kernel, bandwidth, scales, the widths the issue says they mean)
    ("rbf", None, None, [D * D]),               # None: h = d^2, the InfoVAE convention
    ("rbf", 2.5, None, [2.5]),
    ("rbf", None, [0.5, 2.0, 9.0], [0.5, 2.0, 9.0]),
    ("imq", None, None, [2.0 * D]),             # C = 2 d sigma^2 with sigma^2 = 1 (WAE)
    ("imq", 4.0, None, [4.0]),
    ("imq", None, [0.6, 6.0], [0.6, 6.0]),
]


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize("kernel,bandwidth,scales,widths", MMD_CASES)
def test_mmd2_values_and_gradients_by_brute_force(device, kernel, bandwidth, scales, widths, estimator):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, D, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    y = (torch.randn(7, D, generator=g, dtype=torch.float64) + 0.4).to(device).requires_grad_(True)
    got = mmd_ops.mmd2(x, y, kernel, bandwidth, scales, estimator)
    want = _mmd2_brute(x, y, kernel, widths, estimator)
    assert got.shape == () and got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    gx, gy = torch.autograd.grad(got, (x, y))
    wx, wy = torch.autograd.grad(want, (x, y))
    torch.testing.assert_close(gx, wx, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gy, wy, rtol=1e-9, atol=1e-12)


def test_mmd2_float32_agrees_with_a_cdist_twin(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 8, generator=g).to(device)
    y = (torch.randn(48, 8, generator=g) * 1.3).to(device)
    for est in ("biased", "unbiased"):
        r2 = lambda a, b: torch.cdist(a.double(), b.double()).square()
        kxx, kyy, kxy = (torch.exp(-r2(a, b) / 64.0) for a, b in ((x, x), (y, y), (x, y)))
        if est == "biased":
            want = kxx.mean() + kyy.mean() - 2 * kxy.mean()
        else:
            want = ((kxx.sum() - kxx.diagonal().sum()) / (64 * 63) + (kyy.sum() - kyy.diagonal().sum()) / (48 * 47)
                    - 2 * kxy.mean())
        got = mmd_ops.mmd2(x, y, estimator=est)
        assert got.dtype == torch.float32
        assert abs(float(got) - float(want)) <= 1e-5 * abs(float(want)) + 1e-7


def test_mmd2_of_a_set_with_itself(device):
    x = torch.randn(33, 5, generator=torch.Generator().manual_seed(3)).to(device)
    assert float(mmd_ops.mmd2(x, x)) == 0.0                      # biased: exactly 0
    # unbiased, Y = X: the within-set sums drop the diagonal, the cross sum keeps it, so with S_off the
    # off-diagonal kernel sum it is 2 S_off / (N (N - 1)) - 2 (S_off + N) / N^2 (0 in expectation, not here)
    xd = x.double()
    K = torch.exp(-torch.cdist(xd, xd).square() / 25.0)
    n = len(x)
    s_off = K.sum() - K.diagonal().sum()
    want = 2 * s_off / (n * (n - 1)) - 2 * K.sum() / n**2
    got = mmd_ops.mmd2(xd, xd, estimator="unbiased")
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-10, atol=1e-12)


def test_mmd2_rejects_bandwidth_and_scales_together_and_unknown_choices():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="bandwidth or scales"):
        mmd_ops.mmd2(x, x, bandwidth=1.0, scales=[1.0])
    with pytest.raises(ValueError, match="kernel"):
        mmd_ops.mmd2(x, x, kernel="laplace")
    with pytest.raises(ValueError, match="estimator"):
        mmd_ops.mmd2(x, x, estimator="linear")


# --------------------------------------------------------------------------- guidance score
def _twin(z, mu, logvar):
    lp = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    return lp.mean(0) if z.dim() == 3 else lp


@pytest.mark.parametrize("S", [None, 1, 4])
def test_log_posterior_values_shape_and_first_derivatives(device, S):
    g = torch.Generator().manual_seed(4)
    B, Dz = 5, 6
    mu = torch.randn(B, Dz, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    lv = (0.5 * torch.randn(B, Dz, generator=g, dtype=torch.float64)).to(device).requires_grad_(True)
    shape = (B, Dz) if S is None else (S, B, Dz)
    z = torch.randn(shape, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
    got = guidance_ops.log_posterior(z, mu, lv)
    want = _twin(z, mu, lv)
    assert got.shape == (B,)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got.sum(), (z, mu, lv)), torch.autograd.grad(want.sum(), (z, mu, lv))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_double_backward_inside_create_graph(device):
    """Training puts g = d log q / d(mu, logvar) (pulled back through the encoder) inside the loss: the
    second derivatives through autograd.grad(..., create_graph=True) equal the twin's."""
    g = torch.Generator().manual_seed(5)
    B, Dz, S = 4, 3, 3
    W = torch.randn(2 * Dz, 7, generator=g, dtype=torch.float64).to(device)

    def loss(logpost, xt, z):
        h = W @ xt.T                                         # a linear encoder of x_t (B, 7) -> mu, logvar
        mu, lv = h[:Dz].T, 0.3 * h[Dz:].T
        (gx,) = torch.autograd.grad(logpost(z, mu, lv).sum(), xt, create_graph=True)
        return gx.square().sum()

    xt = torch.randn(B, 7, generator=g, dtype=torch.float64).to(device)
    z = torch.randn(S, B, Dz, generator=g, dtype=torch.float64).to(device)
    grads = []
    for fn in (guidance_ops.log_posterior, _twin):
        a, b = xt.clone().requires_grad_(True), z.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(loss(fn, a, b), (a, b)))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_gradgradcheck_float64():
    g = torch.Generator().manual_seed(6)
    z = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    mu = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    lv = (0.3 * torch.randn(3, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.autograd.gradgradcheck(guidance_ops.log_posterior, (z, mu, lv))


def test_padded_keeps_the_mixture_and_validates(planted_fit):
    """``padded(S)`` adds inactive, zero-weight slots: responsibilities and labels of new points are
    those of the unpadded result, with zero columns appended."""
    x, _, r = planted_fit
    K = r.weights.shape[1]
    p = r.padded(K + 3)
    assert p.means.shape[1] == K + 3 and not bool(p.active[:, K:].any())
    assert bool((p.weights[:, K:] == 0).all()) and torch.equal(p.n_components, r.n_components)
    resp, resp_p = r.responsibilities(x), p.responsibilities(x)
    torch.testing.assert_close(resp_p[..., :K], resp)
    assert bool((resp_p[..., K:] == 0).all())
    assert torch.equal(p.labels(x), r.labels(x))
    for bad in (K - 1, 2.0, True):
        with pytest.raises(ValueError, match="num_slots"):
            r.padded(bad)


def test_filtered_components_are_compacted_to_the_largest_k():
    """Filtering leaves holes in the fit's max_components slots; the result keeps each unit's
    mixture (its log-likelihood, computed before compaction, is the one its log_prob gives) in its
    first n_components[u] slots, with K = the largest count (2 and 3 here, from 8 initial)."""
    x, _ = _planted(2, CENTRES, 80, 0.6, seed=11)
    r = hddc_ops.fit(x, n_components=8, max_components=12, min_mass=30, split_rule="dyga", seed=0)
    assert r.events["filtered"].tolist() == [6, 5] and r.n_components.tolist() == [2, 3]
    assert r.weights.shape == (2, 3)
    assert torch.equal(r.active, torch.tensor([[True, True, False], [True, True, True]]))
    torch.testing.assert_close(r.log_prob(x).logsumexp(-1).sum(-1), r.log_likelihood, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(r.weights.sum(1), torch.ones(2, dtype=x.dtype))
