"""Faithfulness review of ParamReL / SepDiff (SepDiff KDD'25 §3, ParamReL arXiv 2405.15268 §3; the corrected
objective and the time convention of docs/methods/paramrel.md), with hand-derived values:

* the default weights are SepDiff Table 2's best row (gamma_MI, lambda_agg) = (1, 0.01): KL weight 1 - gamma = 0,
  MMD weight gamma + lambda - 1 = 0.01 (Eq. 6);
* the representation of discrete data: the encoder at t = 1 reads the noise-free binary state, whose network
  input is -tanh(beta(1)) x for x in {-1, 1} (closed form);
* in discrete time (L^n) the encoder and the decoder read the flow's own t = (i - 1)/n, the BFN term is
  n alpha_i / 2 ||x - x_hat||^2 at i = t n + 1, and t = 0 uses the noise-prediction guard x_hat = 0;
* reverse-sampling (SepDiff Eq. 3 with the exact inverse): the first inverse step with y = x from
  mu = gamma(1) x lands exactly on gamma(1 - 1/n) x, the second is mu = (rho(t') mu' - alpha x_hat)/rho(t) by hand,
  and z_s is the posterior mean at (theta_s, 1 - s/n) stored at index n - s; for discrete data the inverse is
  log theta = l' - y - logsumexp(l' - y) with y = alpha (K e - 1);
* Eq. 10-11 (the MI split and reweighting): the code's penalty (1 - gamma) E KL(q(z|theta) || p) + (gamma + lambda - 1)
  KL(q(z) || p) equals lambda KL(q(z) || p) + (1 - gamma) I(theta; z), each term by quadrature on a 1-D toy;
* Eq. 7 (MMD) with InfoVAE's kernel written out pair by pair, and Eq. 6 at the default weights for ParamReL_d
  (L^inf + 0.01 MMD, no KL, no reconstruction term: L^r is reported, never optimised);
* Eq. 2 / Alg. 1: z_t ~ q(z_t | theta_t, t) is a draw at every step and at the final decode (not the mean);
* Eq. 11: the progressive encoder's blocks are (1 + s(t)) GN(h) + b(t); the vanilla encoder has no t;
* Eq. 13-14 (interpolation): lerp of {z_s} and per-example slerp of the subcode at weights k/5; traversal over 7
  points of [-3, 3]; time-varying t* = 0.9/0.8/0.7 (the papers' s* = 100/200/300 of T = 1000);
* Eq. 1 with the correction: z reaches cross-attention as xattn_tokens tokens plus position embeddings;
* ParamReL Table 5: each paper recipe's latent size, batch, learning rate, channels, bins and 50 epochs.
"""

import math

import pytest
import torch

from diffrep.methods.paramrel import ParamReLConfig

from helpers import perturbed as _perturbed
from helpers import tiny_paramrel as tiny

G = torch.Generator().manual_seed




def test_default_weights_are_sepdiff_table2_best_row():
    cfg = ParamReLConfig()
    assert (cfg.gamma_mi, cfg.lambda_agg) == (1.0, 0.01)
    assert cfg.kl_weight == 0.0 and cfg.mmd_weight == pytest.approx(0.01)
    # (gamma, lambda) = (0.5, 0.7): KL weight 1/2, MMD weight 1/5 (Eq. 6 with the corrected signs)
    m = tiny(gamma_mi=0.5, lambda_agg=0.7)
    assert m.config.kl_weight == pytest.approx(0.5) and m.config.mmd_weight == pytest.approx(0.2)


def test_discrete_representation_reads_the_noise_free_state_at_t1():
    """encode(x) = E q(z | theta_1, t = 1) with theta_1 = softmax(beta(1)(K e_x - 1)); for K = 2 the network
    input 2 theta_0 - 1 is -tanh(beta(1)) x with x in {-1, 1}."""
    m = _perturbed(tiny("discrete")).eval()
    x = (torch.rand(3, 1, 8, 8, generator=G(1)) * 2 - 1).sign()
    b1 = m.config.bfn.sqrt_beta1 ** 2
    want = m.encoder.gaussian_params(-math.tanh(b1) * x, torch.full((3,), 1000.0))[:, :4]
    assert torch.allclose(m.encode(x), want, atol=1e-5)


