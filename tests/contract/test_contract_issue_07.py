"""Contract of issue 7 (ParamReL / SepDiff on Bayesian Flow Networks end to end, and the quickstart), called by
the paths the issue gives, with issue 16's moves (recipes in ``diffrep.recipes.paramrel``) and issue 17's
corrections (``diffrep.bfn.quantize``, ``gamma_mi > 1`` refused, cross-attention at every level by default,
``traversal_centroid_shift`` in metrics.json) where they touch these items.

Deep value tests live elsewhere and are named per item: tests/bfn/test_loss_values.py (every BFN loss term),
tests/methods/test_paramrel_values.py (each objective term, AdaGN Eq. 12, the verbs against hand-built
latents), tests/methods/test_paramrel_trained.py (reverse-sampling + decoding beats unconditional samples after
training; the CLI verbs), tests/bfn/test_quantize.py. Here each public name is called once and its stated
semantics checked against a closed form written in the test."""

import json
import math
import typing

import numpy as np
import pytest
import torch

from helpers import perturbed, tiny_bfn, tiny_paramrel

KINDS = ("continuous", "discretised", "discrete")


def _images(kind: str, n: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 1, 8, 8), generator=g) * 2 - 1
    return x.sign() if kind == "discrete" else x


# -- Bayesian Flow Networks ----------------------------------------------------------------------------------------
def test_bfn_public_names_and_data_types():
    from diffrep.bfn import (BFN, BFNConfig, BFNDataConfig, continuous_time_loss, discrete_time_loss, quantize,
                             reconstruction_loss, reverse_chain, sample)

    assert all(callable(f) for f in (BFN, BFNConfig, continuous_time_loss, discrete_time_loss, quantize,
                                     reconstruction_loss, reverse_chain, sample))

    hints = typing.get_type_hints(BFNDataConfig)
    assert set(typing.get_args(hints["data"])) == set(KINDS)
    assert set(typing.get_args(hints["time_loss"])) == {"continuous", "discrete"}
    assert BFNDataConfig().noise_pred is True  # ParamReL Eq. 10's parameterisation by default


@pytest.mark.parametrize("kind", KINDS)
def test_each_bfn_trains_and_samples(kind):
    torch.manual_seed(0)
    m = perturbed(tiny_bfn(kind))
    x = _images(kind)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(0))
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    s = m.sample(2, generator=torch.Generator().manual_seed(0), num_steps=3)
    assert s.shape == (2, 1, 8, 8) and float(s.abs().max()) <= 1
    if kind == "discrete":
        assert set(s.unique().tolist()) <= {-1.0, 1.0}
    if kind == "discretised":  # samples sit on the 16 bin centres
        k = (((s + 1) * 16 - 1) / 2).round()  # centre (2k + 1)/16 - 1, k = 0..15
        assert torch.allclose(s, (2 * k + 1) / 16 - 1, atol=1e-6)


def test_sampler_makes_n_updates_then_the_final_call():
    """n network calls at t_{i-1} = (i - 1)/n, each followed by an update, then one call at t = 1 (the final
    step the public code skipped)."""
    from diffrep.bfn import sample

    m = tiny_bfn("discrete")
    told = []

    def predict(state, t):
        told.append(float(t[0]))
        return m.predict(state, t)

    n = 4
    x, state = sample(m.flow, m.output, predict, m.flow.prior((2, 1, 8, 8)), n, generator=torch.Generator())
    assert told == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.allclose(state.t, torch.ones(2, dtype=torch.float64))


