"""The sampling and inversion chains check their inputs once and run their steps on the timesteps they build
themselves, without reading the device back (docs/architecture.md "Host synchronisation and the non-finite-loss
check"): a chain's host reads (each a host-device synchronisation on CUDA) do not grow with its number of steps.
The public single steps (``DDIMSampler.step``, ``DDPMSampler.step``, ...) keep their checks.

Reads per call on these tiny models, before -> after this change (the CPU counts equal the CUDA ones, except
SAMI's, whose chain reads each state's peak as it comes on the CPU, where a read costs no synchronisation, so
that a diverged chain stops at its step; the CUDA (deferred) mode is counted here too):

====================================================  ==========  =====  ======================================
chain                                                 before      after  the reads left
====================================================  ==========  =====  ======================================
DDIMSampler.sample, 10 / 50 steps, no x_T             30 / 150    0      none
DDIMSampler.sample with x_T, n steps                  3 n + 1     1      x_T's finiteness
DDIMSampler.invert, 10 / 50 steps                     10 / 50     1      x0's finiteness
DDPMSampler.sample, T = 10 / 100                      30 / 300    0      none
DDPMSampler.step / DDIMSampler.step (public)          3 / 3       1 / 2  t's range; DDIM: t_prev's range
SAMI chain with x_T (DDIM 2 / 5, DDPM 20 steps), CUDA  15/33/123   5/6/6  x_T's checks (two); the peaks of the
                                                                         states and the result, read at the
                                                                         chain's quarters (at most 4 reads)
EncDiff.generate, 2 / 5 steps                         8 / 17      2      the tokens' checks
DiffAE.decode with x_T, 2 / 5 steps                   9 / 18      3      the inputs' checks (z, x_T)
DiffAE.encode_stochastic, 2 / 5 steps                 4 / 7       3      the image and code checks, x0's
InfoDiffusion.decode, 2 / 5 steps (no x_T)            7 / 16      1      the inputs' checks
DisDiff.sample, 2 / 5 steps                           7 / 16      1      the inputs' checks
====================================================  ==========  =====  ======================================

Multi-beta's ``LatentDenoiser.denoise``, the BFN sampler and reverse chain and ParamReL's chains are counted in
test_chain_host_reads_bfn.py.
"""

from __future__ import annotations

import pytest
import torch

from helpers import host_reads as _reads, tiny_sami


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # depends on t, so a wrong step shows
    return 0.3 * x + 1e-2 * t.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _schedule(T: int = 100):
    from diffrep.diffusion import NoiseSchedule

    return NoiseSchedule(num_timesteps=T)


