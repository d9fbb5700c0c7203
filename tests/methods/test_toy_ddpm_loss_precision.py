"""ToyDDPM.loss keeps a float64 model's precision (L_simple of Ho et al. 2020, Eq. 14, in float64: the
prediction was rounded to float32 first) and reduces a half-precision model's error in float32, as the other
methods' losses do; a float32 model's loss is what it was."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig


class _Lin(nn.Module):  # eps_theta(x_t, t) = 0.5 x_t - 0.002 t: L_simple has a closed form to check against
    def forward(self, x, t):
        return 0.5 * x - 0.002 * t.to(x.dtype).reshape(-1, 1, 1, 1)


def _model(dtype):
    m = ToyDDPM(ToyDDPMConfig()).to(dtype)
    m.unet = _Lin()
    return m


def _l_simple(x0: torch.Tensor, seed: int) -> torch.Tensor:
    """Eq. 14 written out in float64: t, eps drawn as the loss draws them; the cosine schedule (T = 200)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 200, (x0.shape[0],), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=x0.dtype).double()
    k = np.arange(201) / 200
    f = np.cos((k + 0.008) / 1.008 * np.pi / 2) ** 2
    abar = torch.from_numpy(np.cumprod(1 - np.minimum(1 - f[1:] / f[:-1], 0.999)))[t].reshape(-1, 1, 1, 1)
    xt = abar.sqrt() * x0.double() + (1 - abar).sqrt() * eps
    return ((0.5 * xt - 0.002 * t.double().reshape(-1, 1, 1, 1) - eps) ** 2).mean()


def _x0(dtype):
    return (torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1).to(dtype)


def test_a_float64_model_keeps_float64_precision():
    m = _model(torch.float64)
    out = m.loss(_x0(torch.float64), generator=torch.Generator().manual_seed(2))
    assert set(out) == {"loss"} and out["loss"].dtype == torch.float64
    # before: within ~1e-7 only (the prediction went through float32)
    torch.testing.assert_close(out["loss"], _l_simple(_x0(torch.float64), 2), rtol=1e-13, atol=0)


def test_a_float32_model_gives_a_float32_loss_to_float32_accuracy():
    m = _model(torch.float32)
    out = m.loss(_x0(torch.float32), generator=torch.Generator().manual_seed(2))
    assert out["loss"].dtype == torch.float32
    assert float(out["loss"]) == pytest.approx(float(_l_simple(_x0(torch.float32), 2)), rel=1e-5)


def test_a_bfloat16_model_reduces_its_error_in_float32():
    m = _model(torch.bfloat16)
    x0 = _x0(torch.bfloat16)
    out = m.loss(x0, generator=torch.Generator().manual_seed(2))
    assert out["loss"].dtype == torch.float32
    # the same prediction and noise (bf16), their error taken and averaged in float32
    g = torch.Generator().manual_seed(2)
    t = torch.randint(0, 200, (4,), generator=g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.bfloat16)
    pred = m.unet(m.schedule.q_sample(x0, t, eps), t)
    torch.testing.assert_close(out["loss"], ((pred.float() - eps.float()) ** 2).mean(), rtol=0, atol=0)
