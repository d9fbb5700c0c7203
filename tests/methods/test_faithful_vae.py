"""Faithfulness checks of the VAE-family baselines against the papers and disentanglement_lib, with
hand-derived values (docs/methods/vae.md). Independent of tests/methods/test_vae_objectives.py."""

from __future__ import annotations

import math

import torch

from diffrep.methods.vae import VAE, VAEConfig, reconstruction_loss


def _tiny(cls=VAE, **kw):
    torch.manual_seed(0)
    return cls(cls.config_class(image_size=32, **kw)).double()


# -- the Bernoulli likelihood ------------------------------------------------------------------
def test_bernoulli_default_is_the_plain_cross_entropy_of_disentanglement_lib():
    """dlib ``bernoulli_loss(subtract_true_image_entropy=False)`` (the default its unsupervised study
    keeps): logits 0 give ln 2 per pixel whatever the target; x = 1/2 would give 0 with the entropy
    offset, so the default must not subtract it (it did before 2026-12-07)."""
    d = 1 * 4 * 4
    logits = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    x_half = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    torch.testing.assert_close(reconstruction_loss(logits, x_half), torch.full((2,), d * math.log(2), dtype=torch.float64))
    # the option keeps dlib's lower bound: ln 2 - H(1/2) = 0 per pixel
    torch.testing.assert_close(reconstruction_loss(logits, x_half, bernoulli_offset="entropy"),
                               torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    assert VAEConfig().bernoulli_offset == "none"


def test_model_recon_is_the_per_image_sum_averaged_over_the_batch():
    """recon = mean_b sum_pixels BCE(logits, x) (dlib: reduce_sum over pixels, reduce_mean over the batch)."""
    m = _tiny(VAE)
    for p in m.decoder.parameters():  # the decoder outputs logits 0 everywhere
        torch.nn.init.zeros_(p)
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(2))
    assert math.isclose(float(out["recon"]), 32 * 32 * math.log(2), rel_tol=1e-12)


# -- the networks ----------------------------------------------------------------------------
def test_encoder_is_dlib_conv_encoder_with_2x2_third_and_fourth_convs():
    """disentanglement_lib ``conv_encoder``: conv 4x4/2 32, 4x4/2 32, 2x2/2 64, 2x2/2 64 ("same"), FC 256,
    two dense heads of 10. Parameter count by hand: 544 + 16,416 + 8,256 + 16,448 + 262,400 + 5,140."""
    from diffrep.methods.vae import BetaVAE
    m = BetaVAE(BetaVAE.config_class())
    convs = [c for c in m.encoder.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 32, (4, 4), (2, 2), (1, 1)), (32, 32, (4, 4), (2, 2), (1, 1)),
        (32, 64, (2, 2), (2, 2), (0, 0)), (64, 64, (2, 2), (2, 2), (0, 0))]
    n = (1 * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 64 * 4 + 64) + (64 * 64 * 4 + 64) + (1024 * 256 + 256) + 2 * (256 * 10 + 10)
    assert sum(p.numel() for p in m.encoder.parameters()) == n == 309_204
    # the decoder: dense 256, dense 1024, four 4x4/2 transposed convs 64, 32, 32, C
    dec = [c for c in m.decoder.modules() if isinstance(c, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in dec] == [(64, 64, (4, 4)), (64, 32, (4, 4)),
                                                                            (32, 32, (4, 4)), (32, 1, (4, 4))]
    # a 2x2 stride-2 conv without padding is a sum over disjoint 2x2 blocks: check one output by hand
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h = m.encoder.convs[:5](x)  # conv1 relu conv2 relu conv3 -> [1, 64, 8, 8]
        h2 = m.encoder.convs[:4](x)
        w, b = convs[2].weight, convs[2].bias
        want = (w[5] * h2[0, :, 2:4, 6:8]).sum() + b[5]
    assert h.shape == (1, 64, 8, 8)
    torch.testing.assert_close(h[0, 5, 1, 3], want, rtol=1e-5, atol=1e-6)


def test_old_4x4_encoder_is_an_option():
    from diffrep.methods.vae import BetaVAE
    m = BetaVAE(BetaVAE.config_class(conv_kernels=(4, 4, 4, 4), image_size=32))
    convs = [c for c in m.encoder.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 3
    import pytest
    from diffrep.config import ConfigError
    for bad in ((4, 4, 3, 2), (4, 4, 2), (4, 4, 2, 0)):
        with pytest.raises(ConfigError, match="conv_kernels"):
            BetaVAE(BetaVAE.config_class(conv_kernels=bad))


def test_gaussian_decoder_with_dlib_sigma_is_sum_of_squares_plus_the_normal_constant():
    """sigma^2 = 1/2: NLL = sum (x - sigmoid(l))^2 + D/2 log(2 pi / 2) (dlib ``l2_loss`` plus the constant)."""
    logits = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    x = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]], dtype=torch.float64)
    want = (0 + 0 + 0.25 + 0.25) + 4 * 0.5 * math.log(math.pi)
    assert math.isclose(float(reconstruction_loss(logits, x, decoder="gaussian")), want, rel_tol=1e-12)


