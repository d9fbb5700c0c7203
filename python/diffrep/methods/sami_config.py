"""The configuration of a SAMI model: networks, noise schedule, the loss's open choices, generation."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from ..config import Config, ConfigError, Ge, Gt, Le
from ..diffusion import NoiseScheduleConfig
from ..nn.encoders import HalfUNetConfig
from ..nn.unet import UNetConfig
from .sami_guidance import check_axes
from .sami_nets import SAMIConvNetConfig

__all__ = ["SAMIConfig"]


@dataclasses.dataclass
class SAMIConfig(Config):
    """Everything that defines a SAMI model, its loss and its default generation settings.

    Networks
      ``denoiser``: the eps-prediction U-Net (Ho et al. without attention for disks/CelebA64; with
      attention for the frozen CelebA-HQ DDPM). ``encoder``: ``"convnet"`` (:class:`SAMIConvNet`,
      disks) or ``"half_unet"`` (:class:`diffrep.nn.HalfUNet`); only the chosen sub-config is used.
      ``sigma_min``: the variance gets a soft floor, sigma^2 + sigma_min^2 (computed as a logaddexp
      of log-variances), against the 1/sigma^3 blow-up (docs/kernels/guidance.md#second-derivatives "Numerics"); 0 disables.

    Loss (docs/methods/sami.md#eq-4-10-objective, #algorithms-1-and-2, #schedules) -- the paper's open choices:
      ``kl_weight``: beta of Eq. 10. ``pixel_reduction`` / ``kl_reduction``: how the squared noise
      error is reduced over pixels (``mean``: divide by D, as ``F.mse_loss``; ``sum``) and the KL over
      latent dims (``sum``: the closed form; ``mean``). The paper does not state the convention
      behind its beta values; default mean over pixels, sum over latents (beta per pixel).
      ``lambda_t``: ``simple`` (1, Algorithm 2; default), ``elbo`` (beta_t^2 / (2 s_t^2 alpha_t (1-abar_t))
      with s_t^2 the reverse variance of ``sample_variance``, the weight that makes Eq. 4 a bound,
      Ho et al. Eq. 12) or ``custom`` (``lambda_values``, one per timestep).
      ``t_sampling``: ``uniform`` over the T levels, ``beta`` (t/T ~ Beta(``t_beta_a``, 1), the
      high-noise-biased "monotonically increasing" sampler of A.5; a = 4 as the third-party port) or
      ``band`` (not in the paper): with probability ``t_band_frac`` t is uniform on
      ``t_band = (lo, hi)`` (lo <= t < hi), otherwise uniform on all levels. A.5 oversamples the
      levels where the guidance matters most for a frozen denoiser; ``band`` aims that at the levels
      where a chosen factor is decided (on the CPU disks, the mid-noise levels at which the disk
      position becomes identifiable) while the uniform share keeps every level trained.
      ``train_samples``: S draws of z per example; ``mc_placement``: ``outside`` the square
      (Algorithm 2, the ELBO; S guidance VJPs; default) or ``inside`` (Eq. 9; one VJP).
      ``detach_z``: ablation, cut the graph from z to phi (off: z is reparameterised, docs/methods/sami.md#double-backward).
      ``kl_anneal_steps`` K and ``kl_anneal_start`` r: beta_k = beta r^(1 - k/K) for k < K, then beta
      (exponential from a tiny value, docs/methods/sami.md#eq-4-10-objective; 0 steps disables). ``free_bits``: per-dim floor on
      the batch-mean KL (not in the paper; the port needed it; 0 = off).
      ``freeze_denoiser``: pretrained-denoiser mode (docs/methods/sami.md#pretrained-denoiser-mode): theta gets no gradient.

    Generation (docs/methods/sami.md#a1-a2-guided-transition, #algorithms-1-and-2):
      ``sampler`` ``ddpm`` (Algorithm 1, all T steps) or ``ddim`` (``sample_steps`` steps, ``ddim_eta``).
      ``sample_variance``: DDPM reverse variance; ``fixed_large`` (beta_t) is A.2's.
      ``guidance_scale`` multiplies g (1 = the paper). ``alg1_literal``: use Algorithm 1's printed step
      sqrt(1 - alpha_t) g instead of A.2's (1 - alpha_t)/sqrt(alpha_t) g (DDPM only).
      ``z_mode``: ``fixed`` (one z per chain, Algorithm 1), ``mc_average`` (``mc_samples`` draws
      averaged inside the log-density, Eq. 9/11, one VJP), ``analytic`` (S -> infinity limit).
      ``guidance_axes``: rigid/sloppy variant (A.4, docs/methods/sami.md#analyses): only these latent axes enter the
      Mahalanobis term; empty = all axes. ``guidance_logdet``: ``all`` (default, the paper's form:
      A.4 computes "the Mahalanobis distance over only a subset of the latent dimensions" and keeps
      the log-determinant term over every axis) or ``axes`` (the log-det masked too).
      ``clip_x0``: clamp the predicted x_0 during sampling (0 = off; clipping changes the guided
      step, so the exact A.2 form needs it off).
    """

    denoiser: UNetConfig = dataclasses.field(default_factory=lambda: UNetConfig(
        image_size=32, in_channels=1, out_channels=1, model_channels=128, channel_mult=(1, 1, 1, 1, 1, 1),
        attention_resolutions=(), middle_attention=False, use_scale_shift_norm=False))
    encoder: Literal["convnet", "half_unet"] = "convnet"
    convnet: SAMIConvNetConfig = dataclasses.field(default_factory=SAMIConvNetConfig)  # the conv inference network (encoder="convnet"; SAMI Table A.5, disks)
    half_unet: HalfUNetConfig = dataclasses.field(default_factory=HalfUNetConfig)  # the half-U-Net inference network (encoder="half_unet"; SAMI Table A.5, CelebA)
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=lambda: NoiseScheduleConfig(  # noise schedule of the denoiser (disks: linear T = 400, Ho et al.'s endpoints scaled to 2.5e-4..0.05; docs/methods/sami.md#schedules)
        kind="linear", num_timesteps=400, beta_start=2.5e-4, beta_end=0.05))
    sigma_min: Annotated[float, Ge(0)] = 1e-4
    # loss
    kl_weight: Annotated[float, Ge(0)] = 5e-6
    pixel_reduction: Literal["mean", "sum"] = "mean"
    kl_reduction: Literal["sum", "mean"] = "sum"
    lambda_t: Literal["simple", "elbo", "custom"] = "simple"
    lambda_values: tuple[Annotated[float, Ge(0)], ...] = ()
    t_sampling: Literal["uniform", "beta", "band"] = "uniform"
    t_beta_a: Annotated[float, Gt(0)] = 4.0
    t_band: tuple[int, ...] = ()  # t_sampling="band": (lo, hi), lo <= t < hi oversampled with probability t_band_frac
    t_band_frac: Annotated[float, Gt(0), Le(1)] = 0.75
    train_samples: Annotated[int, Ge(1)] = 1
    mc_placement: Literal["outside", "inside"] = "outside"
    detach_z: bool = False
    kl_anneal_steps: Annotated[int, Ge(0)] = 0
    kl_anneal_start: Annotated[float, Gt(0), Le(1)] = 1e-6
    free_bits: Annotated[float, Ge(0)] = 0.0
    freeze_denoiser: bool = False
    # generation
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    sample_steps: Annotated[int, Ge(1)] = 50
    ddim_eta: Annotated[float, Ge(0)] = 0.0
    sample_variance: Literal["fixed_large", "fixed_small"] = "fixed_large"
    guidance_scale: Annotated[float, Ge(0)] = 1.0
    alg1_literal: bool = False
    z_mode: Literal["fixed", "mc_average", "analytic"] = "fixed"
    mc_samples: Annotated[int, Ge(1)] = 8
    guidance_axes: tuple[int, ...] = ()
    guidance_logdet: Literal["all", "axes"] = "all"
    clip_x0: Annotated[float, Ge(0)] = 0.0

    @property
    def encoder_config(self):
        return self.convnet if self.encoder == "convnet" else self.half_unet

    @property
    def latent_dim(self) -> int:
        return self.encoder_config.latent_dim

    def validate(self) -> None:
        d, e = self.denoiser, self.encoder_config
        if d.in_channels != d.out_channels:
            raise ConfigError("denoiser.out_channels", "must equal denoiser.in_channels (eps prediction)")
        if d.latent_dim or d.context_dim or d.num_outputs != 1:
            raise ConfigError("denoiser", "SAMI's denoiser is unconditional: latent_dim=0, context_dim=0, num_outputs=1")
        if e.in_channels != d.in_channels or e.image_size != d.image_size:
            raise ConfigError(self.encoder, f"image shape ({e.in_channels}, {e.image_size}) differs from the "
                                            f"denoiser's ({d.in_channels}, {d.image_size})")
        if self.lambda_t == "custom":
            if len(self.lambda_values) != self.schedule.num_timesteps:
                raise ConfigError("lambda_values", f"lambda_t='custom' needs {self.schedule.num_timesteps} "
                                                   f"non-negative values, got {len(self.lambda_values)}")
        elif self.lambda_values:
            raise ConfigError("lambda_values", "only used with lambda_t='custom'")
        if self.t_sampling == "band":
            T = self.schedule.num_timesteps
            if len(self.t_band) != 2 or not 0 <= self.t_band[0] < self.t_band[1] <= T:
                raise ConfigError("t_band", f"t_sampling='band' needs (lo, hi) with 0 <= lo < hi <= {T}, got "
                                            f"{self.t_band} (overrides apply in order: give t_band first)")
        if self.sample_steps > self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be <= schedule.num_timesteps={self.schedule.num_timesteps}")
        check_axes(self.guidance_axes, self.latent_dim, "guidance_axes", ConfigError)
