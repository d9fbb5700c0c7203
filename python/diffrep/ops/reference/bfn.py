"""Pure-PyTorch twin of the BFN kernel family: the specification the native kernels match.

Semantics follow nnaisense/bayesian-flow-networks (Graves et al., "Bayesian Flow Networks",
arXiv 2308.07037; `model.py`, `probability.py`, `utils_model.py`) with the deliberate,
documented differences of docs/methods/paramrel.md:

* gamma(t) = 1 - sigma1^(2t) is computed as ``-expm1(2 t ln sigma1)``, exact near t = 0 (docs/kernels/bfn.md#numerical-safeguards);
* the discrete update runs in log space, equal to the reference wherever the reference is finite
  and finite where the reference under/overflows (docs/kernels/bfn.md#numerical-safeguards, #inverse-update);
* t and alpha are per example (shape (B,)) or per element (the data's shape).

Random draws are injected (``noise``), so the twin is deterministic given its inputs; the public
ops in :mod:`diffrep.ops.bfn` draw that noise from a counter-based Philox stream
(:mod:`diffrep.ops.reference.philox`) that the native kernels reproduce.

Only what a kernel computes is specified here (with the shared primitives: bins, CDFs, the
noise-prediction conversion the fused L^inf kernel performs); the BFN maths without a kernel
(schedules, ``discretised_log_prob``, the composite loss terms) is in :mod:`diffrep.bfn`.

Equation numbers refer to the BFN paper.
"""

from __future__ import annotations

import math

import torch

from ..._deprecation import moved_names
from . import _args as A

SQRT2 = math.sqrt(2.0)
MIN_T = 1e-6  # noise-prediction guard (`noise_pred_params_to_data_pred_params`, min_t)
MIN_PROB = 1e-5  # `DiscretizedCtsDistribution.min_prob`
MIN_STD, MAX_STD = 1e-3, 10.0  # `DiscretisedNormal` clamps
SAFE_EXP = 10.0  # `safe_exp` clamps its argument to [-10, 10]
SAFE_LOG = 1e-10  # `safe_log` clamps at 1e-10
DISCRETE_EPS = 1e-6  # `DiscreteBayesianFlow.epsilon`: t <= 1 - 1e-6
MIN_SQRT_BETA = 1e-10  # `DiscreteBayesianFlow.min_sqrt_beta`


def per_element(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-example (B,) or full-shape tensor to ``like``'s shape."""
    if v.dim() == 0:
        return v.expand_as(like)
    if v.shape == like.shape:
        return v
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1))).expand_as(like)


def gamma(t: torch.Tensor, sigma1: float) -> torch.Tensor:
    """gamma(t) = beta(t) / (1 + beta(t)) = 1 - sigma1^(2t) (Eq. 80, beta of Eq. 72), via expm1."""
    return -torch.expm1(t * (2.0 * math.log(sigma1)))


# ---------------------------------------------------------------------------- flows (Eq. 77, 185)
def continuous_flow(x, t, sigma1, noise):
    """Bayesian flow sample for continuous data: mu ~ N(gamma x, gamma (1 - gamma)) (Eq. 77)."""
    A.floats(x=x, noise=noise)
    A.batch("x", x)
    A.per_example("t", t, x)
    A.positive("sigma1", sigma1, upper=1.0)
    A.same_shape("noise", noise, "x", x)
    g = gamma(per_element(t, x).to(x.dtype), sigma1)
    return g * x + torch.sqrt(g * (1 - g)) * noise


def discrete_flow(x, t, beta1, num_classes, noise):
    """Bayesian flow sample for discrete data (Eq. 185): theta = softmax(y),
    y ~ N(beta(t) (K e_x - 1), beta(t) K I), beta(t) = beta1 t^2.

    The reference guards: t <= 1 - 1e-6, sqrt(beta) >= 1e-10 and theta = 1/K below it.
    ``x`` holds integer classes; the result has the K classes in its last dimension.
    """
    K = A.count("num_classes", num_classes, 2)
    A.classes("x", x, K)
    A.batch("x", x)
    A.per_example("t", t, x)
    A.positive("beta1", beta1)
    A.floats(noise=noise)
    A.same_shape("noise", noise, "x with the K classes last", x.unsqueeze(-1).expand(*x.shape, K))
    dtype = noise.dtype
    tt = per_element(t, x).to(dtype)
    sqrt_beta = tt.clamp(max=1 - DISCRETE_EPS) * math.sqrt(beta1)
    lo = sqrt_beta < MIN_SQRT_BETA
    beta = sqrt_beta.clamp(min=MIN_SQRT_BETA).square().unsqueeze(-1)
    e_x = torch.nn.functional.one_hot(x.long(), K).to(dtype)
    logits = beta * (K * e_x - 1) + torch.sqrt(beta * K) * noise
    theta = torch.softmax(logits, -1)
    return torch.where(lo.unsqueeze(-1), torch.full_like(theta, 1.0 / K), theta)


