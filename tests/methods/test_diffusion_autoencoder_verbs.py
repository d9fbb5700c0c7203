"""methods/diffusion_autoencoder.py, the pieces DiffAE and InfoDiffusion share: ``reconstruct`` and ``swap``
against DDIM inversion and decoding written out by hand (DiffAE Sec. 3.2 and Eq. 8; docs/methods/diffae.md),
the checked ``eps``, the image/code/noise checks (casts and messages) and the encoder/decoder config check,
each condition on its own. Written to kill the mutants that survived the DiffAE / InfoDiffusion test files
(benches/results/mutation_diffusion_toyddpm_vae_2026-12-07.md)."""

import re
from types import SimpleNamespace

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods import diffusion_autoencoder as da
from diffrep.methods.diffae import DiffAE, DiffAEConfig
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig
from helpers import break_zero_init, ddim_decode_by_hand, ddim_invert_by_hand, linear_alphas_cumprod

ABAR_DIFFAE = linear_alphas_cumprod(1000, 1e-4, 0.02)
ABAR_INFO = linear_alphas_cumprod(1000, 1e-5, 1e-2)


def _diffae(**kw):
    torch.manual_seed(0)
    return break_zero_init(DiffAE(DiffAEConfig(sample_steps=2, **kw)).double(), std=0.1)


def _wide_images(n=2, seed=1):
    """Images in [-1, 1] whose reconstructions by these perturbed models leave [-1, 1] on both sides, so the
    final clamp shows."""
    return torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def _reconstruct_by_hand(m, x, steps, abar):
    z = m.encode(x)
    eps = lambda xt, t: m.unet(xt, t, z)  # noqa: E731
    return ddim_decode_by_hand(eps, ddim_invert_by_hand(eps, x, steps, abar), steps, abar).clamp(-1, 1)


# -- reconstruct (DiffAE Sec. 3.2): decode(z_sem, x_T = inversion of x) clamped to [-1, 1] ------------------
@pytest.mark.parametrize("which", ["diffae", "infodiffusion"])
def test_stochastic_reconstruction_is_inversion_then_decoding_by_hand(which):
    if which == "diffae":
        m, abar = _diffae(), ABAR_DIFFAE
    else:
        torch.manual_seed(0)
        m, abar = InfoDiffusion(InfoDiffusionConfig(sample_steps=2)).double(), ABAR_INFO
        break_zero_init(m.unet, std=0.1)
    x = _wide_images()
    with torch.no_grad():
        raw = ddim_decode_by_hand(lambda xt, t: m.unet(xt, t, m.encode(x)),
                                  ddim_invert_by_hand(lambda xt, t: m.unet(xt, t, m.encode(x)), x, 3, abar), 3, abar)
        assert raw.max() > 1.05 and raw.min() < -1.05  # the clamp acts at both ends here
        want = _reconstruct_by_hand(m, x, 3, abar)
    got = m.reconstruct(x, num_steps=3)  # 3 steps, not the configured 2, for both the inversion and decoding
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        assert (_reconstruct_by_hand(m, x, 2, abar) - want).abs().max() > 1e-4  # the step count matters


