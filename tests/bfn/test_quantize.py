"""Discretised data are snapped to the K bin centres (issue 17 item 1; docs/kernels/bfn.md#quantisation)."""

import math

import pytest
import torch

from diffrep.bfn import BFNDataConfig, DiscretisedNormalOutput, continuous_time_loss, make_flow, quantize


def _reference(pixels: torch.Tensor, K: int) -> torch.Tensor:
    """The BFN reference's transform written from its definition, in exact integer arithmetic:
    x = pixel/255 in [0, 1], bin = clamp(floor(x K), 0, K - 1), value = (bin + 1/2)/K * 2 - 1."""
    idx = torch.clamp((pixels * K) // 255, max=K - 1)
    return (2 * idx + 1).double() / K - 1


@pytest.mark.parametrize("K", [2, 3, 7, 16, 100, 256])
def test_quantize_8bit_pixels_matches_the_reference_formula(K):
    pixels = torch.arange(256)
    x = pixels.float() / 127.5 - 1  # the loaders' mapping
    got = quantize(x, K)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), _reference(pixels, K), atol=1e-6, rtol=0)
    # every value is a bin centre (2k - 1)/K - 1, k = 1..K, and quantising is idempotent
    centres = (2 * torch.arange(1, K + 1).double() - 1) / K - 1
    assert bool(((got.double()[:, None] - centres).abs().min(1).values < 1e-6).all())
    assert torch.equal(quantize(got, K), got)


def test_quantize_edge_values():
    assert float(quantize(torch.tensor([-1.0]), 256)) == pytest.approx(-1 + 1 / 256)
    assert float(quantize(torch.tensor([1.0]), 256)) == pytest.approx(1 - 1 / 256)
    # K = 16 on 8-bit data: pixel 0 -> -15/16, offsets up to 1/16
    x = torch.arange(256).double() / 127.5 - 1
    q = quantize(x, 16)
    assert float(q[0]) == pytest.approx(-15 / 16) and float((q - x).abs().max()) == pytest.approx(1 / 16, abs=1e-9)
    # nearest centre: brute force over random floats (no ties in practice)
    v = torch.rand(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    for K in (5, 16, 256):
        centres = (2 * torch.arange(1, K + 1).double() - 1) / K - 1
        near = centres[(v[:, None] - centres).abs().argmin(1)]
        assert torch.allclose(quantize(v, K), near, atol=0, rtol=0)
    # out-of-range values go to the edge bins
    assert quantize(torch.tensor([-3.0, 3.0]), 4).tolist() == [-0.75, 0.75]


def test_quantize_validates():
    with pytest.raises(ValueError, match="num_bins"):
        quantize(torch.zeros(3), 1)
    with pytest.raises(ValueError, match="float"):
        quantize(torch.zeros(3, dtype=torch.long), 4)
    with pytest.raises(ValueError, match="finite"):
        quantize(torch.tensor([float("nan")]), 4)


def test_discretised_flow_quantises_its_data_and_continuous_does_not():
    x = torch.arange(256).float().reshape(1, 1, 16, 16) / 127.5 - 1
    for K in (16, 256):
        flow = make_flow(BFNDataConfig(data="discretised", num_bins=K, image_size=16))
        assert torch.equal(flow.prepare_data(x), quantize(x, K))
        # the flow's draws are centred on the quantised data: gamma(t) x_q at zero noise
        st = flow.sample(x, 0.5, noise=torch.zeros_like(x))
        assert torch.allclose(st.params, flow.gamma(torch.tensor(0.5)).float() * quantize(x, K))
    cont = make_flow(BFNDataConfig(data="continuous", image_size=16))
    assert torch.equal(cont.prepare_data(x), x)


def test_sharp_edge_bin_output_at_t1_costs_nothing_after_quantisation():
    """Pixel 0 (x = -1) under a sharp output on the lowest 256-bin centre at t = 1: before the fix the
    target was -1, off the centre by 1/256, costing -ln(sigma1) sigma1^-2 (1/256)^2 = 105.4 nats."""
    K = 256
    s1 = 1e-3
    cfg = BFNDataConfig(data="discretised", num_bins=K, sigma1=s1, noise_pred=False, image_size=2)
    flow, out = make_flow(cfg), DiscretisedNormalOutput(s1, K, noise_pred=False)
    x = -torch.ones(1, 1, 2, 2)
    data = flow.prepare_data(x)
    state = flow.sample(data, 1.0, generator=torch.Generator().manual_seed(0))
    centre = -1 + 1 / K
    net = (torch.full_like(x, centre), torch.full_like(x, math.log(1e-3)))  # sigma_x = 1e-3: one bin
    per_pixel = continuous_time_loss(flow, out, net, data, state) / 4
    assert float(per_pixel) < 1e-3
    # the unquantised target costs the 105 nats the issue measured (loss_terms formula, by hand)
    assert -math.log(s1) * s1 ** -2 * (1 / K) ** 2 == pytest.approx(105.4, abs=0.1)
