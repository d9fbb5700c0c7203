"""Faithfulness checks of the diffusion-autoencoder baselines (DiffAE, InfoDiffusion, DisDiff) against
the papers and the authors' code, from the published numbers in plain Python (docs/methods/diffae.md,
infodiffusion.md, disdiff.md). Independent of the existing test files of these methods."""

from __future__ import annotations

import math

import torch

from diffrep.methods.diffae import DiffAEConfig, LatentDDIMConfig
from diffrep.methods.disdiff import DisDiff, DisDiffConfig, shift_coefficients
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig
from diffrep.diffusion import NoiseSchedule


def _abar(betas):
    out, a = [], 1.0
    for b in betas:
        a *= 1.0 - b
        out.append(a)
    return out


# -- DisDiff (Yang et al. 2023, Sec. 4.1; PDAE's gradient estimator) --------------------------------
def test_disdiff_shift_coefficients_from_the_ldm_linear_numbers():
    """The configs' schedule: beta_k = (sqrt(0.0015) + k (sqrt(0.0155) - sqrt(0.0015)) / 999)^2, k = 0..999.
    Shift (training): -sqrt(alpha_t) sqrt(1 - abar_t) / beta_t * beta~_t with the posterior variance
    beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); guidance (sampling, L_d): -sqrt(1 - abar_t)."""
    cfg = DisDiffConfig()
    s0, s1 = math.sqrt(0.0015), math.sqrt(0.0155)
    betas = [(s0 + k * (s1 - s0) / 999) ** 2 for k in range(1000)]
    ab = _abar(betas)
    shift, guide = shift_coefficients(NoiseSchedule(cfg.schedule))
    for t in (0, 1, 17, 500, 999):
        ab_prev = ab[t - 1] if t > 0 else 1.0
        post_var = betas[t] * (1 - ab_prev) / (1 - ab[t])
        want = -math.sqrt(1 - betas[t]) * math.sqrt(1 - ab[t]) / betas[t] * post_var
        assert math.isclose(float(shift[t]), want, rel_tol=1e-10, abs_tol=1e-15), t
        assert math.isclose(float(guide[t]), -math.sqrt(1 - ab[t]), rel_tol=1e-12), t
    assert float(shift[0]) == 0.0 and float(shift[999]) < 0 and float(guide[999]) < 0
    assert cfg.dis_weight == 0.05 and cfg.effective_dis_weight == 0.05  # the configs' / README's weight
    assert DisDiffConfig(compat_cli_weight=True).effective_dis_weight == 1.0  # main.py's CLI default


def test_disdiff_prediction_with_a_constant_shift_by_hand():
    """With every unit's shift G = g (constant) and eps_theta replaced by 0: training prediction
    = shift_coef_t N g; sampling prediction = -sqrt(1 - abar_t) N g (PDAE Eq. 9 / DisDiff Sec. 4.1)."""
    torch.manual_seed(0)
    m = DisDiff(DisDiffConfig()).double()
    n = m.config.num_units
    x_t = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([3, 700])

    def fake_predict(x, tt, units, which=None):
        return torch.zeros_like(x), torch.full((x.shape[0], n) + tuple(x.shape[1:]), 0.25, dtype=x.dtype)

    m._predict = fake_predict  # the unchecked prediction the verbs call (predict() checks its arguments first)
    units = torch.zeros(2, n, m.config.unit_dim, dtype=torch.float64)
    got = m.eps_with_units(x_t, t, units)
    ab = NoiseSchedule(m.config.schedule).alphas_cumprod.double()
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(got[i], torch.full_like(got[i], -math.sqrt(1 - float(ab[ti])) * n * 0.25),
                                   rtol=1e-12, atol=0)


