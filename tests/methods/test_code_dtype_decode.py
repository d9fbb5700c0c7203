"""A code given in another floating dtype than the model's (a bf16 code saved from a mixed-precision run, a float64
one from numpy) decodes in the model's dtype: DiffAE and InfoDiffusion ran the DDIM chain in the code's dtype and
DisDiff in the units'; the multi-beta VAE and latent denoiser fed the code to float32 layers: each failed with a dtype error deep inside F.linear (or gave NaN images from a bf16 chain).
Decoding the code cast to float32 by hand is the independent computation."""

from __future__ import annotations

import pytest
import torch

from diffrep.methods.diffae import DiffAE, DiffAEConfig
from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig
from diffrep.methods.multibeta_denoiser import LatentDenoiser, LatentDenoiserConfig
from diffrep.methods.multibeta_vae import MultiBetaVAE, MultiBetaVAEConfig
from helpers import break_zero_init


def _code_model(cls, cfg):
    torch.manual_seed(0)
    m = cls(cfg).eval()
    if hasattr(m, "use_untrained_frozen_parts"):  # DisDiff's eps_theta: the test reads the decoding, not a pre-training
        m.use_untrained_frozen_parts()
    break_zero_init(m.unet, std=0.05)  # so that the code reaches the prediction
    return m


@pytest.mark.parametrize("cls, cfg", [(DiffAE, DiffAEConfig(sample_steps=3)),
                                      (InfoDiffusion, InfoDiffusionConfig(sample_steps=3))], ids=["diffae", "infodiffusion"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_code_of_another_dtype_decodes_as_its_float32_cast(cls, cfg, dtype):
    m = _code_model(cls, cfg)
    x = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = m.encode(x).to(dtype)
    got = m.decode(z, generator=torch.Generator().manual_seed(2))
    want = m.decode(z.float(), generator=torch.Generator().manual_seed(2))
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert torch.equal(got, want)
    assert not torch.equal(want, m.decode(torch.zeros_like(z.float()), generator=torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_disdiff_units_of_another_dtype_decode_as_their_float32_cast(dtype):
    m = _code_model(DisDiff, DisDiffConfig(sample_steps=3, stage="disentangle"))
    x = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1
    u = m.encode_units(x).to(dtype)
    got = m.decode(u, generator=torch.Generator().manual_seed(2))
    want = m.decode(u.float(), generator=torch.Generator().manual_seed(2))
    assert got.dtype == torch.float32 and torch.equal(got, want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_multibeta_codes_of_another_dtype_decode_and_denoise_as_their_float32_cast(dtype):
    torch.manual_seed(0)
    # a grid of N = 20 (default 1000): the cast is at the entry and the equality exact at any N; from beta = 0.5
    # the chain still takes 10 denoising steps (500 with the default grid)
    vae = MultiBetaVAE(MultiBetaVAEConfig(num_steps=20)).eval()
    den = LatentDenoiser(LatentDenoiserConfig(num_steps=20)).eval()
    den.set_schedule(vae.sigma_grid())
    z = torch.randn(3, *vae.config.latent_shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    got, want = vae.decode(z, 0.5), vae.decode(z.float(), 0.5)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    got = den.denoise(z, 0.5, 0.0, generator=torch.Generator().manual_seed(2))
    want = den.denoise(z.float(), 0.5, 0.0, generator=torch.Generator().manual_seed(2))
    assert got.dtype == torch.float32 and torch.equal(got, want)
