"""The precision checks of the continuous updates run inside the native kernels (NON_POSITIVE, then
Python's message; csrc/bfn/bfn_math.h, precision_bad): on every native device, per example and per
element. The CUDA kernels once skipped them, so a zero, negative or NaN precision passed silently
there. Values of the per-element bodies against the closed forms of BFN Eq. 49-50 and 86."""

import math

import pytest
import torch

from diffrep.ops import bfn, use_backend

B, D = 3, 5


def _per_element(device, value, at=(1, 2), fill=1.0):
    v = torch.full((B, D), fill, dtype=torch.float64, device=device)
    v[at] = value
    return v


def _per_row(device, value, fill=1.0):
    v = torch.full((B,), fill, dtype=torch.float64, device=device)
    v[1] = value
    return v


def _data(device):
    g = torch.Generator().manual_seed(5)
    return (torch.rand(B, D, generator=g, dtype=torch.float64).to(device),
            torch.rand(B, D, generator=g, dtype=torch.float64).to(device))


def _precisions(device, layout, bad):
    """(rho, alpha) of an update: the one named in ``bad`` laid out per row or per element with the bad value
    at one place, the other a good scalar (rho 1, alpha 0.5)."""
    make = _per_row if layout == "row" else _per_element
    rho = make(device, bad["rho"]) if "rho" in bad else 1.0
    alpha = make(device, bad["alpha"]) if "alpha" in bad else 0.5
    return rho, alpha


@pytest.mark.parametrize("layout", ["row", "element"])
@pytest.mark.parametrize("bad, match", [
    (dict(rho=0.0), "rho must be > 0"), (dict(rho=-2.0), "rho must be > 0"), (dict(rho=math.nan), "rho must be"),
    (dict(alpha=-0.5), "alpha must be >= 0"), (dict(alpha=math.inf), "alpha must be >= 0 and finite")])
def test_bad_precision_of_the_update_is_an_error(device, layout, bad, match):
    mu, y = _data(device)
    rho, alpha = _precisions(device, layout, bad)
    with use_backend(device.type, strict=True), pytest.raises(ValueError, match=match):
        bfn.continuous_update(mu, rho, y, alpha)


@pytest.mark.parametrize("layout", ["row", "element"])
def test_inverse_past_the_prior_is_an_error(device, layout):
    mu, y = _data(device)
    make = _per_row if layout == "row" else _per_element
    rho, alpha = make(device, 0.5, fill=2.0), make(device, 0.5, fill=1.0)  # rho - alpha = 0 at one place
    with use_backend(device.type, strict=True), pytest.raises(ValueError, match="rho - alpha must be > 0"):
        bfn.continuous_update_inverse(mu, rho, y, alpha)


@pytest.mark.parametrize("layout", ["row", "element"])
@pytest.mark.parametrize("bad, match", [
    (dict(alpha=0.0), "alpha must be > 0"), (dict(alpha=-1.0), "alpha must be > 0"),
    (dict(rho=0.0), "rho must be > 0"), (dict(rho=math.inf), "rho must be > 0 and finite")])
def test_bad_precision_of_the_sender_update_is_an_error(device, layout, bad, match):
    mu, x = _data(device)
    rho, alpha = _precisions(device, layout, bad)
    with use_backend(device.type, strict=True), pytest.raises(ValueError, match=match):
        bfn.continuous_sender_update(mu, rho, x, alpha, torch.Generator().manual_seed(0))


def test_per_element_updates_match_the_closed_forms(device):
    mu, x = _data(device)
    g = torch.Generator().manual_seed(9)
    rho = (torch.rand(B, D, generator=g, dtype=torch.float64) + 0.5).to(device)
    alpha = (torch.rand(B, D, generator=g, dtype=torch.float64) + 0.1).to(device)
    eps = torch.randn(B, D, generator=g, dtype=torch.float64).to(device)
    with use_backend(device.type, strict=True):
        new_mu, new_rho = bfn.continuous_update(mu, rho, x, alpha)
        back, _ = bfn.continuous_update_inverse(new_mu, new_rho, x, alpha)
        s_mu, s_rho, y = bfn.continuous_sender_update(mu, rho, x, alpha, noise=eps, return_y=True)
    torch.testing.assert_close(new_mu, (rho * mu + alpha * x) / (rho + alpha), rtol=1e-14, atol=0)
    torch.testing.assert_close(new_rho, rho + alpha, rtol=0, atol=0)
    torch.testing.assert_close(back, mu, rtol=1e-12, atol=1e-14)
    y_expected = x + eps / alpha.sqrt()  # BFN Eq. 86: y ~ N(x, 1/alpha)
    torch.testing.assert_close(y, y_expected, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(s_mu, (rho * mu + alpha * y_expected) / (rho + alpha), rtol=1e-14, atol=0)
    torch.testing.assert_close(s_rho, rho + alpha, rtol=0, atol=0)
