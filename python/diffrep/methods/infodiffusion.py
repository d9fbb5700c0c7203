"""InfoDiffusion: auxiliary-variable diffusion with an information-maximising regulariser
(Wang, Schiff, Gokaslan, Pan, Wang, De Sa, Kuleshov, ICML 2023). Specification, choices and the
differences from the authors' code (isjakewong/InfoDiffusion): docs/methods/infodiffusion.md.

Model: an encoder q_phi(z | x0) = N(mu, diag sigma^2) (a :class:`~diffrep.nn.encoders.HalfUNet`
with a log-variance head) and a conditional noise predictor eps_theta(x_t, t, z), a
:class:`~diffrep.nn.unet.UNet` with ``latent_cond="infodiff"``: one GroupNorm, then the time
scale-shift (1 + s_t, b_t), then the latent scale-shift (1 + s_z, b_z) (the authors' ``AuxResBlock``).

Objective per batch (the ELBO of the auxiliary-variable model with InfoVAE's regularisers, weights as
direct fields as in the authors' code; InfoVAE's (zeta, lambda) give ``kl_weight = 1 - zeta``,
``mmd_weight = zeta + lambda - 1``, :func:`info_weights`; docs/methods/infodiffusion.md#objective):

    L = mean ||eps_theta(x_t, t, z) - eps||^2                         (denoising terms, t ~ U{1..T})
      + rec_weight * mean ||x0 - mu_theta(x_1, 1, z)||^2              (the x_0 reconstruction term log p(x0 | x1, z))
      + kl_weight * mean_b KL(q(z | x0_b) || N(0, I))
      + mmd_weight * MMD^2({z_b}, {z~_b ~ p(z)})                        (the fused :func:`diffrep.ops.mmd.mmd2`)

with z ~ q(z | x0) (reparameterised). MMD kernel: InfoVAE's exp(-|x - y|^2 / d^2), biased V-statistic
(the authors' ``compute_mmd``). Priors p(z) (:func:`sample_prior`): ``"gaussian"`` N(0, I),
``"mixture10"`` (the code's ``10mix``: per pair of dimensions a ten-component Gaussian mixture on a
circle) and ``"swiss_roll"`` (the code's ``roll``, 2-d latents).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import torch
from torch import nn

from .._checks import device as check_device
from .._checks import finite_float, finite_numbers, index, positive_int, training_step
from ..config import Config, ConfigError, Ge
from ..diffusion import NoiseSchedule, NoiseScheduleConfig
from ..nn.encoders import HalfUNet, HalfUNetConfig
from ..nn.gaussian import gaussian_kl
from ..nn.images import batch_images, module_dtype
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet, UNetConfig
from ..ops._full_precision import autocast_off
from ..ops.mmd import mmd2
from .diffusion_autoencoder import CodeConditionedAutoencoder, check_encoder_decoder

__all__ = ["InfoDiffusionConfig", "InfoDiffusion", "infodiffusion_unet", "sample_prior", "info_weights", "PRIORS"]

PRIORS = ("gaussian", "mixture10", "swiss_roll")


def infodiffusion_unet(latent_dim: int, **fields) -> UNetConfig:
    """The decoder U-Net config: ``fields`` plus z conditioning in InfoDiffusion's order."""
    positive_int(latent_dim, "latent_dim")  # 0 built a U-Net with no z conditioning at all
    return UNetConfig(**{**fields, "latent_dim": latent_dim, "latent_cond": "infodiff", "context_dim": 0,
                         "use_scale_shift_norm": True})


