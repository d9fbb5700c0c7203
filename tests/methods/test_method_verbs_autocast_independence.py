"""The methods' inference verbs give the same numbers inside and outside the caller's autocast
(docs/architecture.md#autocast): the representation (``encode``), the samplers, the inversions and
reconstructions, the BFN reconstruction loss L^r and DiffAE's attribute fit run with autocast off
(diffrep.ops._full_precision), as the metrics and analyses that read them do. CPU bf16 autocast lowers
matmul, linear and conv as CUDA's does. Without the guard (these cases, CPU bf16): every encode returned
bf16 codes; ParamReL's L^r moved by 248 nats (discretised data), its reverse-sampling's latents and subcode
by up to 3.6, its and the plain BFN's samplers flipped discrete pixels (a difference of 2); DiffAE's
attribute direction moved by 1.2, the DDIM decoders by 0.03-0.13; a DiffAE or InfoDiffusion decode of
codes encoded in the same region came out bf16 and all NaN, DisDiff's reconstruct, swap and traverse
failed on a NaN chain and its DyGA refresh chose other anchors. Each case is computed once outside autocast and once inside, and must agree to
float32 rounding.

The training losses are not guarded: the networks of ``loss`` run in the trainer's bf16
(:func:`test_the_training_forward_still_runs_under_autocast`); only the maths that bf16 got wrong
around them is promoted to float32 (:func:`test_a_bf16_posterior_gives_the_loss_of_its_float32_copy`,
:func:`test_infodiffusion_loss_terms_are_float32_under_autocast`). The BFN flows, output distributions
and losses hold no op that autocast lowers: controls, the same under autocast without a guard."""

from __future__ import annotations

import functools

import pytest
import torch

from diffrep.bfn import CategoricalOutput, ContinuousFlow, DeltaOutput, DiscreteFlow, DiscretisedNormalOutput
from diffrep.bfn import losses as bfn_losses
from diffrep.methods.diffae import DiffAE, DiffAEConfig
from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGAConfig
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig
from diffrep.methods.paramrel import ReverseSample

from helpers import (tiny_multibeta_phase2, assert_same_inside_and_outside_bf16_autocast, break_zero_init, perturbed, sami_images,
                     tiny_bfn, tiny_paramrel, tiny_sami, untrained_on_purpose)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int, c: int, s: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, c, s, s, generator=_g(seed)) * 2 - 1


X8, X16 = _images(3, 1, 8), _images(3, 3, 16)


@functools.cache
def _paramrel(kind: str):
    return perturbed(tiny_paramrel(kind, latent=4, steps=3), 0.3).eval()  # perturbed: z and theta matter


@functools.cache
def _bfn(kind: str):
    return perturbed(tiny_bfn(kind), 0.3).eval()


@functools.cache
def _sami():
    return tiny_sami(dtype=torch.float32, sampler="ddim", sample_steps=3)  # float32: autocast never lowers float64


@functools.cache
def _multibeta():
    return tiny_multibeta_phase2()


@functools.cache
def _diffae():
    torch.manual_seed(0)
    m = break_zero_init(DiffAE(DiffAEConfig(sample_steps=2)), std=0.05).eval()
    m.fit_latent_stats(m.encode(_images(8, 3, 16, seed=9)))
    return m


@functools.cache
def _infodiffusion():
    torch.manual_seed(0)
    return break_zero_init(InfoDiffusion(InfoDiffusionConfig(sample_steps=2)), std=0.05).eval()


@functools.cache
def _disdiff():
    torch.manual_seed(0)
    m = break_zero_init(untrained_on_purpose(DisDiff(DisDiffConfig(sample_steps=2))), std=0.05).eval()
    m.fit_code_pca(_images(4, 3, 16, seed=9))
    return m


def _reverse(kind):
    r = _paramrel(kind).reverse_sample(X8)
    return [r.z, r.subcode.params]


def _paramrel_decode():
    m = _paramrel("continuous")
    with torch.no_grad():  # the subcode computed once, outside autocast: decode's own chain is under test
        rev = m.reverse_sample(X8)
    return m.decode(ReverseSample(rev.z.clone(), rev.subcode))


def _disdiff_pca():
    m = _disdiff()
    kept = m.pca_mean.clone(), m.pca_components.clone()
    m.fit_code_pca(X16)
    fitted = [m.pca_mean.clone(), m.pca_components.clone()]
    m.pca_mean.copy_(kept[0])  # the shared model keeps its calibration
    m.pca_components.copy_(kept[1])
    return fitted


