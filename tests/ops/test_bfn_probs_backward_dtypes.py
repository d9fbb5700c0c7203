"""The native backward of discretised_probs computes in float64 for float32 inputs too, on every native
device (CPU: items::disc_probs_backward_item; CUDA: bfn_math.h disc_probs_backward_f64): with
clip=False and the mass beyond an edge, d_mu = (a_mu - gp dR_mu) / R cancels, and a float32 body is off
by up to 2e-5 (the CUDA kernel ran one). So the float32 gradient is the float64 one rounded, for
inputs both dtypes hold exactly."""

import pytest
import torch

from diffrep.ops import bfn, use_backend


def _grads(device, dtype, mu, sigma, g, K, clip):
    m = mu.to(device, dtype, copy=True).requires_grad_()
    s = sigma.to(device, dtype, copy=True).requires_grad_()
    with use_backend(device.type, strict=True):
        p = bfn.discretised_probs(m, s, K, clip=clip)
    (p * g.to(device, dtype)).sum().backward()
    return m.grad.cpu(), s.grad.cpu()


@pytest.mark.parametrize("K", [2, 16, 256])
@pytest.mark.parametrize("clip", [False, True])
def test_float32_backward_is_the_float64_one_rounded(device, K, clip):
    gen = torch.Generator().manual_seed(2)
    # the mass beyond an edge (the cancelling case) and ordinary ones, all exact in float32
    mu = torch.tensor([-1.4, -1.9, 1.6, 0.3, -0.05, 2.1]).float()
    sigma = torch.tensor([0.21, 0.25, 0.15, 0.1, 0.4, 0.3]).float()
    g = (torch.rand(6, K, generator=gen) * 2 - 1).float()
    dm32, ds32 = _grads(device, torch.float32, mu, sigma, g, K, clip)
    dm64, ds64 = _grads(device, torch.float64, mu, sigma, g, K, clip)
    one_ulp = dict(rtol=2.0**-23, atol=1e-30)  # float rounding of the same float64 value (sums may reorder)
    torch.testing.assert_close(dm32.double(), dm64, **one_ulp)
    torch.testing.assert_close(ds32.double(), ds64, **one_ulp)
