"""Value tests of the SAMI analyses (diffrep.analysis): hand-derived small cases and independent
computations, so that a changed sign, constant or reduction fails (issue 17, "Tests that catch wrong maths")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffrep.analysis import sami as A
from helpers import sami_images as images, tiny_sami as tiny_model


# -- guidance magnitude: the k_t the chain applied (issue 17, item 12) ------------------------------------
@pytest.mark.parametrize("literal", [False, True])
def test_guidance_magnitude_uses_the_chains_coefficient(literal):
    m = tiny_model(alg1_literal=literal)  # DDPM: all 20 steps
    x = images(1)
    seen = []

    def cb(i, t, xt, eps, g):
        seen.append((t, float(g.flatten(1).norm(dim=1)[0]), float(eps.flatten(1).norm(dim=1)[0])))

    m.conditional_sample(x, 1, z_mode="posterior_mean", generator=torch.Generator().manual_seed(3), callback=cb)
    r = A.guidance_magnitude(m, x, seed=3)
    sch = m.schedule
    ab, beta = sch.alphas_cumprod.double(), sch.betas.double()
    for (t, gn, en), t_r, g_r, e_r, q in zip(seen, r["t"], r["guidance_norm"], r["eps_norm"], r["ratio"]):
        k = math.sqrt(1 - ab[t])
        if literal:  # Algorithm 1's printed mean shift sqrt(1 - alpha_t) g: k = sqrt(1 - abar) sqrt(alpha)/sqrt(beta)
            k *= math.sqrt(1 - beta[t]) / math.sqrt(beta[t])
        assert t_r == t and g_r == pytest.approx(k * gn, rel=1e-9) and e_r == pytest.approx(en, rel=1e-9)
        assert q == pytest.approx(k * gn / en, rel=1e-9)
    assert r["literal_step"] is literal and len(r["t"]) == 20 and r["t"] == sorted(r["t"], reverse=True)
    # a DDIM chain never uses the literal DDPM step, and runs the steps asked for
    seen.clear()
    m.conditional_sample(x, 1, z_mode="posterior_mean", sampler="ddim", num_steps=3,
                         generator=torch.Generator().manual_seed(3), callback=cb)
    rd = A.guidance_magnitude(m, x, sampler="ddim", num_steps=3, seed=3)
    assert rd["literal_step"] is False and rd["t"] == [t for t, _, _ in seen] and len(rd["t"]) == 3
    for (t, gn, _), g_r in zip(seen, rd["guidance_norm"]):
        assert g_r == pytest.approx(math.sqrt(1 - ab[t]) * gn, rel=1e-9)
    with pytest.raises(ValueError, match="single image"):
        A.guidance_magnitude(m, images(2))


# -- variability ------------------------------------------------------------------------------------------
def test_variability_hand_computed():
    # two points at distance 2 in 2D (D = 2): xbar midway, each at squared distance 1 -> V = 1, per pixel 1/2
    v = A.variability(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
    assert v["v_sum"] == pytest.approx(1.0) and v["v_per_pixel"] == pytest.approx(0.5) and v["dim"] == 2
    assert v["sem_per_pixel"] == pytest.approx(0.0)  # both squared distances equal
    v3 = A.variability(torch.tensor([[0.0], [0.0], [3.0]]))  # mean 1: squared distances 1, 1, 4
    assert v3["v_sum"] == pytest.approx(2.0) and v3["v_per_pixel"] == pytest.approx(2.0)
    assert v3["sem_per_pixel"] == pytest.approx(float(np.std([1, 1, 4], ddof=1) / math.sqrt(3)))
    with pytest.raises(ValueError, match="N >= 2"):
        A.variability(torch.zeros(1, 4))


def test_variability_reduction_ratio_and_data_reference():
    m = tiny_model(sampler="ddim")
    x = images(4)
    r = A.variability_reduction(m, x[:2], 3, reference=x, seed=0)
    assert r["ratio_uncond_over_cond"] == pytest.approx(r["v_uncond"] / r["v_cond_mean"], rel=1e-12)
    assert r["v_cond_mean"] == pytest.approx(float(np.mean(r["v_cond_per_guide"])), rel=1e-12)
    flat = x.flatten(1).double()
    assert r["v_data"] == pytest.approx(float(((flat - flat.mean(0)) ** 2).sum(1).mean() / flat.shape[1]), rel=1e-12)


# -- posterior variance spectrum ----------------------------------------------------------------------------
def test_posterior_variance_spectrum_values():
    m = tiny_model()
    x = images(1)
    ts = [0, 7, 19]
    r = A.posterior_variance_spectrum(m, x, ts, num_noise=3, seed=5)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        want = []
        for t in ts:
            xs = x.expand(3, -1, -1, -1)
            noise = torch.randn(xs.shape, generator=gen).double()  # drawn in float32, as the analysis does
            xt = m.schedule.q_sample(xs, torch.full((3,), t), noise)
            want.append(m.encoder(xt)[1].exp().mean(0))
        want = torch.stack(want)
        var0 = m.encoder(x)[1].exp()[0]
    np.testing.assert_allclose(r["var"], want.numpy(), rtol=1e-12)
    np.testing.assert_allclose(r["mean_var"], want.mean(1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(r["var_clean"], var0.numpy(), rtol=1e-12)
    assert r["order_clean"] == torch.argsort(var0).tolist()
    assert r["mean_var_nondecreasing"] == bool((want.mean(1).diff() >= 0).all())


# -- global axes (A.8) ----------------------------------------------------------------------------------------
def test_global_axes_matches_the_formula_by_brute_force():
    m = tiny_model()
    x = images(3)
    t = 10
    r = A.global_axes(m, x, t, num_noise=1, seed=2)
    gen = torch.Generator().manual_seed(2)
    noise = torch.randn(x.shape, generator=gen).double()
    xt = m.schedule.q_sample(x, torch.full((3,), t), noise)
    with torch.no_grad():
        mu0 = m.encoder(x)[0]
    N = []
    for i in range(3):
        terms = []
        for n in range(3):  # per image, its own gradient of sigma_i^2
            xn = xt[n:n + 1].detach().requires_grad_(True)
            s2 = m.encoder(xn)[1].exp()[0, i]
            (gr,) = torch.autograd.grad(s2, xn)
            terms.append(float(gr.norm()) / float(s2.detach()) ** 2)
        N.append(math.sqrt(2 * float(mu0[:, i].var(unbiased=True))) * np.mean(terms))
    np.testing.assert_allclose(r["N"], N, rtol=1e-9)
    np.testing.assert_allclose(r["coherence"], -np.log(N), rtol=1e-9)
    assert r["order_by_coherence"] == np.argsort(N).tolist()  # largest G = -log N first


# -- perturbation along low-variance axes ---------------------------------------------------------------------
def test_perturb_low_variance_axes_moves_z_by_alpha_sigma():
    m = tiny_model(sampler="ddim")
    x = images(1)
    seen = []
    orig = m.generate

    def spy(z, **kw):
        seen.append(z.clone())
        return orig(z, **kw)

    m.generate = spy
    r = A.perturb_low_variance_axes(m, x, (-1.0, 0.0, 2.0), num_axes=2)
    with torch.no_grad():
        mu, lv = m.posterior(x)
    order = torch.argsort(lv[0]).tolist()
    assert r["axes"] == order[:2]
    sd = (0.5 * lv[0]).exp()
    z = seen[0]
    assert z.shape == (2 * 3 + 9, 3)
    for a_i, axis in enumerate(r["axes"]):
        for k, alpha in enumerate((-1.0, 0.0, 2.0)):
            want = mu[0].clone()
            want[axis] += alpha * sd[axis]
            torch.testing.assert_close(z[a_i * 3 + k], want, rtol=1e-12, atol=1e-12)
    i, j = r["axes"]
    want = mu[0].clone()
    want[i] += -1.0 * sd[i]
    want[j] += 2.0 * sd[j]
    torch.testing.assert_close(z[6 + 0 * 3 + 2], want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["posterior_std"], sd[r["axes"]].numpy(), rtol=1e-12)


# -- disks probes -----------------------------------------------------------------------------------------------
def test_disk_centres_of_rendered_disks():
    from diffrep.data.disks import disks_geometry, render_disks

    cfg = disks_geometry(16).config
    cx, cy = np.array([5.0, 9.5]), np.array([8.0, 4.25])
    img = torch.from_numpy(render_disks(cx, cy, np.array([0.1, 0.9]), cfg)).permute(0, 3, 1, 2) * 2 - 1
    c = A.disk_centres(img)
    np.testing.assert_allclose(c, np.stack([cx, cy], 1), atol=0.05)
    flat = torch.full((1, 1, 16, 16), 0.0)  # background = foreground (0.5 -> 0 in [-1, 1]): no disk
    assert np.isnan(A.disk_centres(flat)).all()


def test_monotonicity_of_an_exact_factor_encoder():
    """An 'encoder' whose posterior mean is (c_x, c_y, I_bg) read off the image scores rho = 1 and R^2 ~ 1;
    one that reverses c_x keeps |rho| = 1 with the sign consistent."""
    from diffrep.data.disks import disks_geometry

    m = tiny_model()
    geo = disks_geometry(8)

    class FactorEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))  # the model's device/dtype

        def forward(self, x):
            c = torch.from_numpy(A.disk_centres(x.detach())).to(x)
            bg = ((x.flatten(1).median(1).values + 1) / 2)[:, None]
            mu = torch.cat([c.nan_to_num(4.0) / 8, bg], 1)  # comparable scales for the k-NN metric
            return mu, torch.zeros_like(mu)

    m.encoder = FactorEncoder()
    r = A.posterior_mean_monotonicity(m, geo, num_lines=3, num_points=5, num_readout=200)
    for f, axis in (("x", 0), ("y", 1), ("background", 2)):
        assert r[f]["axis"] == axis and r[f]["mean_abs_spearman"] == pytest.approx(1.0)
        assert r[f]["sign_consistent"] == 1.0
    assert r["x"]["readout_spearman"] == pytest.approx(1.0) and min(r["knn_r2"].values()) > 0.9, r["knn_r2"]


def test_variability_sem_and_counts_in_d_dimensions():
    # D = 2: squared distances to the mean (1, 1) are 2, 2, 8 -> V = 4, per pixel 2, SEM / D
    v = A.variability(torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 3.0]]))
    assert v["v_sum"] == pytest.approx(4.0) and v["v_per_pixel"] == pytest.approx(2.0)
    assert v["sem_per_pixel"] == pytest.approx(float(np.std([2, 2, 8], ddof=1) / math.sqrt(3) / 2))
    assert (v["num_samples"], v["dim"]) == (3, 2)


def test_variability_reduction_draws_in_batches_with_the_given_settings():
    m = tiny_model()
    x = images(3)
    calls = []
    cond, unc = m.conditional_sample, m.sample_unconditional

    def spy_cond(g, n, **kw):
        out = cond(g, n, **kw)
        calls.append(("cond", g.clone(), n, kw, out.clone()))
        return out

    def spy_unc(n, **kw):
        out = unc(n, **kw)
        calls.append(("unc", None, n, kw, out.clone()))
        return out

    m.conditional_sample, m.sample_unconditional = spy_cond, spy_unc
    r = A.variability_reduction(m, x[:2], 3, reference=x, z_mode="posterior_mean", sampler="ddim", num_steps=2,
                                batch_size=2, seed=7)
    conds = [c for c in calls if c[0] == "cond"]
    uncs = [c for c in calls if c[0] == "unc"]
    assert [c[2] for c in conds] == [2, 1, 2, 1] and [c[2] for c in uncs] == [2, 1]
    assert torch.equal(conds[0][1], x[:1]) and torch.equal(conds[2][1], x[1:2])
    for _, _, _, kw, _ in calls:
        assert kw.get("sampler") == "ddim" and kw.get("num_steps") == 2
        assert isinstance(kw["generator"], torch.Generator) and kw["generator"].initial_seed() == 7
    assert all(c[3]["z_mode"] == "posterior_mean" for c in conds)
    per_guide = [A.variability(torch.cat([conds[0][4], conds[1][4]]))["v_per_pixel"],
                 A.variability(torch.cat([conds[2][4], conds[3][4]]))["v_per_pixel"]]
    assert r["v_cond_per_guide"] == pytest.approx(per_guide, rel=1e-12)
    assert r["v_uncond"] == pytest.approx(A.variability(torch.cat([uncs[0][4], uncs[1][4]]))["v_per_pixel"], rel=1e-12)
    assert (r["num_guides"], r["num_samples_per_guide"], r["sampler"], r["seed"]) == (2, 3, "ddim", 7)