def test_continuous_and_discrete_time_loss_closed_forms():
    """L^inf: -ln(sigma1) sigma1^(-2t) ||x - x_hat||^2 with the noise-prediction x_hat = mu/gamma -
    sqrt((1 - gamma)/gamma) eps_hat (continuous data, delta output), and K beta(1) t ||e_x - e_hat||^2
    (discrete data, Bernoulli output for K = 2); summed over the data dimensions."""
    from diffrep.bfn import continuous_time_loss, discrete_time_loss

    g = torch.Generator().manual_seed(2)
    m = tiny_bfn("continuous")
    s1 = m.config.bfn.sigma1
    x = _images("continuous")
    t = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    state = m.flow.sample(x, t, g)
    eps = torch.randn(x.shape, generator=g) * 0.1
    got = continuous_time_loss(m.flow, m.output, eps, x, state)
    gam = (1 - s1 ** (2 * t)).reshape(-1, 1, 1, 1)
    x_hat = (state.params.double() / gam - ((1 - gam) / gam).sqrt() * eps.double()).clamp(-1, 1)
    want = -math.log(s1) * s1 ** (-2 * t) * (x.double() - x_hat).pow(2).sum((1, 2, 3))
    assert torch.allclose(got.double(), want, rtol=1e-4)

    # L^n (BFN Eq. 96): n alpha_i / 2 ||x - x_hat||^2, alpha_i = sigma1^(-2i/n) (1 - sigma1^(2/n)), i = t n + 1
    n, tg = 5, torch.tensor([0.0, 0.4, 0.8], dtype=torch.float64)
    state = m.flow.sample(x, tg, g)
    got = discrete_time_loss(m.flow, m.output, eps, x, state, n)
    i = (tg * n + 1).reshape(-1, 1, 1, 1)
    gam = (1 - s1 ** (2 * tg)).reshape(-1, 1, 1, 1)
    x_hat = torch.where(gam > 0, state.params.double() / gam.clamp_min(1e-300)
                        - ((1 - gam) / gam.clamp_min(1e-300)).sqrt() * eps.double(), torch.zeros(()))
    alpha = s1 ** (-2 * i / n) * (1 - s1 ** (2 / n))
    want = (n * alpha / 2 * (x.double() - x_hat.clamp(-1, 1)).pow(2)).sum((1, 2, 3))
    assert torch.allclose(got.double(), want, rtol=1e-4)

    d = tiny_bfn("discrete")
    xd = _images("discrete")
    state = d.flow.sample(xd, t, g)
    logit = torch.randn(xd.shape, generator=g)
    got = continuous_time_loss(d.flow, d.output, logit, d.flow.prepare_data(xd), state)
    p1, e1 = torch.sigmoid(logit.double()), (xd > 0).double()
    want = 2 * d.flow.beta1 * t * (2 * (e1 - p1).pow(2)).sum((1, 2, 3))  # K = 2: both one-hot entries differ
    assert torch.allclose(got.double(), want, rtol=1e-5)


def test_quantize_to_bin_centres_and_the_discretised_flow_applies_it():
    """Issue 17: ``diffrep.bfn.quantize(x, num_bins)`` snaps to (2k - 1)/K - 1; pixel 0 at K = 256 is -1 + 1/256."""
    from diffrep.bfn import quantize

    px = torch.arange(256, dtype=torch.float32) / 127.5 - 1
    q = quantize(px, 256)
    assert torch.allclose(q.double(), (2 * torch.arange(256, dtype=torch.float64) + 1) / 256 - 1, atol=1e-7)
    assert float(q[0]) == pytest.approx(-1 + 1 / 256)
    x = torch.tensor([-1.0, -0.74, 0.0, 0.9])
    assert quantize(x, 4).tolist() == [-0.75, -0.75, 0.25, 0.75]
    m = tiny_bfn("discretised")  # 16 bins
    assert torch.equal(m.flow.prepare_data(x.reshape(1, 1, 2, 2)), quantize(x, 16).reshape(1, 1, 2, 2))


def _verbs(command: str) -> set:
    from diffrep.cli import build_parser

    par = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return set(next(a for a in par._actions if a.choices and "sample" in a.choices).choices)


def test_bfn_trains_and_samples_from_the_cli():
    """``diffrep bfn train|sample`` (run end to end in tests/bfn/test_model_cli.py) and the bfn/ recipes."""
    from diffrep.recipes import list_recipes

    assert {"train", "sample"} <= _verbs("bfn")
    assert {"bfn/digits", "bfn/mnist-discrete", "bfn/cifar10-discretised"} <= {r.name for r in list_recipes()}


