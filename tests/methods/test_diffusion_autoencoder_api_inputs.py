"""Inputs a script gets wrong on the diffusion autoencoders' public verbs, found by a newcomer pass (issue 22):
each raises naming the verb and the problem, before any work, instead of running on a misread value."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffrep.methods.diffae import DiffAE
from diffrep.methods.disdiff import DisDiff
from diffrep.methods.infodiffusion import InfoDiffusion
from diffrep.recipes import diffae, disdiff, infodiffusion

from helpers import untrained_on_purpose


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"DiffAE": DiffAE(dataclasses.replace(diffae.cpu_model(latent_dim=4), sample_steps=2)).eval(),
            "InfoDiffusion": InfoDiffusion(dataclasses.replace(infodiffusion.cpu_model(latent_dim=4), sample_steps=2)).eval(),
            "DisDiff": untrained_on_purpose(DisDiff(dataclasses.replace(disdiff.cpu_model(num_units=2, unit_dim=2), sample_steps=2))).eval()}


X = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name", ["DiffAE", "InfoDiffusion", "DisDiff"])
def test_reconstruct_takes_a_bool_and_names_itself(models, name):
    """``stochastic="no"`` decoded from the inverted x_T (a non-empty string is truthy); a wrong image shape was
    reported as ``InfoDiffusion.posterior`` / ``DisDiff.encode``, names a caller never used."""
    m = models[name]
    for value in ("no", "False", 0, None):
        with pytest.raises(TypeError, match=f"stochastic must be True or False, got {value!r}"):
            m.reconstruct(X, num_steps=2, stochastic=value)
    with pytest.raises(ValueError, match=rf"^{name}\.reconstruct: x must have shape \[B, 3, 16, 16\], got \(2, 1, 16, 16\)"):
        m.reconstruct(X[:, :1], num_steps=2)
    # both settings still run: the inverted x_T and fresh noise differ
    with torch.no_grad():
        a = m.reconstruct(X, num_steps=2, stochastic=True)
        b = m.reconstruct(X, num_steps=2, stochastic=False, generator=torch.Generator().manual_seed(0))
    assert a.shape == b.shape == X.shape and not torch.equal(a, b)


def test_fit_attribute_needs_both_classes(models):
    """Labels of one class only: the logistic fit then grows its bias, and the returned "direction" is whatever
    Adam's first steps left (nonzero), which manipulate then used without a word."""
    m = models["DiffAE"]
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    m.fit_latent_stats(z)
    for y in (torch.ones(6), torch.zeros(6, dtype=torch.long)):
        with pytest.raises(ValueError, match=rf"labels are all {int(y[0])}: the classifier needs codes of both classes"):
            m.fit_attribute(z, y, steps=3)
    with pytest.raises(ValueError, match=r"labels must be N binary \(0/1\) values, one per code: got 6 labels with "
                                         r"values \[0\.0, 2\.0\] for 6 codes"):
        m.fit_attribute(z, torch.tensor([0, 2, 0, 2, 0, 2]), steps=3)
    # a separable hand case: class = sign of dimension 2 of the standardised code; w points along +e_2 most
    y = (m.normalize_z(z)[:, 2] > 0).float()
    assert 0 < int(y.sum()) < 6
    w = m.fit_attribute(z, y, steps=200)
    assert int(w.abs().argmax()) == 2 and float(w[2]) > 0


def _ldm_disdiff():
    from diffrep.methods.disdiff import DisDiffConfig
    from diffrep.nn.encoders import HalfUNetConfig
    from diffrep.nn.unet import UNetConfig
    from diffrep.nn.vq import VQAutoencoderConfig

    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, z_channels=3, embed_dim=3,
                             n_embed=16, num_groups=8)
    unet = UNetConfig(image_size=8, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2),
                      num_res_blocks=1, attention_resolutions=(), num_groups=8)
    enc = HalfUNetConfig(image_size=16, in_channels=3, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                         latent_dim=4, act="silu", bias=True, num_groups=8, variance_head="logvar")
    return untrained_on_purpose(DisDiff(DisDiffConfig(num_units=2, unit_dim=2, encoder=enc, unet=unet, first_stage=vq, sample_steps=2)))


def test_disdiff_loads_a_vq_first_stage_trained_with_its_discriminator_and_lpips():
    """The vq/ recipes train with disc_weight 0.75 and LPIPS (perceptual_weight 1): `diffrep train vq/shapes3d64`, then
    `diffrep train disdiff/shapes3d --first_stage_path ...` failed with "first_stage.disc_weight: 0.75 (this model's:
    0.0)". Those fields shape the VQ training loss only: the weights load (the discriminator's are not the model's);
    an architecture field that differs is still refused by name."""
    from diffrep.nn.vq import VQAutoencoder

    torch.manual_seed(0)
    m = _ldm_disdiff()
    trained = dataclasses.replace(m.config.first_stage, disc_weight=0.75, perceptual_weight=1.0, disc_start=5,
                                  disc_channels=8, disc_layers=1, codebook_weight=0.5, beta=0.5, rec_loss="l2")
    vq = VQAutoencoder(trained)
    assert vq.discriminator is not None and m.first_stage.discriminator is None
    m.load_pretrained_diffusion(m.unet, vq)
    mine, theirs = m.first_stage.state_dict(), vq.state_dict()
    assert set(theirs) - set(mine) == {k for k in theirs if k.startswith("discriminator.")} != set()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    other = VQAutoencoder(dataclasses.replace(trained, n_embed=32))
    with pytest.raises(ValueError, match=r"differs from DisDiffConfig.first_stage: first_stage.n_embed: 32 \(this "
                                         r"model's: 16\)$"):
        m.load_pretrained_diffusion(m.unet, other)
