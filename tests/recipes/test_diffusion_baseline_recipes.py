"""The chained stages of the DiffAE and DisDiff recipes (docs/methods/diffae.md#latent-ddim,
docs/methods/disdiff.md): the folder a stage loads is checked before anything is read (a run folder, another
method's model, other model settings are named), stage 2 of DiffAE loads exactly stage 1's encoder and
decoder, and the DyGA recipe makes training refit the anchors (DyGA Alg. 1)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffrep.config import ConfigError, apply_overrides
from diffrep.methods.diffae import DiffAE
from diffrep.methods.disdiff import DisDiff
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig
from diffrep.nn.vq import VQAutoencoder, VQAutoencoderConfig
from diffrep.recipes import diffae as RA
from diffrep.recipes import disdiff as RD
from diffrep.recipes import infodiffusion as RI


def _stage1(tmp_path):
    """A saved stage-1 DiffAE of the CPU recipe, inside a run folder (``run/final``)."""
    torch.manual_seed(0)
    m = DiffAE(RA.shapes3d_cpu().model)
    return m, m.save_pretrained(tmp_path / "run" / "final")


def _latent(path, **overrides):
    cfg = dataclasses.replace(RA.shapes3d_cpu("latent"), autoencoder_path=str(path), stats_images=64)
    return apply_overrides(cfg, overrides) if overrides else cfg


def test_diffae_stage2_names_the_settings_that_differ_from_stage1(tmp_path):
    _, final = _stage1(tmp_path)
    cfg = _latent(final, **{"model.latent_dim": 16, "model.encoder.latent_dim": 16, "model.unet.latent_dim": 16})
    # was a RuntimeError traceback of torch size mismatches from load_state_dict
    with pytest.raises(ValueError, match=r"model\.latent_dim: 32 there, 16 here.*--config RUN/config.yaml"):
        RA.build(cfg)
    # a field whose shapes agree is as wrong: the decoder was trained under another noise schedule
    with pytest.raises(ValueError, match=r"model\.schedule\.beta_end: 0\.02 there, 0\.03 here"):
        RA.build(_latent(final, **{"model.schedule.beta_end": 0.03}))


def test_diffae_stage2_refuses_a_run_folder_a_missing_folder_and_another_method(tmp_path):
    _stage1(tmp_path)
    with pytest.raises(ValueError, match=r"--autoencoder_path .*run is a run folder; .*--autoencoder_path .*run/final"):
        RA.build(_latent(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="--autoencoder_path .*nowhere does not exist"):
        RA.build(_latent(tmp_path / "nowhere"))
    info = InfoDiffusion(InfoDiffusionConfig()).save_pretrained(tmp_path / "info")
    # named by its flag, before --autoencoder_weights auto said which of its weights it would read
    with pytest.raises(ValueError, match="--autoencoder_path .*info holds an InfoDiffusion; give the final folder of a "
                                         "DiffAE stage-1 run"):
        RA.build(_latent(info))
    # stage 1 given a stage-2 path: it trained from scratch without a word
    with pytest.raises(ConfigError, match="autoencoder_path.*--model.stage latent"):
        dataclasses.replace(RA.shapes3d_cpu(), autoencoder_path=str(tmp_path / "run" / "final"))


def test_diffae_stage2_loads_stage1_encoder_and_decoder_with_its_own_latent_ddim(tmp_path):
    ae, final = _stage1(tmp_path)
    cfg = _latent(final, **{"model.latent.num_layers": 3, "model.latent.width": 64})  # not stage 1's latent net
    model, ds = RA.build(cfg)
    for name in ("encoder", "unet"):
        mine, theirs = getattr(model, name).state_dict(), getattr(ae, name).state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert len(model.latent_net.layers) == 2 and model.latent_net.layers[0].linear.out_features == 64
    # the statistics are those of z_sem over the 64 images of _images_of (a seeded permutation), recomputed here
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:64].tolist()
    x = torch.stack([ds[i][0] if isinstance(ds[i], (tuple, list)) else ds[i] for i in idx])
    with torch.no_grad():
        z = ae.encode(x).double()
    torch.testing.assert_close(model.z_mean.double(), z.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.z_std.double(), z.std(0), rtol=1e-5, atol=1e-6)


def test_disdiff_pretrained_path_must_be_an_eps_model_folder(tmp_path):
    _, dae = _stage1(tmp_path)
    cfg = RD.shapes3d_cpu()
    with pytest.raises(ValueError, match=r"--pretrained_path .* holds a DiffAE; give the final folder of a DisDiff"):
        RD.build(dataclasses.replace(cfg, pretrained_path=str(dae)))
    with pytest.raises(ValueError, match=r"--pretrained_path .*run is a run folder"):
        RD.build(dataclasses.replace(cfg, pretrained_path=str(tmp_path / "run")))
    # a VQ folder for a pixel model was "the VQ autoencoder's config differs from DisDiffConfig.first_stage"
    with pytest.raises(ConfigError, match="first_stage_path.*pixel space"):
        dataclasses.replace(cfg, first_stage_path=str(dae))


def test_disdiff_dyga_recipe_attaches_the_training_set_for_the_anchor_refits():
    cfg = dataclasses.replace(RD.shapes3d_cpu_onerun(), model=RD.with_dyga(RD.shapes3d_cpu_onerun().model))
    model, ds = RD.build(cfg)
    assert isinstance(model, DisDiff) and model.dyga is not None
    data, steps_per_epoch, _ = model._anchor_data
    assert data is ds and steps_per_epoch == len(ds) // cfg.train.batch_size  # 5120 // 16


@pytest.mark.parametrize("recipe, override, text", [
    (RA.shapes3d_cpu, {"model.latent_dim": 16}, "set latent_dim, encoder.latent_dim and unet.latent_dim together"),
    (RI.shapes3d_cpu, {"model.latent_dim": 16}, "set latent_dim, encoder.latent_dim and unet.latent_dim together"),
    (RD.shapes3d_cpu, {"model.num_units": 5}, "= 40, got 48 (set encoder.latent_dim with num_units and unit_dim)"),
])
def test_a_code_size_override_names_the_fields_that_go_with_it(recipe, override, text):
    # the first message named one field only; a newcomer fixed it and met the next one
    with pytest.raises(ConfigError, match=r"model\.encoder\.latent_dim") as exc:
        apply_overrides(recipe(), override)
    assert text in str(exc.value)
    n = override.get("model.latent_dim", 40)
    fixed = {**override, "model.encoder.latent_dim": n}
    if recipe is not RD.shapes3d_cpu:
        fixed["model.unet.latent_dim"] = n
    assert apply_overrides(recipe(), fixed).model.encoder.latent_dim == n


def test_disdiff_pretrained_unet_of_other_settings_is_named(tmp_path):
    pre = DisDiff(RD.shapes3d_cpu_pretrain().model).save_pretrained(tmp_path / "pre")
    cfg = apply_overrides(dataclasses.replace(RD.shapes3d_cpu(), pretrained_path=str(pre)),
                          {"model.unet.model_channels": 8})
    # was "the pre-trained U-Net's config differs from DisDiffConfig.unet", no field named
    with pytest.raises(ValueError, match=r"differs from DisDiffConfig.unet: unet.model_channels: 16 \(this model's: 8\)$"):
        RD.build(cfg)
    m = DisDiff(RD.shapes3d_cpu().model)
    vq = VQAutoencoder(VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, z_channels=3,
                                           embed_dim=3, n_embed=16, num_groups=8))
    with pytest.raises(ValueError, match="a VQ autoencoder was given, but this DisDiff runs in pixel space"):
        m.load_pretrained_diffusion(m.unet, vq)
