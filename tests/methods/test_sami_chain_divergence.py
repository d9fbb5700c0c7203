"""A diverging SAMI reverse chain raises an error naming the chain, the step and the likely cause
(instead of the NaN message of log q(z | x_t) a few steps later); a chain that does not diverge is
untouched. The chains here use a denoiser whose output conv is zeroed (eps_theta = 0), for which
DDIM with eta = 0 has a closed form: x_{t'} = sqrt(abar_{t'} / abar_t) x_t, so the state entering
step k is sqrt(abar_{t_k} / abar_{t_0}) x_T and the result x_T / sqrt(abar_{t_0})."""

from __future__ import annotations

import math
import re

import pytest
import torch

from diffrep.diffusion import ChainDivergedError
from helpers import sami_images, tiny_sami

BOUND = 1e6  # the documented divergence bound on |x_t| (methods/sami_divergence.py)
STEPS = [16, 12, 8, 4, 0]  # DDIM, 5 of T = 20 steps, uniform spacing: 0, 4, 8, 12, 16 descending


def _zero_eps_model(**kw):
    m = tiny_sami(**kw)
    with torch.no_grad():
        for p in m.denoiser.out.parameters():
            p.zero_()
    return m


def _abar(m, t: int) -> float:
    betas = torch.linspace(1e-3, 0.2, 20, dtype=torch.float64)  # tiny_sami's linear schedule
    assert torch.allclose(m.schedule.betas.double(), betas)
    return float(torch.prod(1 - betas[: t + 1]))


def test_a_chain_that_stays_bounded_gives_the_closed_form_result():
    m = _zero_eps_model()
    x_T = 1e-3 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = m.sample_unconditional(2, x_T=x_T, sampler="ddim", num_steps=5)
    torch.testing.assert_close(out, (x_T / math.sqrt(_abar(m, STEPS[0]))).clamp(-1, 1), rtol=1e-12, atol=1e-12)


def test_an_exploding_unguided_chain_names_the_step_where_it_left_the_bound():
    m = _zero_eps_model()
    growth = [math.sqrt(_abar(m, t) / _abar(m, STEPS[0])) for t in STEPS]
    v = BOUND / math.sqrt(growth[1] * growth[2])  # crosses the bound entering step 3 (t = 8), not before
    assert growth[1] * v < BOUND < growth[2] * v and v < BOUND
    x_T = torch.full((2, 1, 8, 8), v, dtype=torch.float64)
    with pytest.raises(ChainDivergedError, match=r"SAMI unguided DDIM chain diverged at step 3/5 \(t=8\)") as exc:
        m.sample_unconditional(2, x_T=x_T, sampler="ddim", num_steps=5)
    msg = str(exc.value)
    assert "denoiser is likely undertrained" in msg and "log_posterior" not in msg
    reached = float(re.search(r"\|x_t\| reached ([0-9.e+]+)", msg).group(1))
    assert reached == pytest.approx(growth[2] * v, rel=1e-2)


def test_an_exploding_ddpm_chain_is_named_with_all_t_steps():
    # eps_theta = 0: the DDPM posterior mean is x_t / sqrt(alpha_t) (Ho et al. 2020, Eq. 7 with x0 = x_t /
    # sqrt(abar_t)), so the state entering step k (t = 20 - k) is x_T prod_{s > t} alpha_s^{-1/2} plus noise
    # of standard deviation < 1 per step, negligible beside the 5 % margins around the bound here
    m = _zero_eps_model(sampler="ddpm")
    alphas = 1 - torch.linspace(1e-3, 0.2, 20, dtype=torch.float64)
    growth = [float(alphas[20 - k + 1:].prod().rsqrt()) for k in range(1, 21)]  # entering step k
    v = BOUND / math.sqrt(growth[1] * growth[2])  # crosses entering step 3 (t = 17)
    assert growth[1] * v < 0.95 * BOUND and growth[2] * v > 1.05 * BOUND
    x_T = torch.full((1, 1, 8, 8), v, dtype=torch.float64)
    with pytest.raises(ChainDivergedError, match=r"SAMI unguided DDPM chain diverged at step 3/20 \(t=17\)"):
        m.sample_unconditional(1, x_T=x_T, generator=torch.Generator().manual_seed(0))


