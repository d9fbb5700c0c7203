"""ParamReL / SepDiff maths against independent computations (issue 17, "Tests that catch wrong maths").

Each term of the objective is recomputed from the quantities the model used (captured with spies), by
the papers' formulas written out here: the Gaussian KL (closed form), InfoVAE's MMD (biased V-statistic,
kernel exp(-||a - b||^2 / |z|^2)), the BFN L^inf (BFN Eq. 101 and 205), the nested AdaGN of ParamReL
Eq. 12, and the verbs (time-varying generation, traversal) against decodings built by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

import diffrep.ops.mmd as mmd_ops
from diffrep.methods import paramrel_strata
from diffrep.methods.paramrel import ReverseSample
from diffrep.nn.layers import ResBlock

from helpers import perturbed as _perturbed
from helpers import tiny_paramrel as tiny

G = torch.Generator().manual_seed




def _images(kind, n, seed=0):
    x = torch.rand(n, 1, 8, 8, generator=G(seed)) * 2 - 1
    return x.sign() if kind == "discrete" else x


def _capture(m, monkeypatch):
    rec = {"post": [], "dec": [], "mmd": []}
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        rec["post"].append((state, t, out[0].detach(), out[1].detach()))
        return out

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        rec["dec"].append((state, t, z.detach(), out if isinstance(out, tuple) else out.detach()))
        return out

    real = mmd_ops.mmd2

    def spy_mmd(x, y, **kw):
        rec["mmd"].append((x.detach(), y.detach()))
        return real(x, y, **kw)

    real_strata = paramrel_strata._stratified_mmd2

    def spy_strata(x, y, strata, num_strata, **kw):  # mmd_time_strata > 1: each bin's pairs, bins of >= 2 codes
        for g in range(num_strata):
            if int((strata == g).sum()) >= 2:
                rec["mmd"].append((x[strata == g].detach(), y[strata == g].detach()))
        return real_strata(x, y, strata, num_strata, **kw)

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    monkeypatch.setattr(mmd_ops, "mmd2", spy_mmd)
    monkeypatch.setattr(paramrel_strata, "_stratified_mmd2", spy_strata)
    return rec


def _kl(mean, logvar):
    """KL(N(m, e^lv) || N(0, 1)) per example, written out: 1/2 sum(m^2 + e^lv - lv - 1)."""
    return 0.5 * (mean.double() ** 2 + logvar.double().exp() - logvar.double() - 1).sum(1)


def _mmd_infovae(a, b):
    """Biased V-statistic with k(u, v) = exp(-||u - v||^2 / d^2), d = latent dimension (InfoVAE)."""
    a, b = a.double(), b.double()
    h = a.shape[1] ** 2

    def k(u, v):
        return torch.exp(-((u[:, None, :] - v[None, :, :]) ** 2).sum(-1) / h).mean()

    return k(a, a) + k(b, b) - 2 * k(a, b)


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_every_objective_term_matches_an_independent_computation(kind, monkeypatch):
    m = _perturbed(tiny(kind, gamma_mi=0.5, lambda_agg=0.7))
    rec = _capture(m, monkeypatch)
    x = _images(kind, 6, seed=1)
    out = m.loss((x, None), generator=G(2))
    (state, t, mean, logvar), = rec["post"]
    # the encoder reads theta_t at the state's own time (network time t x time_scale), not t = 0
    raw = m.encoder.gaussian_params(m.flow.network_input(state), state.t.float() * 1000.0).detach()
    assert torch.allclose(mean, raw[:, :4], atol=1e-6) and torch.allclose(logvar, raw[:, 4:], atol=1e-6)
    assert torch.equal(t, state.t) and bool((t > 0).all())
    # KL: closed form, batch mean
    assert float(out["kl"]) == pytest.approx(float(_kl(mean, logvar).mean()), rel=1e-5)
    # MMD: the sampled z against a N(0, I) draw, by the formula
    (z_mmd, prior), = rec["mmd"]
    (_, _, z_dec, net_out), = [r for r in rec["dec"]]
    assert torch.equal(z_mmd, z_dec)  # mmd_on="sample": the z the decoder read
    assert float(out["mmd"]) == pytest.approx(float(_mmd_infovae(z_mmd, prior)), rel=1e-4, abs=1e-7)
    # BFN L^inf from the decoder's output, written out
    tt = state.t.double().reshape(-1, 1, 1, 1)
    if kind == "continuous":
        s1 = m.config.bfn.sigma1
        g = 1 - s1 ** (2 * tt)
        x_hat = (state.params.double() / g - torch.sqrt((1 - g) / g) * net_out.double()).clamp(-1, 1)
        l_bfn = (-math.log(s1) * s1 ** (-2 * tt) * (x.double() - x_hat) ** 2).reshape(6, -1).sum(1)
    else:
        p1 = torch.sigmoid(net_out.double())
        e_x = (x > 0).double()
        beta1 = m.config.bfn.sqrt_beta1 ** 2
        l_bfn = (2 * beta1 * tt * 2 * (e_x - p1) ** 2).reshape(6, -1).sum(1)  # K beta(1) t ||e_x - e_hat||^2
    assert float(out["bfn_loss"]) == pytest.approx(float(l_bfn.mean()), rel=1e-4)
    assert float(out["bfn_loss_per_dim"]) == pytest.approx(float(l_bfn.mean()) / 64, rel=1e-4)
    # composition (corrected Eq. 6): mean_b (L_b + (1 - gamma) KL_b) + (gamma + lambda - 1) MMD
    want = l_bfn.mean() + 0.5 * _kl(mean, logvar).mean() + 0.2 * _mmd_infovae(z_mmd, prior)
    assert float(out["loss"].detach()) == pytest.approx(float(want), rel=1e-4)


def test_reparameterised_z_has_the_posterior_spread(monkeypatch):
    """z = mean + exp(logvar / 2) eps: with logvar fixed at 2 (head weights zeroed), (z - mean)/e
    is standard normal."""
    m = tiny("continuous", latent=8, gamma_mi=0.5, lambda_agg=0.7)
    with torch.no_grad():
        m.encoder.head.weight[8:].zero_()
        m.encoder.head.bias[8:].fill_(2.0)
    rec = _capture(m, monkeypatch)
    m.loss((_images("continuous", 64, seed=3), None), generator=G(4))
    (_, _, mean, logvar), = rec["post"]
    assert torch.allclose(logvar, torch.full_like(logvar, 2.0))
    eps = (rec["dec"][0][2] - mean) / math.e
    assert abs(float(eps.mean())) < 0.15 and 0.85 < float(eps.std()) < 1.15


def test_encoder_logvar_init_sets_the_head_bias():
    m = tiny(encoder_logvar_init=-3.0)
    assert torch.equal(m.encoder.head.bias[4:], torch.full((4,), -3.0))


def test_encode_is_the_posterior_mean_at_t1_of_the_noise_free_state():
    m = _perturbed(tiny("continuous"))
    x = _images("continuous", 3, seed=5)
    s1 = m.config.bfn.sigma1
    mu1 = (1 - s1 ** 2) * x  # gamma(1) x
    want = m.encoder.gaussian_params(mu1, torch.full((3,), 1000.0))[:, :4]
    assert torch.allclose(m.encode(x), want, atol=1e-5)
    at0 = m.encoder.gaussian_params(mu1, torch.zeros(3))[:, :4]
    assert not torch.allclose(want, at0, atol=1e-3)  # the progressive encoder does read t


def _groupnorm(h, gn):
    return F.group_norm(h, gn.num_groups, gn.weight, gn.bias, gn.eps)


@pytest.mark.parametrize("cond", ["adagn_eq12", "infodiff"])
def test_adagn_nesting_matches_eq12_and_infodiffusion(cond):
    """ParamReL Eq. 12: AGN(h, z, t) = (1 + s_t) GN((1 + s_z) GN(h) + b_z) + b_t; InfoDiffusion:
    ((1 + s_t) GN(h) + b_t)(1 + s_z) + b_z."""
    torch.manual_seed(0)
    blk = ResBlock(8, 8, 16, latent_dim=3, latent_cond=cond, num_groups=4)
    _perturbed(blk, 0.3)
    x, emb, z = torch.randn(2, 8, 4, 4), torch.randn(2, 16), torch.randn(2, 3)
    h = blk.in_conv(F.silu(_groupnorm(x, blk.in_norm)))
    s_t, b_t = blk.emb_layers(emb)[:, :, None, None].chunk(2, 1)
    s_z, b_z = blk.z_layers(z)[:, :, None, None].chunk(2, 1)
    g = _groupnorm(h, blk.out_norm)
    if cond == "adagn_eq12":
        a = (1 + s_t) * _groupnorm((1 + s_z) * g + b_z, blk.z_norm) + b_t
    else:
        a = ((1 + s_t) * g + b_t) * (1 + s_z) + b_z
    want = x + blk.out_conv(F.silu(a))
    assert torch.allclose(blk(x, emb, z), want, atol=1e-5)


def _rev_model():
    m = _perturbed(tiny("continuous", steps=4), 0.2)
    return m.eval()


def test_time_varying_generation_fixes_z_at_its_time():
    m = _rev_model()
    x = _images("continuous", 2, seed=6)
    out = m.time_varying(x, (0.75, 0.25))
    rev = m.reverse_sample(x)
    for k, t_star in enumerate((0.75, 0.25)):
        fixed = ReverseSample(rev.z[round(t_star * 4)].expand_as(rev.z).clone(), rev.subcode)
        assert torch.allclose(out[k], m.decode(fixed), atol=1e-5)
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    assert not torch.allclose(out[0], m.decode(rev), atol=1e-4)


def test_traversal_sets_the_latent_at_every_step():
    m = _rev_model()
    x = _images("continuous", 1, seed=7)
    vals = [-2.0, 0.5, 3.0]
    grid = m.traverse(x, dims=[1, 3], values=vals)
    rev = m.reverse_sample(x)
    for r, d in enumerate((1, 3)):
        for c, v in enumerate(vals):
            z = rev.z.clone()
            z[:, :, d] = v
            assert torch.allclose(grid[r, c], m.decode(ReverseSample(z, rev.subcode))[0], atol=1e-5)
    assert not torch.allclose(grid[0, 0], grid[0, 2], atol=1e-4)


def test_mmd_strata_mean_and_decoder_latent_options(monkeypatch):
    """mmd_time_strata = G averages per-time-bin MMDs over bins with >= 2 examples; mmd_on="mean" and
    decoder_latent="mean" hand the posterior mean to the MMD and the decoder."""
    m = _perturbed(tiny("continuous", gamma_mi=0.5, lambda_agg=0.7, mmd_time_strata=2, mmd_on="mean",
                        decoder_latent="mean"))
    rec = _capture(m, monkeypatch)
    out = m.loss((_images("continuous", 8, seed=8), None), generator=G(9))
    (state, t, mean, _), = rec["post"]
    assert torch.allclose(rec["dec"][0][2], mean)
    bins = (t * 2).long().clamp(max=1)
    groups = [g for g in range(2) if int((bins == g).sum()) >= 2]
    assert len(rec["mmd"]) == len(groups) and len(groups) >= 1
    want = torch.stack([_mmd_infovae(a, b) for a, b in rec["mmd"]]).mean()
    for (a, _), g in zip(rec["mmd"], groups):
        assert torch.allclose(a, mean[bins == g])
    assert float(out["mmd"]) == pytest.approx(float(want), rel=1e-4, abs=1e-7)


def test_reconstruction_loss_reads_t1_and_a_draw_from_the_posterior(monkeypatch):
    """L^r = -ln p_O(x | psi(theta_1, z_1)), theta_1 ~ p_F(. | x; 1) and z_1 ~ q(z | theta_1, 1) (SepDiff Eq. 4's
    E_{q(z_0, theta_0)}): z_1 = mean + e^(logvar / 2) eps with eps the generator's draw after theta_1's."""
    m = _perturbed(tiny("discrete", report_reconstruction=True))
    x = _images("discrete", 3, seed=10)
    rec = _capture(m, monkeypatch)
    got = m.reconstruction_loss(x, G(11))
    (state, t, mean, logvar), = rec["post"]
    (_, t_dec, z, logits), = rec["dec"]
    g = G(11)
    m.flow.sample(m.flow.prepare_data(x), 1.0, g)
    eps = torch.randn(mean.shape, generator=g)
    assert bool((t == 1).all()) and torch.allclose(z, mean + torch.exp(0.5 * logvar) * eps, atol=1e-6)
    p1 = torch.sigmoid(logits.double())
    want = -torch.where(x > 0, p1, 1 - p1).log().reshape(3, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-5)


def test_sampling_z_sources(monkeypatch):
    m = _perturbed(tiny("continuous", steps=3)).eval()
    rec = _capture(m, monkeypatch)
    zs = {}
    post = {}
    for src in ("prior_fixed", "prior_per_step", "encoder_mean", "encoder"):
        rec["dec"].clear()
        rec["post"].clear()
        m.sample(2, z_source=src, generator=G(12))
        zs[src] = [r[2] for r in rec["dec"]]
        post[src] = list(rec["post"])
    assert len(zs["prior_fixed"]) == 4 and all(torch.equal(z, zs["prior_fixed"][0]) for z in zs["prior_fixed"])
    assert not torch.allclose(zs["prior_per_step"][0], zs["prior_per_step"][1])
    assert all(torch.equal(z, p[2]) for z, p in zip(zs["encoder_mean"], post["encoder_mean"]))
    # "encoder" (SepDiff Eq. 2): a draw z = mean + sigma eps from each step's posterior, not its mean
    assert len(zs["encoder"]) == len(post["encoder"]) == 4
    for z, (_, _, mean, logvar) in zip(zs["encoder"], post["encoder"]):
        eps = (z - mean) / torch.exp(0.5 * logvar)
        assert not torch.allclose(z, mean, atol=1e-3) and float(eps.abs().max()) < 5
    # given z per step: step i (t = i/3) reads z[i]; the final call at t = 1 reads z[3]
    given = torch.randn(4, 2, 4, generator=G(13))
    rec["dec"].clear()
    m.sample(2, z=given, generator=G(14))
    for r in rec["dec"]:
        assert torch.equal(r[2], given[round(float(r[1][0]) * 3)])


def test_hyper_head_mixes_bottlenecks_and_the_theta_term():
    from diffrep.methods.paramrel_nets import HyperFeatureHead

    torch.manual_seed(0)
    for mixing in ("softmax", "raw"):
        head = _perturbed(HyperFeatureHead([8, 4], 8, 3, 8, 4, mixing), 0.3)
        feats = [torch.randn(2, 8, 4, 4), torch.randn(2, 4, 8, 8)]
        theta = torch.randn(2, 6)
        w = torch.softmax(head.omega, 0) if mixing == "softmax" else head.omega
        want = w[2] * theta + w[0] * head.bottlenecks[0](feats[0]) + w[1] * head.bottlenecks[1](feats[1])
        mean, logvar = head(feats, theta)
        assert torch.allclose(torch.cat([mean, logvar], 1), want, atol=1e-6)
    up = F.interpolate(feats[0], size=(8, 8), mode="bilinear", align_corners=False)
    b = head.bottlenecks[0]
    assert torch.allclose(b(feats[0]), b.fc(b.net(up).mean(dim=(2, 3))), atol=1e-6)
    with pytest.raises(ValueError, match="feature maps"):
        head(feats[:1], theta)


def test_encoder_pools():
    from diffrep.methods.paramrel_nets import ParamRelEncoder, ParamRelEncoderConfig

    torch.manual_seed(0)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10.0, 500.0])
    for pool in ("mean", "flatten"):
        enc = ParamRelEncoder(ParamRelEncoderConfig(image_size=8, model_channels=8, channel_mult=(1, 2), num_groups=4,
                                                    pool=pool), 3, time_conditioned=True)
        emb = enc.time_embed(__import__("diffrep.nn.layers", fromlist=["x"]).timestep_embedding(t, 8))
        h = enc.conv_in(x)
        for blk in enc.blocks:
            h = blk(h, emb) if isinstance(blk, ResBlock) else blk(h)
        h = enc.out(h)
        feat = h.flatten(1) if pool == "flatten" else h.mean(dim=(2, 3))
        assert torch.allclose(enc.features(x, t), feat, atol=1e-6)
        mean, logvar = enc(x, t)
        assert torch.allclose(torch.cat([mean, logvar], 1), enc.head(feat), atol=1e-6)
        assert enc.width == (16 * 16 if pool == "flatten" else 16)


def test_loss_is_reproducible_from_its_generator_alone():
    """Every draw of the loss (t, theta_t, z, the MMD's prior sample) comes from ``generator``."""
    m = _perturbed(tiny("continuous", gamma_mi=0.5, lambda_agg=0.7))
    x = _images("continuous", 4, seed=14)
    torch.manual_seed(1)
    a = m.loss((x, None), generator=G(15))
    torch.manual_seed(2)
    b = m.loss((x, None), generator=G(15))
    for k in ("loss", "bfn_loss", "kl", "mmd"):
        assert torch.equal(a[k], b[k]), k
    # L^n draws its Monte-Carlo sender samples from the same generator
    d = _perturbed(tiny("discretised", bfn={"time_loss": "discrete", "loss_steps": 4}))
    torch.manual_seed(3)
    c = d.loss((x, None), generator=G(15))
    torch.manual_seed(4)
    assert torch.equal(c["bfn_loss"], d.loss((x, None), generator=G(15))["bfn_loss"])
    # a zero MMD weight skips the MMD: reported as 0
    assert float(tiny("continuous", gamma_mi=0.5, lambda_agg=0.5).loss((x, None))["mmd"]) == 0.0


def _mmd_ref(a, b, kernel, h, estimator):
    a, b = a.double(), b.double()

    def gram(u, v):
        r2 = ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        return torch.exp(-r2 / h) if kernel == "rbf" else h / (h + r2)

    kaa, kbb, kab = gram(a, a), gram(b, b), gram(a, b)
    if estimator == "biased":
        return kaa.mean() + kbb.mean() - 2 * kab.mean()
    n, m_ = len(a), len(b)
    return ((kaa.sum() - kaa.diag().sum()) / (n * (n - 1)) + (kbb.sum() - kbb.diag().sum()) / (m_ * (m_ - 1))
            - 2 * kab.mean())


@pytest.mark.parametrize("kernel,bandwidth,estimator,h", [
    ("rbf", 0.0, "biased", 16.0), ("rbf", 2.5, "unbiased", 2.5), ("imq", 0.0, "biased", 8.0), ("imq", 3.0, "unbiased", 3.0)])
def test_mmd_options_and_time_strata(kernel, bandwidth, estimator, h):
    """_mmd(z, t): the prior sample is the generator's first N(0, I) draw; G strata average the per-bin
    MMDs of bins holding >= 2 examples (t = 1 joins the last bin); none -> 0."""
    m = tiny(latent=4, mmd_kernel=kernel, mmd_bandwidth=bandwidth, mmd_estimator=estimator)
    z = torch.randn(6, 4, generator=G(16))
    prior = torch.randn(6, 4, generator=G(17))
    t = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.9, 1.0], dtype=torch.float64)
    assert float(m._mmd(z, t, G(17))) == pytest.approx(float(_mmd_ref(z, prior, kernel, h, estimator)), rel=1e-4)
    m.config.mmd_time_strata = 2  # (bins: [0, 0, 0, 1, 1, 1])
    want = (_mmd_ref(z[:3], prior[:3], kernel, h, estimator) + _mmd_ref(z[3:], prior[3:], kernel, h, estimator)) / 2
    assert float(m._mmd(z, t, G(17))) == pytest.approx(float(want), rel=1e-4)
    m.config.mmd_time_strata = 4  # bins [0, 0, 1, 2, 3, 3]: only bins 0 and 3 count
    want = (_mmd_ref(z[:2], prior[:2], kernel, h, estimator) + _mmd_ref(z[4:], prior[4:], kernel, h, estimator)) / 2
    assert float(m._mmd(z, t, G(17))) == pytest.approx(float(want), rel=1e-4)
    m.config.mmd_time_strata = 8
    lone = m._mmd(z[:3] * 0 + 1, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64), G(17))
    assert float(lone) == 0.0


