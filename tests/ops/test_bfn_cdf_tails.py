"""float32 BFN kernels in the lower tail of the discretised output distribution: the boundary CDFs come
from erfc there (csrc/common/fast_math.h, fast_half_one_plus_erf), so values far below one keep their
relative accuracy where (1 + erf) / 2 would keep only float's absolute resolution."""

import torch

from diffrep.ops import bfn, use_backend


def test_lower_tail_bin_probabilities_are_at_least_as_accurate_as_the_float32_twin():
    # N(1.74, 0.2^2) renormalised to [-1, 1] in 16 bins (clip=False): R = 1.1e-4, so each bin is a
    # difference of lower-tail CDFs divided by R. The float32 twin's (1 + erf) / 2 rounds bin 12
    # (1.1e-4 of the mass) to 0; the kernel keeps it to ~2%
    mu, sigma = torch.tensor([1.74]), torch.tensor([0.2])
    with use_backend("reference"):
        truth = bfn.discretised_probs(mu.double(), sigma.double(), 16, clip=False)
        twin = bfn.discretised_probs(mu, sigma, 16, clip=False).double()
    native = bfn.discretised_probs(mu, sigma, 16, clip=False).double()
    err_native, err_twin = (native - truth).abs(), (twin - truth).abs()
    assert bool((err_native <= err_twin + 1e-7).all())
    assert float(err_native[0, 12] / truth[0, 12]) < 0.05 and float(twin[0, 12]) == 0.0


def test_the_loss_gradient_far_outside_the_data_range_is_accurate_in_float32():
    # the element hypothesis found: mu_x = 1.74 lies 5.9 sigma above its bin; before the erfc tail the
    # float32 kernel's d/d(out_mean) was 1.6% off the float64 value (the float32 twin: 0.2%)
    args = dict(mu=torch.tensor([[0.5453]]), t=torch.tensor([[0.6642]]), x=torch.tensor([[0.5625]]))
    out = []
    for dtype, backend in ((torch.float32, "cpu"), (torch.float64, "reference")):
        e = torch.tensor([[1.7404]], dtype=dtype, requires_grad=True)
        s = torch.tensor([[-1.5946]], dtype=dtype, requires_grad=True)
        with use_backend(backend):
            loss = bfn.discretised_continuous_time_loss(e, s, args["mu"].to(dtype), args["t"].to(dtype),
                                                        args["x"].to(dtype), 1e-3, 16, False, False, 1e-4)
            grads = torch.autograd.grad(loss.sum(), (e, s))
        out.append([loss.detach().double(), *(g.double() for g in grads)])
    for native, truth in zip(*out):
        assert float(((native - truth).abs() / truth.abs()).max()) < 1e-3
