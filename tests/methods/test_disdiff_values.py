"""DisDiff (docs/methods/disdiff.md): values of the options and verbs the core tests leave open (the L1
error, the LDM scaling, the part-embedding variants, the image-space weight, the encoder-gradient
switch, the stages' frozen parts, swap and traversal codes, the config checks)."""

import dataclasses

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGAConfig
from diffrep.nn.vq import VQAutoencoderConfig
from helpers import disdiff_draws, disdiff_images as _images, pdae_shift_coef, tiny_disdiff as _model


def _ldm(**kw):
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, embed_dim=3, z_channels=3,
                             n_embed=16, num_groups=4)
    unet = dataclasses.replace(DisDiffConfig().unet, image_size=8)
    return _model(first_stage=vq, unet=unet, sample_steps=2, **kw)


def test_l1_error_in_both_stages():
    x = _images()
    m = _model(recon_loss="l1", dis_weight=0.0)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    _, t, noise, x_t = disdiff_draws(m, x, 3)
    eps, g = m.predict(x_t, t, m.encode_units(x))
    coef = pdae_shift_coef(m.schedule, t)
    torch.testing.assert_close(out["loss"], (eps + coef * g.sum(1) - noise).abs().mean(), rtol=1e-10, atol=0)
    m.set_stage("pretrain")
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out["loss"], (m.unet(x_t, t) - noise).abs().mean(), rtol=1e-10, atol=0)
    torch.testing.assert_close(out["diffusion"], out["loss"].detach(), rtol=0, atol=0)


def test_ldm_latent_scale_enters_both_directions():
    m = _ldm(latent_scale=0.5)
    x = _images(2)
    with torch.no_grad():
        z = m.first_stage.encode(x)
        torch.testing.assert_close(m.to_diffusion_space(x), 0.5 * z, rtol=0, atol=0)
        torch.testing.assert_close(m.to_images(0.5 * z, quantize=False), m.first_stage.decode(z, quantize=False),
                                   rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(m.to_images(0.5 * z), m.first_stage.decode(z), rtol=1e-12, atol=1e-12)
    assert m.config.diffusion_channels == 3
    # the pixel setting: both maps are the identity
    p = _model()
    torch.testing.assert_close(p.to_images(p.to_diffusion_space(x)), x, rtol=0, atol=0)


def test_image_space_sample_weight_in_the_ldm_setting():
    m = _ldm(dis_sample_weight="image", latent_scale=0.5)
    m._reencode = lambda x0, grad: torch.zeros(x0.shape[0], m.config.num_units, m.config.unit_dim, dtype=x0.dtype)
    x = _images(2)
    x0 = m.to_diffusion_space(x)
    t = torch.tensor([200, 600])
    x_t = m.schedule.q_sample(x0, t, torch.randn_like(x0))
    eps, g = m.predict(x_t, t, m.encode_units(x))
    concept = torch.tensor([0, 2])
    g_c = g[torch.arange(2), concept]
    got = m.disentangling_loss(x_t, t, eps, g_c, m.encode_units(x), concept)
    s = m.schedule
    x0_hat = s.eps_to_x0(x_t, t, eps)
    x0_hat_c = s.eps_to_x0(x_t, t, eps + m._gather("guidance_coef", t, x_t) * g_c)
    with torch.no_grad():
        w = (m.to_images(x0_hat, quantize=False) - m.to_images(x0_hat_c, quantize=False)).pow(2).flatten(1).mean(1)
    # all re-encodings are zero: every logit is 0, each cross-entropy is log N, two of them
    n = m.config.num_units
    want = (w * 2 * torch.log(torch.tensor(float(n), dtype=w.dtype))).mean()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    # the latent-space weight differs from the image-space one here
    m.config.dis_sample_weight = "latent"
    wl = (x0_hat - x0_hat_c).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(m.disentangling_loss(x_t, t, eps, g_c, m.encode_units(x), concept),
                               (wl * 2 * torch.log(torch.tensor(float(n), dtype=w.dtype))).mean(), rtol=1e-10, atol=0)


def test_encoder_gradient_switch_of_the_reencoding():
    x = _images()
    t = torch.tensor([100, 300, 500, 900])
    for flag in (False, True):
        m = _model(dis_encoder_grad=flag)
        x_t = m.schedule.q_sample(x, t, torch.randn_like(x))
        units = m.encode_units(x).detach()  # no gradient through the clean codes
        eps, g = m.predict(x_t, t, units)
        concept = torch.tensor([0, 1, 2, 3])
        m.disentangling_loss(x_t, t, eps, g[torch.arange(4), concept], units, concept).backward()
        grads = [p.grad for p in m.encoder.parameters()]
        if flag:  # the code's train_enc_flag: the re-encoding updates the encoder
            assert any(gr is not None and gr.abs().sum() > 0 for gr in grads)
        else:
            assert all(gr is None for gr in grads)
        assert m.shift.out[-1].weight.grad.abs().sum() > 0  # the shift decoder learns either way


def test_reencoding_without_gradient_equals_the_encoder():
    m = _model()
    x = _images(3).requires_grad_(True)
    z = m._reencode(x, False)
    torch.testing.assert_close(z, m.encode_units(x), rtol=0, atol=0)
    z.sum().backward()  # the gradient reaches the input image only
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in m.encoder.parameters())


