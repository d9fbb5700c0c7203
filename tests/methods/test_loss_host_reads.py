"""The methods' ``loss`` reads the device back to the host as few times as its checks need (docs/architecture.md
"Host synchronisation and the non-finite-loss check"): each read (bool() of a tensor, int(), float(), .item(),
.tolist()) is a host-device synchronisation per training step on CUDA. A check's several reads are one read
(both ends of a range in one .tolist(), the conditions of one check OR-ed on the device), and the tensors the
library draws itself (the timesteps t, the flow times, multi-beta's beta, the encoder's own codes) are not
read back at all; the public verbs keep every check on what a caller passes in.

Counts per ``loss`` call on these tiny models, before -> after this change (the CPU counts equal the CUDA ones:
every read counted here synchronises there):

=====================  ======  =====  =========================================================
model                  before  after  the reads left
=====================  ======  =====  =========================================================
ToyDDPM                5       1      the batch's finiteness
DiffAE                 6       1      the batch's finiteness
DiffAE, latent stage   9       1      the batch (z_stats_fitted: a host copy, nn.derived)
InfoDiffusion          17      1      the batch
DisDiff                19      1      the batch
EncDiff (VQ stage)     10      1      the batch (scale_set: a host copy, nn.derived; fitted anchors:
                                      test_loss_host_reads_dyga_fitted.py)
SAMI                   9       1      the batch (a given t: +1, its range)
VAE (and BetaTCVAE)    2       1      the batch
MultiBeta phase 1      11      4      the batch; the two beta embeddings; the floor counts
MultiBeta phase 2      8       2      the batch; the encoder's beta embedding (schedule_set: a host copy,
                                      nn.derived)
BFN, discrete data     6       2      the classes' range; the network time's embedding
BFN, continuous data   7       3      the batch; the time embedding; the loss terms (one read)
BFN, discretised data  9       5      the batch; the time embedding; three quantisations
ParamReL, discrete     7       3      as BFN, plus the hyper encoder's time embedding
=====================  ======  =====  =========================================================
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from helpers import host_reads, tiny_bfn, tiny_disdiff, tiny_paramrel, tiny_sami, tiny_unet, untrained_on_purpose

NAN = float("nan")


def _reads(fn) -> int:
    return host_reads(fn)[0]


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n: int, c: int, s: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, c, s, s, generator=_g(seed)) * 2 - 1


# -- tiny models ----------------------------------------------------------------------------------------------
def _toy():
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig

    torch.manual_seed(0)
    return ToyDDPM(ToyDDPMConfig(unet=tiny_unet(in_channels=1, out_channels=1),
                                 schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=10), sample_steps=1))


def _diffae(stage: str = "autoencoder"):
    from diffrep.methods.diffae import DiffAE, DiffAEConfig

    torch.manual_seed(0)
    m = DiffAE(DiffAEConfig())
    if stage == "latent":
        m.fit_latent_stats(torch.randn(8, m.config.latent_dim, generator=_g(3)))
        m.set_stage("latent")
    return m


def _infodiffusion():
    from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig

    torch.manual_seed(0)
    return InfoDiffusion(InfoDiffusionConfig())


def _encdiff():
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.dyga import DyGAConfig
    from diffrep.methods.encdiff import EncDiff, EncDiffConfig
    from diffrep.methods.encdiff_nets import SmallExtractorConfig
    from diffrep.nn.unet import UNetConfig
    from diffrep.nn.vq import VQAutoencoderConfig

    un = UNetConfig(image_size=8, in_channels=3, out_channels=3, model_channels=8, channel_mult=(1, 2),
                    num_res_blocks=1, attention_resolutions=(4,), num_heads=2, num_groups=4, context_dim=8)
    sx = SmallExtractorConfig(image_size=16, num_units=4, token_dim=8, channels=(8, 16), hidden=16, mlp_hidden=(8,))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)
    torch.manual_seed(0)
    return untrained_on_purpose(EncDiff(EncDiffConfig(unet=un, small_extractor=sx, first_stage=vq,
                                 dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, min_mass=2),
                                 schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015,
                                                              beta_end=0.0155), sample_steps=2)))


def _vae(name: str):
    from diffrep.methods import vae

    cls = getattr(vae, name)
    torch.manual_seed(0)
    return cls(cls.config_class(image_size=32, in_channels=1))


@functools.cache
def _multibeta_config():
    from diffrep.methods.multibeta import multibeta_config

    return multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=4,
                            vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1})


def _multibeta(phase: int):
    from diffrep.methods.multibeta import MultiBeta

    torch.manual_seed(0)
    m = untrained_on_purpose(MultiBeta(_multibeta_config()))
    return m.set_phase(2) if phase == 2 else m


def _bfn_classes(n: int = 3) -> torch.Tensor:
    return torch.randint(0, 2, (n, 1, 8, 8), generator=_g(1))


CASES = {  # name: (model maker, batch maker, reads before this change, reads now)
    "ToyDDPM": (_toy, lambda: _images(2, 1, 8), 5, 1),
    "DiffAE": (_diffae, lambda: _images(2, 3, 16), 6, 1),
    "DiffAE-latent": (lambda: _diffae("latent"), lambda: _images(2, 3, 16), 9, 1),  # 2 before the flag's host copy
    "InfoDiffusion": (_infodiffusion, lambda: _images(2, 3, 16), 17, 1),
    "DisDiff": (tiny_disdiff, lambda: _images(2, 3, 16).double(), 19, 1),
    "EncDiff": (_encdiff, lambda: _images(2, 3, 16), 10, 1),
    "SAMI": (lambda: tiny_sami(dtype=torch.float32), lambda: _images(2, 1, 8), 9, 1),
    "VAE": (lambda: _vae("VAE"), lambda: (_images(2, 1, 32) + 1) / 2, 2, 1),
    "BetaTCVAE": (lambda: _vae("BetaTCVAE"), lambda: (_images(2, 1, 32) + 1) / 2, 2, 1),
    "MultiBeta-phase1": (lambda: _multibeta(1), lambda: _images(2, 1, 32), 11, 4),
    "MultiBeta-phase2": (lambda: _multibeta(2), lambda: _images(2, 1, 32), 8, 2),  # 4 before the grid times, 3 the flag's copy
    "BFN-discrete": (lambda: tiny_bfn("discrete"), _bfn_classes, 6, 2),
    "BFN-continuous": (lambda: tiny_bfn("continuous"), lambda: _images(3, 1, 8), 7, 3),
    "BFN-discretised": (lambda: tiny_bfn("discretised"), lambda: _images(3, 1, 8), 9, 5),
    "ParamReL-discrete": (lambda: tiny_paramrel("discrete"), _bfn_classes, 7, 3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_one_loss_call_reads_the_device_only_for_its_checks(name):
    make, batch, before, now = CASES[name]
    m, x = make(), batch()
    out = {}
    assert _reads(lambda: out.update(m.loss(x, step=0, generator=_g()))) == now < before
    assert math.isfinite(float(out["loss"].detach()))


# -- what a caller passes in is still checked, in one read per check -------------------------------------------
def test_a_given_timestep_tensor_costs_one_read_and_names_its_range():
    from diffrep.diffusion import NoiseSchedule

    s = NoiseSchedule(num_timesteps=10)
    x0 = torch.zeros(3, 2)
    assert _reads(lambda: s.q_sample(x0, torch.tensor([0, 4, 9]), torch.zeros(3, 2))) == 1
    assert _reads(lambda: s.eps_to_x0(x0, torch.tensor([0, 4, 9]), torch.ones(3, 2))) == 1
    assert _reads(lambda: s.to_eps(x0, x0, torch.tensor([0, 4, 9]), "v")) == 1
    for t, lo, hi in (([-1, 4, 9], -1, 9), ([0, 12, 3], 0, 12), ([-5, 10, 2], -5, 10)):
        with pytest.raises(ValueError, match=rf"^t must lie in \[0, 9\], got range \[{lo}, {hi}\]$"):
            s.q_sample(x0, torch.tensor(t))
        with pytest.raises(ValueError, match=rf"^t must lie in \[0, 9\], got range \[{lo}, {hi}\]$"):
            s.gather("betas", torch.tensor(t))
    for t in (torch.tensor([0, 9], dtype=torch.int32), torch.tensor([0, 9])):
        assert torch.equal(s.gather("alphas", t), s.alphas.float()[[0, 9]])


def test_sami_checks_a_given_t_but_not_its_own_draw():
    m = tiny_sami(dtype=torch.float32)
    x = _images(2, 1, 8)
    T = m.schedule.num_timesteps
    assert _reads(lambda: m.loss(x, step=0, generator=_g(), t=torch.tensor([0, T - 1]))) == 2
    with pytest.raises(ValueError, match=rf"^t must lie in \[0, {T - 1}\], got range \[3, {T}\]$"):
        m.loss(x, step=0, t=torch.tensor([3, T]))
    # the private path gives the public numbers on the same draws
    t = torch.tensor([2, 7])
    noise = torch.randn(x.shape, generator=_g(4))
    assert torch.equal(m.schedule._q_sample(x, t, noise), m.schedule.q_sample(x, t, noise))
    assert torch.equal(m._guidance_coefficient(t, x, False), m.guidance_coefficient(t, x, literal=False))
    assert torch.equal(m._lambda_weights(t), m.lambda_weights(t))


# a NaN or infinity is named as such (the range of [0.5, nan] read "[nan, nan]"): the error path reads more, once
NOT_FINITE = r"be finite numbers in \[0, B=1\], got NaN or infinite values"


@pytest.mark.parametrize("bad, shown", [(NAN, NOT_FINITE), (-0.5, r"lie in \[0, B=1\], got values in \[-0.5, 0.5\]"),
                                        (2.0, r"lie in \[0, B=1\], got values in \[0.5, 2\]"),
                                        (math.inf, NOT_FINITE), (-math.inf, NOT_FINITE)])
def test_multibeta_checks_a_given_beta_in_one_read(bad, shown):
    m = _multibeta(1)
    x = _images(2, 1, 32)
    ok = torch.tensor([0.5, 0.5])
    drawn = _reads(lambda: m.loss(x, step=0, generator=_g()))
    assert _reads(lambda: m.loss(x, step=0, generator=_g(), beta=ok)) == drawn + 1
    with pytest.raises(ValueError, match=rf"^MultiBetaVAE.loss: beta must {shown}$"):
        m.loss(x, step=0, beta=torch.tensor([0.5, bad]))
    with pytest.raises(ValueError, match=rf"^beta must {shown}$"):
        m.vae.weights(torch.tensor([0.5, bad]))


def test_the_public_verbs_still_refuse_non_finite_codes_and_times():
    from diffrep.bfn import DiscreteFlow

    d = tiny_disdiff()
    x_t = _images(2, 3, 16).double()
    units = torch.zeros(2, d.config.num_units, d.config.unit_dim, dtype=torch.float64)
    units[1, 0, 0] = NAN
    with pytest.raises(ValueError, match=r"^units holds NaN or infinite values$"):
        d.predict(x_t, torch.tensor([1, 2]), units)
    with pytest.raises(ValueError, match=r"^units holds NaN or infinite values$"):
        d.align_units(units)
    a = _diffae("latent")
    with pytest.raises(ValueError, match=r"^DiffAE.latent_loss: x0 holds NaN or infinite values$"):
        a.latent_loss(_images(2, 3, 16) * NAN)
    with pytest.raises(ValueError, match=r"^z holds NaN or infinite values$"):
        a.normalize_z(torch.full((2, a.config.latent_dim), NAN))
    flow = DiscreteFlow(2, 1.0)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 1\] \(and not be NaN\)$"):
        flow.sample(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0.5, NAN]))
    with pytest.raises(ValueError, match=r"0..1, got values in \[0, 2\]"):
        flow.sample(torch.tensor([[0, 2, 1]]), 0.5)


def test_the_bfn_loss_terms_check_in_one_read_and_name_the_first_problem():
    from diffrep.bfn import loss_terms

    x = _images(2, 1, 4)
    out = torch.zeros_like(x)
    t = torch.tensor([0.25, 0.5])
    f = loss_terms.continuous_time_loss
    assert _reads(lambda: f(out, x, t, 0.02)) == 1
    torch.testing.assert_close(f(out, x, t, 0.02), -math.log(0.02) * 0.02 ** (-2 * t.reshape(2, 1, 1, 1)) * x**2)
    nan_out = out.clone()
    nan_out[1, 0, 0, 0] = NAN
    with pytest.raises(ValueError, match=r"^net_out contains NaN or infinite values$"):
        f(nan_out, x, torch.tensor([0.5, 2.0]), 0.02)  # the finiteness is checked before t's range
    with pytest.raises(ValueError, match=r"^x contains NaN or infinite values$"):
        f(out, x * NAN, torch.tensor([0.5, 0.5, 0.5]), 0.02)  # ... and before t's shape
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 1\] \(and not be NaN\); found 2.0$"):
        f(out, x, torch.tensor([0.5, 2.0]), 0.02)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 1\] \(and not be NaN\); found nan$"):
        f(out, x, torch.tensor([NAN, 0.5]), 0.02)
    with pytest.raises(ValueError, match=r"^t must have shape"):
        f(out, x, torch.tensor([0.5, 0.5, 0.5]), 0.02)
