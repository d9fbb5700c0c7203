"""Contract of issue 22 (DiffAE, InfoDiffusion, DisDiff, and DyGA + Skip Dropout on DisDiff): the public
names of ``diffrep.methods.diffae`` / ``.infodiffusion`` / ``.disdiff``, the common surface (``loss(batch, *,
step, generator=None)``, ``encode``, ``reconstruct``, ``sample``, swap and traversal verbs, save/load, the
study runner's surface), each method's specific pieces, DisDiff's coefficients against the formulas, DDIM
inversion, the recipes and the docs pages. Not the validation gates (scripts/validate_diffusion_baselines.py).

Deeper value tests: tests/methods/test_diffae_values.py and test_faithful_diffae.py (inversion then decoding
of the model itself in float64, the conditioning order), tests/methods/test_infodiffusion_values.py (MMD equals
the op, the priors' distributions), tests/methods/test_disdiff_values.py (x0-from-shifted-prediction, the
disentangling loss on a hand-made case) and tests/methods/test_disdiff_dyga.py."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest
import torch

import diffrep.methods.diffae as diffae_mod
import diffrep.methods.disdiff as disdiff_mod
import diffrep.methods.infodiffusion as info_mod
from diffrep.methods.diffae import DiffAE, DiffAEConfig
from diffrep.methods.disdiff import DisDiff, DisDiffConfig, shift_coefficients
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig

from helpers import untrained_on_purpose

ROOT = Path(__file__).resolve().parents[2]
METHODS = [(DiffAE, DiffAEConfig), (InfoDiffusion, InfoDiffusionConfig), (DisDiff, DisDiffConfig)]
IDS = ["diffae", "infodiffusion", "disdiff"]


def test_public_names():
    assert {"DiffAE", "DiffAEConfig"} <= set(diffae_mod.__all__)
    assert {"InfoDiffusion", "InfoDiffusionConfig"} <= set(info_mod.__all__)
    assert {"DisDiff", "DisDiffConfig"} <= set(disdiff_mod.__all__)


@pytest.mark.parametrize("cls,_", METHODS, ids=IDS)
def test_common_signatures(cls, _):
    loss = inspect.signature(cls.loss).parameters
    assert list(loss)[:2] == ["self", "batch"]
    assert loss["step"].kind is inspect.Parameter.KEYWORD_ONLY
    assert loss["generator"].kind is inspect.Parameter.KEYWORD_ONLY and loss["generator"].default is None
    sample = inspect.signature(cls.sample).parameters
    assert list(sample)[1] == "n" and sample["generator"].kind is inspect.Parameter.KEYWORD_ONLY
    for verb in ("encode", "reconstruct", "swap", "traverse", "save_pretrained"):
        assert callable(getattr(cls, verb)), verb


@pytest.mark.parametrize("cls,cfg_cls", METHODS, ids=IDS)
def test_common_surface_runs_and_round_trips(cls, cfg_cls, tmp_path):
    from diffrep.methods.base import TrainableModel, surface_problems
    from diffrep.nn import load_pretrained

    torch.manual_seed(0)
    m = cls(cfg_cls())
    if cls is DisDiff:  # its frozen eps_theta: this contract reads the surface, not a pre-training run
        untrained_on_purpose(m)
    assert surface_problems(m, TrainableModel) == []  # what the study runner checks before training
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    out = m.loss(x, step=0, generator=g)
    assert isinstance(out, dict) and out["loss"].dim() == 0
    m.eval()
    if cls is DisDiff:
        m.fit_code_pca(x)  # DisDiff's code: PCA-1 of each unit
        assert m.encode(x).shape == (2, m.config.num_units)
        assert m.swap(x, x.flip(0), 0, num_steps=2).shape == x.shape
    else:
        assert m.encode(x).shape == (2, m.config.latent_dim)  # z_sem / the InfoDiffusion latent
        assert m.swap(x, x.flip(0), [0], num_steps=2).shape == x.shape
    if cls is DiffAE:
        m.fit_latent_stats(m.encode(torch.rand(8, 3, 16, 16, generator=g)))  # the latent DDIM's normalisation
    assert m.traverse(x, 0, [-1.0, 1.0], num_steps=2).shape == (2, 2, 3, 16, 16)
    assert m.reconstruct(x, num_steps=2, generator=g).shape == x.shape
    assert m.sample(2, generator=g, num_steps=2).shape == x.shape
    m.save_pretrained(tmp_path)
    back = load_pretrained(tmp_path)
    a, b = m.state_dict(), back.state_dict()
    assert type(back) is cls and set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_diffae_pieces():
    assert DiffAEConfig().unet.latent_cond == "diffae"  # the "two-cond" scale after the time scale-shift
    for name in ("encode_stochastic", "decode", "sample_latent", "fit_latent_stats", "fit_attribute", "manipulate",
                 "interpolate"):
        assert callable(getattr(DiffAE, name)), name
    assert list(inspect.signature(DiffAE.decode).parameters)[1:3] == ["z_sem", "x_T"]  # reconstruction from (z_sem, x_T)
    assert "latent" in typing.get_type_hints(DiffAEConfig)  # the latent DDIM on normalised z_sem


def test_ddim_inversion_then_decoding_reconstructs_in_the_noise_free_limit():
    """DiffAE's stochastic encoder (DDIM inversion, ``DDIMSampler.invert``) undone by DDIM decoding with the same
    model: exact (float64) in the noise-free limit, a denoiser whose x0 prediction is the image all along the path,
    eps(x_t, t) = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
    from diffrep.diffusion.samplers import DDIMSampler
    from diffrep.diffusion.schedules import NoiseSchedule, NoiseScheduleConfig

    sched = NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=100))
    s = DDIMSampler(sched)
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    abar = sched.alphas_cumprod.double()

    seen = []

    def eps(x, t):
        seen.append(int(t[0]))
        a = abar[t].reshape(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    x_T = s.invert(eps, x0, num_steps=10)
    t_first = seen[0]
    seen.clear()
    back = s.sample(eps, None, num_steps=10, x_T=x_T)
    t_last = seen[0]  # decoding starts where the inversion ended ...
    assert seen[-1] == t_first  # ... and its last step is the inversion's first time: the same 10-step sequence
    # by hand: the image read as the state at t_0 has eps_0 = (1 - sqrt(abar_t0)) x0 / sqrt(1 - abar_t0); with x0_hat = x0
    # every step keeps eps = eps_0, so x_T = sqrt(abar_tK) x0 + sqrt(1 - abar_tK) eps_0
    eps0 = (1 - abar[t_first].sqrt()) * x0 / (1 - abar[t_first]).sqrt()
    assert t_first < t_last and torch.allclose(x_T, abar[t_last].sqrt() * x0 + (1 - abar[t_last]).sqrt() * eps0,
                                               atol=1e-12, rtol=0)
    assert torch.allclose(back, x0, atol=1e-12, rtol=0)


def test_infodiffusion_pieces():
    from diffrep.methods.infodiffusion import PRIORS, sample_prior

    c = InfoDiffusionConfig()
    assert c.unet.latent_cond == "infodiff"  # AdaGN after the time conditioning
    assert {"gaussian", "mixture10", "swiss_roll"} == set(PRIORS)
    for field in ("mmd_weight", "kl_weight", "prior", "rec_weight"):  # MMD and/or KL, the x_0 term
        assert field in typing.get_type_hints(InfoDiffusionConfig)
    z = sample_prior("gaussian", 20000, 3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (20000, 3) and float(z.mean(0).abs().max()) < 0.03 and float((z.var(0) - 1).abs().max()) < 0.05
    for kind in ("mixture10", "swiss_roll"):
        assert sample_prior(kind, 5, 2, generator=torch.Generator().manual_seed(0)).shape == (5, 2)


def test_disdiff_shift_coefficients_equal_the_formulas():
    """PDAE's mean shift -sqrt(alpha_t) (1 - abar_{t-1}) / sqrt(1 - abar_t) and -sqrt(1 - abar_t), from the betas."""
    from diffrep.diffusion.schedules import NoiseSchedule

    m = untrained_on_purpose(DisDiff(DisDiffConfig()))
    betas = m.schedule.betas.double()
    abar = torch.cumprod(1 - betas, 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    shift, guide = shift_coefficients(NoiseSchedule(DisDiffConfig().schedule))
    assert torch.allclose(shift, -(1 - betas).sqrt() * (1 - abar_prev) / (1 - abar).sqrt(), rtol=1e-12, atol=0)
    assert torch.allclose(guide, -(1 - abar).sqrt(), rtol=1e-12, atol=0)
    # the sampling prediction eps_theta - sqrt(1 - abar_t) sum_c G_c
    torch.manual_seed(0)
    m.eval()
    x_t = torch.randn(2, 3, 16, 16)
    t = torch.tensor([10, 900])
    units = torch.randn(2, m.config.num_units, m.config.unit_dim)
    eps, G = m.predict(x_t, t, units)
    want = eps + (-(1 - abar[t]).sqrt()).float().reshape(-1, 1, 1, 1) * G.sum(1)
    assert torch.allclose(m.eps_with_units(x_t, t, units), want, atol=1e-6, rtol=0)


def test_disdiff_weights_and_options():
    c = DisDiffConfig()
    assert c.dis_weight == 0.05 and c.effective_dis_weight == 0.05  # the paper's value
    assert DisDiffConfig(compat_cli_weight=True).effective_dis_weight == 1.0  # the public code's CLI default
    assert c.part_embedding == "orthogonal"  # orthogonal via the matrix exponential, as the code
    assert "first_stage" in typing.get_type_hints(DisDiffConfig)  # pixel DDPM or LDM on the VQ latent
    for name in ("disentangling_loss", "load_pretrained_diffusion", "fit_code_pca"):
        assert callable(getattr(DisDiff, name)), name


def test_dyga_and_skip_dropout_on_disdiff_are_configuration():
    from diffrep.methods.dyga import DyGA, DyGAConfig
    from diffrep.recipes import get_recipe

    rc = get_recipe("disdiff/shapes3d-dyga").make_config().model  # the DyGA paper's Table 3
    assert isinstance(rc.dyga, DyGAConfig) and rc.shift_skip_dropout == 0.2
    c = DisDiffConfig()
    m = untrained_on_purpose(DisDiff(DisDiffConfig(dyga=DyGAConfig(num_units=c.num_units, token_dim=c.unit_dim), shift_skip_dropout=0.2)))
    assert any(isinstance(mod, DyGA) for mod in m.modules())  # the same class as EncDiff's, not a copy


def test_recipes_and_docs_pages():
    from diffrep.recipes import get_recipe

    names = ("diffae/celeba64", "diffae/ffhq128", "diffae/celebahq128", "diffae/shapes3d64", "diffae/shapes3d-cpu",
             "infodiffusion/celeba64", "infodiffusion/dsprites64", "infodiffusion/shapes3d-cpu",
             "disdiff/shapes3d", "disdiff/mpi3d-toy", "disdiff/cars3d", "disdiff/celeba64", "disdiff/shapes3d-cpu")
    types = {"diffae": DiffAEConfig, "infodiffusion": InfoDiffusionConfig, "disdiff": DisDiffConfig}
    for name in names:
        assert isinstance(get_recipe(name).make_config().model, types[name.split("/")[0]]), name
    for page in ("diffae", "infodiffusion", "disdiff"):
        assert (ROOT / "docs" / "methods" / f"{page}.md").is_file()
    study = (ROOT / "studies" / "all_methods_cpu.yaml").read_text()  # study-runner methods
    assert all(r in study for r in ("diffae/shapes3d-cpu", "infodiffusion/shapes3d-cpu", "disdiff/shapes3d-cpu"))
