"""Contract of issue 8: SAMI end to end (model and training, generation, analyses as functions and CLI verbs,
recipes), through the public paths the issue names (moved by issue 16: configuration, networks and guidance
maths in ``methods/sami_*.py``, re-exported from ``diffrep.methods.sami``; analyses in ``diffrep.analysis``;
recipes in ``diffrep.recipes.sami``), each checked against a computation written here on a tiny float64 model.

Deeper value tests: tests/methods/test_sami.py, test_faithful_sami.py, test_sami_objective_values.py and
test_sami_exact_bayes.py (every objective term, Algorithm 1 by hand, the exact-Bayes check),
tests/analysis/test_sami_analysis_values.py (the analyses by value), tests/recipes/test_sami_recipes.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math

import numpy as np
import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.sami import SAMI, SAMIConfig, SAMIConvNet, SAMIConvNetConfig

from helpers import sami_images, tiny_sami, tiny_sami_config, tiny_unet


def _normal_log_q(z, mu, logvar):
    """mean over draws of sum_j log N(z_j; mu_j, exp(logvar_j)) (the twin of the guidance op)."""
    lp = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    return lp.mean(0) if z.dim() == 3 else lp


# --------------------------------------------------------------------------- public names
def test_public_names_and_the_fused_op_path():
    import diffrep.methods.sami as S
    from diffrep.ops.guidance import log_posterior

    for name in ("SAMI", "SAMIConfig", "SAMIConvNet", "SAMIConvNetConfig", "log_posterior", "expected_log_posterior"):
        assert hasattr(S, name), name
    assert S.log_posterior is log_posterior                    # the guidance goes through the fused op
    m = tiny_sami()
    for meth in ("loss", "encode", "posterior", "guidance", "guided_eps", "generate", "conditional_sample",
                 "sample", "sample_unconditional", "reconstruct", "load_denoiser", "save_pretrained", "from_pretrained"):
        assert callable(getattr(m, meth)), meth
    assert list(inspect.signature(SAMI.loss).parameters)[:4] == ["self", "batch", "step", "generator"]


ANALYSES = {  # module (issue 16's homes) -> the paper analyses the issue lists
    "diffrep.analysis.variability": ["variability", "variability_reduction"],
    "diffrep.analysis.posterior_geometry": ["posterior_variance_spectrum", "perturb_low_variance_axes", "global_axes"],
    "diffrep.analysis.representation": ["latent_straightness", "attribute_metrics", "factor_metrics"],
    "diffrep.analysis.guidance": ["guidance_magnitude"],
    "diffrep.analysis.sami_fid": ["fid"],
}


@pytest.mark.parametrize("module,names", list(ANALYSES.items()))
def test_analysis_functions_importable(module, names):
    import importlib

    mod = importlib.import_module(module)
    sami_all = importlib.import_module("diffrep.analysis.sami")
    for n in names:
        assert callable(getattr(mod, n)) and getattr(sami_all, n) is getattr(mod, n)


# --------------------------------------------------------------------------- configuration: the open choices
@pytest.mark.parametrize("field,values", [
    ("lambda_t", ("simple", "elbo")), ("t_sampling", ("uniform", "beta")), ("kl_reduction", ("sum", "mean")),
    ("pixel_reduction", ("mean", "sum")), ("mc_placement", ("outside", "inside")), ("sampler", ("ddpm", "ddim")),
    ("freeze_denoiser", (False, True)), ("z_mode", ("fixed", "mc_average", "analytic"))])
def test_config_open_choices(field, values):
    for v in values:
        assert getattr(tiny_sami_config(**{field: v}), field) == v
    if not isinstance(values[0], bool):
        with pytest.raises(ConfigError):
            tiny_sami_config(**{field: "not-a-choice"})


def test_config_defaults_are_the_papers_forms():
    c = SAMIConfig()
    assert (c.lambda_t, c.t_sampling, c.train_samples, c.mc_placement, c.sampler, c.guidance_scale) == \
        ("simple", "uniform", 1, "outside", "ddpm", 1.0)
    assert c.encoder == "convnet" and c.convnet.bias is False and c.convnet.variance_head == "softplus_sq"
    T = 20
    custom = tiny_sami_config(lambda_t="custom", lambda_values=tuple(float(i) for i in range(T)))
    assert SAMI(custom).lambda_weights(torch.tensor([3, 7])).tolist() == [3.0, 7.0]


# --------------------------------------------------------------------------- networks
def test_inference_network_is_bias_free_blind_to_t_and_softplus_squared():
    net = SAMIConvNet(SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, channel_mult=(2, 2), latent_dim=3))
    assert not any(n.endswith("bias") for n, _ in net.named_parameters())
    assert list(inspect.signature(net.forward).parameters) == ["x"]        # no t input
    x = sami_images(4, dtype=torch.float32)
    mu, logvar = net(x)
    h = net.body(x)
    torch.testing.assert_close(mu, net.mean_head(h))
    sigma = torch.nn.functional.softplus(net.var_head(h))                 # variance = softplus(a)^2
    torch.testing.assert_close(logvar.exp(), sigma.square(), rtol=1e-5, atol=1e-7)


def test_half_unet_encoder_choice():
    from diffrep.nn import HalfUNet, HalfUNetConfig

    m = tiny_sami(encoder="half_unet", half_unet=HalfUNetConfig(
        image_size=8, in_channels=1, model_channels=4, channel_mult=(1, 2), num_res_blocks=1, latent_dim=5,
        num_groups=2))
    assert isinstance(m.encoder, HalfUNet) and m.encode(sami_images(2)).shape == (2, 5)


# --------------------------------------------------------------------------- Eq. 10 / Algorithm 2
def _twin_loss(m, x0, t, noise, z_noise, beta):
    """beta-SAMI by hand: x_t = sqrt(abar) x0 + sqrt(1 - abar) eps; g = grad_{x_t} log N(z; mu(x_t), sigma^2(x_t))
    through torch.distributions; ||eps - eps_theta + sqrt(1 - abar) g||^2 per pixel, averaged over draws
    (outside the square) and examples; + beta KL(q(z | x0) || N(0, I)) summed over dims, batch mean."""
    ab = m.schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    eps = m.denoiser(x_t, t)
    mu0, lv0 = m.encoder(x0)
    z = mu0 + (0.5 * lv0).exp() * z_noise
    xt = x_t.detach().requires_grad_(True)
    mut, lvt = m.encoder(xt)
    per = []
    for zs in z:
        (g,) = torch.autograd.grad(_normal_log_q(zs, mut, lvt).sum(), xt, create_graph=True)
        per.append((noise - eps + (1 - ab).sqrt() * g).square().flatten(1).mean(1))
    kl = 0.5 * (mu0.square() + lv0.exp() - 1 - lv0).sum(-1).mean()
    return torch.stack(per).mean(0).mean() + beta * kl


@pytest.mark.parametrize("S", [1, 2])
def test_loss_and_its_gradient_match_the_twin_path(S):
    m = tiny_sami(train_samples=S)
    x0 = sami_images(3)
    g = torch.Generator().manual_seed(2)
    t = torch.tensor([0, 9, 19])
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    z_noise = torch.randn(S, 3, 3, generator=g, dtype=torch.float64)
    out = m.loss(x0, t=t, noise=noise, z_noise=z_noise)
    assert {"loss", "loss_x", "kl", "kl_weight", "mse_uncond", "mse_guided"} <= set(out)
    want = _twin_loss(m, x0, t, noise, z_noise, m.config.kl_weight)
    torch.testing.assert_close(out["loss"], want, rtol=1e-10, atol=1e-12)
    params = [p for p in m.parameters()]
    got_g = torch.autograd.grad(out["loss"], params, allow_unused=True)
    want_g = torch.autograd.grad(want, params, allow_unused=True)
    for p, a, b in zip(params, got_g, want_g):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)


def test_kl_annealing_is_exponential_from_a_tiny_value():
    m = tiny_sami(kl_weight=0.2, kl_anneal_steps=10, kl_anneal_start=1e-4)
    for k in (0, 3, 5, 10, 25):
        want = 0.2 * 1e-4 ** (1 - k / 10) if k < 10 else 0.2
        assert m.kl_weight_at(k) == pytest.approx(want, rel=1e-12)


def test_timestep_samplers_uniform_and_high_noise_biased():
    T = 20
    g = torch.Generator().manual_seed(0)
    uni = tiny_sami().sample_timesteps(8000, generator=g)
    beta = tiny_sami(t_sampling="beta", t_beta_a=4.0).sample_timesteps(8000, generator=g)
    for t in (uni, beta):
        assert int(t.min()) >= 0 and int(t.max()) <= T - 1
    # floor(T u), u ~ Beta(4, 1): P(t >= k) = 1 - (k / T)^4; uniform: 1 - k / T
    for k in (5, 10, 15):
        assert float((beta >= k).double().mean()) == pytest.approx(1 - (k / T) ** 4, abs=0.02)
        assert float((uni >= k).double().mean()) == pytest.approx(1 - k / T, abs=0.02)


def test_linear_and_cosine_schedules():
    from diffrep.diffusion import NoiseScheduleConfig

    T = 20
    lin = SAMI(tiny_sami_config()).schedule
    torch.testing.assert_close(lin.betas, torch.linspace(1e-3, 0.2, T, dtype=torch.float64))
    cos = SAMI(tiny_sami_config(schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=T))).schedule
    # Nichol & Dhariwal Eq. 17: abar(t) = f(t) / f(0), beta_t = 1 - abar(t) / abar(t - 1) clipped at 0.999
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - f(t + 1) / f(t), 0.999) for t in range(T)], dtype=torch.float64)
    torch.testing.assert_close(cos.betas, betas, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(cos.alphas_cumprod, torch.cumprod(1 - betas, 0), rtol=1e-9, atol=1e-12)


def test_pretrained_denoiser_mode_trains_only_the_inference_network():
    src = tiny_sami(seed=4)
    m = tiny_sami(freeze_denoiser=True)
    m.load_denoiser(src.denoiser)
    for a, b in zip(m.denoiser.parameters(), src.denoiser.parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    m.loss(sami_images(4), generator=torch.Generator().manual_seed(0))["loss"].backward()
    assert all(p.grad is None for p in m.denoiser.parameters())
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.encoder.parameters())


# --------------------------------------------------------------------------- generation
def test_ddim_chain_is_eq8_step_by_step_and_deterministic_without_noise():
    """Conditional DDIM (eta = 0) on eps_hat = eps_theta - sqrt(1 - abar_t) g (Eq. 8), re-run by hand from the
    chain's own per-step record; with x_T given it is deterministic."""
    m = tiny_sami(sampler="ddim", ddim_eta=0.0)
    z = torch.tensor([[0.3, -0.5, 1.0], [-1.0, 0.2, 0.0]], dtype=torch.float64)
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rec = []
    out = m.generate(z, x_T=x_T, callback=lambda i, t, x, eps, g: rec.append((t, x.clone(), eps.clone(), g.clone())))
    assert len(rec) == m.config.sample_steps
    ab = m.schedule.alphas_cumprod
    x = x_T
    for i, (t, x_next, eps, g) in enumerate(rec):
        leaf = x.detach().requires_grad_(True)
        mu, lv = m.encoder(leaf)
        (g_hand,) = torch.autograd.grad(_normal_log_q(z, mu, lv).sum(), leaf)
        torch.testing.assert_close(g, g_hand, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(eps, m.denoiser(x, torch.full((2,), t)), rtol=1e-10, atol=1e-12)
        e_hat = eps - (1 - ab[t]).sqrt() * g
        x0 = (x - (1 - ab[t]).sqrt() * e_hat) / ab[t].sqrt()
        ab_next = ab[rec[i + 1][0]] if i + 1 < len(rec) else torch.tensor(1.0, dtype=torch.float64)
        torch.testing.assert_close(x_next, ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * e_hat, rtol=1e-9, atol=1e-10)
        x = x_next
    torch.testing.assert_close(out, x.clamp(-1, 1))
    assert torch.equal(out, m.generate(z, x_T=x_T))


def test_ddpm_algorithm_1_runs_all_steps_and_unconditional_shares_the_denoiser():
    m = tiny_sami()
    T = m.schedule.num_timesteps
    steps = []
    a = m.conditional_sample(sami_images(2), 2, generator=torch.Generator().manual_seed(3),
                             callback=lambda i, t, x, eps, g: steps.append(t))
    assert a.shape == (4, 1, 8, 8) and steps == list(range(T - 1, -1, -1))
    b = m.conditional_sample(sami_images(2), 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    gs = []
    u = m.sample_unconditional(3, generator=torch.Generator().manual_seed(0),
                               callback=lambda i, t, x, eps, g: gs.append(g))
    assert u.shape == (3, 1, 8, 8) and all(g is None for g in gs)


def test_rigid_sloppy_guidance_masks_only_the_mahalanobis_term():
    m = tiny_sami()
    x = sami_images(2)
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    g, _ = m.guidance(x, z, axes=(0, 2))
    leaf = x.clone().requires_grad_(True)
    mu, lv = m.encoder(leaf)
    keep = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    logq = -0.5 * (keep * (z - mu).square() / lv.exp() + lv + math.log(2 * math.pi)).sum(-1)
    (want,) = torch.autograd.grad(logq.sum(), leaf)
    torch.testing.assert_close(g, want, rtol=1e-9, atol=1e-12)


def test_save_load_round_trip(tmp_path):
    m = tiny_sami(dtype=torch.float32)
    m.save_pretrained(tmp_path / "m")
    r = SAMI.from_pretrained(tmp_path / "m")
    assert r.config == m.config
    x = sami_images(3, dtype=torch.float32)
    torch.testing.assert_close(r.encode(x), m.encode(x), rtol=0, atol=0)
    kw = dict(t=torch.tensor([1, 5, 9]), noise=torch.zeros(3, 1, 8, 8), z_noise=torch.zeros(1, 3, 3))
    torch.testing.assert_close(r.loss(x, **kw)["loss"], m.loss(x, **kw)["loss"], rtol=0, atol=0)


# --------------------------------------------------------------------------- analyses
def test_variability_is_the_mean_squared_distance_to_the_mean():
    from diffrep.analysis.variability import variability

    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])
    sq = [1.0 + 1.0, 1.0 + 1.0, 0.0 + 4.0]                   # to the mean (1, 1)
    v = variability(x)
    assert v["v_sum"] == pytest.approx(sum(sq) / 3) and v["v_per_pixel"] == pytest.approx(sum(sq) / 6)