def test_discrete_time_objective_reads_the_grid_time(monkeypatch):
    """time_loss="discrete": t = (i - 1)/n, the encoder and decoder read that t, and the BFN term is
    n alpha_i / 2 ||x - x_hat||^2 with alpha_i = sigma1^(-2i/n)(1 - sigma1^(2/n)) (BFN Eq. for L^n, delta output)."""
    n = 5
    m = _perturbed(tiny("continuous", bfn={"time_loss": "discrete", "loss_steps": n}, gamma_mi=1.0,
                        lambda_agg=0.0))
    rec = {}
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        rec["post"] = (state, t)
        return out

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        rec["dec"] = (t, out.detach())
        return out

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    x = torch.rand(16, 1, 8, 8, generator=G(2)) * 2 - 1
    out = m.loss((x, None), generator=G(3))
    state, t = rec["post"]
    assert torch.equal(t, state.t) and torch.equal(rec["dec"][0], t)
    i = t * n + 1
    assert torch.equal(i, i.round()) and bool((i >= 1).all()) and bool((i <= n).all())
    assert bool((t == 0).any())  # the guard case is exercised (16 draws over 5 grid points)
    s1 = m.config.bfn.sigma1
    tt = t.double().reshape(-1, 1, 1, 1)
    eps = rec["dec"][1].double()
    g = 1 - s1 ** (2 * tt.clamp(min=1e-6))
    x_hat = torch.where(tt < 1e-6, torch.zeros_like(eps), state.params.double() / g - torch.sqrt((1 - g) / g) * eps)
    x_hat = x_hat.clamp(-1, 1)
    ii = i.double().reshape(-1, 1, 1, 1)
    alpha = s1 ** (-2 * ii / n) * (1 - s1 ** (2 / n))
    l_bfn = (n * alpha / 2 * (x.double() - x_hat) ** 2).reshape(16, -1).sum(1)
    assert float(out["bfn_loss"]) == pytest.approx(float(l_bfn.mean()), rel=1e-4)
    assert float(out["loss"].detach()) == pytest.approx(float(l_bfn.mean()), rel=1e-4)  # weights 0 and 0


def test_reverse_sampling_steps_by_hand(monkeypatch):
    n = 4
    m = _perturbed(tiny("continuous", steps=n), 0.2).eval()
    s1 = m.config.bfn.sigma1
    calls = []
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        calls.append((state.params.clone(), float(t[0]), out[0].detach()))
        return out

    decs = []

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        decs.append((state.params.clone(), float(t[0]), out.detach()))
        return out

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    x = torch.rand(2, 1, 8, 8, generator=G(4), dtype=torch.float64) * 2 - 1
    rev = m.reverse_sample(x.float())

    def rho(t):
        return s1 ** (-2 * t)

    def gam(t):
        return 1 - s1 ** (2 * t)

    xf = x.float().double()
    # start: the noise-free state at t = 1, mu = gamma(1) x, z_0 (index n) encoded there
    assert calls[0][1] == 1.0 and torch.allclose(calls[0][0], gam(1.0) * xf, atol=1e-12)
    assert torch.equal(rev.z[n], calls[0][2])
    # s = 1: h^-1 with y = x and alpha = rho(1) - rho(3/4) lands on gamma(3/4) x exactly
    assert calls[1][1] == pytest.approx(0.75) and torch.allclose(calls[1][0], gam(0.75) * xf, atol=1e-10)
    assert torch.equal(rev.z[n - 1], calls[1][2])
    # s = 2: mu = (rho(3/4) mu_1 - alpha_2 x_hat_1)/rho(1/2), x_hat_1 the decoder's delta output at t = 3/4
    st1, t1, eps1 = decs[0]
    assert t1 == pytest.approx(0.75) and torch.allclose(st1, calls[1][0])
    x_hat1 = (st1 / gam(0.75) - math.sqrt((1 - gam(0.75)) / gam(0.75)) * eps1.double()).clamp(-1, 1)
    mu2 = (rho(0.75) * st1 - (rho(0.75) - rho(0.5)) * x_hat1) / rho(0.5)
    assert calls[2][1] == pytest.approx(0.5) and torch.allclose(calls[2][0], mu2, atol=1e-9)
    assert torch.equal(rev.z[n - 2], calls[2][2])
    # n inverse steps: the subcode sits at t = 0 with rho = 1
    assert float(rev.subcode.t[0]) == 0.0 and len(calls) == n + 1


