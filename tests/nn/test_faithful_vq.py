"""The VQ first stage's loss weighting (issue 19: taming's legacy weighting, which LDM's first stages
and so the DyGA/DisDiff latents were trained with). taming ``VectorQuantizer2(legacy=True)``:

    loss = mean (sg[e] - z)^2 + beta * mean (e - sg[z])^2

so the encoder output z receives the gradient 2 (z - e) / numel (weight 1) and the chosen codebook
rows receive beta * 2 (e - z) / numel; ``legacy=False`` (van den Oord et al. 2017, Eq. 3) swaps the
two weights. Both have the same value (1 + beta) mean (z - e)^2. Hand case, gradients by hand."""

import pytest
import torch

from diffrep.nn.vq import VectorQuantizer, VQAutoencoder, VQAutoencoderConfig

CODES = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
# two latent positions (B=1, D=2, H=1, W=2): (0.9, 0.1) -> code 1, (0.2, 0.8) -> code 2
Z = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).T.reshape(1, 2, 1, 2)


def _grads(legacy, beta=0.25):
    vq = VectorQuantizer(4, 2, beta=beta, legacy=legacy)
    with torch.no_grad():
        vq.embedding.weight.copy_(CODES)
    z = Z.clone().requires_grad_(True)
    _, loss, idx = vq(z)
    loss.backward()
    return loss.detach(), z.grad, vq.embedding.weight.grad, idx


@pytest.mark.parametrize("legacy", [True, False])
def test_value_is_one_plus_beta_times_the_mean_squared_distance(legacy):
    loss, _, _, idx = _grads(legacy)
    assert idx.flatten().tolist() == [1, 2]
    # squared distances: (0.1^2 + 0.1^2) + (0.2^2 + 0.2^2) = 0.1 over numel 4
    assert float(loss) == pytest.approx(1.25 * 0.1 / 4, rel=1e-6)


def test_legacy_weighting_puts_beta_on_the_codebook_term():
    beta = 0.25
    _, gz, ge, _ = _grads(True, beta)
    # positions as (H*W, D): z - e = [(-0.1, 0.1), (0.2, -0.2)]
    diff = torch.tensor([[-0.1, 0.1], [0.2, -0.2]])
    # the encoder side: weight 1 on (z - sg[e])^2 -> 2 (z - e)/4 (no straight-through path: loss only)
    torch.testing.assert_close(gz[0, :, 0, :].T, 2 * diff / 4)
    want = torch.zeros(4, 2)
    want[1], want[2] = -beta * 2 * diff[0] / 4, -beta * 2 * diff[1] / 4
    torch.testing.assert_close(ge, want)


def test_van_den_oord_weighting_puts_beta_on_the_commitment_term():
    beta = 0.25
    _, gz, ge, _ = _grads(False, beta)
    diff = torch.tensor([[-0.1, 0.1], [0.2, -0.2]])
    torch.testing.assert_close(gz[0, :, 0, :].T, beta * 2 * diff / 4)
    want = torch.zeros(4, 2)
    want[1], want[2] = -2 * diff[0] / 4, -2 * diff[1] / 4
    torch.testing.assert_close(ge, want)


def test_the_autoencoder_defaults_to_the_legacy_weighting_and_passes_the_switch_through():
    assert VQAutoencoderConfig().legacy_beta is True
    small = dict(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=8, num_groups=4)
    assert VQAutoencoder(VQAutoencoderConfig(**small)).quantizer.legacy is True
    assert VQAutoencoder(VQAutoencoderConfig(**small, legacy_beta=False)).quantizer.legacy is False
    with pytest.raises(TypeError, match="legacy"):
        VectorQuantizer(4, 2, legacy=1)


def test_every_table7_first_stage_recipe_has_the_taming_mid_block_attention():
    """LDM's VQModel encoder/decoder always carry mid.attn_1 (``attn_resolutions: []`` only removes the
    per-level ones); the dis-dis autoencoder configs are such VQModels."""
    from diffrep.recipes import get_recipe

    for name in ("vq/celeba64", "vq/shapes3d64", "vq/mpi3d-toy64", "vq/cars3d64"):
        m = get_recipe(name).make_config().model
        assert m.mid_attention is True and m.legacy_beta is True, name
        assert (m.ch, m.ch_mult, m.num_res_blocks, m.embed_dim, m.n_embed) == (32, (1, 2, 4), 2, 3, 2048), name


def test_the_coder_layout_is_tamings_downsample_and_normalize():
    """taming ``Downsample(with_conv=True)``: F.pad(x, (0, 1, 0, 1)) then a 3x3 stride-2 conv without
    padding; ``Normalize``: GroupNorm(32, eps=1e-6). Checked on the encoder's first downsampling
    against a hand-applied conv with the same weights."""
    import torch.nn.functional as F

    from diffrep.nn.layers import Downsample, GroupNorm

    m = VQAutoencoder(VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=8,
                                          num_groups=4))
    downs = [mod for mod in m.encoder.modules() if isinstance(mod, Downsample)]
    assert len(downs) == 1
    conv = downs[0].op
    x = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(0))
    want = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(downs[0](x), want)
    assert not torch.allclose(downs[0](x), F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1))
    eps = {mod.eps for mod in m.modules() if isinstance(mod, GroupNorm)}
    assert eps == {1e-6}
    sym = VQAutoencoder(VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=8,
                                            num_groups=4, downsample_padding=1, norm_eps=1e-5))
    d = [mod for mod in sym.encoder.modules() if isinstance(mod, Downsample)][0]
    torch.testing.assert_close(d(x), F.conv2d(x, d.op.weight, d.op.bias, stride=2, padding=1))
