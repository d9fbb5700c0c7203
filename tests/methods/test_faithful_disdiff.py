"""DisDiff (Yang et al., NeurIPS 2023; docs/methods/disdiff.md) equation by equation, each against a
computation written here from the paper and the authors' code (ThomasMrY/DisDiff, read for its facts): the
LDM-linear schedule, PDAE's shift coefficient in L_r, the classifier-guidance coefficient of sampling and of
L_d, x0 from the shifted prediction, the disentangling loss (both cross-entropies over units, the sampled
unit, the per-example weight without gradient), its weight 0.05 (1.0 under the CLI compat option), the
pre-training L_simple, and the orthogonal part embeddings exp(W - W^T)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffrep.methods.disdiff import DisDiff, DisDiffConfig, shift_coefficients

from helpers import cumulative_alphas, per_example, untrained_on_purpose

B, N, D, T = 2, 4, 8, 1000  # B unlike the 3 channels and the N units


def _schedule():
    """The configs' LDM "linear": beta_k = (sqrt(0.0015) + k (sqrt(0.0155) - sqrt(0.0015)) / 999)^2."""
    s0, s1 = math.sqrt(0.0015), math.sqrt(0.0155)
    betas = [(s0 + k * (s1 - s0) / (T - 1)) ** 2 for k in range(T)]
    return betas, cumulative_alphas(betas)


BETAS, ABAR = _schedule()
_col = per_example


def _shift_coef(t):
    """PDAE Eq. 9 as DisDiff Sec. 4.1 uses it: -sqrt(alpha_t) sqrt(1 - abar_t) / beta_t * beta~_t."""
    out = []
    for k in t.tolist():
        prev = ABAR[k - 1] if k > 0 else 1.0
        post_var = BETAS[k] * (1 - prev) / (1 - ABAR[k])
        out.append(-math.sqrt(1 - BETAS[k]) * math.sqrt(1 - ABAR[k]) / BETAS[k] * post_var)
    return _col(out)


class _LinearEncoder(nn.Module):
    """E(x) = (x.flatten() @ W, 0): a stand-in with parameters, so that the gradient-free copy of L_d runs."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(0.05 * torch.randn(3 * 16 * 16, N * D, dtype=torch.float64,
                                                 generator=torch.Generator().manual_seed(11)))

    def forward(self, x):
        z = x.flatten(1) @ self.W
        return z, torch.zeros_like(z)


def _fake_predict(x_t, t, units=None, which=None):
    """eps_theta(x_t, t) = 0.3 x_t + 0.1; unit n's shift G_n = (n + 1) 0.05 x_t + 0.01 sum(z^n) + 0.02 (t / T)."""
    eps = 0.3 * x_t + 0.1
    k = torch.arange(1, N + 1, dtype=x_t.dtype)[None, :, None, None, None]
    g = (0.05 * k * x_t[:, None] + 0.01 * units.sum(-1)[:, :, None, None, None]
         + 0.02 * (t.to(x_t.dtype) / T)[:, None, None, None, None])
    return eps, g


def _model(**kw):
    torch.manual_seed(0)
    m = untrained_on_purpose(DisDiff(DisDiffConfig(**kw))).double()
    m.encoder = _LinearEncoder()
    m._predict = _fake_predict
    return m