def test_reverse_sampling_discrete_steps_by_hand(monkeypatch):
    """Discrete data (K = 2): start at the logits beta(1)(K e_x - 1), log-normalised; s = 1 inverts with y = alpha_1 (K e_x - 1),
    alpha_1 = beta(1) - beta(1 - 1/n), landing on the noise-free logits at 1 - 1/n; s = 2 inverts with
    y = alpha_2 (K p_hat - 1), p_hat the decoder's class probabilities at s = 1."""
    n = 4
    m = _perturbed(tiny("discrete", steps=n), 0.2).eval()
    b1 = m.config.bfn.sqrt_beta1 ** 2
    calls, decs = [], []
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        calls.append((state.params.clone(), float(t[0])))
        return post(state, t, **kw)

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        decs.append(out.detach())
        return out

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    x = (torch.rand(2, 1, 8, 8, generator=G(30)) * 2 - 1).sign()
    m.reverse_sample(x)
    e = torch.stack([(x < 0), (x > 0)], -1).double()  # one-hot of the class (-1 -> 0, 1 -> 1)

    def beta(t):
        return b1 * t * t

    def norm(lg):
        return lg - torch.logsumexp(lg, -1, keepdim=True)

    start = norm(beta(1.0) * (2 * e - 1))
    assert calls[0][1] == 1.0 and torch.allclose(calls[0][0], start, atol=1e-10)
    l1 = norm(start - (beta(1.0) - beta(0.75)) * (2 * e - 1))
    assert calls[1][1] == pytest.approx(0.75) and torch.allclose(calls[1][0], l1, atol=1e-10)
    assert torch.allclose(l1, norm(beta(0.75) * (2 * e - 1)), atol=1e-10)
    p1 = torch.sigmoid(decs[0].double())  # Bernoulli logits -> p(class 1)
    p_hat = torch.stack([1 - p1, p1], -1)
    l2 = norm(l1 - (beta(0.75) - beta(0.5)) * (2 * p_hat - 1))
    assert calls[2][1] == pytest.approx(0.5) and torch.allclose(calls[2][0], l2, atol=1e-6)


def _normal_pdf(z, m, s):
    return torch.exp(-0.5 * ((z - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.01), (0.5, 0.7), (0.95, 0.05), (0.2, 0.9)])
def test_eq10_11_mi_split_and_reweighting(gamma, lam):
    """SepDiff Eq. 10: E KL(q(z|theta) || p) = KL(q(z) || p) + I(theta; z); Eq. 11: adding (gamma - 1) I and scaling
    KL(q(z) || p) by lambda gives (1 - gamma) E KL(q(z|theta) || p) + (gamma + lambda - 1) KL(q(z) || p). Toy: theta in
    {0, 1} equiprobable, q(z | theta) = N(m_theta, s_theta^2), p = N(0, 1); KL(q(z) || p) and I by quadrature."""
    cfg = ParamReLConfig(gamma_mi=gamma, lambda_agg=lam, allow_negative_mmd_weight=True)
    ms, ss = (-1.0, 0.7), (0.5, 1.3)
    z = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    dz = float(z[1] - z[0])
    comps = [_normal_pdf(z, mm, sd) for mm, sd in zip(ms, ss)]
    q = 0.5 * (comps[0] + comps[1])
    p = _normal_pdf(z, 0.0, 1.0)
    kl_agg = float((q * (q / p).log()).sum() * dz)
    mi = float(sum(0.5 * (c * (c / q).log()).sum() * dz for c in comps))
    e_kl_cond = sum(0.5 * 0.5 * (mm ** 2 + sd ** 2 - 1 - math.log(sd ** 2)) for mm, sd in zip(ms, ss))  # closed form
    assert e_kl_cond == pytest.approx(kl_agg + mi, rel=1e-6)  # Eq. 10
    penalty = cfg.kl_weight * e_kl_cond + cfg.mmd_weight * kl_agg
    assert penalty == pytest.approx(lam * kl_agg + (1 - gamma) * mi, rel=1e-6, abs=1e-9)  # Eq. 11


