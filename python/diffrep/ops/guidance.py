"""The SAMI guidance score: log q(z | x_t) of the encoder's diagonal Gaussian posterior, with
analytic first and second derivatives.

SAMI (Lyo, Simoncelli, Savin, arXiv 2512.17127), Eq. 9 and 11; derivations and errata in
docs/methods/sami.md#eq-9-and-11-guidance-score and docs/kernels/guidance.md#second-derivatives. Given the encoder's outputs for the noisy input, mu_t and
logvar_t = log sigma_t^2 (B, D), and S samples z (S, B, D) from the clean-input posterior
q(z | x_0), :func:`log_posterior` returns

    mean_s log q(z_s | x_t) = mean_s -1/2 sum_j [(z_sj - mu_j)^2 / sigma_j^2 + log sigma_j^2 + log 2 pi]

per row (B,). The guidance g = grad_{x_t} log q(z | x_t) is then one encoder VJP:
``torch.autograd.grad(log_posterior(z, mu_t, logvar_t).sum(), x_t, create_graph=True)``; the
cotangents on (mu_t, logvar_t) are u = m1/sigma^2 and (m2/sigma^2 - 1)/2 with m1, m2 the
sample means of (z - mu) and (z - mu)^2 (docs/kernels/guidance.md#eq-9-the-guidance-as-one-vjp, log-variance form).

Training puts g inside the loss (docs/methods/sami.md#double-backward), so the op supports double backward: the native
backward is itself a differentiable op whose backward applies the analytic second derivatives
(docs/kernels/guidance.md#second-derivatives), so ``create_graph=True`` works and ``gradgradcheck`` passes. z carries gradient
too: SAMI's z is a reparameterised sample whose graph to the encoder is kept (pass
``z.detach()`` for the ``detach_z`` ablation). Third and higher derivatives need the reference
backend (``diffrep.ops.use_backend("reference")``).

The log-det term is the Gaussian sum_j log sigma_j^2, not Algorithms 1-2's "log|sigma_t I|"
(docs/methods/sami.md#eq-9-and-11-guidance-score). ``constant=False`` drops the D/2 log 2 pi term (it has no gradient).
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from . import _validate as V
from ._dispatch import register, select
from ._native_call import NON_FINITE, raise_flags, run_deferrable, run_unflagged
from .reference import guidance as ref

__all__ = ["log_posterior"]


def _prep(z, mu, logvar, *, constant=True):
    p = SimpleNamespace()
    V.tensor("z", z)
    V.tensor("mu", mu)
    V.tensor("logvar", logvar)
    if mu.dim() != 2:
        raise ValueError(f"mu must have shape (B, D), got {tuple(mu.shape)}")
    if mu.numel() == 0:
        raise ValueError(f"mu is empty (shape {tuple(mu.shape)})")
    V.same_shape("logvar", logvar, "mu", mu)
    if z.dim() == 2:
        V.same_shape("z", z, "mu", mu)
    elif z.dim() == 3:
        if tuple(z.shape[1:]) != tuple(mu.shape):
            raise ValueError(f"z must have shape (S, {mu.shape[0]}, {mu.shape[1]}) or {tuple(mu.shape)}, "
                             f"got {tuple(z.shape)}")
        if z.shape[0] == 0:
            raise ValueError("z holds S = 0 samples; need S >= 1")
    else:
        raise ValueError(f"z must have shape (S, B, D) or (B, D), got {tuple(z.shape)}")
    if not isinstance(constant, bool):
        raise TypeError(f"constant must be a bool, got {type(constant).__name__}")
    p.constant = constant
    p.dtype = V.float_dtype(z=z, mu=mu, logvar=logvar)
    p.device = V.same_device(z=z, mu=mu, logvar=logvar)
    p.z = (z if z.dim() == 3 else z.unsqueeze(0)).to(p.dtype).contiguous()
    p.mu = mu.to(p.dtype).contiguous()
    p.logvar = logvar.to(p.dtype).contiguous()
    p.S = p.z.shape[0]
    needs_grad = torch.is_grad_enabled() and any(v.requires_grad for v in (z, mu, logvar))
    p.choice = select("guidance.log_posterior", p.device, needs_grad=needs_grad, native_grad=True)
    return p


def _fail(flags: int) -> None:
    raise_flags("log_posterior", flags, {NON_FINITE: "z, mu or logvar contains NaN or infinite values "
                                                     "(or exp(-logvar) overflows)"})


class _LogPosterior(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, mu, logvar, p):
        out = torch.empty(mu.shape[0], dtype=mu.dtype, device=mu.device)
        flags = run_deferrable(p.choice.backend, "log_posterior_fwd", mu.device, _fail, z=z.detach(), mu=mu.detach(),
                               logvar=logvar.detach(), samples=p.S, constant=ref.LOG_2PI if p.constant else 0.0,
                               out=out)
        if flags:
            _fail(flags)
        ctx.save_for_backward(z, mu, logvar)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad):
        z, mu, logvar = ctx.saved_tensors
        d_z, d_mu, d_lv = _LogPosteriorBackward.apply(grad.contiguous(), z, mu, logvar, ctx.p)
        return d_z, d_mu, d_lv, None


class _LogPosteriorBackward(torch.autograd.Function):
    """The first derivatives as a function of (grad, z, mu, logvar); its backward applies the
    analytic second derivatives (docs/kernels/guidance.md#second-derivatives), which is what double backward needs."""

    @staticmethod
    def forward(ctx, grad, z, mu, logvar, p):
        d_z, d_mu, d_lv = torch.empty_like(z), torch.empty_like(mu), torch.empty_like(logvar)
        run_unflagged(p.choice.backend, "log_posterior_bwd", mu.device, grad=grad.detach(), z=z.detach(),
                      mu=mu.detach(), logvar=logvar.detach(), samples=p.S, d_z=d_z, d_mu=d_mu, d_logvar=d_lv)
        ctx.save_for_backward(grad, z, mu, logvar)
        ctx.p = p
        ctx.set_materialize_grads(False)
        return d_z, d_mu, d_lv

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gz, gmu, glv):
        grad, z, mu, logvar = ctx.saved_tensors
        if gz is None and gmu is None and glv is None:
            return None, None, None, None, None
        g_bar, z_bar = torch.empty_like(grad), torch.empty_like(z)
        mu_bar, lv_bar = torch.empty_like(mu), torch.empty_like(logvar)
        gz, gmu, glv = (t.contiguous() if t is not None else None for t in (gz, gmu, glv))
        run_unflagged(ctx.p.choice.backend, "log_posterior_bwd2", mu.device, grad=grad.detach(), z=z.detach(),
                      mu=mu.detach(), logvar=logvar.detach(), samples=ctx.p.S, grad_d_z=gz, grad_d_mu=gmu,
                      grad_d_logvar=glv, g_bar=g_bar, z_bar=z_bar, mu_bar=mu_bar, logvar_bar=lv_bar)
        return g_bar, z_bar, mu_bar, lv_bar, None


def log_posterior(z, mu, logvar, *, constant=True):
    """mean over samples of log q(z | x_t) for q = N(mu, diag(exp(logvar))), per row.

    ``z``: (S, B, D) samples, or (B, D) for S = 1; ``mu``, ``logvar``: (B, D) encoder outputs
    at the noisy input; returns (B,). Differentiable w.r.t. z, mu and logvar to second order
    (docs/methods/sami.md#double-backward and docs/kernels/guidance.md#second-derivatives). ``constant``: include -D/2 log 2 pi.
    """
    p = _prep(z, mu, logvar, constant=constant)
    if p.choice.backend == "reference":
        for name, v in (("z", p.z), ("mu", p.mu), ("logvar", p.logvar)):
            V.finite(name, v)
        return ref.log_posterior(p.z, p.mu, p.logvar, p.constant)
    return _LogPosterior.apply(p.z, p.mu, p.logvar, p)


register("guidance.log_posterior")(lambda *a, **k: _prep(*a, **k).choice)
