"""ParamReL / SepDiff: components, objective, verbs, save/load, config errors."""

import pytest
import torch


from diffrep.config import ConfigError
from diffrep.methods.paramrel import ParamReL, ParamReLConfig, ReverseSample
from diffrep.nn import load_pretrained


from helpers import tiny_paramrel as tiny


def images(kind, n=4, seed=0):
    x = torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return x.sign() if kind == "discrete" else x


@pytest.mark.parametrize("kind,fields", [
    ("discrete", {}), ("discrete", {"encoder": "vanilla"}), ("discrete", {"encoder": "hyper"}),
    ("discrete", {"cond": "infodiff"}), ("discrete", {"cond": "xattn", "xattn_tokens": 2}),
    ("continuous", {}), ("discretised", {"encoder": "hyper", "cond": "xattn", "xattn_tokens": 4}),
    ("discrete", {"K": 3, "bfn": {"time_loss": "discrete", "loss_steps": 8}}),
    ("continuous", {"gamma_mi": 0.5, "lambda_agg": 0.6, "mmd_time_strata": 2}),
    ("discrete", {"encoder_pool": "flatten", "encoder_input": "x"}),
])
def test_loss_shapes_and_gradients_reach_encoder_and_decoder(kind, fields):
    m = tiny(kind, **fields)
    out = m.loss((images(kind), None))
    assert set(out) >= {"loss", "bfn_loss", "bfn_loss_per_dim", "kl", "mmd"}
    out["loss"].backward()
    enc = sum(float(p.grad.abs().sum()) for p in m.encoder.parameters() if p.grad is not None)
    dec = sum(float(p.grad.abs().sum()) for p in m.decoder.parameters() if p.grad is not None)
    assert torch.isfinite(out["loss"]) and enc > 0 and dec > 0
    if fields.get("encoder") == "hyper":
        assert sum(float(p.grad.abs().sum()) for p in m.hyper.parameters() if p.grad is not None) > 0
    z = m.encode(images(kind))
    assert z.shape == (4, 4)


def test_flatten_pool_sees_position_and_mean_pool_does_not():
    """A global-average-pooled encoder sees where a pattern sits only through border effects; the
    flattening head keeps the layout. Two shifted copies of one blob."""
    x = -torch.ones(1, 1, 8, 8)
    x[..., 3:5, 2:4] = 1
    shifted = torch.cat([x, torch.roll(x, 2, dims=3)])
    mean_enc = tiny(encoder_input="x", encoder="vanilla")
    flat_enc = tiny(encoder_input="x", encoder="vanilla", encoder_pool="flatten")
    with torch.no_grad():
        f_mean = mean_enc.encoder.features(shifted)
        f_flat = flat_enc.encoder.features(shifted)
    assert f_flat.shape == (2, 16 * 4 * 4) and f_mean.shape == (2, 16)

    def change(f):
        return float((f[0] - f[1]).norm() / f[0].norm())

    assert change(f_flat) > 0.5 and change(f_flat) > 4 * change(f_mean)


def test_compat_presets_switch_the_public_code_choices():
    from diffrep.recipes import get_recipe
    from diffrep.recipes.paramrel import paramrel_compat

    nb = get_recipe("paramrel/bmnist-notebook").make_config()
    m = nb.model
    assert (m.encoder, m.reduction, m.final, m.z_source) == ("vanilla", "notebook", "sample", "prior_fixed")
    assert m.mmd_weight == 0 and m.bfn.sqrt_beta1 ** 2 == pytest.approx(3.0)
    assert nb.dataset_options["binarize"] == "nonzero"
    assert (nb.train.batch_size, nb.train.lr, nb.train.betas, nb.train.steps) == (512, 3e-4, (0.9, 0.98), 11719)
    ic = paramrel_compat(get_recipe("paramrel/celeba64").make_config(), "iclr25")
    assert (ic.model.encoder_input, ic.model.encoder_net.in_channels, ic.model.decoder_latent) == ("x", 3, "mean")
    assert ic.model.legacy_skip_last_update and ic.model.mmd_on == "mean"
    with pytest.raises(ValueError, match="discrete"):
        paramrel_compat(get_recipe("paramrel/celeba64").make_config(), "notebook")
    with pytest.raises(ValueError, match="preset"):
        paramrel_compat(nb, "amasawa")
    # the preset trains: a tiny discrete model through the iclr25 options
    t = tiny(encoder_input="x", decoder_latent="mean", reduction="paramrel_code", mmd_on="mean", gamma_mi=0.5,
             lambda_agg=0.6)
    out = t.loss((images("discrete"), None))
    assert torch.isfinite(out["loss"])


