"""DyGA's alignment in paper mode against independent computations (Jun et al. §3.2, Eq. 4, Eq. 6,
Alg. 3; docs/methods/dyga.md): the stored normalisation (per-unit min and max over the whole (n, D)
block), responsibilities evaluated in that normalised space from the stored HDDC parameters (Eq. 3
covariances built by hand), anchors applied in raw space, the pull of the token (not the anchor)
toward the anchor by exactly (1 - delta), scale equivariance of the whole fit + alignment, and the
paper's defaults."""

import math

import torch

from diffrep.methods.dyga import DyGA, DyGAConfig

from helpers import untrained_on_purpose

U, D = 2, 3


def _features(n=600, seed=0, scale=1.0):
    """Positive (ReLU-like, no exact zeros) features: unit 0 has 2 modes, unit 1 has 3."""
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(n, U, D)
    modes = [torch.tensor([[1.0, 2.0, 1.5], [3.0, 1.0, 2.5]]),
             torch.tensor([[1.0, 1.0, 1.0], [2.5, 3.0, 1.2], [1.2, 3.2, 3.0]])]
    for u, m in enumerate(modes):
        out[:, u] = m[torch.arange(n) % len(m)] + 0.08 * torch.randn(n, D, generator=g)
    return out * scale


def _dyga(**kw):
    return DyGA(DyGAConfig(num_units=U, token_dim=D, n_components=1, psi=0.3, p_arbitrary=0.0, **kw))


def _map_by_hand(m, c):
    """MAP component per (sample, unit) from the buffers: x = (c - lo)/(hi - lo + 1e-6), then
    argmax_k log pi_k + log N(x | mu_k, Q_k diag(a_k1..a_kd, b_k..) Q_k^T)."""
    out = torch.empty(c.shape[0], U, dtype=torch.int64)
    for u in range(U):
        x = (c[:, u].double() - float(m.norm_lo[u])) / (float(m.norm_hi[u]) - float(m.norm_lo[u]) + 1e-6)
        scores = torch.full((c.shape[0], m.active.shape[1]), -math.inf, dtype=torch.float64)
        for k in m.active[u].nonzero()[:, 0].tolist():
            dk = int(m.dims[u, k])
            Q = m.subspaces[u, k].double()
            diag = torch.cat([m.a[u, k, :dk].double(), m.b[u, k].double().expand(D - dk)])
            S = Q @ torch.diag(diag) @ Q.T
            scores[:, k] = math.log(float(m.weights[u, k])) + torch.distributions.MultivariateNormal(
                m.means[u, k].double(), S).log_prob(x)
        out[:, u] = scores.argmax(-1)
    return out


def test_stored_normalisation_raw_anchors_and_the_map_anchor_by_hand():
    feats = _features()
    m = _dyga()
    m.fit(feats)
    torch.testing.assert_close(m.norm_lo, feats.amin(dim=(0, 2)))
    torch.testing.assert_close(m.norm_hi, feats.amax(dim=(0, 2)))
    span = m.norm_hi - m.norm_lo + 1e-6
    torch.testing.assert_close(m.anchors, m.norm_lo[:, None, None] + m.means * span[:, None, None])
    assert m.n_anchors.tolist() == [2, 3]
    m.eval()
    c = _features(n=12, seed=5) + 0.2
    k = _map_by_hand(m, c)
    mu = torch.stack([m.anchors[u][k[:, u]] for u in range(U)], 1).double()
    cd = c.double()
    delta = 0.1 * torch.exp(-((cd - mu) / (cd.abs() + 1e-6)).abs().mean(-1, keepdim=True))
    want = cd + delta * (mu - cd)
    anchors_before = m.anchors.clone()
    got = m(c)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m.anchors, anchors_before)               # the features move, not the anchors
    # the pull: the token's distance to its anchor shrinks by exactly (1 - delta), delta in (0, lam]
    assert bool(((delta > 0) & (delta <= 0.1)).all())
    torch.testing.assert_close((got.double() - mu).norm(dim=-1), (1 - delta[..., 0]) * (cd - mu).norm(dim=-1),
                               rtol=1e-5, atol=1e-6)


