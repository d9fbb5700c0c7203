"""InfoDiffusion (Wang et al., ICML 2023; docs/methods/infodiffusion.md) equation by equation, each against a
computation written here from the paper and the authors' code (isjakewong/InfoDiffusion, read for its facts):
the whole objective (denoising term, the x_0 term log p(x0 | x1, z) with weight 1/T, the KL summed over latent
dimensions, the MMD^2 with InfoVAE's kernel exp(-|x - y|^2 / d^2) as a biased V-statistic against prior draws),
its InfoVAE weights (1 - zeta, zeta + lambda - 1), the code's variants (the x_0 term on the clean image, the
deterministic code), the latent AdaGN after the time scale-shift, and the ten-Gaussian prior's density."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig, info_weights, sample_prior
from diffrep.nn.layers import ResBlock

from helpers import cumulative_alphas, per_example

B, Z, T = 4, 8, 1000


def _schedule():
    """The authors' run.sh: beta = linspace(1e-5, 1e-2, 1000)."""
    betas = [1e-5 + k * (1e-2 - 1e-5) / (T - 1) for k in range(T)]
    return betas, cumulative_alphas(betas)


BETAS, ABAR = _schedule()
_col = per_example


class _Encoder(nn.Module):
    """q(z | x0) = N(mu, diag exp(logvar)) with mu and logvar fixed functions of the image."""

    def forward(self, x):
        flat = x.flatten(1)
        return 0.8 * flat[:, :Z] + 0.1, 0.5 * flat[:, Z:2 * Z] - 0.2


def _fake_eps(x_t, t, z):
    return 0.4 * x_t + 0.002 * t.to(x_t.dtype)[:, None, None, None] + 0.1 * z.sum(1)[:, None, None, None]


def _model(**kw):
    torch.manual_seed(0)
    m = InfoDiffusion(InfoDiffusionConfig(**kw)).double()
    m.encoder = _Encoder()
    m._eps = _fake_eps
    return m


