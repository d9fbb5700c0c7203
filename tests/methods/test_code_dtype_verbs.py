"""Every other verb that takes a code, tokens, units or a direction: a bf16, float16 or float64 one is cast to
the model's dtype at the family's shared checker, and an integer tensor is refused with a TypeError naming the
argument (docs/architecture.md#inputs). Before: SAMI's ``draw_latents`` drew its noise in a bf16 mu's dtype and
its guidance returned float64 log q for a float64 z; EncDiff's ``condition`` returned the tokens in their own
dtype; DyGA's ``normalise`` and ``align`` ran in bf16 on bf16 tokens; ``LatentDenoiser.predict`` failed inside
F.linear and ``LatentDenoiser.step`` returned float64 for a float64 ``xi``; ParamReL's z, z_override values and stored latents, MultiBeta's edit direction and the traversal
analysis's codes took an integer tensor silently; the multi-beta checker refused one as a shape error.
The independent computation of each case is the same call with the code cast to float32 by hand."""

from __future__ import annotations

import functools

import pytest
import torch

from diffrep.analysis.traversal import centroid_shifts, prior_decoder
from diffrep.methods.dyga import DyGA, DyGAConfig, align
from diffrep.methods.encdiff import EncDiff
from diffrep.methods.paramrel import ReverseSample
from helpers import tiny_multibeta_phase2, break_zero_init, perturbed, tiny_paramrel, tiny_sami, untrained_on_purpose

OTHER = [torch.bfloat16, torch.float16, torch.float64]


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int, c: int, s: int) -> torch.Tensor:
    return torch.rand(n, c, s, s, generator=_g(1)) * 2 - 1


def _same(got, want):
    """got == want exactly, tensor by tensor (tuples, lists, dicts), every result float32 and finite."""
    if isinstance(want, dict):
        return all(_same(got[k], want[k]) for k in want)
    if isinstance(want, (tuple, list)):
        return len(got) == len(want) and all(_same(a, b) for a, b in zip(got, want))
    if not isinstance(want, torch.Tensor):
        return got == want
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert not want.dtype.is_floating_point or bool(torch.isfinite(got).all())
    return torch.equal(got, want)


# -- the models (cached: each verb case only calls them) ------------------------------------------------
@functools.cache
def _paramrel():
    return perturbed(tiny_paramrel("continuous", latent=4, steps=3), 0.3).eval()  # perturbed: z matters


@functools.cache
def _paramrel_rev():
    return _paramrel().reverse_sample(_images(2, 1, 8))


@functools.cache
def _sami():
    return tiny_sami(dtype=torch.float32, sampler="ddim", sample_steps=3).eval()


@functools.cache
def _sami_posterior():
    with torch.no_grad():
        return tuple(v.detach() for v in _sami().posterior(_images(2, 1, 8)))


@functools.cache
def _encdiff():
    """A small EncDiff (the default's U-Net, extractor and first stage at a fraction of the width and size: the
    cast is at the verbs' shared checker, so the equalities are exact at any size), DyGA on."""
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.encdiff import EncDiffConfig
    from diffrep.methods.encdiff_nets import SmallExtractorConfig
    from diffrep.nn.unet import UNetConfig
    from diffrep.nn.vq import VQAutoencoderConfig

    un = UNetConfig(image_size=8, in_channels=3, out_channels=3, model_channels=8, channel_mult=(1, 2),
                    num_res_blocks=1, attention_resolutions=(4,), num_heads=2, num_groups=4, context_dim=8)
    sx = SmallExtractorConfig(image_size=16, num_units=4, token_dim=8, channels=(8, 16), hidden=16, mlp_hidden=(8,))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)
    torch.manual_seed(0)
    m = untrained_on_purpose(EncDiff(EncDiffConfig(unet=un, small_extractor=sx, first_stage=vq,
                              dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, min_mass=2),
                              schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015,
                                                           beta_end=0.0155), sample_steps=2)))
    break_zero_init(m.unet, std=0.05)
    return m.eval()


@functools.cache
def _encdiff_tokens():
    m = _encdiff()
    return m.tokens(_images(2, m.config.image_channels, m.config.image_size))


@functools.cache
def _multibeta():
    return tiny_multibeta_phase2()


@functools.cache
def _dyga():
    torch.manual_seed(0)
    m = DyGA(DyGAConfig(num_units=3, token_dim=4, n_components=2, max_components=4, max_iter=5, min_mass=1.0)).eval()
    m.fit(torch.randn(60, 3, 4, generator=_g(4)))
    return m


# -- each verb: (name, call(code), the code it is given, the argument name its TypeError names) --------
def _paramrel_z():
    return _paramrel_rev().z[-1].clone()