def info_weights(zeta: float, lam: float, *, allow_negative_mmd_weight: bool = False) -> tuple[float, float]:
    """(kl_weight, mmd_weight) = (1 - zeta, zeta + lam - 1) of the InfoVAE-form objective.

    Both weights multiply divergences the loss minimises, so a negative one makes training maximise its
    divergence. As ParamReL's ``gamma_mi``/``lambda_agg`` (docs/methods/paramrel.md#eq-4-7-objective, "Weights
    that flip a sign are errors"): zeta > 1 (a negative KL weight) is refused; a negative MMD weight
    (zeta + lam < 1) is refused unless ``allow_negative_mmd_weight=True`` (a literal reading of a paper's
    setting, e.g. SepDiff's (0.9, 0.01); :class:`InfoDiffusionConfig` itself declares both weights >= 0)."""
    zeta, lam = finite_float(zeta, "zeta"), finite_float(lam, "lam")
    if not isinstance(allow_negative_mmd_weight, bool):
        raise TypeError(f"allow_negative_mmd_weight must be a bool, got {type(allow_negative_mmd_weight).__name__}")
    kl, mmd = 1.0 - zeta, zeta + lam - 1.0
    if kl < 0:
        raise ValueError(f"zeta = {zeta:.4g} > 1 gives a negative KL weight 1 - zeta = {kl:.4g}: minimising the loss "
                         "would maximise the KL to the prior; zeta must be <= 1 (docs/methods/infodiffusion.md#objective)")
    if mmd < 0 and not allow_negative_mmd_weight:
        raise ValueError(f"zeta = {zeta:.4g}, lam = {lam:.4g} give a negative MMD weight zeta + lam - 1 = {mmd:.4g}: "
                         "minimising the loss would maximise the MMD; need zeta + lam >= 1, or pass "
                         "allow_negative_mmd_weight=True to use it literally (docs/methods/infodiffusion.md#objective)")
    return kl, mmd


def sample_prior(kind: str, n: int, dim: int, *, generator: torch.Generator | None = None,
                 dtype=torch.float32, device=None, roll_noise: float = 0.5) -> torch.Tensor:
    """n draws [n, dim] from a latent prior (docs/methods/infodiffusion.md#priors), drawn on ``device``
    (None: the device of ``generator``, else the default device; a CUDA generator draws on the GPU).

    * ``"gaussian"``: N(0, I).
    * ``"mixture10"``: for each pair of dimensions (2k, 2k+1) independently: a label l ~ U{0..9},
      r = 2 pi l / 10, (u, v) ~ N(0, 0.5^2) x N(0, 0.1^2), the point R(r) (u, v) + 1.4 (cos r, sin r)
      (R the rotation by r); ``dim`` must be even.
    * ``"swiss_roll"``: ``dim`` = 2; s = 1.5 pi (1 + 2 u), u ~ U(0, 1), the point
      (s cos s + roll_noise n1, s sin s + roll_noise n2) / 5, n ~ N(0, I).
    """
    n = positive_int(n, "n")
    dim = positive_int(dim, "dim")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"sample_prior: generator must be a torch.Generator or None, got {type(generator).__name__}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # the priors are continuous
        raise TypeError(f"sample_prior: dtype must be a floating torch dtype, got {dtype!r}")
    if device is not None:
        device = check_device(device)
    roll_noise = finite_float(roll_noise, "roll_noise")
    if roll_noise < 0:
        raise ValueError(f"roll_noise must be >= 0 (the swiss roll's noise scale), got {roll_noise!r}")
    if device is None and generator is not None:
        device = generator.device
    kw = dict(generator=generator, dtype=dtype, device=device)
    if kind == "gaussian":
        return torch.randn((n, dim), **kw)
    if kind == "mixture10":
        if dim % 2:
            raise ValueError(f"the mixture10 prior needs an even latent dimension, got {dim}")
        k = dim // 2
        u = 0.5 * torch.randn((n, k), **kw)
        v = 0.1 * torch.randn((n, k), **kw)
        lab = torch.randint(0, 10, (n, k), generator=generator, device=device)
        r = (2 * math.pi / 10) * lab.to(dtype)
        x = u * torch.cos(r) - v * torch.sin(r) + 1.4 * torch.cos(r)
        y = u * torch.sin(r) + v * torch.cos(r) + 1.4 * torch.sin(r)
        return torch.stack([x, y], dim=2).reshape(n, dim)
    if kind == "swiss_roll":
        if dim != 2:
            raise ValueError(f"the swiss_roll prior is 2-dimensional, got latent dimension {dim}")
        s = 1.5 * math.pi * (1 + 2 * torch.rand((n,), **kw))
        noise = roll_noise * torch.randn((n, 2), **kw)
        return (torch.stack([s * torch.cos(s), s * torch.sin(s)], 1) + noise).div(5.0)
    raise ValueError(f"prior must be one of {', '.join(PRIORS)}; got {kind!r}")


