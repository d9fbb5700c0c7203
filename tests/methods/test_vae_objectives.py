"""The VAE-family objectives against independent computations on tiny fixed inputs (docs/methods/vae.md).

Every expected value is computed here from the networks' raw outputs with plain loops / numpy / math:
the closed-form Gaussian KL, the Bernoulli and Gaussian likelihoods, beta-TCVAE's estimators by brute
force and their known limits, FactorVAE's density-ratio TC and permutation, DIP-VAE's covariance
penalties, InfoVAE's MMD term (the op and a direct double sum) and the capacity schedule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffrep.methods.vae import (AE, DIPVAE, FSQAE, VAE, BetaTCVAE, BetaVAE, FactorVAE, InfoVAE, capacity_at,
                                 dip_regulariser, discriminator_loss, factor_tc_estimate, permute_dims,
                                 reconstruction_loss, total_correlation)
from diffrep.methods.vae.total_correlation import mss_log_weights
from diffrep.ops.mmd import mmd2

SEED = 3


def _x(n=4, c=1, s=32, seed=0, binary=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, s, s, generator=g, dtype=torch.float64)
    if binary:
        x = (x > 0.7).double()
    return x * 2 - 1  # the datasets' [-1, 1]


def _model(cls, **kw):
    torch.manual_seed(0)
    base = {} if cls is FSQAE else {"latent_dim": 3}
    model = cls(cls.config_class(image_size=32, **{**base, **kw})).double()
    with torch.no_grad():  # spread the posteriors so that every term is far from its untrained limit
        model.encoder.head.weight.mul_(300.0)
    return model


def _np(t):
    return t.detach().cpu().numpy().astype(np.float64)


def _bce_ref(logits, x01, offset=False):
    """-log Bernoulli(x | sigmoid(l)) summed over pixels per example (offset: minus dlib's optional entropy offset)."""
    l, x = _np(logits).reshape(len(logits), -1), _np(x01).reshape(len(x01), -1)
    p = 1 / (1 + np.exp(-l))
    ce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)
    if offset:
        q = np.clip(x, 1e-6, 1 - 1e-6)
        ce -= -(q * np.log(q) + (1 - q) * np.log(1 - q)).sum(1)
    return ce


def _kl_ref(mu, logvar):
    mu, lv = _np(mu), _np(logvar)
    return float(np.mean([sum(0.5 * (m * m + math.exp(v) - v - 1) for m, v in zip(mr, vr)) for mr, vr in zip(mu, lv)]))


def _parts(model, x, seed=SEED):
    """mu, logvar, eps (the first draw of a generator seeded ``seed``), z and the decoder logits."""
    x01 = (x + 1) / 2
    with torch.no_grad():
        mu, logvar = model.encoder(x01)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = model.decoder(z)
    return dict(x01=x01, mu=mu, logvar=logvar, eps=eps, z=z, logits=logits)


def _loss(model, x, seed=SEED, step=None):
    return model.loss(x, step=step, generator=torch.Generator().manual_seed(seed))


# -- likelihoods and KL --------------------------------------------------------------------------
def test_bernoulli_likelihood_with_and_without_the_entropy_offset():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    x01 = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(_np(reconstruction_loss(logits, x01, bernoulli_offset="entropy")),
                               _bce_ref(logits, x01, offset=True), rtol=1e-10)
    np.testing.assert_allclose(_np(reconstruction_loss(logits, x01, bernoulli_offset="none")),
                               _bce_ref(logits, x01, offset=False), rtol=1e-10)


def test_gaussian_likelihood_is_the_normal_nll():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)
    x01 = torch.rand(2, 1, 3, 3, generator=g, dtype=torch.float64)
    sigma = 0.3
    mean = 1 / (1 + np.exp(-_np(logits)))
    want = [sum(-math.log(1 / math.sqrt(2 * math.pi * sigma ** 2)) + (a - b) ** 2 / (2 * sigma ** 2)
                for a, b in zip(mean[i].ravel(), _np(x01)[i].ravel())) for i in range(2)]
    got = reconstruction_loss(logits, x01, decoder="gaussian", decoder_sigma=sigma)
    np.testing.assert_allclose(_np(got), want, rtol=1e-10)


def test_vae_loss_is_recon_plus_closed_form_kl():
    model, x = _model(VAE), _x()
    p = _parts(model, x)
    out = _loss(model, x)
    recon = _bce_ref(p["logits"], p["x01"]).mean()
    kl = _kl_ref(p["mu"], p["logvar"])
    assert math.isclose(float(out["recon"]), recon, rel_tol=1e-10)
    assert math.isclose(float(out["kl"]), kl, rel_tol=1e-10)
    assert math.isclose(float(out["loss"].detach()), recon + kl, rel_tol=1e-10)


def test_vae_gaussian_decoder_in_01_range():
    model = _model(VAE, decoder="gaussian", decoder_sigma=0.5, input_range="01")
    x = (_x() + 1) / 2
    x01 = x
    with torch.no_grad():
        mu, logvar = model.encoder(x01)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(SEED), dtype=mu.dtype)
        logits = model.decoder(mu + torch.exp(0.5 * logvar) * eps)
    out = _loss(model, x)
    m = 1 / (1 + np.exp(-_np(logits)))
    recon = (((m - _np(x01)) ** 2).reshape(4, -1).sum(1) / (2 * 0.25) + 0.5 * math.log(2 * math.pi * 0.25) * 1024).mean()
    assert math.isclose(float(out["recon"]), recon, rel_tol=1e-10)
    with torch.no_grad():
        assert float(model.sample(2, generator=torch.Generator().manual_seed(0)).min()) >= 0  # outputs in [0, 1]


