"""Per-element BFN loss terms that have no native kernel: compositions of PyTorch ops.

* :func:`continuous_time_loss`: L^inf for continuous data with a delta output (BFN Eq. 101);
* :func:`continuous_discrete_time_loss`: L^n for continuous data with a delta output (BFN Eq. 96);
* :func:`discretised_discrete_time_loss`: L^n for discretised data (BFN Eq. 121), Monte-Carlo.

The fused terms (L^inf for discretised data, Eq. 122, and for discrete data, Eq. 205) are native
kernels in :mod:`diffrep.ops.bfn`; :mod:`diffrep.bfn.losses` sums either kind per example.
Semantics follow nnaisense/bayesian-flow-networks (`CtsBayesianFlowLoss`); every term is per
element (the data's shape; the reference averages it). L^n uses i = t n + 1 with t on the grid
{0, 1/n, ..., (n-1)/n}.
"""

from __future__ import annotations

import math

import torch

from .._checks import finite_float, non_negative_float, positive_int
from ..ops import _validate as V
from ..ops.random import fill_normal, philox_key
from ..ops.reference import bfn as ref
from .schedules import continuous_alpha

__all__ = ["continuous_time_loss", "continuous_discrete_time_loss", "discretised_discrete_time_loss"]


def _sigma1(sigma1) -> float:
    return V.positive_scalar("sigma1", sigma1, upper=1.0)


def _checked(t, x, named):
    """Validate the tensors ``named`` ((name, tensor) pairs; the first is the network output, the
    others must share its shape) and t; returns (t per sample, the compute dtype)."""
    (name, out), rest = named[0], named[1:]
    V.tensor(name, out)
    V.nonempty(name, out)
    for other, v in rest:
        V.tensor(other, v)
        V.same_shape(other, v, name, out)
    try:
        dtype = V.float_dtype(**{name: out}, x=x)
        tt, _ = V.per_sample("t", t, x, dtype)
    except (TypeError, ValueError):
        _finite(named)  # a non-finite tensor is named first, as the checks run in that order
        raise
    # the finiteness of every tensor and t's range in one host read (a host-device sync per step on CUDA); on a
    # failure the checks run one by one, for the first one's message
    ok = ((tt >= 0) & (tt <= 1)).all()  # False for NaN
    for _, v in named:
        if v.is_floating_point():
            ok = ok & torch.isfinite(v).all()
    if not bool(ok):
        _finite(named)
        V.time_in_unit_interval("t", tt)
    return tt, dtype


def _finite(named) -> None:
    for other, v in named:
        V.finite(other, v)  # NaN or inf would come out as a NaN loss


def _delta_x_hat(net_out, mu, t, sigma1, noise_pred, clip_range):
    """The delta output's x_hat: the network output, or its noise-prediction conversion with the
    flow mean ``mu``, clipped to [-clip_range, clip_range] (`DeltaFactory(clip_range=1.0)`; 0 disables)."""
    x_hat = ref.noise_pred_to_data_pred(net_out, mu, t, sigma1)[0] if noise_pred else net_out
    return x_hat.clamp(-clip_range, clip_range) if clip_range > 0 else x_hat


def continuous_time_loss(net_out, x, t, sigma1, *, mu=None, noise_pred=False, clip_range=1.0,
                         min_loss_variance=-1.0):
    """L^inf for continuous data with a delta output distribution (BFN Eq. 101).

    -ln(sigma1) sigma1^(-2t) (x - x_hat)^2 per element, x_hat the network output (or, with
    ``noise_pred``, its conversion using the flow mean ``mu``) clipped to [-clip_range, clip_range]
    as the reference's `DeltaFactory(clip_range=1.0)` does (0 disables the clip). The reference
    averages the result over all elements.
    """
    tt, _ = _checked(t, x, [("net_out", net_out), ("x", x)] + ([("mu", mu)] if noise_pred else []))
    s1 = _sigma1(sigma1)
    x_hat = _delta_x_hat(net_out, mu, tt, s1, bool(noise_pred), non_negative_float(clip_range, "clip_range"))
    return ref.loss_weight(tt, s1, finite_float(min_loss_variance, "min_loss_variance"), x) * (x_hat - x).square()