def test_x_encoder_reads_the_data_and_needs_it():
    m = _perturbed(tiny("continuous", encoder_input="x"))
    x = _images("continuous", 2, seed=18)
    state = m.flow.sample(x, 0.5, G(19))
    t = state.t
    want = m.encoder.gaussian_params(x, t.float() * 1000.0)
    got = m.posterior(state, t, x=x)
    assert torch.allclose(torch.cat(got, 1), want, atol=1e-6)
    with pytest.raises(ValueError, match="clean data"):
        m.posterior(state, t)


@pytest.mark.parametrize("mult,res_blocks", [((1, 2), 1), ((1, 2, 2), 1), ((1, 2), 2)])
def test_hyper_posterior_reads_the_level_end_up_sampling_features(mult, res_blocks):
    from diffrep.methods.paramrel import ParamReL
    from diffrep.recipes.paramrel import paramrel_config
    from helpers import tiny_bfn_data

    torch.manual_seed(0)
    m = _perturbed(ParamReL(paramrel_config(tiny_bfn_data("continuous"), 4, 8, mult, res_blocks=res_blocks, groups=4,
                                            sample_steps=3, encoder="hyper"))).eval()
    x = _images("continuous", 2, seed=20)
    state = m.flow.sample(x, 0.4, G(21))
    t = state.t
    raw = m.encoder.gaussian_params(m.flow.network_input(state), t.float() * 1000.0)
    # the outputs of the last block of each decoder level, with the theta branch's mean as z
    ends = [(k + 1) * (res_blocks + 1) - 1 for k in range(len(mult))]
    seen = {}
    hooks = [m.decoder.output_blocks[i].register_forward_hook(lambda mod, a, o, i=i: seen.setdefault(i, o))
             for i in ends]
    with torch.no_grad():
        m.decode_net(state, t, raw[:, :4])
    for h in hooks:
        h.remove()
    feats = [seen[i] for i in ends]
    assert [f.shape[1] for f in feats] == [8 * c for c in mult[::-1]]
    want = m.hyper(feats, raw)
    got = m.posterior(state, t)
    assert torch.allclose(torch.cat(got, 1), torch.cat(want, 1), atol=1e-5)


