"""From the network's outputs to the parameters of the output distribution (BFN Eq. 84 and §5;
ParamReL Eq. 10), validated.

The maths is the twin's (:mod:`diffrep.ops.reference.bfn`), because the fused L^inf kernel for
discretised data (:func:`diffrep.ops.bfn.discretised_continuous_time_loss`) performs the same
conversion inside and the twin specifies both.
"""

from __future__ import annotations

from ..ops import _validate as V
from ..ops.reference import bfn as ref

__all__ = ["noise_pred_to_data_pred", "output_normal_params"]


def _sigma1(sigma1) -> float:
    return V.positive_scalar("sigma1", sigma1, upper=1.0)


def _finite(**named):
    """NaN or inf in a network output or the flow mean would come out as NaN parameters."""
    for name, v in named.items():
        if v is not None:
            V.finite(name, v)


def _times(t, like, dtype, check_values=True):
    tt, _ = V.per_sample("t", t, like, dtype)
    if check_values:
        V.time_in_unit_interval("t", tt)
    return tt


def noise_pred_to_data_pred(eps_hat, mu, t, sigma1, log_sigma_eps=None, min_t=1e-6):
    """Convert a noise prediction into a data prediction (BFN Eq. 84; reference
    `noise_pred_params_to_data_pred_params`; ParamReL Eq. 10).

    x_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat, sigma_x = sqrt((1-gamma)/gamma)
    exp(clamp(log_sigma_eps, -10, 10)); gamma is taken at max(t, min_t) and entries with
    t < min_t get x_hat = 0, sigma_x = 1 (at t = 0, mu = 0 and 1/gamma is infinite).
    Returns (x_hat, sigma_x), sigma_x None when log_sigma_eps is None.
    """
    return _noise_pred_to_data_pred(eps_hat, mu, t, sigma1, log_sigma_eps, min_t, check_values=True)


def _noise_pred_to_data_pred(eps_hat, mu, t, sigma1, log_sigma_eps=None, min_t=1e-6, *, check_values: bool):
    """:func:`noise_pred_to_data_pred`; ``check_values=False`` skips the reads of t's range and the inputs'
    finiteness (host-device syncs on CUDA) inside a sampling chain, which checks them once per chain
    (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
    V.tensor("eps_hat", eps_hat)
    V.nonempty("eps_hat", eps_hat)
    V.tensor("mu", mu)
    V.same_shape("mu", mu, "eps_hat", eps_hat)
    if log_sigma_eps is not None:
        V.tensor("log_sigma_eps", log_sigma_eps)
        V.same_shape("log_sigma_eps", log_sigma_eps, "eps_hat", eps_hat)
    tt = _times(t, eps_hat, V.float_dtype(eps_hat=eps_hat, mu=mu), check_values)
    V.positive_scalar("min_t", min_t)
    if check_values:
        _finite(eps_hat=eps_hat, mu=mu, log_sigma_eps=log_sigma_eps)
    return ref.noise_pred_to_data_pred(eps_hat, mu, tt, _sigma1(sigma1), log_sigma_eps, min_t)


def output_normal_params(out_mean, out_log_sigma, mu, t, sigma1, noise_pred=True):
    """(mu_x, sigma_x) of the discretised Normal output distribution from the network's two
    outputs: with ``noise_pred`` the (eps_hat, ln sigma_eps) conversion above, otherwise
    (mu_x, ln sigma_x) through `safe_exp`; sigma_x is then clamped to [1e-3, 10]."""
    return _output_normal_params(out_mean, out_log_sigma, mu, t, sigma1, noise_pred, check_values=True)


def _output_normal_params(out_mean, out_log_sigma, mu, t, sigma1, noise_pred=True, *, check_values: bool):
    """:func:`output_normal_params`; ``check_values=False`` as in :func:`_noise_pred_to_data_pred`."""
    V.tensor("out_mean", out_mean)
    V.nonempty("out_mean", out_mean)
    V.tensor("out_log_sigma", out_log_sigma)
    V.same_shape("out_log_sigma", out_log_sigma, "out_mean", out_mean)
    tt = _times(t, out_mean, V.float_dtype(out_mean=out_mean), check_values)
    if noise_pred:
        V.tensor("mu", mu)
        V.same_shape("mu", mu, "out_mean", out_mean)
    if check_values:
        _finite(out_mean=out_mean, out_log_sigma=out_log_sigma, mu=mu if noise_pred else None)
    return ref.output_normal_params(out_mean, out_log_sigma, mu, tt, _sigma1(sigma1), bool(noise_pred))