def test_eq7_mmd_pair_by_pair():
    """Eq. 7 with InfoVAE's kernel k(a, b) = exp(-||a - b||^2 / d^2) and the biased estimator: every pair, the diagonal
    included, against the prior sample the generator draws first."""
    m = tiny(latent=3)
    z = torch.randn(4, 3, generator=G(31))
    prior = torch.randn(4, 3, generator=G(32))

    def k(a, b):
        return math.exp(-sum((float(u) - float(v)) ** 2 for u, v in zip(a, b)) / 9.0)

    def mean_k(A, B):
        return sum(k(a, b) for a in A for b in B) / (len(A) * len(B))

    want = mean_k(prior, prior) - 2 * mean_k(z, prior) + mean_k(z, z)
    got = float(m._mmd(z, torch.full((4,), 0.5, dtype=torch.float64), G(32)))
    assert got == pytest.approx(want, rel=1e-5)
    # a float64 model draws its prior sample in float64 (8 x 3 normals: torch's float32 and float64 draws differ)
    z64 = torch.randn(8, 3, generator=G(48), dtype=torch.float64)
    prior64 = torch.randn(8, 3, generator=G(49), dtype=torch.float64)
    got64 = float(m.double()._mmd(z64, torch.full((8,), 0.5, dtype=torch.float64), G(49)))
    assert got64 == pytest.approx(mean_k(prior64, prior64) - 2 * mean_k(z64, prior64) + mean_k(z64, z64), rel=1e-12)


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.01), (0.5, 0.7)])
def test_eq6_objective_of_paramrel_d(gamma, lam, monkeypatch):
    """Eq. 6 on discrete data, in float64: loss = mean_b [K beta(1) t_b ||e_x - e_hat||^2 + (1 - gamma) KL_b] +
    (gamma + lambda - 1) MMD^2, KL_b = 1/2 sum(m^2 + e^lv - lv - 1), the MMD on the sampled z the decoder read. At the
    defaults (1, 0.01): no KL term, MMD weight 0.01. The reconstruction term is reported (report_reconstruction), never
    added to the loss."""
    import diffrep.ops.mmd as mmd_ops

    m = _perturbed(tiny("discrete", gamma_mi=gamma, lambda_agg=lam)).double()
    rec = {}
    post, dec, real = m.posterior, m.decode_net, mmd_ops.mmd2

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        rec["post"] = (out[0].detach(), out[1].detach())
        return out

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        rec["dec"] = (t, z.detach(), out.detach())
        return out

    def spy_mmd(a, b, **kw):
        rec["mmd"] = (a.detach(), b.detach())
        return real(a, b, **kw)

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    monkeypatch.setattr(mmd_ops, "mmd2", spy_mmd)
    x32 = (torch.rand(6, 1, 8, 8, generator=G(33)) * 2 - 1).sign()  # float32 images: the model computes in its float64
    x = x32.double()
    out = m.loss((x32, None), generator=G(34))
    t, z, logits = rec["dec"]
    mean, logvar = rec["post"]
    tt = t.reshape(-1, 1, 1, 1)
    p1 = torch.sigmoid(logits)
    b1 = m.config.bfn.sqrt_beta1 ** 2
    l_inf = (2 * b1 * tt * 2 * ((x > 0).double() - p1) ** 2).reshape(6, -1).sum(1)
    kl = 0.5 * (mean ** 2 + logvar.exp() - logvar - 1).sum(1)
    a, b = rec["mmd"]
    assert torch.equal(a, z) and not torch.allclose(z, mean, atol=1e-3)  # the sample, in the MMD and the decoder
    d2 = float(a.shape[1] ** 2)

    def gram(u, v):
        return torch.exp(-((u[:, None] - v[None]) ** 2).sum(-1) / d2).mean()

    mmd = gram(a, a) + gram(b, b) - 2 * gram(a, b)
    want = (l_inf + (1 - gamma) * kl).mean() + (gamma + lam - 1) * mmd
    assert float(out["loss"].detach()) == pytest.approx(float(want), rel=1e-10)
    assert float(out["kl"]) == pytest.approx(float(kl.mean()), rel=1e-10)
    assert float(out["mmd"]) == pytest.approx(float(mmd), rel=1e-10)
    m.config.report_reconstruction = True
    with_rec = m.loss((x32, None), generator=G(34))
    assert float(with_rec["recon_loss"]) > 0 and torch.equal(with_rec["loss"].detach(), out["loss"].detach())


