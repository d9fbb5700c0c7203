import torch
import torch.nn.functional as F
import pytest

from diffrep.config import ConfigError
from diffrep.nn import (ConvDecoder, ConvEncoder, ConvVAEConfig, FeatureExtractor, FeatureExtractorConfig, HalfUNet,
                        HalfUNetConfig, PerUnitMLP, VQAutoencoder, VQAutoencoderConfig, VectorQuantizer)


def test_half_unet_heads_and_bias_free():
    # SAMI App. A.5: head 2 goes through softplus and is squared: sigma = softplus(a)
    torch.manual_seed(0)
    cfg = HalfUNetConfig(image_size=16, model_channels=8, channel_mult=(1, 1, 1), num_res_blocks=1, latent_dim=4, num_groups=4)
    m = HalfUNet(cfg)
    assert all(p.dim() > 1 or n.endswith("weight") for n, p in m.named_parameters())  # no bias anywhere
    assert not any(n.endswith(".bias") for n, _ in m.named_parameters())
    x = torch.randn(3, 3, 16, 16)
    mean, logvar = m(x)
    h = m.body(x).mean(dim=(2, 3))
    torch.testing.assert_close(mean, m.mean_head(h))
    torch.testing.assert_close(logvar.exp().sqrt(), F.softplus(m.var_head(h)), rtol=1e-5, atol=1e-6)
    # bias-free body: zero input gives exactly zero mean and sigma = softplus(0) = log 2
    mean0, logvar0 = m(torch.zeros(1, 3, 16, 16))
    assert mean0.abs().max() == 0
    torch.testing.assert_close(logvar0.exp().sqrt(), torch.full_like(logvar0, 0.6931472), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="HalfUNet"):
        m(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("size", [32, 64])
def test_conv_vae_shapes(size):
    cfg = ConvVAEConfig(image_size=size, in_channels=1, latent_dim=6)
    mean, logvar = ConvEncoder(cfg)(torch.randn(2, 1, size, size))
    assert mean.shape == logvar.shape == (2, 6)
    assert ConvDecoder(cfg)(mean).shape == (2, 1, size, size)
    # Locatello et al. 2019: four 4x4 stride-2 convs at 64x64, three at 32x32
    assert len([m for m in ConvEncoder(cfg).convs if isinstance(m, torch.nn.Conv2d)]) == (4 if size == 64 else 3)
    with pytest.raises(ConfigError, match="image_size"):
        ConvVAEConfig(image_size=48)


def test_feature_extractor_dyga_table9():
    torch.manual_seed(0)
    m = FeatureExtractor(FeatureExtractorConfig(preset="dyga", num_units=20)).eval()
    s, c = m(torch.randn(2, 3, 64, 64))
    assert s.shape == (2, 20) and c.shape == (2, 20, 32)
    assert (c >= 0).all()  # final ReLU (the DyGA paper's Table 9)
    assert m.fc[0].in_features == 4096 and m.fc[0].out_features == 4096
    # per-unit MLP widths 1 -> 256 -> 512 -> 32
    assert [tuple(w.shape) for w in m.mlp.weights] == [(20, 1, 256), (20, 256, 512), (20, 512, 32)]
    e = FeatureExtractor(FeatureExtractorConfig(preset="encdiff"))
    assert e(torch.randn(2, 3, 64, 64))[1].shape == (2, 20, 16)


def test_per_unit_mlp_units_are_independent():
    torch.manual_seed(0)
    mlp = PerUnitMLP(3, (1, 4, 2), act="relu", final_act=False)
    s = torch.randn(5, 3)
    out = mlp(s)
    for n in range(3):  # unit n equals its own little MLP applied to s[:, n]
        h = torch.relu(s[:, n:n + 1] @ mlp.weights[0][n] + mlp.biases[0][n])
        torch.testing.assert_close(out[:, n], h @ mlp.weights[1][n] + mlp.biases[1][n])
    s2 = s.clone()
    s2[:, 0] += 1
    torch.testing.assert_close(mlp(s2)[:, 1:], out[:, 1:])


def test_vector_quantizer_and_vq_autoencoder():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, beta=0.25)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0., 0.], [1., 0.], [0., 1.], [1., 1.]]))
    z = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).T.reshape(1, 2, 1, 2).requires_grad_()
    zq, loss, idx = vq(z)
    assert idx.flatten().tolist() == [1, 2]
    torch.testing.assert_close(zq.detach(), torch.tensor([[1., 0.], [0., 1.]]).T.reshape(1, 2, 1, 2))
    # codebook + beta * commitment, both equal to mean squared distance (0.01 + 0.01 + 0.04 + 0.04)/4
    assert loss.item() == pytest.approx(1.25 * 0.025)
    zq.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # straight-through
    # DyGA Table 7: f = 4, 64x64x3 -> 16x16x3, codebook 2048 x 3
    cfg = VQAutoencoderConfig()
    assert cfg.downsample_factor == 4 and cfg.n_embed == 2048 and cfg.embed_dim == 3
    m = VQAutoencoder(VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, n_embed=32, num_groups=4))
    x = torch.rand(2, 3, 16, 16) * 2 - 1  # images in [-1, 1]: the loss checks the range
    assert m.encode(x).shape == (2, 3, 4, 4)
    out = m.loss(x)
    assert out["loss"].item() == pytest.approx(out["rec"].item() + out["vq"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="divisible"):
        m.encode(torch.randn(1, 3, 10, 10))
