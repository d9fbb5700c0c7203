"""Discrete-time variance-preserving noise schedules and parameterisation conversions.

The forward process is q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) (Ho et al. 2020, Eq. 4),
with t in {0, ..., T-1} (index 0 is the first noise level, as in the DDPM and LDM code bases).
Schedules are stateless: every method takes a per-sample integer ``t`` of shape [B]; the tables are
plain float64 attributes (never module buffers, so never averaged by EMA or saved as weights).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import torch

from .._checks import device as checked_device
from .._checks import positive_int
from ..config import Config, ConfigError, Ge, Gt, Lt

__all__ = ["NoiseScheduleConfig", "NoiseSchedule", "expand_like"]


@dataclasses.dataclass
class NoiseScheduleConfig(Config):
    """``kind``:

    - ``"linear"``: beta linear from ``beta_start`` to ``beta_end`` (Ho et al. 2020 Sec. 4: 1e-4..0.02);
    - ``"cosine"``: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped at
      ``max_beta`` = 0.999 (Nichol & Dhariwal 2021, Eq. 17);
    - ``"ldm_linear"``: beta = linspace(sqrt(beta_start), sqrt(beta_end))^2, the latent-diffusion
      "linear" schedule (the DyGA paper's LDM setting, defaults 0.0015..0.0155 set by the caller).
    """

    kind: Literal["linear", "cosine", "ldm_linear"] = "linear"  # beta schedule: "linear" (Ho et al. 2020), "cosine" (Nichol & Dhariwal 2021), "ldm_linear" (LDM)
    num_timesteps: Annotated[int, Ge(1)] = 1000  # T, the number of diffusion steps
    beta_start: float = 1e-4  # first beta of "linear" / "ldm_linear" (unused by "cosine")
    beta_end: float = 0.02  # last beta of "linear" / "ldm_linear" (unused by "cosine")
    cosine_s: Annotated[float, Ge(0)] = 0.008  # offset s of the cosine schedule (Nichol & Dhariwal 2021, Eq. 17)
    max_beta: Annotated[float, Gt(0), Lt(1)] = 0.999  # "cosine": betas clipped at this value (Nichol & Dhariwal 2021)

    def validate(self) -> None:
        if self.kind != "cosine" and not (0 < self.beta_start <= self.beta_end < 1):
            raise ConfigError("beta_end", f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")


def _tensor(name: str, v, *, floating: bool = True) -> torch.Tensor:
    if not isinstance(v, torch.Tensor) or v.is_complex() or (floating and not v.dtype.is_floating_point):
        kind = "a floating-point tensor" if floating else "a real tensor"
        raise TypeError(f"{name} must be {kind}, got {getattr(v, 'dtype', type(v).__name__)}")
    return v


def expand_like(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector [B] to broadcast against ``x`` [B, ...]."""
    _tensor("v", v, floating=False)
    _tensor("x", x, floating=False)
    if v.dim() != 1 or x.dim() < 1 or v.shape[0] != x.shape[0]:
        raise ValueError(f"v must have shape [B] with B = x.shape[0]; got v {tuple(v.shape)}, x {tuple(x.shape)}")
    return v.reshape(v.shape[0], *([1] * (x.dim() - 1)))


def _generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


class NoiseSchedule:
    """Tables beta_t, alpha_t, abar_t (float64) and the conversions between eps, x0, v and score."""

    def __init__(self, config: NoiseScheduleConfig | None = None, **kwargs):
        if config is None:
            config = NoiseScheduleConfig(**kwargs)
        elif kwargs:
            raise TypeError("NoiseSchedule: pass either a config or keyword arguments, not both")
        if not isinstance(config, NoiseScheduleConfig):
            raise TypeError(f"NoiseSchedule: config must be a NoiseScheduleConfig, got {type(config).__name__}")
        self.config = config
        T = config.num_timesteps
        if config.kind == "linear":
            betas = torch.linspace(config.beta_start, config.beta_end, T, dtype=torch.float64)
        elif config.kind == "ldm_linear":
            betas = torch.linspace(math.sqrt(config.beta_start), math.sqrt(config.beta_end), T, dtype=torch.float64) ** 2
        else:
            s = config.cosine_s
            steps = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            abar = f / f[0]
            betas = (1 - abar[1:] / abar[:-1]).clamp(max=config.max_beta)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        # the tables converted per (name, device, dtype). They cannot go stale: the tables are fixed by the config,
        # not module state (no load, .to() or _apply touches them) and nothing writes them; an edit by hand would
        # leave the tables inconsistent with each other anyway. A version check here (diffrep.nn.derived) would be a
        # graph break in every method's loss under torch.compile.
        self._cache: dict = {}

    @property
    def num_timesteps(self) -> int:
        return self.config.num_timesteps

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.config})"

    # -- table look-ups ----------------------------------------------------------------------
    def _check_t(self, t: torch.Tensor, name: str = "t", *, batch: int | None = None, who: str = "",
                 of: str = "x_t", in_range: bool = False) -> torch.Tensor:
        """``t`` as integer timesteps [B] in [0, T); with ``batch``, one per sample of ``of`` (the models'
        ``eps`` and the like: ``who`` prefixes that message). The range costs one host read of both ends (a
        host-device synchronisation on CUDA); ``in_range`` skips it for a ``t`` the library knows to be in
        range (drawn by :meth:`sample_timesteps`, or checked earlier in the same call), keeping the type and
        shape checks (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of integer timesteps, got {type(t).__name__}")
        if t.dim() != 1:
            raise ValueError(f"{name} must have shape [B] (one timestep per sample), got {tuple(t.shape)}")
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"{name} must be an integer tensor, got {t.dtype}")
        if t.dtype not in (torch.int64, torch.int32):  # torch indexes with a uint8 tensor as a mask, silently
            raise TypeError(f"{name} must be an int64 or int32 tensor of timesteps, got {t.dtype} (use {name}.long())")
        if t.numel() and not in_range:
            lo, hi = torch.stack([t.min(), t.max()]).tolist()  # one read for both ends and the message
            if lo < 0 or hi >= self.num_timesteps:
                raise ValueError(f"{name} must lie in [0, {self.num_timesteps - 1}], got range [{lo}, {hi}]")
        if batch is not None and t.shape[0] != batch:
            raise ValueError(f"{who + ': ' if who else ''}{name} must have shape [{batch}] (one timestep per {of}), "
                             f"got {tuple(t.shape)}")
        return t

    def _table(self, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (name, device, dtype)
        if key not in self._cache:
            self._cache[key] = getattr(self, name).to(device=device, dtype=dtype)
        return self._cache[key]

    TABLES = ("betas", "alphas", "alphas_cumprod", "alphas_cumprod_prev")

    def gather(self, name: str, t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """Per-sample values of table ``name`` at ``t`` [B], shaped to broadcast against ``like``."""
        if name not in self.TABLES:
            raise ValueError(f"name must be one of {list(self.TABLES)}, got {name!r}")
        self._check_t(t)
        return self._gather(name, t, like)

    def _gather(self, name: str, t: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`gather` for a ``t`` known to lie in [0, T) (``_check_t``'s ``in_range``): no host read."""
        if name not in self.TABLES:
            raise ValueError(f"name must be one of {list(self.TABLES)}, got {name!r}")
        self._check_t(t, in_range=True)
        if like is not None:
            _tensor("like", like, floating=False)
            if like.dim() < 1 or like.shape[0] != t.shape[0]:
                raise ValueError(f"like must have t's batch size {t.shape[0]} first, got shape {tuple(like.shape)}")
        dtype = like.dtype if like is not None and like.dtype.is_floating_point else torch.float32
        v = self._table(name, t.device, dtype)[t]
        return expand_like(v, like) if like is not None else v

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        return self.gather("alphas_cumprod", t)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar_t / (1 - abar_t) (Kingma et al. 2021)."""
        ab = self.gather("alphas_cumprod", t)
        return ab / (1 - ab)

    def sample_timesteps(self, batch_size: int, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """t ~ U{0..T-1}, shape [batch_size]."""
        batch_size = positive_int(batch_size, "batch_size")
        device = None if device is None else checked_device(device)
        _generator(generator)
        return torch.randint(0, self.num_timesteps, (batch_size,), device=device, generator=generator)

    # -- forward process ---------------------------------------------------------------------
    def _check_x(self, x: torch.Tensor, t: torch.Tensor, name: str) -> None:
        _tensor(name, x)
        if x.dim() < 1 or x.shape[0] != t.shape[0]:
            raise ValueError(f"{name} batch size {tuple(x.shape)[:1]} does not match t of shape {tuple(t.shape)}")

    @staticmethod
    def _check_like(name: str, v, x_t: torch.Tensor, x_name: str = "x_t") -> None:
        """A tensor of x_t's shape (the conversions are elementwise: a broadcast would be silently wrong)."""
        _tensor(name, v)
        if v.shape != x_t.shape:
            raise ValueError(f"{name} has shape {tuple(v.shape)} but {x_name} has shape {tuple(x_t.shape)}")

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (Ho et al. 2020, Eq. 4)."""
        self._check_t(t)
        return self._q_sample(x0, t, noise, generator)

    def _q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """:meth:`q_sample` for a ``t`` known to lie in [0, T) (the losses' own draws): no host read."""
        self._check_t(t, in_range=True)
        self._check_x(x0, t, "x0")
        _generator(generator)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        else:
            self._check_like("noise", noise, x0, "x0")
        ab = self._gather("alphas_cumprod", t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    # -- conversions (all exact algebra on x_t = a x0 + s eps, a = sqrt(abar), s = sqrt(1-abar)) ----
    def _as(self, t, x, in_range: bool = False, **others):
        self._check_t(t, in_range=in_range)
        self._check_x(x, t, "x_t")
        for name, v in others.items():
            self._check_like(name, v, x)
        ab = self._gather("alphas_cumprod", t, x)
        return ab.sqrt(), (1 - ab).sqrt()

    def eps_to_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self._eps_to_x0(x_t, t, eps, in_range=False)

    def _eps_to_x0(self, x_t, t, eps, *, in_range: bool = True):  # in_range: as _check_t's
        a, s = self._as(t, x_t, in_range, eps=eps)
        return (x_t - s * eps) / a

    def x0_to_eps(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self._x0_to_eps(x_t, t, x0, in_range=False)

    def _x0_to_eps(self, x_t, t, x0, *, in_range: bool = True):
        a, s = self._as(t, x_t, in_range, x0=x0)
        return (x_t - a * x0) / s

    def eps_to_score(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """grad log q(x_t) = -eps / sqrt(1 - abar_t) (Song et al. 2021; Ho et al. 2020 Eq. 11)."""
        _, s = self._as(t, x_t, eps=eps)
        return -eps / s

    def score_to_eps(self, x_t: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        return self._score_to_eps(x_t, t, score, in_range=False)

    def _score_to_eps(self, x_t, t, score, *, in_range: bool = True):
        _, s = self._as(t, x_t, in_range, score=score)
        return -score * s

    def x0_to_score(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return self.eps_to_score(x_t, t, self.x0_to_eps(x_t, t, x0))

    def eps_to_v(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v = a eps - s x0 (Salimans & Ho 2022, Sec. 4)."""
        a, s = self._as(t, x_t, eps=eps)
        x0 = (x_t - s * eps) / a
        return a * eps - s * x0

    def v_to_eps(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self._v_to_eps(x_t, t, v, in_range=False)

    def _v_to_eps(self, x_t, t, v, *, in_range: bool = True):
        a, s = self._as(t, x_t, in_range, v=v)
        return s * x_t + a * v

    def to_eps(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: str) -> torch.Tensor:
        """Convert a model output of parameterisation ``prediction`` (eps|x0|v|score) to eps."""
        if prediction not in ("eps", "x0", "v", "score"):
            raise ValueError(f"prediction must be one of eps, x0, v, score; got {prediction!r}")
        self._check_t(t)
        self._check_x(x_t, t, "x_t")
        self._check_like("output", output, x_t)
        return self._to_eps(output, x_t, t, prediction)

    def _to_eps(self, output, x_t, t, prediction):
        """:meth:`to_eps` for a checked ``prediction`` and a ``t`` known to lie in [0, T): no host read."""
        if prediction == "eps":
            self._check_t(t, in_range=True)
            self._check_x(x_t, t, "x_t")
            self._check_like("output", output, x_t)
            return output
        if prediction == "x0":
            return self._x0_to_eps(x_t, t, output)
        if prediction == "v":
            return self._v_to_eps(x_t, t, output)
        return self._score_to_eps(x_t, t, output)
