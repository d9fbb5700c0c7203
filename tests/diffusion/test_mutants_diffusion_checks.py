"""diffusion/schedules.py and diffusion/samplers.py: each input check on its own (the boundary values that
must pass, the ones that must not) and its exact message, naming the argument. Written for the checks that
survived mutation testing (benches/results/mutation_diffusion_toyddpm_vae_2026-12-07.md): an ``or`` read
as ``and``, a ``<`` as ``<=``, a message with the argument's name lost."""

import re

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, NoiseScheduleConfig, ddim_timesteps
from diffrep.diffusion.schedules import expand_like

T = 10
S = NoiseSchedule(num_timesteps=T)
X = torch.zeros(2, 3, dtype=torch.float64)
T2 = torch.tensor([4, 6])
EPS = lambda x, t: 0.1 * x  # noqa: E731

CASES = [
    # ddim_timesteps
    (lambda: ddim_timesteps(10, 2.5), ValueError, "num_steps must be an int in [1, 10], got 2.5"),
    (lambda: ddim_timesteps(10, True), ValueError, "num_steps must be an int in [1, 10], got True"),
    (lambda: ddim_timesteps(0, 1), ValueError, "num_timesteps must be a positive int, got 0"),
    (lambda: ddim_timesteps(10, 2, "x"), ValueError, "spacing must be 'uniform' or 'trailing', got 'x'"),
    # the samplers' constructors
    (lambda: DDIMSampler("s"), TypeError, "schedule must be a NoiseSchedule, got str"),
    (lambda: DDIMSampler(S, prediction="y"), ValueError, "prediction must be one of eps, x0, v, score; got 'y'"),
    (lambda: DDPMSampler(S, prediction="y"), ValueError, "prediction must be one of eps, x0, v, score; got 'y'"),
    (lambda: DDIMSampler(S, clip_x0=0), ValueError, "clip_x0 must be positive or None, got 0"),
    (lambda: DDIMSampler(S, clip_x0=float("nan")), ValueError, "clip_x0 must be a finite number, got nan"),
    (lambda: DDPMSampler(S, variance="z"), ValueError, "variance must be 'fixed_small' or 'fixed_large', got 'z'"),
    (lambda: DDIMSampler(S, eta=-1), ValueError, "eta must be >= 0, got -1.0"),
    (lambda: DDIMSampler(S, spacing="z"), ValueError, "spacing must be 'uniform' or 'trailing', got 'z'"),
    # sample
    (lambda: DDIMSampler(S).sample(3, (2, 3)), TypeError, "model_fn must be callable as model_fn(x_t, t)"),
    (lambda: DDIMSampler(S).sample(EPS, (2, 3), callback=3), TypeError, "callback must be None or callable, got int"),
    (lambda: DDIMSampler(S).sample(EPS, (2, 3), generator=3), TypeError, "generator must be a torch.Generator or None, got int"),
    (lambda: DDIMSampler(S).sample(EPS, None), ValueError, "shape must be a tuple of positive ints, got None"),
    (lambda: DDIMSampler(S).sample(EPS, (2, 0)), ValueError, "shape must be a tuple of positive ints, got (2, 0)"),
    (lambda: DDIMSampler(S).sample(EPS, (2, 3), dtype=torch.int64), TypeError,
     "dtype must be a floating-point torch.dtype, got torch.int64"),
    (lambda: DDIMSampler(S).sample(EPS, None, x_T=torch.zeros(2, 3, dtype=torch.long)), TypeError,
     "x_T must be a tensor of floats, got torch.int64"),
    (lambda: DDIMSampler(S).sample(EPS, None, x_T=[0.0]), TypeError, "x_T must be a tensor of floats, got list"),
    (lambda: DDIMSampler(S).sample(EPS, None, x_T=torch.zeros(0, 3)), ValueError, "x_T must be a non-empty batch, got shape (0, 3)"),
    (lambda: DDIMSampler(S).sample(EPS, None, x_T=torch.tensor(1.0)), ValueError, "x_T must be a non-empty batch, got shape ()"),
    (lambda: DDIMSampler(S).sample(EPS, None, x_T=torch.tensor([[0.0, float("nan")]])), ValueError,
     "x_T contains NaN or infinite values"),
    # the DDPM posterior and step
    (lambda: DDPMSampler(S).posterior(torch.zeros(3, 3), torch.zeros(3, 3), T2), ValueError, "x_t batch size (3,) does not match t of shape (2,)"),
    (lambda: DDPMSampler(S).posterior(torch.zeros(2, 4), X, T2), ValueError, "x0 has shape (2, 4) but x_t has shape (2, 3)"),
    (lambda: DDPMSampler(S).step(X, T2, X, noise=torch.zeros(2, 4)), ValueError, "noise has shape (2, 4) but x_t has shape (2, 3)"),
    (lambda: DDPMSampler(S).step(X, T2, X, generator=3), TypeError, "generator must be a torch.Generator or None, got int"),
    # the DDIM step
    (lambda: DDIMSampler(S).step(X, T2, [1, 2], X), ValueError, "t_prev must be a tensor with the same shape as t"),
    (lambda: DDIMSampler(S).step(X, T2, torch.tensor([1, 2, 3]), X), ValueError, "t_prev must be a tensor with the same shape as t"),
    (lambda: DDIMSampler(S).step(X, T2, torch.tensor([1.0, 2.0]), X), TypeError, "t_prev must be an integer tensor, got torch.float32"),
    (lambda: DDIMSampler(S).step(X, T2, torch.tensor([True, False]), X), TypeError, "t_prev must be an integer tensor, got torch.bool"),
    (lambda: DDIMSampler(S).step(X, T2, torch.tensor([1, 6]), X), ValueError, "t_prev must satisfy -1 <= t_prev < t for every sample"),
    (lambda: DDIMSampler(S).step(X, T2, torch.tensor([1, -2]), X), ValueError, "t_prev must satisfy -1 <= t_prev < t for every sample"),
    (lambda: DDIMSampler(S).step(X, T2, T2 - 1, X, generator=3), TypeError, "generator must be a torch.Generator or None, got int"),
    (lambda: DDIMSampler(S).step(X, T2, T2 - 1, X, noise=torch.zeros(2, 4)), ValueError,
     "noise has shape (2, 4) but x_t has shape (2, 3)"),
    # timesteps
    (lambda: S._check_t([1, 2]), TypeError, "t must be a torch.Tensor of integer timesteps, got list"),
    (lambda: S._check_t(torch.tensor([1j])), TypeError, "t must be an integer tensor, got torch.complex64"),
    # a uint8 t indexes the tables as a boolean mask (a uint8 t of length T selected by mask, silently)
    (lambda: S.gather("betas", torch.ones(10, dtype=torch.uint8)), TypeError,
     "t must be an int64 or int32 tensor of timesteps, got torch.uint8 (use t.long())"),
    (lambda: S._check_t(torch.tensor([1, 2], dtype=torch.int16)), TypeError,
     "t must be an int64 or int32 tensor of timesteps, got torch.int16 (use t.long())"),
    (lambda: S._check_t(torch.tensor([0, 10])), ValueError, "t must lie in [0, 9], got range [0, 10]"),
    (lambda: S._check_t(torch.tensor([0, 1, 2]), batch=2, who="W"), ValueError, "W: t must have shape [2] (one timestep per x_t), got (3,)"),
    (lambda: S._check_t(torch.tensor([0, 1, 2]), batch=2), ValueError, "t must have shape [2] (one timestep per x_t), got (3,)"),
    # tables, the forward process, the tensors
    (lambda: S.gather("x", T2), ValueError, "name must be one of ['betas', 'alphas', 'alphas_cumprod', 'alphas_cumprod_prev'], got 'x'"),
    (lambda: S.gather("betas", T2, torch.zeros(3, 4)), ValueError, "like must have t's batch size 2 first, got shape (3, 4)"),
    (lambda: S.gather("betas", T2, torch.tensor(1.0)), ValueError, "like must have t's batch size 2 first, got shape ()"),
    (lambda: S.gather("betas", T2, [1.0, 2.0]), TypeError, "like must be a real tensor, got list"),
    (lambda: S.q_sample(torch.zeros(3, 4), T2), ValueError, "x0 batch size (3,) does not match t of shape (2,)"),
    (lambda: S.q_sample(torch.zeros(2, 4, dtype=torch.long), T2), TypeError, "x0 must be a floating-point tensor, got torch.int64"),
    (lambda: S.q_sample(X, T2, noise=torch.zeros(2, 4)), ValueError, "noise has shape (2, 4) but x0 has shape (2, 3)"),
    (lambda: S.q_sample(X, T2, noise=torch.zeros(2, 3, dtype=torch.long)), TypeError, "noise must be a floating-point tensor, got torch.int64"),
    (lambda: S.q_sample(X, T2, generator=3), TypeError, "generator must be a torch.Generator or None, got int"),
    (lambda: S.eps_to_x0(torch.zeros(3, 4), T2, torch.zeros(3, 4)), ValueError, "x_t batch size (3,) does not match t of shape (2,)"),
    (lambda: expand_like(torch.zeros(3), torch.zeros(2, 4)), ValueError, "v must have shape [B] with B = x.shape[0]; got v (3,), x (2, 4)"),
    (lambda: expand_like(torch.zeros(2, 1), torch.zeros(2, 4)), ValueError, "v must have shape [B] with B = x.shape[0]; got v (2, 1), x (2, 4)"),
    (lambda: expand_like(torch.zeros(1), torch.tensor(1.0)), ValueError, "v must have shape [B] with B = x.shape[0]; got v (1,), x ()"),
    (lambda: expand_like(torch.zeros(2, dtype=torch.complex64), torch.zeros(2, 4)), TypeError, "v must be a real tensor, got torch.complex64"),
    (lambda: expand_like(torch.zeros(2), [1.0]), TypeError, "x must be a real tensor, got list"),
]


