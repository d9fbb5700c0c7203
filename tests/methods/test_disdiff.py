"""DisDiff (docs/methods/disdiff.md): coefficients, the prediction, the losses on hand-made cases,
stages, save/load and the LDM setting."""

import math

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.disdiff import DisDiff, DisDiffConfig, shift_coefficients
from diffrep.nn.vq import VQAutoencoderConfig
from helpers import disdiff_draws, disdiff_images as _images, pdae_shift_coef, tiny_disdiff as _model, untrained_on_purpose


def test_shift_coefficients_equal_the_formulas():
    m = _model()
    s = m.schedule
    beta = s.betas.double()
    alpha = 1 - beta
    ab = torch.cumprod(alpha, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    post_var = beta * (1 - ab_prev) / (1 - ab)
    shift, guide = shift_coefficients(s)
    # PDAE's mean shift by the posterior variance, written as an eps shift
    torch.testing.assert_close(shift, -alpha.sqrt() * (1 - ab).sqrt() / beta * post_var, rtol=1e-12, atol=0)
    torch.testing.assert_close(guide, -(1 - ab).sqrt(), rtol=0, atol=0)
    # the LDM-linear schedule of the DisDiff configs: beta_1 = 0.0015
    assert abs(beta[0].item() - 0.0015) < 1e-12
    assert shift[0].item() == 0.0  # abar_{-1} = 1: no shift at the first step


def test_x0_from_the_shifted_prediction_matches_the_closed_form():
    m = _model()
    x = m.to_diffusion_space(_images())
    t = torch.tensor([0, 10, 500, 999])
    x_t = m.schedule.q_sample(x, t, torch.randn_like(x))
    units = m.encode_units(_images())
    eps, g = m.predict(x_t, t, units)
    G = g.sum(1)
    ab = m.schedule.alphas_cumprod.double()[t][:, None, None, None]
    got = m.schedule.eps_to_x0(x_t, t, m.eps_with_units(x_t, t, units))
    want = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt() + (1 - ab) / ab.sqrt() * G
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert (G.abs().max() > 1e-4)


def test_reconstruction_loss_is_the_pdae_prediction_error():
    m = _model(dis_weight=0.0)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(4))
    _, t, noise, x_t = disdiff_draws(m, x, 4)
    eps, G = m.predict(x_t, t, m.encode_units(x))
    coef = pdae_shift_coef(m.schedule, t)
    want = (eps + coef * G.sum(1) - noise).pow(2).mean()
    torch.testing.assert_close(out["loss"], want, rtol=1e-6, atol=0)
    assert "disentangling" not in out


def test_disentangling_loss_on_a_hand_made_case():
    """Two units of one dimension each; the re-encoder reads unit k as the mean of channel k of x0."""
    m = _model(num_units=2, unit_dim=1, encoder=DisDiffConfig().encoder.__class__(
        image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, latent_dim=2,
        act="silu", bias=True, num_groups=8, variance_head="logvar"), dis_sample_weight="none")
    m._reencode = lambda x0, grad: x0.mean(dim=(2, 3))[:, :2, None]
    t = torch.tensor([300])
    ab = m.schedule.alphas_cumprod.double()[300]
    x_t = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    eps = torch.zeros_like(x_t)  # x0_hat = 0: E(x0_hat) = (0, 0)
    units = torch.tensor([[[1.0], [2.0]]], dtype=torch.float64)  # the clean image's codes z = (1, 2)
    g = torch.zeros_like(x_t)
    g[:, 0] = 1.0  # shifting unit 0 moves channel 0 of x0_hat by (1 - abar)/sqrt(abar)
    delta = ((1 - ab) / ab.sqrt()).item()
    # E(x0_hat^c) = (delta, 0); variant logits |0 - z| - |E^c - z| = (1 - |delta - 1|, 0); invariant (delta, 0)
    lv = torch.tensor([1 - abs(delta - 1), 0.0], dtype=torch.float64)
    li = torch.tensor([delta, 0.0], dtype=torch.float64)
    for c in (0, 1):
        got = m.disentangling_loss(x_t, t, eps, g, units, torch.tensor([c]))
        want = -(lv[c] - torch.logsumexp(lv, 0)) - (li[c] - torch.logsumexp(li, 0))
        torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    # the shift that moved unit 0 is cheaper when unit 0 was the sampled concept
    assert m.disentangling_loss(x_t, t, eps, g, units, torch.tensor([0])) < m.disentangling_loss(x_t, t, eps, g, units, torch.tensor([1]))
    # the per-example weight: mean squared difference of the two x0 predictions
    m.config.dis_sample_weight = "latent"
    w = (delta ** 2) * (1 / 3)  # channel 0 of 3 moved by delta
    got = m.disentangling_loss(x_t, t, eps, g, units, torch.tensor([0]))
    want = w * (-(lv[0] - torch.logsumexp(lv, 0)) - (li[0] - torch.logsumexp(li, 0)))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    assert math.isfinite(got.item())