def test_part_embedding_variants():
    m = _model(part_embedding="none")
    pe = m.part_embeddings()
    emb = 4 * m.config.unet.model_channels
    assert pe.shape == (m.config.num_units, emb) and pe.abs().max() == 0
    m = _model(part_embedding="learned")
    torch.testing.assert_close(m.part_embeddings(), m.part_proj(m.part_latents), rtol=0, atol=0)
    assert m.part_latents.shape == (m.config.num_units, m.config.unit_dim)
    m = _model()
    w = m.part_latents
    want = m.part_proj(torch.linalg.matrix_exp(w - w.T)[: m.config.num_units])
    torch.testing.assert_close(m.part_embeddings(), want, rtol=1e-12, atol=1e-12)
    assert w.shape == (emb // 2, emb // 2)


def test_part_embedding_enters_the_shift_decoder_time_input():
    """G(x_t, z^c, t) reads emb(t) + part(c): two units with the same code differ only by their part embedding."""
    m = _model(part_embedding="none")
    x = _images(2)
    t = torch.tensor([100, 700])
    x_t = m.schedule.q_sample(x, t, torch.randn_like(x))
    u = m.encode_units(x)
    u[:, 1] = u[:, 0]
    _, g = m.predict(x_t, t, u)
    torch.testing.assert_close(g[:, 1], g[:, 0], rtol=0, atol=0)
    m = _model()
    _, g = m.predict(x_t, t, u)
    assert (g[:, 1] - g[:, 0]).abs().max() > 1e-6
    # and the time embedding + part embedding is what the shift decoder reads
    hs, emb = m.unet.forward_down(x_t, t)
    parts = m.part_embeddings()
    want = m.shift.forward_up(hs[-1], hs, emb + parts[1], m.repre_embed(u[:, 1]))
    torch.testing.assert_close(g[:, 1], want, rtol=1e-12, atol=1e-12)


def test_no_selected_unit_gives_zero_shifts():
    m = _model()
    x = _images(2)
    t = torch.tensor([10, 20])
    eps, g = m.predict(x, t, m.encode_units(x), torch.zeros(2, m.config.num_units, dtype=torch.bool))
    assert g.shape == (2, m.config.num_units, 3, 16, 16) and g.abs().max() == 0
    torch.testing.assert_close(eps, m.unet(x, t), rtol=0, atol=0)
    e2, none = m.predict(x, t)
    assert none is None
    torch.testing.assert_close(e2, eps, rtol=0, atol=0)


def test_stages_freeze_the_right_parts():
    m = _model()
    assert not any(p.requires_grad for p in m.unet.parameters())
    assert all(p.requires_grad for p in m.encoder.parameters())
    assert all(p.requires_grad for p in m.shift.parameters()) and m.part_latents.requires_grad
    m.train()
    assert not m.unet.training and m.encoder.training and m.shift.training
    m.set_stage("pretrain")
    assert all(p.requires_grad for p in m.unet.parameters())
    for mod in (m.encoder, m.shift, m.repre_embed, m.part_proj):
        assert not any(p.requires_grad for p in mod.parameters())
    assert not m.part_latents.requires_grad
    m.train()
    assert m.unet.training  # the eps model trains in the pre-training stage
    with pytest.raises(ValueError, match="stage must be"):
        m.set_stage("finetune")
    # an LDM model: the VQ autoencoder is frozen in every stage
    ldm = _ldm()
    ldm.train()
    assert not ldm.first_stage.training and not any(p.requires_grad for p in ldm.first_stage.parameters())
    ldm.set_stage("pretrain")
    assert not any(p.requires_grad for p in ldm.first_stage.parameters())


def test_load_pretrained_diffusion_copies_and_checks():
    src = _model()
    for p in src.unet.parameters():
        torch.nn.init.normal_(p, std=0.1)
    dst = _model()
    dst.load_pretrained_diffusion(src.unet)
    for a, b in zip(dst.unet.state_dict().values(), src.unet.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = _model(unet=dataclasses.replace(DisDiffConfig().unet, model_channels=8))
    with pytest.raises(ValueError, match="config differs"):
        dst.load_pretrained_diffusion(other.unet)
    with pytest.raises(ValueError, match="VQ autoencoder"):
        dst.load_pretrained_diffusion(src.unet, _ldm().first_stage)


def test_swap_and_traverse_set_the_codes_they_say():
    m = _model(sample_steps=2)
    x, src = _images(3, seed=1), _images(3, seed=2)
    seen = []
    m.decode = lambda units, x_T=None, num_steps=None, generator=None: seen.append(units.clone()) or units
    xT = torch.zeros(3, 3, 16, 16, dtype=torch.float64)
    m.swap(x, src, 2, x_T=xT)
    u, us = m.encode_units(x), m.encode_units(src)
    want = u.clone()
    want[:, 2] = us[:, 2]
    torch.testing.assert_close(seen[-1], want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="traverse"):
        m.traverse(x, 0, [0.0])
    m.fit_code_pca(torch.cat([x, src, _images(6, seed=3)]))
    seen.clear()
    m.traverse(x, 1, [-1.5, 0.0, 2.0])
    for v, got in zip((-1.5, 0.0, 2.0), seen):
        code = ((got - m.pca_mean) * m.pca_components).sum(-1)  # the PCA-1 code of every unit
        torch.testing.assert_close(code[:, 1], torch.full((3,), v, dtype=code.dtype), rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.cat([got[:, :1], got[:, 2:]], 1), torch.cat([u[:, :1], u[:, 2:]], 1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unit must"):
        m.traverse(x, 4, [0.0])
    with pytest.raises(ValueError, match="same batch"):
        m.swap(x, src[:2], 0)


def test_units_move_decoding_and_sampling_ignores_them():
    m = _model(sample_steps=3)
    x = _images(2)
    u = m.encode_units(x)
    xT = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = m.decode(u, xT)
    b = m.decode(u + 1.0, xT)
    assert (a - b).abs().max() > 1e-6 and a.abs().max() <= 1
    # DDIM decoding with the guidance prediction, and inversion returns the x_T decoding starts from
    xT_inv = m.encode_stochastic(x, u, num_steps=3)
    assert xT_inv.shape == x.shape
    with pytest.raises(ValueError, match="x_T must have shape"):
        m.decode(u, xT[:1])
    with pytest.raises(ValueError, match="units must have shape"):
        m.decode(u[:, :2], xT)


@pytest.mark.parametrize("kw, field", [
    (dict(unet=dataclasses.replace(DisDiffConfig().unet, latent_dim=8)), "unet"),
    (dict(unet=dataclasses.replace(DisDiffConfig().unet, use_scale_shift_norm=False)), "use_scale_shift_norm"),
    (dict(unet=dataclasses.replace(DisDiffConfig().unet, image_size=8)), "unet.image_size"),
    (dict(dyga=DyGAConfig(num_units=4, token_dim=4)), "dyga"),
    (dict(sample_steps=1001), "sample_steps"),
])
def test_config_checks_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        DisDiffConfig(**kw)


def test_config_accepts_the_limits_and_the_compat_weight():
    DisDiffConfig(sample_steps=1000)
    DisDiffConfig(sample_steps=1)
    emb = 4 * DisDiffConfig().unet.model_channels
    n = emb // 2
    enc = dataclasses.replace(DisDiffConfig().encoder, latent_dim=n)
    DisDiffConfig(num_units=n, unit_dim=1, encoder=enc)  # the largest orthogonal table
    assert DisDiffConfig(dis_weight=0.3).effective_dis_weight == 0.3
    assert DisDiffConfig(dis_weight=0.3, compat_cli_weight=True).effective_dis_weight == 1.0
    assert DisDiffConfig().shift_unet().latent_dim == emb
    assert DisDiffConfig().shift_unet().latent_cond == "infodiff"
    for placement in ("paper", "reference_code", "all"):
        s = DisDiffConfig(shift_skip_dropout=0.2, shift_skip_dropout_placement=placement).shift_unet()
        assert s.skip_dropout == 0.2 and s.skip_dropout_placement == placement
    m = _model()
    m.set_stage("pretrain")
    m.set_stage("disentangle")  # back: the eps model frozen again
    assert m.config.stage == "disentangle" and not any(p.requires_grad for p in m.unet.parameters())


def test_a_single_unit_has_no_disentangling_term():
    enc = dataclasses.replace(DisDiffConfig().encoder, latent_dim=8)
    m = _model(num_units=1, unit_dim=8, encoder=enc)
    out = m.loss(_images(), step=0)
    assert "disentangling" not in out
    torch.testing.assert_close(out["loss"].detach(), out["reconstruction"], rtol=0, atol=0)


def test_disentangling_loss_per_example_on_a_hand_made_batch():
    """Two examples, non-zero re-encodings (unit k = mean of channel k), different per-example weights:
    the loss is the mean over examples of weight_b * (CE_variant_b + CE_invariant_b)."""
    enc = dataclasses.replace(DisDiffConfig().encoder, latent_dim=2)
    m = _model(num_units=2, unit_dim=1, encoder=enc)
    m._reencode = lambda x0, grad: x0.mean(dim=(2, 3))[:, :2, None]
    t = torch.tensor([300, 700])
    ab = m.schedule.alphas_cumprod.double()[t]
    x_t = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    x_t[:, 0] = 0.3 * ab[:, None, None].sqrt()  # x0_hat channel 0 = 0.3, channel 1 = 0
    x_t[:, 1] = -0.2 * ab[:, None, None].sqrt()  # channel 1 = -0.2
    eps = torch.zeros_like(x_t)
    units = torch.tensor([[[1.0], [2.0]], [[-1.0], [0.5]]], dtype=torch.float64)
    g = torch.zeros_like(x_t)
    g[0, 0] = 1.0  # example 0: the shift moves channel 0
    g[1, 1] = 2.0  # example 1: the shift moves channel 1 twice as far
    concept = torch.tensor([0, 1])
    got = m.disentangling_loss(x_t, t, eps, g, units, concept)
    delta = (1 - ab) / ab.sqrt()  # x0 moves by delta * g
    z_hat = torch.tensor([[0.3, -0.2], [0.3, -0.2]], dtype=torch.float64)
    z_hat_c = z_hat.clone()
    z_hat_c[0, 0] += delta[0]
    z_hat_c[1, 1] += 2 * delta[1]
    z = units[..., 0]
    lv = (z_hat - z).abs() - (z_hat_c - z).abs()
    li = (z_hat - z_hat_c).abs()
    ce = -(lv.log_softmax(1)[torch.arange(2), concept] + li.log_softmax(1)[torch.arange(2), concept])
    w = torch.stack([delta[0] ** 2 / 3, (2 * delta[1]) ** 2 / 3])  # one channel of three moved
    torch.testing.assert_close(got, (w * ce).mean(), rtol=1e-10, atol=0)
    assert not torch.allclose(got, w.mean() * ce.mean())  # the weights pair with their own examples


def test_the_sampled_unit_comes_from_the_generator_after_t_and_noise():
    x = _images()
    m = _model()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    g, t, noise, x_t = disdiff_draws(m, x, 5)
    concept = torch.randint(0, m.config.num_units, (4,), generator=g)
    units = m.encode_units(x)
    eps, G = m.predict(x_t, t, units)
    want = m.disentangling_loss(x_t, t, eps, G[torch.arange(4), concept], units, concept)
    torch.testing.assert_close(out["disentangling"], want.detach(), rtol=1e-10, atol=0)
    # every unit can be drawn (unit 0 included)
    drawn = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {0, 1, 2, 3}


def test_two_units_have_a_disentangling_term():
    enc = dataclasses.replace(DisDiffConfig().encoder, latent_dim=16)
    m = _model(num_units=2, unit_dim=8, encoder=enc)
    out = m.loss(_images(), step=0)
    assert "disentangling" in out and out["disentangling"] > 0


def test_the_frozen_model_never_drops_out_in_predict():
    m = _model(unet=dataclasses.replace(DisDiffConfig().unet, dropout=0.5))
    m.unet.train(True)  # even if someone sets it training
    x = _images(2)
    t = torch.tensor([100, 500])
    a, _ = m.predict(x, t)
    b, _ = m.predict(x, t)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert m.unet.training  # restored


def test_reencoding_reads_the_mean_head_and_unquantised_vq_decoding():
    m = _model()
    x = _images(3)
    torch.testing.assert_close(m._reencode(x, True), m.encode_units(x), rtol=0, atol=0)
    ldm = _ldm(latent_scale=0.5)
    z = ldm.to_diffusion_space(x) + 0.05  # off the codebook: quantisation would change it
    img = ldm.first_stage.decode(z / 0.5, quantize=False)
    want = ldm.encoder(img)[0].reshape(3, ldm.config.num_units, ldm.config.unit_dim)
    for grad in (False, True):
        torch.testing.assert_close(ldm._reencode(z, grad), want, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ldm.first_stage.decode(z / 0.5, quantize=True), img)


def test_loading_the_vq_autoencoder_into_an_ldm_model():
    src, dst = _ldm(), _ldm()
    for p in src.first_stage.parameters():
        torch.nn.init.normal_(p, std=0.1)
    dst.load_pretrained_diffusion(src.unet, src.first_stage)
    for a, b in zip(dst.first_stage.state_dict().values(), src.first_stage.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = DisDiff(dataclasses.replace(src.config, first_stage=dataclasses.replace(src.config.first_stage, n_embed=8))).double()
    with pytest.raises(ValueError, match="VQ autoencoder's config differs"):
        dst.load_pretrained_diffusion(src.unet, other.first_stage)


def test_wrong_images_are_refused_by_name():
    m = _model()
    with pytest.raises(ValueError, match="DisDiff.loss"):
        m.loss(torch.zeros(2, 3, 8, 8, dtype=torch.float64), step=0)
    with pytest.raises(ValueError, match="DisDiff.encode"):
        m.encode_units(torch.zeros(2, 1, 16, 16, dtype=torch.float64))


@pytest.mark.parametrize("field, value", [("context_dim", 8), ("num_outputs", 2)])
def test_the_frozen_model_must_be_unconditional_eps(field, value):
    with pytest.raises(ConfigError, match="unet"):
        DisDiffConfig(unet=dataclasses.replace(DisDiffConfig().unet, **{field: value}))


def test_image_space_weights_pair_with_their_own_examples():
    """L_d (docs/methods/disdiff.md, DisDiff Sec. 4.3) with the image-space weight and re-encodings that differ
    per example: mean_b w_b (CE_variant_b + CE_invariant_b), w_b the mean squared difference of example b's two
    decoded x0 predictions (not the batch mean of the weights)."""
    m = _ldm(dis_sample_weight="image", latent_scale=0.5)
    N, d = m.config.num_units, m.config.unit_dim
    reenc = lambda x0: x0.flatten(1)[:, : N * d].reshape(x0.shape[0], N, d)  # noqa: E731
    m._reencode = lambda x0, grad: reenc(x0)
    x = _images(2)
    x0 = m.to_diffusion_space(x)
    t = torch.tensor([200, 600])
    x_t = m.schedule.q_sample(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0), dtype=x0.dtype))
    units = m.encode_units(x)
    eps, g = m.predict(x_t, t, units)
    concept = torch.tensor([0, 2])
    g_c = g[torch.arange(2), concept]
    got = m.disentangling_loss(x_t, t, eps, g_c, units, concept)
    s = m.schedule
    ab = s.alphas_cumprod.double()[t][:, None, None, None]
    x0_hat = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
    x0_hat_c = (x_t - (1 - ab).sqrt() * (eps - (1 - ab).sqrt() * g_c)) / ab.sqrt()  # guidance coef -sqrt(1 - abar)
    with torch.no_grad():
        w = (m.first_stage.decode(x0_hat / 0.5, quantize=False) - m.first_stage.decode(x0_hat_c / 0.5, quantize=False))
        w = w.pow(2).flatten(1).mean(1)
    zh, zc, z = reenc(x0_hat), reenc(x0_hat_c), units.detach()
    lv = (zh - z).norm(dim=-1) - (zc - z).norm(dim=-1)
    li = (zh - zc).norm(dim=-1)
    ce = -(lv.log_softmax(1)[torch.arange(2), concept] + li.log_softmax(1)[torch.arange(2), concept])
    assert (w[0] - w[1]).abs() > 1e-3 * w.abs().max() and (ce[0] - ce[1]).abs() > 1e-3 * ce.abs().max()
    torch.testing.assert_close(got, (w * ce).mean(), rtol=1e-9, atol=0)
    assert not torch.allclose(got, w.mean() * ce.mean(), rtol=1e-6, atol=0)
