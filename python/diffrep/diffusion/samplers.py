"""Stateless ancestral (DDPM) and DDIM samplers.

Each ``step`` takes a per-sample timestep tensor [B] and returns the next (less noisy) sample;
nothing is stored between calls. ``sample`` runs the whole reverse chain for a ``model_fn(x_t, t)``
that returns the network output in the parameterisation named by ``prediction``. Noise is drawn
from an explicit ``torch.Generator`` so that the same seed gives the same samples. Nothing here turns
gradients off: a caller that wants no graph wraps the call in ``torch.no_grad()``, one that
differentiates through the chain (or computes a guidance gradient inside ``model_fn``) does not.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from .._checks import device as checked_device
from .._checks import finite_float, non_negative_float, positive_int
from .._checks import shape as checked_shape
from .._progress import progress
from .schedules import NoiseSchedule, _generator, _tensor

__all__ = ["DDPMSampler", "DDIMSampler", "ddim_timesteps", "ChainDivergedError"]


class ChainDivergedError(ValueError):
    """A reverse chain left the region a working chain stays in (x_t non-finite or exploding), raised by a
    model's check of its chain (SAMI's) with the step and the likely cause. Its own class so that the
    trainer's periodic sample grid can skip a diverged grid and train on, as it skips a NaN grid."""


def _callback(callback) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be None or callable, got {type(callback).__name__}")


def _noise_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def ddim_timesteps(num_timesteps: int, num_steps: int, spacing: Literal["uniform", "trailing"] = "uniform") -> list[int]:
    """Descending sub-sequence of {0..T-1} with ``num_steps`` entries.

    ``"uniform"``: 0, c, 2c, ... with c = T // num_steps (Song et al. 2021, DDIM code default), exactly
    ``num_steps`` entries: the DDIM code's ``range(0, T, c)`` has ceil(T / c) entries, one or more extra
    when c does not divide T (T = 1000, 30 steps: 31); the two agree whenever num_steps divides T;
    ``"trailing"``: T-1, T-1-c, ... (Lin et al. 2024 Table 2), which always starts at the last step.
    """
    num_timesteps = positive_int(num_timesteps, "num_timesteps")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not (1 <= num_steps <= num_timesteps):
        raise ValueError(f"num_steps must be an int in [1, {num_timesteps}], got {num_steps!r}")
    if spacing == "uniform":
        c = num_timesteps // num_steps
        seq = [i * c for i in range(num_steps)]
    elif spacing == "trailing":
        c = num_timesteps / num_steps
        seq = sorted({int(round(num_timesteps - 1 - i * c)) for i in range(num_steps)})
    else:
        raise ValueError(f"spacing must be 'uniform' or 'trailing', got {spacing!r}")
    return seq[::-1]


