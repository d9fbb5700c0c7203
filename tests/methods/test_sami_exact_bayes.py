"""The exact-Bayes check of SAMI's guidance (issue 17, item 13).

A linear-Gaussian model whose posteriors are known in closed form:

    z ~ N(0, I_d),   x_0 = A z + c + s e_0,   A = U diag(lam) (U with orthonormal columns),   e_0 ~ N(0, I_D),
    x_t = a x_0 + b eps,   a = sqrt(abar_t),  b = sqrt(1 - abar_t)   (DDPM forward q(x_t | x_0)).

Gaussian conditioning gives every quantity SAMI needs:

* E[eps | x_t] = b C_t^{-1} (x_t - a c),  C_t = a^2 A A^T + (a^2 s^2 + b^2) I   (the exact denoiser);
* p(z | x_t) = N(a A^T C_t^{-1} (x_t - a c), I - a^2 A^T C_t^{-1} A), diagonal because A's columns are
  orthogonal (the exact inference network; at t = "clean", a = 1 and b = 0);
* E[eps | x_t, z] = b / kappa_t (x_t - a A z - a c),  kappa_t = a^2 s^2 + b^2, from x_t | z ~ N(a(Az + c), kappa_t I).

With the exact denoiser and encoder plugged into :class:`diffrep.methods.sami.SAMI`, the guided prediction
eps_theta - gamma_t grad log q(z | x_t) (Eq. 8) must equal E[eps | x_t, z], and the loss (Eq. 10) the
closed form built from it, to 1e-10 in float64; with the guidance sign flipped both must fail. The test
computes the encoder and denoiser by generic dense conditioning and the targets by the structured
formulas above, so the two sides share no code.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import tiny_sami

D_SHAPE = (1, 8, 8)
D = 64
# the scale keeps the model's x_0 inside [-1, 1], the image range SAMI.loss checks on entry (the 400 x 64 values
# of the Monte Carlo test reach -0.91; at 2.5 times this scale they reached -2.3)
LAM = torch.tensor([0.6, 0.32, 0.12], dtype=torch.float64)
S_NOISE = 0.08
C_SCALE = 0.04


def _model_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(D, 3, generator=g, dtype=torch.float64))
    c = C_SCALE * torch.randn(D, generator=g, dtype=torch.float64)
    return U * LAM, U, c


def _dense_posterior(A, c, a, b, x):
    """p(z | x_t) by dense Gaussian conditioning: mean [N, d], diagonal variance [d] (asserted diagonal)."""
    C = a**2 * A @ A.T + (a**2 * S_NOISE**2 + b**2) * torch.eye(D, dtype=torch.float64)
    K = torch.linalg.solve(C, a * A)  # C^{-1} a A  [D, d]
    mean = (x.flatten(1) - a * c) @ K
    cov = torch.eye(3, dtype=torch.float64) - a * A.T @ K
    assert (cov - torch.diag(torch.diagonal(cov))).abs().max() < 1e-12  # orthogonal columns: diagonal posterior
    return mean, torch.diagonal(cov)


class ExactEncoder(nn.Module):
    """q(z | x) = p(z | x_t) for rows whose noise level ``abar`` (a [N] tensor) the test sets first."""

    def __init__(self, A, c):
        super().__init__()
        self.A, self.c = A, c
        self.abar = None
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))  # the model's device and dtype

    def forward(self, x):
        assert self.abar is not None and self.abar.shape == (x.shape[0],)
        mus, lvs = [], []
        for i in range(x.shape[0]):
            ab = self.abar[i]
            mean, var = _dense_posterior(self.A, self.c, ab.sqrt(), (1 - ab).sqrt(), x[i:i + 1])
            mus.append(mean)
            lvs.append(var.log()[None])
        return torch.cat(mus), torch.cat(lvs)


class ExactDenoiser(nn.Module):
    """eps_theta(x_t, t) = E[eps | x_t] = b C_t^{-1} (x_t - a c) (dense solve)."""

    def __init__(self, A, c, schedule):
        super().__init__()
        self.A, self.c, self.schedule = A, c, schedule

    def forward(self, x, t):
        out = []
        for i in range(x.shape[0]):
            ab = self.schedule.alphas_cumprod[t[i]].double()
            a, b = ab.sqrt(), (1 - ab).sqrt()
            C = a**2 * self.A @ self.A.T + (a**2 * S_NOISE**2 + b**2) * torch.eye(D, dtype=torch.float64)
            out.append(b * torch.linalg.solve(C, x[i].flatten() - a * self.c))
        return torch.stack(out).reshape(x.shape)


def _exact_model(**kw):
    A, U, c = _model_params()
    m = tiny_sami(**kw)
    m.encoder = ExactEncoder(A, c)
    m.denoiser = ExactDenoiser(A, c, m.schedule)
    return m, A, U, c


def _data(B, seed=1):
    """x_0 drawn from the model itself (the check holds for any x_0, but these are typical)."""
    A, _, c = _model_params()
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, 3, generator=g, dtype=torch.float64)
    return (z @ A.T + c + S_NOISE * torch.randn(B, D, generator=g, dtype=torch.float64)).reshape(B, *D_SHAPE)


def _closed_form_eps(A, c, ab, x_t, z):
    """E[eps | x_t, z] = b / kappa (x_t - a A z - a c), per row (ab [B])."""
    a, b = ab.sqrt()[:, None], (1 - ab).sqrt()[:, None]
    kappa = a**2 * S_NOISE**2 + b**2
    return (b / kappa * (x_t.flatten(1) - a * (z @ A.T) - a * c)).reshape(x_t.shape)


def _clean_posterior(U, c, x0):
    """p(z | x_0) by the structured formula: mean lam/(lam^2 + s^2) U^T (x_0 - c), variance s^2/(lam^2 + s^2)."""
    mean = (x0.flatten(1) - c) @ U * (LAM / (LAM**2 + S_NOISE**2))
    return mean, S_NOISE**2 / (LAM**2 + S_NOISE**2)


@pytest.mark.parametrize("t", [0, 5, 12, 19])
def test_guided_prediction_is_the_exact_conditional_noise(t):
    m, A, U, c = _exact_model()
    B = 4
    x0 = _data(B)
    g = torch.Generator().manual_seed(2)
    tt = torch.full((B,), t)
    x_t = m.schedule.q_sample(x0, tt, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    z = torch.randn(B, 3, generator=g, dtype=torch.float64) * 1.3
    ab = m.schedule.alphas_cumprod[tt].double()
    m.encoder.abar = ab
    want = _closed_form_eps(A, c, ab, x_t, z)
    got = m.guided_eps(x_t, tt, z)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    # the guidance is not negligible here: without it the prediction is far off
    assert (m.denoise(x_t, tt) - want).abs().max() > 1e-3
    # a flipped guidance sign fails the same check
    k = m._guidance_coefficient  # the coefficient guided_eps and loss apply
    m._guidance_coefficient = lambda *a_, **kw: -k(*a_, **kw)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(m.guided_eps(x_t, tt, z), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("S_", [1, 3])
def test_loss_is_the_closed_form_with_the_exact_networks(S_):
    beta = 0.37
    m, A, U, c = _exact_model(kl_weight=beta, train_samples=S_)
    B = 5
    x0 = _data(B, seed=4)
    g = torch.Generator().manual_seed(3)
    t = torch.tensor([0, 3, 9, 14, 19])
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    zn = torch.randn(S_, B, 3, generator=g, dtype=torch.float64)
    ab = m.schedule.alphas_cumprod[t].double()
    m.encoder.abar = torch.cat([torch.ones(B, dtype=torch.float64), ab])  # the loss encodes [x_0; x_t]
    out = m.loss(x0, t=t, noise=noise, z_noise=zn)

    mu0, var0 = _clean_posterior(U, c, x0)
    x_t = ab.sqrt()[:, None, None, None] * x0 + (1 - ab).sqrt()[:, None, None, None] * noise
    per = torch.stack([((noise - _closed_form_eps(A, c, ab, x_t, mu0 + var0.sqrt() * zn[s])) ** 2).flatten(1).mean(1)
                       for s in range(S_)]).mean(0)
    loss_x = per.mean()
    kl = (0.5 * (mu0**2 + var0 - var0.log() - 1)).sum(1).mean()
    torch.testing.assert_close(out["loss_x"], loss_x, rtol=0, atol=1e-10)
    torch.testing.assert_close(out["kl"], kl, rtol=0, atol=1e-10)
    torch.testing.assert_close(out["loss"], loss_x + beta * kl, rtol=0, atol=1e-10)
    torch.testing.assert_close(out["mse_guided"], loss_x, rtol=0, atol=1e-10)
    assert float(out["mse_uncond"]) > float(loss_x) + 1e-3  # the exact guidance lowers the error
    k = m._guidance_coefficient  # the coefficient guided_eps and loss apply
    m._guidance_coefficient = lambda *a_, **kw: -k(*a_, **kw)
    flipped = m.loss(x0, t=t, noise=noise, z_noise=zn)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(flipped["loss_x"], loss_x, rtol=0, atol=1e-10)


def test_expected_loss_is_the_bayes_error():
    """E over (x_0, eps, z ~ q(z | x_0)) of the per-pixel guided error at a fixed t is the conditional
    variance of eps given (x_t, z): 1 - b^2 / kappa = a^2 s^2 / kappa (Monte Carlo, 4 standard errors)."""
    m, A, U, c = _exact_model()
    B, t = 400, 8
    x0 = _data(B, seed=9)
    g = torch.Generator().manual_seed(5)
    tt = torch.full((B,), t)
    ab = m.schedule.alphas_cumprod[tt].double()
    m.encoder.abar = torch.cat([torch.ones(B, dtype=torch.float64), ab])
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    out = m.loss(x0, t=tt, noise=noise, z_noise=torch.randn(1, B, 3, generator=g, dtype=torch.float64))
    a2 = float(ab[0])
    want = a2 * S_NOISE**2 / (a2 * S_NOISE**2 + 1 - a2)
    # per-pixel errors are (b/kappa)^2 (a s e0 - b eps)^2-like chi-square terms: SE ~ want * sqrt(2 / (B D))
    assert float(out["mse_guided"]) == pytest.approx(want, rel=4 * math.sqrt(2 / (B * D)))
