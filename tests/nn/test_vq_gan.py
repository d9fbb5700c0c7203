"""VQ-GAN losses: LPIPS from a local weight file, the adaptive GAN weight (Esser et al. 2021, Eq. 7),
gradient isolation between autoencoder and discriminator, and disc_start gating."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffrep.config import ConfigError
from diffrep.nn.lpips import LPIPS, LPIPS_ENV
from diffrep.nn.vq import PatchDiscriminator, VQAutoencoder, adaptive_weight, hinge_d_loss

from helpers import tiny_vq as _tiny

TV_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16().features conv indices


def _random_lpips(seed=0):
    torch.manual_seed(seed)
    net = LPIPS()
    for i in range(5):  # LPIPS linear weights are non-negative
        w = getattr(net, f"lin{i}").model[1].weight
        w.data = torch.rand_like(w)
    return net


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lpips") / "vgg_lpips.pt"
    state = _random_lpips().state_dict()
    state["classifier.0.weight"] = torch.zeros(2, 2)  # extra keys (a full VGG16 file) are ignored
    torch.save(state, path)
    return path


def test_lpips_layout_matches_public_weight_names():
    net = LPIPS()
    keys = set(net.state_dict())
    assert keys == {f"features.{i}.{p}" for i in TV_CONVS for p in ("weight", "bias")} | {f"lin{l}.model.1.weight" for l in range(5)}
    assert net.taps == [3, 8, 15, 22, 29]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    assert not any(p.requires_grad for p in net.parameters())


def test_lpips_identity_symmetry_positivity(lpips_file):
    net = LPIPS.from_file(lpips_file)
    ref = _random_lpips()
    for k, v in ref.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1, torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    assert torch.equal(net(x, x), torch.zeros(3))
    dxy, dyx = net(x, y), net(y, x)
    assert dxy.shape == (3,)
    torch.testing.assert_close(dxy, dyx)
    assert (dxy > 0).all()


def test_lpips_matches_hand_computation_of_first_stage(lpips_file):
    """Only lin0 non-zero: the distance is mean_hw sum_c w_c (unit(f(x)) - unit(f(y)))^2 at relu1_2."""
    net = LPIPS.from_file(lpips_file)
    for l in range(1, 5):
        getattr(net, f"lin{l}").model[1].weight.data.zero_()
    w = net.lin0.model[1].weight.view(-1)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1, torch.rand(2, 3, 16, 16, generator=g) * 2 - 1

    def relu1_2(img):
        h = (img - torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)) / torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
        h = F.relu(F.conv2d(h, net.features[0].weight, net.features[0].bias, padding=1))
        h = F.relu(F.conv2d(h, net.features[2].weight, net.features[2].bias, padding=1))
        return h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)

    expected = ((relu1_2(x) - relu1_2(y)).pow(2) * w.view(1, -1, 1, 1)).sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(net(x, y), expected, rtol=1e-5, atol=1e-7)


def test_lpips_weights_only_from_local_file(tmp_path, monkeypatch, lpips_file):
    monkeypatch.delenv(LPIPS_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="DIFFREP_LPIPS_WEIGHTS.*lin0.model.1.weight"):
        LPIPS.from_file(None)
    with pytest.raises(FileNotFoundError, match="nope.pt.*does not exist.*features"):
        LPIPS.from_file(tmp_path / "nope.pt")
    monkeypatch.setenv(LPIPS_ENV, str(lpips_file))
    assert isinstance(LPIPS.from_file(None), LPIPS)
    partial = {k: v for k, v in _random_lpips().state_dict().items() if not k.startswith("lin4")}
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="lacks 1 tensors.*lin4"):
        LPIPS.from_file(tmp_path / "partial.pt")
    from safetensors.torch import save_file

    save_file(_random_lpips().state_dict(), str(tmp_path / "w.safetensors"))
    assert isinstance(LPIPS.from_file(tmp_path / "w.safetensors"), LPIPS)


def test_vq_loss_with_perceptual_term(lpips_file, monkeypatch):
    monkeypatch.delenv(LPIPS_ENV, raising=False)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    m = VQAutoencoder(_tiny(perceptual_weight=0.5, perceptual_weights=str(lpips_file)))
    out = m.loss(x)
    assert out["lpips"] > 0
    torch.testing.assert_close(out["loss"].detach(), out["rec"] + 0.5 * out["lpips"] + out["vq"])
    assert not any(k.startswith(("features", "lin", "_lpips")) for k in m.state_dict())  # LPIPS is not saved
    out["loss"].backward()
    assert m.last_layer().grad is not None
    m_missing = VQAutoencoder(_tiny(perceptual_weight=1.0))
    with pytest.raises(FileNotFoundError, match="perceptual_weights"):
        m_missing.loss(x)
    assert VQAutoencoder(_tiny()).loss(x).keys() == {"loss", "rec", "vq"}  # default: offline, no LPIPS


def test_adaptive_weight_matches_hand_computation():
    """y = W x with W [1, n]: grad_W (y - t)^2 = 2 (y - t) x, grad_W (-y) = -x."""
    torch.manual_seed(0)
    lin = nn.Linear(5, 1, bias=False)
    x, t = torch.randn(5), torch.tensor(3.0)
    y = lin(x).squeeze()
    rec, g = (y - t) ** 2, -y
    lam = adaptive_weight(rec, g, lin.weight)
    expected = (2 * (y - t).abs() * x.norm() / (x.norm() + 1e-4)).detach()
    torch.testing.assert_close(lam, expected)
    assert not lam.requires_grad
    # clamped to [0, 1e4]: a vanishing GAN gradient gives the upper bound
    y = lin(x).squeeze()
    assert adaptive_weight((y - t) ** 2, 1e-9 * y, lin.weight).item() == 1e4
    with torch.no_grad():
        y = lin(x).squeeze()
        assert adaptive_weight((y - t) ** 2, -y, lin.weight).item() == 0.0


def test_generator_and_discriminator_gradients_do_not_cross():
    torch.manual_seed(0)
    m = VQAutoencoder(_tiny(disc_weight=0.75, disc_channels=8, disc_layers=2))
    disc = set(map(id, m.discriminator_parameters()))
    gen = [p for p in m.parameters() if id(p) not in disc]
    assert disc and len(disc) + len(gen) == len(list(m.parameters()))
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    out = m.loss(x, step=0)
    assert {"loss", "disc_loss", "g_loss", "disc_lambda"} <= out.keys()
    out["loss"].backward(retain_graph=True)
    assert all(p.grad is None for p in m.discriminator_parameters())
    assert all(p.grad is not None for p in gen)
    m.zero_grad(set_to_none=True)
    out["disc_loss"].backward()
    assert all(p.grad is None for p in gen)
    assert all(p.grad is not None for p in m.discriminator_parameters())


def test_vq_loss_composition_matches_formula():
    torch.manual_seed(0)
    m = VQAutoencoder(_tiny(disc_weight=0.75, disc_channels=8, disc_layers=2))
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    m.eval()  # BatchNorm statistics fixed, so the discriminator can be re-evaluated identically
    out = m.loss(x, step=5)
    rec, _ = m(x)
    rec_loss = (rec - x).abs().mean()
    g_loss = -m.discriminator(rec).mean()
    lam = 0.75 * adaptive_weight(rec_loss, g_loss, m.last_layer())
    torch.testing.assert_close(out["disc_lambda"], lam)
    torch.testing.assert_close(out["loss"], rec_loss + out["vq"] + lam * g_loss)
    torch.testing.assert_close(out["disc_loss"], hinge_d_loss(m.discriminator(x), m.discriminator(rec)))


def test_disc_start_gating():
    torch.manual_seed(0)
    m = VQAutoencoder(_tiny(disc_weight=0.75, disc_start=10, disc_channels=8, disc_layers=2)).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    before, after = m.loss(x, step=9), m.loss(x, step=10)
    assert "g_loss" not in before and before["disc_loss"].item() == 0.0
    torch.testing.assert_close(before["loss"].detach(), before["rec"] + before["vq"])
    assert before["disc_loss"].requires_grad  # still attached to every discriminator parameter (DDP)
    assert "g_loss" in after and after["disc_loss"].item() > 0
    assert VQAutoencoder(_tiny()).discriminator_parameters() == []


def test_discriminator_config_checks():
    with pytest.raises(ConfigError, match="disc_layers"):
        _tiny(image_size=8, ch_mult=(1, 2, 4), disc_weight=1.0, disc_layers=3)
    with pytest.raises(ConfigError, match="perceptual_weight"):
        _tiny(image_size=8, perceptual_weight=1.0)
    with pytest.raises(ConfigError, match="disc_weight"):
        _tiny(disc_weight=-1.0)
    for size, layers in ((8, 1), (16, 2), (64, 3)):
        d = PatchDiscriminator(3, 8, layers)
        assert d(torch.zeros(1, 3, size, size)).shape[-1] == PatchDiscriminator.output_size(size, layers)


def test_vq_recipes_registered():
    from diffrep.recipes import get_recipe

    toy = get_recipe("vq/toy-cpu")
    assert toy.cpu_friendly
    cfg = get_recipe("vq/celeba64").make_config()
    m = cfg.model
    assert (m.image_size, m.ch, m.ch_mult, m.num_res_blocks, m.embed_dim, m.n_embed, m.mid_attention) == (64, 32, (1, 2, 4), 2, 3, 2048, True)
    assert (m.disc_weight, m.disc_start, m.codebook_weight, m.perceptual_weight) == (0.75, 0, 1.0, 1.0)
    assert m.downsample_factor == 4 and cfg.dataset == "celeba"
