"""DisDiff's configuration (Yang et al. 2023; docs/methods/disdiff.md): every open choice of the method is a field.
The model is :class:`diffrep.methods.disdiff.DisDiff`."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

from .._checks import a_or_an
from ..config import Config, ConfigError, Ge, Gt, Lt
from ..diffusion import NoiseScheduleConfig
from ..nn.encoders import HalfUNetConfig
from ..nn.unet import UNetConfig
from ..nn.vq import VQAutoencoderConfig
from .dyga import DyGAConfig

__all__ = ["DisDiffConfig"]


@dataclasses.dataclass
class DisDiffConfig(Config):
    """Every open choice is a field (docs/methods/disdiff.md). The shift decoder copies ``unet``'s
    middle and up path; its Skip Dropout (``shift_skip_dropout``, DyGA Eq. 7) is the DyGA paper's
    Table 3 plug-in."""

    num_units: Annotated[int, Ge(1)] = 4  # N, the number of latent units z^1..z^N (one per factor)
    unit_dim: Annotated[int, Ge(1)] = 8  # the code's repre_emb_channels (32)
    encoder: HalfUNetConfig = dataclasses.field(default_factory=lambda: HalfUNetConfig(  # E_phi(x0) -> N * unit_dim values (mean head) split into the units
        image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, latent_dim=32,
        act="silu", bias=True, num_groups=8, variance_head="logvar"))
    unet: UNetConfig = dataclasses.field(default_factory=lambda: UNetConfig(
        image_size=16, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
        attention_resolutions=(), num_groups=8))
    first_stage: Optional[VQAutoencoderConfig] = None  # the LDM setting: diffusion on the VQ latent
    latent_scale: Annotated[float, Gt(0)] = 1.0  # the LDM's scale of the first-stage latent
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=lambda: NoiseScheduleConfig(  # noise schedule of the frozen eps_theta (the LDM linear 0.0015..0.0155)
        kind="ldm_linear", num_timesteps=1000, beta_start=0.0015, beta_end=0.0155))
    stage: Literal["pretrain", "disentangle"] = "disentangle"  # pretrain: train eps_theta (L_simple); disentangle: freeze it, train encoder and shift decoder
    pretrain_steps: Annotated[int, Ge(0)] = 0  # > 0 (stage "disentangle"): train eps_theta for the first steps of the run
    part_embedding: Literal["orthogonal", "learned", "none"] = "orthogonal"  # embedding of unit c in the shift decoder: orthogonal rows of exp(W - W^T), a learned table, or none
    recon_loss: Literal["l2", "l1"] = "l2"  # error of L_r, the shifted eps prediction (DisDiff Sec. 4.1)
    dis_weight: Annotated[float, Ge(0)] = 0.05  # weight of the disentangling loss L_d in L = L_r + dis_weight * L_d (Sec. 4.3)
    compat_cli_weight: bool = False  # the public code's CLI default: dis_weight 1.0 whatever the config says
    dis_sample_weight: Literal["latent", "image", "none"] = "latent"  # per-example weight of L_d: mean squared x0-prediction difference in latent or image space, or none
    dis_encoder_grad: bool = False  # the re-encoding in L_d updates the encoder too (the code's train_enc_flag)
    shift_skip_dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # DyGA Table 3: 0.2
    shift_skip_dropout_placement: Literal["paper", "reference_code", "all", "explicit"] = "all"  # which shift-decoder skips get Skip Dropout (DyGA Eq. 7); all: every skip
    dyga: Optional[DyGAConfig] = None  # DyGA Table 3: Gaussian anchoring of the units
    sample_steps: Annotated[int, Ge(1)] = 100  # DDIM steps when decoding and sampling

    @property
    def effective_dis_weight(self) -> float:
        """The weight of L_d the loss uses: ``dis_weight``, or 1.0 under ``compat_cli_weight`` (the authors' CLI)."""
        return 1.0 if self.compat_cli_weight else self.dis_weight

    @property
    def diffusion_channels(self) -> int:
        """Channels of the space the diffusion runs in: the VQ latent's (LDM) or the images'."""
        return self.first_stage.embed_dim if self.first_stage is not None else self.encoder.in_channels

    def validate(self) -> None:
        if self.encoder.latent_dim != self.num_units * self.unit_dim:
            raise ConfigError("encoder.latent_dim", f"must be num_units * unit_dim = {self.num_units * self.unit_dim}, "
                              f"got {self.encoder.latent_dim} (set encoder.latent_dim with num_units and unit_dim)")
        u = self.unet
        if u.latent_dim or u.context_dim or u.num_outputs != 1 or u.in_channels != u.out_channels:
            raise ConfigError("unet", "the pre-trained model is an unconditional epsilon predictor (latent_dim=0, "
                              "context_dim=0, one output, out_channels == in_channels)")
        if not u.use_scale_shift_norm:
            raise ConfigError("unet.use_scale_shift_norm", "the shift decoder's conditioning needs the AdaGN time scale-shift")
        if self.first_stage is None:
            if (u.image_size, u.in_channels) != (self.encoder.image_size, self.encoder.in_channels):
                raise ConfigError("unet.image_size", "pixel DisDiff: the U-Net and the encoder read the same images")
        else:
            f = self.first_stage
            if u.in_channels != f.embed_dim or u.image_size * f.downsample_factor != f.image_size:
                raise ConfigError("unet.in_channels", f"LDM DisDiff: the U-Net reads the VQ latent ({f.embed_dim} channels, "
                                  f"{f.image_size // f.downsample_factor} px)")
            if (self.encoder.image_size, self.encoder.in_channels) != (f.image_size, f.in_channels):
                raise ConfigError("encoder.image_size", "the encoder reads the images the VQ autoencoder reads")
        if self.dyga is not None and (self.dyga.num_units, self.dyga.token_dim) != (self.num_units, self.unit_dim):
            raise ConfigError("dyga.num_units", f"DyGA anchors the {self.num_units} units of {self.unit_dim} dimensions: "
                              f"needs dyga.num_units={self.num_units}, dyga.token_dim={self.unit_dim}")
        emb = u.time_embed_dim or 4 * u.model_channels
        if self.part_embedding == "orthogonal" and self.num_units > emb // 2:
            raise ConfigError("num_units", f"orthogonal part embeddings are rows of {a_or_an(f'{emb // 2}-square')} "
                              f"matrix: at most {emb // 2} units, got {self.num_units}")
        if not 1 <= self.sample_steps <= self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be in [1, {self.schedule.num_timesteps}], got {self.sample_steps}")

    def shift_unet(self) -> UNetConfig:
        """The shift decoder's U-Net config: ``unet`` with the unit code as a second scale-shift
        (after the time scale-shift) and the shift decoder's Skip Dropout."""
        emb = self.unet.time_embed_dim or 4 * self.unet.model_channels
        return dataclasses.replace(self.unet, latent_dim=emb, latent_cond="infodiff", skip_dropout=self.shift_skip_dropout,
                                   skip_dropout_placement=self.shift_skip_dropout_placement)