def test_encode_is_the_posterior_mean_not_a_sample():
    m = _tiny(VAE)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        mu, logvar = m.encoder((x + 1) / 2)
        torch.testing.assert_close(m.encode(x), mu, rtol=0, atol=0)
        torch.testing.assert_close(m.reconstruct(x), torch.sigmoid(m.decoder(mu)) * 2 - 1, rtol=0, atol=0)


# -- total correlation (Chen et al. 2018, App. C) -------------------------------------------------
def _log_normal(z, mu, logvar):
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / math.exp(logvar))


def test_minibatch_stratified_sampling_by_the_papers_f():
    """Chen et al. App. C.2 with a batch {n*, n_1..n_Mp} (Mp = M - 1):
    f(z) = q(z|n*)/N + sum_{m<Mp} q(z|n_m)/Mp + (N - Mp)/(N Mp) q(z|n_Mp); here n_Mp is the cyclically
    next example. M = 3 examples, d = 2, N = 10; plain-Python sums, no tensors."""
    from diffrep.methods.vae import total_correlation
    z = [[0.3, -1.0], [1.2, 0.4], [-0.7, 0.9]]
    mu = [[0.1, -0.8], [1.0, 0.0], [-0.5, 1.1]]
    lv = [[-0.2, 0.3], [0.1, -0.4], [0.0, 0.2]]
    N, M = 10, 3
    Mp = M - 1

    def w(i, j):
        if i == j:
            return 1 / N
        if j == (i + 1) % M:
            return (N - Mp) / (N * Mp)
        return 1 / Mp

    tc = 0.0
    for i in range(M):
        qz = sum(w(i, j) * math.exp(sum(_log_normal(z[i][k], mu[j][k], lv[j][k]) for k in range(2))) for j in range(M))
        prod = 1.0
        for k in range(2):
            prod *= sum(w(i, j) * math.exp(_log_normal(z[i][k], mu[j][k], lv[j][k])) for j in range(M))
        tc += (math.log(qz) - math.log(prod)) / M
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    got = total_correlation(t(z), t(mu), t(lv), estimator="mss", dataset_size=N)
    assert math.isclose(float(got), tc, rel_tol=1e-12)
    # minibatch-weighted sampling (App. C.1): every weight 1/(N M)
    tc_mws = 0.0
    for i in range(M):
        qz = sum(math.exp(sum(_log_normal(z[i][k], mu[j][k], lv[j][k]) for k in range(2))) for j in range(M)) / (N * M)
        prod = 1.0
        for k in range(2):
            prod *= sum(math.exp(_log_normal(z[i][k], mu[j][k], lv[j][k])) for j in range(M)) / (N * M)
        tc_mws += (math.log(qz) - math.log(prod)) / M
    assert math.isclose(float(total_correlation(t(z), t(mu), t(lv), estimator="mws", dataset_size=N)), tc_mws, rel_tol=1e-12)
    # disentanglement_lib's form drops log(N M) from each of the d + 1 sums: mws - (d - 1) log(N M)
    assert math.isclose(float(total_correlation(t(z), t(mu), t(lv), estimator="dlib")), tc_mws - math.log(N * M), rel_tol=1e-12)


# -- DIP-VAE (Kumar et al. 2018, Eqs. 6-7) ---------------------------------------------------------
def test_dip_penalties_on_hand_made_means():
    """mu = (+-1, 0), (0, +-2): Cov[mu] = diag(1/2, 2) (biased, mean 0).
    DIP-I, lambda_od 10, lambda_d = 10 lambda_od = 100: 100 ((1/2 - 1)^2 + (2 - 1)^2) = 125.
    DIP-II with sigma^2 = 1/2 everywhere: C = diag(1, 5/2), lambda_d = lambda_od = 10: 10 (0 + 9/4) = 22.5.
    mu = (1, 1), (-1, -1): Cov = [[1, 1], [1, 1]]: DIP-I 10 (1 + 1) + 100 (0 + 0) = 20."""
    from diffrep.methods.vae import dip_regulariser
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    lv = torch.full_like(mu, math.log(0.5))
    assert math.isclose(float(dip_regulariser(mu, lv, kind="i", lambda_od=10.0)), 125.0, rel_tol=1e-12)
    assert math.isclose(float(dip_regulariser(mu, lv, kind="ii", lambda_od=10.0)), 22.5, rel_tol=1e-12)
    mu2 = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    assert math.isclose(float(dip_regulariser(mu2, torch.zeros_like(mu2), kind="i", lambda_od=10.0)), 20.0, rel_tol=1e-12)


