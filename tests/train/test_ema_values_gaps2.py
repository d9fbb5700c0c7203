"""EMA of parameters (LDM ``LitEma``; docs cite in diffrep.train.ema): the update
shadow <- d shadow + (1 - d) param with d = min(decay, (1 + n) / (10 + n)), iterated by hand here."""

import pytest
import torch
from torch import nn

from diffrep.train.ema import EMA


def _lin(w, b=0.0, dtype=torch.float32):
    m = nn.Linear(1, 1).to(dtype)
    with torch.no_grad():
        m.weight.fill_(w)
        m.bias.fill_(b)
    return m


def _set(m, w):
    with torch.no_grad():
        m.weight.fill_(w)


def test_warmup_decays_follow_litema_by_hand():
    m = _lin(0.0)
    e = EMA(m, 0.5)  # warm-up gives 1/10, 2/11, 3/12, ... capped at 0.5 from n = 8 (9/18)
    s, targets = 0.0, [1.0, 2.0, 4.0, -1.0, 3.0, 0.5, 2.0, 7.0, 1.0, -2.0, 5.0]
    for n, t in enumerate(targets):
        d = min(0.5, (1 + n) / (10 + n))
        assert e.current_decay() == pytest.approx(d, abs=1e-15)
        _set(m, t)
        e.update(m, n + 1)
        s = d * s + (1 - d) * t
        assert e.shadow["weight"].item() == pytest.approx(s, abs=1e-6)
        assert e.num_updates == n + 1
    assert e.current_decay() == 0.5


def test_no_warmup_uses_the_decay_from_the_first_update():
    m = _lin(2.0)
    e = EMA(m, 0.75, warmup=False)
    assert e.current_decay() == 0.75
    _set(m, 6.0)
    e.update(m, 1)
    assert e.shadow["weight"].item() == pytest.approx(0.75 * 2 + 0.25 * 6, abs=1e-6)
    e0 = EMA(_lin(2.0), 0.0, warmup=False)  # decay 0 is allowed: the shadow is the last parameters
    m0 = _lin(9.0)
    e0.update(m0, 1)
    assert e0.shadow["weight"].item() == 9.0


def test_copies_until_update_after_step_then_averages():
    m = _lin(1.0)
    e = EMA(m, 0.5, warmup=False, update_after_step=2)
    for step, w in ((1, 4.0), (2, 8.0)):  # step <= update_after_step: a copy, no update counted
        _set(m, w)
        e.update(m, step)
        assert e.shadow["weight"].item() == w and e.num_updates == 0
    _set(m, 0.0)
    e.update(m, 3)
    assert e.shadow["weight"].item() == 4.0 and e.num_updates == 1
    z = EMA(_lin(1.0), 0.5, warmup=False)  # default 0: step 0 copies, step 1 averages
    m2 = _lin(3.0)
    z.update(m2, 0)
    assert z.shadow["weight"].item() == 3.0 and z.num_updates == 0


def test_shadow_is_float32_of_a_half_model_and_copied_back_in_its_dtype():
    m = _lin(0.1, 0.2, torch.float64)
    e = EMA(m, 0.9)
    assert all(s.dtype == torch.float32 for s in e.shadow.values())
    assert e.shadow["weight"].item() == torch.tensor(0.1, dtype=torch.float32).item()
    h = _lin(0.5, 0.0, torch.bfloat16)
    eh = EMA(h, 0.9)
    _set(h, 0.0)
    eh.copy_to(h)
    assert h.weight.dtype == torch.bfloat16 and h.weight.item() == 0.5
    st = eh.full_state_dict(h)
    assert st["weight"].dtype == torch.bfloat16


def test_full_state_dict_has_the_shadow_and_the_live_buffers():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    e = EMA(m, 0.9)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
        m[1].running_mean.fill_(3.0)
    st = e.full_state_dict(m)
    assert set(st) == set(m.state_dict())
    for n, s in e.shadow.items():
        assert torch.equal(st[n], s)
        assert not torch.equal(st[n], dict(m.named_parameters())[n])
    assert torch.equal(st["1.running_mean"], torch.full((2,), 3.0))


def test_swapped_restores_the_live_weights_after_an_error():
    m = _lin(5.0)
    e = EMA(m, 0.5, warmup=False)
    _set(m, 1.0)
    e.update(m, 1)  # shadow 3
    with pytest.raises(RuntimeError, match="inside"):
        with e.swapped(m) as inside:
            assert inside is m and m.weight.item() == 3.0
            raise RuntimeError("inside")
    assert m.weight.item() == 1.0


def test_state_dict_round_trip_and_refusals():
    m = _lin(1.0)
    e = EMA(m, 0.9)
    _set(m, 2.0)
    e.update(m, 1)
    st = e.state_dict()
    assert st["num_updates"] == 1 and set(st["shadow"]) == {"weight", "bias"}
    f = EMA(_lin(7.0), 0.9)
    f.load_state_dict({"num_updates": 4, "shadow": {k: v.clone() for k, v in st["shadow"].items()}})
    assert f.num_updates == 4 and f.shadow["weight"].item() == e.shadow["weight"].item()
    assert f.current_decay() == pytest.approx(5 / 14)
    with pytest.raises(ValueError, match=r"got list$"):
        f.load_state_dict([])
    with pytest.raises(ValueError, match=r"got dict with keys \['shadow'\]"):
        f.load_state_dict({"shadow": {}})
    with pytest.raises(ValueError, match=r"got dict with keys \['num_updates', 'shadow'\]"):
        f.load_state_dict({"shadow": 3, "num_updates": 0})
    with pytest.raises(ValueError, match=r"missing \['bias'\], unexpected \['b'\]"):
        f.load_state_dict({"num_updates": 0, "shadow": {"weight": torch.zeros(1, 1), "b": torch.zeros(1)}})


def test_arguments_are_checked_with_their_names():
    m = _lin(0.0)
    with pytest.raises(TypeError, match="EMA: model must be an nn.Module, got int"):
        EMA(3)
    for d in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=rf"EMA: decay must be in \[0, 1\), got {d}"):
            EMA(m, d)
    with pytest.raises(ValueError, match="EMA: decay"):
        EMA(m, float("nan"))
    with pytest.raises(TypeError, match="EMA: warmup must be True or False, got 1"):
        EMA(m, 0.9, warmup=1)
    with pytest.raises(ValueError, match="EMA: update_after_step must be a non-negative int"):
        EMA(m, 0.9, update_after_step=-1)
    e = EMA(m, 0.9)
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        e.update(m, "3")
    with pytest.raises(TypeError, match="EMA: model must be an nn.Module, got str"):
        e.update("m", 1)
    with pytest.raises(ValueError, match="^EMA: the model's parameter names differ from those the EMA was created with$"):
        e.copy_to(nn.Linear(1, 1, bias=False))
    assert EMA(m).decay == 0.9999 and EMA(m).warmup is True and EMA(m).update_after_step == 0
