"""SAMI's arguments reach the maths: generators, samplers, step counts, axes and z-modes are passed
through (each test rebuilds the expected output by hand from the same random stream). Written against
the surviving mutants of the mutation run (benches/results/mutation_sami_2026-12-06.md)."""

from __future__ import annotations

import pytest
import torch

from helpers import sami_images as images, tiny_sami as tiny_model


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kw", [dict(sampler="ddim"), dict(num_steps=3), dict(sampler="ddpm")])
def test_sample_from_the_prior_is_generate_on_z_drawn_first(kw):
    m = tiny_model()
    out = m.sample(2, generator=_gen(), **kw)
    g = _gen()
    z = torch.randn((2, 3), generator=g, dtype=torch.float64)
    assert torch.equal(out, m.generate(z, generator=g, **kw))
    assert not torch.equal(out, m.sample(2, generator=_gen(1), **kw))


def test_sample_without_condition_is_the_unconditional_chain():
    m = tiny_model()
    for kw in (dict(sampler="ddim"), dict(num_steps=3), {}):
        a = m.sample(2, generator=_gen(4), condition="none", **kw)
        assert torch.equal(a, m.sample_unconditional(2, generator=_gen(4), **kw))
    # the settings matter: DDIM with its 5 steps, DDIM with 3, DDPM with all 20 give different images
    outs = [m.sample(2, generator=_gen(4), condition="none", **kw) for kw in (dict(sampler="ddim"), dict(num_steps=3), {})]
    assert not torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    with pytest.raises(ValueError, match="condition must be 'prior' or 'none'"):
        m.sample(1, condition="data")
    with pytest.raises(ValueError, match="n must"):
        m.sample(0)


def test_reconstruct_guides_with_the_posterior_mean():
    m = tiny_model(sampler="ddim")
    x = images(2)
    a = m.reconstruct(x, generator=_gen(2))
    with torch.no_grad():
        mu = m.posterior(x)[0]
    assert torch.equal(a, m.generate(mu, generator=_gen(2)))
    assert not torch.equal(a, m.reconstruct(x, generator=_gen(3)))


def test_guided_eps_restricted_to_axes():
    m = tiny_model()
    x = images(3)
    t = torch.tensor([2, 9, 15])
    z = torch.randn(3, 3, dtype=torch.float64)
    g, _ = m.guidance(x, z, axes=(1,))
    with torch.no_grad():
        want = m.denoise(x, t) - m.guidance_coefficient(t, x, literal=False) * g
    torch.testing.assert_close(m.guided_eps(x, t, z, axes=(1,)), want)
    assert float((m.guided_eps(x, t, z) - want).abs().max()) > 1e-8


def test_timestep_samplers_use_the_generator():
    for kw in (dict(), dict(t_sampling="band", t_band=(3, 7), t_band_frac=0.5), dict(t_sampling="beta")):
        m = tiny_model(**kw)
        a = m.sample_timesteps(64, generator=_gen(5))
        assert torch.equal(a, m.sample_timesteps(64, generator=_gen(5)))
        assert not torch.equal(a, m.sample_timesteps(64, generator=_gen(6)))
        assert a.dtype == torch.long and int(a.min()) >= 0 and int(a.max()) <= 19


def test_band_sampler_mixture_weights():
    m = tiny_model(t_sampling="band", t_band=(3, 7), t_band_frac=0.5)
    t = m.sample_timesteps(100_000, generator=_gen(0))
    inside = float(((t >= 3) & (t < 7)).double().mean())
    assert inside == pytest.approx(0.5 + 0.5 * 4 / 20, abs=0.01)  # the band's share + the uniform part's
    assert int(t.min()) == 0 and int(t.max()) == 19


def test_beta_sampler_draws_in_float64():
    """t = floor(T v^(1/a)): with a = 2 and T = 20, t < 5 needs v < 1/16 (P = 1/16), the pdf of t/T is 2u."""
    m = tiny_model(t_sampling="beta", t_beta_a=2.0)
    t = m.sample_timesteps(200_000, generator=_gen(1)).double()
    assert float((t < 5).double().mean()) == pytest.approx(1 / 16, abs=0.003)
    g = _gen(1)
    v = torch.rand(200_000, generator=g, dtype=torch.float64)
    assert torch.equal(t.long(), (v.pow(0.5) * 20).long().clamp_(0, 19))


def test_kl_annealing_over_one_step():
    m = tiny_model(kl_weight=3.0, kl_anneal_steps=1, kl_anneal_start=0.01)
    assert m.kl_weight_at(0) == pytest.approx(0.03) and m.kl_weight_at(1) == 3.0


def test_load_denoiser_sources_and_the_freeze_switch():
    from diffrep.methods.sami import SAMI
    from helpers import tiny_sami_config

    src = tiny_model(seed=7)
    holder = torch.nn.Module()
    holder.unet = src.denoiser  # a module holding its U-Net as 'unet' (e.g. a plain DDPM)
    for source in (src, src.denoiser, holder):
        m = SAMI(tiny_sami_config()).double().load_denoiser(source)
        assert all(torch.equal(a, b) for a, b in zip(m.denoiser.parameters(), src.denoiser.parameters()))
        assert all(p.requires_grad for p in m.denoiser.parameters())  # config.freeze_denoiser is False
    frozen = SAMI(tiny_sami_config()).double().load_denoiser(src, freeze=True)
    assert not any(p.requires_grad for p in frozen.denoiser.parameters())
    free = SAMI(tiny_sami_config()).double().load_denoiser(src, freeze=False)
    assert all(p.requires_grad for p in free.denoiser.parameters())
    by_config = SAMI(tiny_sami_config(freeze_denoiser=True)).double().load_denoiser(src)
    assert not any(p.requires_grad for p in by_config.denoiser.parameters())
    with pytest.raises(TypeError, match="Module is not a UNet"):
        SAMI(tiny_sami_config()).load_denoiser(torch.nn.Module())
