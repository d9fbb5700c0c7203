"""The VAE-family recipes: names, the published setting by name, the CPU recipes' data, the grids."""

import pytest
import torch

from diffrep.methods.vae import METHOD_CLASSES
from diffrep.recipes import get_recipe
from diffrep.recipes.vae import DATASETS, GRIDS, METHODS, cpu_config, paper_config


@pytest.mark.parametrize("method", sorted(METHODS))
def test_paper_recipe_is_the_dlib_setting(method):
    cfg = get_recipe(f"vae/{method}-shapes3d").make_config()
    t, m = cfg.train, cfg.model
    assert (t.steps, t.batch_size, t.lr, tuple(t.betas), t.eps, t.grad_clip, t.ema_decay, t.weight_decay) == \
        (300_000, 64, 1e-4, (0.9, 0.999), 1e-8, 0.0, 0.0, 0.0)
    assert (m.image_size, m.in_channels, m.decoder) == (64, 3, "bernoulli") and cfg.dataset == "shapes3d"
    assert type(m) is METHOD_CLASSES[method].config_class
    assert get_recipe(f"vae/{method}-dsprites").make_config().model.in_channels == 1


def test_method_settings_by_name():
    assert paper_config("annealed-vae", "dsprites").model.capacity_max == 25.0
    assert paper_config("beta-vae", "dsprites").model.capacity_max is None
    assert paper_config("dip-vae-ii", "cars3d").model.kind == "ii" and paper_config("dip-vae-i", "cars3d").model.kind == "i"
    assert paper_config("factor-vae", "mpi3d-toy").dataset == "mpi3d_toy"
    f = paper_config("factor-vae", "dsprites").model
    assert (f.gamma, f.disc_hidden, f.disc_layers, f.disc_lr, tuple(f.disc_betas)) == (40.0, 1000, 6, 1e-4, (0.5, 0.9))
    with pytest.raises(ValueError, match="method"):
        paper_config("vqvae", "dsprites")
    with pytest.raises(ValueError, match="dataset"):
        paper_config("vae", "celeba")


def test_grids_are_valid_settings():
    for method, (field, values) in GRIDS.items():
        cfg = paper_config(method, "dsprites")
        assert getattr(cfg.model, field) in values, method  # the default is one of the grid's values
        for v in values:
            type(cfg.model)(**{**cfg.model.to_dict(), field: v})
    assert set(DATASETS) == {"dsprites", "shapes3d", "mpi3d-toy", "cars3d"}


@pytest.mark.parametrize("method", ["beta-tcvae", "factor-vae", "fsq-ae"])
def test_cpu_recipe_builds_and_takes_a_step(method, monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    recipe = get_recipe(f"vae/{method}-cpu")
    assert recipe.cpu_friendly
    cfg = recipe.make_config()
    cfg.model.validate()
    model, ds = recipe.build(cfg)
    x = torch.stack([item[0] for item in ds.__getitems__([0, 1, 2, 3])])
    assert x.shape == (4, 1, 32, 32) and float(x.min()) == -1.0 and float(x.max()) == 1.0
    out = model.loss(x, step=0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and cfg.train.batch_size == 64
    assert cpu_config("annealed-vae").model.capacity_steps == cfg.train.steps // 2