# ---------------------------------------------------------------------------- senders (Eq. 86, 162)
def continuous_sender_sample(x, alpha, noise):
    """y ~ N(x, 1/alpha)."""
    A.floats(x=x, noise=noise)
    A.batch("x", x)
    A.per_example("alpha", alpha, x)
    A.same_shape("noise", noise, "x", x)
    return x + noise / torch.sqrt(per_element(alpha, x).to(x.dtype))


def discrete_sender_sample(x, alpha, num_classes, noise):
    """y ~ N(alpha (K e_x - 1), alpha K I), K classes in the last dimension."""
    K = A.count("num_classes", num_classes, 2)
    A.classes("x", x, K)
    A.batch("x", x)
    A.per_example("alpha", alpha, x)
    A.floats(noise=noise)
    A.same_shape("noise", noise, "x with the K classes last", x.unsqueeze(-1).expand(*x.shape, K))
    a = per_element(alpha, x).to(noise.dtype).unsqueeze(-1)
    e_x = torch.nn.functional.one_hot(x.long(), K).to(noise.dtype)
    return a * (K * e_x - 1) + torch.sqrt(a * K) * noise


# ---------------------------------------------------------------------------- updates (Eq. 49-50, 168)
def _update_args(mu, rho, y, alpha):
    A.floats(mu=mu, y=y)
    A.batch("mu", mu)
    A.same_shape("y", y, "mu", mu)
    A.per_example("rho", rho, mu)
    A.per_example("alpha", alpha, mu)


def continuous_update(mu, rho, y, alpha):
    """h: rho' = rho + alpha, mu' = (rho mu + alpha y) / rho'. Returns (mu', rho') per element."""
    _update_args(mu, rho, y, alpha)
    r = per_element(rho, mu).to(mu.dtype)
    a = per_element(alpha, mu).to(mu.dtype)
    r_new = r + a
    return (r * mu + a * y) / r_new, r_new


def continuous_update_inverse(mu, rho, y, alpha):
    """h^-1 (docs/kernels/bfn.md#inverse-update): rho = rho' - alpha, mu = (rho' mu' - alpha y) / rho."""
    _update_args(mu, rho, y, alpha)
    r = per_element(rho, mu).to(mu.dtype)
    a = per_element(alpha, mu).to(mu.dtype)
    return (r * mu - a * y) / (r - a), r - a


def discrete_update(theta, y, log=False):
    """h: theta' proportional to theta e^y (Eq. 168), in log space.

    ``log=True``: ``theta`` holds log-probabilities and the result is log-probabilities.
    """
    A.floats(theta=theta, y=y)
    A.batch("theta", theta)
    A.same_shape("y", y, "theta", theta)
    logits = theta if log else torch.log(theta)
    out = torch.log_softmax(logits + y, -1)
    return out if log else out.exp()


def discrete_update_inverse(theta, y, log=False):
    """h^-1 (docs/kernels/bfn.md#inverse-update): theta proportional to theta' e^-y, in log space."""
    A.floats(theta=theta, y=y)
    return discrete_update(theta, -y, log=log)


# ---------------------------------------------------------------------------- output distribution
def normal_cdf(v, mu, sigma):
    # Same order of operations as torch.distributions.Normal.cdf.
    return 0.5 * (1 + torch.erf((v - mu) * sigma.reciprocal() / SQRT2))


def bin_centres(num_bins, dtype=torch.float64, device="cpu"):
    """k_c = (2k - 1)/K - 1, k = 1..K."""
    k = torch.arange(num_bins, dtype=dtype, device=device)
    return (2 * k + 1) / num_bins - 1


