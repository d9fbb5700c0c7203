"""The non-linear latent diffusion of the denoising multi-beta VAE (Uppal et al. 2025, Sec. 4.2, Eq. 13-19,
Algorithm 2; docs/methods/multibeta.md#phase-2-the-latent-diffusion).

beta == t and B == T. The forward process is the frozen encoder itself: q(z_t | x) = N(f(x, t), sigma_t^2 I)
(Eq. 13) on the grid t_i = i tau, tau = T / N (footnote 3), sigma_t the phase-1 table. A network psi with two
heads, eps_hat(z_t, t) and Delta_hat(z_t, t), is trained with Eq. 19 (w(t) = ``weighting``):

    z_t = f(x, t) + sigma_t eps,   eps ~ N(0, I),   t = i tau with i ~ U{1..N}
    l = w(t)^-1 ||eps_hat(z_t, t) - eps||^2 + ||f(x, t - tau) - f(x, t) - Delta_hat(z_t, t)||^2

(sums over latent dimensions, mean over the batch; ``delta_weight`` scales the second term, 1 in the paper).
Sampling is Algorithm 2, for t = t_from, ..., tau:

    mu_t = z_t - sigma_t eps_hat;   mu_{t-tau} = mu_t + Delta_hat;   z_{t-tau} = mu_{t-tau} + sigma_{t-tau} xi

The paper prints step 3 as mu_t - Delta_hat, which contradicts the Eq. 19 target f(x, t - tau) - f(x, t)
(with the exact heads, "+" carries f(x, t) to f(x, t - tau), "-" to 2 f(x, t) - f(x, t - tau));
``printed_sign=True`` reproduces the printed step. ``sampler``: ``"alg2"`` (xi fresh N(0, I)),
``"deterministic"`` (xi = eps_hat, DDIM-like, or xi = 0 with ``deterministic_noise="zero"``), ``"ancestral"``
(the Eq. 17 mean with the Eq. 8 std sigma~_t). Delta_hat is a single-step predictor, so a run takes exactly
one network call per grid step (no strides).

The network: :class:`diffrep.methods.multibeta_nets.LatentMLP` for vector latents; for spatial latents the
U-Net with ``num_outputs=2``. It reads t x ``time_scale``. The noise schedule sigma_i is a buffer copied
from the phase-1 VAE (:meth:`LatentDenoiser.set_schedule`), so a saved denoiser samples on its own.

``schedule="per_unit"`` (the VAE's ``posterior_scale="per_unit"``, a departure from Eq. 3 and 13;
docs/methods/multibeta.md#departures-from-the-paper): the schedule has one sigma_{t,k} per latent unit, a buffer
[N + 1, *latent_shape], and q(z_t | x) = N(f(x, t), diag(sigma_{t,k}^2)). Every Gaussian of Eq. 13-19 then has a
diagonal covariance and factorises over the units, so each formula holds unit by unit with that unit's schedule:
z_t = f + sigma_t (.) eps, mu_t = z_t - sigma_t (.) eps_hat, z_{t-tau} = mu_{t-tau} + sigma_{t-tau} (.) xi, the
posterior of Eq. 15-16 and sigma~_t of Eq. 8 elementwise, and the ELBO weight w(t) of Eq. 11 per unit (the eps term
becomes sum_k w_k(t)^-1 (eps_hat_k - eps_k)^2). With every unit's schedule equal it is the isotropic model exactly.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Annotated, Callable, Literal

import torch
from torch import nn

from .._checks import non_negative_int, positive_int, training_step
from ..config import Config, ConfigError, Ge, Gt
from ..nn.derived import DerivedValue
from ..nn.images import batch_images, module_dtype
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet, UNetConfig
from ..ops._full_precision import autocast_off
from ..ops.random import check_generator
from .multibeta_nets import LatentMLP
from .multibeta_vae import _at_least_f32, _check_latents

__all__ = ["LatentDenoiserConfig", "LatentDenoiser"]


@dataclasses.dataclass
class LatentDenoiserConfig(Config):
    """Every choice the paper leaves open is a field (docs/methods/multibeta.md#choices-where-the-paper-is-silent)."""

    latent: Literal["vector", "spatial"] = "vector"  # the VAE's latent kind: a vector (LatentMLP) or a spatial map (U-Net)
    latent_dim: Annotated[int, Ge(1)] = 10  # d of a vector latent (must equal the VAE's)
    latent_channels: Annotated[int, Ge(1)] = 4  # channels of a spatial latent (must equal the VAE's)
    latent_size: Annotated[int, Ge(1)] = 8  # height = width of a spatial latent
    num_steps: Annotated[int, Ge(1)] = 1000  # N (must equal the VAE's)
    beta_max: Annotated[float, Gt(0)] = 1.0  # T = B
    hidden: Annotated[int, Ge(1)] = 256  # LatentMLP width
    depth: Annotated[int, Ge(1)] = 4  # LatentMLP residual blocks
    time_scale: Annotated[float, Gt(0)] = 1000.0  # the network reads t x this
    unet: UNetConfig = dataclasses.field(default_factory=lambda: UNetConfig(  # the two-output U-Net (eps_hat, Delta_hat) for a spatial latent
        image_size=8, in_channels=4, out_channels=4, model_channels=64, channel_mult=(1, 2), num_res_blocks=2,
        attention_resolutions=(4,), num_groups=32, num_outputs=2))
    weighting: Literal["simple", "elbo"] = "simple"  # w(t): 1, or the ELBO weight of Sec. 4.1
    max_weight: Annotated[float, Gt(0)] = 1e3  # cap of w(t)^-1 with weighting="elbo"
    delta_weight: Annotated[float, Ge(0)] = 1.0  # weight of the Delta-prediction term of the phase-2 loss (1 in the paper)
    delta_over_tau: bool = False  # the Delta head predicts Delta / tau (Delta_hat = tau x output)
    sampler: Literal["alg2", "deterministic", "ancestral"] = "alg2"  # Algorithm 2, a deterministic DDIM-like variant, or ancestral (Eq. 17)
    deterministic_noise: Literal["eps_hat", "zero"] = "eps_hat"  # sampler="deterministic": xi = eps_hat (DDIM-like) or xi = 0
    printed_sign: bool = False  # True: Algorithm 2 step 3 as printed (mu_t - Delta_hat)
    schedule: Literal["isotropic", "per_unit"] = "isotropic"  # one sigma_t per t (Eq. 13), or one per latent unit (must match the VAE's posterior_scale)

    def validate(self) -> None:
        if self.latent == "spatial":
            u = self.unet
            if u.in_channels != self.latent_channels or u.out_channels != self.latent_channels:
                raise ConfigError("unet.in_channels", f"unet in/out channels must equal latent_channels={self.latent_channels}")
            if u.num_outputs != 2:
                raise ConfigError("unet.num_outputs", "the latent U-Net needs num_outputs=2 (eps_hat, Delta_hat)")
            if u.image_size != self.latent_size:
                raise ConfigError("unet.image_size", f"must equal latent_size={self.latent_size}")
            if u.latent_dim or u.context_dim:
                raise ConfigError("unet.latent_dim", "the latent U-Net takes no latent vector or context")

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,) if self.latent == "vector" else (self.latent_channels, self.latent_size, self.latent_size)

    @property
    def tau(self) -> float:
        return self.beta_max / self.num_steps

    @property
    def sigma_shape(self) -> tuple[int, ...]:
        """The shape of sigma_t at one t: () isotropic, the latent's shape per_unit."""
        return () if self.schedule == "isotropic" else self.latent_shape


