"""BFN output kernels: the discretised output distribution's bin probabilities and the fused
continuous-time (L^inf) losses for discretised and discrete data, with their analytic backward.

Part of :mod:`diffrep.ops.bfn` (which re-exports every name here; its docstring states the
conventions); the twin is :mod:`diffrep.ops.reference.bfn`, the maths docs/kernels/bfn.md.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from .._checks import finite_float
from . import _validate as V
from ._bfn_common import (_batch_float, _check_classes, _explainer, _grad, _sigma1, call, fast_pair, flag_raiser,
                          row_len)
from ._dispatch import select
from ._native_call import CLASS_OUT_OF_RANGE, NON_FINITE, NON_POSITIVE, OUTSIDE_DATA_RANGE
from .reference import bfn as ref

__all__ = ["discretised_probs", "discretised_continuous_time_loss", "discrete_continuous_time_loss"]

# ----------------------------------------------------------------------------- discretised output
def _probs_forward(mu_x, sigma_x, K, clip, backend):
    out = torch.empty((*mu_x.shape, K), dtype=mu_x.dtype, device=mu_x.device)
    fail = flag_raiser("discretised_probs", {NON_FINITE: "mu_x or sigma_x contains NaN or infinite values",
                                             NON_POSITIVE: "sigma_x must be > 0"})
    flags = call(backend, "disc_probs", mu_x.device, fail, mu_x=mu_x, sigma_x=sigma_x, K=K, clip=clip, out=out)
    if flags:
        fail(flags)
    return out


class _DiscretisedProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu_x, sigma_x, K, clip, backend):
        out = _probs_forward(mu_x, sigma_x, K, clip, backend)
        ctx.save_for_backward(mu_x, sigma_x)
        ctx.K, ctx.clip, ctx.backend = K, clip, backend
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        mu_x, sigma_x = ctx.saved_tensors
        d_mu, d_sigma = torch.empty_like(mu_x), torch.empty_like(sigma_x)
        call(ctx.backend, "disc_probs_backward", mu_x.device, None, mu_x=mu_x.detach(), sigma_x=sigma_x.detach(),
             grad=grad.contiguous(), K=ctx.K, clip=ctx.clip, d_mu=d_mu, d_sigma=d_sigma)
        return d_mu, d_sigma, None, None, None


def _prep_discretised_probs(mu_x, sigma_x, num_bins, clip=True):
    p = SimpleNamespace()
    dtype = fast_pair(mu_x, sigma_x)
    if dtype is not None:  # the common case, checked in ~1 us
        p.dtype, p.device, p.mu_x, p.sigma_x = dtype, mu_x.device, mu_x, sigma_x
    else:
        V.tensor("mu_x", mu_x)
        V.tensor("sigma_x", sigma_x)
        V.same_shape("sigma_x", sigma_x, "mu_x", mu_x)
        if mu_x.numel() == 0:
            raise ValueError(f"mu_x is empty (shape {tuple(mu_x.shape)})")
        p.dtype = V.float_dtype(mu_x=mu_x, sigma_x=sigma_x)
        p.device = V.same_device(mu_x=mu_x, sigma_x=sigma_x)
        p.mu_x = mu_x.to(p.dtype).contiguous()
        p.sigma_x = sigma_x.to(p.dtype).contiguous()
    p.K = V.num_classes("num_bins", num_bins)
    p.clip = bool(clip)
    p.grad = _grad(mu_x, sigma_x)
    p.choice = select("bfn.discretised_probs", p.device, needs_grad=p.grad, native_grad=True)
    return p


def discretised_probs(mu_x, sigma_x, num_bins, clip=True):
    """Bin probabilities of N(mu_x, sigma_x) discretised into K bins on [-1, 1] (BFN Eq. 103-104;
    reference `DiscretizedCtsDistribution.probs`).

    clip=True: p_1 = Phi(b_1), p_k = Phi(b_k) - Phi(b_{k-1}), p_K = 1 - Phi(b_{K-1}), the edge bins
    absorbing the tails. clip=False: renormalised by R = Phi(1) - Phi(-1), uniform 1/K where
    R < 1e-5. Returns (..., K), contiguous (the reference returns a moveaxis view, same values).
    Differentiable w.r.t. mu_x and sigma_x (first order).
    """
    p = _prep_discretised_probs(mu_x, sigma_x, num_bins, clip)
    if p.choice.backend == "reference":
        V.finite("mu_x", p.mu_x)
        V.nonnegative("sigma_x", p.sigma_x, strict=True)
        return ref.discretised_probs(p.mu_x, p.sigma_x, p.K, p.clip)
    if not p.grad:  # autograd.Function.apply alone costs ~10 us
        return _probs_forward(p.mu_x, p.sigma_x, p.K, p.clip, p.choice.backend)
    return _DiscretisedProbs.apply(p.mu_x, p.sigma_x, p.K, p.clip, p.choice.backend)


_explainer("bfn.discretised_probs", _prep_discretised_probs)


# ----------------------------------------------------------------------------- losses
def _prep_loss_common(p, x, t, sigma1):
    p.sigma1 = _sigma1(sigma1)
    p.t, p.t_per_row = V.per_sample("t", t, p.x, p.dtype)


class _DiscretisedCtsLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out_mean, out_log_sigma, mu, t, x, args):
        p = args
        want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        loss = torch.empty_like(p.x)
        d_mean = torch.empty_like(p.x) if want_grad else loss
        d_log_sigma = torch.empty_like(p.x) if want_grad else loss
        fail = flag_raiser("discretised_continuous_time_loss",
                           {NON_FINITE: "out_mean, out_log_sigma, mu or x contains NaN or infinite values",
                            OUTSIDE_DATA_RANGE: f"x {V.DATA_RANGE_MESSAGE}"}, p.t)
        flags = call(p.choice.backend, "disc_cts_loss", p.device, fail, out_mean=out_mean.detach(),
                     out_log_sigma=out_log_sigma.detach(), mu=mu.detach(), t=t.detach(), t_per_row=p.t_per_row,
                     row_len=row_len(p.x), x=x.detach(), log_s1sq=p.log_s1sq, K=p.K, clip=p.clip,
                     noise_pred=p.noise_pred, min_loss_var=p.min_loss_variance, want_grad=want_grad, loss=loss,
                     d_mean=d_mean, d_log_sigma=d_log_sigma)
        if flags:
            fail(flags)
        if want_grad:
            ctx.save_for_backward(d_mean, d_log_sigma)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        d_mean, d_log_sigma = ctx.saved_tensors
        return grad * d_mean, grad * d_log_sigma, None, None, None, None


def _prep_discretised_cts_loss(out_mean, out_log_sigma, mu, t, x, sigma1, num_bins, clip=True, noise_pred=True,
                               min_loss_variance=-1.0):
    p = SimpleNamespace()
    _batch_float("out_mean", out_mean)
    V.tensor("out_log_sigma", out_log_sigma)
    V.tensor("x", x)
    V.same_shape("out_log_sigma", out_log_sigma, "out_mean", out_mean)
    V.same_shape("x", x, "out_mean", out_mean)
    p.noise_pred = bool(noise_pred)
    if p.noise_pred:
        V.tensor("mu", mu)
        V.same_shape("mu", mu, "out_mean", out_mean)
    p.K = V.num_classes("num_bins", num_bins)
    p.clip = bool(clip)
    p.min_loss_variance = finite_float(min_loss_variance, "min_loss_variance")
    p.dtype = V.float_dtype(out_mean=out_mean, out_log_sigma=out_log_sigma, x=x)
    p.device = V.same_device(out_mean=out_mean, out_log_sigma=out_log_sigma, x=x,
                             **({"mu": mu} if p.noise_pred else {}))
    p.out_mean = out_mean.to(p.dtype).contiguous()
    p.out_log_sigma = out_log_sigma.to(p.dtype).contiguous()
    p.mu = mu.to(p.dtype).contiguous() if p.noise_pred else p.out_mean
    p.x = x.to(p.dtype).contiguous()
    _prep_loss_common(p, x, t, sigma1)
    p.log_s1sq = 2.0 * math.log(p.sigma1)
    other_grad = _grad(x, t) or (p.noise_pred and _grad(mu))
    reasons = ["a gradient w.r.t. mu, t or x was requested (the kernel differentiates the network outputs only)"] \
        if other_grad else []
    p.choice = select("bfn.discretised_continuous_time_loss", p.device, needs_grad=_grad(out_mean, out_log_sigma),
                      native_grad=True, native_reasons=reasons)
    return p


def discretised_continuous_time_loss(out_mean, out_log_sigma, mu, t, x, sigma1, num_bins, clip=True,
                                     noise_pred=True, min_loss_variance=-1.0):
    """L^inf for discretised data (BFN Eq. 122), fused: -ln(sigma1) sigma1^(-2t) (x - x_hat)^2.

    x_hat = sum_k p_k k_c is the mean of the discretised Normal output, computed by Abel summation
    from the K - 1 interior boundary CDFs (K + 1 with clip=False) so that the B x D x K bin tensor
    is never built (docs/kernels/bfn.md#discretised-output-distribution). The network outputs are (eps_hat, ln sigma_eps) with
    ``noise_pred`` (reference CIFAR configs; converted with the flow mean ``mu`` and t) or
    (mu_x, ln sigma_x) otherwise; sigma_x is clamped to [1e-3, 10]; ``min_loss_variance`` > 0
    floors sigma1^(2t) as the reference does. ``x`` is the data in [-1, 1] (anything outside is an
    error: data left in [0, 255] would train against a finite, meaningless loss). Returns the
    per-element loss (x's shape; the reference averages it); differentiable w.r.t. ``out_mean`` and
    ``out_log_sigma``.
    """
    p = _prep_discretised_cts_loss(out_mean, out_log_sigma, mu, t, x, sigma1, num_bins, clip, noise_pred,
                                   min_loss_variance)
    if p.choice.backend == "reference":  # the native kernels check t themselves (flag_raiser)
        V.time_in_unit_interval("t", p.t)
        for name, v in (("out_mean", p.out_mean), ("out_log_sigma", p.out_log_sigma), ("x", p.x), ("mu", p.mu)):
            V.finite(name, v)
        V.in_data_range("x", p.x)
        return ref.discretised_continuous_time_loss(p.out_mean, p.out_log_sigma, p.mu if p.noise_pred else None,
                                                    p.t, p.x, p.sigma1, p.K, p.clip, p.noise_pred,
                                                    p.min_loss_variance)
    return _DiscretisedCtsLoss.apply(p.out_mean, p.out_log_sigma, p.mu, p.t, p.x, p)


_explainer("bfn.discretised_continuous_time_loss", _prep_discretised_cts_loss)


class _DiscreteCtsLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, x, t, args):
        p = args
        want_grad = ctx.needs_input_grad[0]
        loss = torch.empty(p.x.shape, dtype=p.dtype, device=p.device)
        d_logits = torch.empty_like(logits) if want_grad else loss
        fail = flag_raiser("discrete_continuous_time_loss",
                           {CLASS_OUT_OF_RANGE: f"x holds a class outside [0, {p.K})",
                            NON_FINITE: "logits contain NaN or infinite values"}, p.t)
        flags = call(p.choice.backend, "discrete_cts_loss", p.device, fail, logits=logits.detach(), x=x,
                     t=t.detach(), t_per_row=p.t_per_row, row_len=row_len(p.x), K=p.K, beta1=p.beta1,
                     want_grad=want_grad, loss=loss, d_logits=d_logits)
        if flags:
            fail(flags)
        if want_grad:
            ctx.save_for_backward(d_logits)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (d_logits,) = ctx.saved_tensors
        return grad.unsqueeze(-1) * d_logits, None, None, None


def _prep_discrete_cts_loss(logits, x, t, beta1):
    p = SimpleNamespace()
    _batch_float("logits", logits)
    V.integer_classes("x", x)
    if tuple(logits.shape[:-1]) != tuple(x.shape):
        raise ValueError(f"logits has shape {tuple(logits.shape)}; x must have shape {tuple(logits.shape[:-1])}, "
                         f"got {tuple(x.shape)}")
    if logits.shape[-1] == 1:  # a Bernoulli logit l: softmax([0, l]) = [1 - sigmoid(l), sigmoid(l)]
        logits = torch.cat([torch.zeros_like(logits), logits], -1)
    p.K = V.num_classes("logits.shape[-1] (the number of classes)", logits.shape[-1])
    p.beta1 = V.positive_scalar("beta1", beta1)
    p.dtype = V.float_dtype(logits=logits)
    p.device = V.same_device(logits=logits, x=x)
    p.logits = logits.to(p.dtype).contiguous()
    p.x = x.to(torch.int64).contiguous()
    p.t, p.t_per_row = V.per_sample("t", t, p.x, p.dtype)
    reasons = ["a gradient w.r.t. t was requested"] if _grad(t) else []
    p.choice = select("bfn.discrete_continuous_time_loss", p.device, needs_grad=_grad(logits), native_grad=True,
                      native_reasons=reasons)
    return p


def discrete_continuous_time_loss(logits, x, t, beta1):
    """L^inf for discrete data (BFN Eq. 205): K beta1 t ||e_x - p||^2 with p = softmax(logits),
    per element (reference `DiscreteBayesianFlowLoss.cts_time_loss`).

    ``logits``: (B, ..., K), or (B, ..., 1) Bernoulli logits for K = 2 (the MNIST configuration);
    ``x``: integer classes (B, ...). Fused softmax + loss + gradient in one pass.
    """
    p = _prep_discrete_cts_loss(logits, x, t, beta1)
    if p.choice.backend == "reference":  # the native kernels check t themselves (flag_raiser)
        V.time_in_unit_interval("t", p.t)
        _check_classes("x", p.x, p.K)
        V.finite("logits", p.logits)
        full = torch.cat([torch.zeros_like(logits), logits], -1) if logits.shape[-1] == 1 else logits
        return ref.discrete_continuous_time_loss(full.to(p.dtype), p.x, p.t, p.beta1)
    return _DiscreteCtsLoss.apply(p.logits, p.x, p.t, p)


_explainer("bfn.discrete_continuous_time_loss", _prep_discrete_cts_loss)