def _disdiff_refresh():
    """DyGA's anchor selection on the units of 24 images; each call starts from the same (unfitted) DyGA state."""
    torch.manual_seed(0)
    m = break_zero_init(untrained_on_purpose(DisDiff(DisDiffConfig(sample_steps=2, dyga=DyGAConfig(
        num_units=4, token_dim=8, n_components=2, max_components=4, max_iter=5, min_mass=1.0)))), std=0.05).eval()
    report = m.refresh_anchors(_images(24, 3, 16, seed=3))
    report.pop("seconds")
    return [report, list(m.dyga.buffers())]


Z16 = torch.randn(3, 32, generator=_g(5))  # float32 codes for the DiffAE (32) and InfoDiffusion (8) decoders

CASES = {
    # ParamReL / SepDiff (the three data kinds where the chain differs)
    "paramrel.encode[continuous]": lambda: _paramrel("continuous").encode(X8),
    "paramrel.encode[discrete]": lambda: _paramrel("discrete").encode(X8),
    "paramrel.reconstruction_loss[discretised]": lambda: _paramrel("discretised").reconstruction_loss(X8, _g(2)),
    "paramrel.sample[discrete]": lambda: _paramrel("discrete").sample(3, generator=_g(3)),
    "paramrel.sample[continuous]": lambda: _paramrel("continuous").sample(3, generator=_g(3)),
    "paramrel.reverse_sample[continuous]": lambda: _reverse("continuous"),
    "paramrel.reverse_sample[discretised]": lambda: _reverse("discretised"),
    "paramrel.decode": _paramrel_decode,
    "paramrel.reconstruct[discretised]": lambda: _paramrel("discretised").reconstruct(X8),
    "paramrel.time_varying": lambda: _paramrel("continuous").time_varying(X8[:2], (0.5,)),
    "paramrel.attributes_encoding": lambda: _paramrel("discretised").attributes_encoding(X8[:2], 2, generator=_g(5)),
    "paramrel.interpolate": lambda: _paramrel("continuous").interpolate(X8[:1], X8[1:2], 2),
    "paramrel.traverse": lambda: _paramrel("continuous").traverse(X8[:1], [0], [-1.0, 1.0]),
    # the plain BFN
    "bfn.sample[discrete]": lambda: _bfn("discrete").sample(3, generator=_g(3)),
    "bfn.reconstruction_loss[continuous]": lambda: _bfn("continuous").reconstruction_loss(X8, _g(2)),
    # SAMI
    "sami.encode": lambda: _sami().encode(sami_images(3, dtype=torch.float32)),
    "sami.guided_eps": lambda: _sami().guided_eps(sami_images(2, dtype=torch.float32), torch.tensor([3, 12]),
                                                  torch.randn(2, 3, generator=_g(4))),
    "sami.generate": lambda: _sami().generate(torch.randn(2, 3, generator=_g(4)), generator=_g(3)),
    "sami.sample": lambda: _sami().sample(2, generator=_g(3)),
    "sami.sample_unconditional": lambda: _sami().sample_unconditional(2, generator=_g(3)),
    "sami.conditional_sample": lambda: _sami().conditional_sample(sami_images(2, dtype=torch.float32), 1,
                                                                  z_mode="fixed", generator=_g(3)),
    "sami.reconstruct": lambda: _sami().reconstruct(sami_images(2, dtype=torch.float32), generator=_g(3)),
    # multi-beta
    "multibeta.encode": lambda: _multibeta().encode(_images(3, 1, 32), 0.5, noise=True, generator=_g(2)),
    "multibeta.decode": lambda: _multibeta().decode(torch.randn(3, 3, generator=_g(2)), 0.5),
    "multibeta.denoiser.denoise": lambda: _multibeta().denoiser.denoise(torch.randn(3, 3, generator=_g(2)), 1.0,
                                                                        generator=_g(3)),
    "multibeta.denoiser.sample": lambda: _multibeta().denoiser.sample(3, generator=_g(3)),
    "multibeta.denoise_decode": lambda: _multibeta().denoise_decode(torch.randn(3, 3, generator=_g(2)), 0.5,
                                                                    generator=_g(3)),
    "multibeta.reconstruct": lambda: _multibeta().reconstruct(_images(3, 1, 32), 0.5, generator=_g(3)),
    "multibeta.sample": lambda: _multibeta().sample(2, generator=_g(3)),
    "multibeta.beta_sweep": lambda: _multibeta().beta_sweep(_images(2, 1, 32), [0.0, 0.5], generator=_g(3)),
    "multibeta.edit": lambda: _multibeta().edit(_images(2, 1, 32), 0.5, torch.ones(3), [0.0, 1.0], generator=_g(3)),
    "multibeta.traverse": lambda: _multibeta().traverse(_images(1, 1, 32), 0.5, dims=[0], values=[-1.0, 1.0],
                                                        generator=_g(3)),
    # DiffAE
    "diffae.encode": lambda: _diffae().encode(X16),
    "diffae.encode_stochastic": lambda: _diffae().encode_stochastic(X16),
    "diffae.decode": lambda: _diffae().decode(Z16, generator=_g(2)),
    "diffae.decode(encode)": lambda: _diffae().decode(_diffae().encode(X16), generator=_g(2)),
    "diffae.reconstruct": lambda: _diffae().reconstruct(X16),
    "diffae.sample_latent": lambda: _diffae().sample_latent(2, generator=_g(2)),
    "diffae.sample": lambda: _diffae().sample(2, generator=_g(2)),
    "diffae.interpolate": lambda: _diffae().interpolate(X16[:2], X16[1:], [0.0, 0.5]),
    "diffae.swap": lambda: _diffae().swap(X16[:2], X16[1:], [0, 1]),
    "diffae.traverse": lambda: _diffae().traverse(X16[:2], 0, [-1.0, 1.0]),
    "diffae.fit_attribute": lambda: _diffae().fit_attribute(_diffae().encode(X16), torch.tensor([0.0, 1.0, 1.0]),
                                                            steps=10),
    "diffae.manipulate": lambda: _diffae().manipulate(X16[:2], torch.ones(32), 1.0),
    # InfoDiffusion
    "infodiffusion.posterior": lambda: _infodiffusion().posterior(X16),
    "infodiffusion.encode": lambda: _infodiffusion().encode(X16),
    "infodiffusion.decode": lambda: _infodiffusion().decode(Z16[:, :8], generator=_g(2)),
    "infodiffusion.encode_stochastic": lambda: _infodiffusion().encode_stochastic(X16),
    "infodiffusion.reconstruct": lambda: _infodiffusion().reconstruct(X16),
    "infodiffusion.sample": lambda: _infodiffusion().sample(2, generator=_g(2)),
    "infodiffusion.swap": lambda: _infodiffusion().swap(X16[:2], X16[1:], [0]),
    "infodiffusion.traverse": lambda: _infodiffusion().traverse(X16[:2], 0, [-1.0, 1.0]),
    # DisDiff
    "disdiff.encode_units": lambda: _disdiff().encode_units(X16),
    "disdiff.encode": lambda: _disdiff().encode(X16),
    "disdiff.fit_code_pca": _disdiff_pca,
    "disdiff.refresh_anchors": _disdiff_refresh,
    "disdiff.decode": lambda: _disdiff().decode(torch.randn(3, 4, 8, generator=_g(2)), generator=_g(3)),
    "disdiff.encode_stochastic": lambda: _disdiff().encode_stochastic(X16),
    "disdiff.reconstruct": lambda: _disdiff().reconstruct(X16),
    "disdiff.sample": lambda: _disdiff().sample(2, generator=_g(2)),
    "disdiff.swap": lambda: _disdiff().swap(X16[:2], X16[1:], 0),
    "disdiff.traverse": lambda: _disdiff().traverse(X16[:2], 0, [-1.0, 1.0]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_numbers_inside_and_outside_bf16_autocast(name):
    assert_same_inside_and_outside_bf16_autocast(name, CASES[name])


# -- controls: the BFN maths has no op that autocast lowers ------------------------------------------
def _continuous_bfn_maths():
    flow, x = ContinuousFlow(0.02), X8
    out, log_sigma = torch.randn(3, 1, 8, 8, generator=_g(2)), 0.1 * torch.randn(3, 1, 8, 8, generator=_g(3))
    st = flow.sample(x, 0.4, _g(0))
    nxt, y = flow.step(st, x, 0.6, _g(1))
    dn = DiscretisedNormalOutput(0.02, 16)
    return [st.params, nxt.params, flow.inverse_step(nxt, y, 0.4).params, DeltaOutput(0.02)(out, st, st.t).mean,
            dn((out, log_sigma), st, st.t).probs, bfn_losses.continuous_time_loss(flow, dn, (out, log_sigma), x, st),
            bfn_losses.discrete_time_loss(flow, dn, (out, log_sigma), x, flow.sample(x, 0.5, _g(4)), 4, generator=_g(5))]


def _discrete_bfn_maths():
    flow, out = DiscreteFlow(3, 3.0), CategoricalOutput(3)
    x, logits = torch.randint(0, 3, (3, 1, 8, 8), generator=_g(1)), torch.randn(3, 3, 8, 8, generator=_g(2))
    st = flow.sample(x, 0.4, _g(0))
    nxt, y = flow.step(st, x, 0.6, _g(1))
    return [st.params, nxt.params, flow.inverse_step(nxt, y, 0.4).params, out(logits, st, st.t).log_prob(x),
            bfn_losses.continuous_time_loss(flow, out, logits, x, st),
            bfn_losses.discrete_time_loss(flow, out, logits, x, flow.sample(x, 0.5, _g(4)), 4, generator=_g(5))]


@pytest.mark.parametrize("fn", [_continuous_bfn_maths, _discrete_bfn_maths], ids=["continuous", "discrete"])
def test_the_bfn_updates_flows_and_losses_need_no_guard(fn):
    """Bayesian updates, their exact inverses, the output distributions and L^inf / L^n: elementwise maths and
    native kernels on float32 tensors, which autocast leaves alone (no guard, the same numbers)."""
    assert_same_inside_and_outside_bf16_autocast(fn.__name__, fn)


# -- the decisions around the training losses ------------------------------------------------------
def _encoder_dtype_in_loss(model, encoder, x):
    seen = []
    handle = encoder.register_forward_hook(lambda mod, inp, out: seen.append(out[0].dtype))
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model.loss(x, step=0, generator=_g(4))
    finally:
        handle.remove()
    return seen


def test_the_training_forward_still_runs_under_autocast():
    """The guards sit on the verbs, not on the networks the losses call: under the trainer's autocast the
    encoders of DiffAE, DisDiff (disentangling stage) and InfoDiffusion still compute in bf16."""
    assert _encoder_dtype_in_loss(_diffae(), _diffae().encoder, X16) == [torch.bfloat16]
    assert _encoder_dtype_in_loss(_infodiffusion(), _infodiffusion().encoder, X16) == [torch.bfloat16]
    seen = _encoder_dtype_in_loss(_disdiff(), _disdiff().encoder, X16)
    assert seen and set(seen) == {torch.bfloat16}


def test_infodiffusion_loss_terms_are_float32_under_autocast():
    """The bf16 posterior is promoted before z's noise, the KL and the MMD's prior draws: before, the prior draws
    were bf16 (another stream: the MMD read 0.19 for 0.08) and the KL bf16. Now only the networks' rounding
    separates the two losses."""
    torch.manual_seed(0)
    m = break_zero_init(InfoDiffusion(InfoDiffusionConfig(sample_steps=3, kl_weight=0.1)), std=0.05)
    full = m.loss(X16, step=0, generator=_g(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m.loss(X16, step=0, generator=_g(4))
    for k in ("kl", "mmd", "diffusion"):
        assert low[k].dtype == torch.float32, k
        assert abs(float(low[k]) - float(full[k])) < 0.01 * float(full[k]), k


def test_the_guard_changes_nothing_outside_autocast():
    """Bit for bit: a guarded verb is its unguarded body where autocast is off."""
    pairs = [(_paramrel("continuous"), "encode", (X8,)), (_diffae(), "encode_stochastic", (X16,)),
             (_sami(), "encode", (sami_images(2, dtype=torch.float32),))]
    for m, name, args in pairs:
        body = getattr(type(m), name).__wrapped__
        assert torch.equal(getattr(m, name)(*args), body(m, *args)), name


def _bf16_heads(model, float_copy: bool):
    """Make ``model``'s posterior return bf16 (mean, logvar), as the encoder's heads do under the trainer's
    autocast, or (``float_copy``) float32 tensors holding the same values."""
    def cast(out):
        low = tuple(v.to(torch.bfloat16) for v in out)
        return tuple(v.float() for v in low) if float_copy else low

    if hasattr(model, "flow"):  # ParamReL: the encoder is read through posterior(), not its forward
        inner = type(model).posterior
        model.posterior = lambda *a, **k: cast(inner(model, *a, **k))
        return lambda: model.__dict__.pop("posterior")
    handle = model.encoder.register_forward_hook(lambda mod, inp, out: cast(out))
    return handle.remove


@pytest.mark.parametrize("method", ["paramrel", "infodiffusion", "sami"])
def test_a_bf16_posterior_gives_the_loss_of_its_float32_copy(method):
    """Around the bf16 networks, z = mu + sigma eps, its noise draw, the KL and the MMD run in float32: a loss on
    bf16 heads equals the loss on float32 copies of the same values. Before, z's noise was drawn in bf16 (another
    stream), InfoDiffusion's KL and MMD prior draws and SAMI's KL ran in bf16."""
    if method == "paramrel":
        m, x = perturbed(tiny_paramrel("continuous", latent=4, steps=3, gamma_mi=0.5, lambda_agg=0.6), 0.3), X8
    elif method == "infodiffusion":
        torch.manual_seed(0)
        m, x = break_zero_init(InfoDiffusion(InfoDiffusionConfig(sample_steps=2, kl_weight=0.1)), std=0.05), X16
    else:
        m, x = _sami(), sami_images(3, dtype=torch.float32)
    out = {}
    for float_copy in (False, True):
        undo = _bf16_heads(m, float_copy)
        try:
            out[float_copy] = m.loss(x, step=0, generator=_g(4))
        finally:
            undo()
    for k, v in out[True].items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            torch.testing.assert_close(out[False][k], v, rtol=1e-6, atol=1e-7, msg=k)
