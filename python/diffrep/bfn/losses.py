"""BFN losses, per example (summed over data dimensions): nats per example, shape (B,).

* :func:`continuous_time_loss`: L^inf (BFN Eq. 101, 122, 205), through the fused native kernels
  (Eq. 122, 205) or :mod:`.loss_terms` (Eq. 101);
* :func:`discrete_time_loss`: L^n (BFN Eq. 96, 121, 189-190) at i = t n + 1, t on {0, 1/n, ..., (n-1)/n}
  (the reference's grid), Monte-Carlo over ``n_samples`` sender draws where the KL has no closed form;
* :func:`reconstruction_loss`: L^r = -ln p_O(x | theta, 1) (BFN Eq. 26).

Divide by the number of data dimensions for the reference's "nats per dimension". With a discretised
output, x is snapped to the K bin centres first (:func:`diffrep.bfn.quantize`, idempotent; the
discretised flow's ``prepare_data`` already does it).

Discrete data, discrete time: the receiver is the exact K-dimensional mixture by default. Because
the sender is N(alpha (K e_x - 1), alpha K I), the log-ratio collapses to
ln p_S(y) - ln p_R(y) = y_x - logsumexp_k(ln p_k + y_k), evaluated per dimension. ``receiver=
"factorised"`` reproduces the reference's per-coordinate mixture (docs/kernels/bfn.md#discrete-flow).

Precision: each loss is computed in the network output's dtype, at least float32 (:func:`loss_dtype`):
float32 for a float32 or half-precision network, float64 for a float64 model (docs/kernels/bfn.md#precision).
"""

from __future__ import annotations

import math

import torch

from .._checks import positive_int
from ..ops import bfn as ops
from . import loss_terms
from .distributions import CategoricalOutput, DeltaOutput, DiscretisedNormalOutput, check_out, check_parts
from .flows import FlowState
from .quantize import quantize
from .schedules import discrete_alpha

__all__ = ["continuous_time_loss", "discrete_time_loss", "reconstruction_loss", "per_example_sum", "loss_dtype"]