# -- FactorVAE (Kim & Mnih 2018, Eq. 3 and Alg. 2) --------------------------------------------------
def test_factor_vae_ratio_and_discriminator_loss_by_hand():
    """D(z) = softmax(logits)[0] = P(z from q(z)); TC ~ mean log D/(1-D) = mean (l0 - l1).
    Discriminator: minimise -(1/2)(mean log D(z) + mean log(1 - D(perm z)))."""
    from diffrep.methods.vae import discriminator_loss, factor_tc_estimate
    real = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    perm = torch.tensor([[0.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    assert math.isclose(float(factor_tc_estimate(real)), (2.0 + -1.0) / 2, rel_tol=1e-12)
    d_real = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    d_perm = [1 / (1 + math.exp(3.0)), 0.5]
    want = -0.5 * (sum(math.log(p) for p in d_real) / 2 + sum(math.log(1 - p) for p in d_perm) / 2)
    assert math.isclose(float(discriminator_loss(real, perm)), want, rel_tol=1e-12)


# -- InfoVAE (Zhao et al. 2019, Eq. 6; MMD-VAE's kernel) -------------------------------------------
def test_info_vae_weights_and_the_kernel_bandwidth():
    """loss = recon + (1 - alpha) KL + (alpha + lambda - 1) MMD; kernel exp(-|a - b|^2 / d^2):
    one point each at (0, 0) and (1, 1) in d = 2: MMD^2 = 2 - 2 exp(-2 / 4)."""
    from diffrep.methods.vae import InfoVAE
    from diffrep.ops.mmd import mmd2
    a = torch.zeros(1, 2, dtype=torch.float64)
    b = torch.ones(1, 2, dtype=torch.float64)
    assert math.isclose(float(mmd2(a, b, "rbf", estimator="biased")), 2 - 2 * math.exp(-0.5), rel_tol=1e-12)
    m = _tiny(InfoVAE, alpha=0.25, lambda_=3.0)
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 2 - 1
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    want = float(out["recon"]) + 0.75 * float(out["kl"]) + 2.25 * float(out["mmd"])
    assert math.isclose(float(out["loss"].detach()), want, rel_tol=1e-12)


# -- beta-VAE, annealed VAE, beta-TCVAE ----------------------------------------------------------------
def test_weights_of_the_kl_family():
    """beta-VAE: recon + beta KL (Higgins Eq. 4); annealed: recon + gamma |KL - C|, C = C_max step / steps
    (Burgess Eq. 8, dlib ``anneal``); beta-TCVAE: recon + KL + (beta - 1) TC (Chen Eq. 2, alpha = gamma = 1)."""
    from diffrep.methods.vae import BetaTCVAE, BetaVAE
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * 2 - 1
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    o = _tiny(BetaVAE, beta=3.0).loss(x, step=0, generator=g())
    assert math.isclose(float(o["loss"].detach()), float(o["recon"]) + 3.0 * float(o["kl"]), rel_tol=1e-12)
    o = _tiny(BetaVAE, capacity_max=20.0, capacity_gamma=7.0, capacity_steps=400).loss(x, step=100, generator=g())
    assert o["capacity"] == 5.0
    assert math.isclose(float(o["loss"].detach()), float(o["recon"]) + 7.0 * abs(float(o["kl"]) - 5.0), rel_tol=1e-12)
    o = _tiny(BetaVAE, capacity_max=20.0, capacity_steps=400).loss(x, step=1000, generator=g())
    assert o["capacity"] == 20.0
    o = _tiny(BetaTCVAE, beta=4.0).loss(x, step=0, generator=g())
    assert math.isclose(float(o["loss"].detach()), float(o["recon"]) + float(o["kl"]) + 3.0 * float(o["tc"]), rel_tol=1e-12)


# -- FSQ (Mentzer et al. 2023, Sec. 3 and App. A.1) ------------------------------------------------
def test_fsq_levels_even_and_odd_by_hand():
    """L = 5: codes {-1, -1/2, 0, 1/2, 1}; L = 4 (offset 1/2, half width 2): {-1, -1/2, 0, 1/2}; large |z|
    reach the ends; the gradient is the bound's (straight-through): h (1 - tanh^2(z + shift))."""
    from diffrep.nn.fsq import FSQ
    f = FSQ([5, 4])
    z = torch.tensor([[-30.0, -30.0], [0.0, 0.0], [30.0, 30.0]], dtype=torch.float64, requires_grad=True)
    q = f(z)
    torch.testing.assert_close(q.detach(), torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 0.5]], dtype=torch.float64))
    assert sorted(set(f.codebook(torch.float64)[:, 1].tolist())) == [-1.0, -0.5, 0.0, 0.5]
    assert sorted(set(f.codebook(torch.float64)[:, 0].tolist())) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    zz = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    f(zz).sum().backward()
    h5, h4 = 4 * 0.999 / 2, 3 * 0.999 / 2
    s4 = math.tan(0.5 / h4)
    want = [h5 * (1 - math.tanh(0.3) ** 2) / 2, h4 * (1 - math.tanh(-0.2 + s4) ** 2) / 2]
    torch.testing.assert_close(zz.grad[0], torch.tensor(want, dtype=torch.float64), rtol=1e-12, atol=0)