# -- InfoDiffusion (Wang et al. 2023; isjakewong/InfoDiffusion) -------------------------------------
def test_infodiffusion_schedule_and_the_x0_term_coefficient():
    """The authors' schedule: beta = linspace(1e-5, 1e-2, 1000) (plain linear). The x_0 term reads
    mu_theta(x_1, 1, z) = (x - beta_1 / sqrt(1 - abar_1) eps) / sqrt(alpha_1) (Ho et al. Eq. 11): for
    x0 = 0 and eps == c (the code's variant reads the clean image) the term is beta_1 c^2 / alpha_1, added
    with weight 1/T."""
    cfg = InfoDiffusionConfig(mmd_weight=0.0, kl_weight=0.0, rec_term="code")
    s = NoiseSchedule(cfg.schedule)
    for k in (0, 1, 500, 999):
        assert math.isclose(float(s.betas[k]), 1e-5 + k * (1e-2 - 1e-5) / 999, rel_tol=1e-12)
    torch.manual_seed(0)
    m = InfoDiffusion(cfg).double()
    c = 3.0
    m._eps = lambda x_t, t, z: torch.full_like(x_t, c)  # the unchecked prediction the loss calls
    out = m.loss(torch.zeros(2, 3, 16, 16, dtype=torch.float64), step=0, generator=torch.Generator().manual_seed(1))
    b1 = 1e-5
    assert math.isclose(float(out["reconstruction"]), b1 * c * c / (1 - b1), rel_tol=1e-10)
    assert math.isclose(float(out["loss"].detach()), float(out["diffusion"]) + float(out["reconstruction"]) / 1000,
                        rel_tol=1e-12)
    assert cfg.rec_weight_value == 1 / 1000
    d = InfoDiffusionConfig()
    assert (d.mmd_weight, d.kl_weight, d.prior, d.mmd_bandwidth) == (0.1, 0.0, "gaussian", 0.0)


def test_infodiffusion_mmd_kernel_is_infovae_exp_minus_sq_over_d_squared():
    """The code's compute_kernel: exp(-mean_d (x - y)^2 / d) = exp(-|x - y|^2 / d^2); one code at 0 and one
    prior draw at (1, ..., 1) in d = 8: MMD^2 = 2 - 2 exp(-8 / 64)."""
    torch.manual_seed(0)
    m = InfoDiffusion(InfoDiffusionConfig()).double()
    got = m.mmd(torch.zeros(1, 8, dtype=torch.float64), torch.ones(1, 8, dtype=torch.float64))
    assert math.isclose(float(got), 2 - 2 * math.exp(-8 / 64), rel_tol=1e-12)


# -- DiffAE (Preechakul et al. 2022; phizaz/diffae) ---------------------------------------------------
def test_diffae_schedules_and_latent_ddim_defaults():
    """Decoder: linear beta 1e-4..0.02 over T = 1000 (Ho et al.; DiffAE App. A). Latent DDIM: the
    templates' const0.008 (abar_t = 0.992^(t+1)), L1 noise loss (Eq. 10), 10 layers of 2048 (Sec. 3.3)."""
    cfg = DiffAEConfig()
    s = NoiseSchedule(cfg.schedule)
    assert s.num_timesteps == 1000
    for k in (0, 999):
        assert math.isclose(float(s.betas[k]), 1e-4 + k * (0.02 - 1e-4) / 999, rel_tol=1e-12)
    lat = LatentDDIMConfig()
    ls = NoiseSchedule(lat.schedule)
    for t in (0, 9, 999):
        assert math.isclose(float(ls.alphas_cumprod[t]), 0.992 ** (t + 1), rel_tol=1e-9)
    assert (lat.loss, lat.num_layers, lat.width, cfg.loss) == ("l1", 10, 2048, "l2")


# -- DiffAE equation by equation (Preechakul et al. 2022; docs/methods/diffae.md) -----------------------
_DAE_T = 1000
_DAE_BETAS = [1e-4 + k * (0.02 - 1e-4) / (_DAE_T - 1) for k in range(_DAE_T)]
_DAE_ABAR = _abar(_DAE_BETAS)


def _dae_col(values):
    return torch.tensor(values, dtype=torch.float64)[:, None, None, None]


