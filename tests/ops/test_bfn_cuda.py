"""CUDA-only checks of the BFN kernels (the twin comparisons in test_bfn_twin.py also run on CUDA
through the ``device`` fixture). Skipped only when no GPU is usable."""

import pytest
import torch

import diffrep
from diffrep import _native
from diffrep.ops import bfn, random

pytestmark = pytest.mark.skipif(not diffrep.cuda_available(), reason="no usable CUDA device")


def _pair(fn, seed=7):
    """fn(device, generator) on the CPU and on CUDA with the same key."""
    return (fn(torch.device("cpu"), torch.Generator().manual_seed(seed)),
            fn(torch.device("cuda"), torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_philox_normals_agree_between_cpu_and_cuda(dtype, tol):
    cpu, gpu = _pair(lambda d, g: random.normal((1 << 20) + 3, dtype, d, g))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_ops_agree_between_cpu_and_cuda(dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1000, generator=g, dtype=dtype) * 2 - 1
    t = torch.rand(64, generator=g, dtype=dtype)
    xi = torch.randint(0, 16, (64, 100), generator=g)
    cpu, gpu = _pair(lambda d, gen: bfn.continuous_flow(x.to(d), t.to(d), 1e-3, gen))
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)
    cpu, gpu = _pair(lambda d, gen: bfn.discrete_flow(xi.to(d), t.to(d), 3.0, 16, gen, dtype=dtype))
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)
    cpu, gpu = _pair(lambda d, gen: bfn.continuous_sender_update(x.to(d), 1.0, x.to(d), t.to(d) + 0.1, gen,
                                                                return_y=True)[2])
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)


def test_kernels_run_on_the_current_stream():
    x = torch.rand(256, 4096, device="cuda") * 2 - 1
    t = torch.rand(256, device="cuda")
    expected = bfn.continuous_flow(x, t, 1e-3, torch.Generator().manual_seed(1))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = x * 1.0  # queued on the side stream; the flow must see it
        out = bfn.continuous_flow(y, t, 1e-3, torch.Generator().manual_seed(1))
    torch.cuda.current_stream().wait_stream(side)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_error_flags_come_back_from_the_device():
    x = torch.full((4, 8), 3, device="cuda")
    with pytest.raises(ValueError, match="class outside"):
        bfn.discrete_flow(x, torch.full((4,), 0.5, device="cuda"), 3.0, 2)
    with pytest.raises(ValueError, match="NaN"):
        bfn.continuous_flow(torch.full((4, 8), float("nan"), device="cuda"), 0.5, 1e-3)


@pytest.mark.parametrize("bad", [1.5, -0.25, float("nan")])
def test_the_kernels_check_t_and_python_words_the_message(bad):
    """The t-taking CUDA kernels flag t outside [0, 1] (no Python check before them: docs/kernels/bfn.md
    #host-reads-on-cuda); the message is the CPU path's."""
    t = torch.tensor([0.5, bad], device="cuda", dtype=torch.float64)
    x = torch.rand(2, 5, device="cuda", dtype=torch.float64) * 2 - 1
    classes = torch.zeros(2, 5, dtype=torch.int64, device="cuda")
    out = torch.zeros(2, 5, device="cuda", dtype=torch.float64)
    calls = [lambda d: bfn.continuous_flow(x.to(d), t.to(d), 1e-3, torch.Generator().manual_seed(0)),
             lambda d: bfn.discrete_flow(classes.to(d), t.to(d), 3.0, 4, torch.Generator().manual_seed(0)),
             lambda d: bfn.discretised_continuous_time_loss(out.to(d), out.to(d), x.to(d), t.to(d),
                                                            torch.zeros_like(x).to(d), 1e-3, 16),
             lambda d: bfn.discrete_continuous_time_loss(torch.zeros(2, 5, 4, dtype=torch.float64, device=d),
                                                         classes.to(d), t.to(d), 3.0)]
    for call in calls:
        with pytest.raises(ValueError) as on_cpu:
            call("cpu")
        with pytest.raises(ValueError) as on_cuda:
            call("cuda")
        assert str(on_cuda.value) == str(on_cpu.value) and "t must lie in [0, 1]" in str(on_cuda.value)