def bin_boundaries(num_bins, dtype=torch.float64, device="cpu"):
    """Interior boundaries b_j = 2j/K - 1, j = 1..K-1."""
    j = torch.arange(1, num_bins, dtype=dtype, device=device)
    return 2 * j / num_bins - 1


def boundary_cdfs(mu_x, sigma_x, num_bins, clip):
    """CDFs at the K+1 boundaries, K+1 in the last dimension, and the clip=False mask/range."""
    b = bin_boundaries(num_bins, mu_x.dtype, mu_x.device)
    inner = normal_cdf(b, mu_x.unsqueeze(-1), sigma_x.unsqueeze(-1))
    if clip:
        lo = torch.zeros_like(mu_x).unsqueeze(-1)
        return torch.cat([lo, inner, lo + 1], -1), None, None
    one = torch.ones_like(mu_x)
    lo = normal_cdf(-one, mu_x, sigma_x)
    hi = normal_cdf(one, mu_x, sigma_x)
    rng = hi - lo
    mask = rng < MIN_PROB
    rng = torch.where(mask, torch.ones_like(rng), rng)
    return torch.cat([lo.unsqueeze(-1), inner, hi.unsqueeze(-1)], -1), mask, rng


def _output_args(mu_x, sigma_x, num_bins):
    A.floats(mu_x=mu_x, sigma_x=sigma_x)
    A.same_shape("sigma_x", sigma_x, "mu_x", mu_x)
    if mu_x.numel() == 0:
        raise ValueError(f"mu_x is empty (shape {tuple(mu_x.shape)})")
    A.count("num_bins", num_bins, 2)


def discretised_probs(mu_x, sigma_x, num_bins, clip=True):
    """Bin probabilities of N(mu_x, sigma_x) discretised to K bins on [-1, 1] (Eq. 103-104).

    clip=True: the edge bins absorb the tails; clip=False: renormalised by R = Phi(1) - Phi(-1),
    uniform where R < 1e-5 (`DiscretizedCtsDistribution.probs`). K bins in the last dimension.
    """
    _output_args(mu_x, sigma_x, num_bins)
    cdfs, mask, rng = boundary_cdfs(mu_x, sigma_x, num_bins, clip)
    probs = cdfs[..., 1:] - cdfs[..., :-1]
    if clip:
        return probs
    probs = probs / rng.unsqueeze(-1)
    return torch.where(mask.unsqueeze(-1), torch.full_like(probs, 1.0 / num_bins), probs)


def discretised_mean(mu_x, sigma_x, num_bins, clip=True):
    """E[x] = sum_k p_k k_c, through the K-bin tensor (the eager reference path)."""
    c = bin_centres(num_bins, mu_x.dtype, mu_x.device)
    return (discretised_probs(mu_x, sigma_x, num_bins, clip) * c).sum(-1)


def float_to_idx(x, num_bins):
    """`float_to_idx`: clamp(floor((x/2 + 1/2) K), 0, K - 1)."""
    return torch.clamp(torch.floor((x / 2 + 0.5) * num_bins), 0, num_bins - 1).long()


def quantize(x, num_bins):
    """The centre of x's bin."""
    A.floats(x=x)
    A.count("num_bins", num_bins, 2)
    return (float_to_idx(x, num_bins).to(x.dtype) + 0.5) / num_bins * 2 - 1


# ---------------------------------------------------------------------------- network outputs
def noise_pred_to_data_pred(eps_hat, mu, t, sigma1, log_sigma_eps=None, min_t=MIN_T):
    """Noise-prediction to data-prediction conversion (`noise_pred_params_to_data_pred_params`).

    x_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat and sigma_x = sqrt((1-gamma)/gamma)
    exp(clamp(log_sigma_eps, +-10)), with gamma at max(t, min_t); entries with t < min_t (raw t)
    get x_hat = 0, sigma_x = 1. Returns (x_hat, sigma_x or None).
    """
    tt = per_element(t, mu).to(mu.dtype)
    mask = tt < min_t
    v = torch.exp(tt.clamp(min=min_t) * (2.0 * math.log(sigma1)))  # sigma1^(2t)
    g = -torch.expm1(tt.clamp(min=min_t) * (2.0 * math.log(sigma1)))
    scale = torch.sqrt(v / g)
    x_hat = torch.where(mask, torch.zeros_like(mu), mu / g - scale * eps_hat)
    if log_sigma_eps is None:
        return x_hat, None
    sigma = scale * torch.exp(log_sigma_eps.clamp(-SAFE_EXP, SAFE_EXP))
    return x_hat, torch.where(mask, torch.ones_like(sigma), sigma)