def test_eq2_sampling_draws_z_from_the_posterior_at_every_step(monkeypatch):
    """SepDiff Eq. 2 / Alg. 1: z_t ~ q(z_t | theta_t, t) at each step and z_0 ~ q(z_0 | theta_0, 0) at the final decode.
    With the log-variance head fixed at log 0.25 the standardised draws (z - mean)/0.5 are N(0, 1); z_source="encoder_mean"
    feeds the mean."""
    m = _perturbed(tiny("continuous", steps=3)).eval()
    with torch.no_grad():
        m.encoder.head.weight[4:].zero_()
        m.encoder.head.bias[4:].fill_(math.log(0.25))
    seen = {"post": [], "dec": []}
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        seen["post"].append(out[0].detach())
        return out

    def spy_dec(state, t, z, **kw):
        seen["dec"].append((float(t[0]), z.detach()))
        return dec(state, t, z, **kw)

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    m.sample(256, z_source="encoder", generator=G(35))
    assert [t for t, _ in seen["dec"]] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    eps = torch.cat([((z - mean) / 0.5).flatten() for (_, z), mean in zip(seen["dec"], seen["post"])])
    assert eps.numel() == 4 * 256 * 4
    assert abs(float(eps.mean())) < 0.08 and 0.93 < float(eps.std()) < 1.07
    seen["post"].clear()
    seen["dec"].clear()
    m.sample(4, z_source="encoder_mean", generator=G(36))
    assert all(torch.equal(z, mean) for (_, z), mean in zip(seen["dec"], seen["post"]))
    assert ParamReLConfig().z_source == "encoder"


def test_eq11_progressive_encoder_blocks_and_vanilla_has_no_time():
    """ParamReL Eq. 11: AGN(h, t) = (1 + s(t)) GN(h) + b(t) in each residual block of the progressive encoder (Fig. 8b);
    the vanilla encoder (Fig. 8a) has no time input."""
    import torch.nn.functional as F
    from diffrep.nn.layers import ResBlock, timestep_embedding

    m = _perturbed(tiny("continuous"), 0.3)
    enc = m.encoder
    t = torch.tensor([100.0, 700.0])
    emb = enc.time_embed(timestep_embedding(t, enc.cfg.model_channels))
    blk = next(b for b in enc.blocks if isinstance(b, ResBlock))
    h0 = enc.conv_in(torch.randn(2, 1, 8, 8, generator=G(37)))

    def gn(h, norm):
        return F.group_norm(h, norm.num_groups, norm.weight, norm.bias, norm.eps)

    h = blk.in_conv(F.silu(gn(h0, blk.in_norm)))
    s, b = blk.emb_layers(emb)[:, :, None, None].chunk(2, 1)
    want = blk.skip(h0) + blk.out_conv(F.silu((1 + s) * gn(h, blk.out_norm) + b))
    assert torch.allclose(blk(h0, emb), want, atol=1e-5)
    assert tiny(encoder="vanilla").encoder.time_embed is None and enc.time_embed is not None