def test_ae_is_deterministic_reconstruction_only():
    model, x = _model(AE), _x()
    out = _loss(model, x)
    with torch.no_grad():
        mu, _ = model.encoder((x + 1) / 2)
        logits = model.decoder(mu)
    assert set(out) == {"loss", "recon"}
    assert math.isclose(float(out["loss"].detach()), _bce_ref(logits, (x + 1) / 2).mean(), rel_tol=1e-10)
    assert torch.equal(_loss(model, x, seed=1)["loss"], out["loss"])  # no sampling


def test_beta_vae_weights_the_kl():
    model, x = _model(BetaVAE, beta=6.0), _x()
    p = _parts(model, x)
    out = _loss(model, x)
    recon, kl = _bce_ref(p["logits"], p["x01"]).mean(), _kl_ref(p["mu"], p["logvar"])
    assert math.isclose(float(out["loss"].detach()), recon + 6.0 * kl, rel_tol=1e-10)


@pytest.mark.parametrize("step, c", [(0, 0.0), (50, 5.0), (100, 10.0), (250, 10.0), (None, 10.0)])
def test_capacity_annealed_beta_vae(step, c):
    model, x = _model(BetaVAE, capacity_max=10.0, capacity_gamma=7.0, capacity_steps=100), _x()
    p = _parts(model, x)
    out = _loss(model, x, step=step)
    recon, kl = _bce_ref(p["logits"], p["x01"]).mean(), _kl_ref(p["mu"], p["logvar"])
    assert out["capacity"] == c == capacity_at(step, 10.0, 100)
    assert math.isclose(float(out["loss"].detach()), recon + 7.0 * abs(kl - c), rel_tol=1e-10)


# -- beta-TCVAE ----------------------------------------------------------------------------------
def _tc_brute(z, mu, logvar, estimator, n=None):
    z, mu, lv = _np(z), _np(mu), _np(logvar)
    m, d = z.shape

    def logq(i, j, k):
        return -0.5 * (math.log(2 * math.pi) + lv[j, k] + (z[i, k] - mu[j, k]) ** 2 / math.exp(lv[j, k]))

    def w(i, j):
        if estimator != "mss":
            return 1.0 / (n * m) if estimator == "mws" else 1.0
        if i == j:
            return 1.0 / n
        if j == (i + 1) % m:
            return (n - m + 1) / (n * (m - 1))
        return 1.0 / (m - 1)

    total = 0.0
    for i in range(m):
        joint = math.log(sum(w(i, j) * math.exp(sum(logq(i, j, k) for k in range(d))) for j in range(m)))
        prod = sum(math.log(sum(w(i, j) * math.exp(logq(i, j, k)) for j in range(m))) for k in range(d))
        total += joint - prod
    return total / m


