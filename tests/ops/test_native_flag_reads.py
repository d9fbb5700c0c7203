"""Host reads of the BFN and guidance ops on their CUDA path, counted on the CPU
(docs/kernels/bfn.md#host-reads-on-cuda).

The CUDA path is emulated: the dispatch is made to choose the ``cuda`` backend and
``_native_call.launch_cuda`` runs the CPU kernel of the same name on the same keyword arguments,
writing the flags word (a CPU tensor here, device memory on a GPU) through a numpy view. Everything
else -- the argument preparation, the flags word or the deferred block's slot, the read of the
word, the messages -- is the code a GPU runs; each read counted here (``.item()``, ``.tolist()``,
``bool()`` of a tensor) is a host-device synchronisation there.

Reads per call on the CUDA path, before -> after:

=====================================================  ======  ===========  ===============================
op                                                     before  after        after, in ``deferred_checks()``
=====================================================  ======  ===========  ===============================
continuous_flow, discrete_flow                         2       1            0 (+1 per block)
discretised / discrete continuous-time loss            2       1            0
continuous_update(_inverse), continuous_sender_update  1       1            0
discrete_update(_inverse), discretised_probs           1       1            0
discretised_probs backward, fill_normal                1       0            0
discrete_sender_update                                 2       1            0 (alpha checked by the kernel)
guidance.log_posterior                                 1       1            0
its backward, its double backward                      1, 1    0, 0         0, 0
=====================================================  ======  ===========  ===============================


(before: a Python check of t in [0, 1] before the t-taking kernels, and of alpha > 0 before the discrete
sender update, now checked by the kernels as on the CPU; a read of the flags of kernels that write none.)
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers import HostReads, assert_flagged_now_and_deferred, host_reads

import diffrep.ops._deferred as D
from diffrep import _native
from diffrep.ops import _dispatch, _native_call, bfn, bfn_losses, deferred_checks, guidance, use_backend
from diffrep.ops._dispatch import Choice
from diffrep.ops.random import fill_normal

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")
F64 = torch.float64


@pytest.fixture
def cuda_path(monkeypatch):
    """The BFN ops take their CUDA path, which runs the CPU kernels; yields the names launched."""
    launched = []

    def choose(op, device, **kw):  # use_backend("cpu") still gives the CPU kernels, for comparisons
        forced = _dispatch._forced.get()
        return Choice(op, "cpu" if forced and forced[0] == "cpu" else "cuda", {})

    def launch(name, device, flags, kwargs):
        assert flags.dtype == torch.int32 and flags.numel() == 1 and flags.device == device
        args = {k: v.detach().numpy() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        getattr(_native.cpu_module(), name)(flags=flags.numpy(), device=-1, stream=0, **args)
        launched.append(name)

    monkeypatch.setattr(bfn, "select", choose)
    monkeypatch.setattr(bfn_losses, "select", choose)
    monkeypatch.setattr(_native_call, "launch_cuda", launch)
    monkeypatch.setattr("diffrep.ops.random.select", choose)
    monkeypatch.setattr(guidance, "select", choose)
    with use_backend("cuda"):  # forced: the lean CPU path (ops/_bfn_fast.py) stands aside
        yield launched


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _rand(*shape, lo=-1.0, hi=1.0, seed=1):
    return torch.rand(shape, generator=_g(seed), dtype=F64) * (hi - lo) + lo


def _probs(*shape, seed=2):
    return torch.softmax(_rand(*shape, lo=-3, hi=3, seed=seed), -1)


X_CLASSES = torch.tensor([[0, 3, 1], [2, 2, 0]])
T = torch.tensor([0.25, 0.75], dtype=F64)
BIN_CENTRES = (torch.tensor([[1, 5, 9], [15, 0, 7]], dtype=F64) + 0.5) / 16 * 2 - 1


def _ops(bad: str | None = None):
    """name -> (kernel, call): each op on small inputs, one of them made bad when ``bad`` names it."""
    t = T.clone()
    if bad == "t":
        t[1] = 1.5
    x = _rand(2, 3)
    if bad == "x":
        x[0, 1] = math.nan
    classes = X_CLASSES.clone()
    if bad == "class":
        classes[1, 2] = 4
    rho = torch.tensor([2.0, 3.0], dtype=F64)
    if bad == "rho":
        rho[0] = -1.0
    theta = _probs(2, 3, 4)
    if bad == "theta":
        theta[1, 1, 0] = 2.0
    sigma = _rand(2, 3, lo=0.1, hi=1.0, seed=3)
    if bad == "sigma":
        sigma[1, 0] = 0.0
    data = BIN_CENTRES.clone()
    if bad == "data":
        data[0, 0] = 3.0
    y, alpha = _rand(2, 3, seed=4), torch.tensor([0.5, 1.5], dtype=F64)
    if bad == "alpha":
        alpha[1] = -0.5
    return {
        "continuous_flow": ("cts_flow", lambda: bfn.continuous_flow(x, t, 1e-3, _g())),
        "discrete_flow": ("disc_flow", lambda: bfn.discrete_flow(classes, t, 3.0, 4, _g())),
        "continuous_update": ("cts_update", lambda: bfn.continuous_update(x, rho, y, alpha)[0]),
        "continuous_update_inverse": ("cts_update", lambda: bfn.continuous_update_inverse(x, rho + 1, y, alpha)[0]),
        "continuous_sender_update": ("cts_sender_update", lambda: bfn.continuous_sender_update(x, rho, y, alpha,
                                                                                               _g())[0]),
        "discrete_update": ("disc_update", lambda: bfn.discrete_update(theta, _rand(2, 3, 4, seed=5))),
        "discrete_update_inverse": ("disc_update", lambda: bfn.discrete_update_inverse(theta, _rand(2, 3, 4, seed=5))),
        "discrete_sender_update": ("disc_sender_update", lambda: bfn.discrete_sender_update(theta, classes, alpha,
                                                                                            _g())),
        "discretised_probs": ("disc_probs", lambda: bfn.discretised_probs(x, sigma, 16)),
        "discretised_continuous_time_loss": ("disc_cts_loss", lambda: bfn.discretised_continuous_time_loss(
            _rand(2, 3, seed=6), _rand(2, 3, lo=-2, hi=0, seed=7), x, t, data, 1e-3, 16)),
        "discrete_continuous_time_loss": ("discrete_cts_loss", lambda: bfn.discrete_continuous_time_loss(
            _rand(2, 3, 4, lo=-3, hi=3, seed=8), classes, t, 3.0)),
    }


# the reads per call on the CUDA path outside a block, and inside deferred_checks()
READS = {name: (1, 0) for name in _ops()}


@pytest.mark.parametrize("name", sorted(READS))
def test_reads_per_call_and_the_cpu_paths_numbers(cuda_path, name):
    kernel, call = _ops()[name]
    with use_backend("cpu", strict=True):
        want = call()
    reads, got = host_reads(call)
    assert cuda_path == [kernel] and reads == READS[name][0]
    assert torch.equal(got, want)  # the CUDA path passes the kernel what the CPU path does
    with deferred_checks() as checks:
        reads, got = host_reads(call)
        assert checks.pending() == 1
    assert reads == READS[name][1] and torch.equal(got, want)


def test_a_block_reads_once_at_its_end(cuda_path):
    ops = [op for _, op in _ops().values()]

    def run():
        with deferred_checks():
            for op in ops:
                op()

    assert len(ops) == 11 and host_reads(run)[0] == 1 and len(cuda_path) == 11


def test_kernels_without_flags_read_nothing(cuda_path):
    mu, sigma = _rand(2, 3).requires_grad_(), _rand(2, 3, lo=0.1, hi=1.0, seed=3).requires_grad_()
    p = bfn.discretised_probs(mu, sigma, 5)
    w = _rand(2, 3, 5, seed=9)
    reads, _ = host_reads(lambda: (p * w).sum().backward())
    assert reads == 0 and cuda_path == ["disc_probs", "disc_probs_backward"]
    with use_backend("cpu", strict=True):  # the gradients are the CPU kernel's
        m2, s2 = mu.detach().clone().requires_grad_(), sigma.detach().clone().requires_grad_()
        (bfn.discretised_probs(m2, s2, 5) * w).sum().backward()
    assert torch.equal(mu.grad, m2.grad) and torch.equal(sigma.grad, s2.grad)
    out = torch.empty(7, dtype=F64)
    assert host_reads(lambda: fill_normal(out, 5, 0))[0] == 0 and cuda_path[-1] == "normal_fill"
    with use_backend("cpu", strict=True):
        assert torch.equal(out, fill_normal(torch.empty(7, dtype=F64), 5, 0))


BAD = [("continuous_flow", "t", "t must lie in [0, 1] (and not be NaN); found 1.5"),
       ("continuous_flow", "x", "continuous_flow: x contains NaN or infinite values"),
       ("discrete_flow", "t", "t must lie in [0, 1] (and not be NaN); found 1.5"),
       ("discrete_flow", "class", "discrete_flow: x holds a class outside [0, 4)"),
       ("continuous_update", "rho", "rho must be > 0 and finite; found -1.0"),
       ("continuous_sender_update", "x", "continuous_sender_update: mu or x contains NaN or infinite values"),
       ("discrete_update", "theta", "discrete_update: theta must hold probabilities in [0, 1]"),
       ("discrete_sender_update", "class", "discrete_sender_update: x holds a class outside [0, 4)"),
       ("discrete_sender_update", "alpha", "alpha must be > 0 and finite; found -0.5"),
       ("discretised_probs", "sigma", "discretised_probs: sigma_x must be > 0"),
       ("discretised_continuous_time_loss", "t", "t must lie in [0, 1] (and not be NaN); found 1.5"),
       ("discretised_continuous_time_loss", "data", "x must lie in [-1, 1]"),
       ("discrete_continuous_time_loss", "t", "t must lie in [0, 1] (and not be NaN); found 1.5"),
       ("discrete_continuous_time_loss", "class", "discrete_continuous_time_loss: x holds a class outside [0, 4)")]


@pytest.mark.parametrize("name,bad,message", BAD, ids=[f"{n}-{b}" for n, b, _ in BAD])
def test_bad_input_raises_the_cpu_paths_message_at_once_or_at_the_blocks_end(cuda_path, name, bad, message):
    _, call = _ops(bad)[name]
    with use_backend("cpu", strict=True), pytest.raises(ValueError) as cpu:
        call()
    assert message in str(cpu.value)
    assert_flagged_now_and_deferred(call, str(cpu.value))


def test_the_first_flagged_op_in_call_order_raises(cuda_path):
    good, bad_class, bad_t = _ops(), _ops("class"), _ops("t")
    with pytest.raises(ValueError, match="discrete_flow: x holds a class outside"):
        with deferred_checks():
            good["continuous_flow"][1]()
            bad_class["discrete_flow"][1]()
            bad_t["continuous_flow"][1]()
    assert cuda_path == ["cts_flow", "disc_flow", "cts_flow"]


def test_an_exception_in_the_block_is_chained_to_the_flagged_error(cuda_path):
    with pytest.raises(ValueError, match="x contains NaN") as e:
        with deferred_checks():
            _ops("x")["continuous_flow"][1]()
            raise RuntimeError("a later failure of the NaN output")
    assert isinstance(e.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError, match="unrelated"):  # nothing flagged: the exception as it was
        with deferred_checks():
            _ops()["continuous_flow"][1]()
            raise RuntimeError("unrelated")

    counter = HostReads()
    with pytest.raises(KeyboardInterrupt), counter:
        with deferred_checks():
            _ops("x")["continuous_flow"][1]()
            raise KeyboardInterrupt
    assert counter.count == 0  # left without reading the device


def test_a_full_block_reads_its_slots_and_check_reads_early(cuda_path, monkeypatch):
    monkeypatch.setattr(D, "CAPACITY", 2)
    ops, bad = _ops(), _ops("x")
    with deferred_checks() as checks:
        reads = [host_reads(ops["continuous_update"][1])[0] for _ in range(2)]
        reads.append(host_reads(ops["continuous_update"][1])[0])  # the third: the first two read
        assert reads == [0, 0, 1] and checks.pending() == 1
        bad["continuous_update"][1]()
        with pytest.raises(ValueError, match="continuous_update: mu or y contains NaN"):
            ops["continuous_flow"][1]()  # a full buffer again: read before this call's launch, the bad one raises
        assert checks.pending() == 0 and cuda_path == ["cts_update"] * 4
        ops["continuous_flow"][1]()
        assert host_reads(checks.check)[0] == 1 and checks.pending() == 0  # read now, not at the block's end
    assert cuda_path[-1] == "cts_flow"


def test_blocks_nest_and_cpu_ops_raise_at_once(cuda_path):
    bad = _ops("class")
    with pytest.raises(ValueError, match="discrete_flow"):
        with deferred_checks():
            with deferred_checks():
                _ops()["continuous_flow"][1]()
            bad["discrete_flow"][1]()  # the outer block's, checked when it ends
            assert D.current() is not None
    assert D.current() is None
    with deferred_checks():
        with use_backend("cpu", strict=True), pytest.raises(ValueError, match="class outside"):
            bfn.discrete_flow(torch.tensor([[5]]), torch.tensor([0.5]), 3.0, 4)  # select() unpatched: CPU


def _log_posterior_grads(z, mu, logvar):
    """log_posterior's value, its first derivatives (create_graph) and the second through them."""
    out = guidance.log_posterior(z, mu, logvar)
    g = torch.autograd.grad(out.sum(), (z, mu, logvar), create_graph=True)
    gg = torch.autograd.grad(sum((v * v).sum() for v in g), (z, mu, logvar))
    return out, g, gg


