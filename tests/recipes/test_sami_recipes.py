"""The SAMI recipes: paper and CPU configurations, and the frozen-denoiser second stage."""

import dataclasses

import pytest
import torch

from diffrep.config import ConfigError, apply_overrides
from diffrep.recipes import get_recipe


def test_recipes_build_and_validate():
    for name in ("sami/disks", "sami/celeba64", "sami/celebahq256-frozen", "sami/disks-cpu"):
        cfg = get_recipe(name).make_config()
        assert cfg.model.latent_dim in (3, 256, 512)
    with pytest.raises(ConfigError, match="pretrained_denoiser"):
        get_recipe("sami/celebahq256-frozen").build(get_recipe("sami/celebahq256-frozen").make_config())
    cfg = get_recipe("sami/disks-cpu").make_config()
    assert cfg.model.convnet.bias is False and cfg.model.schedule.num_timesteps == 400
    assert cfg.model.schedule.beta_end == pytest.approx(0.05)


def test_frozen_cpu_recipe_is_stage_two_of_the_cpu_recipe(tmp_path):
    stage1 = get_recipe("sami/disks-cpu")
    first, _ = stage1.build(stage1.make_config())
    first.save_pretrained(tmp_path / "final")
    frozen = get_recipe("sami/disks-cpu-frozen")
    cfg = frozen.make_config()
    # the same networks and data; only the encoder's training changes
    assert cfg.model.denoiser == stage1.make_config().model.denoiser and cfg.data == stage1.make_config().data
    assert (cfg.model.freeze_denoiser, cfg.model.t_sampling, cfg.model.t_band) == (True, "band", (100, 260))
    with pytest.raises(ConfigError, match="pretrained_denoiser"):
        frozen.build(cfg)
    model, ds = frozen.build(apply_overrides(cfg, {"pretrained_denoiser": str(tmp_path / "final")}))
    for a, b in zip(model.denoiser.parameters(), first.denoiser.parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    assert all(p.requires_grad for p in model.encoder.parameters()) and len(ds) == 2000
    # the d = 8 variant changes only the latent width and the lr schedule
    wide = get_recipe("sami/disks-cpu-frozen-d8").make_config()
    assert (wide.model.latent_dim, wide.train.lr_schedule, wide.train.steps) == (8, "cosine", 24000)
    narrow = dataclasses.replace(wide.model, convnet=cfg.model.convnet, kl_anneal_steps=cfg.model.kl_anneal_steps)
    assert narrow == cfg.model and wide.data == cfg.data
    assert dataclasses.replace(wide.train, steps=cfg.train.steps, lr_schedule=cfg.train.lr_schedule) == cfg.train