class LatentDenoiser(PretrainedMixin, nn.Module):
    """psi of Sec. 4.2: ``predict(z_t, i)`` -> (eps_hat, Delta_hat), ``loss`` (Eq. 19), ``step`` / ``denoise`` /
    ``sample`` (Algorithm 2)."""

    config_class = LatentDenoiserConfig

    def __init__(self, config: LatentDenoiserConfig):
        super().__init__()
        cfg = self._init_config(config)
        if cfg.latent == "vector":
            self.net = LatentMLP(cfg.latent_dim, cfg.hidden, cfg.depth, cfg.time_scale)
        else:
            self.net = UNet(cfg.unet)
        n = cfg.num_steps
        self.register_buffer("sigma_table", torch.zeros((n + 1,) + cfg.sigma_shape))  # set_schedule fills it (phase 2 starts)
        self.register_buffer("schedule_set", torch.zeros((), dtype=torch.uint8))
        # schedule_set's host copy: every phase-2 loss tests it, a host read each on CUDA (nn.derived)
        self._schedule_set_host = DerivedValue()
        self._schedule_is_set()

    # -- schedule ----------------------------------------------------------------------------
    def set_schedule(self, sigmas: torch.Tensor) -> None:
        """Install the noise schedule sigma_i, i = 0..N (the phase-1 table, ``MultiBetaVAE.sigma_grid()``; Algorithm
        2's input): [N + 1], or [N + 1, *latent_shape] with ``schedule="per_unit"``. It must be positive, finite and
        strictly increasing along the grid, for every unit (sigma_{t|t-tau}^2 > 0)."""
        n = self.config.num_steps
        want = (n + 1,) + self.config.sigma_shape
        if not isinstance(sigmas, torch.Tensor) or tuple(sigmas.shape) != want:
            what = "N + 1 grid values" if len(want) == 1 else "N + 1 grid values x the latent's shape, schedule='per_unit'"
            got = tuple(sigmas.shape) if isinstance(sigmas, torch.Tensor) else type(sigmas).__name__  # a list read "()"
            raise ValueError(f"set_schedule: sigmas must be a tensor of shape {list(want)} ({what}), got {got}")
        if not sigmas.is_floating_point():  # a complex table lost its imaginary part in the cast below
            raise TypeError(f"set_schedule: sigmas must be a real floating-point tensor, got {sigmas.dtype}")
        s = sigmas.detach().to(self.sigma_table.dtype)
        if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError("set_schedule: sigmas must be finite and positive")
        if not bool((torch.diff(s, dim=0) > 0).all()):
            bad = int(torch.nonzero((torch.diff(s, dim=0) <= 0).reshape(n, -1).any(1))[0])
            lo, hi = s[bad].reshape(-1), s[bad + 1].reshape(-1)
            k = int(torch.nonzero(hi <= lo)[0])
            unit = "" if s.dim() == 1 else f" (unit {k})"
            raise ValueError(f"set_schedule: sigmas must strictly increase along the grid (sigma_(t|t-tau)^2 > 0); "
                             f"sigma[{bad + 1}] = {hi[k].item():.6g} <= sigma[{bad}] = {lo[k].item():.6g}{unit}")
        self.sigma_table.copy_(s.to(self.sigma_table.device))
        self.schedule_set.fill_(1)
        self._schedule_set_host.put((self.schedule_set,), True)   # known: no read at the next step

    def _schedule_is_set(self) -> bool:
        """``schedule_set`` through its host copy, read again only after the buffer changed (a load, a move, a
        write: :class:`diffrep.nn.derived.DerivedValue`)."""
        return self._schedule_set_host.get((self.schedule_set,), lambda: bool(self.schedule_set))

    def _need_schedule(self, who: str) -> None:
        if not self._schedule_is_set():
            raise RuntimeError(f"LatentDenoiser.{who}: no noise schedule installed; call set_schedule(vae.sigma_grid()) "
                               "(MultiBeta does it when phase 2 starts)")

    def grid_index(self, beta, name: str = "beta") -> int:
        """The grid index i of a beta in [0, B]: beta snapped to the nearest grid value i tau."""
        cfg = self.config
        if isinstance(beta, torch.Tensor) and beta.numel() == 1:
            beta = float(beta)
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not math.isfinite(float(beta)):
            raise ValueError(f"{name} must be a finite number in [0, {cfg.beta_max:g}], got {beta!r}")
        if not 0 <= float(beta) <= cfg.beta_max * (1 + 1e-6):
            raise ValueError(f"{name} must lie in [0, B={cfg.beta_max:g}], got {beta!r}")
        return min(int(round(float(beta) / cfg.tau)), cfg.num_steps)

    def weight_inv(self, i: torch.Tensor) -> torch.Tensor:
        """w(t_i)^-1 per example [B]: 1 (``simple``), or sigma_{t|t-tau}^2 / (2 sigma_{t-tau}^2) capped at
        ``max_weight`` (``elbo``, the eps form of Eq. 11); with ``schedule="per_unit"`` and ``elbo``, per example and
        unit [B, *latent_shape]."""
        return self._weight_inv(self._check_indices(i, None, "LatentDenoiser.weight_inv"))

    def _check_indices(self, i, n: int | None, who: str) -> torch.Tensor:
        """``i``: integer grid indices [n] in 1..N (index 0 has no step before it: ``s2[i - 1]`` wrapped to the
        top of the grid). One host sync; the training loss draws its indices in range and skips this."""
        N = self.config.num_steps
        if not isinstance(i, torch.Tensor) or i.dtype.is_floating_point or i.is_complex() or i.dtype == torch.bool \
                or i.dim() != 1 or (n is not None and i.shape[0] != n):
            raise ValueError(f"{who}: i must be integer grid indices [{'B' if n is None else n}] in 1..N={N}, got "
                             f"{getattr(i, 'dtype', type(i).__name__)} {tuple(getattr(i, 'shape', ()))}")
        if i.numel() and (bool((i < 1).any()) or bool((i > N).any())):
            raise ValueError(f"{who}: i must lie in 1..N={N} (grid steps with a step before them), got values in "
                             f"[{int(i.min())}, {int(i.max())}]")
        return i

    def _weight_inv(self, i: torch.Tensor) -> torch.Tensor:
        if self.config.weighting == "simple":
            return torch.ones(i.shape, device=i.device, dtype=self.sigma_table.dtype)
        s2 = self.sigma_table.pow(2)
        w = (s2[i] - s2[i - 1]) / (2 * s2[i - 1])
        return w.clamp_max(self.config.max_weight)

    # -- the network -------------------------------------------------------------------------
    def _check_z(self, z, who: str, *, finite: bool = True) -> torch.Tensor:
        # in the network's dtype: a bf16 or float64 code failed deep inside F.linear
        return _check_latents(z, self.config.latent_shape, who, finite=finite).to(module_dtype(self))

    def predict(self, z: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_hat(z_t, t), Delta_hat(z_t, t)) at grid indices i [B] (t = i tau); Delta_hat is returned in latent
        units (``delta_over_tau`` multiplies the head's output by tau). Only the kinds and shapes are checked here
        (the network call of every training and sampling step: no host sync); :meth:`step` checks the values."""
        cfg = self.config
        shape = cfg.latent_shape
        if not isinstance(z, torch.Tensor) or not z.dtype.is_floating_point:
            raise TypeError(f"LatentDenoiser.predict: z must be a floating-point tensor [B, {', '.join(map(str, shape))}], "
                            f"got {getattr(z, 'dtype', type(z).__name__)}")
        if tuple(z.shape[1:]) != shape:
            raise ValueError(f"LatentDenoiser.predict: z must be a floating-point tensor [B, {', '.join(map(str, shape))}], "
                             f"got {z.dtype} {tuple(z.shape)}")
        z = z.to(module_dtype(self))  # as _check_z: a bf16 or float64 code failed deep inside F.linear
        if not isinstance(i, torch.Tensor) or i.dtype.is_floating_point or i.is_complex() or i.dtype == torch.bool \
                or tuple(i.shape) != (z.shape[0],):
            raise ValueError(f"LatentDenoiser.predict: i must be integer grid indices [{z.shape[0]}], "
                             f"got {getattr(i, 'dtype', type(i).__name__)} {tuple(getattr(i, 'shape', ()))}")
        t = i.to(torch.float64).mul(cfg.tau).to(z.dtype)
        # t = i tau from integer i is finite: not read back (a host sync per step on CUDA); a network put in
        # self.net without that private entry is called as it is
        eps, delta = getattr(self.net, "_forward_grid", self.net)(z, t)
        if cfg.delta_over_tau:
            delta = delta * cfg.tau
        return eps, delta

    # -- Eq. 19 --------------------------------------------------------------------------------
    def eq19_terms(self, f_t: torch.Tensor, f_prev: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> dict:
        """The Eq. 19 inputs and targets from the encodings f(x, t_i) and f(x, t_i - tau): ``z_t`` = f_t +
        sigma_{t_i} noise (per unit with ``schedule="per_unit"``), ``eps`` (= noise), ``delta`` = f_prev - f_t,
        ``w_inv`` = w(t_i)^-1 (:meth:`weight_inv`)."""
        who = "LatentDenoiser.eq19_terms"
        f_t = self._check_z(f_t, f"{who}: f_t")
        for name, v in (("f_prev", f_prev), ("noise", noise)):
            if not isinstance(v, torch.Tensor) or not v.is_floating_point() or v.shape != f_t.shape:
                raise ValueError(f"{who}: {name} must be a floating-point tensor of f_t's shape {tuple(f_t.shape)}, "
                                 f"got {getattr(v, 'dtype', type(v).__name__)} {tuple(getattr(v, 'shape', ()))}")
        return self._eq19_terms(f_t, f_prev, self._check_indices(i, f_t.shape[0], who), noise)

    def _eq19_terms(self, f_t: torch.Tensor, f_prev: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> dict:
        sig = self._per_example(self.sigma_table[i].to(f_t.dtype), f_t.dim())
        return {"z_t": f_t + sig * noise, "eps": noise, "delta": f_prev - f_t, "w_inv": self._weight_inv(i)}

    @staticmethod
    def _per_example(v: torch.Tensor, dim: int) -> torch.Tensor:
        """A per-example value [B] or [B, *sigma_shape] shaped to broadcast against latents [B, ...] of ``dim`` dims."""
        return v.reshape(v.shape[:1] + (1,) * (dim - v.dim()) + v.shape[1:])

    def posterior(self, z_t: torch.Tensor, f_t: torch.Tensor, f_prev: torch.Tensor, i: int) -> tuple[torch.Tensor, float]:
        """q(z_{t-tau} | z_t, x) of Eq. 15-16 at t = i tau, with Eq. 16's x read as f(x, t) (x is not in latent
        space): mean (sigma_{t-tau}^2/sigma_t^2) z_t + (sigma_{t|t-tau}^2/sigma_t^2) f(x, t) + f(x, t-tau) - f(x, t)
        and std sigma~_t = sigma_{t|t-tau} sigma_{t-tau} / sigma_t (Eq. 8): a float, or with ``schedule="per_unit"``
        a tensor of the latent's shape (every quantity per unit)."""
        cfg = self.config
        if not 1 <= i <= cfg.num_steps:
            raise ValueError(f"posterior: i must lie in 1..N={cfg.num_steps}, got {i}")
        mean, std = self._posterior(z_t, f_t, f_prev, i)
        return mean, (float(std) if std.dim() == 0 else std.to(z_t.dtype))

    def _posterior(self, z_t, f_t, f_prev, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`posterior` with std left a tensor on the device: the ancestral step reads nothing back."""
        s2_t, s2_p = self.sigma_table[i].pow(2), self.sigma_table[i - 1].pow(2)
        var_step = s2_t - s2_p
        mean = (s2_p / s2_t) * z_t + (var_step / s2_t) * f_t + f_prev - f_t
        return mean, torch.sqrt(var_step * s2_p / s2_t)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None,
             encoder: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             t_index: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> dict:
        """Eq. 19 on a batch of images, the encodings f(x, t) and f(x, t - tau) from ``encoder(x, beta [B]) -> mean``
        (the frozen phase-1 encoder; evaluated once on the 2B pairs, without gradient). ``t_index`` [B] in 1..N and
        ``noise`` fix the draws (default: i ~ U{1..N}, eps ~ N(0, I) from ``generator``). ``step`` is unused.
        Returns ``loss`` and the detached means ``eps_mse`` and ``delta_mse`` (per example, summed over dims)."""
        return self._loss(batch, step, generator, encoder, t_index, noise, own_encoder=False)

    def _loss(self, batch, step, generator, encoder, t_index, noise, *, own_encoder: bool) -> dict:
        """:meth:`loss`; ``own_encoder``: ``encoder`` is the library's frozen phase-1 encoder (:meth:`MultiBeta.loss`),
        whose output is not read back for its finiteness (a host sync per step on CUDA)."""
        self._need_schedule("loss")
        if not callable(encoder):
            raise TypeError("LatentDenoiser.loss: encoder must be a callable (x, beta) -> f(x, beta) "
                            "(e.g. MultiBetaVAE.encode); MultiBeta.loss passes its frozen encoder")
        cfg = self.config
        x = batch_images(batch)
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError("LatentDenoiser.loss: batch must be a tensor of images [B, ...] (or (images, targets))")
        training_step(step)
        check_generator(generator)
        n = x.shape[0]
        dev = self.sigma_table.device
        if t_index is None:
            i = torch.randint(1, cfg.num_steps + 1, (n,), device=dev, generator=generator)
        else:
            if not isinstance(t_index, torch.Tensor) or t_index.shape != (n,) or t_index.dtype.is_floating_point:
                raise ValueError(f"LatentDenoiser.loss: t_index must be an integer tensor of shape [{n}]")
            if bool(((t_index < 1) | (t_index > cfg.num_steps)).any()):  # one host read
                raise ValueError(f"LatentDenoiser.loss: t_index must lie in 1..N={cfg.num_steps}")
            i = t_index.to(dev)
        t = i.to(torch.float64).mul(cfg.tau)
        # the Delta target is a difference of nearly equal encodings, O(tau): computed in float32 or wider even
        # under bf16 autocast (docs/methods/multibeta.md#phase-2-the-latent-diffusion)
        xx = torch.cat([x, x])
        xx = xx.to(torch.promote_types(xx.dtype, torch.float32))
        with torch.no_grad(), torch.autocast(xx.device.type, enabled=False):
            f = encoder(xx, torch.cat([t, (i - 1).to(torch.float64).mul(cfg.tau)]).to(xx.dtype))
        f = self._check_z(f.detach(), "LatentDenoiser.loss: encoder output", finite=not own_encoder)
        f_t, f_prev = f[:n], f[n:]
        if noise is None:
            noise = torch.randn(f_t.shape, device=f_t.device, dtype=f_t.dtype, generator=generator)
        elif not isinstance(noise, torch.Tensor) or noise.shape != f_t.shape:
            raise ValueError(f"LatentDenoiser.loss: noise must have shape {tuple(f_t.shape)}")
        terms = self._eq19_terms(f_t, f_prev, i, noise)  # i, f and noise checked above
        eps_hat, delta_hat = self.predict(terms["z_t"], i)
        eps_sq = _at_least_f32(eps_hat - terms["eps"]).pow(2)
        eps_err = eps_sq.flatten(1).sum(1)
        if cfg.delta_over_tau:  # the head regresses Delta / tau: the Delta term reweighted by 1 / tau^2
            delta_err = _at_least_f32((delta_hat - terms["delta"]) / cfg.tau).pow(2).flatten(1).sum(1)
        else:
            delta_err = _at_least_f32(delta_hat - terms["delta"]).pow(2).flatten(1).sum(1)
        w_inv = terms["w_inv"]
        if w_inv.dim() == 1:
            eps_term = w_inv * eps_err
        else:  # per-unit ELBO weights (schedule="per_unit"): sum_k w_k(t)^-1 (eps_hat_k - eps_k)^2
            eps_term = (self._per_example(w_inv, eps_sq.dim()) * eps_sq).flatten(1).sum(1)
        loss = (eps_term + cfg.delta_weight * delta_err).mean()
        return {"loss": loss, "eps_mse": eps_err.mean().detach(), "delta_mse": delta_err.mean().detach()}

    # -- Algorithm 2 ---------------------------------------------------------------------------
    def step(self, z: torch.Tensor, i: int, *, generator: torch.Generator | None = None,
             xi: torch.Tensor | None = None) -> torch.Tensor:
        """One step of Algorithm 2 from grid index i (t = i tau) to i - 1. ``xi`` fixes the fresh noise of step 4
        (``sampler="alg2"`` / ``"ancestral"``)."""
        cfg = self.config
        if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= cfg.num_steps:
            raise ValueError(f"step: i must lie in 1..N={cfg.num_steps} (an int), got {i!r}")
        z = self._check_z(z, "LatentDenoiser.step")
        check_generator(generator)
        if xi is not None and (not isinstance(xi, torch.Tensor) or xi.shape != z.shape):
            raise ValueError(f"step: xi must have shape {tuple(z.shape)}")
        if xi is not None and not xi.dtype.is_floating_point:
            raise TypeError(f"LatentDenoiser.step: xi must be a floating-point tensor, got dtype {xi.dtype}")
        # xi in z's dtype, as z: a float64 xi made the step's result float64
        return self._step(z, i, generator, None if xi is None else xi.to(z.dtype))

    def _step(self, z, i, generator, xi):  # unchecked: denoise's loop (z checked once on entry)
        cfg = self.config
        idx = torch.full((z.shape[0],), i, device=z.device, dtype=torch.long)
        eps_hat, delta_hat = self.predict(z, idx)
        sign = -1.0 if cfg.printed_sign else 1.0
        s_t, s_prev = self.sigma_table[i].to(z.dtype), self.sigma_table[i - 1].to(z.dtype)
        if cfg.sampler == "deterministic":
            noise = eps_hat if cfg.deterministic_noise == "eps_hat" else torch.zeros_like(z)
        elif xi is not None:
            if xi.shape != z.shape:
                raise ValueError(f"step: xi must have shape {tuple(z.shape)}")
            noise = xi
        else:
            noise = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator)
        if cfg.sampler == "ancestral":  # Eq. 17: the posterior of Eq. 15-16 with f(x, t) -> x_hat, the difference -> Delta_hat
            mean, std = self._posterior(z, z - s_t * eps_hat, z - s_t * eps_hat + sign * delta_hat, i)
            return mean + (std if std.dim() == 0 else std.to(z.dtype)) * noise
        mu_t = z - s_t * eps_hat  # step 2
        mu_prev = mu_t + sign * delta_hat  # step 3 (the printed sign: -)
        return mu_prev + s_prev * noise  # step 4

    def grid_indices(self, beta, n: int, name: str = "beta") -> torch.Tensor:
        """Grid indices [n] (long) of a beta per example: a number (or a one-element tensor) for every example, or a
        tensor [n] of betas in [0, B], each snapped to the nearest grid value i tau."""
        cfg = self.config
        if isinstance(beta, torch.Tensor) and (beta.is_complex() or beta.dtype == torch.bool):
            raise TypeError(f"{name} must hold real numbers, got a {beta.dtype} tensor")
        if isinstance(beta, torch.Tensor) and beta.dim() == 1 and beta.numel() != 1:
            if beta.shape[0] != n:
                raise ValueError(f"{name} must be a number or a tensor of shape [{n}] (one beta per example), "
                                 f"got shape {tuple(beta.shape)}")
            b = beta.detach().to("cpu", torch.float64)
            if not bool(torch.isfinite(b).all()):
                raise ValueError(f"{name} must be finite numbers in [0, {cfg.beta_max:g}], got {b.tolist()[:4]}")
            if bool((b < 0).any()) or bool((b > cfg.beta_max * (1 + 1e-6)).any()):
                raise ValueError(f"{name} must lie in [0, B={cfg.beta_max:g}], got values in "
                                 f"[{b.min().item():.4g}, {b.max().item():.4g}]")
            return torch.round(b / cfg.tau).long().clamp_max(cfg.num_steps)
        if isinstance(beta, torch.Tensor) and beta.dim() > 1:
            raise ValueError(f"{name} must be a number or a tensor of shape [{n}], got shape {tuple(beta.shape)}")
        return torch.full((n,), self.grid_index(beta, name), dtype=torch.long)

    @autocast_off  # the N-step chain in the denoiser's own precision: z accumulated bf16 predictions
    @torch.no_grad()
    def denoise(self, z: torch.Tensor, beta_from, beta_to=0.0, *, steps: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Algorithm 2 from t = ``beta_from`` down to ``beta_to`` (<= beta_from), both snapped to the nearest grid
        value: one step per grid interval. Each may be a number or a tensor [B] (one beta per example): example b
        then takes the steps from its own index down to its own target, and is left alone outside that range;
        the sampler noise is drawn for the whole batch at every grid step, so a batch whose examples share one
        range draws exactly what the scalar call draws. ``steps``, when given, must equal the number of steps of
        every example (Delta_hat is a single-step predictor: no strides)."""
        self._need_schedule("denoise")
        z = self._check_z(z, "LatentDenoiser.denoise")
        check_generator(generator)  # else torch.randn's overload listing, deep in the loop
        n = z.shape[0]
        i_from = self.grid_indices(beta_from, n, "beta_from")
        i_to = self.grid_indices(beta_to, n, "beta_to")
        if bool((i_to > i_from).any()):
            b = int(torch.nonzero(i_to > i_from)[0])
            raise ValueError(f"denoise runs from a larger beta to a smaller one; got beta_from={float(i_from[b]) * self.config.tau:g} "
                             f"< beta_to={float(i_to[b]) * self.config.tau:g} (example {b}, after snapping to the grid)")
        count = i_from - i_to
        if steps is not None and not bool((count == non_negative_int(steps, "steps")).all()):
            want = int(count[0]) if bool((count == count[0]).all()) else f"{int(count.min())}..{int(count.max())} (per example)"
            raise ValueError(f"steps must be {want} (one per grid step from beta_from to beta_to; Delta_hat is a "
                             f"single-step predictor), got {steps!r}")
        top, bottom = int(i_from.max()), int(i_to.min())
        if bool((i_from == top).all()) and bool((i_to == bottom).all()):  # one range for the whole batch
            for i in range(top, bottom, -1):
                z = self._step(z, i, generator, None)
            return z
        noisy = self.config.sampler != "deterministic"
        # each example's range as Python ints (one read): the rows a step moves are picked by index on the host,
        # so the chain reads nothing back per step (a boolean mask of device rows synchronised at every step)
        hi, lo = i_from.tolist(), i_to.tolist()
        z = z.clone()
        for i in range(top, bottom, -1):
            xi = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=generator) if noisy else None
            rows = [b for b in range(n) if hi[b] >= i > lo[b]]
            if rows:
                idx = torch.tensor(rows, device=z.device)
                z[idx] = self._step(z[idx], i, None, None if xi is None else xi[idx])
        return z

    @autocast_off  # as denoise
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, beta_to=0.0) -> torch.Tensor:
        """Algorithm 2 from the prior: z_T ~ N(0, I), all N steps down to ``beta_to`` (0): latents [n, ...]."""
        positive_int(n, "n")
        self._need_schedule("sample")
        check_generator(generator)
        z = torch.randn((n,) + self.config.latent_shape, device=self.sigma_table.device, dtype=self.sigma_table.dtype,
                        generator=generator)
        return self.denoise(z, self.config.beta_max, beta_to, generator=generator)