def _images(seed=1):
    return (torch.rand((B, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def _draws(seed, x):
    """The objective's draws in its order: t ~ U{0..T-1}, eps ~ N(0, I), then the unit c ~ U{0..N-1}."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, T, (B,), generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    concept = torch.randint(0, N, (B,), generator=g)
    return t, noise, concept


def _x0(x_t, t, eps):
    ab = _col([ABAR[k] for k in t.tolist()])
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def _ce(logits, target):
    """-log softmax(logits)[target], written out."""
    return -logits[target] + math.log(sum(math.exp(v) for v in logits.tolist()))


def _disentangling(x_t, t, eps, g_c, z, concept, enc, weighted=True):
    """L_d (Sec. 4.3): x0_hat from eps_theta alone, x0_hat^c from eps_theta - sqrt(1 - abar_t) G_c, both
    re-encoded; per example CE(|z_hat - z| - |z_hat^c - z|, c) + CE(|z_hat - z_hat^c|, c), weighted by
    mean (x0_hat - x0_hat^c)^2 (the configs' dis_loss_type Z); mean over examples."""
    ab = _col([ABAR[k] for k in t.tolist()])
    x0_hat = _x0(x_t, t, eps)
    x0_hat_c = _x0(x_t, t, eps - (1 - ab).sqrt() * g_c)
    zh, zc = (enc(v).reshape(B, N, D) for v in (x0_hat, x0_hat_c))
    total = 0.0
    for b in range(B):
        variant = (zh[b] - z[b]).norm(dim=-1) - (zc[b] - z[b]).norm(dim=-1)
        invariant = (zh[b] - zc[b]).norm(dim=-1)
        w = float((x0_hat[b] - x0_hat_c[b]).pow(2).mean()) if weighted else 1.0
        total += w * (_ce(variant, int(concept[b])) + _ce(invariant, int(concept[b])))
    return total / B


def test_disdiff_objective_is_lr_plus_weighted_ld_by_hand():
    m = _model()
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    t, noise, concept = _draws(7, x)
    ab = _col([ABAR[k] for k in t.tolist()])
    x_t = ab.sqrt() * x + (1 - ab).sqrt() * noise
    with torch.no_grad():
        enc = lambda v: v.flatten(1) @ m.encoder.W  # noqa: E731
        z = enc(x).reshape(B, N, D)
        eps, g = _fake_predict(x_t, t, z)
        l_r = float((eps + _shift_coef(t) * g.sum(1) - noise).pow(2).mean())
        l_d = _disentangling(x_t, t, eps, g[torch.arange(B), concept], z, concept, enc)
    assert math.isclose(float(out["reconstruction"]), l_r, rel_tol=1e-10)
    assert math.isclose(float(out["disentangling"]), l_d, rel_tol=1e-9)
    assert math.isclose(float(out["loss"].detach()), l_r + 0.05 * l_d, rel_tol=1e-10)
    # the public code's CLI: the same terms with the weight 1.0
    m1 = _model(compat_cli_weight=True)
    out1 = m1.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    assert math.isclose(float(out1["loss"].detach()), l_r + 1.0 * l_d, rel_tol=1e-10)
    # without the per-example weight: the plain mean of the two cross-entropies
    mn = _model(dis_sample_weight="none")
    out_n = mn.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        l_d1 = _disentangling(x_t, t, eps, g[torch.arange(B), concept], z, concept, enc, weighted=False)
    assert math.isclose(float(out_n["disentangling"]), l_d1, rel_tol=1e-9)
    # L1 error of L_r (the authors' configs' loss_type l1)
    ml1 = _model(recon_loss="l1", dis_weight=0.0)
    out_l1 = ml1.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        want = float((eps + _shift_coef(t) * g.sum(1) - noise).abs().mean())
    assert math.isclose(float(out_l1["loss"].detach()), want, rel_tol=1e-10)


def test_disdiff_disentangling_loss_gradient_flows_only_through_the_shifted_branch():
    """The code computes x0_hat, its encoding and the per-example weight under no_grad (or detached), and
    the clean code z detached: the gradient of L_d with respect to G_c is that of the formula above with
    only x0_hat^c (and its encoding) differentiable."""
    m = _model()
    x = _images(2)
    t = torch.tensor([40, 930])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    ab = _col([ABAR[k] for k in t.tolist()])
    x_t = ab.sqrt() * x + (1 - ab).sqrt() * noise
    concept = torch.tensor([2, 0])
    W = m.encoder.W.detach()
    z = (x.flatten(1) @ W).reshape(B, N, D)
    eps = 0.3 * x_t + 0.1
    g_c = (0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)).requires_grad_(True)
    got = m.disentangling_loss(x_t, t, eps, g_c, z, concept)
    (grad_got,) = torch.autograd.grad(got, g_c)

    g2 = g_c.detach().clone().requires_grad_(True)
    x0_hat = _x0(x_t, t, eps)
    x0_hat_c = _x0(x_t, t, eps - (1 - ab).sqrt() * g2)
    zh = (x0_hat.flatten(1) @ W).reshape(B, N, D)
    zc = (x0_hat_c.flatten(1) @ W).reshape(B, N, D)
    variant = (zh - z).norm(dim=-1) - (zc - z).norm(dim=-1)
    invariant = (zh - zc).norm(dim=-1)
    w = (x0_hat - x0_hat_c).pow(2).flatten(1).mean(1).detach()
    ce = (-variant.log_softmax(1)[torch.arange(B), concept] - invariant.log_softmax(1)[torch.arange(B), concept])
    want = (w * ce).mean()
    (grad_want,) = torch.autograd.grad(want, g2)
    assert math.isclose(float(got.detach()), float(want.detach()), rel_tol=1e-10)
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-9, atol=1e-14)
    # the encoder parameters get no gradient from the re-encoding (dis_encoder_grad False, the code's default)
    assert m.encoder.W.grad is None


def test_disdiff_x0_from_the_shifted_prediction_and_the_sampling_prediction():
    """x0_hat^c = (x_t - sqrt(1 - abar_t)(eps - sqrt(1 - abar_t) G)) / sqrt(abar_t)
    = x0_hat + (1 - abar_t) / sqrt(abar_t) G; sampling reads eps - sqrt(1 - abar_t) sum_c G_c."""
    m = _model()
    t = torch.tensor([0, 999])
    x_t = torch.randn(B, 3, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    units = torch.randn(B, N, D, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    eps, g = _fake_predict(x_t, t, units)
    ab = _col([ABAR[k] for k in t.tolist()])
    got = m.eps_with_units(x_t, t, units)
    torch.testing.assert_close(got, eps - (1 - ab).sqrt() * g.sum(1), rtol=1e-12, atol=0)
    shifted = m.schedule.eps_to_x0(x_t, t, got)
    torch.testing.assert_close(shifted, (x_t - (1 - ab).sqrt() * eps) / ab.sqrt() + (1 - ab) / ab.sqrt() * g.sum(1),
                               rtol=1e-10, atol=1e-12)


def test_disdiff_pretraining_is_l_simple_of_the_frozen_model():
    class Eps(nn.Module):
        def forward(self, x_t, t):
            return 0.5 * x_t - 0.001 * t.to(x_t.dtype)[:, None, None, None]

    torch.manual_seed(0)
    m = untrained_on_purpose(DisDiff(DisDiffConfig(stage="pretrain"))).double()
    m.unet = Eps()
    x = _images(4)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(9))
    t, noise, _ = _draws(9, x)
    ab = _col([ABAR[k] for k in t.tolist()])
    x_t = ab.sqrt() * x + (1 - ab).sqrt() * noise
    err = 0.5 * x_t - 0.001 * _col(t.tolist()) - noise
    assert math.isclose(float(out["loss"].detach()), float(err.pow(2).mean()), rel_tol=1e-12)
    m.config.recon_loss = "l1"  # the authors' configs' loss_type l1, in the pre-training stage too
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(9))
    assert math.isclose(float(out["loss"].detach()), float(err.abs().mean()), rel_tol=1e-12)


def test_disdiff_one_run_pretrains_below_pretrain_steps_then_disentangles():
    class Eps(nn.Module):
        def forward(self, x_t, t):
            return 0.5 * x_t

    m = _model(pretrain_steps=5)
    m.unet = Eps()
    x = _images(4)
    t, noise, _ = _draws(9, x)
    ab = _col([ABAR[k] for k in t.tolist()])
    x_t = ab.sqrt() * x + (1 - ab).sqrt() * noise
    for step in (0, 4):
        out = m.loss(x, step=step, generator=torch.Generator().manual_seed(9))
        assert math.isclose(float(out["loss"].detach()), float((0.5 * x_t - noise).pow(2).mean()), rel_tol=1e-12)
        assert "reconstruction" not in out
    out = m.loss(x, step=5, generator=torch.Generator().manual_seed(9))
    assert "reconstruction" in out and "disentangling" in out


def _expm(a: torch.Tensor) -> torch.Tensor:
    """exp(A) by scaling and squaring of a 30-term Taylor series (float64)."""
    s = max(0, int(math.ceil(math.log2(max(float(a.abs().sum(1).max()), 1e-300)))) + 1)
    a = a / 2 ** s
    out, term = torch.eye(a.shape[0], dtype=a.dtype), torch.eye(a.shape[0], dtype=a.dtype)
    for k in range(1, 30):
        term = term @ a / k
        out = out + term
    for _ in range(s):
        out = out @ out
    return out


def test_disdiff_orthogonal_part_embeddings_are_rows_of_exp_of_a_skew_matrix():
    torch.manual_seed(0)
    m = untrained_on_purpose(DisDiff(DisDiffConfig())).double()
    W = m.part_latents.detach()
    e = _expm(W - W.T)
    torch.testing.assert_close(e @ e.T, torch.eye(e.shape[0], dtype=e.dtype), rtol=0, atol=1e-10)
    want = e[:N] @ m.part_proj.weight.detach().T + m.part_proj.bias.detach()
    torch.testing.assert_close(m.part_embeddings().detach(), want, rtol=1e-9, atol=1e-10)
    # D/2 x D/2 with D the time-embedding width (4 x model_channels), as the code's part_latents
    assert tuple(W.shape) == (2 * m.config.unet.model_channels, 2 * m.config.unet.model_channels)


def test_disdiff_objective_names_its_bad_arguments():
    m = _model()
    with pytest.raises(ValueError, match="^step must be a non-negative int"):
        m.loss(_images(), step=-1)
    with pytest.raises(ValueError, match=r"^DisDiff\.loss: batch must have shape \[B, 3, 16, 16\]"):
        m.loss(torch.zeros(2, 1, 16, 16, dtype=torch.float64), step=0)
    with pytest.raises(TypeError, match="^shift_coefficients: schedule must be a NoiseSchedule, got int$"):
        shift_coefficients(3)


def test_disdiff_forward_process_and_l_r_stay_in_float32_for_a_bf16_model():
    """Under the trainer's bf16 autocast the (frozen) first stage returns bf16: x0 is widened to float32, so
    that t's noise, x_t and L_r are float32 (the same draws as a float32 model's)."""
    m = _model(dis_weight=0.0).to(torch.bfloat16)
    x = _images().bfloat16()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    assert out["reconstruction"].dtype == torch.float32
    g = torch.Generator().manual_seed(7)
    t = torch.randint(0, T, (B,), generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float32)
    ab = _col([ABAR[k] for k in t.tolist()]).float()
    x_t = ab.sqrt() * x.float() + (1 - ab).sqrt() * noise
    z = (x.flatten(1) @ m.encoder.W).reshape(B, N, D)  # bf16, as the model's units
    eps, gg = _fake_predict(x_t, t, z)
    want = (eps + _shift_coef(t).float() * gg.sum(1) - noise).pow(2).mean()
    assert math.isclose(float(out["reconstruction"]), float(want.detach()), rel_tol=1e-5)


def test_disdiff_compat_sanity_fit_runs_only_when_the_anchors_are_not_fitted():
    """DyGA on DisDiff under compat "dis-dis": the fit before the first disentangling step (Lightning's
    sanity batches) runs when the anchors are unfitted, and not for a model whose anchors are already fitted."""
    from diffrep.methods.dyga import DyGAConfig

    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for prefit in (False, True):
        torch.manual_seed(0)
        dyga = DyGAConfig(num_units=N, token_dim=D, n_components=2, max_components=2, min_mass=2.0, compat="dis-dis",
                          sanity_check_points=8, refresh_every=1)
        m = untrained_on_purpose(DisDiff(DisDiffConfig(dyga=dyga, sample_steps=2)))
        if prefit:
            m.refresh_anchors(data)
        m.attach_anchor_data([(img, 0) for img in data], 2, batch_size=4)
        fits = []
        m._refit = fits.append
        m.train()
        m.loss(data[:2], step=0, generator=torch.Generator().manual_seed(1))
        assert [f.epoch for f in fits] == ([] if prefit else [0]), prefit
