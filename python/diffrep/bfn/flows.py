"""Bayesian flows: input distributions, their priors, flow distributions and Bayesian updates.

Graves et al., "Bayesian Flow Networks" (arXiv 2308.07037) §3-§6, in diffrep's forward time
(docs/methods/paramrel.md#time-convention): t = 0 is the prior, t = 1 is (almost) the data, sampling step i = 1..n
reads theta at t_{i-1} = (i-1)/n and absorbs accuracy alpha_i = beta(t_i) - beta(t_{i-1}).

A flow object is stateless; the parameters live in a :class:`FlowState` ``(params, t)`` where t (B,)
is the time whose cumulative accuracy beta(t) the parameters hold:

* :class:`ContinuousFlow` (continuous and discretised data): ``params`` = mu, the precision is the
  closed form rho(t) = sigma1^(-2t) and is never accumulated (docs/kernels/bfn.md#inverse-update);
* :class:`DiscreteFlow`: ``params`` = log theta (B, ..., K), updated in log space (docs/kernels/bfn.md#numerical-safeguards), so that
  classes never underflow to 0 and the exact inverse (docs/kernels/bfn.md#inverse-update) stays exact.

All maths runs through the native ops of :mod:`diffrep.ops.bfn` and the schedules of :mod:`.schedules`.

Precision: the flow state follows the network's parameters (:func:`state_dtype`): float32 for a float32
(or half-precision) model, float64 for a float64 one (docs/kernels/bfn.md#precision). The native ops run
both natively; times and schedules stay float64 throughout.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._checks import device as checked_device
from .._checks import positive_int
from .._checks import shape as checked_shape
from ..ops import bfn as ops
from . import schedules
from .quantize import quantize

__all__ = ["FlowState", "ContinuousFlow", "DiscreteFlow", "step_times", "state_dtype"]


def _state(state) -> "FlowState":
    if not isinstance(state, FlowState):
        raise TypeError(f"state must be a FlowState, got {type(state).__name__}")
    return state


def _float_dtype(dtype, name: str = "dtype") -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def state_dtype(param_dtype) -> torch.dtype:
    """The flow state's dtype for a network whose parameters are ``param_dtype``: float64 for a float64
    model, float32 otherwise (the state stays in float32 or wider when the network runs in half
    precision: the loss weight sigma1^(-2t) reaches 10^6, docs/kernels/bfn.md#precision)."""
    return torch.float64 if _float_dtype(param_dtype, "param_dtype") == torch.float64 else torch.float32


def _prior_shape(data_shape) -> tuple:
    shape = checked_shape(data_shape, "data_shape")
    if len(shape) < 2 or 0 in shape:
        raise ValueError(f"data_shape must be (B, ...) with sizes >= 1, got {data_shape!r}")
    return shape


def _tensor(name: str, v) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.is_complex():
        raise TypeError(f"{name} must be a real tensor, got {getattr(v, 'dtype', type(v).__name__)}")
    return v


def _same_shape(name: str, v: torch.Tensor, shape) -> None:
    if tuple(v.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} (the state's), got {tuple(v.shape)}")


@dataclasses.dataclass
class FlowState:
    """Input-distribution parameters and the time (B,) of the accuracy they hold."""

    params: torch.Tensor
    t: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.params, torch.Tensor) or not self.params.is_floating_point() or self.params.dim() < 1:
            raise TypeError(f"params must be a floating-point tensor (B, ...), got "
                            f"{getattr(self.params, 'dtype', type(self.params).__name__)}")
        if (not isinstance(self.t, torch.Tensor) or self.t.is_complex() or self.t.dim() != 1
                or self.t.shape[0] != self.params.shape[0]):
            raise ValueError(f"t must be a real tensor of shape ({self.params.shape[0]},) (one time per example), got "
                             f"{tuple(getattr(self.t, 'shape', ())) or type(self.t).__name__}")

    def to(self, dtype: torch.dtype) -> "FlowState":
        return FlowState(self.params.to(_float_dtype(dtype)), self.t)


def _per_example_t(t, batch: int, device, name: str = "t", *, drawn: bool = False) -> torch.Tensor:
    """``t`` as float64 times (batch,) in [0, 1]; ``drawn``: times the loss drew itself (``draw_time``), in range by
    construction, skip the range read (a host-device sync on CUDA; docs/architecture.md "Host synchronisation and
    the non-finite-loss check")."""
    t = schedules.as_times(t, name, device)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"{name} must be a number or have shape ({batch},), got {tuple(t.shape)}")
    if not drawn and not bool(((t >= 0) & (t <= 1)).all()):  # NaN fails both comparisons: it is refused too
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN)")
    return t


