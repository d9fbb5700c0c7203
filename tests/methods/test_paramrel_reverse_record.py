"""ParamReL.reverse_sample records z_s inside the chain's network calls, not through reverse_chain's callback
(which reads the chain's pending op flags before each call: a host read per step on CUDA,
docs/kernels/bfn.md#host-reads-on-cuda). Its latents equal those of the callback recording (re-written here as
it was), bit for bit on the CPU, and its host reads on the emulated CUDA path do not grow with the steps."""

from __future__ import annotations

import pytest
import torch

from diffrep import _native
from diffrep.bfn import reverse_chain
from diffrep.ops import use_backend
from helpers import emulate_cuda_ops, host_reads, perturbed, tiny_paramrel


def _x(kind: str) -> torch.Tensor:
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return x.sign() if kind == "discrete" else x


def _by_callback(m, x, steps: int):
    """The recording through reverse_chain's callback: z_s = the posterior mean at (theta_s, t) recorded before
    step s's network call, which then reads it (the reverse_sample before the change)."""
    dtype = torch.float64 if m.config.reverse_dtype == "float64" else torch.float32
    data = m.flow.prepare_data(x)
    start = m.flow.mean_state(data, 1.0, dtype=dtype)
    zs = [None] * (steps + 1)
    zs[steps] = m.posterior(start, start.t, x=x)[0]
    current = {}

    def record(s, state, t):
        current["z"] = zs[steps - s] = m.posterior(state, t, x=x, check_time=False)[0]

    def predict(state, t):
        return m.decode_net(state, t, current["z"], check_time=False)

    with torch.no_grad():
        sub = reverse_chain(m.flow, m.output, predict, data, steps, dtype=dtype, callback=record)
    return torch.stack([z.to(zs[steps].dtype) for z in zs]), sub.params


@pytest.mark.parametrize("kind,encoder", [("discrete", "progressive"), ("continuous", "progressive"),
                                          ("discrete", "hyper")])
@pytest.mark.parametrize("steps", [1, 4])
def test_reverse_sample_records_the_callback_paths_latents_bit_for_bit(kind, encoder, steps):
    m = perturbed(tiny_paramrel(kind, steps=steps, encoder=encoder)).eval()
    x = _x(kind)
    want_z, want_sub = _by_callback(m, x, steps)
    rev = m.reverse_sample(x)
    assert rev.z.shape == (steps + 1, 2, 4)
    assert torch.equal(rev.z, want_z) and torch.equal(rev.subcode.params, want_sub)
    # the latents differ across steps (the recording is not one value written everywhere)
    assert not torch.equal(rev.z[0], rev.z[-1])


@pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")
@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_reverse_sample_reads_the_op_flags_a_fixed_number_of_times(monkeypatch, kind):
    emulate_cuda_ops(monkeypatch)
    reads = {}
    with use_backend("cuda"):
        for steps in (2, 6):
            m = perturbed(tiny_paramrel(kind, steps=steps)).eval()
            x = _x(kind)
            reads[steps], rev = host_reads(lambda: m.reverse_sample(x))
            with use_backend("cpu", strict=True):
                assert torch.equal(rev.z, m.reverse_sample(x).z)
            # the old recording on the same emulated path: one more read a step
            cb = host_reads(lambda: _by_callback(m, x, steps))[0]
            reads[steps, "callback"] = cb
    assert reads[2] == reads[6]
    assert reads[6, "callback"] - reads[2, "callback"] >= 4