@dataclasses.dataclass
class InfoDiffusionConfig(Config):
    """Every open choice is a field (docs/methods/infodiffusion.md). Defaults: the authors' CelebA
    script (MMD weight 0.1, no KL, Gaussian prior) and their schedule (linear beta 1e-5..1e-2, T = 1000)."""

    latent_dim: Annotated[int, Ge(1)] = 8  # dimension of the auxiliary code z (must equal encoder.latent_dim)
    encoder: HalfUNetConfig = dataclasses.field(default_factory=lambda: HalfUNetConfig(  # q(z | x0): the Gaussian encoder (mean and log-variance heads)
        image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, latent_dim=8,
        act="silu", bias=True, num_groups=8, variance_head="logvar"))
    unet: UNetConfig = dataclasses.field(default_factory=lambda: infodiffusion_unet(  # the denoiser eps_theta(x_t, t, z) conditioned on z
        8, image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), num_groups=8))
    schedule: NoiseScheduleConfig = dataclasses.field(  # noise schedule (the authors' linear 1e-5..1e-2, T = 1000)
        default_factory=lambda: NoiseScheduleConfig(kind="linear", num_timesteps=1000, beta_start=1e-5, beta_end=1e-2))
    kl_weight: Annotated[float, Ge(0)] = 0.0  # weight of KL(q(z|x0) || p(z)); InfoVAE form: 1 - zeta
    mmd_weight: Annotated[float, Ge(0)] = 0.1  # weight of MMD^2(q(z), p(z)); InfoVAE form: zeta + lambda - 1
    prior: Literal["gaussian", "mixture10", "swiss_roll"] = "gaussian"  # p(z): standard Gaussian, a 10-component mixture, or a 2-d swiss roll
    mmd_bandwidth: Annotated[float, Ge(0)] = 0.0  # h of exp(-r^2/h); 0: d^2 (InfoVAE, the authors' code)
    mmd_estimator: Literal["biased", "unbiased"] = "biased"  # MMD^2 estimator: biased (V-statistic) or unbiased (U-statistic)
    mmd_on: Literal["sample", "mean"] = "sample"  # the codes in the MMD: samples z ~ q(z|x0) or the means
    decoder_latent: Literal["sample", "mean"] = "sample"  # the code the denoiser reads: a sample of q(z|x0) or its mean
    rec_weight: float = -1.0  # -1: 1 / T (the code's weighting of the x_0 term)
    rec_term: Literal["x1", "code"] = "x1"  # "code": the authors' variant (clean x with the random-t prediction)
    sample_steps: Annotated[int, Ge(1)] = 100  # DDIM steps when decoding and sampling

    def validate(self) -> None:
        if self.encoder.latent_dim != self.latent_dim or self.encoder.variance_head != "logvar":
            raise ConfigError("encoder.latent_dim", f"the encoder needs latent_dim={self.latent_dim} and variance_head='logvar' "
                              "(z's size: set latent_dim, encoder.latent_dim and unet.latent_dim together)")
        check_encoder_decoder(self.encoder, self.unet, self.latent_dim, "infodiff", "infodiffusion_unet")
        if self.prior == "mixture10" and self.latent_dim % 2:
            raise ConfigError("prior", f"mixture10 needs an even latent_dim, got {self.latent_dim}")
        if self.prior == "swiss_roll" and self.latent_dim != 2:
            raise ConfigError("prior", f"swiss_roll is 2-dimensional, latent_dim is {self.latent_dim}")
        if not 1 <= self.sample_steps <= self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be in [1, {self.schedule.num_timesteps}], got {self.sample_steps}")
        if self.rec_weight < 0 and self.rec_weight != -1.0:
            raise ConfigError("rec_weight", f"must be >= 0, or -1 for 1/T; got {self.rec_weight}")

    @property
    def rec_weight_value(self) -> float:
        return 1.0 / self.schedule.num_timesteps if self.rec_weight < 0 else self.rec_weight