def step_times(n_steps: int) -> list[float]:
    """t_i = i/n for i = 0..n (Graves' grid; the papers' s = n - i, docs/methods/paramrel.md#time-convention)."""
    positive_int(n_steps, "n_steps")
    return [i / n_steps for i in range(n_steps + 1)]


class ContinuousFlow:
    """Continuous input distribution N(mu, 1/rho) (BFN §4), prior mu = 0, rho = 1.

    ``sigma1`` in (0, 1): beta(t) = sigma1^(-2t) - 1, gamma(t) = 1 - sigma1^(2t) (the reference's
    ``min_variance`` is sigma1^2). Data are float tensors in [-1, 1] (B, C, H, W). ``num_bins`` K
    (discretised data): :meth:`prepare_data` snaps the data to the K bin centres (:func:`.quantize`),
    as the BFN reference's data transform does; None (continuous data) leaves them as they are.
    """

    kind = "continuous"

    def __init__(self, sigma1: float, num_bins: int | None = None):
        if isinstance(sigma1, bool) or not isinstance(sigma1, (int, float)) or not 0 < sigma1 < 1:
            raise ValueError(f"sigma1 must be in (0, 1), got {sigma1!r}")
        if num_bins is not None and (isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2):
            raise ValueError(f"num_bins must be None or an int >= 2, got {num_bins!r}")
        self.sigma1 = float(sigma1)
        self.num_bins = num_bins

    # ---- schedule
    def precision(self, t) -> torch.Tensor:
        """rho(t) = sigma1^(-2t) (closed form, float64)."""
        return schedules.continuous_precision(t, self.sigma1)

    def beta(self, t) -> torch.Tensor:
        return self.precision(t) - 1.0

    def gamma(self, t) -> torch.Tensor:
        return schedules.gamma(t, self.sigma1)

    # ---- data and network input
    def prepare_data(self, x: torch.Tensor) -> torch.Tensor:
        """Data as the flow consumes it: float in [-1, 1] (checked); with ``num_bins``, snapped to the
        bin centres (discretised data, BFN §5)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
            raise ValueError(f"x (continuous data) must be a float tensor (B, ...), got "
                             f"{getattr(x, 'dtype', type(x).__name__)}{tuple(getattr(x, 'shape', ()))}")
        return x if self.num_bins is None else quantize(x, self.num_bins)

    def data_to_float(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Data as images in ``dtype`` (None: as they are)."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a float tensor (continuous data), got {getattr(x, 'dtype', type(x).__name__)}")
        return x if dtype is None else x.to(_float_dtype(dtype))

    def network_input(self, state: FlowState, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The network reads mu only (reference ``CtsBayesianFlow.forward`` returns (mean, None)), in the
        network's ``dtype``."""
        return _state(state).params.to(_float_dtype(dtype))

    def input_channels(self, channels: int) -> int:
        return positive_int(channels, "channels")

    # ---- distributions over parameters
    def prior(self, data_shape, device=None, dtype=torch.float32) -> FlowState:
        mu = torch.zeros(_prior_shape(data_shape), device=None if device is None else checked_device(device),
                         dtype=_float_dtype(dtype))
        return FlowState(mu, torch.zeros(mu.shape[0], dtype=torch.float64, device=device))

    def sample(self, x: torch.Tensor, t, generator=None, *, noise=None, dtype: torch.dtype | None = None) -> FlowState:
        """theta ~ p_F(. | x; t) (BFN Eq. 77), one fused kernel, in ``dtype`` (None: the data's)."""
        return self._sample(x, t, generator, noise=noise, dtype=dtype)

    def _sample(self, x, t, generator=None, *, noise=None, dtype=None, drawn: bool = False) -> FlowState:
        """:meth:`sample`; ``drawn``: ``t`` drawn by the loss (``_per_example_t``'s)."""
        x = self.prepare_data(x)
        if dtype is not None:
            x = x.to(_float_dtype(dtype))
        tt = _per_example_t(t, x.shape[0], x.device, drawn=drawn)
        return FlowState(ops.continuous_flow(x, tt.to(x.dtype), self.sigma1, generator, noise=noise), tt)

    def mean_state(self, x: torch.Tensor, t, dtype=torch.float64) -> FlowState:
        """The noise-free flow state mu = gamma(t) x: what noise-free updates with y = x reach."""
        x = self.prepare_data(x)
        if not bool(torch.isfinite(x).all()):  # the sampled flow's kernel refuses them; here no kernel runs
            raise ValueError("x contains NaN or infinite values")
        tt = _per_example_t(t, x.shape[0], x.device)
        g = self.gamma(tt).to(_float_dtype(dtype)).reshape(-1, *([1] * (x.dim() - 1)))
        return FlowState(g * x.to(dtype), tt)

    # ---- updates
    def sender_mean(self, x_tilde: torch.Tensor, alpha) -> torch.Tensor:
        """The noise-free sender sample E[y] = x (BFN Eq. 86)."""
        if not isinstance(x_tilde, torch.Tensor) or not x_tilde.is_floating_point():
            raise TypeError(f"x_tilde must be a float tensor, got {getattr(x_tilde, 'dtype', type(x_tilde).__name__)}")
        return x_tilde

    def step(self, state: FlowState, x_tilde: torch.Tensor, t_next, generator=None, *, sender_noise: bool = True,
             noise=None) -> tuple[FlowState, torch.Tensor]:
        """Absorb alpha = rho(t_next) - rho(t) about ``x_tilde``: y ~ N(x_tilde, 1/alpha) (or y = x_tilde
        without sender noise), then h (BFN Eq. 49-50). Returns (state at t_next, y)."""
        mu = _state(state).params
        t_next = _per_example_t(t_next, mu.shape[0], mu.device, "t_next")
        _same_shape("x_tilde", _tensor("x_tilde", x_tilde), mu.shape)
        rho = self.precision(state.t)
        alpha = self.precision(t_next) - rho
        if bool((alpha <= 0).any()):
            raise ValueError("step: t_next must be later than the state's time")
        return self._update(state, x_tilde, t_next, rho, alpha, generator, sender_noise, noise)

    def _step(self, state: FlowState, x_tilde: torch.Tensor, t_next: torch.Tensor, generator,
              sender_noise: bool) -> tuple[FlowState, torch.Tensor]:
        """:meth:`step` unchecked, for the sampler's own grid: ``t_next`` float64 (B,) later than the state's time,
        so nothing is read back (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
        rho = self.precision(state.t)
        return self._update(state, x_tilde, t_next, rho, self.precision(t_next) - rho, generator, sender_noise, None)

    def _update(self, state, x_tilde, t_next, rho, alpha, generator, sender_noise, noise):
        mu = state.params
        x_tilde = x_tilde.to(mu.dtype)
        if sender_noise:
            new_mu, _, y = ops.continuous_sender_update(mu, rho, x_tilde, alpha, generator, noise=noise, return_y=True)
        else:
            y = x_tilde
            new_mu, _ = ops.continuous_update(mu, rho, y, alpha)
        return FlowState(new_mu, t_next), y

    def inverse_step(self, state: FlowState, y: torch.Tensor, t_prev) -> FlowState:
        """The exact inverse h^-1 (docs/kernels/bfn.md#inverse-update): undo the accuracy rho(t) - rho(t_prev)
        absorbed with sender sample ``y``. Run chains in float64 (docs/kernels/bfn.md#inverse-update)."""
        mu = _state(state).params
        t_prev = _per_example_t(t_prev, mu.shape[0], mu.device, "t_prev")
        _same_shape("y", _tensor("y", y), mu.shape)
        return self._inverse_step(state, y, t_prev)

    def _inverse_step(self, state: FlowState, y: torch.Tensor, t_prev: torch.Tensor) -> FlowState:
        """:meth:`inverse_step` unchecked: ``t_prev`` float64 (B,) on the reverse chain's own grid (no read back)."""
        mu = state.params
        rho = self.precision(state.t)
        alpha = rho - self.precision(t_prev)
        new_mu, _ = ops.continuous_update_inverse(mu, rho, y.to(mu.dtype), alpha)
        return FlowState(new_mu, t_prev)


class DiscreteFlow:
    """Categorical input distribution over K classes per dimension (BFN §6), prior theta = 1/K.

    ``sqrt_beta1`` is the reference's ``max_sqrt_beta``: beta(t) = (sqrt_beta1 t)^2 (docs/methods/paramrel.md
    docs/kernels/bfn.md#reference-defaults: the bMNIST default is 3, the ParamReL notebook's value is sqrt(3)). Data are integer classes
    (B, C, H, W); images in [-1, 1] are mapped by :meth:`prepare_data`. The network reads 2 theta_0 - 1
    for K = 2 (reference ``params_to_net_inputs``) and 2 theta - 1 flattened into channels for K > 2.
    """

    kind = "discrete"

    def __init__(self, num_classes: int, sqrt_beta1: float):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if isinstance(sqrt_beta1, bool) or not isinstance(sqrt_beta1, (int, float)) or not 0 < sqrt_beta1 < math.inf:
            raise ValueError(f"sqrt_beta1 must be > 0, got {sqrt_beta1!r}")
        self.K = num_classes
        self.sqrt_beta1 = float(sqrt_beta1)
        self.beta1 = self.sqrt_beta1**2

    def beta(self, t) -> torch.Tensor:
        return schedules.discrete_beta(t, self.beta1)

    # ---- data and network input
    def prepare_data(self, x: torch.Tensor) -> torch.Tensor:
        """Integer classes pass through; floats in [-1, 1] map to round((x + 1)/2 (K - 1))
        (binary images: x > 0 is class 1)."""
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"x (discrete data) must be a tensor (B, ...), got {type(x).__name__}"
                             f"{tuple(getattr(x, 'shape', ()))}")
        if x.is_complex():
            raise TypeError(f"x (discrete data) must be real (floats in [-1, 1] or integer classes), got {x.dtype}")
        if x.is_floating_point():
            return ((x.clamp(-1, 1) + 1) * (self.K - 1) / 2).round().long()
        if x.dtype == torch.bool:
            return x.long()
        if x.numel() and bool(((x < 0) | (x >= self.K)).any()):  # one read; one_hot raised a RuntimeError
            raise ValueError(f"x (discrete data): integer classes must lie in 0..K-1 = 0..{self.K - 1}, "
                             f"got values in [{int(x.min())}, {int(x.max())}]")
        return x.long()

    def data_to_float(self, classes: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Classes back to [-1, 1]: 2c/(K - 1) - 1, in ``dtype`` (None: float32)."""
        _tensor("classes", classes)
        return classes.to(torch.float32 if dtype is None else _float_dtype(dtype)) * (2.0 / (self.K - 1)) - 1.0

    def network_input(self, state: FlowState, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """2 theta_0 - 1 (K = 2) or 2 theta - 1 with the classes in channels, in the network's ``dtype``
        (computed in :func:`state_dtype`: exp of half-precision log-probabilities would lose them)."""
        theta = _state(state).params.to(state_dtype(dtype)).exp()
        if self.K == 2:
            return (2 * theta[..., 0] - 1).to(dtype)
        B, C = theta.shape[:2]
        return (2 * theta - 1).movedim(-1, 2).reshape(B, C * self.K, *theta.shape[2:-1]).to(dtype)

    def input_channels(self, channels: int) -> int:
        channels = positive_int(channels, "channels")
        return channels if self.K == 2 else channels * self.K

    # ---- distributions over parameters
    def prior(self, data_shape, device=None, dtype=torch.float32) -> FlowState:
        lp = torch.full((*_prior_shape(data_shape), self.K), -math.log(self.K),
                        device=None if device is None else checked_device(device), dtype=_float_dtype(dtype))
        return FlowState(lp, torch.zeros(lp.shape[0], dtype=torch.float64, device=device))

    def sample(self, x: torch.Tensor, t, generator=None, *, noise=None, dtype: torch.dtype | None = None) -> FlowState:
        """theta ~ p_F(. | x; t) (BFN Eq. 185) with the reference guards, stored as log theta in ``dtype``
        (None: float32)."""
        return self._sample(x, t, generator, noise=noise, dtype=dtype)

    def _sample(self, x, t, generator=None, *, noise=None, dtype=None, drawn: bool = False) -> FlowState:
        """:meth:`sample`; ``drawn``: ``x`` is :meth:`prepare_data`'s output and ``t`` drawn by the loss, so neither
        value is read back (``_per_example_t``'s)."""
        x = x if drawn else self.prepare_data(x)
        tt = _per_example_t(t, x.shape[0], x.device, drawn=drawn)
        theta = ops.discrete_flow(x, tt.to(torch.float32 if dtype is None else _float_dtype(dtype)), self.beta1,
                                  self.K, generator, noise=noise)
        return FlowState(theta.clamp_min(torch.finfo(theta.dtype).tiny).log(), tt)

    def mean_state(self, x: torch.Tensor, t, dtype=torch.float64) -> FlowState:
        """Noise-free logits beta(t)(K e_x - 1), log-normalised: what noise-free updates reach."""
        x = self.prepare_data(x)
        tt = _per_example_t(t, x.shape[0], x.device)
        b = self.beta(tt).to(_float_dtype(dtype)).reshape(-1, *([1] * x.dim()))
        onehot = torch.nn.functional.one_hot(x, self.K).to(dtype)
        return FlowState(torch.log_softmax(b * (self.K * onehot - 1), -1), tt)

    # ---- updates
    def _alpha(self, t_from: torch.Tensor, t_to: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        a = (self.beta(t_to) - self.beta(t_from)).to(like.dtype)
        return a.reshape(-1, *([1] * (like.dim() - 1)))

    def sender_mean(self, x_tilde: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """E[y] = alpha (K e - 1) for a (soft) one-hot ``x_tilde`` (..., K) (BFN Eq. 162)."""
        if not isinstance(x_tilde, torch.Tensor) or not x_tilde.is_floating_point() or x_tilde.dim() < 2:
            raise TypeError(f"x_tilde must be a float tensor (B, ..., K), got {getattr(x_tilde, 'dtype', type(x_tilde).__name__)}")
        if x_tilde.shape[-1] != self.K:
            raise ValueError(f"x_tilde must hold the K = {self.K} classes last, got shape {tuple(x_tilde.shape)}")
        _tensor("alpha", alpha)
        if alpha.dim() and (alpha.shape[0] not in (1, x_tilde.shape[0]) or alpha.dim() > x_tilde.dim()
                            or any(s != 1 for s in alpha.shape[1:])):
            raise ValueError(f"alpha must be a number or have shape ({x_tilde.shape[0]}, 1, ...) (one accuracy per "
                             f"example), got {tuple(alpha.shape)}")
        return alpha * (self.K * x_tilde - 1)

    def step(self, state: FlowState, x_tilde: torch.Tensor, t_next, generator=None, *, sender_noise: bool = True,
             noise=None) -> tuple[FlowState, torch.Tensor]:
        """Absorb alpha = beta(t_next) - beta(t). ``x_tilde``: integer classes (a sample of p_O) or a
        soft one-hot (..., K) (the output mean). y ~ N(alpha (K e - 1), alpha K I), or its mean without
        sender noise; then h in log space. Returns (state at t_next, y)."""
        lp = _state(state).params
        t_next = _per_example_t(t_next, lp.shape[0], lp.device, "t_next")
        _tensor("x_tilde", x_tilde)
        # a soft one-hot (..., K), or integer classes of the data's shape
        _same_shape("x_tilde", x_tilde, lp.shape if x_tilde.is_floating_point() else lp.shape[:-1])
        alpha_b = self.beta(t_next) - self.beta(state.t)
        if bool((alpha_b <= 0).any()):
            raise ValueError("step: t_next must be later than the state's time")
        return self._update(state, x_tilde, t_next, alpha_b, generator, sender_noise, noise)

    def _step(self, state: FlowState, x_tilde: torch.Tensor, t_next: torch.Tensor, generator,
              sender_noise: bool) -> tuple[FlowState, torch.Tensor]:
        """:meth:`step` unchecked, for the sampler's own grid: ``t_next`` float64 (B,) later than the state's time,
        so nothing is read back (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
        return self._update(state, x_tilde, t_next, self.beta(t_next) - self.beta(state.t), generator, sender_noise,
                            None, check_alpha=False)

    def _update(self, state, x_tilde, t_next, alpha_b, generator, sender_noise, noise, *, check_alpha=True):
        lp = state.params
        if not x_tilde.is_floating_point() and sender_noise:
            new, y = ops._discrete_sender_update(lp, x_tilde, alpha_b.to(lp.dtype), generator, log=True, noise=noise,
                                                 return_y=True, check_alpha=check_alpha)
            return FlowState(new, t_next), y
        onehot = x_tilde.to(lp.dtype) if x_tilde.is_floating_point() else \
            torch.nn.functional.one_hot(x_tilde.long(), self.K).to(lp.dtype)
        alpha = self._alpha(state.t, t_next, lp)
        y = self.sender_mean(onehot, alpha)
        if sender_noise:
            eps = noise if noise is not None else torch.randn(lp.shape, generator=generator, device=lp.device,
                                                                dtype=lp.dtype)
            y = y + torch.sqrt(alpha * self.K) * eps
        return FlowState(ops.discrete_update(lp, y, log=True), t_next), y

    def inverse_step(self, state: FlowState, y: torch.Tensor, t_prev) -> FlowState:
        """The exact inverse (docs/kernels/bfn.md#inverse-update): log theta = l' - y - logsumexp(l' - y)."""
        lp = _state(state).params
        t_prev = _per_example_t(t_prev, lp.shape[0], lp.device, "t_prev")
        _same_shape("y", _tensor("y", y), lp.shape)
        return self._inverse_step(state, y, t_prev)

    def _inverse_step(self, state: FlowState, y: torch.Tensor, t_prev: torch.Tensor) -> FlowState:
        """:meth:`inverse_step` unchecked: ``t_prev`` float64 (B,) on the reverse chain's own grid (no read back)."""
        lp = state.params
        return FlowState(ops.discrete_update_inverse(lp, y.to(lp.dtype), log=True), t_prev)
