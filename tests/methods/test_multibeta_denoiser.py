"""Value tests of the non-linear latent diffusion (docs/methods/multibeta.md#phase-2-the-latent-diffusion) on a
toy encoder whose f(x, t) is known in closed form: the Eq. 19 inputs, targets and weights, the Algorithm 2
update (and its printed sign, the ancestral and deterministic variants), the oracle sampler (exact eps and
Delta carry f(x, t) to f(x, 0) exactly; the printed sign lands on 2 f(x, tau) - f(x, 0)), the grid
alignment, the determinism, and the input validation."""

from __future__ import annotations

import pytest
import torch

from diffrep.methods.multibeta import LatentDenoiser, LatentDenoiserConfig

N = 8
A = torch.tensor([[1.0, -0.5, 0.25], [0.3, 0.8, -1.2]], dtype=torch.float64)
C = torch.tensor([0.7, -0.4], dtype=torch.float64)


def f_toy(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """f(x, t) = (1 - t) A x + t^2 c: smooth in t, non-linear in t, linear in x."""
    t = t.to(torch.float64)[:, None]
    return (1 - t) * (x @ A.T) + t**2 * C


def xs(n=5, seed=0):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sigmas(n=N):
    return torch.sqrt(1e-4 + torch.arange(n + 1, dtype=torch.float64) / n * 0.9 + (torch.arange(n + 1) / n) ** 2 * 0.1)


def den(**kw) -> LatentDenoiser:
    cfg = dict(latent_dim=2, hidden=16, depth=1, num_steps=N)
    cfg.update(kw)
    torch.manual_seed(0)
    m = LatentDenoiser(LatentDenoiserConfig(**cfg)).double()
    m.set_schedule(sigmas(cfg["num_steps"]))
    return m


class Fixed:
    """A stand-in for predict: returns given (eps_hat, Delta_hat) and records its inputs."""

    def __init__(self, eps, delta):
        self.eps, self.delta, self.calls = eps, delta, []

    def __call__(self, z, i):
        self.calls.append((z.clone(), i.clone()))
        return self.eps.expand_as(z), self.delta.expand_as(z)


class _Const(torch.nn.Module):
    """A network with constant heads (what the ``delta_over_tau`` head outputs, before predict multiplies by tau)."""

    def __init__(self, eps, delta):
        super().__init__()
        self.eps, self.delta = eps, delta

    def forward(self, z, t):
        return self.eps.expand_as(z), self.delta.expand_as(z)


def oracle(m, x):
    """The exact heads for the toy encoder and the batch x: eps = (z - f(x, t)) / sigma_t, Delta = f(x, t - tau) - f(x, t)."""
    tau = m.config.tau
    calls = []

    def predict(z, i):
        calls.append(int(i[0]))
        t = i.double() * tau
        f_t = f_toy(x, t)
        return (z - f_t) / m.sigma_table[i][:, None], f_toy(x, t - tau) - f_t

    return predict, calls


def test_eq19_inputs_targets_and_value():
    m = den()
    x = xs()
    i = torch.tensor([1, 2, 4, 7, 8])
    eps = xs(seed=3)[:, :2]
    fixed = Fixed(torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.1, 0.2], dtype=torch.float64))
    m.predict = fixed
    out = m.loss(x, step=0, encoder=f_toy, t_index=i, noise=eps)
    t = i.double() / N
    f_t, f_prev = f_toy(x, t), f_toy(x, t - 1.0 / N)
    z_in, i_in = fixed.calls[0]
    torch.testing.assert_close(z_in, f_t + sigmas()[i][:, None] * eps, rtol=1e-13, atol=1e-13)  # Eq. 18's z_t
    assert i_in.tolist() == i.tolist()
    # the Delta target by hand: f(x, t - tau) - f(x, t) = (1/N) A x + ((t - 1/N)^2 - t^2) c
    delta = (1.0 / N) * (x @ A.T) + ((t - 1.0 / N) ** 2 - t**2)[:, None] * C
    torch.testing.assert_close(f_prev - f_t, delta, rtol=1e-12, atol=1e-14)
    eps_err = (fixed.eps - eps).pow(2).sum(1)
    delta_err = (fixed.delta - delta).pow(2).sum(1)
    assert float(out["loss"]) == pytest.approx(float((eps_err + delta_err).mean()), rel=1e-12)  # w = 1
    assert float(out["eps_mse"]) == pytest.approx(float(eps_err.mean()), rel=1e-12)
    assert float(out["delta_mse"]) == pytest.approx(float(delta_err.mean()), rel=1e-12)
    terms = m.eq19_terms(f_t, f_prev, i, eps)
    torch.testing.assert_close(terms["delta"], delta, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(terms["eps"], eps)


def test_eq19_weighting_and_options():
    x, i, eps = xs(), torch.tensor([1, 2, 4, 7, 8]), xs(seed=3)[:, :2]
    t = i.double() / N
    delta = f_toy(x, t - 1.0 / N) - f_toy(x, t)
    e_hat, d_hat = torch.tensor([0.5, -1.0], dtype=torch.float64), torch.tensor([0.1, 0.2], dtype=torch.float64)
    eps_err = (e_hat - eps).pow(2).sum(1)
    s2 = sigmas().pow(2)
    w_inv = ((s2[i] - s2[i - 1]) / (2 * s2[i - 1])).clamp_max(3.0)  # the ELBO weight of Sec. 4.1, capped
    assert float(w_inv[0]) == 3.0  # t = tau: sigma_0^2 = 1e-4, the raw weight is ~ 560
    for kw, want in [
        (dict(weighting="elbo", max_weight=3.0), w_inv * eps_err + (d_hat - delta).pow(2).sum(1)),
        (dict(delta_weight=0.25), eps_err + 0.25 * (d_hat - delta).pow(2).sum(1)),
        (dict(delta_over_tau=True), eps_err + ((N * d_hat) / N - delta).pow(2).sum(1) * N**2),
    ]:
        m = den(**kw)
        inner = Fixed(e_hat, d_hat)
        if kw.get("delta_over_tau"):  # the head outputs Delta / tau: predict returns tau x the net's output
            m.net = _Const(e_hat, N * d_hat)
        else:
            m.predict = inner
        out = m.loss(x, step=0, encoder=f_toy, t_index=i, noise=eps)
        assert float(out["loss"]) == pytest.approx(float(want.mean()), rel=1e-12), kw
    m = den(weighting="elbo", max_weight=1e9)
    torch.testing.assert_close(m.weight_inv(i), (s2[i] - s2[i - 1]) / (2 * s2[i - 1]))
    with pytest.raises(ValueError, match="integer grid indices"):  # all True would index as a mask, not as 1s
        m.weight_inv(torch.ones(5, dtype=torch.bool))


def test_loss_draws_t_from_1_to_N_and_gives_no_gradient_to_the_encoder():
    m = den()
    x = xs(64)
    seen = []
    phi = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def enc(xx, t):
        seen.append(t.clone())
        return phi * f_toy(xx, t)

    out = m.loss(x, step=0, encoder=enc, generator=torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert phi.grad is None  # Sec. 8 / spec test 12: the targets carry no gradient to phi
    t = seen[0]
    assert t.shape == (128,)  # one batched call on the 2B pairs
    i = torch.round(t[:64] * N).long()
    assert int(i.min()) >= 1 and int(i.max()) <= N and len(set(i.tolist())) > 4
    torch.testing.assert_close(t[64:], t[:64] - 1.0 / N)  # the second half is t - tau


def test_alg2_update_by_hand():
    z = xs(4, seed=5)[:, :2]
    e, d = torch.tensor([0.3, -0.7], dtype=torch.float64), torch.tensor([0.05, -0.02], dtype=torch.float64)
    xi = xs(4, seed=6)[:, :2]
    s = sigmas()
    for kw, want in [
        ({}, z - s[5] * e + d + s[4] * xi),  # steps 2-4 with the sign consistent with Eq. 19
        (dict(printed_sign=True), z - s[5] * e - d + s[4] * xi),  # the printed step 3
        (dict(sampler="deterministic"), z - s[5] * e + d + s[4] * e),  # xi := eps_hat (DDIM-like)
        (dict(sampler="deterministic", deterministic_noise="zero"), z - s[5] * e + d),
        (dict(sampler="ancestral"),  # the Eq. 17 mean with the Eq. 8 std
         (s[4] ** 2 / s[5] ** 2) * z + ((s[5] ** 2 - s[4] ** 2) / s[5] ** 2) * (z - s[5] * e) + d
         + torch.sqrt((s[5] ** 2 - s[4] ** 2) * s[4] ** 2 / s[5] ** 2) * xi),
    ]:
        m = den(**kw)
        m.predict = Fixed(e, d)
        torch.testing.assert_close(m.step(z, 5, xi=xi), want, rtol=1e-13, atol=1e-13)
        assert m.predict.calls[0][1].tolist() == [5] * 4


@pytest.mark.parametrize("start", [N, 5, 1])
def test_oracle_denoise_carries_f_t_to_f_0_exactly_and_the_printed_sign_does_not(start):
    x = xs()
    eps = xs(seed=9)[:, :2]
    t0 = torch.full((5,), start / N, dtype=torch.float64)
    z = f_toy(x, t0) + sigmas()[start] * eps
    zero = torch.zeros(5, dtype=torch.float64)
    tau = torch.full((5,), 1.0 / N, dtype=torch.float64)
    m = den(sampler="deterministic", deterministic_noise="zero")  # the noise-free limit: xi = 0
    m.predict, calls = oracle(m, x)
    out = m.denoise(z, start / N, 0.0)
    torch.testing.assert_close(out, f_toy(x, zero), rtol=0, atol=1e-12)
    assert calls == list(range(start, 0, -1))  # one call per grid step, from i = start down to 1
    p = den(sampler="deterministic", deterministic_noise="zero", printed_sign=True)
    p.predict, _ = oracle(p, x)
    bad = p.denoise(z, start / N, 0.0)  # each step lands on 2 f(x, t) - f(x, t - tau); eps_hat re-centres the next
    torch.testing.assert_close(bad, 2 * f_toy(x, tau) - f_toy(x, zero), rtol=0, atol=1e-12)
    assert float((bad - f_toy(x, zero)).abs().max()) > 0.05


def test_oracle_stochastic_alg2_ends_at_f_0_plus_the_last_noise():
    """With fresh noise, the exact eps re-centres every step: z_0 = f(x, 0) + sigma_0 xi_last, xi_last the N-th draw."""
    x = xs()
    m = den()
    m.predict, _ = oracle(m, x)
    z = f_toy(x, torch.ones(5, dtype=torch.float64)) + sigmas()[N] * xs(seed=4)[:, :2]
    out = m.denoise(z, 1.0, 0.0, generator=torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    for _ in range(N):
        xi = torch.randn(5, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(out, f_toy(x, torch.zeros(5, dtype=torch.float64)) + sigmas()[0] * xi, rtol=0, atol=1e-12)


def test_oracle_stops_at_beta_to():
    x = xs()
    m = den(sampler="deterministic", deterministic_noise="zero")
    m.predict, calls = oracle(m, x)
    z = f_toy(x, torch.full((5,), 0.75, dtype=torch.float64))
    out = m.denoise(z, 0.75, 0.25)
    torch.testing.assert_close(out, f_toy(x, torch.full((5,), 0.25, dtype=torch.float64)), rtol=0, atol=1e-12)
    assert calls == [6, 5, 4, 3]
    # beta off the grid snaps to the nearest grid value
    calls.clear()
    m.denoise(z, 0.76, 0.26)
    assert calls == [6, 5, 4, 3]


def test_ancestral_oracle_posterior_mean():
    """ancestral with the exact heads and xi = 0: z_{t-tau} = mu~_t(z_t, x) of the corrected Eq. 16."""
    x = xs()
    m = den(sampler="ancestral")
    m.predict, _ = oracle(m, x)
    s = sigmas()
    t = torch.full((5,), 5 / N, dtype=torch.float64)
    z = f_toy(x, t) + s[5] * xs(seed=2)[:, :2]
    out = m.step(z, 5, xi=torch.zeros(5, 2, dtype=torch.float64))
    f_t, f_prev = f_toy(x, t), f_toy(x, t - 1 / N)
    mu = (s[4] ** 2 / s[5] ** 2) * z + ((s[5] ** 2 - s[4] ** 2) / s[5] ** 2) * f_t + f_prev - f_t
    torch.testing.assert_close(out, mu, rtol=1e-13, atol=1e-13)


def test_sample_takes_exactly_N_steps_on_the_installed_schedule_and_is_reproducible():
    m = den(num_steps=6)
    assert m.sigma_table.tolist() == sigmas(6).tolist()
    seen = []
    real = m.predict

    def spy(z, i):
        seen.append(int(i[0]))
        return real(z, i)

    m.predict = spy
    a = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert seen == [6, 5, 4, 3, 2, 1] and a.shape == (3, 2)
    b = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    c = m.sample(3, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)
    d = den(num_steps=6, sampler="deterministic")
    z = xs(3)[:, :2]
    assert torch.equal(d.denoise(z, 1.0, generator=torch.Generator().manual_seed(0)),
                       d.denoise(z, 1.0, generator=torch.Generator().manual_seed(5)))


def test_spatial_latent_uses_the_two_output_unet():
    from diffrep.nn.unet import UNetConfig

    u = UNetConfig(image_size=4, in_channels=2, out_channels=2, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                   attention_resolutions=(), num_groups=4, num_outputs=2)
    m = LatentDenoiser(LatentDenoiserConfig(latent="spatial", latent_channels=2, latent_size=4, unet=u, num_steps=4))
    m.set_schedule(sigmas(4).float())
    e, d = m.predict(torch.randn(2, 2, 4, 4), torch.tensor([1, 4]))
    assert e.shape == d.shape == (2, 2, 4, 4)
    assert m.sample(2).shape == (2, 2, 4, 4)
    enc = lambda x, t: x[:, :2, :4, :4] * (1 - t[:, None, None, None])  # noqa: E731
    out = m.loss(torch.randn(3, 2, 4, 4), step=0, encoder=enc)
    assert torch.isfinite(out["loss"])


def test_input_validation():
    m = den()
    z = xs(2)[:, :2]
    fresh = LatentDenoiser(LatentDenoiserConfig(latent_dim=2, hidden=8, depth=1, num_steps=N))
    with pytest.raises(RuntimeError, match="set_schedule"):
        fresh.denoise(z.float(), 0.5)
    with pytest.raises(RuntimeError, match="set_schedule"):
        fresh.sample(2)
    with pytest.raises(ValueError, match="strictly increase"):
        fresh.set_schedule(torch.tensor([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    with pytest.raises(ValueError, match="positive"):
        fresh.set_schedule(torch.tensor([0.0, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    with pytest.raises(ValueError, match=r"shape \[9\]"):
        fresh.set_schedule(torch.ones(5))
    # a list is named as one (it read "got ()", the shape of nothing)
    with pytest.raises(ValueError, match=r"^set_schedule: sigmas must be a tensor of shape \[9\] \(N \+ 1 grid values\), "
                                         r"got list$"):
        fresh.set_schedule([0.1 * k for k in range(1, 10)])
    with pytest.raises(ValueError, match="from a larger beta"):
        m.denoise(z, 0.25, 0.5)
    with pytest.raises(ValueError, match="steps must be 4"):
        m.denoise(z, 0.5, 0.0, steps=2)
    assert m.denoise(z, 0.5, 0.0, steps=4).shape == (2, 2)
    assert torch.equal(m.denoise(z, 0.5, 0.5), z)  # no grid step between equal betas
    assert torch.equal(m.denoise(z, 0.5, 0.49), z)  # both snap to index 4
    with pytest.raises(ValueError, match=r"beta_from must lie in \[0, B=1\]"):
        m.denoise(z, 1.5)
    with pytest.raises(ValueError, match="beta_from must be a finite number"):
        m.denoise(z, float("nan"))
    with pytest.raises(ValueError, match=r"z must have shape \[B, 2\]"):
        m.denoise(torch.zeros(2, 3, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match="n must be a positive int"):
        m.sample(0)
    with pytest.raises(TypeError, match="encoder must be a callable"):
        m.loss(xs(), step=0)
    with pytest.raises(ValueError, match="t_index must lie in 1..N"):
        m.loss(xs(2), step=0, encoder=f_toy, t_index=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="t_index must be an integer tensor"):
        m.loss(xs(2), step=0, encoder=f_toy, t_index=torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="noise must have shape"):
        m.loss(xs(2), step=0, encoder=f_toy, noise=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="encoder output"):
        m.loss(xs(2), step=0, encoder=lambda x, t: x)
    with pytest.raises(ValueError, match="i must lie in 1..N"):
        m.step(z, 0)
    from diffrep.config import ConfigError
    from diffrep.nn.unet import UNetConfig
    with pytest.raises(ConfigError, match="num_outputs=2"):
        LatentDenoiserConfig(latent="spatial", unet=UNetConfig(image_size=8, in_channels=4, out_channels=4,
                                                               model_channels=32, channel_mult=(1, 2), attention_resolutions=(), num_outputs=1))


def test_posterior_is_gaussian_conditioning_of_the_joint():
    """Eq. 15-16 (x read as f(x, t)) against brute-force conditioning of the joint of (z_{t-tau}, z_t) under
    Eq. 13 at t - tau and Eq. 14; with f = identity it is Eq. 8."""
    m = den()
    x = xs(3)
    s = sigmas()
    for i in (1, 4, 8):
        t = torch.full((3,), i / N, dtype=torch.float64)
        f_t, f_prev = f_toy(x, t), f_toy(x, t - 1 / N)
        z_t = f_t + s[i] * xs(3, seed=i)[:, :2]
        mean, std = m.posterior(z_t, f_t, f_prev, i)
        # joint per coordinate: z_p = f_prev + s_p e1, z_t = z_p + (f_t - f_prev) + s_step e2
        sp2, st2 = float(s[i - 1] ** 2), float(s[i] ** 2)
        cov = torch.tensor([[sp2, sp2], [sp2, st2]], dtype=torch.float64)
        cond_mean = f_prev + cov[0, 1] / cov[1, 1] * (z_t - f_t)
        cond_var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        torch.testing.assert_close(mean, cond_mean, rtol=1e-12, atol=1e-12)
        assert std == pytest.approx(float(cond_var.sqrt()), rel=1e-12)
        # f = identity (linear diffusion, Eq. 7-8): the mean is (s_p^2 z_t + s_step^2 x) / s_t^2
        y = xs(3, seed=20 + i)[:, :2]
        lin, _ = m.posterior(z_t, y, y, i)
        torch.testing.assert_close(lin, (sp2 * z_t + (st2 - sp2) * y) / st2, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="1..N"):
        m.posterior(z_t, f_t, f_prev, 0)


def test_delta_target_is_computed_in_float32_under_bf16_autocast():
    m = LatentDenoiser(LatentDenoiserConfig(latent_dim=2, hidden=8, depth=1, num_steps=N))
    m.set_schedule(sigmas().float())
    seen = []

    def enc(x, t):
        seen.append((x.dtype, t.dtype, torch.is_autocast_enabled("cpu")))
        return f_toy(x.double(), t).float()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m.loss(xs().to(torch.bfloat16), step=0, encoder=enc, t_index=torch.tensor([1, 2, 3, 4, 5]))
    assert seen == [(torch.float32, torch.float32, False)]
    assert torch.isfinite(out["loss"])


def test_validation_details_named_fields_and_edges():
    """Each config error names its field; the edges of each check (mutation testing found them unpinned)."""
    from diffrep.config import ConfigError
    from diffrep.nn.unet import UNetConfig

    base = dict(image_size=8, in_channels=4, out_channels=4, model_channels=32, channel_mult=(1, 2),
                attention_resolutions=(), num_outputs=2)
    for kw, field in [(dict(out_channels=3), "unet.in_channels"), (dict(num_outputs=1), "unet.num_outputs"),
                      (dict(image_size=16), "unet.image_size"), (dict(latent_dim=3), "unet.latent_dim")]:
        with pytest.raises(ConfigError) as exc:
            LatentDenoiserConfig(latent="spatial", unet=UNetConfig(**{**base, **kw}))
        assert exc.value.field.endswith(field) and "None" not in str(exc.value), kw
    m = den()
    z = xs(2)[:, :2]
    with pytest.raises(TypeError, match=r"LatentDenoiser.denoise: z must be a tensor \[B, 2\], got list"):
        m.denoise([[0.0, 0.0]], 0.5)
    with pytest.raises(TypeError, match=r"^LatentDenoiser.denoise: z must be a floating-point tensor, got dtype torch.int64$"):
        m.denoise(torch.zeros(2, 2, dtype=torch.int64), 0.5)
    assert m.denoise(z[:1], 0.25).shape == (1, 2)  # a batch of one
    with pytest.raises(ValueError, match="beta_from must be a finite number"):
        m.denoise(z, "0.5")
    out = m.denoise(z, torch.tensor(0.5), generator=torch.Generator().manual_seed(0))  # a 0-dim tensor is a number
    torch.testing.assert_close(out, m.denoise(z, 0.5, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=r"sigma\[2\] = 0.2 <= sigma\[1\] = 0.2"):
        m.set_schedule(torch.tensor([0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    with pytest.raises(ValueError, match=r"step: xi must have shape \(2, 2\)"):
        m.step(z, 3, xi=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch must be a tensor of images"):
        m.loss(torch.zeros(3), step=0, encoder=f_toy)
    with pytest.raises(ValueError, match="batch must be a tensor of images"):
        m.loss([1.0, 2.0], step=0, encoder=f_toy)
    with pytest.raises(ValueError, match=r"t_index must be an integer tensor of shape \[2\]"):
        m.loss(xs(2), step=0, encoder=f_toy, t_index=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="t_index must lie in 1..N=8"):
        m.loss(xs(2), step=0, encoder=f_toy, t_index=torch.tensor([1, N + 1]))
    fresh = LatentDenoiser(LatentDenoiserConfig(latent_dim=2, hidden=8, depth=1, num_steps=N))
    with pytest.raises(RuntimeError, match=r"LatentDenoiser.loss: no noise schedule"):
        fresh.loss(xs(2), step=0, encoder=f_toy)


def test_loss_draws_come_from_the_generator_and_cover_the_grid():
    m = den()
    x = xs(16)
    seen = []

    def enc(xx, t):
        seen.append(t.clone())
        return f_toy(xx, t)

    torch.manual_seed(1)
    a = m.loss(x, step=0, encoder=enc, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(2)
    b = m.loss(x, step=0, encoder=enc, generator=torch.Generator().manual_seed(3))
    assert float(a["loss"]) == float(b["loss"])
    assert torch.equal(seen[0], seen[1])
    m.loss(xs(400), step=0, encoder=enc, generator=torch.Generator().manual_seed(0))
    assert set(torch.round(seen[2][:400] * N).long().tolist()) == set(range(1, N + 1))


@pytest.mark.parametrize("kw", [dict(sampler="deterministic"), dict(sampler="deterministic", printed_sign=True),
                                dict(sampler="deterministic", deterministic_noise="zero")])
def test_per_example_beta_equals_per_example_scalar_calls(kw):
    """denoise with a tensor [B] of beta_from (and of beta_to) equals one scalar call per example."""
    m = den(**kw)
    z = xs(5, seed=3)[:, :2]
    b_from = torch.tensor([1.0, 0.5, 0.25, 0.75, 0.5], dtype=torch.float64)
    b_to = torch.tensor([0.0, 0.25, 0.0, 0.75, 0.125], dtype=torch.float64)
    for to in (0.0, b_to):
        out = m.denoise(z, b_from, to)
        for b in range(5):
            t = to if isinstance(to, float) else float(to[b])
            want = m.denoise(z[b:b + 1], float(b_from[b]), t)
            torch.testing.assert_close(out[b:b + 1], want, rtol=0, atol=1e-12)
    assert torch.equal(out[3], z[3])  # beta_from == beta_to: untouched


def test_per_example_beta_noise_is_drawn_per_grid_step_and_one_range_matches_the_scalar_call():
    """alg2 with per-example beta: at each grid step i (from the largest beta_from down) one draw xi_i [B] from the
    generator; example b takes xi_i[b] at its steps i. A batch sharing one range equals the scalar call."""
    m = den()
    z = xs(4, seed=7)[:, :2]
    b_from = torch.tensor([1.0, 0.5, 0.375, 0.75], dtype=torch.float64)
    out = m.denoise(z, b_from, 0.0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    xi = {i: torch.randn(4, 2, generator=g, dtype=torch.float64) for i in range(N, 0, -1)}
    for b in range(4):
        zb = z[b:b + 1]
        for i in range(int(round(float(b_from[b]) * N)), 0, -1):
            zb = m.step(zb, i, xi=xi[i][b:b + 1])
        torch.testing.assert_close(out[b:b + 1], zb, rtol=0, atol=1e-12)
    same = m.denoise(z, torch.full((4,), 0.5, dtype=torch.float64), 0.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(same, m.denoise(z, 0.5, 0.0, generator=torch.Generator().manual_seed(3)))


def test_per_example_beta_validation():
    m = den()
    z = xs(3)[:, :2]
    with pytest.raises(ValueError, match=r"beta_from must be a number or a tensor of shape \[3\]"):
        m.denoise(z, torch.tensor([0.5, 0.25]))
    with pytest.raises(ValueError, match=r"beta_to must be a number or a tensor of shape \[3\]"):
        m.denoise(z, 0.5, torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r"beta_from must lie in \[0, B=1\]"):
        m.denoise(z, torch.tensor([0.5, 1.5, 0.25]))
    with pytest.raises(ValueError, match="beta_from must be finite"):
        m.denoise(z, torch.tensor([0.5, float("nan"), 0.25]))
    with pytest.raises(ValueError, match=r"from a larger beta.*example 1"):
        m.denoise(z, torch.tensor([0.5, 0.25, 0.5]), torch.tensor([0.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match=r"steps must be 2\.\.4 \(per example\)"):
        m.denoise(z, torch.tensor([0.5, 0.25, 0.5]), 0.0, steps=4)
    assert m.denoise(z, torch.tensor([0.5, 0.5, 0.5]), 0.0, steps=4).shape == (3, 2)
    assert torch.equal(m.denoise(z, torch.tensor([0.5]), 0.5), z)  # a one-element tensor is a number