def _tc_inputs(m=5, d=3, seed=4, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    mu = scale * torch.randn(m, d, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(m, d, generator=g, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(m, d, generator=g, dtype=torch.float64)
    return z, mu, logvar


@pytest.mark.parametrize("estimator, n", [("mws", 100), ("mss", 100), ("mss", 5), ("dlib", None)])
def test_total_correlation_matches_brute_force(estimator, n):
    z, mu, logvar = _tc_inputs()
    got = float(total_correlation(z, mu, logvar, estimator=estimator, dataset_size=n))
    assert math.isclose(got, _tc_brute(z, mu, logvar, estimator, n), rel_tol=1e-10, abs_tol=1e-12)


def test_dlib_form_is_mws_without_the_constant():
    z, mu, logvar = _tc_inputs(m=6, d=4)
    mws = float(total_correlation(z, mu, logvar, estimator="mws", dataset_size=1000))
    dlib = float(total_correlation(z, mu, logvar, estimator="dlib"))
    assert math.isclose(mws - dlib, 3 * math.log(1000 * 6), rel_tol=1e-12)


def test_mss_weights_by_hand():
    w = mss_log_weights(3, 10, dtype=torch.float64).exp()
    torch.testing.assert_close(w, torch.tensor([[0.1, 0.4, 0.5], [0.5, 0.1, 0.4], [0.4, 0.5, 0.1]], dtype=torch.float64))
    torch.testing.assert_close(mss_log_weights(7, 50, dtype=torch.float64).exp().sum(1), torch.ones(7, dtype=torch.float64))


@pytest.mark.parametrize("estimator", ["mws", "mss", "dlib"])
def test_one_latent_has_no_total_correlation(estimator):
    z, mu, logvar = _tc_inputs(d=1)
    n = None if estimator == "dlib" else 50
    assert abs(float(total_correlation(z, mu, logvar, estimator=estimator, dataset_size=n))) < 1e-12


def test_limits_identical_posteriors():
    """Every q(z|x_j) the same (so q(z) factorises, TC = 0): MSS is exact, MWS is off by (d-1) log N,
    dlib by -(d-1) log M (its weights do not sum to one)."""
    m, d, n = 6, 3, 40
    mu = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64).expand(m, d)
    logvar = torch.tensor([[0.1, -0.4, 0.2]], dtype=torch.float64).expand(m, d)
    z = torch.randn(m, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(total_correlation(z, mu, logvar, estimator="mss", dataset_size=n))) < 1e-12
    assert math.isclose(float(total_correlation(z, mu, logvar, estimator="mws", dataset_size=n)), 2 * math.log(n), rel_tol=1e-12)
    assert math.isclose(float(total_correlation(z, mu, logvar, estimator="dlib")), -2 * math.log(m), rel_tol=1e-12)


def test_limits_separated_posteriors():
    """Far-apart, nearly deterministic posteriors: only q(z_i|x_i) counts, so MWS -> (d-1) log(N M),
    MSS -> (d-1) log N, dlib -> 0."""
    m, d, n = 4, 3, 30
    mu = 100.0 * torch.arange(m * d, dtype=torch.float64).reshape(m, d)
    logvar = torch.full((m, d), -8.0, dtype=torch.float64)
    z = mu.clone()
    tc = {e: float(total_correlation(z, mu, logvar, estimator=e, dataset_size=None if e == "dlib" else n))
          for e in ("mws", "mss", "dlib")}
    assert math.isclose(tc["mws"], 2 * math.log(n * m), rel_tol=1e-9)
    assert math.isclose(tc["mss"], 2 * math.log(n), rel_tol=1e-9)
    assert abs(tc["dlib"]) < 1e-9


@pytest.mark.parametrize("estimator, n", [("dlib", None), ("mss", 200)])
def test_beta_tcvae_loss(estimator, n):
    model, x = _model(BetaTCVAE, beta=4.0, estimator=estimator, dataset_size=n), _x()
    p = _parts(model, x)
    out = _loss(model, x)
    recon, kl = _bce_ref(p["logits"], p["x01"]).mean(), _kl_ref(p["mu"], p["logvar"])
    tc = _tc_brute(p["z"], p["mu"], p["logvar"], estimator, n)
    assert math.isclose(float(out["tc"]), tc, rel_tol=1e-9)
    assert math.isclose(float(out["loss"].detach()), recon + kl + 3.0 * tc, rel_tol=1e-10)


# -- FactorVAE ------------------------------------------------------------------------------------
def test_permute_dims_permutes_each_column_independently():
    b, d = 256, 4
    z = torch.arange(b, dtype=torch.float64).unsqueeze(1).repeat(1, d) + torch.arange(d) * 1000.0
    zp = permute_dims(z, generator=torch.Generator().manual_seed(0))
    for k in range(d):  # each column: a permutation of itself
        assert torch.equal(torch.sort(zp[:, k]).values, z[:, k])
    ranks = zp - torch.arange(d) * 1000.0  # the row each entry came from, per column
    assert all(not torch.equal(ranks[:, 0], ranks[:, k]) for k in range(1, d))
    corr = np.corrcoef(_np(ranks).T)  # the columns were identical (correlation 1); now independent
    assert np.abs(corr[np.triu_indices(d, 1)]).max() < 0.2
    assert not torch.equal(ranks[:, 0], torch.arange(b, dtype=torch.float64))


def test_factor_tc_estimate_is_the_log_density_ratio():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0]], dtype=torch.float64)
    p = torch.softmax(logits, 1)[:, 0]
    want = float(torch.log(p / (1 - p)).mean())
    assert math.isclose(float(factor_tc_estimate(logits)), want, rel_tol=1e-12)
    assert math.isclose(float(factor_tc_estimate(logits)), (3.0 + 0.0 - 4.0) / 3, rel_tol=1e-12)


def test_discriminator_loss_by_hand():
    real = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    perm = torch.tensor([[0.0, 1.0], [3.0, 0.0]], dtype=torch.float64)
    ls = lambda a, b: math.log(math.exp(a) + math.exp(b))  # noqa: E731
    want = 0.5 * (((ls(1, 0) - 1) + (ls(0, 2) - 0)) / 2 + ((ls(0, 1) - 1) + (ls(3, 0) - 0)) / 2)
    assert math.isclose(float(discriminator_loss(real, perm)), want, rel_tol=1e-12)


def test_factor_vae_loss_and_disc_loss():
    model, x = _model(FactorVAE, gamma=20.0, disc_hidden=8, disc_layers=2), _x(n=6)
    p = _parts(model, x)
    out = _loss(model, x)
    with torch.no_grad():
        g = torch.Generator().manual_seed(SEED)
        torch.randn(p["mu"].shape, generator=g, dtype=torch.float64)  # the posterior draw comes first
        perms = [torch.randperm(6, generator=g) for _ in range(3)]
        zp = torch.stack([p["z"][perms[k], k] for k in range(3)], 1)
        lr, lp = _np(model.discriminator(p["z"])), _np(model.discriminator(zp))
    tc = float(np.mean(lr[:, 0] - lr[:, 1]))
    lse = lambda r: np.log(np.exp(r).sum(1))  # noqa: E731
    d_loss = 0.5 * (np.mean(lse(lr) - lr[:, 0]) + np.mean(lse(lp) - lp[:, 1]))
    recon, kl = _bce_ref(p["logits"], p["x01"]).mean(), _kl_ref(p["mu"], p["logvar"])
    assert math.isclose(float(out["tc"]), tc, rel_tol=1e-10)
    assert math.isclose(float(out["loss"].detach()), recon + kl + 20.0 * tc, rel_tol=1e-10)
    assert math.isclose(float(out["disc_loss"].detach()), d_loss, rel_tol=1e-10)
    acc = 0.5 * ((lr.argmax(1) == 0).mean() + (lp.argmax(1) == 1).mean())
    assert math.isclose(float(out["disc_accuracy"]), acc)