def _ddim_by_public_steps(sampler, n: int, x: torch.Tensor, generator) -> torch.Tensor:
    """The reference chain: DDIM's timesteps written out here, each step through the checked public ``step``."""
    T = sampler.schedule.num_timesteps
    seq = [i * (T // n) for i in range(n)][::-1]  # "uniform" spacing (Song et al. 2021)
    for t, t_prev in zip(seq, seq[1:] + [-1]):
        tt = torch.full((x.shape[0],), t)
        x = sampler.step(_model(x, tt), tt, torch.full_like(tt, t_prev), x, generator=generator)
    return x


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_ddim_sample_reads_the_host_a_fixed_number_of_times_and_gives_the_public_steps_numbers(eta):
    from diffrep.diffusion import DDIMSampler

    s = DDIMSampler(_schedule(), eta=eta, clip_x0=1.0)
    counts = {}
    for n in (10, 50):
        counts[n], out = _reads(lambda: s.sample(_model, (3, 2), num_steps=n, generator=_g()))
        g = _g()
        ref = _ddim_by_public_steps(s, n, torch.randn(3, 2, generator=g), g)
        assert torch.equal(out, ref)
    assert counts[10] == counts[50] == 0  # before: 3 per step (30, 150)
    x_T = torch.randn(3, 2, generator=_g(7))
    assert _reads(lambda: s.sample(_model, None, num_steps=10, x_T=x_T))[0] == 1  # x_T's finiteness


def test_ddim_invert_reads_once_and_matches_the_encoder_formula():
    from diffrep.diffusion import DDIMSampler

    sched = _schedule()
    s = DDIMSampler(sched)
    x0 = torch.randn(3, 2, generator=_g(2))
    for n in (10, 50):
        c, out = _reads(lambda: s.invert(_model, x0, num_steps=n))
        assert c == 1  # before: n
        ab = sched.alphas_cumprod.float()
        seq = [i * (100 // n) for i in range(n)]  # ascending
        x = x0
        for t, t_next in zip(seq[:-1], seq[1:]):  # DiffAE Eq. 8, written out
            eps = _model(x, torch.full((3,), t))
            x0_hat = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
            x = ab[t_next].sqrt() * x0_hat + (1 - ab[t_next]).sqrt() * eps
        assert torch.equal(out, x)


@pytest.mark.parametrize("T", [10, 100])
def test_ddpm_sample_reads_nothing_back_and_gives_the_public_steps_numbers(T):
    from diffrep.diffusion import DDPMSampler

    s = DDPMSampler(_schedule(T), prediction="v", clip_x0=1.0)
    c, out = _reads(lambda: s.sample(_model, (3, 2), generator=_g()))
    assert c == 0  # before: 3 per step
    g = _g()
    x = torch.randn(3, 2, generator=g)
    for t in range(T - 1, -1, -1):
        tt = torch.full((3,), t)
        x = s.step(_model(x, tt), tt, x, generator=g)
    assert torch.equal(out, x)


def test_the_public_steps_keep_their_checks():
    from diffrep.diffusion import DDIMSampler, DDPMSampler

    sched = _schedule(10)
    x = torch.zeros(2, 3)
    out = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 9\], got range \[3, 10\]$"):
        DDPMSampler(sched).step(out, torch.tensor([3, 10]), x)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 9\], got range \[-1, 3\]$"):
        DDIMSampler(sched).step(out, torch.tensor([-1, 3]), torch.tensor([-1, -1]), x)
    with pytest.raises(ValueError, match=r"^t_prev must satisfy -1 <= t_prev < t for every sample$"):
        DDIMSampler(sched).step(out, torch.tensor([3, 4]), torch.tensor([2, 4]), x)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 9\], got range \[0, 10\]$"):
        DDPMSampler(sched).posterior(x, x, torch.tensor([0, 10]))
    # one read per range now (the same t was read three times)
    assert _reads(lambda: DDPMSampler(sched).step(out, torch.tensor([3, 4]), x, generator=_g()))[0] == 1
    assert _reads(lambda: DDIMSampler(sched).step(out, torch.tensor([3, 4]), torch.tensor([2, -1]), x))[0] == 2


@pytest.mark.parametrize("guided", [False, True])
def test_a_sami_chain_reads_the_host_a_fixed_number_of_times(guided, monkeypatch):
    import functools

    import diffrep.methods.sami as sami_module
    from diffrep.methods.sami_divergence import _ChainWatch

    m = tiny_sami(dtype=torch.float32)

    def chain(n, sampler="ddim"):
        x_T = torch.randn(2, 1, 8, 8, generator=_g(3))
        if guided:
            return m.generate(torch.randn(2, 3, generator=_g(5)), generator=_g(), num_steps=n, sampler=sampler, x_T=x_T)
        return m.sample_unconditional(2, generator=_g(), num_steps=n, sampler=sampler, x_T=x_T)

    def counts():
        out = {n: _reads(lambda: chain(n))[0] for n in (2, 5)}
        out[20] = _reads(lambda: chain(None, "ddpm"))[0]
        return out

    # on the CPU (no synchronisation) each state is read as it comes, so a diverged chain stops at its step:
    # x_T's two checks + one read per step + the result
    assert counts() == {2: 5, 5: 8, 20: 23}
    # the deferred (CUDA) mode: x_T's two checks + at most 4 reads of the states' peaks (the quarters)
    monkeypatch.setattr(sami_module, "_ChainWatch", functools.partial(_ChainWatch, deferred=True))
    assert counts() == {2: 5, 5: 6, 20: 6}  # before: 3 per step + 3


def test_a_sami_callback_sees_the_chains_own_timesteps():
    m = tiny_sami(dtype=torch.float32)
    seen = []
    m.sample_unconditional(2, generator=_g(), num_steps=5, sampler="ddim",
                           callback=lambda i, t, x, eps, g: seen.append((i, t)))
    assert seen == list(enumerate([16, 12, 8, 4, 0]))  # DDIM "uniform", 5 of T = 20 steps


def test_diffae_decode_and_inversion_read_the_host_a_fixed_number_of_times():
    from diffrep.methods.diffae import DiffAE, DiffAEConfig

    torch.manual_seed(0)
    m = DiffAE(DiffAEConfig())
    x = torch.rand(2, 3, 16, 16, generator=_g(1)) * 2 - 1
    with torch.no_grad():
        z = m.encode(x)
        x_T = torch.randn(2, 3, 16, 16, generator=_g(2))
        dec = {n: _reads(lambda: m.decode(z, x_T, num_steps=n))[0] for n in (2, 5)}
        inv = {n: _reads(lambda: m.encode_stochastic(x, z, num_steps=n))[0] for n in (2, 5)}
    assert dec == {2: 3, 5: 3}  # before: 3 per step + 3
    assert inv == {2: 3, 5: 3}  # before: 1 per step + 2