def test_guidance_reads_its_flags_in_the_forward_only(cuda_path):
    def leaves():
        return [_rand(*s, seed=i).requires_grad_() for i, s in enumerate([(3, 2, 4), (2, 4), (2, 4)])]

    with use_backend("cpu", strict=True):
        want = _log_posterior_grads(*leaves())
    reads, got = host_reads(lambda: _log_posterior_grads(*leaves()))
    assert reads == 1 and cuda_path == ["log_posterior_fwd", "log_posterior_bwd", "log_posterior_bwd2"]
    for a, b in zip((got[0], *got[1], *got[2]), (want[0], *want[1], *want[2])):
        assert torch.equal(a, b)
    z, mu, logvar = leaves()
    with torch.no_grad():
        mu[1, 2] = math.inf
    with use_backend("cpu", strict=True), pytest.raises(ValueError) as cpu:
        guidance.log_posterior(z, mu, logvar)
    with pytest.raises(ValueError) as deferred:
        with deferred_checks():
            assert host_reads(lambda: guidance.log_posterior(z, mu, logvar))[0] == 0
    assert str(deferred.value) == str(cpu.value) and "z, mu or logvar contains NaN" in str(cpu.value)


def test_a_read_slot_is_zeroed_for_the_next_op(cuda_path):
    with deferred_checks() as checks:
        _ops("x")["continuous_flow"][1]()
        with pytest.raises(ValueError, match="x contains NaN"):
            checks.check()
        _ops()["continuous_flow"][1]()  # the same slot again: its word must not carry the earlier flag
    assert cuda_path == ["cts_flow", "cts_flow"]