def test_factor_vae_gradients_never_cross():
    model, x = _model(FactorVAE, gamma=20.0, disc_hidden=8, disc_layers=2), _x(n=6)
    disc = list(model.discriminator.parameters())
    vae = [p for n, p in model.named_parameters() if not n.startswith("discriminator.")]
    out = _loss(model, x)
    g_loss_disc = torch.autograd.grad(out["loss"], disc, allow_unused=True)
    assert all(g is None or float(g.abs().max()) == 0 for g in g_loss_disc)
    out = _loss(model, x)
    g_d_vae = torch.autograd.grad(out["disc_loss"], vae, allow_unused=True)
    assert all(g is None or float(g.abs().max()) == 0 for g in g_d_vae)
    out = _loss(model, x)
    g_tc = torch.autograd.grad(out["loss"], model.encoder.head.weight)[0]
    assert float(g_tc.abs().max()) > 0
    assert model.discriminator_optimizer_settings() == {"lr": 1e-4, "betas": (0.5, 0.9)}
    assert [id(p) for p in model.discriminator_parameters()] == [id(p) for p in disc]


# -- DIP-VAE --------------------------------------------------------------------------------------
def _dip_ref(mu, logvar, kind, lod, ld):
    mu, lv = _np(mu), _np(logvar)
    m, d = mu.shape
    cov = np.zeros((d, d))
    mean = mu.mean(0)
    for i in range(d):
        for j in range(d):
            cov[i, j] = sum((mu[b, i] - mean[i]) * (mu[b, j] - mean[j]) for b in range(m)) / m
    if kind == "ii":
        cov += np.diag(np.exp(lv).mean(0))
    off = sum(cov[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    return lod * off + ld * sum((cov[i, i] - 1) ** 2 for i in range(d))


@pytest.mark.parametrize("kind, lod, ld, ld_ref", [("i", 3.0, None, 30.0), ("ii", 3.0, None, 3.0), ("i", 2.0, 0.5, 0.5),
                                                   ("ii", 0.0, 4.0, 4.0)])
def test_dip_regulariser_vs_direct_covariance(kind, lod, ld, ld_ref):
    _, mu, logvar = _tc_inputs(m=7, d=3, seed=9)
    got = float(dip_regulariser(mu, logvar, kind=kind, lambda_od=lod, lambda_d=ld))
    assert math.isclose(got, _dip_ref(mu, logvar, kind, lod, ld_ref), rel_tol=1e-10)


def test_dip_whitened_means_cost_nothing():
    mu = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)  # cov = I
    assert float(dip_regulariser(mu, torch.zeros_like(mu), kind="i")) == 0.0
    # II adds E[sigma^2] = 1 on the diagonal: (2 - 1)^2 per latent, lambda_d = lambda_od = 10
    assert math.isclose(float(dip_regulariser(mu, torch.zeros_like(mu), kind="ii")), 20.0)


@pytest.mark.parametrize("kind", ["i", "ii"])
def test_dip_vae_loss(kind):
    model, x = _model(DIPVAE, kind=kind, lambda_od=5.0), _x(n=5)
    p = _parts(model, x)
    out = _loss(model, x)
    recon, kl = _bce_ref(p["logits"], p["x01"]).mean(), _kl_ref(p["mu"], p["logvar"])
    dip = _dip_ref(p["mu"], p["logvar"], kind, 5.0, 50.0 if kind == "i" else 5.0)
    assert math.isclose(float(out["dip"]), dip, rel_tol=1e-9)
    assert math.isclose(float(out["loss"].detach()), recon + kl + dip, rel_tol=1e-10)


# -- InfoVAE -------------------------------------------------------------------------------------
def _mmd_ref(a, b):
    a, b = _np(a), _np(b)
    d = a.shape[1]
    k = lambda u, v: math.exp(-float(((u - v) ** 2).sum()) / d ** 2)  # noqa: E731
    return (np.mean([[k(u, v) for v in a] for u in a]) + np.mean([[k(u, v) for v in b] for u in b])
            - 2 * np.mean([[k(u, v) for v in b] for u in a]))


def test_info_vae_mmd_term_equals_the_op():
    model, x = _model(InfoVAE, alpha=0.5, lambda_=10.0), _x(n=5)
    p = _parts(model, x)
    out = _loss(model, x)
    g = torch.Generator().manual_seed(SEED)
    torch.randn(p["mu"].shape, generator=g, dtype=torch.float64)  # the posterior draw comes first
    prior = torch.randn(p["mu"].shape, generator=g, dtype=torch.float64)
    assert math.isclose(float(out["mmd"]), float(mmd2(p["z"], prior)), rel_tol=1e-6)
    assert math.isclose(float(out["mmd"]), _mmd_ref(p["z"], prior), rel_tol=1e-6)
    recon, kl = _bce_ref(p["logits"], p["x01"]).mean(), _kl_ref(p["mu"], p["logvar"])
    want = recon + 0.5 * kl + 9.5 * _mmd_ref(p["z"], prior)
    assert math.isclose(float(out["loss"].detach()), want, rel_tol=1e-8)


# -- FSQ autoencoder ------------------------------------------------------------------------------
def test_fsq_ae_codes_and_loss():
    model, x = _model(FSQAE, levels=(3, 5, 4)), _x()
    out = _loss(model, x)
    with torch.no_grad():
        mu, _ = model.encoder((x + 1) / 2)
        codes = model.encode(x)
        logits = model.decoder(codes)
    assert set(out) == {"loss", "recon"} and codes.shape == (4, 3)
    for k, L in enumerate((3, 5, 4)):  # on the grid {(j - L//2) / (L//2)}
        grid = (codes[:, k] * (L // 2)).round()
        torch.testing.assert_close(codes[:, k] * (L // 2), grid)
    torch.testing.assert_close(codes, model.fsq(mu))
    assert math.isclose(float(out["loss"].detach()), _bce_ref(logits, (x + 1) / 2).mean(), rel_tol=1e-10)
    idx = model.indices(x)
    assert idx.dtype == torch.long and int(idx.max()) < 60
    s = model.sample_codes(50, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.fsq.indices_to_codes(model.fsq.codes_to_indices(s), s.dtype), s)


# -- surface details and errors -------------------------------------------------------------------
@pytest.mark.parametrize("cls", [AE, VAE, BetaVAE, BetaTCVAE, FactorVAE, InfoVAE, DIPVAE, FSQAE])
def test_surface_values(cls):
    model, x = _model(cls), _x(n=3)
    with torch.no_grad():
        mu, _ = model.encoder((x + 1) / 2)
        enc = model.encode(x)
        if cls is FSQAE:
            mu = model.fsq(mu)
        torch.testing.assert_close(enc, mu)
        rec = model.reconstruct(x)
        torch.testing.assert_close(rec, torch.sigmoid(model.decoder(mu)) * 2 - 1)
        s1 = model.sample(2, generator=torch.Generator().manual_seed(5))
        s2 = model.sample(2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s1, s2) and s1.shape == (2, 1, 32, 32) and float(s1.abs().max()) <= 1
    out = model.loss((x, torch.zeros(3, 5)), step=0)  # an (images, targets) pair
    assert out["loss"].requires_grad and all(not v.requires_grad for k, v in out.items()
                                             if k not in ("loss", "disc_loss") and isinstance(v, torch.Tensor))


def test_input_errors():
    model = _model(VAE)
    with pytest.raises(ValueError, match="channels|shape"):
        model.loss(torch.zeros(2, 3, 32, 32, dtype=torch.float64), step=0)
    with pytest.raises(ValueError):
        model.loss(torch.zeros(2, 1, 64, 64, dtype=torch.float64), step=0)
    with pytest.raises(ValueError, match="step"):
        model.loss(_x(), step=-1)
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)
    with pytest.raises(TypeError, match="generator"):
        model.loss(_x(), step=0, generator=3)
    with pytest.raises(ValueError, match="at least 2"):
        _model(FactorVAE, disc_hidden=4, disc_layers=1).loss(_x(n=1), step=0)


def test_regulariser_input_errors():
    z, mu, logvar = _tc_inputs()
    with pytest.raises(ValueError, match="needs dataset_size"):
        total_correlation(z, mu, logvar, estimator="mss")
    with pytest.raises(ValueError, match="takes no dataset_size"):
        total_correlation(z, mu, logvar, estimator="dlib", dataset_size=10)
    with pytest.raises(ValueError, match="at least the batch size"):
        total_correlation(z, mu, logvar, estimator="mws", dataset_size=3)
    with pytest.raises(ValueError, match="estimator"):
        total_correlation(z, mu, logvar, estimator="exact")
    with pytest.raises(ValueError, match="one shape"):
        total_correlation(z, mu[:, :2], logvar)
    with pytest.raises(TypeError, match="floating"):
        total_correlation(z.long(), mu, logvar)
    with pytest.raises(ValueError, match="kind"):
        dip_regulariser(mu, logvar, kind="iii")
    with pytest.raises(ValueError, match="lambda_od"):
        dip_regulariser(mu, logvar, lambda_od=-1.0)
    with pytest.raises(ValueError, match="lambda_d"):
        dip_regulariser(mu, logvar, lambda_d=float("nan"))
    with pytest.raises(ValueError, match="differ in shape"):
        dip_regulariser(mu, logvar[:3])
    with pytest.raises(ValueError):
        permute_dims(torch.zeros(4))
    with pytest.raises(ValueError, match="batch, 2"):
        factor_tc_estimate(torch.zeros(4, 3))


@pytest.mark.parametrize("cls, kw, field", [
    (BetaTCVAE, {"estimator": "mws"}, "dataset_size"), (BetaTCVAE, {"dataset_size": 10}, "dataset_size"),
    (InfoVAE, {"alpha": -5.0, "lambda_": 1.0}, "lambda_"), (InfoVAE, {"alpha": 1.5}, "alpha"),
    (FSQAE, {"levels": (5, 1)}, "levels"), (FSQAE, {"latent_dim": 3}, "latent_dim"),
    (BetaVAE, {"capacity_max": -1.0}, "capacity_max"), (DIPVAE, {"lambda_d": -1.0}, "lambda_d"),
    (DIPVAE, {"kind": "iii"}, "kind"), (VAE, {"image_size": 48}, "image_size"),
])
def test_config_errors_name_the_field(cls, kw, field):
    with pytest.raises(ValueError, match=field):
        cls.config_class(**kw)


def test_published_defaults():
    """The defaults docs/methods/vae.md names, with their sources."""
    from diffrep.methods.vae import (AEConfig, BetaTCVAEConfig, BetaVAEConfig, DIPVAEConfig, FactorVAEConfig,
                                     FSQAEConfig, InfoVAEConfig, VAEConfig)

    for c in (AEConfig(), VAEConfig(), BetaVAEConfig(), BetaTCVAEConfig(), DIPVAEConfig(), FactorVAEConfig(),
              InfoVAEConfig()):
        assert (c.image_size, c.in_channels, c.latent_dim, c.decoder, c.bernoulli_offset, c.input_range) == \
            (64, 1, 10, "bernoulli", "none", "pm1")
        assert math.isclose(c.decoder_sigma ** 2, 0.5)
    b = BetaVAEConfig()
    assert (b.beta, b.capacity_max, b.capacity_gamma, b.capacity_steps) == (4.0, None, 1000.0, 100_000)
    t = BetaTCVAEConfig()
    assert (t.beta, t.estimator, t.dataset_size) == (6.0, "dlib", None)
    f = FactorVAEConfig()
    assert (f.gamma, f.disc_hidden, f.disc_layers, f.disc_lr, tuple(f.disc_betas)) == (40.0, 1000, 6, 1e-4, (0.5, 0.9))
    i = InfoVAEConfig()
    assert (i.alpha, i.lambda_, i.kernel, i.estimator) == (1.0, 1000.0, "rbf", "biased")
    d = DIPVAEConfig()
    assert (d.kind, d.lambda_od, d.lambda_d) == ("i", 10.0, None)
    q = FSQAEConfig()
    assert (q.latent_dim, q.levels, q.shift) == (0, (5,) * 10, "tan")
    assert FSQAE(FSQAEConfig(image_size=32)).code_dim == 10


def test_factor_discriminator_architecture_by_hand():
    from diffrep.methods.vae.factor_vae import FactorDiscriminator

    torch.manual_seed(0)
    disc = FactorDiscriminator(3, hidden=5, layers=2).double()
    lin = [m for m in disc.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(3, 5), (5, 5), (5, 2)]
    z = torch.randn(4, 3, dtype=torch.float64)
    h = z
    for m in lin[:-1]:
        a = h @ m.weight.T + m.bias
        h = torch.where(a > 0, a, 0.2 * a)
    torch.testing.assert_close(disc(z), h @ lin[-1].weight.T + lin[-1].bias)
    full = FactorVAE(FactorVAE.config_class(image_size=32))
    assert len([m for m in full.discriminator.modules() if isinstance(m, torch.nn.Linear)]) == 7
    assert full.discriminator.net[0].out_features == 1000 and full.discriminator.net[0].in_features == 10


def test_more_input_errors():
    z, mu, logvar = _tc_inputs()
    with pytest.raises(ValueError, match="at least 2"):
        mss_log_weights(1, 10)
    with pytest.raises(ValueError, match="at least the batch size"):
        mss_log_weights(5, 4)
    with pytest.raises(ValueError, match="dataset_size"):
        total_correlation(z, mu, logvar, estimator="mws", dataset_size=0)
    with pytest.raises(TypeError, match="mu must be"):
        total_correlation(z, [0.0], logvar)
    with pytest.raises(ValueError, match=r"z must be \[batch"):
        total_correlation(z[0], mu[0], logvar[0])
    with pytest.raises(TypeError, match="logvar must be"):
        dip_regulariser(mu, None)
    with pytest.raises(ValueError, match=r"mu must be \[batch"):
        dip_regulariser(mu[0], logvar[0])
    with pytest.raises(ValueError, match="lambda_d must be >= 0"):
        dip_regulariser(mu, logvar, lambda_d=-1.0)
    with pytest.raises(TypeError, match="generator"):
        permute_dims(z, generator=1)
    with pytest.raises(ValueError, match="logits_real"):
        discriminator_loss(torch.zeros(3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="logits_permuted"):
        discriminator_loss(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="differ in shape"):
        reconstruction_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 3))
    with pytest.raises(ValueError, match="bernoulli_offset"):
        reconstruction_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), bernoulli_offset="x")
    with pytest.raises(ValueError, match="decoder"):
        reconstruction_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), decoder="laplace")