def test_reconstruction_without_inversion_decodes_noise_from_the_generator():
    """stochastic=False: x_T ~ N(0, I) from ``generator`` (what z_sem alone keeps, DiffAE Sec. 5.1)."""
    m = _diffae()
    x = _wide_images()
    got = m.reconstruct(x, num_steps=3, stochastic=False, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        z = m.encode(x)
        xT = torch.randn(x.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        want = ddim_decode_by_hand(lambda xt, t: m.unet(xt, t, z), xT, 3, ABAR_DIFFAE).clamp(-1, 1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


# -- swap: x's code with dims from source's code, decoded from x's own x_T -------------------------------
def test_swap_is_the_swapped_code_decoded_from_the_inversion_of_x_by_hand():
    m = _diffae()
    x, source = _wide_images(seed=1), _wide_images(seed=2)
    dims = [0, 5, 31]
    got = m.swap(x, source, dims, num_steps=3)
    with torch.no_grad():
        z, zs = m.encode(x), m.encode(source)
        z2 = z.clone()
        for i in range(2):
            for d in dims:
                z2[i, d] = zs[i, d]
        xT = ddim_invert_by_hand(lambda xt, t: m.unet(xt, t, z), x, 3, ABAR_DIFFAE)  # conditioned on x's own code
        raw = ddim_decode_by_hand(lambda xt, t: m.unet(xt, t, z2), xT, 3, ABAR_DIFFAE)
        assert raw.max() > 1.05 and raw.min() < -1.05
    torch.testing.assert_close(got, raw.clamp(-1, 1), rtol=1e-10, atol=1e-12)


def test_swap_messages_name_the_verb_and_the_argument():
    m = _diffae()
    x = _wide_images()
    with pytest.raises(ValueError, match=r"^DiffAE\.swap: x must have shape \[B, 3, 16, 16\], got \(2, 3, 8, 8\)$"):
        m.swap(torch.zeros(2, 3, 8, 8, dtype=torch.float64), x, [0])
    with pytest.raises(ValueError, match=r"^DiffAE\.swap: source must have shape \[B, 3, 16, 16\], got \(2, 1, 16, 16\)$"):
        m.swap(x, torch.zeros(2, 1, 16, 16, dtype=torch.float64), [0])
    with pytest.raises(ValueError, match=r"^x and source must have the same batch size$"):
        m.swap(x, x[:1], [0])
    with pytest.raises(ValueError, match=r"^dims\[0\] "):
        m.swap(x, x, [32])


def test_swap_dims_by_hand():
    z = torch.arange(8.0).reshape(2, 4)
    src = -torch.arange(8.0).reshape(2, 4) - 1
    out = da._swap_dims(z, src, (3, 1))
    assert out.tolist() == [[0.0, -2.0, 2.0, -4.0], [4.0, -6.0, 6.0, -8.0]]
    assert z.tolist() == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]  # the input is not modified
    with torch.device("meta"):  # the index tensor is made on the codes' device, not the default one
        assert da._swap_dims(z, src, [2]).tolist() == [[0.0, 1.0, -3.0, 3.0], [4.0, 5.0, -7.0, 7.0]]


# -- eps, the decoder's checked prediction ------------------------------------------------------------
def test_checked_eps_is_the_unet_and_names_its_arguments():
    m = _diffae()
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    z = torch.randn(2, 32, generator=g, dtype=torch.float64)
    t = torch.tensor([5, 700])
    with torch.no_grad():
        torch.testing.assert_close(m.eps(x_t, t, z), m.unet(x_t, t, z), rtol=0, atol=0)
        torch.testing.assert_close(m.eps(x_t.float(), t, z), m.unet(x_t.float().double(), t, z), rtol=0, atol=0)  # cast
    with pytest.raises(ValueError, match=r"^DiffAE\.eps: x_t must have shape \[B, 3, 16, 16\], got \(2, 3, 8, 8\)$"):
        m.eps(x_t[..., :8, :8], t, z)
    with pytest.raises(ValueError, match=r"^DiffAE\.eps: t must have shape \[2\] \(one timestep per x_t\), got \(3,\)$"):
        m.eps(x_t, torch.tensor([1, 2, 3]), z)
    with pytest.raises(ValueError, match=r"^t must lie in \[0, 999\], got range \[5, 1000\]$"):
        m.eps(x_t, torch.tensor([5, 1000]), z)
    with pytest.raises(ValueError, match=r"^z_sem must be a \[2, 32\] tensor, got torch.Size\(\[3, 32\]\)$"):
        m.eps(x_t, t, torch.zeros(3, 32, dtype=torch.float64))


# -- casts and names of the image, code and noise checks ----------------------------------------------
def test_float32_images_and_noise_are_cast_to_a_float64_model():
    m = _diffae()
    x = _wide_images()
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    xT = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        got = m.encode(x.float())
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, m.encode(x.float().double()), rtol=0, atol=0)
        out = m.decode(z, xT.float(), num_steps=2)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, m.decode(z, xT.float().double(), num_steps=2), rtol=0, atol=0)
    noise = da.check_noise(xT.float(), (2, 3, 16, 16), torch.float64, "W")
    assert noise.dtype == torch.float64 and torch.equal(noise, xT.float().double())


