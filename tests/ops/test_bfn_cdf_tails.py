"""float32 BFN kernels in the lower tail of the discretised output distribution: the boundary CDFs come
from erfc there (csrc/common/fast_math.h, fast_half_one_plus_erf), so values far below one keep their
relative accuracy where (1 + erf) / 2 would keep only float's absolute resolution."""

import pytest
import torch

import diffrep
from diffrep.ops import bfn, use_backend

DEVICES = ["cpu"] + (["cuda"] if diffrep.cuda_available() else [])


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


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("K", [2, 3, 7, 16, 17, 40, 256])
def test_bins_above_the_mean_keep_their_relative_accuracy_in_float32(K, clip, device):
    # Phi near 1 keeps only float's absolute resolution (6e-8): as differences of such CDFs, bins
    # above the mean of 1e-6 had relative errors up to 0.1 (the float32 twin's too). The kernels
    # take them as differences of upper-tail CDFs Phi(-z) (bfn_math.h, split_cdf), each relatively
    # accurate, so a bin's error is ~(1 + z^2) ulp of its lower boundary's upper-tail CDF. Truth from erfc
    # in float64 (0 beyond the kernel's tail range z <= 4 sqrt(2), as the kernels by design), for every
    # bin whose lower boundary lies in the tail, sqrt(2) < z <= 4 sqrt(2)
    g = torch.Generator().manual_seed(K)
    mu = torch.rand(600, generator=g) * 1.6 - 2.2  # [-2.2, -0.6]: bins above the mean
    sigma = torch.rand(600, generator=g) * 0.4 + 0.05
    b = torch.linspace(-1, 1, K + 1, dtype=torch.float64)
    z = (b[None, :] - mu.double()[:, None]) / sigma.double()[:, None]
    upper = 0.5 * torch.special.erfc(z / 2**0.5)  # 1 - Phi(z), 0 beyond the range as the kernels
    upper[z > 4 * 2**0.5] = 0.0
    if clip:
        upper[:, 0], upper[:, -1] = 1.0, 0.0
    truth, scale = upper[:, :-1] - upper[:, 1:], upper[:, :-1]
    above = (z[:, :-1] > 2**0.5) & (upper[:, :-1] > 0)
    if not clip:  # renormalised by R, itself an upper-tail difference here (uniform bins where R < 1e-5)
        R = upper[:, 0] - upper[:, -1]
        truth, scale = truth / R[:, None], scale / R[:, None]
        above &= (R >= 1e-5)[:, None] & (z[:, :1] > 2**0.5)
    with use_backend(device, strict=True):
        p = bfn.discretised_probs(mu.to(device), sigma.to(device), K, clip).double().cpu()
    assert int(above.sum()) > 50
    excess = ((p - truth).abs() / scale)[above]
    assert float(excess.max()) < 1e-5
    tiny = above & (truth < 1e-4)  # where the CDFs near 1 kept ~0.1 % or worse
    assert int(tiny.sum()) > 5
    assert float(((p - truth).abs() / truth)[tiny].max()) < 2e-4


@pytest.mark.skipif(not diffrep.cuda_available(), reason="no usable CUDA device")
@pytest.mark.parametrize("K", [3, 16, 256])
def test_cuda_float32_probs_backward_with_the_mass_below_the_range(K):
    # clip=False renormalises by R, an upper-tail difference when the mass lies below -1, where the
    # backward's two terms cancel: both backends run it in double for float32 inputs (CUDA:
    # bfn_math.h disc_probs_backward_f64, CPU: items::disc_probs_backward_item, the same body), so
    # the float32 gradients agree but for the double body's own cancellation (~5e-10 absolute where
    # R ~ 1e-5: test_bfn_probs_backward_host.py), which their summation orders round differently
    g = torch.Generator().manual_seed(K)
    mu = torch.rand(500, generator=g) * 0.6 - 1.9
    sigma = torch.rand(500, generator=g) * 0.3 + 0.2
    grad = torch.randn(500, K, generator=g)
    out = []
    for device in ("cpu", "cuda"):
        m, s = mu.to(device).requires_grad_(), sigma.to(device).requires_grad_()
        with use_backend(device, strict=True):
            p = bfn.discretised_probs(m, s, K, False)
            out.append([t.double().cpu() for t in torch.autograd.grad((p * grad.to(device)).sum(), (m, s))])
    for cpu, cuda in zip(*out):
        torch.testing.assert_close(cuda, cpu, rtol=1e-5, atol=1e-7 * float(cpu.abs().max()))