def _paramrel_values():
    return _paramrel_rev().z[-1, :, 1:2].clone()


def _dyga_tokens():
    return torch.randn(5, 3, 4, generator=_g(5))


CASES = {
    "paramrel.sample(z)": (lambda z: _paramrel().sample(2, z=z, generator=_g(3)), _paramrel_z, "z"),
    "paramrel.sample(z per step)": (lambda z: _paramrel().sample(2, z=z, generator=_g(3)), lambda: _paramrel_rev().z, "z"),
    "paramrel.decode(z_override)": (lambda v: _paramrel().decode(_paramrel_rev(), z_override=([1], v)),
                                    _paramrel_values, "z_override values"),
    "paramrel.decode(rev.z)": (lambda z: _paramrel().decode(ReverseSample(z, _paramrel_rev().subcode)),
                               lambda: _paramrel_rev().z, "rev.z"),
    "analysis.prior_decoder": (lambda z: prior_decoder(_paramrel())(z), _paramrel_z, "codes"),
    "analysis.centroid_shifts": (lambda z: centroid_shifts(prior_decoder(_paramrel()), z, [0],
                                                           torch.tensor([[-0.3, 0.7]]))["images"],
                                 _paramrel_z, "base_codes"),
    "sami.draw_latents(mu)": (lambda mu: _sami().draw_latents(mu, _sami_posterior()[1], generator=_g(2)),
                              lambda: _sami_posterior()[0], "mu"),
    "sami.draw_latents(logvar)": (lambda lv: _sami().draw_latents(_sami_posterior()[0], lv, generator=_g(2)),
                                  lambda: _sami_posterior()[1], "logvar"),
    "sami.guidance(z)": (lambda z: _sami().guidance(_images(2, 1, 8), z), lambda: _sami_posterior()[0], "z"),
    "sami.guidance(z samples)": (lambda z: _sami().guidance(_images(2, 1, 8), z),
                                 lambda: torch.stack([_sami_posterior()[0], _sami_posterior()[0] + 0.3]), "z"),
    "sami.guidance(analytic)": (lambda mu: _sami().guidance(_images(2, 1, 8), analytic=(mu, _sami_posterior()[1])),
                                lambda: _sami_posterior()[0], "analytic"),
    "sami.guided_eps(z)": (lambda z: _sami().guided_eps(_images(2, 1, 8), torch.tensor([5, 10]), z),
                           lambda: _sami_posterior()[0], "z"),
    "sami.generate(z)": (lambda z: _sami().generate(z, generator=_g(3)), lambda: _sami_posterior()[0], "z"),
    "sami.generate(analytic)": (lambda mu: _sami().generate(analytic=(mu, _sami_posterior()[1]), generator=_g(3)),
                                lambda: _sami_posterior()[0], "analytic"),
    "encdiff.condition(c)": (lambda c: _encdiff().condition(c), _encdiff_tokens, "c"),
    "encdiff.generate(tokens)": (lambda c: _encdiff().generate(c, generator=_g(3), steps=1), _encdiff_tokens, "tokens"),
    "encdiff.sample(tokens)": (lambda c: _encdiff().sample(2, tokens=c, generator=_g(3), steps=1), _encdiff_tokens,
                               "tokens"),
    "multibeta.denoiser.predict(z)": (lambda z: _multibeta().denoiser.predict(z, torch.tensor([1, 2])),
                                      lambda: _multibeta().encode(_images(2, 1, 32), 0.5), "z"),
    "multibeta.denoiser.step(xi)": (lambda xi: _multibeta().denoiser.step(torch.ones(2, 3) * 0.2, 2, xi=xi),
                                    lambda: torch.randn(2, 3, generator=_g(6)), "xi"),
    "multibeta.edit(direction)": (lambda d: _multibeta().edit(_images(2, 1, 32), 0.5, d, [0.0, 0.7], generator=_g(2)),
                                  lambda: torch.tensor([0.3, 0.0, -1.1]), "direction"),
}


@pytest.mark.parametrize("dtype", OTHER, ids=str)
@pytest.mark.parametrize("case", list(CASES))
def test_a_code_of_another_floating_dtype_gives_the_result_of_its_float32_cast(case, dtype):
    call, code, _ = CASES[case]
    z = code().to(dtype)
    assert _same(call(z), call(z.float()))


@pytest.mark.parametrize("case", list(CASES))
def test_an_integer_code_is_refused_naming_the_argument(case):
    call, code, name = CASES[case]
    with pytest.raises(TypeError, match=rf"\b{name} must be a floating-point tensor.*torch.int64"):
        call(code().round().long())


