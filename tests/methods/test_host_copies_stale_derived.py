"""The other values the package derives from tensors and keeps on the side (diffrep.nn.derived.DerivedValue) follow
every write of their sources: EncDiff's ``scale_set`` (tested at every training step, a host read each before),
and the frozen parts' states (diffrep.nn.frozen_parts); and DerivedValue itself:
what it sees (identity, version counter, data pointer), what it cannot (a write through ``.data``), under
torch.compile too.
"""

from __future__ import annotations

import pytest
import torch

from helpers import host_reads
from test_loss_host_reads import _encdiff, _g, _images

from diffrep.nn import frozen_parts
from diffrep.nn.derived import DerivedValue


class _Counted:
    """compute() for DerivedValue: bool of the tensor, counting the calls."""

    def __init__(self, t):
        self.t, self.calls = t, 0

    def __call__(self):
        self.calls += 1
        return bool(self.t)


# -- DerivedValue -------------------------------------------------------------------------------------------------
def test_derived_value_computes_once_and_again_after_each_recorded_write():
    t = torch.zeros((), dtype=torch.bool)
    f, v = _Counted(t), DerivedValue()
    assert [v.get((t,), f) for _ in range(3)] == [False] * 3 and f.calls == 1
    t.fill_(True)                                                       # the version counter
    assert v.get((t,), f) is True and f.calls == 2
    t.data = torch.tensor(False)                                        # the data pointer, same Python object
    assert v.get((t,), f) is False and f.calls == 3
    u = t.clone()                                                       # equal values, another tensor
    f.t = u
    assert v.get((u,), f) is False and f.calls == 4
    assert v.get((u,), f) is False and f.calls == 4


def test_a_view_of_the_same_storage_is_another_source():
    """Same data pointer, shared version counter, another tensor (a buffer replaced by a view of itself)."""
    t = torch.arange(4.0)
    v = DerivedValue()
    assert v.get((t,), lambda: float(t.sum())) == 6.0
    u = t[:2]
    assert u.data_ptr() == t.data_ptr() and u._version == t._version
    assert v.get((u,), lambda: float(u.sum())) == 1.0


def test_a_value_of_no_tensors_is_computed_once():
    v = DerivedValue()
    calls = []
    assert [v.get((), lambda: calls.append(1) or 5) for _ in range(2)] == [5, 5] and calls == [1]


def test_a_write_through_data_is_not_seen_and_invalidate_recomputes():
    t = torch.zeros(())
    v = DerivedValue()
    assert v.get((t,), lambda: float(t)) == 0.0
    t.data.fill_(5.0)                                                  # .data: a counter of its own
    assert v.get((t,), lambda: float(t)) == 0.0
    v.invalidate()
    assert v.get((t,), lambda: float(t)) == 5.0


def test_put_records_a_known_value_without_computing():
    t = torch.zeros(())
    v = DerivedValue()
    t.fill_(2.0)
    v.put((t,), 2.0)
    assert v.get((t,), lambda: pytest.fail("computed")) == 2.0
    t.add_(1.0)
    assert v.get((t,), lambda: float(t)) == 3.0


def test_the_sources_are_compared_as_a_whole():
    a, b = torch.zeros(()), torch.ones(())
    v = DerivedValue()
    assert v.get((a, b), lambda: float(a + b)) == 1.0
    assert v.get((a,), lambda: -1.0) == -1.0                            # another set of sources
    assert v.get((a, b), lambda: float(a + b)) == 1.0
    b.mul_(4)
    assert v.get((a, b), lambda: float(a + b)) == 4.0


def test_derived_value_refuses_what_is_not_a_tensor():
    v = DerivedValue()
    with pytest.raises(TypeError, match=r"^DerivedValue.get: tensors must be torch.Tensors, got \['Tensor', 'int'\]$"):
        v.get((torch.zeros(()), 3), lambda: 0)
    with pytest.raises(TypeError, match=r"^DerivedValue.put: tensors must be torch.Tensors, got \['list'\]$"):
        v.put(([1.0],), 0)