class _Sampler:
    def __init__(self, schedule: NoiseSchedule, *, prediction: str = "eps", clip_x0: float | None = None):
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
        if prediction not in ("eps", "x0", "v", "score"):
            raise ValueError(f"prediction must be one of eps, x0, v, score; got {prediction!r}")
        if clip_x0 is not None and not finite_float(clip_x0, "clip_x0") > 0:
            raise ValueError(f"clip_x0 must be positive or None, got {clip_x0!r}")
        self.schedule = schedule
        self.prediction = prediction
        self.clip_x0 = clip_x0

    def _eps_x0(self, output, x_t, t, in_range: bool = False):  # in_range: as NoiseSchedule._check_t's
        self.schedule._check_t(t, in_range=in_range)
        self.schedule._check_x(x_t, t, "x_t")
        _tensor("model_output", output)
        if output.shape != x_t.shape:
            raise ValueError(f"model_output has shape {tuple(output.shape)} but x_t (the sample) has shape "
                             f"{tuple(x_t.shape)}")
        s = self.schedule  # t checked above (or the chain's own): the conversions skip its range read
        eps = s._to_eps(output, x_t, t, self.prediction)
        x0 = s._eps_to_x0(x_t, t, eps)
        if self.clip_x0 is not None:
            x0 = x0.clamp(-self.clip_x0, self.clip_x0)
            eps = s._x0_to_eps(x_t, t, x0)
        return eps, x0

    def _pairs(self, num_steps: int | None) -> list[tuple[int, int]]:
        raise NotImplementedError

    def sample(self, model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape, *,
               num_steps: int | None = None, generator: torch.Generator | None = None,
               device=None, dtype=torch.float32, x_T: torch.Tensor | None = None,
               callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the reverse chain from x_T ~ N(0, I) (or the given ``x_T``) to x_0.

        ``callback(i, x)`` is called after step i with the new sample. Gradients flow through the chain
        unless the caller disables them (``torch.no_grad()``). The inputs are checked once; the steps run on
        the chain's own timesteps without reading the device back (docs/architecture.md "Host synchronisation
        and the non-finite-loss check"), so a chain reads the host at most once (``x_T``'s finiteness) whatever
        its number of steps."""
        if not callable(model_fn):
            raise TypeError("model_fn must be callable as model_fn(x_t, t)")
        _callback(callback)
        _generator(generator)
        if x_T is None:
            dims = checked_shape(shape) if shape is not None else ()
            if not dims or 0 in dims:
                raise ValueError(f"shape must be a tuple of positive ints, got {shape!r}")
            if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
                raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
            x = torch.randn(dims, generator=generator, device=None if device is None else checked_device(device),
                            dtype=dtype)
        else:
            if not isinstance(x_T, torch.Tensor) or not x_T.dtype.is_floating_point:
                raise TypeError(f"x_T must be a tensor of floats, got {getattr(x_T, 'dtype', type(x_T).__name__)}")
            if x_T.dim() < 1 or x_T.numel() == 0:
                raise ValueError(f"x_T must be a non-empty batch, got shape {tuple(x_T.shape)}")
            if not bool(torch.isfinite(x_T).all()):  # once per chain: a NaN start gives NaN samples
                raise ValueError("x_T contains NaN or infinite values")
            if shape is not None and tuple(x_T.shape) != tuple(shape):  # x_T's shape was taken silently
                raise ValueError(f"x_T has shape {tuple(x_T.shape)} but shape is {tuple(shape)} (pass shape=None with x_T)")
            x = x_T
        B = x.shape[0]
        pairs = self._pairs(num_steps)
        for i, (t, t_prev) in enumerate(progress(pairs, total=len(pairs), desc="sampling", unit="step")):
            tt = torch.full((B,), t, device=x.device, dtype=torch.long)
            out = model_fn(x, tt)
            x = self._step_pair(out, tt, t_prev, x, generator)
            if callback is not None:
                callback(i, x)
        return x


class DDPMSampler(_Sampler):
    """Ancestral sampling with the posterior q(x_{t-1} | x_t, x0) (Ho et al. 2020, Eq. 6-7).

    ``variance="fixed_small"`` uses beta~_t = (1-abar_{t-1})/(1-abar_t) beta_t, ``"fixed_large"`` uses
    beta_t (both discussed in Ho et al. 2020 Sec. 3.2).
    """

    def __init__(self, schedule: NoiseSchedule, *, variance: Literal["fixed_small", "fixed_large"] = "fixed_small",
                 prediction: str = "eps", clip_x0: float | None = None):
        super().__init__(schedule, prediction=prediction, clip_x0=clip_x0)
        if variance not in ("fixed_small", "fixed_large"):
            raise ValueError(f"variance must be 'fixed_small' or 'fixed_large', got {variance!r}")
        self.variance = variance

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x0) (Ho et al. 2020, Eq. 7)."""
        self.schedule._check_t(t)
        return self._posterior(x0, x_t, t)

    def _posterior(self, x0, x_t, t):
        """:meth:`posterior` for a ``t`` known to lie in [0, T) (checked, or the chain's own): no host read."""
        s = self.schedule
        s._check_x(x_t, t, "x_t")
        s._check_like("x0", x0, x_t)
        ab = s._gather("alphas_cumprod", t, x_t)
        ab_prev = s._gather("alphas_cumprod_prev", t, x_t)
        beta = s._gather("betas", t, x_t)
        alpha = s._gather("alphas", t, x_t)
        mean = (ab_prev.sqrt() * beta / (1 - ab)) * x0 + (alpha.sqrt() * (1 - ab_prev) / (1 - ab)) * x_t
        var = beta * (1 - ab_prev) / (1 - ab) if self.variance == "fixed_small" else beta.expand_as(ab)
        return mean, var

    def step(self, model_output: torch.Tensor, t: torch.Tensor, x_t: torch.Tensor, *,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_{t-1} ~ p(x_{t-1} | x_t); no noise is added where t == 0."""
        self.schedule._check_t(t)  # the range's one host read; the rest runs on the checked t
        return self._step(model_output, t, x_t, generator, noise)

    def _step(self, model_output, t, x_t, generator, noise=None):
        """:meth:`step` for a ``t`` known to lie in [0, T): no host read."""
        _, x0 = self._eps_x0(model_output, x_t, t, in_range=True)
        mean, var = self._posterior(x0, x_t, t)
        _generator(generator)
        if noise is None:
            noise = _noise_like(x_t, generator)
        else:
            NoiseSchedule._check_like("noise", noise, x_t)
        nonzero = (t > 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
        return mean + nonzero * var.sqrt() * noise

    def _pairs(self, num_steps):
        T = self.schedule.num_timesteps
        if num_steps not in (None, T):
            raise ValueError(f"DDPMSampler runs all {T} steps; got num_steps={num_steps} (use DDIMSampler to skip steps)")
        return [(t, t - 1) for t in range(T - 1, -1, -1)]

    def _step_pair(self, out, tt, t_prev, x, generator):
        return self._step(out, tt, x, generator)  # tt: the chain's own, in range


class DDIMSampler(_Sampler):
    """DDIM (Song et al. 2021, Eq. 12): x_{t'} = sqrt(abar_{t'}) x0 + sqrt(1 - abar_{t'} - sigma^2) eps + sigma z,
    sigma = eta sqrt((1-abar_{t'})/(1-abar_t)) sqrt(1 - abar_t/abar_{t'}); eta = 0 is deterministic.
    ``t_prev = -1`` denotes the clean end point (abar = 1).
    """

    def __init__(self, schedule: NoiseSchedule, *, eta: float = 0.0, spacing: str = "uniform",
                 prediction: str = "eps", clip_x0: float | None = None):
        super().__init__(schedule, prediction=prediction, clip_x0=clip_x0)
        non_negative_float(eta, "eta")
        if spacing not in ("uniform", "trailing"):
            raise ValueError(f"spacing must be 'uniform' or 'trailing', got {spacing!r}")
        self.eta = float(eta)
        self.spacing = spacing

    def step(self, model_output: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, x_t: torch.Tensor, *,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        s = self.schedule
        s._check_t(t)
        if not isinstance(t_prev, torch.Tensor) or t_prev.shape != t.shape:
            raise ValueError("t_prev must be a tensor with the same shape as t")
        if t_prev.dtype.is_floating_point or t_prev.is_complex() or t_prev.dtype == torch.bool:
            raise TypeError(f"t_prev must be an integer tensor, got {t_prev.dtype}")
        _generator(generator)
        if bool(((t_prev >= t) | (t_prev < -1)).any()):  # one host read for both bounds
            raise ValueError("t_prev must satisfy -1 <= t_prev < t for every sample")
        return self._step(model_output, t, t_prev, x_t, generator, noise)

    def _step(self, model_output, t, t_prev, x_t, generator, noise=None):
        """:meth:`step` for ``t`` in [0, T) and -1 <= ``t_prev`` < ``t`` known (checked, or the chain's own
        pair): no host read."""
        s = self.schedule
        eps, x0 = self._eps_x0(model_output, x_t, t, in_range=True)
        ab = s._gather("alphas_cumprod", t, x_t)
        ab_prev = s._table("alphas_cumprod", x_t.device, x_t.dtype)[t_prev.clamp(min=0)]
        ab_prev = torch.where(t_prev < 0, torch.ones_like(ab_prev), ab_prev).reshape(ab.shape)
        sigma = self.eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
        x = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if noise is not None:
            NoiseSchedule._check_like("noise", noise, x_t)
        if self.eta > 0:
            if noise is None:
                noise = _noise_like(x_t, generator)
            x = x + sigma * noise
        return x

    def invert(self, model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor, *,
               num_steps: int | None = None, callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Deterministic DDIM inversion (DiffAE Eq. 8; Song et al. 2021 Sec. 4.3): the encoder
        x_{t_{k+1}} = sqrt(abar_{t_{k+1}}) x0_hat(x_{t_k}, t_k) + sqrt(1 - abar_{t_{k+1}}) eps(x_{t_k}, t_k)
        run up the ascending timesteps t_0 < ... < t_K of ``sample``'s sequence, starting from the image
        read as the state at t_0. Returns x_T; ``sample(model_fn, ..., x_T=x_T, num_steps=num_steps)``
        inverts it exactly when the model's x0 prediction equals the image all along the path (the
        noise-free limit: a denoiser exact for that image; tests/methods/test_diffae.py), approximately
        otherwise (the error vanishes as the steps shrink). Needs ``eta == 0``."""
        if self.eta != 0:
            raise ValueError(f"DDIM inversion is deterministic: it needs eta = 0, got eta = {self.eta}")
        if not callable(model_fn):
            raise TypeError("model_fn must be callable as model_fn(x_t, t)")
        if not isinstance(x0, torch.Tensor) or not x0.dtype.is_floating_point:
            raise TypeError("x0 must be a floating-point tensor")
        if x0.dim() < 1 or x0.numel() == 0:
            raise ValueError(f"x0 must be a non-empty batch, got shape {tuple(x0.shape)}")
        if not bool(torch.isfinite(x0).all()):  # once per inversion: NaN would come out as a NaN x_T
            raise ValueError("x0 contains NaN or infinite values")
        _callback(callback)
        s = self.schedule
        seq = [t for t, _ in self._pairs(num_steps)][::-1]  # ascending t_0 .. t_K
        x, B = x0, x0.shape[0]
        for i, (t, t_next) in enumerate(zip(seq[:-1], seq[1:])):
            tt = torch.full((B,), t, device=x.device, dtype=torch.long)
            eps, x0_hat = self._eps_x0(model_fn(x, tt), x, tt, in_range=True)  # tt: a step of the sequence
            ab_next = s._gather("alphas_cumprod", torch.full_like(tt, t_next), x)  # a step of the sequence: in range
            x = ab_next.sqrt() * x0_hat + (1 - ab_next).sqrt() * eps
            if callback is not None:
                callback(i, x)
        return x

    def _pairs(self, num_steps):
        T = self.schedule.num_timesteps
        seq = ddim_timesteps(T, T if num_steps is None else num_steps, self.spacing)
        return list(zip(seq, seq[1:] + [-1]))

    def _step_pair(self, out, tt, t_prev, x, generator):
        return self._step(out, tt, torch.full_like(tt, t_prev), x, generator)  # the chain's own pair: in range
