"""timestep_embedding with a NaN or infinite t: a ValueError naming t, from the function and from the
forward paths that embed a time (the U-Net, DiffAE's latent DDIM net, ParamReL's progressive encoder).
cos/sin of NaN or inf is NaN, so before the check those rows came out NaN without a word."""

import math

import pytest
import torch

from diffrep.nn import UNet, timestep_embedding
from helpers import tiny_unet

BAD = (float("nan"), float("inf"), -float("inf"))


def test_finite_timesteps_embed_by_the_closed_form():
    """[cos(t w_i), sin(t w_i)], w_i = 10000^(-i/half), written out for dim 6 (half 3) and an odd dim 7
    (a zero column appended); integer timesteps embed as their float values."""
    t = torch.tensor([0.0, 3.0, 250.5])
    got = timestep_embedding(t, 7)
    for row, tv in zip(got.tolist(), t.tolist()):
        w = [10000.0 ** (-i / 3) for i in range(3)]
        want = [math.cos(tv * wi) for wi in w] + [math.sin(tv * wi) for wi in w] + [0.0]
        assert row == pytest.approx(want, abs=1e-6)
    assert torch.equal(timestep_embedding(torch.tensor([0, 3]), 6), timestep_embedding(torch.tensor([0.0, 3.0]), 6))


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64, torch.float16))
def test_a_nan_or_infinite_t_is_refused_with_t_named(bad, dtype):
    t = torch.tensor([1.0, bad, 2.0, bad], dtype=dtype)
    with pytest.raises(ValueError, match=r"t must hold finite timesteps; 2 of 4 are NaN or infinite \(first: "):
        timestep_embedding(t, 8)


def test_the_unet_forward_refuses_a_nan_t():
    torch.manual_seed(0)
    net = UNet(tiny_unet())
    x = torch.randn(2, 3, 8, 8)
    assert torch.isfinite(net(x, torch.tensor([5.0, 900.0]))).all()
    for bad in BAD:
        with pytest.raises(ValueError, match="t must hold finite timesteps; 1 of 2"):
            net(x, torch.tensor([5.0, bad]))
        with pytest.raises(ValueError, match="t must hold finite timesteps"):
            net.forward_down(x, torch.tensor([bad, 5.0]))


def test_diffae_latent_net_and_paramrel_progressive_encoder_refuse_a_nan_t():
    from diffrep.methods.diffae import LatentDDIMConfig, LatentDDIMNet
    from diffrep.methods.paramrel_nets import ParamRelEncoder, ParamRelEncoderConfig

    torch.manual_seed(0)
    latent = LatentDDIMNet(LatentDDIMConfig(num_layers=3, width=8, time_channels=6), 4)
    enc = ParamRelEncoder(ParamRelEncoderConfig(image_size=8, model_channels=8, channel_mult=(1, 2), num_groups=4),
                          3, time_conditioned=True)
    z, img = torch.randn(2, 4), torch.randn(2, 1, 8, 8)
    assert torch.isfinite(latent(z, torch.tensor([3.0, 7.0]))).all()
    assert torch.isfinite(enc.features(img, torch.tensor([3.0, 7.0]))).all()
    for bad in BAD:
        with pytest.raises(ValueError, match="t must hold finite timesteps"):
            latent(z, torch.tensor([3.0, bad]))
        with pytest.raises(ValueError, match="t must hold finite timesteps"):
            enc.features(img, torch.tensor([bad, 7.0]))