@pytest.mark.parametrize("call,exc,message", CASES, ids=[c[2][:60] for c in CASES])
def test_each_check_refuses_with_its_message(call, exc, message):
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        call()


def test_the_boundaries_that_must_pass():
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1)) and ddim_timesteps(10, 1) == [0]
    assert DDIMSampler(S, clip_x0=1e-9).clip_x0 == 1e-9
    # a one-element x_T (numel 1) is a batch of one
    assert DDIMSampler(S).sample(EPS, None, x_T=torch.tensor([0.5]), num_steps=2).shape == (1,)
    # integer tensors are fine where only the shape is read: expand_like's v and x, gather's like
    assert expand_like(torch.tensor([1, 2]), torch.zeros(2, 3, 4, dtype=torch.long)).shape == (2, 1, 1)
    got = S.gather("betas", T2, torch.zeros(2, 5, dtype=torch.long))
    assert got.dtype == torch.float32 and got.shape == (2, 1)
    assert S._check_t(T2, batch=2, who="W") is T2
    # the linear schedules need 0 < beta_start <= beta_end < 1; the cosine one reads neither
    assert NoiseScheduleConfig(beta_start=0.01, beta_end=0.01).beta_end == 0.01
    assert NoiseScheduleConfig(kind="cosine", beta_start=0.0, beta_end=1.0).kind == "cosine"
    for kind, b0, b1 in (("linear", 0.0, 0.02), ("linear", 0.03, 0.02), ("ldm_linear", 0.001, 1.0)):
        with pytest.raises(ConfigError, match="^" + re.escape(f"config field 'beta_end': need 0 < beta_start <= beta_end < 1, "
                                                              f"got {b0}, {b1}") + "$"):
            NoiseScheduleConfig(kind=kind, beta_start=b0, beta_end=b1)


def test_int32_timesteps_gather_as_int64():
    t = torch.tensor([0, 3, 9])
    assert torch.equal(S.gather("alphas_cumprod", t.int()), S.alphas_cumprod.float()[[0, 3, 9]])