def test_num_steps_reaches_reverse_sampling_and_decoding():
    m = _rev_model()  # sample_steps = 4
    x = _images("continuous", 2, seed=22)
    rev = m.reverse_sample(x, 2)
    assert rev.z.shape[0] == 3 and rev.num_steps == 2
    assert torch.allclose(m.reconstruct(x, 2), m.decode(rev), atol=1e-6)
    tv = m.time_varying(x, (0.5,), num_steps=2)
    assert torch.allclose(tv[0], m.decode(ReverseSample(rev.z[1].expand_as(rev.z).clone(), rev.subcode)), atol=1e-6)
    assert not torch.allclose(m.reconstruct(x, 2), m.reconstruct(x), atol=1e-4)


def test_given_fixed_z_is_used_at_every_step_and_checked(monkeypatch):
    m = _perturbed(tiny("continuous", steps=3)).eval()
    rec = _capture(m, monkeypatch)
    z = torch.randn(2, 4, generator=G(23))
    m.sample(2, z=z, generator=G(24))
    assert len(rec["dec"]) == 4 and all(torch.equal(r[2], z) for r in rec["dec"])
    for bad in (torch.zeros(3, 4), torch.zeros(5, 2, 4), [[0.0] * 4] * 2):
        with pytest.raises(ValueError, match=r"z must have shape \[2, 4\] or \[4, 2, 4\]"):
            m.sample(2, z=bad)