def test_mss_with_two_examples_uses_the_stratified_weight():
    w = mss_log_weights(2, 10, dtype=torch.float64).exp()
    torch.testing.assert_close(w, torch.tensor([[0.1, 0.9], [0.9, 0.1]], dtype=torch.float64))


@pytest.mark.parametrize("cls, kw, keys", [
    (AE, {}, {"loss", "recon"}), (VAE, {}, {"loss", "recon", "kl"}), (BetaVAE, {}, {"loss", "recon", "kl"}),
    (BetaVAE, {"capacity_max": 3.0}, {"loss", "recon", "kl", "capacity"}),
    (BetaTCVAE, {}, {"loss", "recon", "kl", "tc"}), (DIPVAE, {}, {"loss", "recon", "kl", "dip"}),
    (InfoVAE, {}, {"loss", "recon", "kl", "mmd"}), (FSQAE, {}, {"loss", "recon"}),
    (FactorVAE, {"disc_hidden": 4, "disc_layers": 1}, {"loss", "disc_loss", "recon", "kl", "tc", "disc_accuracy"}),
])
def test_named_terms(cls, kw, keys):
    assert set(_loss(_model(cls, **kw), _x(n=3), step=1)) == keys


def test_discriminator_accuracy_by_hand():
    from diffrep.methods.vae.factor_vae import discriminator_accuracy

    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 1.0]])  # 3 of 4 called real
    perm = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # 1 of 2 called permuted
    assert math.isclose(float(discriminator_accuracy(real, perm)), 0.5 * (0.75 + 0.5))
    assert math.isclose(float(discriminator_accuracy(perm, real)), 0.5 * (0.5 + 0.25))