# -- ParamReL / SepDiff: configuration -----------------------------------------------------------------------------
def test_paramrel_config_fields_and_the_papers_defaults():
    from diffrep.methods.paramrel import ParamReLConfig

    c = ParamReLConfig()
    hints = typing.get_type_hints(ParamReLConfig)

    def values(name):
        return set(typing.get_args(hints[name]))

    assert values("encoder") == {"vanilla", "progressive", "hyper"}
    assert {"adagn_eq12", "xattn"} <= values("cond")
    assert (c.encoder, c.cond, c.xattn_levels) == ("progressive", "adagn_eq12", "all")
    assert (c.gamma_mi, c.lambda_agg) == (1.0, 0.01)  # SepDiff Table 2
    assert (c.kl_weight, c.mmd_weight) == (0.0, pytest.approx(0.01))
    assert (c.encoder_input, c.reduction) == ("theta", "per_example")  # the compatibility options are off
    assert "x" in values("encoder_input") and "paramrel_code" in values("reduction")


def test_sign_flipping_weights_are_refused_naming_the_field():
    from diffrep.config import ConfigError
    from diffrep.methods.paramrel import ParamReLConfig

    with pytest.raises(ConfigError, match="lambda_agg"):  # SepDiff's (0.9, 0.01): MMD weight -0.09
        ParamReLConfig(gamma_mi=0.9, lambda_agg=0.01)
    assert ParamReLConfig(gamma_mi=0.9, lambda_agg=0.01, allow_negative_mmd_weight=True).mmd_weight < 0
    with pytest.raises(ConfigError, match="gamma_mi"):  # issue 17: a negative KL weight, whatever the flag
        ParamReLConfig(gamma_mi=1.2, lambda_agg=0.0, allow_negative_mmd_weight=True)


def test_cross_attention_conditions_every_level_by_default():
    """SepDiff Eq. 1 (issue 17 item 4): cond="xattn" puts cross-attention on z's tokens at every level."""
    from diffrep.bfn import BFNDataConfig
    from diffrep.methods.paramrel import decoder_unet

    b = BFNDataConfig(data="discrete", image_size=16, channels=1)
    u = decoder_unet(b, 8, "xattn", 4, model_channels=8, channel_mult=(1, 2, 2), num_groups=4)
    assert set(u.attention_resolutions) == {16, 8, 4} and u.middle_attention and u.context_dim == 2
    assert u.latent_dim == 0
    u = decoder_unet(b, 8, "xattn", 4, "bottleneck", model_channels=8, channel_mult=(1, 2, 2), num_groups=4)
    assert u.attention_resolutions == () and u.middle_attention
    assert decoder_unet(b, 8, "adagn_eq12", model_channels=8, channel_mult=(1, 2), num_groups=4).latent_dim == 8


# -- ParamReL: model, objective, variants ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind,encoder,cond", [("discrete", "progressive", "adagn_eq12"),
                                               ("discrete", "vanilla", "xattn"),
                                               ("discretised", "hyper", "adagn_eq12"),
                                               ("continuous", "progressive", "xattn")])
def test_variants_encoders_and_conditioning_train(kind, encoder, cond):
    """ParamReL_d (discrete) and ParamReL_c (continuous / discretised); every encoder and both conditionings."""
    m = perturbed(tiny_paramrel(kind, encoder=encoder, cond=cond))
    x = _images(kind)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(0))
    assert {"loss", "bfn_loss", "bfn_loss_per_dim", "kl", "mmd"} <= set(out)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    state = m.flow.sample(m.flow.prepare_data(x), torch.full((3,), 0.5, dtype=torch.float64))
    mean, logvar = m.posterior(state, state.t)  # the Gaussian posterior q(z_t | theta_t, t)
    assert mean.shape == logvar.shape == (3, m.config.latent_dim)


