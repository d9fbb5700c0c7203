"""diffrep.ops.explain validates and reports, but never draws random numbers or changes state."""

import pytest
import torch

from diffrep import _native
from diffrep.ops import bfn, explain


def _random_ops(generator=None):
    x = torch.rand(4, 6)
    t = torch.rand(4)
    classes = torch.randint(0, 3, (4, 6))
    return [
        ("bfn.continuous_flow", (x, t, 1e-3, generator)),
        ("bfn.discrete_flow", (classes, t, 3.0, 3, generator)),
        ("bfn.continuous_sender_update", (x, torch.ones(4), x, torch.full((4,), 2.0), generator)),
        ("bfn.discrete_sender_update", (torch.full((4, 6, 3), 1 / 3), classes, torch.full((4,), 0.5), generator)),
    ]


@pytest.mark.parametrize("use_generator", [False, True])
def test_explain_leaves_the_rng_state_alone(use_generator):
    g = torch.Generator().manual_seed(7) if use_generator else None
    for op, args in _random_ops(g):
        global_before = torch.get_rng_state()
        gen_before = g.get_state() if g is not None else None
        first = explain(op, *args)
        assert torch.equal(torch.get_rng_state(), global_before), op
        if g is not None:
            assert torch.equal(g.get_state(), gen_before), op
        # the explanation itself is unchanged: the same choice each time, the backend the op runs on
        assert str(explain(op, *args)) == str(first)
        assert first.backend == ("cpu" if _native.cpu_available() else "reference")


def test_explain_still_validates_the_generator():
    x, t = torch.rand(2, 3), torch.rand(2)
    with pytest.raises(TypeError, match="generator"):
        explain("bfn.continuous_flow", x, t, 1e-3, "not a generator")


def test_the_op_after_explain_draws_as_without_it():
    x, t = torch.rand(2, 5), torch.rand(2)
    torch.manual_seed(3)
    expected = bfn.continuous_flow(x, t, 1e-3)
    torch.manual_seed(3)
    explain("bfn.continuous_flow", x, t, 1e-3)
    assert torch.equal(bfn.continuous_flow(x, t, 1e-3), expected)