def output_normal_params(out_mean, out_log_sigma, mu, t, sigma1, noise_pred=True):
    """(mu_x, sigma_x) of the discretised Normal output from the network's two outputs.

    noise_pred=True: (eps_hat, ln sigma_eps) converted as above; False: (mu_x, ln sigma_x) with
    `safe_exp`. Then sigma_x is clamped to [1e-3, 10] (`DiscretisedNormal`).
    """
    if noise_pred:
        mu_x, sigma_x = noise_pred_to_data_pred(out_mean, mu, t, sigma1, out_log_sigma)
    else:
        mu_x, sigma_x = out_mean, torch.exp(out_log_sigma.clamp(-SAFE_EXP, SAFE_EXP))
    return mu_x, sigma_x.clamp(MIN_STD, MAX_STD)


# ---------------------------------------------------------------------------- losses
def loss_weight(t, sigma1, min_loss_variance, like):
    """C / sigma1^(2t) with C = -ln sigma1 (`CtsBayesianFlowLoss.C = -0.5 ln min_variance`)."""
    post_var = torch.exp(per_element(t, like).to(like.dtype) * (2.0 * math.log(sigma1)))
    if min_loss_variance > 0:
        post_var = post_var.clamp(min=min_loss_variance)
    return -math.log(sigma1) / post_var


def discretised_continuous_time_loss(out_mean, out_log_sigma, mu, t, x, sigma1, num_bins,
                                     clip=True, noise_pred=True, min_loss_variance=-1.0):
    """L^inf for discretised data (Eq. 122): -ln sigma1 sigma1^(-2t) (x - x_hat)^2 with
    x_hat = sum_k p_k k_c the mean of the discretised Normal output. Per element."""
    A.floats(out_mean=out_mean, out_log_sigma=out_log_sigma, x=x)
    A.batch("out_mean", out_mean)
    A.same_shape("out_log_sigma", out_log_sigma, "out_mean", out_mean)
    A.same_shape("x", x, "out_mean", out_mean)
    if noise_pred:
        A.floats(mu=mu)
        A.same_shape("mu", mu, "out_mean", out_mean)
    A.per_example("t", t, x)
    A.positive("sigma1", sigma1, upper=1.0)
    A.count("num_bins", num_bins, 2)
    A.number("min_loss_variance", min_loss_variance)
    mu_x, sigma_x = output_normal_params(out_mean, out_log_sigma, mu, t, sigma1, noise_pred)
    x_hat = discretised_mean(mu_x, sigma_x, num_bins, clip)
    return loss_weight(t, sigma1, min_loss_variance, x) * (x_hat - x).square()


def discrete_continuous_time_loss(logits, x, t, beta1):
    """L^inf for discrete data (Eq. 205): K beta1 t ||e_x - softmax(logits)||^2, per element."""
    A.floats(logits=logits)
    A.batch("logits", logits)
    K = A.count("logits.shape[-1] (the number of classes)", logits.shape[-1], 2)
    A.classes("x", x, K)
    if tuple(x.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"logits has shape {tuple(logits.shape)}; x must have shape {tuple(logits.shape[:-1])}, "
                         f"got {tuple(x.shape)}")
    A.per_example("t", t, x)
    A.positive("beta1", beta1)
    p = torch.softmax(logits, -1)
    e_x = torch.nn.functional.one_hot(x.long(), K).to(p.dtype)
    tt = per_element(t, x).to(p.dtype)
    return K * beta1 * tt * (e_x - p).square().sum(-1)


__getattr__ = moved_names(__name__, {
    "continuous_alpha": "diffrep.bfn.schedules:continuous_alpha",
    "discretized_log_prob": "diffrep.bfn.distributions:discretised_log_prob",
    **{f"discretized_{n}": f"{__name__}:discretised_{n}" for n in ("probs", "mean", "continuous_time_loss")},
})