def test_factor_discriminator_defaults_and_small_batches():
    from diffrep.methods.vae.factor_vae import FactorDiscriminator

    lin = [m for m in FactorDiscriminator(4).modules() if isinstance(m, torch.nn.Linear)]
    assert len(lin) == 7 and lin[0].out_features == 1000 and lin[-1].out_features == 2
    out = _loss(_model(FactorVAE, disc_hidden=4, disc_layers=1), _x(n=2))  # a batch of 2 is enough
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("kernel, estimator", [("imq", "unbiased"), ("rbf", "unbiased"), ("imq", "biased")])
def test_info_vae_kernel_and_estimator_reach_the_op(kernel, estimator):
    model, x = _model(InfoVAE, kernel=kernel, estimator=estimator), _x(n=5)
    p = _parts(model, x)
    out = _loss(model, x)
    g = torch.Generator().manual_seed(SEED)
    torch.randn(p["mu"].shape, generator=g, dtype=torch.float64)
    prior = torch.randn(p["mu"].shape, generator=g, dtype=torch.float64)
    want = float(mmd2(p["z"], prior, kernel, estimator=estimator))
    assert math.isclose(float(out["mmd"]), want, rel_tol=1e-9)
    assert not math.isclose(want, float(mmd2(p["z"], prior)), rel_tol=1e-3)