def test_an_exploding_guided_chain_blames_the_guidance_scale_not_the_posterior():
    m = tiny_sami(sampler="ddim")
    z = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ChainDivergedError, match=r"SAMI guided DDIM chain diverged at step \d/5 \(t=\d+\)") as exc:
        m.generate(z, guidance_scale=1e12, generator=torch.Generator().manual_seed(0))
    msg = str(exc.value)
    assert "guidance scale (1e+12" in msg and "undertrained" in msg and "NaN" not in msg
    # the same model and latents at the paper's scale do not diverge
    out = m.generate(z, guidance_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert bool(torch.isfinite(out).all())


def test_conditional_sampling_reports_the_chain_too():
    m = tiny_sami(sampler="ddim", guidance_scale=1e12)
    with pytest.raises(ChainDivergedError, match=r"SAMI guided DDIM chain diverged at step"):
        m.conditional_sample(sami_images(2), 1, generator=torch.Generator().manual_seed(0))


def test_a_non_finite_result_is_reported_at_the_chains_end():
    from diffrep.methods.sami_divergence import _ChainWatch

    for deferred in (False, True):
        watch = _ChainWatch("unguided DDPM chain", list(range(19, -1, -1)), None, torch.device("cpu"), deferred=deferred)
        x = torch.zeros(2, 1, 8, 8)
        for _ in range(20):
            watch.state(x)  # finite and small: silent
        x[1, 0, 3, 4] = float("nan")
        with pytest.raises(ChainDivergedError, match=r"^SAMI unguided DDPM chain diverged at its end \(after step "
                                                     r"20/20\): x_t holds NaN or infinite values; the denoiser is "
                                                     r"likely undertrained$"):
            watch.state(x)  # the result


def _nan_eps_model():
    """A DDPM SAMI whose denoiser outputs NaN: the state entering step 2 (t = 18) is NaN."""
    m = tiny_sami(sampler="ddpm")
    with torch.no_grad():
        m.denoiser.out[-1].bias.fill_(float("nan"))
    return m


def _run_until_diverged(m, guided: bool) -> tuple[list[int], str]:
    steps_run = []
    cb = lambda i, t, x, eps, g: steps_run.append(i)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ChainDivergedError) as exc:
        if guided:
            m.generate(torch.zeros(1, 3, dtype=torch.float64), generator=g, callback=cb)
        else:
            m.sample_unconditional(1, generator=g, callback=cb)
    return steps_run, str(exc.value)


@pytest.mark.parametrize("guided", [False, True])
def test_on_the_cpu_a_non_finite_chain_stops_at_the_step_it_diverged(guided):
    steps_run, msg = _run_until_diverged(_nan_eps_model(), guided)
    assert steps_run == [0]  # step 1 ran (its callback); step 2's NaN state raised before its network call
    kind = "guided" if guided else "unguided"
    assert re.match(rf"SAMI {kind} DDPM chain diverged at step 2/20 \(t=18\): x_t holds NaN or infinite values; ", msg)


@pytest.mark.parametrize("guided", [False, True])
def test_deferred_checks_stop_a_non_finite_chain_at_the_next_quarter_and_name_the_same_step(guided, monkeypatch):
    """The CUDA mode on the CPU: 21 states (20 steps and the result) read at states 6, 11, 16 and 21, so the NaN
    state entering step 2 of the unguided chain is read entering step 6 (steps 1 to 5 ran); the guided chain's
    guidance fails on the NaN state at step 2 itself (log q(z | x_t)'s check), where the states read so far
    name the chain. Both name step 2, as the CPU mode does."""
    import functools

    import diffrep.methods.sami as sami_module
    from diffrep.methods.sami_divergence import _ChainWatch

    monkeypatch.setattr(sami_module, "_ChainWatch", functools.partial(_ChainWatch, deferred=True))
    steps_run, msg = _run_until_diverged(_nan_eps_model(), guided)
    assert steps_run == ([0] if guided else [0, 1, 2, 3, 4])
    assert "diverged at step 2/20 (t=18): x_t holds NaN or infinite values" in msg