def test_deferred_checks_read_once_and_raise_the_named_error():
    from helpers import host_reads

    from diffrep.ops import deferred_checks

    x = torch.rand(4, 8, device="cuda") * 2 - 1
    t = torch.rand(4, device="cuda")
    rho, alpha = torch.ones(4, device="cuda"), torch.full((4,), 0.5, device="cuda")

    def steps():
        mu = bfn.continuous_flow(x, t, 1e-3)
        return bfn.continuous_update(mu, rho, x, alpha)[0]

    def block():
        with deferred_checks():
            return steps()

    n_sync, want = host_reads(steps)
    n_block, got = host_reads(block)
    assert (n_sync, n_block) == (2, 1) and torch.equal(got.isfinite(), want.isfinite())
    with pytest.raises(ValueError, match="continuous_update: mu or y contains NaN"):
        with deferred_checks():
            bfn.continuous_update(x, rho, torch.full_like(x, float("nan")), alpha)
            bfn.continuous_flow(x, t, 1e-3)  # runs on: the flags are read when the block ends


def test_a_cuda_generator_keys_the_draws_without_a_read():
    """philox_key hashes a CUDA generator's host-side Philox state (docs/kernels/random.md#key-and-counter): no
    read, the offset moves on by 4 per call, reseeding repeats the draws, successive calls differ."""
    from helpers import host_reads

    g = torch.Generator(device="cuda").manual_seed(3)
    start = g.get_offset()
    reads, keys = host_reads(lambda: [random.philox_key(g) for _ in range(3)])
    assert reads == 0 and g.get_offset() == start + 12 and len(set(keys)) == 3
    x, t = torch.rand(4, 8, device="cuda"), torch.rand(4, device="cuda")
    g.manual_seed(3)
    a, b = bfn.continuous_flow(x, t, 1e-3, g), bfn.continuous_flow(x, t, 1e-3, g)
    g.manual_seed(3)
    assert torch.equal(bfn.continuous_flow(x, t, 1e-3, g), a) and not torch.equal(a, b)


def test_cpu_tensor_to_the_cuda_module_is_a_type_error():
    cuda = _native.cuda_module()
    x = torch.zeros(8)
    flags = torch.zeros(1, dtype=torch.int32, device="cuda")
    with pytest.raises(TypeError):
        cuda.cts_flow(x=x, t=x, t_per_row=False, row_len=8, log_s1sq=-13.8, noise=None, seed=0, offset=0, out=x,
                      flags=flags, device=0, stream=0)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_device():
    x = torch.rand(8, 16, device="cuda:1")
    out = bfn.continuous_flow(x, 0.5, 1e-3, torch.Generator().manual_seed(0))
    assert out.device == x.device
    ref = bfn.continuous_flow(x.cpu(), 0.5, 1e-3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)


def test_info_reports_the_gpu():
    report = diffrep.info()
    assert report["modules"]["_cuda"]["usable"] and report["gpu"]


@pytest.mark.parametrize("bad", [0.0, -0.5, float("inf"), float("nan")])
def test_the_sender_kernel_checks_alpha_and_python_words_the_message(bad):
    """discrete_sender_update's alpha is checked by its CUDA kernel (sender_alpha_bit; no Python read before
    it), in the last of 300 rows (past a block of 256 items), and also where the sampler skips the Python
    check (check_alpha=False) and inside deferred_checks(): the message is the CPU path's each time."""
    theta = torch.full((300, 5, 4), 0.25, dtype=torch.float64)
    x = torch.randint(0, 4, (300, 5), generator=torch.Generator().manual_seed(1))
    alpha = torch.full((300,), 0.7, dtype=torch.float64)
    alpha[-1] = bad

    def call(d, check_alpha=True):
        return bfn._discrete_sender_update(theta.to(d), x.to(d), alpha.to(d), torch.Generator().manual_seed(0),
                                           check_alpha=check_alpha)

    with pytest.raises(ValueError) as on_cpu:
        call("cpu")
    assert "alpha must be > 0 and finite" in str(on_cpu.value)
    for check_alpha in (True, False):
        with pytest.raises(ValueError) as on_cuda:
            call("cuda", check_alpha)
        assert str(on_cuda.value) == str(on_cpu.value)
    from diffrep.ops import deferred_checks

    ran = []
    with pytest.raises(ValueError) as deferred:
        with deferred_checks():
            call("cuda", False)
            ran.append(True)  # no error at the call: the slot is read when the block ends
    assert ran == [True] and str(deferred.value) == str(on_cpu.value)