def test_report_reconstruction_adds_the_reconstruction_loss():
    m = _perturbed(tiny("discrete", report_reconstruction=True))
    out = m.loss((_images("discrete", 3, seed=25), None), generator=G(26))
    assert out["recon_loss"].dim() == 0 and float(out["recon_loss"]) > 0
    assert "recon_loss" not in tiny("discrete").loss((_images("discrete", 3), None))


def test_encoder_and_hyper_head_inputs_and_initialisation():
    from diffrep.methods.paramrel_nets import HyperFeatureHead, ParamRelEncoder, ParamRelEncoderConfig

    enc = ParamRelEncoder(ParamRelEncoderConfig(image_size=8, model_channels=8, channel_mult=(1, 2), num_groups=4), 3,
                          time_conditioned=True)
    with pytest.raises(ValueError, match=r"input must be \[B, 1, 8, 8\]"):
        enc(torch.zeros(2, 1, 4, 8), torch.zeros(2))
    with pytest.raises(ValueError, match=r"input must be \[B, 1, 8, 8\]"):
        enc(torch.zeros(1, 8, 8), torch.zeros(1))
    with pytest.raises(ValueError, match="needs t of shape"):
        enc(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="needs t of shape"):
        enc(torch.zeros(2, 1, 8, 8), torch.zeros(3))
    assert torch.equal(HyperFeatureHead([8, 4], 8, 3, 8, 4, "softmax").omega, torch.zeros(3))
    assert torch.allclose(HyperFeatureHead([8, 4], 8, 3, 8, 4, "raw").omega, torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="mixing must be"):
        HyperFeatureHead([8], 8, 3, 8, 4, "mean")


def test_configs_saved_with_the_old_hyper_steps_field_still_load():
    from diffrep.methods.paramrel import ParamReLConfig

    cfg = ParamReLConfig()
    data = cfg.to_dict()
    data["hyper_steps"] = 5
    assert ParamReLConfig.from_dict(data).hyper_steps == 5
