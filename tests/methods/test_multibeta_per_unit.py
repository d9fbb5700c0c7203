"""Value tests of the per-unit posterior scale (``posterior_scale="per_unit"``, a departure from Eq. 3;
docs/methods/multibeta.md#departures-from-the-paper): the KL of Eq. 4 with diag(sigma_{beta,k}^2) against
torch.distributions in float64, the per-unit table rules (pinning, floors, off-grid interpolation) rebuilt by hand,
the isotropic model reproduced exactly when every unit's column is equal (VAE, phase-2 loss and Algorithm 2), the
rotation symmetry of Eq. 4 (holds isotropic, fails per unit with unequal sigmas: a hand case), the per-coordinate
latent diffusion (each unit follows the isotropic formulas with its own schedule), and save/load."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from diffrep.config import ConfigError
from diffrep.methods.multibeta import (LatentDenoiser, LatentDenoiserConfig, MultiBeta, MultiBetaVAE,
                                       MultiBetaVAEConfig, multibeta_config)

D = 3  # latent units
N = 4  # grid steps


def vae(**kw) -> MultiBetaVAE:
    cfg = dict(image_size=32, in_channels=1, latent_dim=D, hidden=16, beta_embed_dim=8, num_steps=N)
    cfg.update(kw)
    torch.manual_seed(0)
    m = MultiBetaVAE(MultiBetaVAEConfig(**cfg)).double()
    with torch.no_grad():  # break the zero-initialised FiLM layers
        for name, p in m.named_parameters():
            if name.startswith(("encoder", "decoder")):
                p.add_(0.05 * torch.randn_like(p))
    return m


def per_unit_twin(iso: MultiBetaVAE) -> MultiBetaVAE:
    """A per_unit VAE with the isotropic one's networks and every unit's sigma column equal to its table."""
    pu = MultiBetaVAE(dataclasses.replace(iso.config, posterior_scale="per_unit")).double()
    sd = dict(iso.state_dict())
    for key in ("sigma_eta", "log_sigma2_table"):
        if key in sd:
            sd[key] = sd[key][:, None].repeat(1, D)
    pu.load_state_dict(sd)
    return pu


def images(n=4, seed=1):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def eps(n=4, seed=2):
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def spread(m: MultiBetaVAE, seed=0):
    """Unequal per-unit tables: random raw parameters."""
    with torch.no_grad():
        p = m.sigma_eta if hasattr(m, "sigma_eta") else m.log_sigma2_table
        p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                * (2.0 if hasattr(m, "sigma_eta") else 1.0) - (0 if hasattr(m, "sigma_eta") else 2.0))


def hand_sigma2(m: MultiBetaVAE) -> torch.Tensor:
    """sigma_{i,k}^2 [N + 1, D] rebuilt column by column from the raw parameters (docs page formulas)."""
    c = m.config
    if c.sigma_table == "free":
        return m.log_sigma2_table.detach().exp().clamp_min(c.sigma2_min)
    eta = m.sigma_eta.detach()
    step = c.sigma2_min_step * (torch.arange(N + 1) > 0).double()[:, None]
    cum = torch.cumsum(torch.log1p(torch.exp(eta)) + step, 0)
    if c.sigma_table == "monotone_pinned":
        cum = cum * (c.sigma2_init_top - c.sigma2_min) / cum[-1:]
    return c.sigma2_min + cum


@pytest.mark.parametrize("table", ["monotone", "monotone_pinned", "free"])
def test_per_unit_eq4_equals_torch_distributions_float64(table):
    m = vae(posterior_scale="per_unit", sigma_table=table)
    spread(m)
    with torch.no_grad():
        m.log_s2_table.copy_(torch.tensor([-1.0, -0.5, 0.0, 0.3, 0.7], dtype=torch.float64))
    s2 = hand_sigma2(m)
    assert float((s2[:, 0] - s2[:, 1]).abs().max()) > 1e-3  # the units really differ
    torch.testing.assert_close(m.sigma_grid() ** 2, s2, rtol=1e-12, atol=1e-15)
    x, e = images(), eps()
    beta = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)  # grid points incl. 0 and B
    out = m.loss(x, step=0, beta=beta, noise=e)
    sig = s2[[0, 1, 2, 4]].sqrt()  # [4, D]: each example's per-unit sigma
    torch.testing.assert_close(m.sigma(beta), sig, rtol=1e-12, atol=1e-15)
    with torch.no_grad():
        f = m.encoder(x, beta)
        g = m.decoder(f + sig * e, beta)
    s = torch.exp(0.5 * m.log_s2_table.detach()[[0, 1, 2, 4]])
    nll = -Normal(g, s[:, None, None, None]).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(f, sig), Normal(torch.zeros_like(f), torch.ones_like(f))).sum(1)
    assert float(out["kl"]) == pytest.approx(float(kl.mean()), rel=1e-12)
    assert float(out["recon"]) == pytest.approx(float(nll.mean()), rel=1e-12)
    assert float(out["loss"].detach()) == pytest.approx(float(((1 - beta) * nll + beta * kl).mean()), rel=1e-12)
    if table == "monotone_pinned":  # every unit pinned at sigma_B^2 = sigma2_init_top (Prop. 3.2's optimum)
        torch.testing.assert_close(s2[-1], torch.ones(D, dtype=torch.float64), rtol=1e-12, atol=0)
    if table != "free":
        assert m.sigma_is_increasing()


def test_per_unit_off_grid_interpolation_and_floors_act_per_unit():
    m = vae(posterior_scale="per_unit")
    spread(m, seed=3)
    L = torch.log(hand_sigma2(m))
    b = torch.tensor([0.1, 0.6], dtype=torch.float64)  # tau = 0.25: 0.4 of the way from 0 to 1, from 2 to 3
    want = torch.stack([0.6 * L[0] + 0.4 * L[1], 0.6 * L[2] + 0.4 * L[3]])
    torch.testing.assert_close(m.log_sigma2(b), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.sigma_latent(b), torch.exp(0.5 * want), rtol=1e-12, atol=1e-12)
    x, e = images(2), eps(2)
    out = m.loss(x, step=0, beta=b, noise=e)
    with torch.no_grad():
        f = m.encoder(x, b)
    kl = kl_divergence(Normal(f, torch.exp(0.5 * want)), Normal(0.0, 1.0)).sum(1)
    assert float(out["kl"]) == pytest.approx(float(kl.mean()), rel=1e-12)
    near = vae(posterior_scale="per_unit", off_grid="nearest")
    spread(near, seed=3)
    torch.testing.assert_close(near.log_sigma2(b), L[[0, 2]], rtol=1e-12, atol=1e-12)
    free = vae(posterior_scale="per_unit", sigma_table="free")
    with torch.no_grad():
        free.log_sigma2_table.fill_(-1.0)
        free.log_sigma2_table[1, 0] = -30.0  # one unit, one grid value below the floor
    assert free.floors()["sigma2"] == 1  # counted per (grid value, unit)
    s2 = free.sigma_grid().detach() ** 2
    assert float(s2[1, 0]) == pytest.approx(1e-4, rel=1e-12)
    assert float(s2[1, 1]) == pytest.approx(0.36787944117144233, rel=1e-12)  # exp(-1)
    assert not free.sigma_is_increasing()  # unit 0 dips at grid value 1


@pytest.mark.parametrize("table", ["monotone", "monotone_pinned", "free"])
def test_per_unit_with_equal_units_reproduces_isotropic(table):
    iso = vae(sigma_table=table)
    with torch.no_grad():
        (iso.sigma_eta if table != "free" else iso.log_sigma2_table).add_(
            0.3 * torch.randn(N + 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    pu = per_unit_twin(iso)
    x, e = images(), eps()
    beta = torch.tensor([0.0, 0.1, 0.6, 1.0], dtype=torch.float64)  # on and off the grid
    torch.testing.assert_close(pu.sigma(beta), iso.sigma(beta)[:, None].expand(4, D), rtol=1e-15, atol=0)
    a, b = iso.loss(x, step=0, beta=beta, noise=e), pu.loss(x, step=0, beta=beta, noise=e)
    for key in ("loss", "recon", "kl", "mse"):
        assert float(b[key].detach()) == pytest.approx(float(a[key].detach()), rel=1e-13)
    a["loss"].backward()
    b["loss"].backward()
    name = "sigma_eta" if table != "free" else "log_sigma2_table"
    torch.testing.assert_close(getattr(pu, name).grad.sum(1), getattr(iso, name).grad, rtol=1e-10, atol=1e-12)
    assert pu.floors() == {"sigma2": D * iso.floors()["sigma2"], "log_s2": iso.floors()["log_s2"]}


def _rotated(m: MultiBetaVAE, r: torch.Tensor) -> MultiBetaVAE:
    """The model whose code is R f (encoder head R W) and whose decoder reads R^T z (first layer W R^T)."""
    rot = copy.deepcopy(m)
    with torch.no_grad():
        rot.encoder.head.weight.copy_(r @ m.encoder.head.weight)
        rot.encoder.head.bias.copy_(r @ m.encoder.head.bias)
        rot.decoder.fc1.weight.copy_(m.decoder.fc1.weight @ r.T)
    return rot


def test_rotation_symmetry_holds_isotropic_and_fails_per_unit_with_unequal_sigmas():
    """Hand case: R = the quarter turn in the plane of units 0 and 1 (R e0 = e1, R e1 = -e0).

    Isotropic: z' = R f + sigma R eps = R z, so each example's loss is unchanged with the noise R eps.
    Per unit, sigma = diag(s0, s1, s2): z' = R f + Sigma R eps = R (f + R^T Sigma R eps), and R^T Sigma R =
    diag(s1, s0, s2): the rotated model equals the original with the sigmas of units 0 and 1 swapped, exactly, per
    example. Swapping unequal sigmas changes the expected loss (the decoder reads the two units with different
    weights): checked over 4000 common noise draws, far beyond the Monte Carlo error."""
    r = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    x = images(5)
    beta = torch.full((5,), 0.5, dtype=torch.float64)
    e = torch.randn(5, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    iso = vae()
    a, b = iso.loss(x, step=0, beta=beta, noise=e), _rotated(iso, r).loss(x, step=0, beta=beta, noise=e @ r.T)
    assert float(b["loss"].detach()) == pytest.approx(float(a["loss"].detach()), rel=1e-12)

    pu = per_unit_twin(iso)
    with torch.no_grad():  # unit 0 nearly deterministic, unit 1 nearly prior-like at every beta > 0
        pu.sigma_eta[:, 0] = -6.0
        pu.sigma_eta[:, 1] = 1.0
        pu.decoder.fc1.weight[:, 0] *= 4.0  # the decoder reads unit 0 strongly ...
        pu.decoder.fc1.weight[:, 1] *= 0.25  # ... and unit 1 weakly
    s = pu.sigma(0.5)[0]
    assert float((s[1] / s[0]).detach()) > 5
    rot = _rotated(pu, r)
    a, b = pu.loss(x, step=0, beta=beta, noise=e), rot.loss(x, step=0, beta=beta, noise=e @ r.T)
    assert abs(float(b["recon"]) - float(a["recon"])) > 1e-3 * abs(float(a["recon"]))  # no longer invariant
    assert float(b["kl"]) == pytest.approx(float(a["kl"]), rel=1e-12)  # the KL alone still is (||R f|| = ||f||)
    swapped = copy.deepcopy(pu)
    with torch.no_grad():
        swapped.sigma_eta.copy_(pu.sigma_eta[:, [1, 0, 2]])
    c = swapped.loss(x, step=0, beta=beta, noise=e)
    assert float(b["loss"].detach()) == pytest.approx(float(c["loss"].detach()), rel=1e-12)  # rotated = sigmas of units 0, 1 swapped
    # the expectation over eps differs: one image, 1000 common draws of the decoder term ||x - g||^2 / (2 s^2)
    n = 1000
    bb = torch.full((n,), 0.5, dtype=torch.float64)
    ee = torch.randn(n, D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        f = pu.encoder(x[:1], bb[:1])
        ga = pu.decoder(f + pu.sigma_latent(bb) * ee, bb)
        gc = swapped.decoder(f + swapped.sigma_latent(bb) * ee, bb)
    diff = ((x[:1] - ga).pow(2).flatten(1).sum(1) - (x[:1] - gc).pow(2).flatten(1).sum(1)) / (2 * float(pu.s(0.5).detach()) ** 2)
    assert abs(float(diff.mean())) > 6 * float(diff.std()) / n ** 0.5


def tiny_pipeline(scale: str, weighting="simple") -> MultiBeta:
    torch.manual_seed(0)
    cfg = multibeta_config(image_size=32, in_channels=1, latent_dim=D, num_steps=N,
                           vae={"hidden": 16, "beta_embed_dim": 8, "posterior_scale": scale},
                           denoiser={"hidden": 16, "depth": 1, "weighting": weighting})
    return MultiBeta(cfg).double()


@pytest.mark.parametrize("weighting", ["simple", "elbo"])
def test_phase_2_with_equal_units_reproduces_isotropic(weighting):
    iso = tiny_pipeline("isotropic", weighting)
    with torch.no_grad():
        for p in iso.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pu = tiny_pipeline("per_unit", weighting)
    sd = dict(iso.state_dict())
    sd["vae.sigma_eta"] = sd["vae.sigma_eta"][:, None].repeat(1, D)
    sd["denoiser.sigma_table"] = sd["denoiser.sigma_table"][:, None].repeat(1, D)
    pu.load_state_dict(sd)
    iso.set_phase(2)
    pu.set_phase(2)
    assert pu.denoiser.sigma_table.shape == (N + 1, D)
    torch.testing.assert_close(pu.denoiser.sigma_table, iso.denoiser.sigma_table[:, None].expand(N + 1, D), rtol=0, atol=0)
    x = images(4).double()
    i = torch.tensor([1, 2, 3, 4])
    e = eps()
    a = iso.denoiser.loss(x, encoder=iso.vae.encode, t_index=i, noise=e)
    b = pu.denoiser.loss(x, encoder=pu.vae.encode, t_index=i, noise=e)
    for key in ("loss", "eps_mse", "delta_mse"):
        assert float(b[key].detach()) == pytest.approx(float(a[key].detach()), rel=1e-12)
    for sampler in ("alg2", "ancestral", "deterministic"):
        for m in (iso, pu):
            m.denoiser.config = dataclasses.replace(m.denoiser.config, sampler=sampler)
        za = iso.reconstruct(x, 0.75, generator=torch.Generator().manual_seed(7))
        zb = pu.reconstruct(x, 0.75, generator=torch.Generator().manual_seed(7))
        torch.testing.assert_close(zb, za, rtol=1e-12, atol=1e-12)


def per_unit_denoiser(weighting="simple", **kw) -> tuple[LatentDenoiser, torch.Tensor]:
    torch.manual_seed(0)
    m = LatentDenoiser(LatentDenoiserConfig(latent_dim=D, hidden=16, depth=1, num_steps=N, schedule="per_unit",
                                            weighting=weighting, **kw)).double()
    t = torch.arange(N + 1, dtype=torch.float64)[:, None] / N
    sched = torch.sqrt(1e-4 + t * torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64) + t ** 2 * 0.1)  # unequal units
    m.set_schedule(sched)
    return m, sched


def iso_denoiser(column: torch.Tensor, weighting="simple", **kw) -> LatentDenoiser:
    torch.manual_seed(0)
    m = LatentDenoiser(LatentDenoiserConfig(latent_dim=D, hidden=16, depth=1, num_steps=N, weighting=weighting,
                                            **kw)).double()
    m.set_schedule(column)
    return m


class Fixed:
    """A stand-in for predict: given (eps_hat, Delta_hat) [B, D]."""

    def __init__(self, e, d):
        self.e, self.d = e, d

    def __call__(self, z, i):
        return self.e, self.d


@pytest.mark.parametrize("kw", [{}, dict(printed_sign=True), dict(sampler="ancestral"), dict(sampler="deterministic"),
                                dict(sampler="deterministic", deterministic_noise="zero")])
def test_per_unit_schedule_acts_coordinate_by_coordinate(kw):
    """Each unit k of the per-unit diffusion follows the isotropic formulas (Eq. 13-19, Alg. 2) with its own
    schedule sigma_{., k}: checked against an isotropic denoiser run on column k."""
    m, sched = per_unit_denoiser(**kw)
    z, xi = eps(4, seed=8), eps(4, seed=9)
    e_hat, d_hat = eps(4, seed=10), 0.1 * eps(4, seed=11)
    m.predict = Fixed(e_hat, d_hat)
    out = m.step(z, 3, xi=xi)
    s_t, s_p = sched[3], sched[2]
    if kw.get("sampler", "alg2") == "alg2":  # hand: steps 2-4 elementwise
        sign = -1.0 if kw.get("printed_sign") else 1.0
        torch.testing.assert_close(out, z - s_t * e_hat + sign * d_hat + s_p * xi, rtol=1e-13, atol=1e-13)
    for k in range(D):
        ref = iso_denoiser(sched[:, k], **kw)
        ref.predict = Fixed(e_hat[:, k:k + 1].expand(4, D), d_hat[:, k:k + 1].expand(4, D))
        want = ref.step(z[:, k:k + 1].expand(4, D).contiguous(), 3, xi=xi[:, k:k + 1].expand(4, D).contiguous())
        torch.testing.assert_close(out[:, k], want[:, 0], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("weighting", ["simple", "elbo"])
def test_per_unit_eq19_terms_and_weights_by_hand(weighting):
    m, sched = per_unit_denoiser(weighting)
    f_t, f_p, noise = eps(4, 12), eps(4, 13), eps(4, 14)
    i = torch.tensor([1, 2, 3, 4])
    terms = m.eq19_terms(f_t, f_p, i, noise)
    torch.testing.assert_close(terms["z_t"], f_t + sched[i] * noise, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(terms["delta"], f_p - f_t, rtol=0, atol=0)
    s2 = sched ** 2
    if weighting == "elbo":  # Eq. 11's eps-form weight, per unit
        want = ((s2[i] - s2[i - 1]) / (2 * s2[i - 1])).clamp_max(1e3)
        torch.testing.assert_close(terms["w_inv"], want, rtol=1e-14, atol=0)
    else:
        assert terms["w_inv"].tolist() == [1.0] * 4
    # the loss: sum_k w_k^-1 (eps_hat_k - eps_k)^2 + ||Delta_hat - Delta||^2, on a toy encoder
    A = torch.randn(D, 32 * 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.02

    def enc(x, beta):
        return (1 - beta[:, None]) * (x.flatten(1) @ A.T)

    x = images(4)
    e_hat, d_hat = eps(4, 15), eps(4, 16)
    m.predict = Fixed(e_hat, d_hat)
    out = m.loss(x, encoder=enc, t_index=i, noise=noise)
    t = i.double() / N
    ft, fp = enc(x, t), enc(x, t - 1.0 / N)
    w = terms["w_inv"] if weighting == "elbo" else torch.ones(4, D, dtype=torch.float64)
    want = ((w * (e_hat - noise) ** 2).sum(1) + ((d_hat - (fp - ft)) ** 2).sum(1)).mean()
    assert float(out["loss"]) == pytest.approx(float(want), rel=1e-12)
    assert float(out["eps_mse"]) == pytest.approx(float(((e_hat - noise) ** 2).sum(1).mean()), rel=1e-12)
    mean, std = m.posterior(terms["z_t"], ft, fp, 2)  # Eq. 15-16 and Eq. 8 elementwise
    want_std = torch.sqrt((s2[2] - s2[1]) * s2[1] / s2[2])
    torch.testing.assert_close(std, want_std, rtol=1e-14, atol=0)
    torch.testing.assert_close(mean, (s2[1] / s2[2]) * terms["z_t"] + ((s2[2] - s2[1]) / s2[2]) * ft + fp - ft,
                               rtol=1e-14, atol=1e-14)


def test_per_unit_save_load_round_trip_and_validation(tmp_path):
    m = tiny_pipeline("per_unit")
    spread(m.vae)
    m = m.float()  # saved and loaded in float32
    m.set_phase(2)
    m.save_pretrained(tmp_path / "mb")
    back = MultiBeta.from_pretrained(tmp_path / "mb")
    assert back.config == m.config and back.config.vae.posterior_scale == "per_unit"
    torch.testing.assert_close(back.vae.sigma_grid(), m.vae.sigma_grid(), rtol=0, atol=0)
    torch.testing.assert_close(back.denoiser.sigma_table, m.denoiser.sigma_table, rtol=0, atol=0)
    assert back.denoiser.sigma_table.shape == (N + 1, D)
    x = images(2).float()
    torch.testing.assert_close(back.reconstruct(x, 0.5, generator=torch.Generator().manual_seed(1)),
                               m.reconstruct(x, 0.5, generator=torch.Generator().manual_seed(1)), rtol=0, atol=0)
    m.vae.save_pretrained(tmp_path / "vae")
    v = MultiBetaVAE.from_pretrained(tmp_path / "vae")
    torch.testing.assert_close(v.sigma(torch.tensor([0.3, 0.9])), m.vae.sigma(torch.tensor([0.3, 0.9])), rtol=0, atol=0)
    # the two parts must agree, and the schedule must have the per-unit shape
    with pytest.raises(ConfigError, match="denoiser.schedule"):
        multibeta_config(image_size=32, in_channels=1, latent_dim=D, num_steps=N,
                         vae={"posterior_scale": "per_unit"}, denoiser={"schedule": "isotropic"})
    with pytest.raises(ValueError, match=r"shape \[5, 3\]"):
        m.denoiser.set_schedule(torch.linspace(0.1, 1.0, N + 1))
    bad = torch.linspace(0.1, 1.0, N + 1)[:, None].repeat(1, D)
    bad[3, 2] = bad[2, 2]
    with pytest.raises(ValueError, match=r"unit 2"):
        m.denoiser.set_schedule(bad)
    with pytest.raises(ValueError, match="posterior_scale"):
        MultiBetaVAEConfig(posterior_scale="diagonal")
    iso = tiny_pipeline("isotropic")
    assert iso.vae.sigma(0.5).shape == (1,) and iso.vae.sigma_latent(torch.tensor([0.1, 0.2])).shape == (2, 1)
    assert m.vae.sigma(0.5).shape == (1, D) and m.vae.sigma_latent(torch.tensor([0.1, 0.2])).shape == (2, D)


def test_isotropic_schedule_messages_and_posterior_type_are_unchanged():
    """The isotropic denoiser keeps its shapes, messages and a float sigma~_t (mutation survivors of the per-unit
    branches)."""
    m = iso_denoiser(torch.linspace(0.1, 1.0, N + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"shape \[5\] \(N \+ 1 grid values\), got \(5, 3\)"):
        m.set_schedule(torch.ones(N + 1, D))
    bad = torch.linspace(0.1, 1.0, N + 1, dtype=torch.float64)
    bad[3] = bad[2]
    with pytest.raises(ValueError, match=r"sigma\[3\] = 0\.55 <= sigma\[2\] = 0\.55$"):
        m.set_schedule(bad)
    pu, _ = per_unit_denoiser()
    with pytest.raises(ValueError, match=r"shape \[5, 3\] \(N \+ 1 grid values x the latent's shape, schedule='per_unit'\)"):
        pu.set_schedule(torch.ones(N + 1))
    z = eps(2, 20)
    mean, std = m.posterior(z, z, z, 2)
    assert isinstance(std, float)
    _, std_pu = pu.posterior(z, z, z, 2)
    assert isinstance(std_pu, torch.Tensor) and std_pu.dtype == torch.float64 and std_pu.shape == (D,)


def test_per_unit_tables_keep_the_model_dtype():
    """A float32 model reads its tables in float32 off the grid (the interpolation weight is cast to the table's
    dtype), and the per-unit sigma~_t follows the latents' dtype."""
    torch.manual_seed(0)
    m = MultiBetaVAE(MultiBetaVAEConfig(image_size=32, in_channels=1, latent_dim=D, hidden=16, beta_embed_dim=8,
                                        num_steps=N, posterior_scale="per_unit"))
    for b in (0.3, torch.tensor([0.1, 0.6])):
        assert m.sigma(b).dtype == torch.float32 and m.log_s2(b).dtype == torch.float32
    torch.manual_seed(0)
    den = LatentDenoiser(LatentDenoiserConfig(latent_dim=D, hidden=16, depth=1, num_steps=N, schedule="per_unit"))
    den.set_schedule(torch.linspace(0.1, 1.0, N + 1)[:, None].repeat(1, D))
    z = eps(2, 21)  # float64 latents, float32 schedule
    _, std = den.posterior(z, z, z, 2)
    assert std.dtype == torch.float64