def test_objective_weights_and_the_fused_mmd(monkeypatch):
    """L = mean_b [l_bfn + (1 - gamma_MI) KL] + (gamma_MI + lambda_agg - 1) MMD^2, the MMD through the fused
    kernel diffrep.ops.mmd.mmd2 with InfoVAE's bandwidth h = |z|^2 (bandwidth None); per-term values:
    tests/methods/test_paramrel_values.py."""
    import diffrep.ops.mmd as mmd_mod

    calls = []
    real = mmd_mod.mmd2

    def spy(x, y, **kw):
        calls.append(kw)
        calls[-1]["value"] = real(x, y, **kw)
        return calls[-1]["value"]

    monkeypatch.setattr(mmd_mod, "mmd2", spy)
    m = perturbed(tiny_paramrel("discrete", gamma_mi=0.6, lambda_agg=0.7))
    out = m.loss(_images("discrete"), step=0, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1 and calls[0]["kernel"] == "rbf" and calls[0]["bandwidth"] is None
    assert float(out["mmd"]) == pytest.approx(float(calls[0]["value"].detach()))
    want = out["bfn_loss"] + (1 - 0.6) * out["kl"] + (0.6 + 0.7 - 1) * out["mmd"]
    assert float(out["loss"].detach()) == pytest.approx(float(want), rel=1e-5)
    code = perturbed(tiny_paramrel("discrete", gamma_mi=0.6, lambda_agg=0.7, reduction="paramrel_code"))
    out = code.loss(_images("discrete"), step=0, generator=torch.Generator().manual_seed(0))
    D, B = code.config.bfn.num_dims, 3  # the public code: BFN loss over B x D, KL summed over B x |z|
    want = out["bfn_loss"] / D + (1 - 0.6) * out["kl"] * B + (0.6 + 0.7 - 1) * out["mmd"]
    assert float(out["loss"].detach()) == pytest.approx(float(want), rel=1e-5)


def test_encoder_on_x_compatibility_option():
    m = perturbed(tiny_paramrel("continuous", encoder_input="x", z_source="prior_fixed"))
    x = _images("continuous")
    z = m.encode(x)
    assert z.shape == (3, m.config.latent_dim)
    assert not torch.allclose(z, m.encode(x.flip(0)).flip(0) + 1)
    with pytest.raises(ValueError, match="encoder_input='x'"):
        m.posterior(m.flow.prior((3, 1, 8, 8)), torch.zeros(3, dtype=torch.float64))


# -- ParamReL: verbs -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return perturbed(tiny_paramrel("discrete", steps=3)).eval()


@pytest.mark.parametrize("source", ["encoder", "prior_per_step", "prior_fixed"])
def test_sampling_with_each_z_source(model, source):
    s = model.sample(2, generator=torch.Generator().manual_seed(0), z_source=source)
    assert s.shape == (2, 1, 8, 8) and set(s.unique().tolist()) <= {-1.0, 1.0}


def test_sampling_with_given_latents_is_deterministic_in_the_generator(model):
    z = torch.randn(2, model.config.latent_dim)
    a = model.sample(2, generator=torch.Generator().manual_seed(3), z=z)
    b = model.sample(2, generator=torch.Generator().manual_seed(3), z_source="given", z=z)
    assert torch.equal(a, b)


def test_reverse_sampling_reconstruction_and_the_exact_inverse_update(model):
    """Reverse-sampling (SepDiff Eq. 3 / ParamReL Eq. 5) returns z [n + 1, B, L] and the subcode at t = 0;
    the inverse Bayesian updates undo the updates exactly."""
    from diffrep.methods.paramrel import ReverseSample
    from diffrep.ops.bfn import (continuous_update, continuous_update_inverse, discrete_update,
                                 discrete_update_inverse)

    x = _images("discrete")
    rev = model.reverse_sample(x)
    assert isinstance(rev, ReverseSample) and rev.z.shape == (4, 3, model.config.latent_dim) and rev.num_steps == 3
    assert torch.all(rev.subcode.t == 0)
    assert model.reconstruct(x).shape == x.shape
    assert torch.equal(model.reconstruct(x), model.decode(rev))
    g = torch.Generator().manual_seed(4)
    mu, y = torch.randn(5, 6, generator=g, dtype=torch.float64), torch.randn(5, 6, generator=g, dtype=torch.float64)
    mu2, rho2 = continuous_update(mu, 3.0, y, 2.0)
    assert rho2 == pytest.approx(5.0) and torch.allclose(mu2, (3 * mu + 2 * y) / 5)
    back, rho = continuous_update_inverse(mu2, rho2, y, 2.0)
    assert rho == pytest.approx(3.0) and torch.allclose(back, mu, atol=1e-12)
    theta = torch.log_softmax(torch.randn(5, 6, 3, generator=g, dtype=torch.float64), -1)
    yd = torch.randn(5, 6, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(discrete_update_inverse(discrete_update(theta, yd, log=True), yd, log=True), theta,
                          atol=1e-12)


def test_time_varying_generation_fixes_z_of_one_time(model):
    x = _images("discrete", 2)
    tv = model.time_varying(x, (0.9, 0.8, 0.7))
    assert tv.shape == (3, 2, 1, 8, 8)
    rev = model.reverse_sample(x)
    # t* = 0.8 with n = 3 steps is z index round(2.4) = 2, held at every step
    assert torch.equal(tv[1], model.decode(_z_held_at(rev, 2)))


def _z_held_at(rev, index: int):
    """``rev`` with the latent of step ``index`` at every step (the time-varying task by hand)."""
    from diffrep.methods.paramrel import ReverseSample

    return ReverseSample(rev.z[index].expand_as(rev.z).clone(), rev.subcode)


def test_attributes_encoding_interpolation_and_traversal(model):
    x = _images("discrete", 2)
    assert model.attributes_encoding(x, 3, generator=torch.Generator().manual_seed(0)).shape == (3, 2, 1, 8, 8)
    inter = model.interpolate(x[:1], x[1:], num=6)  # lerp of the latents, slerp of the subcode
    assert inter.shape == (6, 1, 1, 8, 8)
    assert torch.equal(inter[0], model.reconstruct(x[:1])) and torch.equal(inter[-1], model.reconstruct(x[1:]))
    L = model.config.latent_dim
    trav = model.traverse(x[:1])
    assert trav.shape == (L, 7, 1, 8, 8)  # every dimension over 7 values of [-3, 3]
    rev = model.reverse_sample(x[:1])
    one = model.decode(rev, z_override=([1], torch.full((1, 1), -3.0)))  # dimension 1 held at -3 at every step
    assert torch.equal(trav[1, 0], one[0])


def test_verbs_refuse_bad_arguments_naming_them(model):
    """Each verb names the argument (before the audit: torch.stack / IndexError / lerp errors, or a float
    dimension silently truncated by int())."""
    x = _images("discrete", 2)
    rev = model.reverse_sample(x)
    bad = [(lambda: model.attributes_encoding(x, 0), "num_subcodes"),
           (lambda: model.traverse(x[:1], num_values=0), "num_values"),
           (lambda: model.traverse(x[:1], values=[]), "values"),
           (lambda: model.traverse(x[:1], values=[float("nan")]), "values"),
           (lambda: model.traverse(x[:1], dims=[1.5]), "dims"),
           (lambda: model.traverse(x[:1], dims=[]), "dims"),
           (lambda: model.time_varying(x, (0.5, 2.0)), "times"),
           (lambda: model.interpolate(x[:1], x), "x_a and x_b"),
           (lambda: model.decode(rev, z_override=([9], torch.zeros(2, 1))), "z_override dims"),
           (lambda: model.decode(rev, z_override=([1], torch.zeros(3, 1))), "z_override values"),
           (lambda: model.decode(rev, fixed_time=1.5), "fixed_time")]
    for call, name in bad:
        with pytest.raises(ValueError, match=name):
            call()
    with pytest.raises(TypeError, match="ReverseSample"):
        model.decode(x)


# -- recipes -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,data,bins_or_classes,z,batch,lr,mult,base,size", [
    ("paramrel/bmnist", "discrete", 2, 32, 128, 1e-4, (1, 2, 4), 32, 28),
    ("paramrel/bfashionmnist", "discrete", 2, 32, 128, 1e-4, (1, 2, 4), 32, 28),
    ("paramrel/celeba64", "discretised", 256, 64, 64, 2e-4, (1, 2, 2, 2), 64, 64),
    ("paramrel/shapes3d64", "discretised", 256, 32, 64, 2e-4, (1, 2, 2, 2), 64, 64),
    ("paramrel/cifar10", "discretised", 16, 32, 128, 1e-4, (1, 2, 4), 32, 32),
])
def test_table5_recipes(name, data, bins_or_classes, z, batch, lr, mult, base, size):
    from diffrep.recipes import get_recipe

    cfg = get_recipe(name).make_config()
    b = cfg.model.bfn
    assert (b.data, b.image_size, cfg.model.latent_dim) == (data, size, z)
    assert (b.num_classes if data == "discrete" else b.num_bins) == bins_or_classes
    assert (cfg.train.batch_size, cfg.train.lr) == (batch, lr)
    assert (cfg.model.unet.channel_mult, cfg.model.unet.model_channels) == (mult, base)
    assert (cfg.model.gamma_mi, cfg.model.lambda_agg) == (1.0, 0.01)


