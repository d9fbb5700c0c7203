"""The native ops inside a ``torch.compile``-d function (docs/kernels/bfn.md#host-reads-on-cuda, "torch.compile"):
dynamo cannot trace the native kernels (nanobind functions) and breaks the graph around each op's launch,
so the op's Python (its checks, its flags word, the :func:`diffrep.ops.deferred_checks` slot) runs as in
eager mode: bad input raises the op's own message, at once on the CPU path and at the block's end on the
(emulated) CUDA path, and a function compiled outside a block honours a block entered later (the block is
looked up at each call, not frozen into the compiled code). ``fullgraph=True`` refuses the ops.

The backend ``"eager"`` runs dynamo's tracing (where the graph breaks and the guards are decided) without
code generation (4-11 s per test on a loaded 2-core host: marked slow, as the inductor variant, which also
generates C++ with gcc: up to a minute and a half); the refusal of ``fullgraph=True`` runs by default.
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers import emulate_cuda_ops

from diffrep import _native
from diffrep.ops import bfn, deferred_checks, mmd, use_backend

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")
F64 = torch.float64


def _loss(x, t, prior, eps):
    """A toy training loss: a BFN flow of the data (its normals injected) and the MMD^2 of the flow's samples to
    prior draws."""
    mu = bfn.continuous_flow(x, t, 1e-3, noise=eps)
    return mmd.mmd2(mu, prior) + mu.sum()


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, generator=g, dtype=F64) * 2 - 1
    t = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F64)
    return x, t, torch.randn(5, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)


def _bad(which):
    x, t, prior, eps = _inputs()
    if which == "t":
        t[2] = 1.5
    else:
        x[0, 1] = math.nan
    return x, t, prior, eps


MESSAGES = {"t": "t must lie in [0, 1] (and not be NaN); found 1.5",
            "x": "continuous_flow: x contains NaN or infinite values"}


def _same(got, want):
    """Eager mode's value; inductor may fuse the final sums in another order (last bits)."""
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


def _check_cpu_path(compiled):
    _same(compiled(*_inputs()), _loss(*_inputs()))
    for which, message in MESSAGES.items():  # the CPU path: raised at once
        with pytest.raises(ValueError) as e:
            compiled(*_bad(which))
        assert str(e.value) == message
    x, t, prior, eps = _inputs()
    prior[1, 0] = math.inf
    with pytest.raises(ValueError, match="^mmd2: x or y contains NaN or infinite values$"):
        compiled(x, t, prior, eps)


def _check_cuda_path(compiled, monkeypatch):
    want = _loss(*_inputs())
    launched = emulate_cuda_ops(monkeypatch)
    with use_backend("cuda"):
        _same(compiled(*_inputs()), want)
        assert launched == ["cts_flow", "mmd2"]
        after = []
        with pytest.raises(ValueError) as e:
            with deferred_checks() as checks:
                compiled(*_bad("x"))
                after.append(checks.pending())  # both ops' flags wait in the block's slots
        assert after == [2] and str(e.value) == MESSAGES["x"]
        with pytest.raises(ValueError) as e:  # outside the block again: at once
            compiled(*_bad("t"))
        assert str(e.value) == MESSAGES["t"]


@pytest.mark.slow  # 5-7 s; the inductor test below covers the CPU path too
def test_ops_under_torch_compile_raise_their_messages_at_once_on_the_cpu():
    torch._dynamo.reset()
    _check_cpu_path(torch.compile(_loss, backend="eager"))


@pytest.mark.slow  # 4-11 s on a loaded 2-core host
def test_ops_under_torch_compile_defer_their_flags_on_cuda(monkeypatch):
    torch._dynamo.reset()
    _check_cuda_path(torch.compile(_loss, backend="eager"), monkeypatch)


def test_fullgraph_refuses_the_native_ops():
    """dynamo's refusal names the first thing in the op's own code it cannot trace (its argument preparation,
    before the native kernel it could not trace either), with the user-code trace through diffrep.ops."""
    torch._dynamo.reset()
    with pytest.raises(torch._dynamo.exc.Unsupported) as e:
        torch.compile(_loss, backend="eager", fullgraph=True)(*_inputs())
    assert "diffrep/ops/bfn.py" in str(e.value).replace("\\", "/")


@pytest.mark.slow
def test_ops_under_inductor_raise_their_messages(monkeypatch):
    torch._dynamo.reset()
    compiled = torch.compile(_loss)
    _check_cpu_path(compiled)
    _check_cuda_path(compiled, monkeypatch)
