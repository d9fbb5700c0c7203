"""Batched HDDC-EM (HDclassif AkjBkQkDk) and full-covariance mode: HDclassif semantics on hand
cases, scikit-learn agreement, planted-mixture recovery with split/filter, degenerate data,
determinism, alignment gradients and bad inputs."""

import math

import pytest
import torch

from diffrep.cluster import hddc
from diffrep.methods import dyga
from diffrep.ops import explain, use_backend
from diffrep.ops.reference import hddc as ref


def planted(U, K, n_per, d, sep=8.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for _ in range(U):
        c = torch.randn(K, d, generator=g, dtype=torch.float64) * sep
        lab = torch.arange(K).repeat_interleave(n_per)
        scale = 0.5 + torch.rand(K, 1, generator=g, dtype=torch.float64)
        xs.append(c[lab] + torch.randn(K * n_per, d, generator=g, dtype=torch.float64) * scale[lab])
        ys.append(lab)
    return torch.stack(xs), torch.stack(ys)


def ari(a, b):
    sklearn = pytest.importorskip("sklearn.metrics")
    return sklearn.adjusted_rand_score(a.numpy(), b.numpy())


def test_cattell_hand_case():
    lam = torch.tensor([[10.0, 5.0, 4.9, 1.0, 0.99], [1.0, 1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0, 0.0]])
    # dev/max = [1, .02, .78, .002] -> largest j with > 0.2 is 3; flat -> 1; lam_{j+1} <= 1e-8 -> 1
    assert ref.cattell_dims(lam).tolist() == [3, 1, 1]
    assert ref.cattell_dims(lam, threshold=0.9).tolist() == [1, 1, 1]


def test_b_from_trace_and_a_from_eigenvalues():
    g = torch.Generator().manual_seed(0)
    d = 6
    lam_true = torch.tensor([9.0, 4.0, 0.5, 0.4, 0.3, 0.2], dtype=torch.float64)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    x = (torch.randn(4000, d, generator=g, dtype=torch.float64) * lam_true.sqrt()) @ Q.T
    x = x[None]
    resp = torch.ones(1, 4000, 1, dtype=torch.float64)
    p = ref.m_step(x, torch.ones(1, 4000, dtype=torch.float64), resp, torch.ones(1, 1, dtype=torch.bool))
    W = torch.cov(x[0].T, correction=0)
    lam = torch.linalg.eigvalsh(W).flip(0)
    dk = int(p["dk"][0, 0])
    assert dk == ref.cattell_dims(lam[None])[0] == 2
    torch.testing.assert_close(p["a"][0, 0, :dk], lam[:dk])
    torch.testing.assert_close(p["b"][0, 0], (W.trace() - lam[:dk].sum()) / (d - dk))
    # the E-step cost equals -2 log N for the implied covariance Sigma = Q diag(a.., b..) Q^T
    Qk = p["Q"][0, 0]
    diag = torch.cat([lam[:dk], p["b"][0, 0].expand(d - dk)])
    sigma = Qk @ torch.diag(diag) @ Qk.T
    expect = torch.distributions.MultivariateNormal(p["mu"][0, 0], sigma).log_prob(x[0, :50])
    torch.testing.assert_close(ref.log_prob(x[:, :50], p)[0, :, 0], expect)


def test_full_mode_matches_sklearn():
    mixture = pytest.importorskip("sklearn.mixture")
    x, _ = planted(1, 3, 150, 4, sep=3.0, seed=1)
    g = torch.Generator().manual_seed(2)
    r0 = torch.softmax(torch.randn(1, 450, 3, generator=g, dtype=torch.float64) * 3, -1)
    w = torch.ones(1, 450, dtype=torch.float64)
    p0 = ref.m_step(x, w, r0, torch.ones(1, 3, dtype=torch.bool), model="full")
    iters = 6
    gm = mixture.GaussianMixture(3, covariance_type="full", max_iter=iters - 1, tol=0.0, reg_covar=1e-6,
                                 weights_init=p0["pi"][0].numpy(), means_init=p0["mu"][0].numpy(),
                                 precisions_init=torch.linalg.inv(p0["cov"][0]).numpy())
    with pytest.warns(Warning):
        gm.fit(x[0].numpy())
    r = hddc.fit(x, n_components=3, max_components=3, model="full", max_iter=iters, tol=0.0, split=False,
                 init_resp=r0)
    torch.testing.assert_close(r.weights[0], torch.from_numpy(gm.weights_), rtol=1e-4, atol=0)
    torch.testing.assert_close(r.means[0], torch.from_numpy(gm.means_), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r.covariances[0], torch.from_numpy(gm.covariances_), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(r.log_likelihood[0], torch.tensor(gm.score(x[0].numpy()) * 450, dtype=torch.float64),
                               rtol=1e-4, atol=0)


@pytest.mark.parametrize("model", ["AkjBkQkDk", "full"])
def test_planted_mixture_recovered_with_split_and_filter(model):
    x, y = planted(2, 4, 120, 6, seed=3)
    r = hddc.fit(x, n_components=2, max_components=8, model=model, seed=1)
    assert r.n_components.tolist() == [4, 4]
    lab = r.labels(x)
    for u in range(2):
        assert ari(y[u], lab[u]) >= 0.95
    assert bool((r.events["splits"] >= 2).all())
    assert torch.isfinite(r.log_likelihood).all() and torch.isfinite(r.bic).all()
    resp = r.responsibilities(x)
    torch.testing.assert_close(resp.sum(-1), torch.ones(2, 480, dtype=torch.float64))
    assert bool((resp[~r.active[:, None].expand_as(resp)] == 0).all())


def test_dyga_rule_splits_unconditionally_on_unnormalised_data():
    x, _ = planted(1, 2, 150, 4, seed=4)
    r = hddc.fit(x, n_components=2, max_components=6, split_rule="dyga", max_iter=10, seed=0)
    assert int(r.n_components[0]) > 2  # psi = 0.5 is small against unnormalised spreads
    rb = hddc.fit(x, n_components=2, max_components=6, max_iter=10, seed=0)
    assert int(rb.n_components[0]) == 2


def test_degenerate_data_gives_no_nan():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 60, 5, generator=g, dtype=torch.float64)
    x[0] = 0.0                                # an all-zero unit (ReLU features)
    x[1, 30:] = x[1, 0]                       # half the points duplicated
    x[2] = x[2, :3].repeat(20, 1)            # three distinct points, n_distinct < d
    for model in ("AkjBkQkDk", "full"):
        r = hddc.fit(x, n_components=4, max_components=8, model=model, min_mass=2)
        for v in (r.weights, r.means, r.log_likelihood, r.responsibilities(x)):
            assert not torch.isnan(v).any()
        assert bool((r.n_components >= 1).all())
        assert r.weights.sum(1).sub(1).abs().max() < 1e-9
        assert int(r.events["deactivated"].sum() + r.events["floored"].sum() + r.events["filtered"].sum()) > 0


def test_same_seed_same_result_and_batch_invariance():
    x, _ = planted(3, 3, 80, 4, seed=6)
    a = hddc.fit(x, n_components=2, max_components=6, seed=7)
    b = hddc.fit(x, n_components=2, max_components=6, seed=7)
    assert torch.equal(a.means, b.means) and torch.equal(a.log_likelihood, b.log_likelihood)
    x32 = x.float()
    assert hddc.fit(x32, 2, 6, seed=7).means.dtype == torch.float32


def test_align_shapes_bounds_and_gradients():
    x, _ = planted(2, 3, 60, 4, seed=8)
    r = hddc.fit(x, n_components=3, max_components=3, split=False)
    c = x.transpose(0, 1)[:10].clone().requires_grad_()
    out = dyga.align(r, c, lam=0.1, tau=1e-4, generator=torch.Generator().manual_seed(0))
    assert out.shape == c.shape
    frac = ((out - c).norm(dim=-1) / (r.means[None, :, :, :] - c[:, :, None]).norm(dim=-1).min(-1).values)
    assert bool((frac <= 0.1 + 1e-9).all())
    out.sum().backward()
    assert torch.isfinite(c.grad).all()
    hard = dyga.align(r, c.detach(), gumbel=False)
    assert hard.shape == c.shape


def test_bad_inputs():
    x = torch.randn(2, 30, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="d=65"):
        hddc.fit(torch.randn(1, 10, 65))
    with pytest.raises(ValueError, match="shape"):
        hddc.fit(x[0])
    with pytest.raises(ValueError, match="empty"):
        hddc.fit(x[:, :0])
    with pytest.raises(TypeError, match="floating"):
        hddc.fit(x.long())
    bad = x.clone()
    bad[1, 3, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        hddc.fit(bad)
    with pytest.raises(ValueError, match="n_components"):
        hddc.fit(x, n_components=9, max_components=8)
    with pytest.raises(ValueError, match="max_components"):
        hddc.fit(x, max_components=65)
    with pytest.raises(ValueError, match="model"):
        hddc.fit(x, model="AkBkQkD")
    with pytest.raises(ValueError, match="split_rule"):
        hddc.fit(x, split_rule="always")
    with pytest.raises(ValueError, match="weights"):
        hddc.fit(x, weights=torch.full((2, 30), 2.0))
    with pytest.raises(ValueError, match="tol"):
        hddc.fit(x, tol=-1.0)
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\], got 1.5"):
        hddc.fit(x, threshold=1.5)
    with pytest.raises(ValueError, match=r"n_components \(31\) exceeds the number of points per unit \(30\)"):
        hddc.fit(x, n_components=31, max_components=32)
    r = hddc.fit(x, 2, 2, split=False)
    with pytest.raises(ValueError, match="x must have shape"):
        r.responsibilities(torch.randn(2, 5, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="lam"):
        dyga.align(r, x.transpose(0, 1), lam=0.0)
    ch = explain("hddc.fit", x)
    assert ch.backend == "cpu" and "eigen step" in str(ch)
    with use_backend("reference"):
        assert explain("hddc.fit", x).backend == "reference"