def test_eq13_14_interpolation_by_hand(monkeypatch):
    """lerp (1 - w) z_a + w z_b of the latents {z_s}; slerp sin((1 - w) O)/sin O a + sin(w O)/sin O b of each example's
    subcode, O = arccos(a.b / (|a| |b|)); w = k/5, k = 0..5 (the papers' four interpolants and the endpoints)."""
    m = _perturbed(tiny("continuous", steps=3), 0.2).eval()
    xa = torch.rand(2, 1, 8, 8, generator=G(38)) * 2 - 1
    xb = torch.rand(2, 1, 8, 8, generator=G(39)) * 2 - 1
    ra, rb = m.reverse_sample(xa), m.reverse_sample(xb)
    got = []
    real = m.decode
    monkeypatch.setattr(m, "decode", lambda rev, **kw: got.append(rev) or real(rev, **kw))
    m.interpolate(xa, xb)
    assert len(got) == 6
    a, b = ra.subcode.params.double().reshape(2, -1), rb.subcode.params.double().reshape(2, -1)
    om = torch.arccos((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)))
    for k, rev in enumerate(got):
        w = k / 5
        assert torch.allclose(rev.z, (1 - w) * ra.z + w * rb.z, atol=1e-6)
        want = (torch.sin((1 - w) * om)[:, None] * a + torch.sin(w * om)[:, None] * b) / torch.sin(om)[:, None]
        assert torch.allclose(rev.subcode.params.double().reshape(2, -1), want, atol=1e-9)


def test_traversal_and_time_varying_defaults(monkeypatch):
    """Traversal: 7 evenly spaced values on [-3, 3] override one dimension at every step; time-varying: t* = 0.9, 0.8,
    0.7 (the papers' s* = 100, 200, 300 of T = 1000), z taken at index round(t* n), the code encoded at t = t*."""
    m = _perturbed(tiny("continuous", steps=10), 0.2).eval()
    x = torch.rand(1, 1, 8, 8, generator=G(40)) * 2 - 1
    calls = []
    real = m.decode
    monkeypatch.setattr(m, "decode", lambda rev, **kw: calls.append(kw) or real(rev, **kw))
    m.traverse(x, dims=[2])
    (kw,), = [calls]
    dims, vals = kw["z_override"]
    assert dims == [2] and torch.allclose(vals.flatten().double(), torch.arange(-3.0, 4.0, dtype=torch.float64))
    calls.clear()
    m.time_varying(x)
    assert [c["fixed_time"] for c in calls] == pytest.approx([0.9, 0.8, 0.7])
    times = []
    post = m.posterior
    monkeypatch.setattr(m, "posterior", lambda state, t, **k: times.append(float(t[0])) or post(state, t, **k))
    rev = m.reverse_sample(x)
    assert times[:2] == pytest.approx([1.0, 0.9])  # z[10] at t = 1 (z_0), z[9] at t = 0.9: the papers' s = 100
    assert rev.z.shape[0] == 11


def test_eq1_cross_attention_reads_z_as_tokens(monkeypatch):
    """SepDiff Eq. 1, corrected: K = W^K z_t and V = W^V z_t over xattn_tokens tokens (z split, plus learned position
    embeddings); one token would make softmax(QK^T) identically 1."""
    m = _perturbed(tiny("continuous", cond="xattn", xattn_tokens=2))
    seen = {}
    real = m.decoder._forward_grid

    def spy(x, t, context=None, **kw):
        seen["ctx"] = context.detach()
        return real(x, t, context=context, **kw)

    monkeypatch.setattr(m.decoder, "_forward_grid", spy)
    z = torch.randn(3, 4, generator=G(41))
    state = m.flow.prior((3, 1, 8, 8))
    m.decode_net(state, torch.zeros(3, dtype=torch.float64), z, check_time=False)
    assert torch.allclose(seen["ctx"], z.reshape(3, 2, 2) + m.token_pos.detach())


