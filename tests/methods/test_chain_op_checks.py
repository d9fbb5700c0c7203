"""The BFN sampler and reverse chain (and ParamReL's chains through them) and SAMI's guided chain read the input
checks of the BFN and guidance ops they call once per chain on CUDA, not once per op
(docs/kernels/bfn.md#host-reads-on-cuda): the CUDA path of the ops is emulated on the CPU
(helpers.emulate_cuda_ops), so each read counted is a host-device synchronisation there.

Reads per chain on the CUDA path, 2 -> 6 steps (SAMI: 3 -> 7 DDIM steps, whose divergence watch reads 4 times):

==========================================  ===============  ===============  =================================
chain                                       before           after            the op reads left
==========================================  ===============  ===============  =================================
bfn.sample (Delta / discretised / categ.)   +1 to 3 a step   fixed            one at the chain's end
bfn.reverse_chain (continuous / discrete)   +1 a step        fixed            one at the chain's end
with a callback                             as above         +1 a step        one before each callback call
ParamReL.sample, decode                     +1 to 2 a step   fixed            as bfn.sample
ParamReL.reverse_sample                     +2 a step        fixed            as bfn.reverse_chain (z_s in predict)
SAMI.generate, guided by samples of z       +1 a step        fixed            one at the chain's end
==========================================  ===============  ===============  =================================

A flagged op raises its usual error before the chain returns (or before a callback is handed a state after it);
a SAMI chain that diverged still raises ChainDivergedError, the ops' flags it explains left unread.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
import torch

import diffrep.bfn.sampler as sampler_module
import diffrep.methods.sami as sami_module
from diffrep import _native
from diffrep.bfn import ContinuousFlow, DeltaOutput
from diffrep.bfn import reverse_chain, sample
from diffrep.diffusion import ChainDivergedError
from diffrep.methods.sami_divergence import _ChainWatch
from diffrep.ops import use_backend
from helpers import bfn_chain_parts, emulate_cuda_ops, host_reads, perturbed, tiny_paramrel, tiny_sami

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")


@pytest.fixture
def cuda_path(monkeypatch):
    launched = emulate_cuda_ops(monkeypatch)
    with use_backend("cuda"):
        yield launched


class _Unread:
    """The chains as they were: no block (each op reads its own flags)."""

    def check(self):
        pass

    def check_after(self, exc):
        pass

    @contextlib.contextmanager
    def active(self):
        yield self


@pytest.fixture
def cuda_watch(monkeypatch):
    """SAMI's divergence watch in its CUDA mode (the states' peaks read at the chain's quarters)."""
    monkeypatch.setattr(sami_module, "_ChainWatch", functools.partial(_ChainWatch, deferred=True))


@pytest.fixture
def no_block(monkeypatch):
    monkeypatch.setattr(sampler_module, "deferred_checks", contextlib.contextmanager(lambda: (yield _Unread())))
    monkeypatch.setattr(sami_module, "DeferredChecks", _Unread)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)




def _chain(kind, n, callback=None):
    flow, output, net = bfn_chain_parts(kind)
    if kind.startswith("reverse-"):
        flow, output, net = bfn_chain_parts(kind[8:])
        x = torch.rand(2, 1, 3, 3, generator=_g(3)) * 2 - 1 if kind == "reverse-delta" else torch.randint(
            0, 3, (2, 1, 3, 3), generator=_g(3))
        return lambda: (reverse_chain(flow, output, net, x, n, callback=callback).params,)

    def run():
        x, state = sample(flow, output, net, flow.prior((2, 1, 3, 3)), n, generator=_g(), callback=callback)
        return x, state.params
    return run


