"""Denoising multi-beta VAE (Uppal, Takida, Lai, Mitsufuji 2025, arXiv 2507.06613): the two-phase pipeline
(docs/methods/multibeta.md).

- :class:`MultiBetaVAE` (:mod:`diffrep.methods.multibeta_vae`): one beta-conditioned VAE for every beta in
  [0, B] (Sec. 3.1, Eq. 2-4, Algorithm 1);
- :class:`LatentDenoiser` (:mod:`diffrep.methods.multibeta_denoiser`): the non-linear latent diffusion with
  an eps head and an encoding-difference head (Sec. 4.2, Eq. 13-19, Algorithm 2 with the sign fixed);
- :class:`MultiBeta`: both, trained in phases (end of Sec. 4): ``phase=1`` trains the VAE (Eq. 4),
  ``phase=2`` the latent diffusion on the frozen VAE (Eq. 19), the optional ``phase=3`` fine-tunes the
  decoder at beta = 0 adversarially (Rombach et al. 2021's LDM autoencoder loss: L1 + LPIPS + an adaptively
  weighted PatchGAN hinge term, the pieces of :mod:`diffrep.nn.vq`). ``loss`` trains whatever the current
  phase trains and :meth:`MultiBeta.set_phase` switches (freezing the rest), so one :class:`diffrep.train.Trainer`
  run trains one phase: a recipe builds a ``MultiBeta``, trains phase 1, calls ``set_phase(2)`` and trains again.

Verbs: :meth:`~MultiBeta.encode` at any beta, :meth:`~MultiBeta.decode` (direct), :meth:`~MultiBeta.denoise`,
:meth:`~MultiBeta.denoise_decode`, :meth:`~MultiBeta.reconstruct`, :meth:`~MultiBeta.sample` (unconditional,
Table 3), :meth:`~MultiBeta.beta_sweep` (Fig. 2), :meth:`~MultiBeta.traverse` and :meth:`~MultiBeta.edit`
(Fig. 1c-d).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import finite_float, positive_int, training_step
from ..config import Config, ConfigError, Ge
from ..nn import frozen_parts
from ..nn.images import IMAGE_RANGE, batch_images, check_images, module_dtype
from ..nn.lpips import LPIPS, cached_lpips
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNetConfig
from ..nn.vq import PatchDiscriminator, adaptive_weight, hinge_d_loss
from ..ops._full_precision import autocast_off
from ..ops.random import check_generator
from .multibeta_denoiser import LatentDenoiser, LatentDenoiserConfig
from .multibeta_vae import MultiBetaVAE, MultiBetaVAEConfig, beta_grid

__all__ = ["MultiBetaConfig", "MultiBeta", "MultiBetaVAEConfig", "MultiBetaVAE", "LatentDenoiserConfig",
           "LatentDenoiser", "multibeta_config", "beta_grid"]


def multibeta_config(*, image_size: int = 64, in_channels: int = 3, latent_dim: int = 10, num_steps: int = 1000,
                     beta_max: float = 1.0, arch: str = "conv", latent: str = "vector", latent_channels: int = 4,
                     vae: dict | None = None, denoiser: dict | None = None, unet: dict | None = None,
                     **fields) -> "MultiBetaConfig":
    """A :class:`MultiBetaConfig` whose VAE and denoiser agree (grid, B, latent shape): the shared settings are
    given once (the denoiser's ``schedule`` follows the VAE's ``posterior_scale``); ``vae`` / ``denoiser`` / ``unet``
    hold further fields of each part; ``fields`` of the pipeline."""
    vae_cfg = MultiBetaVAEConfig(**{"image_size": image_size, "in_channels": in_channels, "latent_dim": latent_dim,
                                    "num_steps": num_steps, "beta_max": beta_max, "arch": arch, "latent": latent,
                                    "latent_channels": latent_channels, **(vae or {})})
    den = {"latent": latent, "latent_dim": latent_dim, "latent_channels": latent_channels, "num_steps": num_steps,
           "beta_max": beta_max, "schedule": vae_cfg.posterior_scale, **(denoiser or {})}
    if latent == "spatial":
        side = vae_cfg.latent_shape[1]
        den["latent_size"] = side
        den["unet"] = UNetConfig(**{"image_size": side, "in_channels": latent_channels, "out_channels": latent_channels,
                                    "model_channels": 64, "channel_mult": (1, 2), "num_res_blocks": 2,
                                    "attention_resolutions": (), "num_groups": 32, "num_outputs": 2, **(unet or {})})
    return MultiBetaConfig(vae=vae_cfg, denoiser=LatentDenoiserConfig(**den), **fields)


@dataclasses.dataclass
class MultiBetaConfig(Config):
    """The pipeline: ``vae`` (phase 1), ``denoiser`` (phase 2, same grid, B and latent shape), the current
    ``phase``, the beta of the representation (``representation_beta``, what :meth:`MultiBeta.encode` returns
    by default) and the adversarial fine-tuning of phase 3 (``adv_*``; off unless ``adv_disc_weight > 0``)."""

    vae: MultiBetaVAEConfig = dataclasses.field(default_factory=MultiBetaVAEConfig)  # phase 1: the beta-conditioned VAE (Eq. 2-4)
    denoiser: LatentDenoiserConfig = dataclasses.field(default_factory=LatentDenoiserConfig)  # phase 2: the latent diffusion (Eq. 13-19, Alg. 2); same grid, B and latent as vae
    phase: Literal[1, 2, 3] = 1  # what loss() trains: 1 the VAE, 2 the denoiser, 3 the decoder adversarially (set_phase)
    representation_beta: Annotated[float, Ge(0)] = 0.5  # beta of the representation: encode()'s default and the metrics' (<= B)
    encoding_noise: bool = True  # denoise-then-decode starts from f + sigma_beta xi (False: from the mean f)
    adv_disc_weight: Annotated[float, Ge(0)] = 0.0  # > 0: a PatchGAN discriminator (phase 3)
    adv_disc_start: Annotated[int, Ge(0)] = 0  # phase 3: the discriminator loss starts at this training step
    adv_rec_loss: Literal["l1", "l2"] = "l1"  # phase 3: reconstruction error beside the adversarial term (L1 or L2)
    adv_perceptual_weight: Annotated[float, Ge(0)] = 0.0  # LPIPS (needs a local weight file)
    adv_perceptual_weights: Optional[str] = None  # phase 3: path of the local LPIPS weight file (needed when adv_perceptual_weight > 0)
    disc_channels: Annotated[int, Ge(1)] = 64  # phase 3: width of the first PatchGAN discriminator layer
    disc_layers: Annotated[int, Ge(1)] = 3  # phase 3: n_layers of the PatchGAN discriminator

    def validate(self) -> None:
        v, d = self.vae, self.denoiser
        if d.num_steps != v.num_steps:
            raise ConfigError("denoiser.num_steps", f"must equal vae.num_steps={v.num_steps} (one grid), got {d.num_steps}")
        if d.beta_max != v.beta_max:
            raise ConfigError("denoiser.beta_max", f"must equal vae.beta_max={v.beta_max} (T = B), got {d.beta_max}")
        if d.schedule != v.posterior_scale:
            raise ConfigError("denoiser.schedule", f"must equal vae.posterior_scale={v.posterior_scale!r} (the noise schedule "
                              f"is the VAE's sigma table), got {d.schedule!r}")
        if d.latent_shape != v.latent_shape:
            raise ConfigError("denoiser.latent", f"the denoiser's latent shape {d.latent_shape} differs from the VAE's "
                              f"{v.latent_shape} (use multibeta_config())")
        if self.representation_beta > v.beta_max:
            raise ConfigError("representation_beta", f"must lie in [0, B={v.beta_max}], got {self.representation_beta}")
        if self.phase == 3 and self.adv_disc_weight <= 0:
            raise ConfigError("phase", "phase 3 (adversarial decoder fine-tuning) needs adv_disc_weight > 0")
        if self.adv_disc_weight > 0 and PatchDiscriminator.output_size(v.image_size, self.disc_layers) < 1:
            raise ConfigError("disc_layers", f"{self.disc_layers} layers leave no output patch for {v.image_size}px images")
        if self.adv_perceptual_weight > 0 and v.image_size < 16:
            raise ConfigError("adv_perceptual_weight", "LPIPS needs images of at least 16x16")


# phases 2 and 3 on a VAE never trained would fit the denoiser (or the decoder) to a random encoder's codes, without a
# word (docs/architecture.md#frozen-parts)
UNTRAINED_VAE = (
    "MultiBeta: phase {phase} reads the frozen phase-1 VAE, which still holds its random initialisation; train phase 1 "
    "first (set_phase(1), or a recipe's phases [1, 2]), load a trained one with model.load_vae(vae) (a recipe: "
    "phases [2] with vae_from RUN/final), or call model.use_untrained_frozen_parts() to run on an untrained one on "
    "purpose (tests, smoke runs)")


class MultiBeta(PretrainedMixin, nn.Module):
    """The two-phase denoising multi-beta VAE. ``vae``, ``denoiser`` and (with ``adv_disc_weight > 0``)
    ``discriminator`` are its parts; ``save_pretrained`` writes all of them in one config.json + safetensors,
    and each part also saves on its own."""

    config_class = MultiBetaConfig

    def __init__(self, config: MultiBetaConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.vae = MultiBetaVAE(cfg.vae)
        # phases 2 and 3 read the VAE frozen: refused until phase 1 trained it here or trained weights were loaded
        frozen_parts.track(self, "vae")
        self.denoiser = LatentDenoiser(cfg.denoiser)
        self.discriminator = (PatchDiscriminator(cfg.vae.in_channels, cfg.disc_channels, cfg.disc_layers)
                              if cfg.adv_disc_weight > 0 else None)
        self._lpips: list[LPIPS] = []
        self._apply_phase(cfg.phase, copy_schedule=cfg.phase >= 2)

    # -- phases --------------------------------------------------------------------------------
    @property
    def phase(self) -> int:
        return self.config.phase

    def set_phase(self, phase: int) -> "MultiBeta":
        """Switch the phase that ``loss`` trains and freeze the other parts (``requires_grad``): 1 the VAE; 2 the
        denoiser (installs the VAE's sigma table as its noise schedule, which must strictly increase); 3 the
        decoder (and the discriminator). Build the :class:`diffrep.train.Trainer` after this call: it collects the
        trainable parameters when it starts."""
        if phase not in (1, 2, 3):
            raise ValueError(f"phase must be 1, 2 or 3, got {phase!r}")
        self.config = dataclasses.replace(self.config, phase=phase)
        self._apply_phase(phase, copy_schedule=phase == 2)
        return self

    def _apply_phase(self, phase: int, copy_schedule: bool) -> None:
        if copy_schedule and phase == 2:
            if not self.vae.sigma_is_increasing():
                raise ValueError("phase 2 needs sigma_beta strictly increasing along the grid (sigma_(t|t-tau)^2 > 0); "
                                 "the phase-1 table is not (sigma_table='free'?)")
            self.denoiser.set_schedule(self.vae.sigma_grid())
        for p in self.vae.parameters():
            p.requires_grad_(phase == 1)
        if phase == 3:
            for p in self.vae.decoder.parameters():
                p.requires_grad_(True)
        for p in self.denoiser.parameters():
            p.requires_grad_(phase == 2)
        if self.discriminator is not None:
            for p in self.discriminator.parameters():
                p.requires_grad_(phase == 3)
        self.train(self.training)

    def train(self, mode: bool = True) -> "MultiBeta":
        """Train mode for the parts the current phase trains; the frozen parts stay in eval mode."""
        super().train(mode)
        phase = self.config.phase
        if phase != 1:
            self.vae.eval()
            if phase == 3:
                self.vae.decoder.train(mode)
        if phase != 2:
            self.denoiser.eval()
        return self

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """The discriminator's parameters in phase 3 (the trainer's second optimiser), else none."""
        if self.discriminator is None or self.config.phase != 3:
            return []
        return list(self.discriminator.parameters())

    # -- training -----------------------------------------------------------------------------
    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None,
             beta: torch.Tensor | None = None) -> dict:
        """The current phase's objective: phase 1 Eq. 4 (:meth:`MultiBetaVAE.loss`, ``beta`` fixes the per-example
        beta), phase 2 Eq. 19 on the frozen encoder (:meth:`LatentDenoiser.loss`), phase 3 the adversarial
        decoder loss at beta = 0 (``"loss"`` and ``"disc_loss"``, gradient paths kept apart as in
        :meth:`diffrep.nn.vq.VQAutoencoder.loss`)."""
        phase = self.config.phase
        training_step(step)
        check_generator(generator)
        if phase == 1:
            if frozen_parts.state(self, "vae") != frozen_parts.LOADED:  # trained here: phases 2 and 3 may read it
                frozen_parts.mark(self, "vae", frozen_parts.LOADED)
            return self.vae.loss(batch, step=step, generator=generator, beta=beta)
        if beta is not None:
            raise ValueError(f"beta fixes the per-example beta of phase 1; the model is in phase {phase}")
        frozen_parts.require(self, "vae", UNTRAINED_VAE.format(phase=phase))
        if phase == 2:  # the frozen encoder reads the batch: check it here (NaN, integer images went through)
            self._check_x(batch_images(batch), "MultiBeta.loss", "batch")
            return self.denoiser._loss(batch, step, generator, self.vae._encode_checked_images, None, None, own_encoder=True)
        return self._adversarial_loss(batch, step, generator)

    def load_vae(self, vae: MultiBetaVAE) -> None:
        """Copy a trained phase-1 VAE (same config) into this pipeline, for phases 2 and 3."""
        if not isinstance(vae, MultiBetaVAE):
            raise TypeError(f"MultiBeta.load_vae: vae must be a MultiBetaVAE, got {type(vae).__name__}")
        if vae.config != self.config.vae:
            raise ValueError("MultiBeta.load_vae: the VAE's config differs from this model's config.vae")
        self.vae.load_state_dict(vae.state_dict())
        frozen_parts.mark(self, "vae", frozen_parts.LOADED)

    def use_untrained_frozen_parts(self) -> None:
        """Run phases 2 and 3 on the randomly initialised VAE on purpose (tests, smoke runs): saved with the
        weights. A VAE trained here or loaded stays so."""
        frozen_parts.choose_untrained(self)

    def perceptual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample LPIPS(x, y), the network read from the configured local file on first use."""
        return cached_lpips(self._lpips, self.config.adv_perceptual_weights, x, y)

    def _adversarial_loss(self, batch, step, generator) -> dict:
        c, vae = self.config, self.vae
        x = check_images(batch_images(batch), channels=c.vae.in_channels, size=c.vae.image_size, name="batch",
                         who="MultiBeta.loss", dtype=module_dtype(self.vae), value_range=IMAGE_RANGE)
        n = x.shape[0]
        zero = torch.zeros(n, device=x.device)
        with torch.no_grad():
            f = vae.encoder(x, zero)
            z = f + vae.sigma_latent(zero).to(f.dtype) * torch.randn(
                f.shape, device=f.device, dtype=f.dtype, generator=generator)
        rec = vae.decoder(z, zero)
        rec_loss = (rec - x).abs().mean() if c.adv_rec_loss == "l1" else F.mse_loss(rec, x)
        out = {"rec": rec_loss.detach()}
        if c.adv_perceptual_weight > 0:
            p = self.perceptual(x, rec).mean()
            rec_loss = rec_loss + c.adv_perceptual_weight * p
            out["lpips"] = p.detach()
        active = step is None or step >= c.adv_disc_start
        disc_loss = (1.0 if active else 0.0) * hinge_d_loss(self.discriminator(x.detach()), self.discriminator(rec.detach()))
        loss = rec_loss
        if active:
            frozen = {k: p.detach() for k, p in self.discriminator.named_parameters()}
            g_loss = -torch.func.functional_call(self.discriminator, frozen, (rec,)).mean()
            lam = c.adv_disc_weight * adaptive_weight(rec_loss, g_loss, vae.decoder.last_layer())
            loss = loss + lam * g_loss
            out.update(g_loss=g_loss.detach(), disc_lambda=lam)
        return {"loss": loss, "disc_loss": disc_loss, **out}

    # -- verbs ---------------------------------------------------------------------------------
    def _check_x(self, x, who: str, name: str = "x") -> torch.Tensor:
        c = self.config.vae
        return check_images(x, channels=c.in_channels, size=c.image_size, who=who, name=name, dtype=module_dtype(self.vae),
                            value_range=IMAGE_RANGE)

    def _beta_value(self, beta, name: str = "beta") -> float:
        if beta is None:
            return self.config.representation_beta
        if isinstance(beta, torch.Tensor):
            if beta.numel() != 1:  # finite_float would print the whole tensor as "not a finite number"
                raise ValueError(f"{name} must be one number here, got a tensor of shape {tuple(beta.shape)}; for one "
                                 "beta per example call model.vae.encode / model.vae.decode (or denoise, denoise_decode)")
            beta = float(beta)
        b = finite_float(beta, name)
        if not 0 <= b <= self.config.vae.beta_max:
            raise ValueError(f"{name} must lie in [0, B={self.config.vae.beta_max:g}], got {beta!r}")
        return b

    @autocast_off  # the representation in the VAE's own precision, not the caller's autocast (bf16 codes otherwise)
    @torch.no_grad()
    def encode(self, x: torch.Tensor, beta=None, *, noise: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """z_beta at ``beta`` (default ``representation_beta``): the mean f_phi(x, beta) (the representation), or with
        ``noise=True`` a draw f + sigma_beta xi from q(z_beta | x) (Eq. 3; what the diffusion was trained on)."""
        x = self._check_x(x, "MultiBeta.encode")
        b = self._beta_value(beta)
        check_generator(generator)
        f = self.vae.encode(x, b)
        if noise:
            sig = self.vae.sigma_latent(b).to(f.dtype)  # [1, 1, ..] isotropic, [1, *latent_shape] per_unit
            f = f + sig * torch.randn(f.shape, device=f.device, dtype=f.dtype, generator=generator)
        return f

    @autocast_off  # images in the VAE's own precision (bf16 otherwise)
    @torch.no_grad()
    def decode(self, z: torch.Tensor, beta=0.0) -> torch.Tensor:
        """Direct decoding g_theta(z, beta) (blurry at large beta: Fig. 1a)."""
        return self.vae.decode(z, self._beta_value(beta))

    @torch.no_grad()
    def denoise(self, z: torch.Tensor, beta_from, beta_to=0.0, *, steps: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Algorithm 2 from ``beta_from`` down to ``beta_to`` (:meth:`LatentDenoiser.denoise`; each a number or a
        tensor [B], one beta per example)."""
        return self.denoiser.denoise(z, beta_from, beta_to, steps=steps, generator=generator)

    @autocast_off  # the chain and the decoder in the model's own precision
    @torch.no_grad()
    def denoise_decode(self, z: torch.Tensor, beta, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoise z_beta to beta = 0, then decode at 0 (Fig. 1b). ``beta``: a number, or a tensor [B] (one beta per
        example, :meth:`LatentDenoiser.denoise`)."""
        b = beta if isinstance(beta, torch.Tensor) and beta.dim() == 1 and beta.numel() > 1 else self._beta_value(beta)
        return self.vae.decode(self.denoiser.denoise(z, b, 0.0, generator=generator), 0.0)

    @autocast_off  # as denoise_decode
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, beta=None, *, denoise: bool = True,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """x -> z_beta -> (denoise to 0, decode at 0) or, with ``denoise=False``, decode at beta directly. The
        encoding carries sigma_beta noise when ``encoding_noise`` (for the denoised path)."""
        b = self._beta_value(beta)
        check_generator(generator)
        if not denoise:
            return self.vae.decode(self.encode(x, b), b)
        z = self.encode(x, b, noise=self.config.encoding_noise, generator=generator)
        return self.denoise_decode(z, b, generator=generator)

    @autocast_off  # as denoise_decode
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Unconditional generation (Table 3): z_T ~ N(0, I), all N steps of Algorithm 2, decode at beta = 0;
        images in [-1, 1] (the decoder mean clamped, as every model's sample(): methods/base.py)."""
        positive_int(n, "n")
        return self.vae.decode(self.denoiser.sample(n, generator=generator), 0.0).clamp(-1, 1)

    @autocast_off  # as denoise_decode
    @torch.no_grad()
    def beta_sweep(self, x: torch.Tensor, betas: Sequence[float], *,
                   generator: torch.Generator | None = None) -> dict:
        """Fig. 2: each image encoded at every beta of ``betas``, decoded directly and after denoising to 0.
        Returns ``{"betas": [K], "direct": [K, B, C, H, W], "denoised": [K, B, C, H, W]}``."""
        x = self._check_x(x, "MultiBeta.beta_sweep")
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) == 0:
            raise ValueError("betas must be a non-empty sequence of numbers in [0, B]")
        bs = [self._beta_value(b, f"betas[{k}]") for k, b in enumerate(betas)]
        direct, denoised = [], []
        for b in bs:
            direct.append(self.vae.decode(self.encode(x, b), b))
            z = self.encode(x, b, noise=self.config.encoding_noise, generator=generator)
            denoised.append(self.denoise_decode(z, b, generator=generator))
        return {"betas": torch.tensor(bs), "direct": torch.stack(direct), "denoised": torch.stack(denoised)}

    def _generator(self, device, generator: torch.Generator | None) -> torch.Generator:
        check_generator(generator)
        if generator is not None:
            return generator
        return torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,))))

    def _decode_codes(self, codes: list[torch.Tensor], b: float, denoise: bool, gen: torch.Generator,
                      state: torch.Tensor) -> torch.Tensor:
        """Decode each code (directly at b, or denoised to 0 then decoded), every one with the sampler noise that
        ``gen`` draws from ``state``."""
        outs = []
        for z in codes:
            if denoise:
                gen.set_state(state)
                outs.append(self.denoise_decode(z, b, generator=gen))
            else:
                outs.append(self.vae.decode(z, b))
        return torch.stack(outs, dim=1)

    @autocast_off  # as denoise_decode
    @torch.no_grad()
    def edit(self, x: torch.Tensor, beta, direction: torch.Tensor, alphas: Sequence[float], *,
             denoise: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fig. 1c-d: z_beta + alpha * direction for each alpha (one direction shared by all images), then denoise
        and decode (or decode directly, ``denoise=False``). The encoding noise and the sampler noise are drawn once
        and shared by every alpha, so the rows differ only by the edit. Returns [B, len(alphas), C, H, W]."""
        x = self._check_x(x, "MultiBeta.edit")
        b = self._beta_value(beta)
        shape = self.config.vae.latent_shape
        if not isinstance(direction, torch.Tensor):  # a numpy array of the right shape read "got (d,)"
            raise TypeError(f"MultiBeta.edit: direction must be a torch tensor of the latent's shape {shape}, got "
                            f"{type(direction).__name__} (torch.as_tensor converts an array)")
        if tuple(direction.shape) != shape:
            raise ValueError(f"direction must be a tensor of the latent's shape {shape}, got {tuple(direction.shape)}")
        if not direction.dtype.is_floating_point:  # a step in latent space, as the codes: integers are refused
            raise TypeError(f"MultiBeta.edit: direction must be a floating-point tensor, got dtype {direction.dtype}")
        if not bool(torch.isfinite(direction).all()):
            raise ValueError("direction holds NaN or infinite values")
        al = self._numbers(alphas, "alphas")
        gen = self._generator(x.device, generator)
        z0 = self.encode(x, b, noise=denoise and self.config.encoding_noise, generator=gen)
        direction = direction.to(z0)
        return self._decode_codes([z0 + a * direction for a in al], b, denoise, gen, gen.get_state())

    @staticmethod
    def _numbers(values, name: str) -> list[float]:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ValueError(f"{name} must be a non-empty sequence of numbers")
        return [finite_float(v, f"{name}[{k}]") for k, v in enumerate(values)]

    @autocast_off  # as denoise_decode
    @torch.no_grad()
    def traverse(self, x: torch.Tensor, beta=None, *, dims: Sequence[int] | None = None,
                 values: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0), denoise: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Traversals of the disentangled code: for each latent unit k of ``dims`` (vector latents; default all),
        z_beta with unit k set to each v of ``values`` (the encoding of x elsewhere), denoised and decoded (or
        decoded directly). One encoding-noise and sampler-noise draw serves the whole grid.
        Returns [B, len(dims), len(values), C, H, W]."""
        cfg = self.config.vae
        if cfg.latent != "vector":
            raise ValueError("traverse moves single latent units: it needs a vector latent (use edit() with a direction)")
        x = self._check_x(x, "MultiBeta.traverse")
        b = self._beta_value(beta)
        dims = list(range(cfg.latent_dim)) if dims is None else list(dims)
        if not dims or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < cfg.latent_dim for k in dims):
            raise ValueError(f"dims must be a non-empty list of latent units in 0..{cfg.latent_dim - 1}, got {dims!r}")
        vals = self._numbers(values, "values")
        gen = self._generator(x.device, generator)
        z0 = self.encode(x, b, noise=denoise and self.config.encoding_noise, generator=gen)
        state = gen.get_state()
        rows = []
        for k in dims:
            codes = []
            for v in vals:
                z = z0.clone()
                z[:, k] = v
                codes.append(z)
            rows.append(self._decode_codes(codes, b, denoise, gen, state))
        return torch.stack(rows, dim=1)