def test_total_loss_uses_the_paper_weight_and_the_code_compat():
    x = _images()
    m = _model()
    assert m.config.effective_dis_weight == 0.05
    full = m.loss(x, step=0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(full["loss"], full["reconstruction"] + 0.05 * full["disentangling"], rtol=1e-12, atol=0)
    m.config.compat_cli_weight = True
    full = m.loss(x, step=0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(full["loss"], full["reconstruction"] + 1.0 * full["disentangling"], rtol=1e-12, atol=0)
    assert full["disentangling"] > 0


def test_gradients_flow_to_the_encoder_and_shift_decoder_not_the_frozen_model():
    m = _model(dis_weight=1.0)
    m.loss(_images(), step=0)["loss"].backward()
    assert all(p.grad is None for p in m.unet.parameters())
    assert m.encoder.mean_head[-1].weight.grad.abs().sum() > 0
    assert m.shift.out[-1].weight.grad.abs().sum() > 0 and m.part_latents.grad.abs().sum() > 0
    m.set_stage("pretrain")
    m.zero_grad(set_to_none=True)
    m.loss(_images(), step=0)["loss"].backward()
    assert m.unet.out[-1].weight.grad is not None and m.encoder.mean_head[-1].weight.grad is None


def test_each_shift_reads_its_own_unit_and_part_embeddings_are_orthogonal():
    m = _model()
    x = _images(2)
    t = torch.tensor([100, 700])
    x_t = m.schedule.q_sample(x, t, torch.randn_like(x))
    u = m.encode_units(x)
    _, g = m.predict(x_t, t, u)
    u2 = u.clone()
    u2[:, 1] += 1.0
    _, g2 = m.predict(x_t, t, u2)
    torch.testing.assert_close(g2[:, 0], g[:, 0], rtol=0, atol=1e-12)
    assert (g2[:, 1] - g[:, 1]).abs().max() > 1e-6
    # selecting units evaluates the same shifts
    which = torch.tensor([[True, False, False, True], [False, True, False, False]])
    _, gs = m.predict(x_t, t, u, which)
    torch.testing.assert_close(gs[which], g[which], rtol=0, atol=1e-12)
    assert gs[~which].abs().max() == 0
    w = m.part_latents
    P = torch.linalg.matrix_exp(w - w.T)
    torch.testing.assert_close(P @ P.T, torch.eye(P.shape[0], dtype=P.dtype), rtol=0, atol=1e-9)


def test_encode_is_pca_per_unit_and_verbs(tmp_path):
    m = untrained_on_purpose(DisDiff(DisDiffConfig(sample_steps=3)))
    x = _images(6).float()
    with pytest.raises(ValueError, match="fit_code_pca"):
        m.encode(x)
    m.fit_code_pca(x)
    from diffrep.metrics.pca import pca1_units
    torch.testing.assert_close(m.encode(x).double(), pca1_units(m.encode_units(x)), rtol=1e-5, atol=1e-5)
    assert m.swap(x[:2], x[2:4], 1).shape == (2, 3, 16, 16)
    assert m.traverse(x[:2], 0, [-1.0, 1.0]).shape == (2, 2, 3, 16, 16)
    assert m.reconstruct(x[:2]).shape == (2, 3, 16, 16) and m.sample(2).shape == (2, 3, 16, 16)
    m.save_pretrained(tmp_path)
    m2 = DisDiff.from_pretrained(tmp_path)
    torch.testing.assert_close(m2.encode(x), m.encode(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unit must"):
        m.swap(x[:2], x[2:4], 9)


def test_config_errors_and_the_ldm_setting():
    with pytest.raises(ConfigError, match="encoder.latent_dim"):
        DisDiffConfig(num_units=3)
    with pytest.raises(ConfigError, match="orthogonal"):
        DisDiffConfig(num_units=40, unit_dim=1, encoder=DisDiffConfig().encoder.__class__(
            image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, latent_dim=40,
            num_groups=8, variance_head="logvar"))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, embed_dim=3, z_channels=3,
                             n_embed=16, num_groups=4)
    base = DisDiffConfig()
    unet = base.unet.__class__(**{**base.unet.to_dict(), "image_size": 8}) if hasattr(base.unet, "to_dict") else None
    if unet is None:
        import dataclasses
        unet = dataclasses.replace(base.unet, image_size=8)
    cfg = DisDiffConfig(first_stage=vq, unet=unet, sample_steps=2)
    m = untrained_on_purpose(DisDiff(cfg))
    x = _images(2).float()
    out = m.loss(x, step=0)
    out["loss"].backward()
    assert all(p.grad is None for p in m.first_stage.parameters())
    assert m.reconstruct(x).shape == x.shape
    with pytest.raises(ConfigError, match="VQ latent"):
        DisDiffConfig(first_stage=vq)


def test_one_run_pretrains_then_disentangles():
    m = _model(pretrain_steps=3)
    x = _images()
    assert all(p.requires_grad for p in m.unet.parameters())
    early = m.loss(x, step=2, generator=torch.Generator().manual_seed(0))
    _, t, noise, x_t = disdiff_draws(m, x, 0)
    torch.testing.assert_close(early["loss"], (m.unet(x_t, t) - noise).pow(2).mean(),
                               rtol=1e-12, atol=0)
    early["loss"].backward()
    assert m.unet.out[-1].weight.grad is not None and m.encoder.mean_head[-1].weight.grad is None
    m.zero_grad(set_to_none=True)
    late = m.loss(x, step=3)
    assert "reconstruction" in late
    late["loss"].backward()
    assert all(p.grad is None for p in m.unet.parameters()) and m.encoder.mean_head[-1].weight.grad is not None


def test_code_pca_needs_two_images_and_units_must_be_a_tensor():
    m = untrained_on_purpose(DisDiff(DisDiffConfig(sample_steps=2)))
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with pytest.raises(ValueError, match="fit_code_pca needs at least 2 images, got 1"):  # fitted an arbitrary axis
        m.fit_code_pca(x[:1])
    assert not bool(m.pca_fitted)
    m.fit_code_pca(x[:2])  # two images: the component is the direction between their units
    u = m.encode_units(x[:2]).double()
    d = u[1] - u[0]
    comp = m.pca_components.double()
    torch.testing.assert_close((comp * d).sum(-1).abs(), d.norm(dim=-1), rtol=1e-4, atol=1e-6)
    with pytest.raises(TypeError, match=r"units must be a tensor \[B, 4, 8\], got list"):  # was "shape [0, 4, 8], got None"
        m.decode([[0.0] * 8] * 4, num_steps=2)


def test_disentangling_loss_checks_its_inputs():
    """A public method: a unit index out of range was torch's "Target 9 is out of bounds" from the cross-entropy."""
    m = _model()
    x = _images(2)
    t = torch.tensor([10, 500])
    eps, units = torch.zeros_like(x), m.encode_units(x)
    ok = m.disentangling_loss(x, t, eps, eps, units, torch.tensor([0, 3]))
    assert ok.dim() == 0 and math.isfinite(ok.item())
    for concept in (torch.tensor([0, 4]), torch.tensor([-1, 0]), torch.tensor([0.0, 1.0]), torch.tensor([0]), [0, 1]):
        with pytest.raises(ValueError, match=r"DisDiff.disentangling_loss: concept must be an integer tensor \[2\] "
                                             r"of units in \[0, 4\)"):
            m.disentangling_loss(x, t, eps, eps, units, concept)
    with pytest.raises(ValueError, match=r"DisDiff.disentangling_loss: g_c must have shape \(2, 3, 16, 16\)"):
        m.disentangling_loss(x, t, eps, eps[:, :1], units, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"DisDiff.disentangling_loss: eps holds NaN"):
        m.disentangling_loss(x, t, eps * float("nan"), eps, units, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"^DisDiff.disentangling_loss: t must have shape \[2\]"):
        m.disentangling_loss(x, t[:1], eps, eps, units, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"units must have shape \[2, 4, 8\]"):
        m.disentangling_loss(x, t, eps, eps, units[:, :3], torch.tensor([0, 1]))


def test_disentangling_loss_reports_the_concept_it_refused_and_casts_its_inputs():
    m = _model()
    x = _images(2)
    t = torch.tensor([10, 500])
    eps, units = torch.zeros_like(x), m.encode_units(x)
    msg = r"^DisDiff.disentangling_loss: concept must be an integer tensor \[2\] of units in \[0, 4\), got "
    for concept, got in ((torch.tensor([0, 4]), r"\[0, 4\]$"), ([0, 1], "list$"), (torch.arange(8) % 4, r"\[0, 1, 2, 3, 0, 1, 2, 3\]$"),
                         (torch.arange(9) % 4, "Tensor$")):  # up to 8 values are listed, a longer tensor is named
        with pytest.raises(ValueError, match=msg + got):
            m.disentangling_loss(x, t, eps, eps, units, concept)
    m, x = m.float(), x.float()  # a float32 model: float64 eps / g_c are rounded to x_t's dtype
    units = m.encode_units(x)
    e64, g64 = torch.randn((2,) + x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = m.disentangling_loss(x, t, e64.float(), g64.float(), units, torch.tensor([0, 3]))
    assert want.dtype == torch.float32
    # int32 units (cross_entropy wants int64 targets) and float64 eps / g_c give the float32 inputs' value
    got = m.disentangling_loss(x, t, e64, g64, units, torch.tensor([0, 3], dtype=torch.int32))
    torch.testing.assert_close(got, want, rtol=0, atol=0)