KINDS = ["delta", "dnorm", "categorical", "reverse-delta", "reverse-categorical"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bfn_chain_reads_the_op_flags_once_and_gives_the_cpu_paths_numbers(cuda_path, kind):
    reads = {n: host_reads(_chain(kind, n))[0] for n in (2, 6)}
    assert reads[2] == reads[6]
    for n in (2, 6):
        with use_backend("cpu", strict=True):
            want = _chain(kind, n)()
        got = _chain(kind, n)()
        assert all(torch.equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("kind", KINDS)
def test_without_the_block_each_step_read_its_ops_flags(cuda_path, no_block, kind):
    reads = {n: host_reads(_chain(kind, n))[0] for n in (2, 6)}
    assert reads[6] - reads[2] >= 4  # at least one op a step


@pytest.mark.parametrize("kind", KINDS)
def test_a_callback_gets_a_state_only_after_its_ops_flags_are_read(cuda_path, kind):
    reads = {n: host_reads(_chain(kind, n, callback=lambda *a: None))[0] for n in (2, 6)}
    plain = host_reads(_chain(kind, 2))[0]
    assert reads[6] - reads[2] == 4 and reads[2] >= plain + 1  # one read before each step's callback


def _nan_at_step_3(calls):
    def net(s, t):  # a NaN at an unchecked middle step: refused by the update kernel's flags
        calls.append(1)
        return torch.full((2, 1, 3, 3), float("nan") if len(calls) == 3 else 0.1)
    return net


def test_a_flagged_op_in_a_chain_raises_its_message_before_the_chain_returns(cuda_path):
    flow, output = ContinuousFlow(1e-3), DeltaOutput(1e-3, noise_pred=False)
    messages = []
    for backend in ("cpu", "cuda"):
        calls = []
        with use_backend(backend, strict=backend == "cpu"), pytest.raises(ValueError) as exc:
            sample(flow, output, _nan_at_step_3(calls), flow.prior((2, 1, 3, 3)), 5, x_tilde="mean")
        messages.append(str(exc.value))
        assert len(calls) == (3 if backend == "cpu" else 6)  # the CPU stops at once; CUDA at the chain's end
    assert messages[0] == messages[1] and "contains NaN or infinite values" in messages[0]
    seen, calls = [], []
    with pytest.raises(ValueError, match="contains NaN or infinite values"):
        sample(flow, output, _nan_at_step_3(calls), flow.prior((2, 1, 3, 3)), 5, x_tilde="mean",
               callback=lambda i, state, dist: seen.append(i))
    assert seen == [1, 2] and len(calls) == 3  # step 3's state, from the flagged update, never reached it


@pytest.mark.parametrize("kind", ["discrete"])  # the continuous ops: the bfn.sample and reverse_chain tests above
def test_paramrels_chains_read_the_op_flags_once(cuda_path, kind):
    reads = {}
    for steps in (2, 6):
        m = perturbed(tiny_paramrel(kind, steps=steps)).eval()
        x = torch.rand(2, 1, 8, 8, generator=_g(1)) * 2 - 1
        x = x.sign() if kind == "discrete" else x
        c_s, out = host_reads(lambda: m.sample(2, z_source="encoder", generator=_g()))
        c_r, rev = host_reads(lambda: m.reverse_sample(x))
        c_d, dec = host_reads(lambda: m.decode(rev))
        reads[steps] = (c_s, c_r, c_d)
        with use_backend("cpu", strict=True):
            assert torch.equal(out, m.sample(2, z_source="encoder", generator=_g()))
            rev_cpu = m.reverse_sample(x)
            assert torch.equal(rev.z, rev_cpu.z) and torch.equal(dec, m.decode(rev_cpu))
    assert reads[2] == reads[6]  # reverse_sample records z_s without a callback (before: one read a step, then two)


def _sami_generate(m, steps):
    z = torch.randn(2, 2, 3, generator=_g(5), dtype=torch.float64)  # S = 2 samples of z per chain: the op's path
    return m.generate(z, sampler="ddim", num_steps=steps, generator=_g())


def test_samis_guided_chain_reads_the_op_flags_once(cuda_path, cuda_watch):
    m = tiny_sami()
    reads = {}
    for steps in (3, 7):  # 4 and 8 states: the divergence watch reads 4 times in both
        reads[steps], got = host_reads(lambda: _sami_generate(m, steps))
        with use_backend("cpu", strict=True):
            assert torch.equal(got, _sami_generate(m, steps))
    assert reads[3] == reads[7] == 1 + 4 + 1  # x_T's check, the watch's quarters, the op flags
    assert "log_posterior_fwd" in cuda_path


def test_samis_guided_chain_read_a_step_without_the_block(cuda_path, cuda_watch, no_block):
    m = tiny_sami()
    reads = {steps: host_reads(lambda: _sami_generate(m, steps))[0] for steps in (3, 7)}
    assert reads[7] - reads[3] == 4


@pytest.mark.parametrize("with_callback", [False, True])
def test_a_diverged_sami_chain_still_raises_chain_diverged_not_the_ops_error(cuda_path, cuda_watch, with_callback):
    """The NaN-eps DDPM model of test_sami_chain_divergence.py with the CUDA watch: the state entering step 2 is
    NaN, so the guidance op flags its NaN posterior there; the chain's error is the divergence, naming step 2
    (without a callback the flags stay unread: the quarter's read raises first; with one, the flag read
    before step 2's callback is the cause the watch is given)."""
    m = tiny_sami(sampler="ddpm")
    with torch.no_grad():
        m.denoiser.out[-1].bias.fill_(float("nan"))
    steps_run = []
    cb = (lambda i, t, x, eps, g: steps_run.append(i)) if with_callback else None
    with pytest.raises(ChainDivergedError, match=r"guided DDPM chain diverged at step 2/20 \(t=18\): x_t holds NaN") \
            as exc:
        m.generate(torch.zeros(1, 3, dtype=torch.float64), generator=_g(), callback=cb)
    assert steps_run == ([0] if with_callback else [])
    cause = exc.value.__cause__
    assert ("z, mu or logvar contains NaN" in str(cause)) if with_callback else cause is None