def test_a_first_call_under_inference_mode_leaves_later_calls_working(cuda_path, monkeypatch):
    """The per-thread flags word (and a block's buffer) made by a call under torch.inference_mode() was an inference
    tensor: every later call outside inference mode failed to zero it."""
    monkeypatch.setattr(_native_call, "_local", type(_native_call._local)())  # no word made yet in this thread
    ops = _ops()
    with torch.inference_mode():
        ops["continuous_update"][1]()
        with deferred_checks() as checks:
            ops["continuous_update"][1]()
            checks.check()
            ops["continuous_update"][1]()
    ops["continuous_update"][1]()
    with deferred_checks() as checks:
        with torch.inference_mode():
            ops["continuous_update"][1]()
        checks.check()  # zeroes the slots outside inference mode
        ops["continuous_update"][1]()
    assert cuda_path == ["cts_update"] * 6


def test_read_slots_are_not_read_again_and_a_slot_lives_on_its_device(cuda_path):
    """Written for the surviving mutants of benches/results/mutation_session_2026-12-07b.md: a block whose
    slots check() has read makes no further read at its end (one synchronisation per device *with* pending
    slots), and a device's slots are made on that device (the meta device here: on this host the fake CUDA
    path's device is the CPU, the default)."""
    with HostReads() as r:
        with deferred_checks() as checks:
            _ops()["continuous_flow"][1]()
            checks.check()
            assert r.count == 1 and checks.pending() == 0
    assert r.count == 1 and cuda_path == ["cts_flow"]
    word = D.DeferredChecks().slot(torch.device("meta"), lambda flags: None)
    assert word.device.type == "meta" and word.dtype == torch.int32 and word.shape == (1,)


def test_deferred_checks_public_methods_name_bad_arguments():
    from diffrep.ops import DeferredChecks

    block = DeferredChecks()
    with pytest.raises(TypeError, match="slot: device must be a torch.device, got str"):
        block.slot("cuda", lambda flags: None)
    with pytest.raises(TypeError, match="slot: fail must be callable"):
        block.slot(torch.device("cpu"), 3)
    with pytest.raises(TypeError, match="check_after: exc must be an exception, got str"):
        block.check_after("boom")
    assert block.pending() == 0