def test_the_deferred_read_points_are_the_chains_quarters():
    from diffrep.methods.sami_divergence import _ChainWatch

    def reads(total, deferred):
        w = _ChainWatch("c", list(range(total)), None, torch.device("cpu"), deferred=deferred)
        return sorted(w._reads_at)

    assert reads(20, True) == [6, 11, 16, 21]  # ceil(j * 21 / 4)
    assert reads(5, True) == [2, 3, 5, 6]
    assert reads(2, True) == [1, 2, 3]
    assert reads(1000, True) == [251, 501, 751, 1001]
    assert reads(5, False) == [1, 2, 3, 4, 5, 6]
    assert _ChainWatch("c", [0], None, torch.device("cpu")).deferred is False
    assert _ChainWatch("c", [0], None, torch.device("meta")).deferred is True  # any device but the CPU


def test_a_diverged_sample_grid_is_said_and_skipped_and_training_goes_on(tmp_path, capsys):
    # the trainer's periodic grid skips a diverged chain as it skips a NaN grid (early in training a guided
    # chain can diverge; the run must not stop there)
    from torch.utils.data import TensorDataset

    from diffrep.train import TrainConfig, Trainer

    m = tiny_sami(sampler="ddim", guidance_scale=1e12)
    cfg = TrainConfig(steps=2, batch_size=2, ema_decay=0.0, log_every=1, device="cpu", sample_every=1, num_samples=2)
    Trainer(m, TensorDataset(sami_images(4)), cfg, tmp_path / "run").train()
    err = capsys.readouterr().err
    for step in (1, 2):
        assert re.search(rf"step {step}: the sample grid's chain diverged \(SAMI guided DDIM chain diverged at step "
                         r"\d/5 \(t=\d+\): .*\); not saved", err), err
    assert not list((tmp_path / "run").glob("images/samples/*.png")) and m.training


def test_the_bound_is_inclusive_and_the_last_step_is_not_the_end():
    """Written for the surviving mutants of benches/results/mutation_session_2026-12-07b.md: a peak of exactly the
    bound is not a divergence (|x_t| <= 1e6 passes, the next float above it does not); a state leaving the bound
    entering the last step is named as that step (with its t), not as the chain's end; the guided cause is
    worded in full."""
    from diffrep.methods.sami_divergence import _ChainWatch

    ts = [9, 6, 3, 0]
    for deferred in (False, True):
        for dtype in (torch.float32, torch.float64):
            watch = _ChainWatch("unguided DDIM chain", ts, None, torch.device("cpu"), deferred=deferred)
            at_bound = torch.zeros(1, 1, 2, 2, dtype=dtype)
            at_bound[0, 0, 1, 0] = -BOUND  # |x| == 1e6 exactly (representable in both dtypes)
            for _ in range(len(ts) + 1):
                watch.state(at_bound)  # entering steps 1..4, then the result: all silent

        watch = _ChainWatch("guided DDIM chain", ts, 2.5, torch.device("cpu"), deferred=deferred)
        above = torch.full((1, 1, 2, 2), math.nextafter(BOUND, math.inf), dtype=torch.float64)
        for _ in range(len(ts) - 1):
            watch.state(torch.zeros(1, 1, 2, 2, dtype=torch.float64))  # entering steps 1..3
        with pytest.raises(ChainDivergedError) as exc:
            watch.state(above)  # entering step 4 (t = 0); a deferred watch reads it with the result
            watch.state(above)
        assert str(exc.value) == (
            "SAMI guided DDIM chain diverged at step 4/4 (t=0): |x_t| reached 1e+06 (bound 1e+06); the guidance "
            "scale (2.5, config.guidance_scale) is likely too large for this model, or the model (denoiser and "
            "encoder) is undertrained; try a smaller guidance scale or a longer-trained model")
