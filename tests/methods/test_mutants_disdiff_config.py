"""DisDiff's configuration (docs/methods/disdiff.md): every validation branch raises a ConfigError naming its field
with its whole message, the boundaries are accepted, the derived values are the documented ones (mutation
survivors of 2026-12-08, benches/results/mutation_nets_2026-12-08.md)."""

from __future__ import annotations

import dataclasses

import pytest

from diffrep.config import ConfigError
from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.disdiff_config import DisDiffConfig
from diffrep.methods.dyga import DyGAConfig
from diffrep.nn.encoders import HalfUNetConfig
from diffrep.nn.vq import VQAutoencoderConfig

UNET = DisDiffConfig().unet
ENC = DisDiffConfig().encoder


def _vq(**kw) -> VQAutoencoderConfig:
    base = dict(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, embed_dim=3, z_channels=3, n_embed=16,
                num_groups=4)
    return VQAutoencoderConfig(**{**base, **kw})


def _ldm(**kw) -> DisDiffConfig:
    return DisDiffConfig(**{"first_stage": _vq(), "unet": dataclasses.replace(UNET, image_size=8), **kw})


def test_defaults_are_the_documented_ones():
    c = DisDiffConfig()
    assert (c.num_units, c.unit_dim, c.encoder.latent_dim) == (4, 8, 32)
    assert (c.encoder.image_size, c.encoder.in_channels, c.encoder.act, c.encoder.variance_head) == (16, 3, "silu", "logvar")
    assert (c.unet.image_size, c.unet.in_channels, c.unet.out_channels, c.unet.use_scale_shift_norm) == (16, 3, 3, True)
    s = c.schedule
    assert (s.kind, s.num_timesteps, s.beta_start, s.beta_end) == ("ldm_linear", 1000, 0.0015, 0.0155)
    assert (c.first_stage, c.latent_scale, c.stage, c.pretrain_steps) == (None, 1.0, "disentangle", 0)
    assert (c.part_embedding, c.recon_loss, c.dis_weight, c.compat_cli_weight) == ("orthogonal", "l2", 0.05, False)
    assert (c.dis_sample_weight, c.dis_encoder_grad, c.shift_skip_dropout, c.dyga, c.sample_steps) == (
        "latent", False, 0.0, None, 100)


def test_effective_dis_weight_and_diffusion_channels():
    assert DisDiffConfig(dis_weight=0.3).effective_dis_weight == 0.3
    assert DisDiffConfig(dis_weight=0.3, compat_cli_weight=True).effective_dis_weight == 1.0
    assert DisDiffConfig().diffusion_channels == 3  # pixel space: the images' channels
    c = _ldm(unet=dataclasses.replace(UNET, image_size=8, in_channels=5, out_channels=5), first_stage=_vq(embed_dim=5))
    assert c.diffusion_channels == 5  # LDM: the VQ latent's channels


def test_shift_unet_is_the_unet_with_the_unit_code_as_a_second_scale_shift():
    emb = 4 * UNET.model_channels  # the time embedding's width
    for placement in ("paper", "reference_code", "all"):
        s = DisDiffConfig(shift_skip_dropout=0.2, shift_skip_dropout_placement=placement).shift_unet()
        assert (s.latent_dim, s.latent_cond, s.skip_dropout, s.skip_dropout_placement) == (emb, "infodiff", 0.2, placement)
    assert dataclasses.replace(s, latent_dim=0, latent_cond=UNET.latent_cond, skip_dropout=0.0,
                               skip_dropout_placement=UNET.skip_dropout_placement) == UNET
    c = DisDiffConfig(unet=dataclasses.replace(UNET, time_embed_dim=24))
    assert c.shift_unet().latent_dim == 24


def _err(**kw) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        DisDiffConfig(**kw)
    return e.value


UNCOND = ("the pre-trained model is an unconditional epsilon predictor (latent_dim=0, context_dim=0, one output, "
          "out_channels == in_channels)")