class InfoDiffusion(CodeConditionedAutoencoder, PretrainedMixin, nn.Module):
    """``encode(x)`` = the posterior mean; ``sample(n)`` decodes prior draws; ``reconstruct(x)``
    decodes (mean z, x_T by DDIM inversion)."""

    config_class = InfoDiffusionConfig
    _who, _code_name = "InfoDiffusion", "z"

    def __init__(self, config: InfoDiffusionConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.encoder = HalfUNet(cfg.encoder)
        self.unet = UNet(cfg.unet)
        self.schedule = NoiseSchedule(cfg.schedule)

    @autocast_off  # q_phi(z | x0) in the model's own precision, not the caller's autocast (the loss reads self.encoder)
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q_phi(z | x0)."""
        return self.encoder(self._images(x, "posterior"))

    @autocast_off  # the representation in the model's own precision (bf16 codes otherwise, which decode's
    # chain, in the code's dtype, ran into NaN)
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the metrics read: the posterior mean [B, latent_dim]."""
        return self.posterior(x)[0]

    def eps(self, x_t, t, z):
        """eps_theta(x_t, t, z) (t integer timesteps [B] in [0, T))."""
        return self._checked_eps(x_t, t, z)

    def mmd(self, z: torch.Tensor, prior_samples: torch.Tensor) -> torch.Tensor:
        """The MMD^2 term between codes and prior draws through the fused op (:func:`diffrep.ops.mmd.mmd2`)."""
        z, prior_samples = self._check_z(z, name="z"), self._check_z(prior_samples, name="prior_samples")
        return self._mmd(z, prior_samples)

    def _mmd(self, z, prior_samples):  # the loss's codes and prior draws: no finiteness read (a host sync on CUDA)
        c, dtype = self.config, module_dtype(self)
        z, prior_samples = z.to(dtype), prior_samples.to(dtype)  # as _check_z
        return mmd2(z, prior_samples, "rbf", bandwidth=c.mmd_bandwidth or None, estimator=c.mmd_estimator)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """The objective of the module docstring; ``step`` is unused. Draws (t, eps, z noise, the
        x_1 noise, the prior samples) come from ``generator`` in that order."""
        c = self.config
        x0 = self._images(batch_images(batch), "loss", "batch")
        training_step(step)
        B, dev, dt = x0.shape[0], x0.device, x0.dtype
        s = self.schedule
        t = s.sample_timesteps(B, device=dev, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, device=dev, dtype=dt)
        mu, logvar = self.encoder(x0)
        # at least float32 from here: under the trainer's bf16 autocast the encoder returns bf16, and z's noise,
        # the KL and the prior draws of the MMD were bf16 (the MMD's prior a different stream: 0.08 -> 0.19)
        mu, logvar = (v.to(torch.promote_types(v.dtype, torch.float32)) for v in (mu, logvar))
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, device=dev, dtype=mu.dtype)
        zd = z if c.decoder_latent == "sample" else mu
        pred = self._eps(s._q_sample(x0, t, noise), t, zd)  # t drawn above: no range read
        diffusion = (pred - noise).pow(2).mean()
        out = {"diffusion": diffusion.detach()}
        loss = diffusion
        w = c.rec_weight_value
        if w > 0:
            if c.rec_term == "x1":
                t1 = torch.zeros_like(t)
                x1 = s._q_sample(x0, t1, torch.randn(x0.shape, generator=generator, device=dev, dtype=dt))
                e1, x_in = self._eps(x1, t1, zd), x1
            else:
                e1, x_in = pred, x0
            a1, b1, ab1 = (s._gather(n, torch.zeros_like(t), x0) for n in ("alphas", "betas", "alphas_cumprod"))
            mean1 = (x_in - b1 / (1 - ab1).sqrt() * e1) / a1.sqrt()  # mu_theta(x_1, 1, z) (Ho et al. 2020, Eq. 11)
            rec = (mean1 - x0).pow(2).mean()
            loss = loss + w * rec
            out["reconstruction"] = rec.detach()
        if c.kl_weight > 0:
            kl = gaussian_kl(mu, logvar, reduction="sum").mean()
            loss = loss + c.kl_weight * kl
            out["kl"] = kl.detach()
        if c.mmd_weight > 0:
            zm = z if c.mmd_on == "sample" else mu
            prior = sample_prior(c.prior, B, c.latent_dim, generator=generator, dtype=zm.dtype, device=dev)
            mmd = self._mmd(zm, prior)
            loss = loss + c.mmd_weight * mmd
            out["mmd"] = mmd.detach()
        out["loss"] = loss
        return out

    # -- decoding ------------------------------------------------------------------------------
    @autocast_off  # the DDIM chain in the model's own precision, not the caller's autocast
    def decode(self, z: torch.Tensor, x_T: torch.Tensor | None = None, *, num_steps: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM decoding (eta = 0) conditioned on z from x_T (N(0, I) from ``generator`` when None)."""
        return self._decode(z, x_T, num_steps, generator)

    @autocast_off  # DDIM inversion in the model's own precision
    def encode_stochastic(self, x: torch.Tensor, z: torch.Tensor | None = None, *, num_steps: int | None = None) -> torch.Tensor:
        """x_T by DDIM inversion conditioned on z (default: the posterior mean)."""
        return self._invert(x, z, num_steps)

    @autocast_off  # the encoder and the chains in the model's own precision
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, num_steps: int | None = None, stochastic: bool = True,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode the posterior mean from x_T by inversion (``stochastic``) or from x_T ~ N(0, I)."""
        return self._reconstruct(self._images(x, "reconstruct"), num_steps, stochastic, generator)  # as DiffAE: named reconstruct

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None) -> torch.Tensor:
        """z ~ p(z) (the configured prior, drawn in the weights' dtype and on their device), then DDIM decoding;
        images in [-1, 1]."""
        w = next(self.parameters())
        z = sample_prior(self.config.prior, positive_int(n, "n"), self.config.latent_dim, generator=generator,
                         dtype=w.dtype, device=w.device)
        return self.decode(z, generator=generator, num_steps=num_steps).clamp(-1, 1)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def swap(self, x: torch.Tensor, source: torch.Tensor, dims, *, num_steps: int | None = None) -> torch.Tensor:
        """x's code with the dimensions ``dims`` from ``source``'s code, decoded from x's x_T."""
        return self._swap(x, source, dims, num_steps)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dim: int, values, *, num_steps: int | None = None) -> torch.Tensor:
        """z[dim] set to each of ``values``, decoded from x's x_T: [len(values), B, C, H, W]."""
        dim, values = index(dim, self.config.latent_dim, "dim"), finite_numbers(values, "values")
        z = self.encode(x)
        xT = self.encode_stochastic(x, z, num_steps=num_steps)
        out = []
        for v in values:
            zv = z.clone()
            zv[:, int(dim)] = float(v)
            out.append(self.decode(zv, xT, num_steps=num_steps))
        return torch.stack(out).clamp(-1, 1)
