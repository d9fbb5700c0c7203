"""The guidance op on rows longer than one run of the CPU kernels (csrc/guidance/guidance_cpu.cpp
works in runs of 256 elements and sums a row over 8 interleaved float64 lanes): values, first and
second derivatives against the twin with D = 603 (two whole runs and a short one whose length, 91,
is not a multiple of the lane count), each subset of upstream cotangents of the double backward,
and the non-finite flag raised from the short run."""

import math

import pytest
import torch

from diffrep.ops import guidance, use_backend

from helpers import native_and_twin
from helpers import randn as rand

D = 603


def long_rows(S, dtype, device):
    z = rand((S, 3, D), dtype, device, 11)
    return (z.requires_grad_(), rand((3, D), dtype, device, 12).requires_grad_(),
            rand((3, D), dtype, device, 13, 0.5).requires_grad_())


def value_and_derivatives(z, mu, lv, used):
    """The value, its first derivatives, and the gradient of a loss built only from the first
    derivatives named in ``used`` (the others reach the double backward as None)."""
    out = guidance.log_posterior(z, mu, lv)
    w = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype, device=out.device)
    g = torch.autograd.grad((out * w).sum(), (z, mu, lv), create_graph=True)
    loss = sum((gi * gi.detach().cos()).sum() for gi, name in zip(g, ("z", "mu", "logvar")) if name in used)
    return (out, *g, *torch.autograd.grad(loss, (z, mu, lv)))


@pytest.mark.parametrize("S", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("used", [("z", "mu", "logvar"), ("mu",), ("z",), ("logvar", "z")])
def test_long_rows_match_twin_to_second_order(device, S, dtype, used):
    z, mu, lv = long_rows(S, dtype, device)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=2e-5, atol=1e-4)
    native, twin = native_and_twin(lambda: value_and_derivatives(z, mu, lv, used), device)
    for a, b in zip(native, twin):
        torch.testing.assert_close(a, b, **tol)


def test_long_row_sum_is_float64_accurate(device):
    """float32 inputs, the row sum against the float64 sum of the same terms: the kernels sum in
    float64, so the row of 603 terms carries no more than the terms' own float32 rounding."""
    z, mu, lv = (t.detach() for t in long_rows(2, torch.float32, device))
    with use_backend(device.type, strict=True):
        out = guidance.log_posterior(z, mu, lv)
    z64, mu64, lv64 = z.double(), mu.double(), lv.double()
    terms = -0.5 * (((z64 - mu64) ** 2).mean(0) * torch.exp(-lv64) + lv64 + math.log(2 * math.pi))
    exact = terms.sum(-1)
    bound = 4 * torch.finfo(torch.float32).eps * terms.abs().sum(-1)  # each term within ~2 ulp, then one rounding
    assert ((out.double() - exact).abs() <= bound).all()


def test_non_finite_in_the_short_run_is_flagged(device):
    z, mu, lv = (t.detach() for t in long_rows(1, torch.float64, device))
    bad = lv.clone()
    bad[2, D - 3] = math.inf  # exp(-inf) = 0 but the log-det term is infinite
    with use_backend(device.type, strict=True), pytest.raises(ValueError, match="NaN or infinite"):
        guidance.log_posterior(z, mu, bad)
    bad = z.clone()
    bad[0, 1, D - 1] = math.nan
    with use_backend(device.type, strict=True), pytest.raises(ValueError, match="NaN or infinite"):
        guidance.log_posterior(bad, mu, lv)
