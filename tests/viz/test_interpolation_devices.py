"""lerp / slerp with codes on any device and the weights as a CPU tensor (DiffAE.interpolate passes its alphas
so): the weights follow the codes' device. On a GPU they stayed on the CPU and met the codes in
``torch.where``, which refuses the mix (the conftest ``device`` fixture: the GPU check runs the CUDA cases)."""

from __future__ import annotations

import math

import torch

from diffrep.methods.diffae import DiffAE, DiffAEConfig
from diffrep.viz import lerp, slerp


def test_cpu_weights_interpolate_codes_on_the_device(device):
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64, device=device)
    b = torch.tensor([[0.0, 1.0], [0.0, 3.0]], dtype=torch.float64, device=device)
    w = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)  # on the CPU
    s = slerp(a, b, w, batched=True)
    assert s.device == a.device
    # row 0: a quarter turn, its midpoint on the unit circle at 45 degrees; row 1: parallel codes, the linear blend
    h = math.sqrt(0.5)
    want = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[h, h], [0.0, 2.5]], [[0.0, 1.0], [0.0, 3.0]]], dtype=torch.float64)
    torch.testing.assert_close(s.cpu(), want, rtol=0, atol=1e-12)
    torch.testing.assert_close(lerp(a, b, w).cpu(), torch.stack([a, (a + b) / 2, b]).cpu(), rtol=0, atol=0)


def test_diffae_interpolates_on_the_device(device):
    torch.manual_seed(0)
    m = DiffAE(DiffAEConfig(sample_steps=2)).to(device).eval()  # the default: the 16 px test model
    x = (torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    out = m.interpolate(x, x.flip(0), [0.0, 1.0])
    assert out.shape == (2, 2, 3, 16, 16) and out.device == x.device
