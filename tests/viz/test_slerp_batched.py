"""diffrep.viz.slerp(..., batched=True): one spherical interpolation per example, the x_T interpolation
of DiffAE (Sec. 5.1) and the subcode interpolation of ParamReL, which had their own copy
(methods/diffae.py) or a Python loop over the batch (methods/paramrel.py)."""

import math
import warnings

import pytest
import torch

from diffrep.viz import slerp
from helpers import break_zero_init


def _by_hand(a, b, alpha):
    """Shoemake's formula on plain floats for one pair; the linear blend for (anti)parallel pairs."""
    dot = sum(p * q for p, q in zip(a, b))
    cos = dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))
    om = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(om) < 1e-6:
        return [(1 - alpha) * p + alpha * q for p, q in zip(a, b)]
    return [(math.sin((1 - alpha) * om) * p + math.sin(alpha * om) * q) / math.sin(om) for p, q in zip(a, b)]


def test_each_row_is_interpolated_on_its_own_angle():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    b[1] = 3.0 * a[1]  # parallel: the linear blend
    b[2] = -0.5 * a[2]  # anti-parallel: the linear blend (the angle pi has no unique great circle)
    t = [0.0, 0.2, 0.75, 1.0]
    got = slerp(a, b, t, batched=True)
    assert got.shape == (4, 4, 2, 3) and got.dtype == torch.float64
    for k, alpha in enumerate(t):
        for i in range(4):
            want = _by_hand(a[i].reshape(-1).tolist(), b[i].reshape(-1).tolist(), alpha)
            assert got[k, i].reshape(-1).tolist() == pytest.approx(want, rel=1e-12, abs=1e-14)
    # the whole tensor as one code (the default) is another interpolation: one angle for all rows
    one = slerp(a, b, t)
    want = _by_hand(a.reshape(-1).tolist(), b.reshape(-1).tolist(), 0.2)
    assert one[1].reshape(-1).tolist() == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert not torch.allclose(one, got)


def test_batched_keeps_the_dtype_and_checks_its_arguments():
    a, b = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    got = slerp(a, b, [0.5], batched=True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got[0], torch.tensor([[2 ** -0.5, 2 ** -0.5], [2 ** 0.5, 2 ** 0.5]]))
    with pytest.raises(TypeError, match="batched must be a bool"):
        slerp(a, b, [0.5], batched=1)
    with pytest.raises(ValueError, match="batched=True needs a and b of shape"):
        slerp(torch.tensor(1.0), torch.tensor(2.0), [0.5], batched=True)
    with pytest.raises(ValueError, match="t must be a non-empty vector of finite weights"):
        slerp(a, b, [float("nan")], batched=True)


def test_diffae_interpolates_z_linearly_and_each_x_T_on_its_own_great_circle():
    from diffrep.methods.diffae import DiffAE, DiffAEConfig

    torch.manual_seed(0)
    m = break_zero_init(DiffAE(DiffAEConfig(sample_steps=3)).double(), std=0.1)
    g = torch.Generator().manual_seed(1)
    xa, xb = (torch.rand((2, 3, 16, 16), generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    alphas = [0.0, 0.3, 1.0]
    got = m.interpolate(xa, xb, alphas)
    za, zb = m.encode(xa), m.encode(xb)
    ta, tb = m.encode_stochastic(xa, za), m.encode_stochastic(xb, zb)
    for k, alpha in enumerate(alphas):
        x_t = torch.tensor([_by_hand(ta[i].reshape(-1).tolist(), tb[i].reshape(-1).tolist(), alpha) for i in range(2)],
                           dtype=torch.float64).reshape(ta.shape)
        want = m.decode(za + alpha * (zb - za), x_t).clamp(-1, 1)
        torch.testing.assert_close(got[k], want, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match="alphas must be a non-empty sequence of finite weights"):
        m.interpolate(xa, xb, [0.5, float("inf")])


def test_the_old_diffae_name_warns_and_gives_the_batched_slerp():
    from diffrep.methods import diffae

    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = diffae.slerp(a, b, 0.4)
    assert any(issubclass(w.category, DeprecationWarning) and "diffrep.viz.slerp" in str(w.message) for w in caught)
    assert torch.equal(got, slerp(a, b, [0.4], batched=True)[0])
    assert "slerp" not in diffae.__all__