def test_under_torch_compile_a_write_between_calls_is_followed():
    flag = torch.ones((), dtype=torch.bool)
    v = DerivedValue()

    def step(x):
        return x * 2 if v.get((flag,), lambda: bool(flag)) else x + 1

    compiled = torch.compile(step, backend="eager")
    x = torch.arange(3.0)
    assert torch.equal(compiled(x), x * 2)
    flag.fill_(False)
    assert torch.equal(compiled(x), x + 1)
    flag.fill_(True)
    assert torch.equal(compiled(x), x * 2)


# -- EncDiff's scale_set ----------------------------------------------------------------------------------------------
def _z_std(m, x) -> torch.Tensor:
    """The first stage's latent std of x (LDM's scale_by_std), read from the first stage itself."""
    with torch.no_grad():
        return m.first_stage._encode(x).float().flatten().std().clamp_min(1e-8)


def test_scale_by_std_is_taken_once_and_again_when_scale_set_is_cleared():
    m = _encdiff().train()
    x1, x2 = _images(2, 3, 16, seed=1), _images(2, 3, 16, seed=2)
    m.loss(x1, step=0, generator=_g())
    first = m.scale_factor.clone()
    assert torch.equal(first, 1.0 / _z_std(m, x1)) and bool(m.scale_set)
    assert [host_reads(lambda: m.loss(x2, step=1, generator=_g()))[0] for _ in range(2)] == [1, 1]  # the batch only
    assert torch.equal(m.scale_factor, first)                          # taken once
    m.scale_set.fill_(False)                                            # cleared by hand: the next step takes it again
    assert host_reads(lambda: m.loss(x2, step=2, generator=_g()))[0] == 2
    assert torch.equal(m.scale_factor, 1.0 / _z_std(m, x2))
    m.load_state_dict(_encdiff().state_dict())                         # a fresh model's state: not set
    assert not bool(m.scale_set)
    m.loss(x1, step=0, generator=_g())
    assert torch.equal(m.scale_factor, first)


def test_scale_set_in_eval_mode_stays_as_it_is():
    m = _encdiff().eval()
    m.loss(_images(2, 3, 16), step=0, generator=_g())
    assert not bool(m.scale_set) and float(m.scale_factor) == 1.0


# -- frozen parts -----------------------------------------------------------------------------------------------------
def test_a_frozen_part_state_follows_its_buffer():
    m = _encdiff()                                                      # marked untrained on purpose (CHOSEN)
    x = _images(2, 3, 16)
    assert frozen_parts.state(m, "first_stage") == frozen_parts.CHOSEN
    assert host_reads(lambda: frozen_parts.state(m, "first_stage"))[0] == 0
    m.first_stage_source.fill_(frozen_parts.UNTRAINED)                  # by hand: the verbs refuse again
    with pytest.raises(ValueError, match=r"^EncDiff: the first stage .* still holds its random initialisation"):
        m.loss(x, step=0)
    m.first_stage_source = torch.tensor(frozen_parts.LOADED, dtype=torch.int8)
    assert frozen_parts.state(m, "first_stage") == frozen_parts.LOADED
    assert host_reads(lambda: frozen_parts.state(m, "first_stage"))[0] == 0
    m.first_stage_source.fill_(7)
    with pytest.raises(ValueError, match=r"^first_stage_source = 7: not a frozen-part state \(0 untrained, 1 loaded, "
                                         r"2 untrained on purpose\)"):
        frozen_parts.state(m, "first_stage")


def test_a_failed_load_leaves_the_state_its_buffer_holds():
    """The load hook checks the state dict's value before loading; a load that then refuses the entry leaves the
    buffer, and the state is the buffer's (a mirror set from the state dict said LOADED)."""
    state = _encdiff().state_dict()
    state["first_stage_source"] = torch.tensor([[frozen_parts.LOADED]], dtype=torch.int8)   # (1, 1), not ()
    fresh = _encdiff()
    fresh.first_stage_source.fill_(frozen_parts.UNTRAINED)
    with pytest.raises(RuntimeError, match="size mismatch for first_stage_source"):
        fresh.load_state_dict(state)
    assert int(fresh.first_stage_source) == frozen_parts.UNTRAINED
    assert frozen_parts.state(fresh, "first_stage") == frozen_parts.UNTRAINED