def test_fit_and_alignment_are_equivariant_to_scaling_the_features():
    """The fit sees (c - min)/(max - min + 1e-6), so scaling the raw features by 10 leaves the
    normalised mixture unchanged and scales the anchors by 10; Eq. 6's delta is scale-free, so the
    aligned features scale by 10 too. Computing responsibilities on raw features, or applying the
    normalised means as anchors, breaks this."""
    feats = _features()
    a, b = _dyga(), _dyga()
    a.fit(feats)
    b.fit(10 * feats)
    torch.testing.assert_close(b.means, a.means, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.anchors, 10 * a.anchors, rtol=1e-4, atol=1e-4)
    a.eval(), b.eval()
    c = _features(n=16, seed=7) + 0.1
    torch.testing.assert_close(b(10 * c), 10 * a(c), rtol=1e-4, atol=1e-4)


def test_paper_defaults():
    cfg = DyGAConfig()
    assert (cfg.compat, cfg.lam, cfg.tau, cfg.phi, cfg.psi, cfg.min_mass) == ("paper", 0.1, 1e-4, 0.5, 0.5, 10.0)
    assert (cfg.n_components, cfg.max_components, cfg.max_iter, cfg.max_split_passes) == (8, 32, 30, 3)
    assert (cfg.assignment, cfg.gumbel_input, cfg.threshold, cfg.refresh_every) == ("gumbel", "log", 0.2, 1)
    assert (cfg.num_units, cfg.token_dim, cfg.fit_max_points, cfg.p_arbitrary) == (20, 32, 100_000, 0.5)
    assert DyGA(cfg).config.model == "AkjBkQkDk"


def _tiny_encdiff(**kw):
    from diffrep.diffusion.schedules import NoiseScheduleConfig
    from diffrep.methods.encdiff import EncDiff, EncDiffConfig
    from diffrep.methods.encdiff_nets import SmallExtractorConfig
    from diffrep.nn.unet import UNetConfig
    from diffrep.nn.vq import VQAutoencoderConfig

    un = UNetConfig(image_size=8, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                    attention_resolutions=(4,), num_heads=2, num_groups=8, context_dim=D, resblock_updown=True)
    sx = SmallExtractorConfig(image_size=16, num_units=U, token_dim=D, channels=(8, 16), hidden=16, mlp_hidden=(8,))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)
    return untrained_on_purpose(EncDiff(EncDiffConfig(unet=un, small_extractor=sx, first_stage=vq, conditioning="none",
                                 schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015,
                                                              beta_end=0.0155), sample_steps=4, **kw)))


def test_latent_scaling_is_undone_before_the_vq_decoder():
    """LDM: z0 = scale * E(x), decode_first_stage(z) = D(quantise(z / scale)); the scale is
    1 / std of the first training batch's (unquantised) latents."""
    import pytest

    m = _tiny_encdiff()
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m.train()
    m.loss(x, step=0)
    s = float(m.scale_factor)
    with torch.no_grad():
        z = m.first_stage.encode(x)
        assert s == pytest.approx(1 / float(z.flatten().std()), rel=1e-6) and abs(s - 1) > 1e-3
        torch.testing.assert_close(m.to_latent(x), s * z)
        torch.testing.assert_close(m.from_latent(s * z), m.first_stage.decode(z))
        torch.testing.assert_close(m.from_latent(s * z), m.first_stage.decoder(m.first_stage.post_quant_conv(
            m.first_stage.quantizer(z)[0])))


def test_eta_noise_comes_from_the_generator():
    """DDIM with eta > 0 draws each step's noise from the caller's generator (as x_T), so a seeded
    generate repeats whatever the global RNG did in between."""
    torch.manual_seed(0)
    model = _tiny_encdiff(eta=1.0).eval()
    tokens = torch.randn(2, U, D)

    def run(global_seed):
        torch.manual_seed(global_seed)  # the global RNG must not matter
        return model.generate(tokens, generator=torch.Generator().manual_seed(5), steps=3)

    a, b = run(1), run(2)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = model.generate(tokens, generator=torch.Generator().manual_seed(6), steps=3)
    assert not torch.equal(a, c)
