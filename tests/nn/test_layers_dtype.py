"""GroupNorm computes in at least float32: half precision is upcast, float64 is kept."""

import torch

from diffrep.nn.layers import GroupNorm


def test_groupnorm_keeps_float64_and_upcasts_half():
    norm = GroupNorm(2, 4)
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64)
    out = norm.double()(x)
    assert out.dtype == torch.float64
    expected = torch.nn.functional.group_norm(x, 2, norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(out, expected, rtol=1e-14, atol=1e-14)
    half = GroupNorm(2, 4)
    xb = torch.randn(3, 4, 5, 5).to(torch.bfloat16)
    outb = half(xb)
    assert outb.dtype == torch.bfloat16
    ref = torch.nn.functional.group_norm(xb.float(), 2, half.weight, half.bias, half.eps).to(torch.bfloat16)
    assert torch.equal(outb, ref)