def test_cpu_recipes_and_compat_presets():
    from diffrep.recipes import get_recipe
    from diffrep.recipes.paramrel import paramrel_compat

    ds = get_recipe("paramrel/dsprites").make_config()
    assert (ds.model.bfn.data, ds.model.bfn.num_classes, ds.dataset) == ("discrete", 2, "dsprites")
    dg = get_recipe("paramrel/digits").make_config()
    assert (dg.model.bfn.data, dg.model.bfn.num_classes, dg.dataset) == ("discrete", 2, "digits")
    nb = paramrel_compat(get_recipe("paramrel/bmnist").make_config(), "notebook")
    assert (nb.model.reduction, nb.model.encoder) == ("notebook", "vanilla")
    assert paramrel_compat(get_recipe("paramrel/celeba64").make_config(), "iclr25").model.encoder_input == "x"


def test_paramrel_cli_verbs():
    """Run on a trained model in tests/methods/test_paramrel_trained.py."""
    assert {"train", "sample", "reconstruct", "traverse", "time-varying", "interpolate", "attributes-encoding",
            "eval"} <= _verbs("paramrel")


# -- the main job --------------------------------------------------------------------------------------------------
def test_quickstart_defaults_and_metric_list():
    from diffrep.cli import build_parser
    from diffrep.cli.quickstart import METRICS

    args = build_parser().parse_args(["quickstart"])
    assert (args.recipe, args.device, args.out) == ("paramrel/dsprites", "auto", "runs/quickstart")
    assert set(METRICS) == {"mig", "dci", "factor_vae", "sap", "modularity_explicitness", "infomec"}


