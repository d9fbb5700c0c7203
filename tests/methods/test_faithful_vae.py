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
