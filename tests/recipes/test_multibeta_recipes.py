"""The multibeta/ recipes: the documented settings (docs/methods/multibeta.md#recipes), the phase plan's
validation, and the representation-beta choice after phase 1 against an independent computation."""

import math

import pytest
import torch

from diffrep.analysis.multibeta import information_curve
from diffrep.config import ConfigError, apply_overrides
from diffrep.methods.multibeta import MultiBeta, multibeta_config
from diffrep.recipes import FAMILIES, get_recipe, list_recipes
from diffrep.recipes import multibeta as R

NAMES = ("multibeta/dsprites-cpu", "multibeta/shapes3d-cpu", "multibeta/cars3d", "multibeta/shapes3d", "multibeta/mpi3d", "multibeta/celeba64",
         "multibeta/celebahq256", "multibeta/ffhq256", "multibeta/lsun-bedrooms256")


def test_registered_with_documented_settings():
    assert R in FAMILIES
    assert {r.name for r in list_recipes() if r.name.startswith("multibeta/")} == set(NAMES)
    cfgs = {n: get_recipe(n).make_config() for n in NAMES}
    for n in ("multibeta/cars3d", "multibeta/shapes3d", "multibeta/mpi3d"):  # Table 2
        v = cfgs[n].model.vae
        assert (v.arch, v.image_size, v.latent_dim, v.conditioning, v.num_steps) == ("conv", 64, 10, "film", 1000)
        assert (cfgs[n].train.batch_size, cfgs[n].train.lr, cfgs[n].train.steps) == (64, 1e-4, 300_000)
        assert cfgs[n].train_latent.ema_decay == 0.9999 and cfgs[n].phases == (1, 2)
    assert [cfgs[n].dataset for n in ("multibeta/cars3d", "multibeta/shapes3d", "multibeta/mpi3d")] == \
        ["cars3d", "shapes3d", "mpi3d_toy"]
    c = cfgs["multibeta/celeba64"]
    assert (c.model.vae.arch, c.model.vae.latent_dim, c.dataset, c.dataset_options["size"]) == ("resnet", 32, "celeba", 64)
    for n in ("multibeta/celebahq256", "multibeta/ffhq256", "multibeta/lsun-bedrooms256"):  # Table 3
        m = cfgs[n].model
        assert m.vae.latent_shape == (4, 32, 32) and m.denoiser.latent_shape == (4, 32, 32)
        assert m.denoiser.unet.num_outputs == 2 and m.vae.image_size == 256
    assert cfgs["multibeta/lsun-bedrooms256"].dataset == "lsun"
    assert cfgs["multibeta/lsun-bedrooms256"].dataset_options == {"category": "bedroom", "split": "train", "size": 256}
    cpu = cfgs["multibeta/dsprites-cpu"]
    assert get_recipe("multibeta/dsprites-cpu").cpu_friendly
    assert (cpu.pool, cpu.model.vae.image_size, cpu.model.vae.in_channels, cpu.model.vae.num_steps) == (2, 32, 1, 50)
    assert (cpu.train.steps, cpu.train_latent.steps, cpu.train_subset) == (R.CPU_STEPS_VAE, R.CPU_STEPS_LATENT, 30000)
    v = cpu.model.vae  # round b's configuration (benches/results/multibeta_validation_cpu_2026-12-06b.md)
    assert (v.learn_s, v.sigma_table, cpu.beta_candidates[-1]) == (False, "monotone_pinned", 0.98)
    assert v.log_s2_init == pytest.approx(math.log(0.5), abs=1e-4)