def test_dip_vae_passes_its_lambdas():
    model, x = _model(DIPVAE, kind="ii", lambda_od=3.0, lambda_d=0.5), _x(n=5)
    p = _parts(model, x)
    assert math.isclose(float(_loss(model, x)["dip"]), _dip_ref(p["mu"], p["logvar"], "ii", 3.0, 0.5), rel_tol=1e-9)


@pytest.mark.parametrize("cls, kw", [
    (BetaVAE, {"capacity_max": 0.0}), (BetaVAE, {"capacity_max": 0.5}), (DIPVAE, {"lambda_d": 0.0}),
    (DIPVAE, {"lambda_d": 0.5}), (BetaTCVAE, {"estimator": "mws", "dataset_size": 2}),
    (InfoVAE, {"alpha": 0.5, "lambda_": 0.5}), (InfoVAE, {"alpha": 0.5, "lambda_": 1.2}),
    (InfoVAE, {"alpha": 0.0, "lambda_": 1.5}),
])
def test_config_boundaries_accepted(cls, kw):
    cls.config_class(**kw)


def test_info_vae_negative_mmd_weight_refused():
    with pytest.raises(ValueError, match="MMD weight"):
        InfoVAE.config_class(alpha=-0.5, lambda_=0.2)


def test_tc_keeps_the_input_dtype():
    z, mu, logvar = (t.float() for t in _tc_inputs())
    for est, n in (("mss", 50), ("mws", 50), ("dlib", None)):
        assert total_correlation(z, mu, logvar, estimator=est, dataset_size=n).dtype == torch.float32
    assert mss_log_weights(3, 10).dtype == torch.float32