def test_objective_weights_follow_the_corrected_eq6():
    m = tiny(gamma_mi=0.5, lambda_agg=0.7)
    assert m.config.kl_weight == pytest.approx(0.5) and m.config.mmd_weight == pytest.approx(0.2)
    torch.manual_seed(1)
    out = m.loss((images("discrete"), None))
    want = out["bfn_loss"] + 0.5 * out["kl"] + 0.2 * out["mmd"]
    assert float(out["loss"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    code = tiny(gamma_mi=0.5, lambda_agg=0.7, reduction="paramrel_code")
    torch.manual_seed(1)
    o2 = code.loss((images("discrete"), None))
    want2 = o2["bfn_loss"] / 64 + 0.5 * 4 * o2["kl"] + 0.2 * o2["mmd"]
    assert float(o2["loss"].detach()) == pytest.approx(float(want2.detach()), rel=1e-5)


@pytest.mark.parametrize("K", [2, 3])
def test_notebook_reduction_divides_the_bfn_loss_by_d_times_k(K):
    """The notebooks average L^inf over B x 28 x 28 x K one-hot entries (issue 17 item 7): the
    "notebook" preset's BFN term is bfn_loss / (D K), its KL summed over the batch."""
    from diffrep.recipes.paramrel import paramrel_compat, ParamReLRecipeConfig

    base = tiny(K=K, gamma_mi=0.5, lambda_agg=0.5).config
    cfg = paramrel_compat(ParamReLRecipeConfig(model=base), "notebook").model
    assert cfg.reduction == "notebook" and cfg.mmd_weight == 0
    m = ParamReL(cfg)
    x = (torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * K).floor().long()
    out = m.loss((x, None), generator=torch.Generator().manual_seed(2))
    want = out["bfn_loss"] / (64 * K) + 0.5 * 4 * out["kl"]
    assert float(out["loss"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
    with pytest.raises(ConfigError, match="reduction"):
        tiny("continuous", reduction="notebook")


def test_negative_mmd_weight_is_an_error_unless_allowed():
    with pytest.raises(ConfigError, match="negative"):
        tiny(gamma_mi=0.9, lambda_agg=0.01)
    m = tiny(gamma_mi=0.9, lambda_agg=0.01, allow_negative_mmd_weight=True)
    assert m.config.mmd_weight == pytest.approx(-0.09)


@pytest.mark.parametrize("gamma_mi,lambda_agg", [(1.2, 0.0), (1.0001, 0.01), (2.0, 5.0)])
def test_gamma_mi_above_one_is_rejected(gamma_mi, lambda_agg):
    """1 - gamma_mi < 0 would maximise the KL (issue 17 item 2); allow_negative_mmd_weight does not help."""
    for allow in (False, True):
        with pytest.raises(ConfigError, match=r"'gamma_mi'.*KL weight 1 - gamma_mi"):
            tiny(gamma_mi=gamma_mi, lambda_agg=lambda_agg, allow_negative_mmd_weight=allow)
    with pytest.raises(ConfigError, match=r"'lambda_agg'.*gamma_mi = 0.3, lambda_agg = 0.5"):
        tiny(gamma_mi=0.3, lambda_agg=0.5)
    m = tiny(gamma_mi=1.0, lambda_agg=0.0)  # the boundary: both weights 0
    assert (m.config.kl_weight, m.config.mmd_weight) == (0.0, 0.0)


def test_config_errors_name_fields():
    with pytest.raises(ConfigError, match="xattn_tokens"):
        tiny(cond="xattn", xattn_tokens=3)
    m = tiny()
    with pytest.raises(ConfigError, match="unet.latent_dim"):
        ParamReLConfig(bfn=m.config.bfn, latent_dim=5, encoder_net=m.config.encoder_net, unet=m.config.unet)
    with pytest.raises(ValueError, match="shape"):
        m.encode(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="z must"):
        m.sample(2, z=torch.zeros(3, 4))


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_reverse_sampling_inverse_round_trips(kind):
    """Replaying the reverse chain's sender means forward returns to its start state exactly."""
    m = tiny(kind, steps=6).eval()
    x = images(kind, 2)
    data = m.flow.prepare_data(x)
    rev = m.reverse_sample(x)
    assert isinstance(rev, ReverseSample) and rev.z.shape == (7, 2, 4) and rev.subcode.params.dtype == torch.float64
    # recompute the y's the chain used, then apply the forward update h with them
    from diffrep.bfn.sampler import _accuracy
    from diffrep.bfn.flows import step_times

    times = step_times(6)
    state = m.flow.mean_state(data, 1.0)
    ys, xh = [], (torch.nn.functional.one_hot(data, 2).double() if kind == "discrete" else data.double())
    for s in range(1, 7):
        a = _accuracy(m.flow, times[7 - s], times[6 - s], state)
        y = m.flow.sender_mean(xh, a)
        state = m.flow.inverse_step(state, y, times[6 - s])
        ys.append(y)
        t = torch.full((2,), times[6 - s], dtype=torch.float64)
        xh = m.output(m.decode_net(state, t, rev.z[6 - s]), state, t).mean.double()
    assert torch.allclose(state.params, rev.subcode.params, atol=1e-10)
    from diffrep.ops import bfn as ops

    for y, s in zip(reversed(ys), range(1, 7)):
        st_params = state.params
        if kind == "discrete":
            state = type(state)(ops.discrete_update(st_params, y, log=True), state.t)
        else:
            rho = m.flow.precision(torch.tensor(times[s - 1]))
            alpha = m.flow.precision(torch.tensor(times[s])) - rho
            state = type(state)(ops.continuous_update(st_params, float(rho), y, float(alpha))[0], state.t)
    start = m.flow.mean_state(data, 1.0).params
    assert (state.params - start).abs().max() < 1e-8


def test_verbs_shapes_and_prior_subcode():
    m = tiny("continuous", steps=5).eval()
    x = images("continuous", 2)
    rev = m.reverse_sample(x)
    assert float(m.flow.precision(rev.subcode.t)[0]) == pytest.approx(1.0)
    assert m.reconstruct(x).shape == (2, 1, 8, 8)
    assert m.time_varying(x, (0.9, 0.5)).shape == (2, 2, 1, 8, 8)
    assert m.traverse(x[:1], dims=[0, 3], num_values=5).shape == (2, 5, 1, 8, 8)
    assert m.interpolate(x[:1], x[1:], num=6).shape == (6, 1, 1, 8, 8)
    assert m.attributes_encoding(x, 3, generator=torch.Generator().manual_seed(0)).shape == (3, 2, 1, 8, 8)
    for src in ("encoder", "prior_per_step", "prior_fixed"):
        assert m.sample(3, z_source=src, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError):
        m.traverse(x, dims=[0])


def test_interpolation_endpoints_are_the_reconstructions():
    m = tiny("discrete", steps=4).eval()
    x = images("discrete", 2)
    path = m.interpolate(x[:1], x[1:], num=3)
    assert torch.equal(path[0], m.reconstruct(x[:1])) and torch.equal(path[-1], m.reconstruct(x[1:]))


@pytest.mark.parametrize("fields", [{}, {"encoder": "hyper", "cond": "xattn", "xattn_tokens": 2}])
def test_save_load_roundtrip(tmp_path, fields):
    m = tiny("discretised", **fields).eval()
    for p in m.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    m.save_pretrained(tmp_path)
    m2 = load_pretrained(tmp_path).eval()
    assert isinstance(m2, ParamReL) and m2.config == m.config
    x = images("discretised", 2)
    assert torch.equal(m.encode(x), m2.encode(x))
    assert torch.allclose(m.reconstruct(x), m2.reconstruct(x))


def test_reconstruction_loss_checks_the_images_as_loss_does():
    # it went straight to the flow: a wrong-size or NaN batch failed deep in the network or gave NaN
    m = tiny("continuous")
    size = m.config.bfn.image_size
    with pytest.raises(ValueError, match=r"^ParamReL.reconstruction_loss: x must have shape"):
        m.reconstruction_loss(torch.zeros(2, m.config.bfn.channels, size + 2, size + 2))
    with pytest.raises(ValueError, match=r"^ParamReL.reconstruction_loss: x holds NaN"):
        m.reconstruction_loss(torch.full((2, m.config.bfn.channels, size, size), float("nan")))