def test_the_code_reaches_the_results_compared():
    """Controls: the results compared above change with the code (a cast that dropped it would pass)."""
    z = _paramrel_z()
    assert not torch.equal(_paramrel().sample(2, z=z, generator=_g(3)), _paramrel().sample(2, z=z + 1, generator=_g(3)))
    mu = _sami_posterior()[0]
    assert not torch.equal(_sami().generate(mu, generator=_g(3)), _sami().generate(mu + 1, generator=_g(3)))
    c = _encdiff_tokens()
    assert not torch.equal(_encdiff().generate(c, generator=_g(3), steps=1),
                           _encdiff().generate(c + 1, generator=_g(3), steps=1))
    z = _multibeta().encode(_images(2, 1, 32), 0.5)
    i = torch.tensor([1, 2])
    assert not torch.equal(_multibeta().denoiser.predict(z, i)[0], _multibeta().denoiser.predict(z + 1, i)[0])


# -- DyGA: the mixture maths never in half precision; float64 stays float64 (its tests compare at 1e-12) ---
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_dyga_half_precision_tokens_are_computed_in_float32(dtype):
    m, c = _dyga(), _dyga_tokens().to(dtype)
    assert _same(m.normalise(c), m.normalise(c.float()))
    assert _same(m.assign(c), m.assign(c.float()))
    norm = (m.norm_lo, m.span)
    assert _same(align(m.mixture, c, gumbel=False, normalise=norm), align(m.mixture, c.float(), gumbel=False, normalise=norm))
    # the module itself, a layer of the training forward (bf16 under autocast), answers in its input's dtype
    assert _same(m(c), m(c.float()).to(dtype))


def test_dyga_float64_tokens_stay_float64():
    m, c = _dyga(), _dyga_tokens().double()
    lo, span = m.norm_lo.double(), m.span.double()
    assert _same(m.normalise(c), (c - lo[None, :, None]) / span[None, :, None])  # the paper-mode formula


@pytest.mark.parametrize("name, call", [("c", lambda m, c: m.normalise(c)), ("c", lambda m, c: m.assign(c)),
                                        ("features", lambda m, c: align(m.mixture, c, gumbel=False))],
                         ids=["normalise", "assign", "align"])
def test_dyga_integer_tokens_are_refused(name, call):
    with pytest.raises(TypeError, match=rf"^{name} must be a floating-point tensor, got torch.int64$"):
        call(_dyga(), _dyga_tokens().round().long())


# -- the images path: half-precision images are cast on entry as float64 ones are (tests/methods/test_image_dtype.py)
def _image_models():
    from diffrep.methods.diffae import DiffAE
    from diffrep.methods.disdiff import DisDiff
    from diffrep.methods.infodiffusion import InfoDiffusion
    from diffrep.methods.multibeta import MultiBeta, MultiBetaVAE
    from diffrep.methods.paramrel import ParamReL
    from diffrep.methods.sami import SAMI
    from diffrep.methods.vae import VAE, BetaTCVAE

    return {"ParamReL": (ParamReL, lambda m: m.config.bfn), "SAMI": (SAMI, lambda m: m.config.convnet),
            "MultiBeta": (MultiBeta, lambda m: m.config.vae), "MultiBetaVAE": (MultiBetaVAE, lambda m: m.config),
            "DiffAE": (DiffAE, lambda m: m.config.unet), "InfoDiffusion": (InfoDiffusion, lambda m: m.config.unet),
            "DisDiff": (DisDiff, lambda m: m.config.unet), "EncDiff": (EncDiff, None), "VAE": (VAE, lambda m: m.config),
            "BetaTCVAE": (BetaTCVAE, lambda m: m.config)}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", list(_image_models()))
def test_half_precision_images_encode_as_their_float32_cast(name, dtype):
    cls, part = _image_models()[name]
    torch.manual_seed(0)
    m = cls(cls.config_class()).eval()
    if hasattr(m, "use_untrained_frozen_parts"):  # EncDiff's first stage: the test reads the method, not a VQ run
        m.use_untrained_frozen_parts()
    if part is None:  # EncDiff: its U-Net's size is the first stage's latent
        C, H = m.config.image_channels, m.config.image_size
    else:
        p = part(m)
        C, H = getattr(p, "in_channels", getattr(p, "channels", None)), p.image_size
    x = _images(2, C, H).to(dtype)
    if name == "DisDiff":
        encode = m.encode_units
    elif name == "MultiBetaVAE":
        def encode(v):
            return m.encode(v, torch.full((2,), 0.5))
    else:
        encode = m.encode
    assert _same(encode(x), encode(x.float()))