def _images(seed=1):
    return (torch.rand((B, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def _mmd2_v(x, y, h=None, unbiased=False):
    """MMD^2 with k(a, b) = exp(-|a - b|^2 / h), h = d^2 by default (InfoVAE), pair by pair: the biased
    V-statistic (every pair, diagonals included), or the U-statistic (the within-sample diagonals left out)."""
    h = x.shape[1] ** 2 if h is None else h

    def k(a, b):
        return math.exp(-sum((float(p) - float(q)) ** 2 for p, q in zip(a, b)) / h)

    def within(s):
        pairs = [(i, j) for i in range(len(s)) for j in range(len(s)) if not (unbiased and i == j)]
        return sum(k(s[i], s[j]) for i, j in pairs) / len(pairs)

    kxy = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    return within(x) + within(y) - 2 * kxy


def _objective_by_hand(x, seed, *, kl_w, mmd_w, rec_term="x1", decoder_latent="sample", mmd_on="sample"):
    """Draws in the objective's order: t, eps, the noise of z, the x_1 noise (rec_term "x1"), the prior."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, T, (B,), generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    mu, logvar = _Encoder()(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=x.dtype)
    zd = z if decoder_latent == "sample" else mu
    ab = _col([ABAR[k] for k in t.tolist()])
    pred = _fake_eps(ab.sqrt() * x + (1 - ab).sqrt() * noise, t, zd)
    diffusion = float((pred - noise).pow(2).mean())
    # log p(x0 | x1, z): mu_theta(x_1, 1, z) = (x_1 - beta_1 / sqrt(1 - abar_1) eps_theta) / sqrt(alpha_1)
    b1, ab1 = BETAS[0], ABAR[0]
    if rec_term == "x1":
        t1 = torch.zeros(B, dtype=torch.long)
        x_in = math.sqrt(ab1) * x + math.sqrt(1 - ab1) * torch.randn(x.shape, generator=g, dtype=x.dtype)
        e1 = _fake_eps(x_in, t1, zd)
    else:  # the authors' loss_fn: the clean image with the prediction made at the random t
        x_in, e1 = x, pred
    mean1 = (x_in - b1 / math.sqrt(1 - ab1) * e1) / math.sqrt(1 - b1)
    rec = float((mean1 - x).pow(2).mean())
    kl = float((0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)).mean())
    total = diffusion + rec / T + kl_w * kl
    mmd = None
    if mmd_w > 0:
        prior = torch.randn((B, Z), generator=g, dtype=x.dtype)
        mmd = _mmd2_v(z if mmd_on == "sample" else mu, prior)
        total += mmd_w * mmd
    return dict(diffusion=diffusion, reconstruction=rec, kl=kl, mmd=mmd, loss=total)


@pytest.mark.parametrize("kw", [
    dict(kl_weight=0.3, mmd_weight=0.7),
    dict(kl_weight=0.0, mmd_weight=0.1),  # the defaults: the authors' CelebA script
    dict(kl_weight=0.25, mmd_weight=0.5, rec_term="code", decoder_latent="mean", mmd_on="mean"),
])
def test_infodiffusion_objective_by_hand(kw):
    m = _model(**kw)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    want = _objective_by_hand(x, 5, kl_w=kw["kl_weight"], mmd_w=kw["mmd_weight"], rec_term=kw.get("rec_term", "x1"),
                              decoder_latent=kw.get("decoder_latent", "sample"), mmd_on=kw.get("mmd_on", "sample"))
    assert math.isclose(float(out["diffusion"]), want["diffusion"], rel_tol=1e-12)
    assert math.isclose(float(out["reconstruction"]), want["reconstruction"], rel_tol=1e-12)
    if kw["kl_weight"]:
        assert math.isclose(float(out["kl"]), want["kl"], rel_tol=1e-12)
    else:
        assert "kl" not in out
    assert math.isclose(float(out["mmd"]), want["mmd"], rel_tol=1e-10)
    assert math.isclose(float(out["loss"].detach()), want["loss"], rel_tol=1e-11)


def test_infodiffusion_x0_term_weight_is_configurable_and_zero_drops_it():
    x = _images(2)
    want = _objective_by_hand(x, 3, kl_w=0.0, mmd_w=0.0)
    m = _model(kl_weight=0.0, mmd_weight=0.0, rec_weight=0.5)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    assert math.isclose(float(out["loss"].detach()), want["diffusion"] + 0.5 * want["reconstruction"], rel_tol=1e-12)
    out0 = _model(kl_weight=0.0, mmd_weight=0.0, rec_weight=0.0).loss(x, step=0, generator=torch.Generator().manual_seed(3))
    assert "reconstruction" not in out0 and "mmd" not in out0 and "kl" not in out0
    assert math.isclose(float(out0["loss"].detach()), want["diffusion"], rel_tol=1e-12)


def test_infodiffusion_mmd_bandwidth_and_estimator_options():
    """mmd_bandwidth h > 0 replaces d^2 in the kernel; mmd_estimator "unbiased" drops the diagonals."""
    z = torch.randn(5, Z, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = torch.randn(5, Z, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.5
    for kw, h, unbiased in ((dict(), None, False), (dict(mmd_bandwidth=3.0), 3.0, False),
                            (dict(mmd_estimator="unbiased"), None, True),
                            (dict(mmd_bandwidth=0.5, mmd_estimator="unbiased"), 0.5, True)):
        got = float(_model(**kw).mmd(z, p))
        assert math.isclose(got, _mmd2_v(z, p, h, unbiased), rel_tol=1e-10, abs_tol=1e-14), kw


def test_infodiffusion_infovae_weights():
    """InfoVAE's L = ... - (1 - zeta) KL(q(z|x) || p(z)) - (zeta + lambda - 1) D(q(z) || p(z)); the paper's
    InfoDiffusion (lambda = 0.1, zeta = 1) is KL weight 0 and MMD weight 0.1, the authors' script."""
    for zeta, lam in ((1.0, 0.1), (1.0, 0.01), (0.5, 0.7), (0.0, 1.0)):
        kl, mmd = info_weights(zeta, lam)
        assert math.isclose(kl, 1.0 - zeta, abs_tol=1e-15) and math.isclose(mmd, zeta + lam - 1.0, abs_tol=1e-15)
    assert info_weights(1.0, 0.1) == pytest.approx((0.0, 0.1), abs=1e-15)
    d = InfoDiffusionConfig()
    assert (d.kl_weight, d.mmd_weight) == pytest.approx(info_weights(1.0, 0.1), abs=1e-15)


def test_infodiffusion_latent_adagn_comes_after_the_time_scale_shift():
    """The authors' AuxResBlock: one GroupNorm, h (1 + s_t) + b_t, then h (1 + s_z) + b_z, SiLU, conv."""
    torch.manual_seed(0)
    blk = ResBlock(8, 8, 12, latent_dim=5, latent_cond="infodiff", num_groups=4, zero_init=False).double()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    emb, z = torch.randn(2, 12, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    h = blk.in_conv(F.silu(F.group_norm(x, 4, blk.in_norm.weight, blk.in_norm.bias)))
    st, bt = (F.silu(emb) @ blk.emb_layers[1].weight.T + blk.emb_layers[1].bias).chunk(2, 1)
    sz, bz = (F.silu(z) @ blk.z_layers[1].weight.T + blk.z_layers[1].bias).chunk(2, 1)
    h = F.group_norm(h, 4, blk.out_norm.weight, blk.out_norm.bias)
    h = h * (1 + st[:, :, None, None]) + bt[:, :, None, None]
    h = h * (1 + sz[:, :, None, None]) + bz[:, :, None, None]
    want = x + blk.out_conv(F.silu(h))
    torch.testing.assert_close(blk(x, emb, z), want, rtol=1e-10, atol=1e-12)


def test_infodiffusion_mixture_prior_density_per_pair():
    """The code's gaussian_mixture: per pair, a component l ~ U{0..9} at 1.4 (cos r, sin r), r = 2 pi l / 10,
    with standard deviations 0.5 along and 0.1 across the radius: the draws score far higher under that
    mixture than under the one with the two deviations swapped, and in the frame of their nearest centre
    their radial and tangential spreads are 0.5 and 0.1."""
    z = sample_prior("mixture10", 20000, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pts = z.reshape(-1, 2)

    def loglik(sd_along, sd_across):
        r = 2 * math.pi * torch.arange(10, dtype=torch.float64) / 10
        c, s = torch.cos(r), torch.sin(r)
        dx, dy = pts[:, :1] - 1.4 * c, pts[:, 1:] - 1.4 * s
        u, v = dx * c + dy * s, -dx * s + dy * c  # coordinates in each component's frame
        logp = (-0.5 * (u / sd_along) ** 2 - 0.5 * (v / sd_across) ** 2
                - math.log(2 * math.pi * sd_along * sd_across) - math.log(10))
        return float(torch.logsumexp(logp, 1).mean())

    right, swapped = loglik(0.5, 0.1), loglik(0.1, 0.5)
    assert right > swapped + 1.0
    # a pair's component frames: the radial coordinate's spread is 0.5, its tangential 0.1 (nearest centre)
    r = 2 * math.pi * torch.arange(10, dtype=torch.float64) / 10
    centres = 1.4 * torch.stack([torch.cos(r), torch.sin(r)], 1)
    lab = torch.cdist(pts, centres).argmin(1)
    c, s = torch.cos(r[lab]), torch.sin(r[lab])
    dx, dy = pts[:, 0] - 1.4 * c, pts[:, 1] - 1.4 * s
    assert abs(float((dx * c + dy * s).std()) - 0.5) < 0.02
    assert abs(float((-dx * s + dy * c).std()) - 0.1) < 0.01


def test_infodiffusion_objective_refuses_a_negative_step_and_weights_name_their_argument():
    with pytest.raises(ValueError, match="^step must be a non-negative int"):
        _model().loss(_images(), step=-1)
    with pytest.raises(ValueError, match="^zeta must be a finite number"):
        info_weights(float("nan"), 0.1)
    with pytest.raises(ValueError, match="^lam must be a finite number"):
        info_weights(1.0, float("inf"))


def test_infodiffusion_bf16_encoder_outputs_are_widened_and_the_mmd_runs_in_the_models_precision():
    """Under bf16 autocast the encoder returns bf16: z, its noise and the KL are formed in float32 from the
    widened (mu, logvar), and the MMD reads the codes and prior draws in the model's own precision (bf16)."""

    class Bf16Encoder(nn.Module):
        def forward(self, x):
            mu, logvar = _Encoder()(x.double())
            return mu.bfloat16(), logvar.bfloat16()

    m = _model(kl_weight=0.5, mmd_weight=0.5).to(torch.bfloat16)
    m.encoder = Bf16Encoder()
    x = _images().bfloat16()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(2))
    mu, logvar = (v.bfloat16().float() for v in _Encoder()(x.double()))
    kl = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)).mean()
    assert out["kl"].dtype == torch.float32
    assert math.isclose(float(out["kl"]), float(kl), rel_tol=1e-6)
    # the draws in their order (the image-shaped ones in the images' bf16), then the MMD of the codes and the
    # prior draws both rounded to the model's bf16 (mmd2 reduces in float32)
    g = torch.Generator().manual_seed(2)
    torch.randint(0, T, (B,), generator=g)
    torch.randn(x.shape, generator=g, dtype=torch.bfloat16)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=torch.float32)
    torch.randn(x.shape, generator=g, dtype=torch.bfloat16)
    prior = torch.randn((B, Z), generator=g, dtype=torch.float32)
    want = _mmd2_v(z.bfloat16().double(), prior.bfloat16().double())
    assert math.isclose(float(out["mmd"]), want, rel_tol=1e-4)
    assert abs(_mmd2_v(z.double(), prior.bfloat16().double()) - want) > 1e-3 * want  # the rounding shows
