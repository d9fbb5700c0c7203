"""The configuration of an EncDiff model (Jun et al., DyGA, Tables 7-9; docs/methods/encdiff.md): its
networks, first stage, conditioning and sampling, with the LDM noise schedule and DDIM spacing that
its defaults and ``ddim_spacing="ldm"`` name. The model is :mod:`diffrep.methods.encdiff`, which
re-exports these names."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

from .._checks import positive_int
from ..config import Config, ConfigError, Ge, Lt
from ..diffusion.schedules import NoiseScheduleConfig
from ..nn.encoders import FeatureExtractorConfig
from ..nn.unet import UNetConfig, unet_preset
from ..nn.vq import VQAutoencoderConfig
from .dyga import DyGAConfig
from .encdiff_nets import SmallExtractorConfig

__all__ = ["EncDiffConfig", "ldm_schedule", "ldm_ddim_pairs"]


def ldm_schedule() -> NoiseScheduleConfig:
    """The LDM "linear" schedule of the paper's U-Net config: beta = linspace(sqrt 0.0015, sqrt 0.0155, 1000)^2."""
    return NoiseScheduleConfig(kind="ldm_linear", num_timesteps=1000, beta_start=0.0015, beta_end=0.0155)


def ldm_ddim_pairs(num_timesteps: int, num_steps: int) -> list[tuple[int, int]]:
    """The LDM DDIM timestep pairs (``make_ddim_timesteps`` "uniform" + 1; the last step goes to
    abar_0, not to 1): t in range(0, T, c) + 1 with c = T // num_steps, descending; (t, t_prev) with
    t_prev = 0 last. As in LDM, when c does not divide T there are ceil(T / c) > num_steps steps (T = 1000,
    30 steps: c = 33, 31 steps); a spacing whose last t would be T (c divides T - 1, e.g. c = 1) is
    refused, as LDM would index past its schedule."""
    positive_int(num_timesteps, "num_timesteps")
    positive_int(num_steps, "num_steps")
    if num_steps > num_timesteps:
        raise ValueError(f"num_steps must be at most num_timesteps={num_timesteps}, got {num_steps}")
    c = num_timesteps // num_steps
    seq = [t + 1 for t in range(0, num_timesteps, c)][::-1]
    if seq[0] >= num_timesteps:
        raise ValueError(f"num_steps={num_steps}: the LDM DDIM spacing of {num_steps} steps over T={num_timesteps} "
                         f"(c={c}) reaches t={seq[0]}, outside the schedule [0, {num_timesteps - 1}]; choose another "
                         f"number of steps")
    return list(zip(seq, seq[1:] + [0]))


def _table8() -> UNetConfig:
    return unet_preset("dyga-table8", skip_dropout_placement="reference_code")


@dataclasses.dataclass
class EncDiffConfig(Config):
    """Defaults: the paper's Tables 7-9 (VQ f = 4 on 64 x 64, Table 8 U-Net with Skip Dropout 0.2 at the
    authors' placement, Table 9 extractor with N = 20, 32-d tokens), L1 Eq. 2 loss, DyGA in paper mode,
    DDIM 100 steps, eta 0. ``first_stage=None`` runs in pixel space; ``small_extractor`` replaces the
    Table 9 extractor (CPU recipes). ``conditioning``: ``"none"`` (the Table 4 baseline), ``"dyga"``,
    ``"fsq"`` (Table 11, ``fsq_levels``)."""

    unet: UNetConfig = dataclasses.field(default_factory=_table8)  # the conditional denoising U-Net (DyGA Table 8, Skip Dropout 0.2)
    extractor: FeatureExtractorConfig = dataclasses.field(default_factory=FeatureExtractorConfig)  # the feature extractor x -> N tokens (DyGA Table 9)
    small_extractor: Optional[SmallExtractorConfig] = None
    first_stage: Optional[VQAutoencoderConfig] = dataclasses.field(default_factory=VQAutoencoderConfig)  # VQ autoencoder whose latent is diffused (DyGA Table 7, f = 4); null: pixel space
    scale_by_std: bool = True                     # LDM: latents x 1/std of the first training batch
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=ldm_schedule)  # noise schedule (the LDM linear 0.0015..0.0155, T = 1000)
    loss_type: Literal["l1", "l2"] = "l1"  # error of the eps prediction in the Eq. 2 loss (paper: L1)
    conditioning: Literal["none", "dyga", "fsq"] = "dyga"
    dyga: DyGAConfig = dataclasses.field(default_factory=DyGAConfig)  # Dynamic Gaussian Anchoring of the tokens (DyGA Alg. 2-3, Eq. 6)
    fsq_levels: tuple[Annotated[int, Ge(2)], ...] = (8, 5, 5)
    backbone_dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # DyGA Table 12 BD: channel dropout rate on the decoder's backbone features (0: off)
    sample_steps: Annotated[int, Ge(1)] = 100  # DDIM steps when decoding and sampling
    ddim_spacing: Literal["uniform", "ldm"] = "uniform"  # DDIM timesteps: uniform, or the LDM's make_ddim_timesteps (+1, last to abar_0)
    eta: Annotated[float, Ge(0)] = 0.0  # DDIM eta (0: deterministic)
    token_bank_size: Annotated[int, Ge(1)] = 1024  # tokens kept for sample(n) (drawn with replacement)

    @property
    def extractor_in_use(self) -> FeatureExtractorConfig | SmallExtractorConfig:
        """``small_extractor`` when set, else the Table 9 ``extractor``: the one that reads the images."""
        return self.small_extractor if self.small_extractor else self.extractor

    @property
    def num_units(self) -> int:
        return self.extractor_in_use.num_units

    @property
    def token_dim(self) -> int:
        return self.extractor_in_use.token_dim

    @property
    def image_size(self) -> int:
        return self.extractor_in_use.image_size

    @property
    def image_channels(self) -> int:
        return self.extractor_in_use.in_channels

    def validate(self) -> None:
        if self.unet.context_dim != self.token_dim:
            raise ConfigError("unet.context_dim", f"{self.unet.context_dim} != the extractor's token dim {self.token_dim}")
        if self.conditioning == "dyga" and (self.dyga.num_units, self.dyga.token_dim) != (self.num_units, self.token_dim):
            raise ConfigError("dyga.num_units", f"DyGA is set for ({self.dyga.num_units} units, {self.dyga.token_dim}-d) "
                              f"but the extractor gives ({self.num_units}, {self.token_dim}-d)")
        fs = self.first_stage
        if fs is not None:
            if fs.image_size != self.image_size or fs.in_channels != self.image_channels:
                raise ConfigError("first_stage.image_size", f"the first stage reads {fs.in_channels}x{fs.image_size}px, "
                                  f"the extractor {self.image_channels}x{self.image_size}px")
            lat, ch = fs.image_size // fs.downsample_factor, fs.embed_dim
        else:
            lat, ch = self.image_size, self.image_channels
        if self.unet.image_size != lat or self.unet.in_channels != ch or self.unet.out_channels != ch:
            raise ConfigError("unet.image_size", f"the U-Net must map {ch}x{lat}x{lat} latents, is set for "
                              f"{self.unet.in_channels}->{self.unet.out_channels} channels at {self.unet.image_size}px")
        if self.ddim_spacing == "ldm":
            try:
                ldm_ddim_pairs(self.schedule.num_timesteps, self.sample_steps)
            except ValueError as e:
                raise ConfigError("sample_steps", str(e)) from None