def test_cli_verbs_and_analysis_names():
    from diffrep.cli import sami as cli

    assert {"variability", "spectrum", "perturb", "global", "guidance", "factors", "fid", "attributes",
            "straightness"} <= set(cli.ANALYSES)


@pytest.fixture()
def tiny_run(tmp_path):
    m = tiny_sami(dtype=torch.float32, sampler="ddim")
    m.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.yaml").write_text("data:\n  dataset: disks\n  size: 8\n  num_images: 16\n")
    return m, tmp_path / "m"


def test_cli_straightness_writes_json_and_figure(tiny_run, tmp_path):
    from diffrep.cli import main

    m, run = tiny_run
    g = torch.Generator().manual_seed(0)
    videos = (torch.rand(2, 4, 1, 8, 8, generator=g) * 2 - 1).numpy()
    np.save(tmp_path / "v.npy", videos)
    assert main(["sami", "analyze", str(run), "--what", "straightness", "--videos", str(tmp_path / "v.npy"),
                 "--out", str(tmp_path / "an")]) == 0
    rep = json.loads((tmp_path / "an" / "analysis.json").read_text())
    codes = m.encode(torch.from_numpy(videos).flatten(0, 1)).double().reshape(2, 4, -1)
    d = codes[:, 1:] - codes[:, :-1]
    s = (d[:, :-1] * d[:, 1:]).sum(-1) / (d[:, :-1].norm(dim=-1) * d[:, 1:].norm(dim=-1))
    assert rep["straightness"]["latent_straightness"] == pytest.approx(float(s.mean(1).mean()), rel=1e-5)
    assert rep["straightness"]["num_videos"] == 2 and rep["straightness"]["num_frames"] == 4
    assert main(["sami", "analyze", str(run), "--what", "straightness"]) == 2          # --videos is required


