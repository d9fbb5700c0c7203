"""Bayesian Flow Network kernels: flows, Bayesian updates and their exact inverses, the
discretised output distribution's bin probabilities and the fused L^inf losses.

Graves et al., "Bayesian Flow Networks" (arXiv 2308.07037), with the reference semantics of
nnaisense/bayesian-flow-networks; the maths is specified by the pure-PyTorch twin
:mod:`diffrep.ops.reference.bfn` and by docs/methods/paramrel.md.

Conventions
-----------
* Time runs forward as in Graves et al.: t = 0 is the prior, t = 1 is (almost) the data.
* ``t``, ``alpha`` and ``rho`` are per example (a number, or shape ``(B,)``) or per element
  (the data's shape). The data's first dimension is the batch.
* Discrete parameters ``theta`` carry the K classes in the last dimension.
* ``sigma1`` is sigma_1 of the continuous schedule (the reference's ``min_variance`` is sigma1**2);
  ``beta1`` is beta(1) of the discrete schedule (the reference's ``max_sqrt_beta`` is sqrt(beta1)).
* float16/bfloat16 inputs are computed in float32; float32 and float64 run natively.
* Random draws come from a Philox stream keyed by a draw from ``generator`` (see
  :mod:`diffrep.ops.random`); pass ``noise=`` to inject the standard normals instead.

Every op runs the CUDA kernel for CUDA tensors, the OpenMP kernel for CPU tensors, or the twin
(``diffrep.ops.explain(name, ...)`` says which, and why). BFN maths without a kernel
(schedules, output conversions, ``discretised_log_prob``, composite loss terms) lives in
:mod:`diffrep.bfn`; its old names here are deprecated aliases for one release.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from .._deprecation import moved_names
from . import _bfn_fast as F
from . import _validate as V
from ._bfn_common import (_batch_float, _check_classes, _draw, _explainer, _grad, _reference_noise, _sigma1, call,
                          fast_pair, flag_raiser, per_row, row_len)
from ._dispatch import register, select
from ._native_call import CLASS_OUT_OF_RANGE, NON_FINITE, NON_POSITIVE, raise_flags
from .bfn_losses import discrete_continuous_time_loss, discretised_continuous_time_loss, discretised_probs
from .random import philox_key
from .reference import bfn as ref

__all__ = ["continuous_flow", "discrete_flow", "continuous_update", "continuous_update_inverse",
           "continuous_sender_update", "discrete_update", "discrete_update_inverse", "discrete_sender_update",
           "discretised_probs", "discretised_continuous_time_loss", "discrete_continuous_time_loss"]


# ----------------------------------------------------------------------------- continuous flow
def _prep_continuous_flow(x, t, sigma1, generator=None, *, noise=None):
    p = SimpleNamespace(generator=generator)
    p.log_s1sq = 2.0 * math.log(_sigma1(sigma1))
    if fast_pair(x, x) is not None and (not isinstance(t, torch.Tensor) or t.device == x.device):
        p.dtype, p.device, p.x = x.dtype, x.device, x  # the common case, checked in ~1 us
    else:
        _batch_float("x", x)
        p.dtype = V.float_dtype(x=x)
        p.device = V.same_device(x=x, t=t) if isinstance(t, torch.Tensor) else x.device
        p.x = x.to(p.dtype).contiguous()
    p.t, p.t_per_row = per_row("t", t, p.x, p.dtype)
    p.choice = select("bfn.continuous_flow", p.device, needs_grad=_grad(x, t))
    _draw(p, "noise", noise, p.x.shape)
    return p


def continuous_flow(x, t, sigma1, generator=None, *, noise=None):
    """Sample the Bayesian flow distribution of continuous data (BFN Eq. 77).

    mu ~ N(gamma(t) x, gamma(t)(1 - gamma(t))) with gamma(t) = 1 - sigma1^(2t), drawn in one
    pass (the reference `CtsBayesianFlow.forward` takes 8 kernels). ``x``: data (B, ...);
    ``t``: (B,) or x's shape, in [0, 1]; returns mu with x's shape. The precision is
    deterministic, rho(t) = sigma1^(-2t) (:func:`continuous_precision`).
    """
    if noise is None:
        out = _lean_continuous_flow(x, t, sigma1, generator)
        if out is not None:
            return out
    p = _prep_continuous_flow(x, t, sigma1, generator, noise=noise)
    if p.choice.backend == "reference":  # the native kernels check t themselves (flag_raiser)
        V.time_in_unit_interval("t", p.t)
        V.finite("x", p.x)
        eps = _reference_noise(p, p.x.shape)
        return ref.continuous_flow(p.x, p.t, sigma1, eps)
    out = torch.empty_like(p.x)
    fail = flag_raiser("continuous_flow", {NON_FINITE: "x contains NaN or infinite values"}, p.t)
    flags = call(p.choice.backend, "cts_flow", p.device, fail, x=p.x, t=p.t, t_per_row=p.t_per_row,
                 row_len=row_len(p.x), log_s1sq=p.log_s1sq, noise=p.noise, seed=p.seed, offset=p.offset, out=out)
    if flags:
        fail(flags)
    return out


def _lean_continuous_flow(x, t, sigma1, generator):
    """continuous_flow on the lean CPU path (ops/_bfn_fast.py), or None where it does not apply."""
    if not isinstance(t, torch.Tensor):
        return None  # a number: the general path
    fn = F.kernel("cts_flow")
    if fn is None or not F._plain(x):
        return None
    dtype, shape = x.dtype, x.shape
    dt = F.DT.get(dtype)
    if dt is None or not shape or x.numel() == 0:
        return None
    t_per_row = F.per_row(t, dtype, shape)
    if t_per_row is None:
        return None
    log_s1sq = 2.0 * math.log(_sigma1(sigma1))  # the general path's checks, in its order
    seed, offset = philox_key(generator)
    out = torch.empty_like(x)
    n = x.numel()
    flags = fn(F.ABI, x.data_ptr(), n, dt, t.data_ptr(), t.numel(), dt, t_per_row, n // shape[0], log_s1sq,
               0, 0, dt, seed, offset, out.data_ptr(), n, dt)
    if flags:
        if flags & NON_FINITE:
            V.time_in_unit_interval("t", t)
        raise_flags("continuous_flow", flags, {NON_FINITE: "x contains NaN or infinite values"})
    return out


_explainer("bfn.continuous_flow", _prep_continuous_flow)


# ----------------------------------------------------------------------------- discrete flow
def _prep_discrete_flow(x, t, beta1, num_classes, generator=None, *, noise=None, dtype=None):
    p = SimpleNamespace(generator=generator)
    V.integer_classes("x", x)
    V.nonempty("x", x)
    p.K = V.num_classes("num_classes", num_classes)
    p.sqrt_beta1 = math.sqrt(V.positive_scalar("beta1", beta1))
    p.dtype = dtype if dtype is not None else (t.dtype if isinstance(t, torch.Tensor) and t.dtype in V.FLOAT_DTYPES
                                                else torch.float32)
    if p.dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {p.dtype}")
    p.device = V.same_device(x=x, t=t) if isinstance(t, torch.Tensor) else x.device
    p.x = x.to(torch.int64).contiguous()
    p.t, p.t_per_row = V.per_sample("t", t, p.x, p.dtype)
    p.choice = select("bfn.discrete_flow", p.device, needs_grad=_grad(t))
    _draw(p, "noise", noise, (*p.x.shape, p.K))
    return p


def discrete_flow(x, t, beta1, num_classes, generator=None, *, noise=None, dtype=None):
    """Sample the Bayesian flow distribution of discrete data (BFN Eq. 185).

    theta = softmax(y), y ~ N(beta(t)(K e_x - 1), beta(t) K I), beta(t) = beta1 t^2, with the
    reference's guards (t clamped to 1 - 1e-6; theta = 1/K where sqrt(beta) < 1e-10).
    ``x``: integer classes (B, ...) in [0, K); returns theta (B, ..., K) in ``dtype`` (default:
    t's float dtype, else float32). For K = 2 the reference network reads 2 theta[..., 0] - 1.
    """
    if noise is None:
        out = _lean_discrete_flow(x, t, beta1, num_classes, generator, dtype)
        if out is not None:
            return out
    p = _prep_discrete_flow(x, t, beta1, num_classes, generator, noise=noise, dtype=dtype)
    if p.choice.backend == "reference":  # the native kernels check t themselves (flag_raiser)
        V.time_in_unit_interval("t", p.t)
        _check_classes("x", p.x, p.K)
        eps = _reference_noise(p, (*p.x.shape, p.K))
        return ref.discrete_flow(p.x, p.t, p.sqrt_beta1**2, p.K, eps)
    out = torch.empty((*p.x.shape, p.K), dtype=p.dtype, device=p.device)
    fail = flag_raiser("discrete_flow", {CLASS_OUT_OF_RANGE: f"x holds a class outside [0, {p.K})"}, p.t)
    flags = call(p.choice.backend, "disc_flow", p.device, fail, x=p.x, t=p.t, t_per_row=p.t_per_row,
                 row_len=row_len(p.x), K=p.K, sqrt_beta1=p.sqrt_beta1, noise=p.noise, seed=p.seed,
                 offset=p.offset, out=out)
    if flags:
        fail(flags)
    return out


def _lean_discrete_flow(x, t, beta1, num_classes, generator, dtype):
    """discrete_flow on the lean CPU path (ops/_bfn_fast.py), or None where it does not apply."""
    if not isinstance(t, torch.Tensor):
        return None  # a number: the general path
    fn = F.kernel("disc_flow")
    if fn is None or not F._plain(x) or x.dtype is not torch.int64 or not F._plain(t):
        return None
    shape, t_dtype = x.shape, t.dtype
    dt = F.DT.get(t_dtype)
    if dt is None or (dtype is not None and dtype is not t_dtype) or not shape or x.numel() == 0:
        return None
    ts = t.shape
    if ts == shape:  # the order of V.per_sample: per element first
        t_per_row = False
    elif len(ts) == 1 and ts[0] == shape[0]:
        t_per_row = True
    else:
        return None
    # the general path's checks, in its order
    K = V.num_classes("num_classes", num_classes)
    sqrt_beta1 = math.sqrt(V.positive_scalar("beta1", beta1))
    seed, offset = philox_key(generator)
    out = t.new_empty((*shape, K))  # t_dtype, on the CPU
    n = x.numel()
    flags = fn(F.ABI, x.data_ptr(), n, F.DT_I64, t.data_ptr(), t.numel(), dt, t_per_row, n // shape[0], K, sqrt_beta1,
               0, 0, dt, seed, offset, out.data_ptr(), out.numel(), dt)
    if flags:
        if flags & NON_FINITE:
            V.time_in_unit_interval("t", t)
        raise_flags("discrete_flow", flags, {CLASS_OUT_OF_RANGE: f"x holds a class outside [0, {K})"})
    return out


_explainer("bfn.discrete_flow", _prep_discrete_flow)


# ----------------------------------------------------------------------------- continuous update
def _prep_continuous_update(mu, rho, y, alpha, inverse=False, op=None, y_name="y"):
    p = SimpleNamespace()
    dtype = fast_pair(mu, y)
    if dtype is not None:  # the common case, checked in ~1 us
        p.dtype, p.device, p.mu, p.y = dtype, mu.device, mu, y
    else:
        _batch_float("mu", mu)
        V.tensor(y_name, y)  # the sender update passes its data x here: its messages name x
        V.same_shape(y_name, y, "mu", mu)
        p.dtype = V.float_dtype(mu=mu, y=y)
        p.device = V.same_device(**{"mu": mu, y_name: y})
        p.mu = mu.to(p.dtype).contiguous()
        p.y = y.to(p.dtype).contiguous()
    p.rho, p.rho_per_row = per_row("rho", rho, p.mu, p.dtype)
    p.alpha, p.alpha_per_row = per_row("alpha", alpha, p.mu, p.dtype)
    op = op or ("bfn.continuous_update_inverse" if inverse else "bfn.continuous_update")
    p.choice = select(op, p.device, needs_grad=_grad(mu, rho, y, alpha))
    return p


def _new_rho(p, rho, alpha, inverse):
    """rho' = rho +- alpha, kept per example unless rho or alpha is given per element."""
    sign = -1 if inverse else 1
    if p.rho_per_row and p.alpha_per_row:
        if not isinstance(rho, torch.Tensor) and not isinstance(alpha, torch.Tensor):
            return rho + sign * alpha
        return torch.add(p.rho, p.alpha, alpha=sign)
    return ref.per_element(p.rho, p.mu) + sign * ref.per_element(p.alpha, p.mu)


def _check_precisions(p, rho, alpha, inverse):
    """alpha >= 0, rho > 0 (finite), and for the inverse rho - alpha > 0. The native kernels run
    the same checks per row and set NON_POSITIVE; this then runs for the message."""
    V.nonnegative("alpha", alpha if not isinstance(alpha, torch.Tensor) else p.alpha)
    V.nonnegative("rho", rho if not isinstance(rho, torch.Tensor) else p.rho, strict=True)
    if inverse:
        # rho = rho' - alpha must stay a precision (docs/kernels/bfn.md#inverse-update)
        prior = p.rho - p.alpha if p.rho_per_row == p.alpha_per_row else (
            ref.per_element(p.rho, p.mu) - ref.per_element(p.alpha, p.mu))
        if not bool((prior > 0).all()):
            raise ValueError("continuous_update_inverse: rho - alpha must be > 0 (alpha larger than the "
                             "accumulated precision: this y/alpha was not part of the update that produced mu)")


def _cts_update_failed(p, rho, alpha, inverse, flags):
    """Raise for the error flags of the cts_update kernel (both call paths)."""
    if flags & NON_POSITIVE:
        _check_precisions(p, rho, alpha, inverse)
        raise ValueError("continuous_update: rho and alpha must be finite, rho > 0, alpha >= 0")
    raise_flags("continuous_update", flags, {NON_FINITE: "mu or y contains NaN or infinite values"})


def _lean_precisions(kernel, mu, other, rho, alpha):
    """(kernel function, dtype code, rho_per_row, alpha_per_row) of a continuous update on the lean CPU path
    (ops/_bfn_fast.py), or None where it does not apply."""
    if not (isinstance(rho, torch.Tensor) and isinstance(alpha, torch.Tensor)):
        return None  # numbers: the general path (before any other check: ~1 us less there)
    fn = F.kernel(kernel)
    dt = F.pair(mu, other) if fn is not None else None
    if dt is None:
        return None
    rho_per_row = F.per_row(rho, mu.dtype, mu.shape)
    alpha_per_row = F.per_row(alpha, mu.dtype, mu.shape) if rho_per_row is not None else None
    if alpha_per_row is None:
        return None
    return fn, dt, rho_per_row, alpha_per_row


def _lean_continuous_update(mu, rho, y, alpha, inverse):
    """_continuous_update on the lean CPU path (ops/_bfn_fast.py), or None where it does not apply."""
    lean = _lean_precisions("cts_update", mu, y, rho, alpha)
    if lean is None:
        return None
    fn, dt, rho_per_row, alpha_per_row = lean
    n, shape = mu.numel(), mu.shape
    out = torch.empty_like(mu)
    flags = fn(F.ABI, mu.data_ptr(), n, dt, rho.data_ptr(), rho.numel(), dt, rho_per_row, alpha.data_ptr(),
               alpha.numel(), dt, alpha_per_row, n // shape[0], y.data_ptr(), n, dt, inverse, out.data_ptr(), n, dt)
    if flags or not (rho_per_row and alpha_per_row):
        p = SimpleNamespace(mu=mu, y=y, rho=rho, alpha=alpha, rho_per_row=rho_per_row, alpha_per_row=alpha_per_row)
        if flags:
            _cts_update_failed(p, rho, alpha, inverse, flags)
        return out, _new_rho(p, rho, alpha, inverse)
    return out, (rho - alpha if inverse else rho + alpha)  # = torch.add(rho, alpha, alpha=-+1) of _new_rho


def _continuous_update(mu, rho, y, alpha, inverse):
    p = _prep_continuous_update(mu, rho, y, alpha, inverse)
    if p.choice.backend == "reference":
        _check_precisions(p, rho, alpha, inverse)
        V.finite("mu", p.mu)
        V.finite("y", p.y)
        fn = ref.continuous_update_inverse if inverse else ref.continuous_update
        return fn(p.mu, p.rho, p.y, p.alpha)[0], _new_rho(p, rho, alpha, inverse)
    out = torch.empty_like(p.mu)
    def fail(flags):
        _cts_update_failed(p, rho, alpha, inverse, flags)

    flags = call(p.choice.backend, "cts_update", p.device, fail, mu=p.mu, rho=p.rho, rho_per_row=p.rho_per_row,
                 alpha=p.alpha, alpha_per_row=p.alpha_per_row, row_len=row_len(p.mu), y=p.y, inverse=inverse,
                 out=out)
    if flags:
        fail(flags)
    return out, _new_rho(p, rho, alpha, inverse)


def continuous_update(mu, rho, y, alpha):
    """The Bayesian update h for continuous data (BFN Eq. 49-50).

    rho' = rho + alpha, mu' = (rho mu + alpha y) / rho'. ``mu``, ``y``: (B, ...);
    ``rho``, ``alpha``: numbers, (B,) or mu's shape. Returns (mu', rho') with rho' in rho's form.
    """
    return _lean_continuous_update(mu, rho, y, alpha, False) or _continuous_update(mu, rho, y, alpha, inverse=False)


def continuous_update_inverse(mu, rho, y, alpha):
    """The exact inverse h^-1 of :func:`continuous_update` (docs/kernels/bfn.md#inverse-update; ParamReL Eq. 5).

    Given the posterior (mu', rho') and the same sender sample y and accuracy alpha:
    rho = rho' - alpha, mu = (rho' mu' - alpha y) / rho. Raises ValueError if rho' - alpha <= 0.
    One inverse step multiplies the relative error of mu' by rho'/rho; run long reverse chains
    in float64.
    """
    return _lean_continuous_update(mu, rho, y, alpha, True) or _continuous_update(mu, rho, y, alpha, inverse=True)


register("bfn.continuous_update")(lambda *a, **k: _prep_continuous_update(*a, **k).choice)
register("bfn.continuous_update_inverse")(lambda *a, **k: _prep_continuous_update(*a, inverse=True, **k).choice)


def _prep_continuous_sender_update(mu, rho, x, alpha, generator=None, *, noise=None):
    p = _prep_continuous_update(mu, rho, x, alpha, op="bfn.continuous_sender_update", y_name="x")
    p.x, p.generator = p.y, generator
    _draw(p, "noise", noise, p.mu.shape)
    return p


def continuous_sender_update(mu, rho, x, alpha, generator=None, *, noise=None, return_y=False):
    """Draw a sender sample y ~ N(x, 1/alpha) (BFN Eq. 86) and apply the update h, in one pass.

    Returns (mu', rho') or, with ``return_y=True``, (mu', rho', y) so the step can be inverted
    later with :func:`continuous_update_inverse`.
    """
    if noise is None:
        r = _lean_continuous_sender_update(mu, rho, x, alpha, generator)
        if r is not None:
            return r if return_y else r[:2]
    p = _prep_continuous_sender_update(mu, rho, x, alpha, generator, noise=noise)

    def check():  # the kernel runs these checks per row (NON_POSITIVE); here for the message
        _sender_precisions(p)

    if p.choice.backend == "reference":
        check()
        V.finite("x", p.x)
        y = ref.continuous_sender_sample(p.x, p.alpha, _reference_noise(p, p.mu.shape))
        new_mu = ref.continuous_update(p.mu, p.rho, y, p.alpha)[0]
    else:
        new_mu, y = torch.empty_like(p.mu), torch.empty_like(p.mu)
        def fail(flags):
            _sender_update_failed(p, flags)

        flags = call(p.choice.backend, "cts_sender_update", p.device, fail, mu=p.mu, rho=p.rho,
                     rho_per_row=p.rho_per_row, alpha=p.alpha, alpha_per_row=p.alpha_per_row, row_len=row_len(p.mu),
                     x=p.x, noise=p.noise, seed=p.seed, offset=p.offset, out=new_mu, out_y=y)
        if flags:
            fail(flags)
    new_rho = _new_rho(p, rho, alpha, False)
    return (new_mu, new_rho, y) if return_y else (new_mu, new_rho)


def _sender_precisions(p):
    V.nonnegative("alpha", p.alpha, strict=True)
    V.nonnegative("rho", p.rho, strict=True)


def _sender_update_failed(p, flags):
    """Raise for the error flags of the cts_sender_update kernel (both call paths)."""
    if flags & NON_POSITIVE:
        _sender_precisions(p)
        raise ValueError("continuous_sender_update: rho and alpha must be finite and > 0")
    raise_flags("continuous_sender_update", flags, {NON_FINITE: "mu or x contains NaN or infinite values"})


def _lean_continuous_sender_update(mu, rho, x, alpha, generator):
    """(mu', rho', y) of continuous_sender_update on the lean CPU path (ops/_bfn_fast.py), or None."""
    lean = _lean_precisions("cts_sender_update", mu, x, rho, alpha)
    if lean is None:
        return None
    fn, dt, rho_per_row, alpha_per_row = lean
    seed, offset = philox_key(generator)
    n, shape = mu.numel(), mu.shape
    new_mu, y = torch.empty_like(mu), torch.empty_like(mu)
    flags = fn(F.ABI, mu.data_ptr(), n, dt, rho.data_ptr(), rho.numel(), dt, rho_per_row, alpha.data_ptr(),
               alpha.numel(), dt, alpha_per_row, n // shape[0], x.data_ptr(), n, dt, 0, 0, dt, seed, offset,
               new_mu.data_ptr(), n, dt, y.data_ptr(), n, dt)
    if flags or not (rho_per_row and alpha_per_row):
        p = SimpleNamespace(mu=mu, rho=rho, alpha=alpha, rho_per_row=rho_per_row, alpha_per_row=alpha_per_row)
        if flags:
            _sender_update_failed(p, flags)
        return new_mu, _new_rho(p, rho, alpha, False), y
    return new_mu, rho + alpha, y


_explainer("bfn.continuous_sender_update", _prep_continuous_sender_update)


# ----------------------------------------------------------------------------- discrete update
def _prep_discrete_update(theta, y, inverse=False, log=False):
    p = SimpleNamespace()
    dtype = fast_pair(theta, y)
    if dtype is not None and theta.shape[-1] >= 2:  # the common case, checked in ~1 us
        p.K, p.dtype, p.device, p.theta, p.y = theta.shape[-1], dtype, theta.device, theta, y
    else:
        _batch_float("theta", theta)
        V.tensor("y", y)
        V.same_shape("y", y, "theta", theta)
        p.K = V.num_classes("theta.shape[-1] (the number of classes)", theta.shape[-1])
        p.dtype = V.float_dtype(theta=theta, y=y)
        p.device = V.same_device(theta=theta, y=y)
        p.theta = theta.to(p.dtype).contiguous()
        p.y = y.to(p.dtype).contiguous()
    p.log = bool(log)
    p.choice = select("bfn.discrete_update_inverse" if inverse else "bfn.discrete_update", p.device,
                      needs_grad=_grad(theta, y))
    return p


_THETA_MESSAGES = {NON_FINITE: "theta must hold probabilities in [0, 1] (log-probabilities <= 0 with log=True) "
                               "with at least one class > 0, and y must be finite"}


def _check_theta_reference(p):
    V.finite("y", p.y)
    bad = (p.theta.isnan() | (p.theta == math.inf)) if p.log else ~((p.theta >= 0) & (p.theta <= 1))
    empty = (p.theta == -math.inf).all(-1) if p.log else (p.theta == 0).all(-1)
    if bool(bad.any()) or bool(empty.any()):
        raise ValueError(f"discrete_update: {_THETA_MESSAGES[NON_FINITE]}")


def _discrete_update(theta, y, inverse, log):
    fn = F.kernel("disc_update")
    dt = F.pair(theta, y) if fn is not None else None
    if dt is not None and theta.shape[-1] >= 2:  # the lean CPU path (ops/_bfn_fast.py)
        n = theta.numel()  # y and out: theta's shape
        out = torch.empty_like(theta)
        flags = fn(F.ABI, theta.data_ptr(), n, dt, y.data_ptr(), n, dt, theta.shape[-1], inverse, bool(log),
                   out.data_ptr(), n, dt)
        if flags:
            raise_flags("discrete_update", flags, _THETA_MESSAGES)
        return out
    p = _prep_discrete_update(theta, y, inverse, log)
    if p.choice.backend == "reference":
        _check_theta_reference(p)
        fn = ref.discrete_update_inverse if inverse else ref.discrete_update
        return fn(p.theta, p.y, log=p.log)
    out = torch.empty_like(p.theta)
    fail = flag_raiser("discrete_update", _THETA_MESSAGES)
    flags = call(p.choice.backend, "disc_update", p.device, fail, theta=p.theta, y=p.y, K=p.K, inverse=inverse,
                 log_io=p.log, out=out)
    if flags:
        fail(flags)
    return out


def discrete_update(theta, y, *, log=False):
    """The Bayesian update h for discrete data (BFN Eq. 168): theta' proportional to theta e^y.

    Computed in log space (l' = l + y - logsumexp(l + y)), equal to the reference's
    theta e^y / sum wherever that is finite and finite where it under- or overflows
    (docs/kernels/bfn.md#numerical-safeguards). ``theta``, ``y``: (..., K). ``log=True``: theta and the result are
    log-probabilities, which keeps classes that would underflow to 0 in probability space.
    """
    return _discrete_update(theta, y, False, log)


def discrete_update_inverse(theta, y, *, log=False):
    """The exact inverse of :func:`discrete_update` (docs/kernels/bfn.md#inverse-update): theta proportional to
    theta' e^-y, in log space. alpha is not needed: it only enters through y's distribution."""
    return _discrete_update(theta, y, True, log)


register("bfn.discrete_update")(lambda *a, **k: _prep_discrete_update(*a, **k).choice)
register("bfn.discrete_update_inverse")(lambda *a, **k: _prep_discrete_update(*a, inverse=True, **k).choice)


def _prep_discrete_sender_update(theta, x, alpha, generator=None, *, log=False, noise=None):
    p = SimpleNamespace(generator=generator)
    _batch_float("theta", theta)
    V.integer_classes("x", x)
    if tuple(theta.shape[:-1]) != tuple(x.shape):
        raise ValueError(f"theta has shape {tuple(theta.shape)}; x must have shape {tuple(theta.shape[:-1])}, "
                         f"got {tuple(x.shape)}")
    if x.dim() == 0:
        raise ValueError("x must have a batch dimension")
    p.K = V.num_classes("theta.shape[-1] (the number of classes)", theta.shape[-1])
    p.dtype = V.float_dtype(theta=theta)
    p.device = V.same_device(theta=theta, x=x)
    p.theta = theta.to(p.dtype).contiguous()
    p.x = x.to(torch.int64).contiguous()
    p.alpha, p.alpha_per_row = V.per_sample("alpha", alpha, p.x, p.dtype)
    p.log = bool(log)
    p.choice = select("bfn.discrete_sender_update", p.device, needs_grad=_grad(theta, alpha))
    _draw(p, "noise", noise, p.theta.shape)
    return p


def discrete_sender_update(theta, x, alpha, generator=None, *, log=False, noise=None, return_y=False):
    """Draw a sender sample y ~ N(alpha (K e_x - 1), alpha K I) (BFN Eq. 162) and apply the
    update h in log space, in one pass. ``theta``: (B, ..., K); ``x``: integer classes
    (B, ...); ``alpha``: number, (B,) or x's shape. Returns theta' (and y with ``return_y``)."""
    return _discrete_sender_update(theta, x, alpha, generator, log=log, noise=noise, return_y=return_y,
                                   check_alpha=True)


def _discrete_sender_update(theta, x, alpha, generator=None, *, log=False, noise=None, return_y=False,
                            check_alpha: bool):
    """:func:`discrete_sender_update`. The native kernels check alpha > 0 (finite) per item and set
    NON_POSITIVE (no host read on CUDA); the alpha check in Python runs for the message when the flag is set,
    and before the twin, where ``check_alpha=False`` skips it (a host-device sync on CUDA) for a sampler's
    accuracies, positive by construction (beta increasing on its own time grid)."""
    p = _prep_discrete_sender_update(theta, x, alpha, generator, log=log, noise=noise)
    if p.choice.backend == "reference":
        if check_alpha:
            V.nonnegative("alpha", p.alpha, strict=True)
        _check_classes("x", p.x, p.K)
        y = ref.discrete_sender_sample(p.x, p.alpha, p.K, _reference_noise(p, p.theta.shape))
        q = SimpleNamespace(theta=p.theta, y=y, log=p.log)
        _check_theta_reference(q)
        out = ref.discrete_update(p.theta, y, log=p.log)
    else:
        out, y = torch.empty_like(p.theta), torch.empty_like(p.theta)
        raise_rest = flag_raiser("discrete_sender_update", {
            CLASS_OUT_OF_RANGE: f"x holds a class outside [0, {p.K})", **_THETA_MESSAGES,
            NON_POSITIVE: "alpha must be > 0 and finite"})

        def fail(flags):  # a bad alpha first, with the message of the check that ran before the kernel did it
            if flags & NON_POSITIVE:
                V.nonnegative("alpha", p.alpha, strict=True)
            raise_rest(flags)

        flags = call(p.choice.backend, "disc_sender_update", p.device, fail, theta=p.theta, x=p.x, alpha=p.alpha,
                     alpha_per_row=p.alpha_per_row, row_len=row_len(p.x), K=p.K, log_io=p.log, noise=p.noise,
                     seed=p.seed, offset=p.offset, out=out, out_y=y)
        if flags:
            fail(flags)
    return (out, y) if return_y else out


_explainer("bfn.discrete_sender_update", _prep_discrete_sender_update)


# Names that moved to diffrep.bfn (no kernel behind them) and the old "discretized" spellings.
__getattr__ = moved_names(__name__, {
    **{name: f"diffrep.bfn.{mod}:{name}" for mod, names in (
        ("schedules", ("gamma", "continuous_precision", "continuous_alpha", "discrete_beta", "discrete_alpha")),
        ("conversions", ("noise_pred_to_data_pred", "output_normal_params")),
        ("loss_terms", ("continuous_time_loss", "continuous_discrete_time_loss"))) for name in names},
    "discretized_log_prob": "diffrep.bfn.distributions:discretised_log_prob",
    "discretized_discrete_time_loss": "diffrep.bfn.loss_terms:discretised_discrete_time_loss",
    "discretized_probs": "diffrep.ops.bfn:discretised_probs",
    "discretized_continuous_time_loss": "diffrep.ops.bfn:discretised_continuous_time_loss",
})
