"""VAE family (methods/vae/*.py): the checks and casts added on 2026-12-07 after the mutation records
mutation_vae_2026-12-06.md / mutation_vae_faithful_2026-12-07.md, each on its own: the codes a decoder takes
(shape, emptiness, cast to the weights' dtype), images cast to the weights' dtype, DIP-VAE's default lambda_d
at lambda_od = 0, the discriminator-logit checks and their messages, and the draws placed on the tensors'
device (a meta default device makes a misplaced draw fail). Written for the survivors recorded in
benches/results/mutation_diffusion_toyddpm_vae_2026-12-07.md."""

import re

import pytest
import torch

from diffrep.methods.vae import FSQAE, VAE, discriminator_loss, factor_tc_estimate
from diffrep.methods.vae.core import draw_normal
from diffrep.methods.vae.dip import default_lambda_d
from diffrep.methods.vae.factor_vae import discriminator_accuracy
from diffrep.methods.vae.total_correlation import gaussian_log_density


def _vae(dtype=torch.float64):
    torch.manual_seed(0)
    return VAE(VAE.config_class(image_size=32, latent_dim=3)).to(dtype)


def _x(n=2, seed=0):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_codes_are_checked_alone_and_cast_to_the_weights_dtype():
    m = _vae()
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want = m.decoder(z)
        got = m.decode_logits(z.float())
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, m.decoder(z.float().double()), rtol=0, atol=0)
        torch.testing.assert_close(m.decode_logits(z), want, rtol=0, atol=0)
    for bad in (torch.zeros(2, 4), torch.zeros(0, 3), torch.zeros(3)):
        with pytest.raises(ValueError, match="^" + re.escape(f"VAE.decode: z must have shape [B, 3] with B >= 1, got {tuple(bad.shape)}") + "$"):
            m.decode_logits(bad)
    with pytest.raises(TypeError, match=r"^VAE\.decode: z must be a floating-point tensor \[B, 3\], got torch.int64$"):
        m.decode_logits(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"^VAE\.decode: z must be a floating-point tensor \[B, 3\], got list$"):
        m.decode_logits([[0.0, 0.0, 0.0]])


def test_images_of_another_float_dtype_are_cast_to_the_weights_dtype():
    m = _vae()
    x = _x()
    with torch.no_grad():
        got = m.encode(x.float())
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, m.encode(x.float().double()), rtol=0, atol=0)


def test_default_lambda_d_accepts_zero_and_small_lambda_od():
    """The paper's lambda_d = 10 lambda_od (DIP-VAE-I), lambda_od (II); lambda_od = 0 (no decorrelation) and
    values below 1 are allowed, negative ones are not."""
    assert default_lambda_d("i", 0) == 0.0 and default_lambda_d("ii", 0) == 0.0
    assert default_lambda_d("i", 0.5) == 5.0 and default_lambda_d("ii", 0.5) == 0.5
    with pytest.raises(ValueError, match=r"^lambda_od must be >= 0, got -0\.5$"):
        default_lambda_d("i", -0.5)


@pytest.mark.parametrize("fn,who", [(factor_tc_estimate, "factor_tc_estimate"),
                                    (lambda t: discriminator_accuracy(t, t), "discriminator_accuracy"),
                                    (lambda t: discriminator_loss(t, t), "discriminator_loss")])
def test_discriminator_logit_checks_and_messages(fn, who):
    with pytest.raises(ValueError, match="^" + re.escape(f"{who}: logits") + r"(_real)? must be \[batch, 2\], got \(3,\)$"):
        fn(torch.zeros(3))
    with pytest.raises(ValueError, match="^" + re.escape(f"{who}: logits") + r"(_real)? must be \[batch, 2\], got \(4, 3\)$"):
        fn(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="^" + re.escape(f"{who}: logits") + r"(_real)? must be \[batch, 2\], got \(0, 2\) \(an empty batch\)$"):
        fn(torch.zeros(0, 2))
    with pytest.raises(TypeError, match="^" + re.escape(f"{who}: logits") + r"(_real)? must be a floating-point tensor \[batch, 2\], got torch.int64$"):
        fn(torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="^" + re.escape(f"{who}: logits") + r"(_real)? must be a floating-point tensor \[batch, 2\], got list$"):
        fn([[0.0, 1.0]])


def test_gaussian_log_density_names_a_non_float_argument():
    ok = torch.zeros(2, 3)
    with pytest.raises(TypeError, match=r"^gaussian_log_density: mu must be a floating-point tensor, got torch.int64$"):
        gaussian_log_density(ok, torch.zeros(2, 3, dtype=torch.long), ok)
    with pytest.raises(TypeError, match=r"^gaussian_log_density: z must be a floating-point tensor, got list$"):
        gaussian_log_density([0.0], ok, ok)


def test_generator_messages_name_the_type():
    m = _vae()
    with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got int$"):
        m.loss(_x(), generator=3)
    torch.manual_seed(0)
    f = FSQAE(FSQAE.config_class(image_size=32))
    with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got int$"):
        f.sample_codes(2, generator=3)
    with pytest.raises(TypeError, match=r"^draw_normal: like must be a floating-point tensor, got torch.int64$"):
        draw_normal((2,), like=torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match=r"^draw_normal: like must be a floating-point tensor, got list$"):
        draw_normal((2,), like=[0.0])


def test_draws_and_targets_follow_the_tensors_device():
    """draw_normal draws where ``like`` lives (its dtype too), FSQAE's codes on the weights' device and the
    discriminator's class targets on the logits' device, never on the default device."""
    like = torch.zeros(1, dtype=torch.float64)
    logits = torch.tensor([[0.3, -0.2], [1.0, 0.4]])
    torch.manual_seed(0)
    f = FSQAE(FSQAE.config_class(image_size=32)).double()
    with torch.device("meta"):
        z = draw_normal((2, 3), like=like, generator=torch.Generator().manual_seed(1))
        z0 = draw_normal((2, 3), like=like)
        codes = f.sample_codes(4, generator=torch.Generator().manual_seed(2))
        codes0 = f.sample_codes(4)
        loss = discriminator_loss(logits, logits.flip(0))
    assert [t.device.type for t in (z, z0, codes, codes0, loss)] == ["cpu"] * 5
    torch.testing.assert_close(z, torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64), rtol=0, atol=0)
    assert codes.dtype == torch.float64 and codes.shape == (4, 10)
    # 0.5 (CE(real, class 0) + CE(permuted, class 1)) by hand
    ls = torch.log_softmax(logits, 1)
    want = -0.5 * (ls[:, 0].mean() + torch.log_softmax(logits.flip(0), 1)[:, 1].mean())
    torch.testing.assert_close(loss, want, rtol=1e-6, atol=1e-7)
