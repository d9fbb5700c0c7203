"""Regressions from the robustness audit of the ops (2026-12-07): bad arguments are ValueErrors naming
them, never torch-internal errors, NaN results or a negative squared MMD."""

import pytest
import torch

from diffrep.ops import mmd
from diffrep.ops.random import normal


def test_mmd2_refuses_negative_kernel_weights():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=g), torch.randn(15, 3, generator=g) + 0.5
    both = mmd.mmd2(x, y, scales=[1.0, 4.0], weights=[1.0, 1.0])
    one = mmd.mmd2(x, y, scales=[1.0, 4.0], weights=[1.0, 0.0])
    assert float(one) == pytest.approx(float(mmd.mmd2(x, y, bandwidth=1.0)), rel=1e-6) and float(both) > float(one)
    with pytest.raises(ValueError, match=r"^weights must be finite and >= 0"):
        mmd.mmd2(x, y, scales=[1.0, 4.0], weights=[1.0, -1.0])  # was a negative MMD^2


def test_median_bandwidth_validates_its_samples():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    # pooled pairwise squared distances: 1, 9, 4 (x) and with y = [[6]]: 36, 25, 9 -> median of 6 values = (9 + 9) / 2
    assert mmd.median_bandwidth(x, torch.tensor([[6.0]])) == pytest.approx(9.0)
    with pytest.raises(ValueError, match=r"^x is empty"):
        mmd.median_bandwidth(x[:0], x)  # was nan
    with pytest.raises(ValueError, match=r"^x .*NaN"):
        mmd.median_bandwidth(x * float("nan"), x)  # was nan
    with pytest.raises(ValueError, match=r"x has d=1 but y has d=2"):
        mmd.median_bandwidth(x, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"median squared distance of the pooled samples is 0"):
        mmd.median_bandwidth(torch.zeros(3, 2), torch.zeros(2, 2))  # was 0.0, refused later as a bandwidth


def test_random_normal_shape_and_device():
    assert normal((2, 3), generator=torch.Generator().manual_seed(0)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"^shape must be a sequence of non-negative ints, got \(-1, 4\)"):
        normal((-1, 4))  # was torch's RuntimeError
    with pytest.raises(ValueError, match=r"^device must be a torch device"):
        normal((2,), device="tpu")  # was torch's RuntimeError listing its device types


def test_explain_finds_an_op_whose_module_was_not_imported_yet(monkeypatch):
    import sys
    from pathlib import Path

    from diffrep.ops import _dispatch, explain

    import diffrep.ops

    monkeypatch.delitem(_dispatch._CHOOSERS, "mmd.mmd2")  # as in a fresh process: diffrep.ops.mmd not imported
    # the re-import below binds a new module to the package attribute too: restore both, or later tests'
    # ``import diffrep.ops.mmd`` (attribute) and ``from ..ops.mmd import`` (sys.modules) see two modules
    monkeypatch.setattr(diffrep.ops, "mmd", sys.modules["diffrep.ops.mmd"])
    monkeypatch.delitem(sys.modules, "diffrep.ops.mmd")
    assert explain("mmd.mmd2", torch.randn(3, 2), torch.randn(4, 2)).op == "mmd.mmd2"  # was "unknown op"
    with pytest.raises(ValueError, match="unknown op 'mmd.nope'"):
        explain("mmd.nope")
    # every module of diffrep.ops that registers an op is in the list explain() imports
    ops_dir = Path(_dispatch.__file__).parent
    registering = {p.stem for p in ops_dir.glob("*.py")
                   if any(k in p.read_text() for k in ('register("', "_explainer(\"", "register(_op)"))}
    assert registering - {"_dispatch"} <= set(_dispatch.OP_MODULES)
