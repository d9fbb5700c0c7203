"""CUDA-only checks of the HDDC kernels (csrc/hddc/hddc_cuda.cu) against the CPU kernels on the same
inputs: the E-step, the M-step sums and the cluster density at every padded dimension of the
kernels (d <= 8, 16, 32, 64, d = 64 included, where the mass of pass 1 once went unwritten), across
the 4096-point blocks, with K up to 64, batches of more problems than a grid dimension holds
(65535), zero-weight points that hold a non-finite value (skipped by both), and bitwise reruns.
Skipped without a GPU."""

import math

import pytest
import torch

import diffrep
from diffrep.ops import hddc
from diffrep.ops.reference import hddc as ref

pytestmark = pytest.mark.skipif(not diffrep.cuda_available(), reason="no usable CUDA device")


def _problem(U, B, n, d, K, seed, dtype=torch.float64):
    """x (U, n, d), a B-problem batch (unit_of, w with zeros, resp over the active components, active)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(U, n, d, generator=g, dtype=torch.float64) * (1 + 3 * torch.rand(U, 1, d, generator=g,
                                                                                         dtype=torch.float64))
    unit_of = torch.randint(0, U, (B,), generator=g)
    w = torch.rand(B, n, generator=g, dtype=torch.float64)
    w[w < 0.2] = 0.0
    w[:, 0] = 1.0
    active = torch.rand(B, K, generator=g) < 0.8
    active[:, 0] = True
    resp = torch.softmax(torch.randn(B, n, K, generator=g, dtype=torch.float64) * 4, -1) * active[:, None]
    resp = resp / resp.sum(-1, keepdim=True)
    return x.to(dtype), unit_of, w.to(dtype), resp.to(dtype), active


def _params(x, unit_of, w, resp, active, model):
    cfg = dict(model=model, threshold=0.2, dim_rule="cattell", reg_covar=1e-6)
    nk, mu, W = ref.mstep_stats(x[unit_of].double(), w.double(), resp.double())
    return hddc.params(nk, mu, W, w.double().sum(1), active, cfg)


def _cuda(v):
    return v.cuda() if isinstance(v, torch.Tensor) else v


def _both(x, unit_of, w, resp, active, p, phi=0.5, skip_zero=False):
    """(CPU outputs, CUDA outputs, CUDA rerun) of estep (with llp), mstep and density."""

    def run(eng, dev):
        u, ww, rr, aa = (t.to(dev) for t in (unit_of, w, resp, active))
        pp = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
        out = list(eng.estep(u, ww, pp, skip_zero, point_ll=True))
        out += list(eng.mstep(u, ww, rr, aa))
        out += list(eng.density(u, ww, rr, aa, phi))
        return [t.cpu() for t in out]

    cpu = run(hddc.Engine("cpu", x), "cpu")
    gpu_eng = hddc.Engine("cuda", x.cuda())
    return cpu, run(gpu_eng, "cuda"), run(gpu_eng, "cuda")


def _assert_close(cpu, gpu, again, f32=False):
    """The CUDA outputs equal the CPU ones within rounding (FMA contraction, log), reruns bitwise."""
    for a, b in zip(gpu, again):  # bitwise (NaN densities of empty clusters included)
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    r_c, L_c, c_c, llp_c, nk_c, mu_c, W_c, cnt_c, cen_c, den_c = cpu
    r_g, L_g, c_g, llp_g, nk_g, mu_g, W_g, cnt_g, cen_g, den_g = gpu
    tol = dict(rtol=1e-4, atol=1e-4) if f32 else dict(rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(r_g, r_c, **tol)
    torch.testing.assert_close(llp_g, llp_c, **(dict(rtol=1e-4, atol=1e-3) if f32 else dict(rtol=1e-9, atol=1e-8)))
    torch.testing.assert_close(L_g, L_c, **(dict(rtol=1e-5, atol=1e-3) if f32 else dict(rtol=1e-9, atol=1e-8)))
    # counts of t > 1/K_active: equal except for responsibilities within rounding of the threshold
    assert (c_g - c_c).abs().max() <= 1
    stol = dict(rtol=1e-4, atol=1e-4) if f32 else dict(rtol=1e-9, atol=1e-10)
    for a, b in ((nk_g, nk_c), (mu_g, mu_c), (W_g, W_c)):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, **stol)
    # each entry pair (r, c), (c, r) is one sum, (t e_min) e_max, as the CPU mirrors its upper triangle
    assert torch.equal(W_g, W_g.transpose(-1, -2)) and torch.equal(W_c, W_c.transpose(-1, -2))
    assert torch.equal(cnt_g, cnt_c)
    has = cnt_c > 0
    torch.testing.assert_close(cen_g[has], cen_c[has], **stol)
    torch.testing.assert_close(den_g[has], den_c[has], **stol)
    assert bool(den_g[~has].isnan().all())


@pytest.mark.parametrize("U,B,n,d,K,model", [(2, 3, 300, 1, 3, "AkjBkQkDk"), (2, 2, 4100, 7, 5, "full"),
                                             (1, 2, 200, 16, 64, "AkjBkQkDk"), (3, 4, 4100, 33, 4, "AkjBkQkDk"),
                                             (2, 2, 4200, 64, 3, "full"), (2, 3, 500, 64, 6, "AkjBkQkDk")])
def test_cuda_equals_cpu(U, B, n, d, K, model):
    x, unit_of, w, resp, active = _problem(U, B, n, d, K, U + B + n + d + K)
    p = _params(x, unit_of, w, resp, active, model)
    _assert_close(*_both(x, unit_of, w, resp, active, p))


@pytest.mark.parametrize("skip_zero", [False, True])
def test_cuda_equals_cpu_float32(skip_zero):
    x, unit_of, w, resp, active = _problem(2, 3, 5000, 32, 8, 1, dtype=torch.float32)
    p = _params(x, unit_of, w, resp, active, "AkjBkQkDk")
    _assert_close(*_both(x, unit_of, w, resp, active, p, skip_zero=skip_zero), f32=True)


def test_batches_beyond_the_grid_limit():
    """B = 70000 problems: the kernels launch them in slices of 65535 (grid.y / grid.z)."""
    x, unit_of, w, resp, active = _problem(3, 70000, 3, 2, 2, 5)
    active[:] = True
    resp = torch.softmax(torch.randn(70000, 3, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64), -1)
    p = _params(x, unit_of, w, resp, active, "full")
    _assert_close(*_both(x, unit_of, w, resp, active, p))


def test_zero_weight_points_with_non_finite_values_add_nothing():
    """A point of weight 0 is skipped by the CPU kernels: with skip_zero its infinite x reaches no
    output, and NaN responsibilities there leave the M-step sums finite, on CUDA as on the CPU."""
    x, unit_of, w, resp, active = _problem(1, 2, 600, 5, 3, 9)
    p = _params(x, unit_of, w, resp, active, "AkjBkQkDk")
    x[0, 7] = math.inf
    w[:, 7] = 0.0
    cpu, gpu, again = _both(x, unit_of, w, resp, active, p, skip_zero=True)
    _assert_close(cpu, gpu, again)
    resp[:, 7] = math.nan
    eng_c, eng_g = hddc.Engine("cpu", x), hddc.Engine("cuda", x.cuda())
    for a, b in zip(eng_c.mstep(unit_of, w, resp, active), eng_g.mstep(*map(_cuda, (unit_of, w, resp, active)))):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(b.cpu(), a, rtol=1e-9, atol=1e-10)


def test_unit_of_out_of_range_is_rejected_before_the_kernel():
    x, unit_of, w, resp, active = _problem(2, 2, 50, 3, 2, 3)
    eng = hddc.Engine("cuda", x.cuda())
    with pytest.raises(ValueError, match="unit_of"):
        eng.mstep(torch.tensor([0, 2]).cuda(), w.cuda(), resp.cuda(), active.cuda())