@pytest.mark.parametrize("name,latent,batch,lr,mult,base,data,bins,n_train", [
    ("paramrel/bmnist", 32, 128, 1e-4, (1, 2, 4), 32, "discrete", None, 60000),
    ("paramrel/bfashionmnist", 32, 128, 1e-4, (1, 2, 4), 32, "discrete", None, 60000),
    ("paramrel/celeba64", 64, 64, 2e-4, (1, 2, 2, 2), 64, "discretised", 256, 162770),
    ("paramrel/shapes3d64", 32, 64, 2e-4, (1, 2, 2, 2), 64, "discretised", 256, 480000),
    ("paramrel/cifar10", 32, 128, 1e-4, (1, 2, 4), 32, "discretised", 16, 50000)])
def test_table5_recipes(name, latent, batch, lr, mult, base, data, bins, n_train):
    """ParamReL Table 5 (50 epochs), App. C.2 (attention at the bottleneck only) and C.3 (the encoder the same U-Net
    frame), SepDiff Table 2's (gamma, lambda) = (1, 0.01), T = 1000 sampling steps (the papers' z_0..z_1000)."""
    from diffrep.recipes import get_recipe

    cfg = get_recipe(name).make_config()
    m, tr = cfg.model, cfg.train
    assert (m.latent_dim, tr.batch_size, tr.lr) == (latent, batch, lr)
    assert (m.unet.channel_mult, m.unet.model_channels) == (mult, base)
    assert (m.encoder_net.channel_mult, m.encoder_net.model_channels) == (mult, base)
    assert m.bfn.data == data and (bins is None or m.bfn.num_bins == bins)
    assert data != "discrete" or m.bfn.num_classes == 2
    assert tr.steps == math.ceil(50 * n_train / batch)
    # the gaps filled from the BFN code's configs: AdamW betas of mnist_discrete.yaml / the CIFAR-10 configs, wd, EMA
    assert (tr.betas, tr.weight_decay, tr.ema_decay) == ((0.9, 0.98) if data == "discrete" else (0.9, 0.99), 0.01,
                                                         0.9999)
    assert m.unet.attention_resolutions == () and m.unet.middle_attention
    assert (m.gamma_mi, m.lambda_agg, m.sample_steps, m.encoder, m.encoder_input) == (1.0, 0.01, 1000, "progressive",
                                                                                      "theta")


def test_reconstruction_term_draws_z0_from_q():
    """The distortion term E_{q(z_0, theta_0)} ln p_O(x_0 | psi(theta_0, z_0)) (SepDiff Eq. 4): theta_1 ~ p_F(. | x; 1),
    then z_1 = mean + e^(logvar/2) eps with eps the generator's next draw, and -ln p_O(x | psi) by hand (Bernoulli)."""
    m = _perturbed(tiny("discrete")).double()
    x = (torch.rand(5, 1, 8, 8, generator=G(42)) * 2 - 1).sign().double()  # 5 x 4 latents: >= 16 normals per draw
    got = m.reconstruction_loss(x.float(), G(43))
    g = G(43)
    state = m.flow.sample(m.flow.prepare_data(x), 1.0, g, dtype=torch.float64)
    mean, logvar = m.posterior(state, state.t)
    z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    p1 = torch.sigmoid(m.decode_net(state, state.t, z))
    want = -torch.where(x > 0, p1, 1 - p1).log().reshape(5, -1).sum(1)
    assert got.dtype == torch.float64 and torch.allclose(got, want.detach(), rtol=1e-9)