@pytest.mark.parametrize("kw, field, message", [
    (dict(num_units=3), "encoder.latent_dim",
     "must be num_units * unit_dim = 24, got 32 (set encoder.latent_dim with num_units and unit_dim)"),
    (dict(unit_dim=4), "encoder.latent_dim",
     "must be num_units * unit_dim = 16, got 32 (set encoder.latent_dim with num_units and unit_dim)"),
    (dict(unet=dataclasses.replace(UNET, latent_dim=8)), "unet", UNCOND),
    (dict(unet=dataclasses.replace(UNET, context_dim=8)), "unet", UNCOND),
    (dict(unet=dataclasses.replace(UNET, num_outputs=2)), "unet", UNCOND),
    (dict(unet=dataclasses.replace(UNET, out_channels=6)), "unet", UNCOND),
    (dict(unet=dataclasses.replace(UNET, use_scale_shift_norm=False)), "unet.use_scale_shift_norm",
     "the shift decoder's conditioning needs the AdaGN time scale-shift"),
    (dict(unet=dataclasses.replace(UNET, image_size=8)), "unet.image_size",
     "pixel DisDiff: the U-Net and the encoder read the same images"),
    (dict(unet=dataclasses.replace(UNET, in_channels=1, out_channels=1)), "unet.image_size",
     "pixel DisDiff: the U-Net and the encoder read the same images"),
    (dict(first_stage=_vq()), "unet.in_channels", "LDM DisDiff: the U-Net reads the VQ latent (3 channels, 8 px)"),
    (dict(first_stage=_vq(embed_dim=4), unet=dataclasses.replace(UNET, image_size=8)), "unet.in_channels",
     "LDM DisDiff: the U-Net reads the VQ latent (4 channels, 8 px)"),
    (dict(first_stage=_vq(image_size=32), unet=dataclasses.replace(UNET, image_size=8)), "unet.in_channels",
     "LDM DisDiff: the U-Net reads the VQ latent (3 channels, 16 px)"),
    (dict(first_stage=_vq(image_size=32), unet=dataclasses.replace(UNET, image_size=16)), "encoder.image_size",
     "the encoder reads the images the VQ autoencoder reads"),
    (dict(first_stage=_vq(in_channels=1), unet=dataclasses.replace(UNET, image_size=8)), "encoder.image_size",
     "the encoder reads the images the VQ autoencoder reads"),
    (dict(dyga=DyGAConfig(num_units=3, token_dim=8)), "dyga.num_units",
     "DyGA anchors the 4 units of 8 dimensions: needs dyga.num_units=4, dyga.token_dim=8"),
    (dict(dyga=DyGAConfig(num_units=4, token_dim=4)), "dyga.num_units",
     "DyGA anchors the 4 units of 8 dimensions: needs dyga.num_units=4, dyga.token_dim=8"),
    (dict(num_units=33, unit_dim=1, encoder=dataclasses.replace(ENC, latent_dim=33)), "num_units",
     "orthogonal part embeddings are rows of a 32-square matrix: at most 32 units, got 33"),
    (dict(num_units=9, unit_dim=1, encoder=dataclasses.replace(ENC, latent_dim=9),
          unet=dataclasses.replace(UNET, time_embed_dim=16)), "num_units",
     "orthogonal part embeddings are rows of an 8-square matrix: at most 8 units, got 9"),
    (dict(sample_steps=1001), "sample_steps", "must be in [1, 1000], got 1001"),
    (dict(sample_steps=11, schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=10, beta_start=0.0015,
                                                        beta_end=0.0155)),
     "sample_steps", "must be in [1, 10], got 11"),
])
def test_every_branch_names_its_field_with_its_message(kw, field, message):
    e = _err(**kw)
    assert (e.field, e.message) == (field, message)


@pytest.mark.parametrize("kw", [
    dict(num_units=2, unit_dim=16),  # 2 * 16 = 32 = encoder.latent_dim
    dict(sample_steps=1000), dict(sample_steps=1),
    dict(num_units=32, unit_dim=1, encoder=dataclasses.replace(ENC, latent_dim=32)),  # exactly emb // 2 units
    dict(num_units=33, unit_dim=1, encoder=dataclasses.replace(ENC, latent_dim=33), part_embedding="learned"),
    dict(num_units=33, unit_dim=1, encoder=dataclasses.replace(ENC, latent_dim=33), part_embedding="none"),
    dict(num_units=8, unit_dim=4, unet=dataclasses.replace(UNET, time_embed_dim=16)),
    dict(dyga=DyGAConfig(num_units=4, token_dim=8)),
])
def test_boundaries_are_accepted(kw):
    c = DisDiffConfig(**kw)
    assert all(getattr(c, k) == v for k, v in kw.items())


def test_ldm_setting_accepts_the_matching_shapes():
    c = _ldm()
    assert c.diffusion_channels == 3 and c.unet.image_size * c.first_stage.downsample_factor == 16
    # the encoder is checked against the VQ's images, not against the U-Net
    c = _ldm(encoder=HalfUNetConfig(**{**dataclasses.asdict(ENC), "image_size": 16}))
    assert c.encoder.image_size == 16