def test_quickstart_writes_its_figures_metrics_and_table(tmp_path, capsys):
    """At a tiny size (the full run is 8 minutes): the figures, metrics.json with the traversal record and the
    printed table (metrics at quick sizes: the slow test below and test_paramrel_trained.py)."""
    from PIL import Image

    from diffrep.cli import main

    out = tmp_path / "qs"
    assert main(["quickstart", "--recipe", "paramrel/digits", "--steps", "1", "--sample-steps", "1", "--eval", "none",
                 "--out", str(out)]) == 0
    for f in ("reconstructions.png", "samples.png", "traversals.png", "time_varying.png", "model/config.json"):
        assert (out / f).is_file(), f
    assert Image.open(out / "reconstructions.png").size[1] >= 2 * 4 * 16  # inputs and reconstructions, >= 4x
    rec = json.loads((out / "metrics.json").read_text())
    assert rec["recipe"] == "paramrel/digits" and rec["steps"] == 1
    assert sorted(rec["traversal_centroid_shift"]) == [f"z{d}" for d in range(8)]
    printed = capsys.readouterr()
    assert "ParamReL quickstart summary" in printed.out and "traversal moves x" in printed.out
    assert "step 1/1" in printed.err  # the training progress line


@pytest.mark.slow
def test_quickstart_metrics_json_holds_the_issue_metrics(tmp_path):
    from diffrep.cli import main

    out = tmp_path / "qs"
    assert main(["quickstart", "--steps", "2", "--sample-steps", "1", "--out", str(out)]) == 0
    scores = json.loads((out / "metrics.json").read_text())["metrics"]["scores"]
    assert {"mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test", "factor_vae_eval", "sap",
            "modularity", "infom", "infoe", "infoc"} <= set(scores)
    assert all(np.isfinite(v) for v in scores.values())