def test_eq4_sampling_first_step_sender_noise_and_prior_draws(monkeypatch):
    """ParamReL Eq. 4 / SepDiff Table 3: from the prior (mu = 0, rho = 1) the network at t = 0 gives x_hat = 0 (the
    t < 1e-6 guard); the sender sample y ~ N(0, 1/alpha_1), alpha_1 = sigma1^(-2/n) - 1, updates mu_1 = alpha_1 y /
    (1 + alpha_1), so mu_1 has std sqrt(alpha_1)/(1 + alpha_1). z_source="prior_per_step": a fresh N(0, I) per step."""
    n = 4
    m = _perturbed(tiny("continuous", steps=n)).eval()
    s1 = m.config.bfn.sigma1
    seen = []
    dec = m.decode_net

    def spy_dec(state, t, z, **kw):
        seen.append((float(t[0]), state.params.clone(), z.detach()))
        return dec(state, t, z, **kw)

    monkeypatch.setattr(m, "decode_net", spy_dec)
    m.sample(128, z_source="prior_per_step", generator=G(44))
    t1, mu1, _ = seen[1]
    a1 = s1 ** (-2 / n) - 1
    assert t1 == pytest.approx(1 / n) and abs(float(mu1.mean())) < 0.05 * math.sqrt(a1) / (1 + a1)
    assert float(mu1.std()) == pytest.approx(math.sqrt(a1) / (1 + a1), rel=0.03)
    zs = torch.stack([z for _, _, z in seen])  # [n + 1, 128, 4]
    assert abs(float(zs.mean())) < 0.05 and 0.95 < float(zs.std()) < 1.05
    assert all(not torch.allclose(zs[i], zs[i + 1]) for i in range(n))


def test_decoding_is_deterministic_and_time_varying_reads_z_at_t_star():
    """The decoder undoes the deterministic inversion (no sender noise, x_hat = E p_O, so discrete data decode identically
    whatever the global RNG), and time-varying generation holds z[round(t* n)] (encoded at t*) at every step."""
    m = _perturbed(tiny("discrete", steps=10), 0.2).eval()
    x = (torch.rand(2, 1, 8, 8, generator=G(45)) * 2 - 1).sign()
    rev = m.reverse_sample(x)
    torch.manual_seed(1)
    a = m.decode(rev)
    torch.manual_seed(2)
    assert torch.equal(a, m.decode(rev))
    c = _perturbed(tiny("continuous", steps=10), 0.2).eval()
    xc = torch.rand(2, 1, 8, 8, generator=G(46)) * 2 - 1
    rc = c.reverse_sample(xc)
    fixed = c.time_varying(xc, (0.9,))[0]
    assert torch.allclose(fixed, c.decode(type(rc)(rc.z[9].expand_as(rc.z).clone(), rc.subcode)), atol=1e-6)
    assert not torch.allclose(fixed, c.decode(type(rc)(rc.z[1].expand_as(rc.z).clone(), rc.subcode)), atol=1e-4)


def test_discretised_data_are_bin_centres_for_every_reader():
    """Discretised data (K bins) are quantised to the centres (2k - 1)/K - 1 before anything reads them (BFN's data
    transform; docs/kernels/bfn.md#quantisation): the flow's noise-free state at t = 1 is gamma(1) x_c, and the public
    code's x-encoder (encoder_input="x") reads x_c too, written out here with the floor rule."""
    K = 16
    x = torch.rand(3, 1, 8, 8, generator=G(47)) * 2 - 1
    xc = ((((x + 1) / 2 * K).floor().clamp(0, K - 1) * 2 + 1) / K - 1)
    assert not torch.allclose(x, xc, atol=1e-3)
    for enc_in in ("theta", "x"):
        m = _perturbed(tiny("discretised", encoder_input=enc_in))
        s1 = m.config.bfn.sigma1
        read = xc * (1 - s1 ** 2) if enc_in == "theta" else xc
        want = m.encoder.gaussian_params(read, torch.full((3,), 1000.0))[:, :4]
        assert torch.allclose(m.encode(x), want, atol=1e-5), enc_in
