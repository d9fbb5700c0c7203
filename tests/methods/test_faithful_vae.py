"""Faithfulness checks of the VAE-family baselines against the papers and disentanglement_lib, with
hand-derived values (docs/methods/vae.md). Independent of tests/methods/test_vae_objectives.py."""

from __future__ import annotations

import math

import torch

from diffrep.methods.vae import VAE, VAEConfig, reconstruction_loss


def _tiny(cls=VAE, **kw):
    torch.manual_seed(0)
    return cls(cls.config_class(image_size=32, **kw)).double()


# -- the Bernoulli likelihood ------------------------------------------------------------------
def test_bernoulli_default_is_the_plain_cross_entropy_of_disentanglement_lib():
    """dlib ``bernoulli_loss(subtract_true_image_entropy=False)`` (the default its unsupervised study
    keeps): logits 0 give ln 2 per pixel whatever the target; x = 1/2 would give 0 with the entropy
    offset, so the default must not subtract it (it did before 2026-12-07)."""
    d = 1 * 4 * 4
    logits = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    x_half = torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
    torch.testing.assert_close(reconstruction_loss(logits, x_half), torch.full((2,), d * math.log(2), dtype=torch.float64))
    # the option keeps dlib's lower bound: ln 2 - H(1/2) = 0 per pixel
    torch.testing.assert_close(reconstruction_loss(logits, x_half, bernoulli_offset="entropy"),
                               torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    assert VAEConfig().bernoulli_offset == "none"


def test_model_recon_is_the_per_image_sum_averaged_over_the_batch():
    """recon = mean_b sum_pixels BCE(logits, x) (dlib: reduce_sum over pixels, reduce_mean over the batch)."""
    m = _tiny(VAE)
    for p in m.decoder.parameters():  # the decoder outputs logits 0 everywhere
        torch.nn.init.zeros_(p)
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(2))
    assert math.isclose(float(out["recon"]), 32 * 32 * math.log(2), rel_tol=1e-12)


# -- the networks ----------------------------------------------------------------------------
def test_encoder_is_dlib_conv_encoder_with_2x2_third_and_fourth_convs():
    """disentanglement_lib ``conv_encoder``: conv 4x4/2 32, 4x4/2 32, 2x2/2 64, 2x2/2 64 ("same"), FC 256,
    two dense heads of 10. Parameter count by hand: 544 + 16,416 + 8,256 + 16,448 + 262,400 + 5,140."""
    from diffrep.methods.vae import BetaVAE
    m = BetaVAE(BetaVAE.config_class())
    convs = [c for c in m.encoder.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 32, (4, 4), (2, 2), (1, 1)), (32, 32, (4, 4), (2, 2), (1, 1)),
        (32, 64, (2, 2), (2, 2), (0, 0)), (64, 64, (2, 2), (2, 2), (0, 0))]
    n = (1 * 32 * 16 + 32) + (32 * 32 * 16 + 32) + (32 * 64 * 4 + 64) + (64 * 64 * 4 + 64) + (1024 * 256 + 256) + 2 * (256 * 10 + 10)
    assert sum(p.numel() for p in m.encoder.parameters()) == n == 309_204
    # the decoder: dense 256, dense 1024, four 4x4/2 transposed convs 64, 32, 32, C
    dec = [c for c in m.decoder.modules() if isinstance(c, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in dec] == [(64, 64, (4, 4)), (64, 32, (4, 4)),
                                                                            (32, 32, (4, 4)), (32, 1, (4, 4))]
    # a 2x2 stride-2 conv without padding is a sum over disjoint 2x2 blocks: check one output by hand
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h = m.encoder.convs[:5](x)  # conv1 relu conv2 relu conv3 -> [1, 64, 8, 8]
        h2 = m.encoder.convs[:4](x)
        w, b = convs[2].weight, convs[2].bias
        want = (w[5] * h2[0, :, 2:4, 6:8]).sum() + b[5]
    assert h.shape == (1, 64, 8, 8)
    torch.testing.assert_close(h[0, 5, 1, 3], want, rtol=1e-5, atol=1e-6)


def test_old_4x4_encoder_is_an_option():
    from diffrep.methods.vae import BetaVAE
    m = BetaVAE(BetaVAE.config_class(conv_kernels=(4, 4, 4, 4), image_size=32))
    convs = [c for c in m.encoder.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(4, 4)] * 3
    import pytest
    from diffrep.config import ConfigError
    for bad in ((4, 4, 3, 2), (4, 4, 2), (4, 4, 2, 0)):
        with pytest.raises(ConfigError, match="conv_kernels"):
            BetaVAE(BetaVAE.config_class(conv_kernels=bad))