# -- details that mutation testing showed the checks above leave open -----------------------------
def test_gaussian_nll_with_another_sigma_and_per_example_sums():
    """sigma = 1/4 (var 1/16): per example sum sq / (2/16) + D/2 log(2 pi / 16); two examples kept apart
    (with dlib's sigma^2 = 1/2 dividing and multiplying by 2 sigma^2 coincide)."""
    logits = torch.zeros(2, 1, 1, 2, dtype=torch.float64)
    x = torch.tensor([[[[1.0, 0.5]]], [[[0.0, 0.0]]]], dtype=torch.float64)
    c = 2 * 0.5 * math.log(2 * math.pi / 16)
    want = torch.tensor([0.25 * 8 + c, 0.5 * 8 + c], dtype=torch.float64)
    torch.testing.assert_close(reconstruction_loss(logits, x, decoder="gaussian", decoder_sigma=0.25), want,
                               rtol=1e-12, atol=0)


def test_entropy_option_clips_binary_targets_at_1e6():
    """H(Bernoulli(p)) with p clipped to [1e-6, 1 - 1e-6]: a binary pixel's offset is
    -(1e-6 ln 1e-6 + (1 - 1e-6) ln(1 - 1e-6)) (dlib ``tf.clip_by_value(true_images, 1e-6, 1 - 1e-6)``)."""
    logits = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    x = torch.tensor([[[[0.0, 1.0]]]], dtype=torch.float64)
    h = -(1e-6 * math.log(1e-6) + (1 - 1e-6) * math.log1p(-1e-6))
    got = reconstruction_loss(logits, x, bernoulli_offset="entropy")
    assert math.isclose(float(got[0]), 2 * math.log(2) - 2 * h, rel_tol=1e-12)


def test_closed_form_kl_is_summed_over_latents_and_averaged_over_the_batch():
    """KL = 1/2 sum_k (mu^2 + sigma^2 - log sigma^2 - 1): rows (1, 0 | log var 0, ln 2) -> 1/2 + (1 - ln 2)/2,
    and (0, 0 | 0, 0) -> 0; the batch mean is half of the first."""
    from diffrep.methods.vae.core import VAEBase
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    lv = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]], dtype=torch.float64)
    assert math.isclose(float(VAEBase._kl(mu, lv)), (0.5 + 0.5 * (1 - math.log(2))) / 2, rel_tol=1e-12)


def test_reparameterised_sample_and_generator_draws():
    """z = mu + exp(logvar / 2) eps with eps the generator's first standard normals (Kingma & Welling Eq. 10)."""
    m = _tiny(VAE, latent_dim=4)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(11), dtype=torch.float64) * 2 - 1
    parts = m._forward_parts(x, torch.Generator().manual_seed(12))
    eps = torch.randn(2, 4, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    with torch.no_grad():
        mu, lv = m.encoder((x + 1) / 2)
    assert mu.shape == (2, 4)
    torch.testing.assert_close(parts["z"].detach(), mu + torch.exp(0.5 * lv) * eps, rtol=1e-12, atol=0)
    a = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))["loss"].detach()
    b = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))["loss"].detach()
    assert float(a) == float(b)


def test_dip_with_a_non_zero_mean_and_off_diagonal_two():
    """mu = (0), (4): Cov = E[mu^2] - E[mu]^2 = 8 - 4 = 4 -> DIP-I (defaults lambda_od 10, lambda_d 100):
    100 (4 - 1)^2 = 900. mu = (2, 2), (-2, -2): Cov = [[4, 4], [4, 4]] -> 10 (16 + 16) + 100 (9 + 9) = 2120."""
    from diffrep.methods.vae import dip_regulariser
    mu = torch.tensor([[0.0], [4.0]], dtype=torch.float64)
    assert math.isclose(float(dip_regulariser(mu, torch.zeros_like(mu))), 900.0, rel_tol=1e-12)
    mu2 = torch.tensor([[2.0, 2.0], [-2.0, -2.0]], dtype=torch.float64)
    assert math.isclose(float(dip_regulariser(mu2, torch.zeros_like(mu2))), 2120.0, rel_tol=1e-12)