def loss_dtype(net_out) -> torch.dtype:
    """The dtype a loss is computed in: the network output's (a tensor, or the discretised output's pair),
    at least float32 (the weight sigma1^(-2t) reaches 10^6; a float64 model keeps float64)."""
    parts = net_out if isinstance(net_out, (tuple, list)) else (net_out,)
    floats = [v.dtype for v in parts if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not floats:
        raise TypeError(f"net_out must be the network output (a floating-point tensor or a tuple of them), got "
                        f"{type(net_out).__name__}")
    dtype = torch.float32
    for d in floats:
        dtype = torch.promote_types(dtype, d)
    return dtype


def per_example_sum(v: torch.Tensor) -> torch.Tensor:
    """The sum over all but the first (batch) dimension: (B, ...) -> (B,)."""
    if not isinstance(v, torch.Tensor) or v.is_complex() or v.dim() < 1:
        raise TypeError(f"v must be a real tensor (B, ...), got {getattr(v, 'dtype', type(v).__name__)}"
                        f"{tuple(getattr(v, 'shape', ()))}")
    return v.reshape(v.shape[0], -1).sum(1)


def continuous_time_loss(flow, output, net_out, x: torch.Tensor, state: FlowState) -> torch.Tensor:
    """L^inf per example: -ln(sigma1) sigma1^(-2t) ||x - x_hat||^2 (continuous/discretised data) or
    K beta(1) t ||e_x - e_hat||^2 (discrete data), with the state's t."""
    check_parts(flow, output, state, x)
    dt = loss_dtype(net_out)
    if isinstance(output, CategoricalOutput):
        logits = output.logits(net_out, x.shape)
        return per_example_sum(ops.discrete_continuous_time_loss(logits.to(dt), x, state.t.to(dt), flow.beta1))
    mu = state.params.to(dt)
    if isinstance(output, DeltaOutput):
        check_out(net_out, x.shape, "DeltaOutput")
        out = output.eps(net_out) if output.noise_pred else net_out
        return per_example_sum(loss_terms.continuous_time_loss(
            out.to(dt), x.to(dt), state.t.to(dt), flow.sigma1, mu=mu, noise_pred=output.noise_pred,
            clip_range=output.clip_range))
    if isinstance(output, DiscretisedNormalOutput):
        mean, log_sigma = output.split(net_out)
        x = quantize(x.to(dt), output.K)
        return per_example_sum(ops.discretised_continuous_time_loss(
            mean.to(dt), log_sigma.to(dt), mu, state.t.to(dt), x, flow.sigma1, output.K, clip=output.clip,
            noise_pred=output.noise_pred))
    raise TypeError(f"unknown output distribution {type(output).__name__}")


def _discrete_data_kl(logits: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, K: int, n_samples: int,
                      receiver: str, generator) -> torch.Tensor:
    """MC estimate of KL(p_S || p_R) per dimension for discrete data; ``alpha`` broadcastable to x."""
    a = alpha.unsqueeze(-1)  # (..., 1)
    onehot = torch.nn.functional.one_hot(x, K).to(logits.dtype)
    eps = torch.randn((n_samples, *onehot.shape), generator=generator, device=logits.device, dtype=logits.dtype)
    y = a * (K * onehot - 1) + torch.sqrt(a * K) * eps  # (S, ..., K)
    logp = torch.log_softmax(logits, -1)
    if receiver == "exact":
        y_x = (y * onehot).sum(-1)
        kl = y_x - torch.logsumexp(logp + y, -1)
    else:  # reference: sum_j ln sum_k p_k N(y_j | alpha (K delta_jk - 1), alpha K)
        var = a * K

        def lnorm(v, m):
            return -(v - m).square() / (2 * var) - 0.5 * torch.log(2 * math.pi * var)

        on, off = lnorm(y, a * (K - 1)), lnorm(y, -a)
        log_recv = torch.logaddexp(logp + on, torch.log1p(-logp.exp().clamp(max=1 - 1e-7)) + off).sum(-1)
        log_send = torch.where(onehot.bool(), on, off).sum(-1)
        kl = log_send - log_recv
    return kl.mean(0)


def discrete_time_loss(flow, output, net_out, x: torch.Tensor, state: FlowState, n_steps: int, *,
                       n_samples: int = 10, receiver: str = "exact", generator=None) -> torch.Tensor:
    """L^n per example, n KL(p_S(. | x; alpha_i) || p_R(. | theta; t_{i-1}, alpha_i)) with i = t n + 1;
    the state's t must lie on the grid {0, 1/n, ..., (n-1)/n}."""
    check_parts(flow, output, state, x)
    positive_int(n_steps, "n_steps")
    positive_int(n_samples, "n_samples")
    if receiver not in ("exact", "factorised"):
        raise ValueError(f"receiver must be 'exact' or 'factorised', got {receiver!r}")
    i = state.t * n_steps + 1
    if bool(((i - i.round()).abs() > 1e-6).any()) or bool((i > n_steps + 1e-6).any()):
        raise ValueError(f"discrete_time_loss: t must lie on the grid {{0, 1/n, ..., (n-1)/n}} with n={n_steps}")
    dt = loss_dtype(net_out)
    if isinstance(output, CategoricalOutput):
        logits = output.logits(net_out, x.shape).to(dt)
        if output.K == 2:
            logits = torch.cat([torch.zeros_like(logits), logits], -1)
        alpha = discrete_alpha(i.round(), n_steps, flow.beta1).to(dt).reshape(-1, *([1] * (x.dim() - 1)))
        kl = _discrete_data_kl(logits, x, alpha.expand(x.shape), output.K, n_samples, receiver, generator)
        return n_steps * per_example_sum(kl)
    mu = state.params.to(dt)
    t = state.t.to(dt)
    if isinstance(output, DeltaOutput):
        check_out(net_out, x.shape, "DeltaOutput")
        out = output.eps(net_out) if output.noise_pred else net_out
        return per_example_sum(loss_terms.continuous_discrete_time_loss(
            out.to(dt), x.to(dt), t, flow.sigma1, n_steps, mu=mu, noise_pred=output.noise_pred,
            clip_range=output.clip_range))
    if isinstance(output, DiscretisedNormalOutput):
        mean, log_sigma = output.split(net_out)
        x = quantize(x.to(dt), output.K)
        return per_example_sum(loss_terms.discretised_discrete_time_loss(
            mean.to(dt), log_sigma.to(dt), mu, t, x, flow.sigma1, output.K, n_steps, n_samples,
            clip=output.clip, noise_pred=output.noise_pred, generator=generator))
    raise TypeError(f"unknown output distribution {type(output).__name__}")


def reconstruction_loss(flow, output, net_out, x: torch.Tensor, state: FlowState) -> torch.Tensor:
    """L^r per example: -ln p_O(x | Psi(theta, 1)) (the reference's Delta-output convention is in
    :meth:`DeltaDist.log_prob`). ``state`` is a flow sample at t = 1."""
    check_parts(flow, output, state, x)
    dist = output(net_out, state, state.t)
    return -per_example_sum(dist.log_prob(x if isinstance(output, CategoricalOutput) else x.to(state.params.dtype)))