def test_noise_and_code_messages():
    m = _diffae()
    z = torch.zeros(2, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^DiffAE\.decode: x_T must have shape \(2, 3, 16, 16\), got \(2, 3, 8, 8\)$"):
        m.decode(z, torch.zeros(2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"^DiffAE\.decode: x_T must be a floating-point image tensor"):
        m.decode(z, torch.zeros(2, 3, 16, 16, dtype=torch.long))
    with pytest.raises(TypeError, match=r"^W: eps must be a floating-point image tensor"):
        da.check_noise(torch.zeros(1, 1, 2, 2, dtype=torch.long), (1, 1, 2, 2), torch.float64, "W", "eps")
    with pytest.raises(ValueError, match=r"^W: eps holds NaN or infinite values$"):
        da.check_noise(torch.full((1, 1, 2, 2), float("nan")), (1, 1, 2, 2), torch.float64, "W", "eps")
    # the code's own name in the code checks, also the non-default ones (normalize_z's "z")
    with pytest.raises(TypeError, match=r"^z_sem must be a floating-point tensor, got dtype torch.int64$"):
        m.decode(torch.zeros(2, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^z must be a \[B, 32\] tensor, got torch.Size\(\[2, 5\]\)$"):
        m.normalize_z(torch.zeros(2, 5))
    with pytest.raises(TypeError, match=r"^z must be a floating-point tensor"):
        m.normalize_z(torch.zeros(2, 32, dtype=torch.long))


def test_check_code_conditions_and_messages():
    z = torch.zeros(2, 4)
    assert da.check_code(z, "c") is z
    assert da.check_code(torch.zeros(1, 0), "c").shape == (1, 0)  # one code, zero-sized: not empty
    with pytest.raises(TypeError, match=r"^c must be a floating-point tensor, got dtype torch.int32$"):
        da.check_code(torch.zeros(2, 4, dtype=torch.int32), "c")
    with pytest.raises(ValueError, match=r"^c is empty \(shape \(0, 4\)\)$"):
        da.check_code(torch.zeros(0, 4), "c")
    with pytest.raises(ValueError, match=r"^c holds NaN or infinite values$"):
        da.check_code(torch.tensor([[0.0, float("inf")]]), "c")


# -- the encoder / decoder config check: each condition alone -----------------------------------------
def _pair(**unet):
    u = dict(latent_dim=8, latent_cond="diffae", context_dim=0, use_scale_shift_norm=True, in_channels=3,
             out_channels=3, num_outputs=1, image_size=16)
    u.update(unet)
    return SimpleNamespace(image_size=16, in_channels=3), SimpleNamespace(**u)


@pytest.mark.parametrize("field,value", [("latent_dim", 4), ("latent_cond", "infodiff"), ("context_dim", 5),
                                         ("use_scale_shift_norm", False)])
def test_each_conditioning_mismatch_alone_is_refused(field, value):
    enc, unet = _pair()
    da.check_encoder_decoder(enc, unet, 8, "diffae", "diffae_unet")  # the matching pair passes
    enc, unet = _pair(**{field: value})
    msg = ("config field 'unet.latent_dim': the decoder needs unet.latent_dim=8, latent_cond='diffae', "
           "use_scale_shift_norm=True, context_dim=0 (use diffae_unet())")
    with pytest.raises(ConfigError, match="^" + re.escape(msg) + "$") as e:
        da.check_encoder_decoder(enc, unet, 8, "diffae", "diffae_unet")
    assert e.value.field == "unet.latent_dim"


@pytest.mark.parametrize("field,value", [("out_channels", 6), ("num_outputs", 2)])
def test_each_output_mismatch_alone_is_refused(field, value):
    enc, unet = _pair(**{field: value})
    msg = "config field 'unet.out_channels': epsilon prediction needs out_channels == in_channels and one output"
    with pytest.raises(ConfigError, match="^" + re.escape(msg) + "$") as e:
        da.check_encoder_decoder(enc, unet, 8, "diffae", "diffae_unet")
    assert e.value.field == "unet.out_channels"


@pytest.mark.parametrize("enc", [SimpleNamespace(image_size=32, in_channels=3), SimpleNamespace(image_size=16, in_channels=1)])
def test_an_encoder_reading_other_images_is_refused(enc):
    _, unet = _pair()
    msg = "config field 'encoder.image_size': the encoder and the U-Net must read the same image size and channels"
    with pytest.raises(ConfigError, match="^" + re.escape(msg) + "$") as e:
        da.check_encoder_decoder(enc, unet, 8, "diffae", "diffae_unet")
    assert e.value.field == "encoder.image_size"