def _dae_images(n=4, seed=1):  # four images: a batch unlike the 3 channels
    return (torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def _dae_encode(x):  # a stand-in semantic encoder: z_sem a fixed function of the image (32 values)
    return 0.9 * x.flatten(1)[:, :32] - 0.05


def _dae_eps(x_t, t, z):  # a stand-in eps_theta(x_t, t, z_sem) that reads all three
    return 0.6 * x_t + 0.001 * t.to(x_t.dtype)[:, None, None, None] + 0.2 * z.mean(1)[:, None, None, None]


def _dae_model(**kw):
    from diffrep.methods.diffae import DiffAE

    torch.manual_seed(0)
    m = DiffAE(DiffAEConfig(**kw)).double()
    m._encode = _dae_encode
    m._eps = _dae_eps
    return m


def test_diffae_l_simple_eq9_by_hand():
    """L_simple = E ||eps_theta(x_t, t, z_sem) - eps||^2 with t ~ U{0..T-1}, x_t = sqrt(abar_t) x0 +
    sqrt(1 - abar_t) eps, z_sem = Enc(x0), reduced as the code's mean_flat then the batch mean."""
    x = _dae_images()
    for loss in ("l2", "l1"):
        out = _dae_model(loss=loss).loss(x, step=0, generator=torch.Generator().manual_seed(4))
        g = torch.Generator().manual_seed(4)
        t = torch.randint(0, _DAE_T, (4,), generator=g)
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        ab = _dae_col([_DAE_ABAR[k] for k in t.tolist()])
        err = _dae_eps(ab.sqrt() * x + (1 - ab).sqrt() * noise, t, _dae_encode(x)) - noise
        want = err.pow(2).mean() if loss == "l2" else err.abs().mean()
        assert math.isclose(float(out["loss"].detach()), float(want), rel_tol=1e-12), loss


def test_diffae_latent_ddim_eq10_on_standardised_z_sem_by_hand():
    """Sec. 3.3: z_sem standardised with the training set's mean and (unbiased, as torch .std) deviation;
    L_latent = E ||eps_omega(z_t, t) - eps||_1 under the constant beta = 0.008 schedule."""
    from torch import nn

    class LatentEps(nn.Module):
        def forward(self, z, t):
            return 0.7 * z + 0.0005 * t.to(z.dtype)[:, None]

    m = _dae_model()
    train = _dae_images(6, seed=2)
    codes = _dae_encode(train)
    m.fit_latent_stats(codes)
    mean = [sum(float(codes[i, j]) for i in range(6)) / 6 for j in range(32)]
    std = [math.sqrt(sum((float(codes[i, j]) - mean[j]) ** 2 for i in range(6)) / 5) for j in range(32)]
    torch.testing.assert_close(m.z_mean, torch.tensor(mean, dtype=torch.float64), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.z_std, torch.tensor(std, dtype=torch.float64), rtol=1e-12, atol=0)
    m.set_stage("latent")
    m.latent_net = LatentEps()
    x = _dae_images(4, seed=3)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(8)
    t = torch.randint(0, _DAE_T, (4,), generator=g)
    zn = (_dae_encode(x) - torch.tensor(mean, dtype=torch.float64)) / torch.tensor(std, dtype=torch.float64)
    noise = torch.randn(zn.shape, generator=g, dtype=zn.dtype)
    ab = torch.tensor([0.992 ** (k + 1) for k in t.tolist()], dtype=torch.float64)[:, None]
    z_t = ab.sqrt() * zn + (1 - ab).sqrt() * noise
    want = (0.7 * z_t + 0.0005 * t.to(z_t.dtype)[:, None] - noise).abs().mean()
    assert math.isclose(float(out["loss"].detach()), float(want), rel_tol=1e-12)


def test_diffae_adagn_eq7_scales_by_z_after_the_time_scale_shift():
    """Eq. 7: AdaGN(h, t, z_sem) = z_s (t_s GroupNorm(h) + t_b), z_s = 1 + Affine(SiLU(z_sem)) (the code's
    scale_bias 1 and cond_emb_layers), the time scale ADM's 1 + t_s; no z shift."""
    import torch.nn.functional as F

    from diffrep.nn.layers import ResBlock

    torch.manual_seed(1)
    blk = ResBlock(8, 8, 12, latent_dim=5, latent_cond="diffae", num_groups=4, zero_init=False).double()
    assert blk.z_layers[1].out_features == 8  # a scale per channel, no shift
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    emb, z = torch.randn(2, 12, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    h = blk.in_conv(F.silu(F.group_norm(x, 4, blk.in_norm.weight, blk.in_norm.bias)))
    ts, tb = (F.silu(emb) @ blk.emb_layers[1].weight.T + blk.emb_layers[1].bias).chunk(2, 1)
    zs = F.silu(z) @ blk.z_layers[1].weight.T + blk.z_layers[1].bias
    h = (1 + zs[:, :, None, None]) * ((1 + ts[:, :, None, None]) * F.group_norm(h, 4, blk.out_norm.weight, blk.out_norm.bias)
                                      + tb[:, :, None, None])
    torch.testing.assert_close(blk(x, emb, z), x + blk.out_conv(F.silu(h)), rtol=1e-10, atol=1e-12)


def test_diffae_stochastic_encoding_eq8_by_hand():
    """Eq. 8: x_{t+1} = sqrt(abar_{t+1}) f_theta(x_t, t, z_sem) + sqrt(1 - abar_{t+1}) eps_theta(x_t, t, z_sem),
    f_theta = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t), up the DDIM sequence 0, 333, 666 (3 steps,
    range(0, T, T // 3) as the code's ddim3 spacing); the image is the state at t = 0; never clipped."""
    m = _dae_model(clip_x0=True)
    x = _dae_images(2, seed=5)
    z = _dae_encode(x)
    got = m.encode_stochastic(x, z, num_steps=3)
    cur = x
    for t, t_next in ((0, 333), (333, 666)):
        tt = torch.full((2,), t)
        eps = _dae_eps(cur, tt, z)
        f = (cur - math.sqrt(1 - _DAE_ABAR[t]) * eps) / math.sqrt(_DAE_ABAR[t])
        cur = math.sqrt(_DAE_ABAR[t_next]) * f + math.sqrt(1 - _DAE_ABAR[t_next]) * eps
    torch.testing.assert_close(got, cur, rtol=1e-12, atol=1e-12)
    assert float(cur.abs().max()) > 1  # clipping x0 to [-1, 1] would have changed something here


def test_diffae_manipulation_moves_standardised_z_sem_along_the_unit_classifier_direction():
    """Sec. 5.2 and the authors' manipulate.ipynb: z' = denormalise(normalise(z_sem) + s w / |w|), decoded
    with the image's own x_T."""
    m = _dae_model()
    m.fit_latent_stats(_dae_encode(_dae_images(6, seed=2)))
    x = _dae_images(2, seed=6)
    seen = {}

    def decode(z, x_T=None, *, num_steps=None, generator=None):
        seen["z"], seen["x_T"] = z, x_T
        return torch.zeros(z.shape[0], 3, 16, 16, dtype=z.dtype)

    m.encode = _dae_encode
    m.encode_stochastic = lambda xx, zz, num_steps=None: xx * 0.5
    m.decode = decode
    w = torch.linspace(-1, 2, 32, dtype=torch.float64)
    m.manipulate(x, w, 2.5)
    norm = math.sqrt(sum(v * v for v in w.tolist()))
    zn = (_dae_encode(x) - m.z_mean) / m.z_std
    torch.testing.assert_close(seen["z"], (zn + 2.5 * w / norm) * m.z_std + m.z_mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(seen["x_T"], x * 0.5, rtol=0, atol=0)


def test_diffae_attribute_classifier_is_a_logistic_regression_on_standardised_z_sem():
    """Sec. 5.2 (the code's ClsModel: a linear layer on standardised z_sem, BCE with logits): the fitted
    direction equals the maximum-likelihood logistic regression with an intercept, solved here by Newton's
    method (labels not separable, so the optimum is finite)."""
    m = _dae_model()
    gen = torch.Generator().manual_seed(3)
    codes = torch.randn(400, 32, generator=gen, dtype=torch.float64) * 2 + 1
    m.fit_latent_stats(codes)
    labels = ((codes[:, 0] + 1.5 * torch.randn(400, generator=gen, dtype=torch.float64)) > 1).double()
    w = m.fit_attribute(codes, labels)
    X = torch.cat([(codes - codes.mean(0)) / codes.std(0), torch.ones(400, 1, dtype=torch.float64)], 1)
    beta = torch.zeros(33, dtype=torch.float64)
    for _ in range(50):
        p = torch.sigmoid(X @ beta)
        beta = beta + torch.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (labels - p))
    torch.testing.assert_close(w, beta[:32], rtol=0, atol=1e-8)
    assert int(w.abs().argmax()) == 0  # the attribute's dimension dominates the direction


def test_diffae_objectives_refuse_a_negative_step_and_name_the_missing_statistics():
    import pytest

    m = _dae_model()
    with pytest.raises(ValueError, match="^step must be a non-negative int"):
        m.loss(_dae_images(), step=-1)
    m.set_stage("latent")
    with pytest.raises(ValueError, match=r"^DiffAE\.latent_loss: the z_sem statistics are not fitted"):
        m.loss(_dae_images(), step=0)