def _write_celeba(root, n_test=16):
    from PIL import Image

    from diffrep.data.celeba import ATTRIBUTES

    (root / "img_align_celeba").mkdir(parents=True)
    g = np.random.RandomState(0)
    names = [f"{k:06d}.jpg" for k in range(1, n_test + 3)]
    attrs = np.full((len(names), 40), -1)
    attrs[:, :2] = np.where(g.rand(len(names), 2) < 0.5, -1, 1)
    attrs[: n_test + 2 : 2, 0], attrs[1: n_test + 2 : 2, 0] = -1, 1   # both classes present
    for n, a in zip(names, attrs):
        Image.fromarray(np.full((218, 178, 3), 100 + 60 * (a[0] > 0), np.uint8)).save(root / "img_align_celeba" / n)
    rows = [f"{n} " + " ".join(str(v) for v in a) for n, a in zip(names, attrs)]
    (root / "list_attr_celeba.txt").write_text("\n".join([str(len(names)), " ".join(ATTRIBUTES), *rows]) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {0 if i < 2 else 2}\n" for i, n in enumerate(names)))
    return dict(zip(names, (attrs > 0).astype(np.int64)))


def test_cli_attributes_reads_the_held_out_labels(tmp_path):
    from diffrep.analysis.representation import attribute_metrics
    from diffrep.cli import main
    from diffrep.cli.sami import _held_out
    from diffrep.nn import load_pretrained

    labels = _write_celeba(tmp_path / "celeba")
    m = tiny_sami(dtype=torch.float32, sampler="ddim", denoiser=tiny_unet(in_channels=3, out_channels=3,
                                                                          use_scale_shift_norm=False),
                  convnet=SAMIConvNetConfig(image_size=8, in_channels=3, base_channels=2, channel_mult=(2, 2),
                                            latent_dim=3))
    run = tmp_path / "m"
    m.save_pretrained(run)
    (run / "config.yaml").write_text(f"data:\n  dataset: celeba\n  root: {tmp_path / 'celeba'}\n  size: 8\n"
                                     "  num_images: 2\n")
    assert main(["sami", "analyze", str(run), "--what", "attributes", "--num-images", "16",
                 "--out", str(tmp_path / "an")]) == 0
    rep = json.loads((tmp_path / "an" / "analysis.json").read_text())["attribute_metrics"]
    assert {"tad", "latent_auroc", "num_images"} <= set(rep) and rep["num_images"] == 16
    # the labels are those of the held-out (test-split) images, in the images' order
    images, ds, _, idx = _held_out(run, load_pretrained(run), 16, 0)
    want = np.stack([labels[ds.files[i]] for i in idx])
    direct = attribute_metrics(load_pretrained(run), images, want, seed=0)
    assert rep == pytest.approx(direct)
    # a dataset without binary attributes (disks) is a message, not a traceback
    (run / "config.yaml").write_text("data:\n  dataset: disks\n  size: 8\n  num_images: 16\n")
    assert main(["sami", "analyze", str(run), "--what", "attributes", "--out", str(tmp_path / "an2")]) == 2


# --------------------------------------------------------------------------- recipes (Table A.5)
def test_recipes_are_registered_with_table_a5_values():
    from diffrep.recipes import get_recipe

    disks = get_recipe("sami/disks").make_config()
    assert (disks.model.encoder, disks.model.convnet.base_channels, disks.model.convnet.channel_mult,
            disks.model.latent_dim, disks.model.kl_weight, disks.model.schedule.kind,
            disks.model.schedule.num_timesteps, disks.train.lr, disks.train.batch_size) == \
        ("convnet", 48, (2, 2), 3, 5e-6, "linear", 400, 6e-3, 512)
    celeba = get_recipe("sami/celeba64").make_config().model
    assert (celeba.encoder, celeba.half_unet.model_channels, celeba.half_unet.channel_mult, celeba.latent_dim,
            celeba.kl_weight, celeba.schedule.kind, celeba.half_unet.bias) == \
        ("half_unet", 64, (1,) * 6, 256, 1e-3, "cosine", False)
    hq = get_recipe("sami/celebahq256-frozen").make_config().model
    assert (hq.half_unet.channel_mult, hq.half_unet.act, hq.latent_dim, hq.kl_weight, hq.freeze_denoiser) == \
        ((2, 2, 2, 2, 1, 1), "silu", 512, 1e-8, True)
    cpu = get_recipe("sami/disks-cpu").make_config()
    assert dataclasses.is_dataclass(cpu) and cpu.data.dataset == "disks"