@pytest.mark.parametrize("call, exc, msg", [
    (lambda a: dip_regulariser(a[1].long(), a[2]), TypeError, "^dip_regulariser: mu must be a floating-point tensor, got Tensor"),
    (lambda a: dip_regulariser(a[1], a[2][0]), ValueError, r"^dip_regulariser: logvar must be \[batch, latent_dim\], got shape \(3,\)"),
    (lambda a: dip_regulariser(a[1], a[2], kind="x"), ValueError, "^kind must be one of"),
    (lambda a: dip_regulariser(a[1], a[2], lambda_od=float("inf")), ValueError, "^lambda_od must be a finite"),
    (lambda a: dip_regulariser(a[1], a[2], lambda_d="1"), ValueError, "^lambda_d must be a finite"),
    (lambda a: dip_regulariser(a[1], a[2], lambda_d=-2.0), ValueError, "^lambda_d must be >= 0, got -2.0"),
    (lambda a: dip_regulariser(a[1], a[2], lambda_od=-2.0), ValueError, "^lambda_od must be >= 0, got -2.0"),
    (lambda a: total_correlation(a[0].long(), a[1], a[2]), TypeError, "^total_correlation: z must be a floating-point tensor, got Tensor"),
    (lambda a: total_correlation(a[0], a[1], a[2][0]), ValueError, r"^total_correlation: logvar must be \[batch, latent_dim\], got shape \(3,\)"),
    (lambda a: total_correlation(a[0], a[1], a[2], estimator="x"), ValueError, "^estimator must be one of"),
    (lambda a: total_correlation(a[0], a[1], a[2], estimator="mss", dataset_size=0), ValueError, "^dataset_size must be a positive int"),
    (lambda a: total_correlation(a[0], a[1], a[2], estimator="dlib", dataset_size=9), ValueError,
     r"^the 'dlib' estimator takes no dataset_size \(it drops the log\(N M\) constants\)$"),
    (lambda a: total_correlation(a[0], a[1], a[2], estimator="mws", dataset_size=4), ValueError, r"^dataset_size \(4\) must be at least the batch size \(5\)"),
    (lambda a: mss_log_weights(0, 3), ValueError, "^batch_size must be a positive int"),
    (lambda a: mss_log_weights(3, 0), ValueError, "^dataset_size must be a positive int"),
    (lambda a: mss_log_weights(1, 3), ValueError, "^the 'mss' estimator needs a batch of at least 2, got 1"),
    (lambda a: mss_log_weights(4, 3), ValueError, r"^dataset_size \(3\) must be at least the batch size \(4\)"),
    (lambda a: permute_dims(a[0][0]), ValueError, r"^permute_dims: z must be a \[batch, latent_dim\] tensor, got \(3,\)"),
    (lambda a: permute_dims([1.0]), ValueError, r"^permute_dims: z must be a \[batch, latent_dim\] tensor, got \(\)"),
    (lambda a: permute_dims(a[0], generator=2), TypeError, "^generator must be a torch.Generator or None, got int"),
    (lambda a: discriminator_loss(a[0][:, :2], a[0]), ValueError, r"^discriminator_loss: logits_permuted must be \[batch, 2\], got \(5, 3\)"),
    (lambda a: discriminator_loss(a[0], a[0][:, :2]), ValueError, r"^discriminator_loss: logits_real must be \[batch, 2\], got \(5, 3\)"),
    (lambda a: _model(FactorVAE, disc_hidden=4, disc_layers=1).loss(_x(n=1), step=0), ValueError,
     "^FactorVAE.loss: the permutation needs a batch of at least 2 images$"),
])
def test_error_messages(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call(_tc_inputs())


@pytest.mark.parametrize("cls, kw, field, text", [
    (BetaVAE, {"capacity_max": -1.0}, "capacity_max", "must be >= 0 (or None for the plain beta-VAE), got -1.0"),
    (BetaTCVAE, {"dataset_size": 5}, "dataset_size", "the 'dlib' estimator takes no dataset size"),
    (BetaTCVAE, {"estimator": "mss", "dataset_size": 1}, "dataset_size", "the 'mss' estimator needs the number of training images (>= 2), got 1"),
    (DIPVAE, {"lambda_d": -1.0}, "lambda_d", "must be >= 0 or None, got -1.0"),
    (InfoVAE, {"alpha": -0.5, "lambda_": 0.2}, "lambda_", "alpha + lambda - 1 (the MMD weight) must be >= 0, got -1.3"),
])
def test_config_error_texts(cls, kw, field, text):
    with pytest.raises(ValueError) as err:
        cls.config_class(**kw)
    assert err.value.field == field if hasattr(err.value, "field") else True
    assert text in str(err.value) and field in str(err.value)


def test_core_details_from_mutation_testing():
    """Each check kills a mutant that survived the value tests (benches/results/mutation_vae_2026-12-06.md)."""
    # binary targets: the entropy offset's clipping keeps it finite (0 * log 0 would be nan)
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    xb = (torch.rand(2, 1, 4, 4, generator=g, dtype=torch.float64) > 0.5).double()
    np.testing.assert_allclose(_np(reconstruction_loss(logits, xb, bernoulli_offset="entropy")),
                               _bce_ref(logits, xb, offset=True), rtol=1e-9)
    # the model passes bernoulli_offset on
    model, x = _model(VAE, bernoulli_offset="entropy"), _x()
    p = _parts(model, x)
    assert math.isclose(float(_loss(model, x)["recon"]), _bce_ref(p["logits"], p["x01"], offset=True).mean(), rel_tol=1e-10)
    # input_range "01": outputs are the decoder means themselves
    model = _model(VAE, input_range="01")
    x01 = (_x() + 1) / 2
    with torch.no_grad():
        torch.testing.assert_close(model.reconstruct(x01), torch.sigmoid(model.decoder(model.encoder(x01)[0])))
    for bad in (True, 1.5):
        with pytest.raises(ValueError, match="^VAE.loss: step must be a non-negative int or None"):
            model.loss(x01, step=bad)
    with pytest.raises(ValueError, match="^n must be a positive int"):
        model.sample(0)
    with pytest.raises(TypeError, match="^generator must be a torch.Generator or None, got int"):
        model.sample(2, generator=3)
    with pytest.raises(ValueError, match="^VAE.posterior: x"):
        model.posterior(torch.zeros(2, 1, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="^VAE.loss: batch"):
        model.loss(torch.zeros(2, 2, 32, 32, dtype=torch.float64), step=0)
    # FSQAE: its shift reaches the quantiser, its codes keep the model's dtype, its levels' bounds
    assert FSQAE(FSQAE.config_class(image_size=32, shift="atanh")).fsq.shift == "atanh"
    q = _model(FSQAE, levels=(2, 3))
    assert q.sample_codes(4, generator=torch.Generator().manual_seed(0)).dtype == torch.float64
    q32 = FSQAE(FSQAE.config_class(image_size=32, levels=(2, 3)))
    assert q32.sample_codes(4).dtype == torch.float32 and q32.sample(2).dtype == torch.float32
    with pytest.raises(ValueError, match="^n must be a positive int"):
        q.sample_codes(0)
    with pytest.raises(ValueError, match="^FSQAE.loss: batch"):
        q.loss(torch.zeros(2, 3, 32, 32, dtype=torch.float64), step=0)
    with pytest.raises(ValueError) as err:
        FSQAE.config_class(levels=(5, 1))
    assert err.value.field == "levels" and "every level must be >= 2 and there must be at least one, got (5, 1)" in str(err.value)
    with pytest.raises(ValueError) as err:
        FSQAE.config_class(latent_dim=3)
    assert err.value.field == "latent_dim" and "must be 0 or len(levels) = 10, got 3" in str(err.value)
    # FactorVAE builds the discriminator it is configured with
    f = FactorVAE(FactorVAE.config_class(image_size=32, disc_hidden=4, disc_layers=2))
    assert len([m for m in f.discriminator.modules() if isinstance(m, torch.nn.Linear)]) == 3
    # DIP: lambda_d = 0 is allowed, dip_covariance defaults to kind "i"
    _, mu, logvar = _tc_inputs(m=6, d=3, seed=1)
    assert math.isclose(float(dip_regulariser(mu, logvar, lambda_od=2.0, lambda_d=0.0)), _dip_ref(mu, logvar, "i", 2.0, 0.0))
    from diffrep.methods.vae import dip_covariance
    torch.testing.assert_close(dip_covariance(mu, logvar), dip_covariance(mu, logvar, kind="i"))
    assert not torch.allclose(dip_covariance(mu, logvar), dip_covariance(mu, logvar, kind="ii"))
    # total_correlation defaults to "mws"
    z = mu + 0.1
    assert float(total_correlation(z, mu, logvar, dataset_size=30)) == float(
        total_correlation(z, mu, logvar, estimator="mws", dataset_size=30))
    with pytest.raises(ValueError) as err:
        BetaTCVAE.config_class(dataset_size=5)
    assert str(err.value).endswith("the 'dlib' estimator takes no dataset size")