def test_shapes3d_cpu_is_dsprites_cpu_on_shapes3d_and_builds():
    """multibeta/shapes3d-cpu = dsprites-cpu's settings with only the dataset and the channels changed; its
    training set is 30,000 images of the 480,000-image procedural grid, each the 2 x 2 max-pool of the 64 px
    render, and run.json's data settings rebuild the same images (what the model verbs read)."""
    import dataclasses

    import torch.nn.functional as F

    from diffrep.recipes.runinfo import data_settings, dataset_from_settings

    rec = get_recipe("multibeta/shapes3d-cpu")
    assert rec.cpu_friendly
    cfg, ref = rec.make_config(), R.dsprites_cpu()
    assert (cfg.dataset, cfg.model.vae.in_channels) == ("shapes3d", 3)
    assert dataclasses.replace(cfg, dataset="dsprites",
                               model=dataclasses.replace(cfg.model, vae=dataclasses.replace(cfg.model.vae, in_channels=1))) == ref
    cfg = apply_overrides(cfg, ["--train.seed", "3"])
    model, ds = rec.build(cfg)
    assert len(ds) == 30000 and len(ds.base) == 480000 and tuple(ds.base.factor_sizes) == (10, 10, 10, 8, 4, 15)
    want_idx = torch.randperm(480000, generator=torch.Generator().manual_seed(3))[:30000]
    assert ds.indices[:5] == want_idx[:5].tolist()
    x, y = ds[7]
    assert x.shape == (3, 32, 32) and y.tolist() == ds.base.base.index_to_factors([ds.indices[7]])[0].tolist()
    full = torch.from_numpy(ds.base.base.render(y[None].numpy())).double().permute(0, 3, 1, 2) / 127.5 - 1
    assert torch.allclose(x.double(), F.max_pool2d(full, 2)[0], atol=1e-6)
    again = dataset_from_settings(data_settings(cfg))[ds.indices[7]][0]
    assert torch.equal(again, x)
    batch = torch.stack([ds[i][0] for i in range(4)])
    out = model.loss(batch, step=0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and out["loss"].requires_grad


def test_each_pipeline_and_recipe_field_has_its_own_description():
    """``--print-config`` / ``diffrep train multibeta/... --help``: model.vae, model.denoiser, model.phase,
    model.representation_beta and the recipe's phase-plan and auto_beta fields showed their class docstring (the same
    long text repeated, cut mid-sentence) instead of a description of the field."""
    from diffrep.config.describe import field_docs
    from diffrep.methods.multibeta import LatentDenoiserConfig, MultiBetaConfig, MultiBetaVAEConfig

    for cls in (MultiBetaConfig, MultiBetaVAEConfig, LatentDenoiserConfig, R.MultiBetaRecipeConfig):
        docs = field_docs(cls)
        head = " ".join(cls.__doc__.split())[:40]
        shared = [k for k, v in docs.items() if list(docs.values()).count(v) > 1 or v.startswith(head)]
        assert shared == [], (cls.__name__, shared)
    docs = field_docs(MultiBetaConfig)
    assert "representation" in docs["representation_beta"] and "set_phase" in docs["phase"]


def test_phase_plan_validation():
    base = R.dsprites_cpu()
    with pytest.raises(ConfigError, match="adv_disc_weight"):
        apply_overrides(base, ["--phases", "[1, 2, 3]"])
    with pytest.raises(ConfigError, match="vae_from"):
        apply_overrides(base, ["--phases", "[2]"])
    with pytest.raises(ConfigError, match="vae_from"):
        apply_overrides(base, ["--vae_from", "/x"])
    with pytest.raises(ConfigError, match="phases"):
        apply_overrides(base, ["--phases", "[2, 1]"])
    with pytest.raises(ConfigError, match="phases"):
        apply_overrides(base, ["--phases", "[]"])
    with pytest.raises(ConfigError, match="beta_candidates"):
        apply_overrides(base, ["--beta_candidates", "[0.5, 0.3]"])
    with pytest.raises(ConfigError, match="beta_candidates"):
        apply_overrides(base, ["--beta_candidates", "[0.0, 0.3]"])
    with pytest.raises(ConfigError, match="model.phase"):
        apply_overrides(base, ["--model.phase", "2"])
    ok = apply_overrides(base, ["--phases", "[1, 2, 3]", "--model.adv_disc_weight", "0.5"])
    assert ok.train_for(3) is ok.train_adv and ok.train_for(2) is ok.train_latent and ok.train_for(1) is ok.train


def test_representation_beta_choice_matches_the_curve():
    cfg = R.MultiBetaRecipeConfig(
        model=multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=10,
                               vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1}),
        beta_candidates=(0.2, 0.5, 0.8), informative_images=12, informative_fraction=0.3)
    torch.manual_seed(0)
    model = MultiBeta(cfg.model)
    with torch.no_grad():  # a decoder that depends on beta and on z
        for name, p in model.vae.named_parameters():
            if "film" in name or "embed" in name:
                p.add_(0.3 * torch.randn_like(p))

    class Images:
        x = torch.rand(40, 1, 32, 32) * 2 - 1

        def __len__(self):
            return 40

        def __getitem__(self, i):
            return self.x[i], torch.zeros(0)

    ds = Images()
    out = R.choose_representation_beta(cfg, model, ds)
    idx = torch.randperm(40, generator=torch.Generator().manual_seed(cfg.train.seed))[:12]
    want = information_curve(model.vae, ds.x[idx], [0.0, 0.2, 0.5, 0.8, 1.0])
    assert out["betas"] == [0.0, 0.2, 0.5, 0.8, 1.0]
    assert torch.allclose(torch.tensor(out["mse"]), torch.tensor(want["mse"]))
    ok = [b for b, r in zip(want["betas"][1:4], want["explained"][1:4]) if r >= 0.3]
    assert out["chosen_beta"] == (max(ok) if ok else None)
