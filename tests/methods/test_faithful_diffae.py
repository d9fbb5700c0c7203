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