def continuous_discrete_time_loss(net_out, x, t, sigma1, n_steps, *, mu=None, noise_pred=False, clip_range=1.0):
    """L^n for continuous data with a delta output (BFN Eq. 96): n alpha_i / 2 (x - x_hat)^2 with
    i = t n + 1, t on the grid {0, 1/n, ..., (n-1)/n} (reference `discrete_time_loss`)."""
    tt, _ = _checked(t, x, [("net_out", net_out), ("x", x)] + ([("mu", mu)] if noise_pred else []))
    s1, n = _sigma1(sigma1), positive_int(n_steps, "n_steps")
    x_hat = _delta_x_hat(net_out, mu, tt, s1, bool(noise_pred), non_negative_float(clip_range, "clip_range"))
    alpha = continuous_alpha(ref.per_element(tt, x).to(x.dtype) * n + 1, n, s1)
    return n * alpha * (x_hat - x).square() / 2


def discretised_discrete_time_loss(out_mean, out_log_sigma, mu, t, x, sigma1, num_bins, n_steps, n_samples=10,
                                   clip=True, noise_pred=True, generator=None, *, noise=None):
    """L^n for discretised data (BFN Eq. 121), a Monte-Carlo estimate over ``n_samples`` sender
    draws y ~ N(x, 1/alpha_i): n E_y[ln N(y | x, 1/alpha_i) - ln sum_k p_k N(y | k_c, 1/alpha_i)],
    i = t n + 1 (reference `CtsBayesianFlowLoss.discrete_time_loss`), the receiver the mixture of
    the discretised Normal output's bins. Per element; the reference reports the mean over the
    data dimensions. ``noise`` (S, *x.shape) injects the standard normals of the sender draws
    (else they are Philox draws keyed by ``generator``). Builds S x B x D x K."""
    tt, dtype = _checked(t, x, [("out_mean", out_mean), ("out_log_sigma", out_log_sigma), ("x", x)]
                         + ([("mu", mu)] if noise_pred else []))
    V.in_data_range("x", x)
    K = V.num_classes("num_bins", num_bins)
    n = positive_int(n_steps, "n_steps")
    S = positive_int(n_samples, "n_samples")
    if noise is None:
        seed, offset = philox_key(generator)
        noise = fill_normal(torch.empty((S, *x.shape), dtype=dtype, device=x.device), seed, offset)
    else:
        noise = V.noise_tensor("noise", noise, (S, *x.shape), x.device, dtype)
    s1, x = _sigma1(sigma1), x.to(dtype)
    mu_x, sigma_x = ref.output_normal_params(out_mean, out_log_sigma, mu, tt, s1, bool(noise_pred))
    probs = ref.discretised_probs(mu_x, sigma_x, K, bool(clip))  # (..., K)
    alpha = continuous_alpha(ref.per_element(tt, x).to(x.dtype) * n + 1, n, s1)
    y = x + noise / torch.sqrt(alpha)  # (S, ...)
    log_norm = 0.5 * torch.log(alpha / (2 * math.pi))
    sender = log_norm - 0.5 * alpha * (y - x).square()
    c = ref.bin_centres(K, x.dtype, x.device)
    comp = log_norm.unsqueeze(-1) - 0.5 * alpha.unsqueeze(-1) * (y.unsqueeze(-1) - c).square()
    # Bins whose mass underflows to 0 would give log 0 = -inf and, through it, NaN gradients (the
    # reference's MixtureSameFamily does); flooring at the smallest normal changes no finite value.
    log_probs = torch.log(probs.clamp(min=torch.finfo(probs.dtype).tiny))
    receiver = torch.logsumexp(comp + log_probs, -1)
    return n * (sender - receiver).mean(0)


from .._deprecation import moved_names  # noqa: E402  (old "discretized" spellings, one release)

__getattr__ = moved_names(__name__, {"discretized_discrete_time_loss": f"{__name__}:discretised_discrete_time_loss"})
