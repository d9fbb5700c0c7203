"""VQ-GAN pieces (nn/vq.py, nn/lpips.py) against hand values and brute force, for the survivors of a
mutation run (benches/results/mutation_vq_lpips_2026-12-07b.md): the PatchGAN hinge loss
(Esser et al. 2021 / taming ``hinge_d_loss``), the adaptive weight's clamp and no-graph cases (Eq. 7),
nearest-codebook search and the straight-through output (van den Oord et al. 2017), the L2
reconstruction option, the taming PatchGAN layout and DCGAN initialisation, and the argument each
error message names."""

import pytest
import torch
from torch import nn

from diffrep.nn.lpips import LPIPS
from diffrep.nn.vq import PatchDiscriminator, VectorQuantizer, VQAutoencoder, adaptive_weight, hinge_d_loss

from helpers import tiny_vq


# -- hinge loss ---------------------------------------------------------------------------------------
def test_hinge_d_loss_hand_values():
    real = torch.tensor([2.0, 0.5, -1.0])            # relu(1 - D(x)) = 0, 0.5, 2
    fake = torch.tensor([-2.0, 0.0, 0.5, 3.0])       # relu(1 + D(x^)) = 0, 1, 1.5, 4
    want = 0.5 * (2.5 / 3 + 6.5 / 4)
    assert float(hinge_d_loss(real, fake)) == pytest.approx(want, rel=1e-6)
    # one logit each is a valid input; a confident discriminator has zero loss
    assert float(hinge_d_loss(torch.tensor([1.5]), torch.tensor([-1.0]))) == 0.0
    assert float(hinge_d_loss(torch.tensor([0.0]), torch.tensor([0.0]))) == 1.0


def test_hinge_d_loss_messages():
    ok = torch.zeros(2)
    with pytest.raises(TypeError, match=r"^hinge_d_loss: logits_real must be a non-empty floating-point tensor, "
                                        r"got torch\.Size\(\[0\]\)$"):
        hinge_d_loss(torch.zeros(0), ok)
    with pytest.raises(TypeError, match=r"^hinge_d_loss: logits_fake must be .* got list$"):
        hinge_d_loss(ok, [0.0])
    with pytest.raises(TypeError, match=r"^hinge_d_loss: logits_fake must be .* got torch\.Size\(\[2\]\)$"):
        hinge_d_loss(ok, torch.zeros(2, dtype=torch.int64))


# -- adaptive weight (Eq. 7) --------------------------------------------------------------------------
def _linear(seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(5, 1, bias=False)
    return lin, torch.randn(5)


def test_adaptive_weight_below_one_is_not_clamped_up():
    # rec = 0.1 y, g = -y with y = W x: the gradients are 0.1 x and -x, the ratio 0.1 |x| / (|x| + 1e-4)
    lin, x = _linear()
    y = lin(x).squeeze()
    lam = adaptive_weight(0.1 * y, -y, lin.weight)
    assert float(lam) == pytest.approx(0.1 * float(x.norm()) / (float(x.norm()) + 1e-4), rel=1e-5)


def test_adaptive_weight_is_zero_when_a_loss_has_no_graph():
    lin, x = _linear()
    y = lin(x).squeeze()
    const = torch.tensor(2.0)
    assert float(adaptive_weight(y ** 2, const, lin.weight)) == 0.0
    assert float(adaptive_weight(const, -y, lin.weight)) == 0.0
    with torch.no_grad():  # built with a graph, evaluated with gradients off: taming's evaluation path
        assert float(adaptive_weight(y ** 2, -y, lin.weight)) == 0.0


def test_adaptive_weight_messages():
    lin, x = _linear()
    other = nn.Parameter(torch.ones(5))
    y = lin(x).squeeze()
    with pytest.raises(ValueError, match="^adaptive_weight: last_layer is not in the graph of rec_loss and g_loss$"):
        adaptive_weight(y ** 2, -(other * x).sum(), lin.weight)  # g_loss does not reach last_layer
    with pytest.raises(ValueError, match=r"^adaptive_weight: last_layer must be a parameter both losses depend on "
                                         r"\(it requires no grad\)$"):
        adaptive_weight(y ** 2, -y, torch.ones(1, 5))
    with pytest.raises(TypeError, match=r"^adaptive_weight: rec_loss must be a real scalar loss tensor, got "
                                        r"torch\.Size\(\[2\]\)$"):
        adaptive_weight(torch.zeros(2), -y, lin.weight)
    with pytest.raises(TypeError, match="^adaptive_weight: g_loss must be a real scalar loss tensor, got float$"):
        adaptive_weight(y, 1.0, lin.weight)
    with pytest.raises(TypeError, match="^adaptive_weight: last_layer must be a floating-point parameter, got list$"):
        adaptive_weight(y, -y, [1.0])
    with pytest.raises(ValueError, match="max_weight"):
        adaptive_weight(y ** 2, -y, lin.weight, max_weight=-1.0)


# -- vector quantiser ---------------------------------------------------------------------------------
def test_nearest_codebook_entry_by_brute_force_and_straight_through_output():
    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(12, 3)
    with torch.no_grad():  # codes of very different norms: |e|^2 matters in the argmin
        vq.embedding.weight.copy_(torch.randn(12, 3, generator=g) * torch.linspace(0.2, 3.0, 12)[:, None])
    z = (torch.randn(2, 3, 4, 5, generator=g) * 2).requires_grad_(True)
    zq, _, idx = vq(z)
    e = vq.embedding.weight.detach()
    for b in range(2):
        for i in range(4):
            for j in range(5):
                v = z[b, :, i, j].detach()
                dist = [float(((v - e[k]) ** 2).sum()) for k in range(12)]
                k = min(range(12), key=dist.__getitem__)
                assert int(idx[b, i, j]) == k
                torch.testing.assert_close(zq[b, :, i, j].detach(), e[k], rtol=0, atol=1e-6)
    c = torch.randn(zq.shape, generator=g)
    (zq * c).sum().backward()  # straight-through: d z_q / d z = identity
    torch.testing.assert_close(z.grad, c)


def test_quantizer_casts_the_latent_to_the_codebook_dtype():
    vq = VectorQuantizer(4, 2)
    zq, loss, _ = vq(torch.randn(1, 2, 2, 2, dtype=torch.float64))
    assert zq.dtype == torch.float32 and loss.dtype == torch.float32
    with pytest.raises(ValueError, match=r"^VectorQuantizer: z must have shape \[B, 2, H, W\]"):
        vq(torch.zeros(1, 3, 2, 2))


# -- the autoencoder loss -----------------------------------------------------------------------------
def test_l2_reconstruction_option_is_the_mean_squared_error():
    torch.manual_seed(0)
    m = VQAutoencoder(tiny_vq(rec_loss="l2", codebook_weight=0.5))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = m.loss(x)
    rec, qloss = m(x)
    torch.testing.assert_close(out["rec"], ((rec - x) ** 2).mean().detach())
    torch.testing.assert_close(out["loss"].detach(), ((rec - x) ** 2).mean().detach() + 0.5 * qloss.detach())


def test_logged_generator_loss_is_minus_the_mean_fake_logit():
    torch.manual_seed(0)
    m = VQAutoencoder(tiny_vq(disc_weight=0.75, disc_channels=8, disc_layers=2)).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = m.loss(x)
    rec, _ = m(x)
    torch.testing.assert_close(out["g_loss"], -m.discriminator(rec).mean().detach())


def test_loss_messages_name_the_batch_and_the_step():
    m = VQAutoencoder(tiny_vq())
    x = torch.rand(2, 3, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"^VQAutoencoder\.loss: batch holds NaN or infinite values$"):
        m.loss(x)
    with pytest.raises(ValueError, match=r"^VQAutoencoder\.loss: batch must have shape"):
        m.loss(torch.zeros(2, 3, 15, 15))
    with pytest.raises((TypeError, ValueError), match="VQAutoencoder.loss: step"):
        m.loss(torch.zeros(2, 3, 16, 16), step=-1)


# -- PatchGAN layout (taming NLayerDiscriminator) ------------------------------------------------------
def _convs(d):
    return [m for m in d.net if isinstance(m, nn.Conv2d)]


def test_patch_discriminator_default_layout_and_slopes():
    torch.manual_seed(0)
    d = PatchDiscriminator()
    convs = _convs(d)
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (3, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 1), (512, 1, 1)]
    assert [c.bias is None for c in convs] == [False, True, True, True, False]
    assert all(m.negative_slope == 0.2 for m in d.net if isinstance(m, nn.LeakyReLU))
    assert sum(isinstance(m, nn.LeakyReLU) for m in d.net) == 4
    # channel multiplier 2^n capped at 8
    assert [c.out_channels for c in _convs(PatchDiscriminator(3, 2, 4))] == [2, 4, 8, 16, 16, 1]


def test_patch_discriminator_dcgan_initialisation():
    torch.manual_seed(0)
    d = PatchDiscriminator()
    w = torch.cat([c.weight.detach().flatten() for c in _convs(d)])
    assert abs(float(w.mean())) < 1e-3 and float(w.std()) == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight.detach().flatten() for m in d.net if isinstance(m, nn.BatchNorm2d)])
    assert float(bn.mean()) == pytest.approx(1.0, abs=0.005) and float(bn.std()) == pytest.approx(0.02, rel=0.15)
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in d.net if isinstance(m, nn.BatchNorm2d))


def test_patch_discriminator_output_size_floors_odd_sides():
    # k4 s2 p1 halves with floor; the two k4 s1 p1 convs each take 1 off
    for size, layers in ((18, 2), (21, 1), (30, 3)):
        got = PatchDiscriminator.output_size(size, layers)
        want = size
        for _ in range(layers):
            want //= 2
        assert isinstance(got, int) and got == want - 2
        assert PatchDiscriminator(3, 4, layers)(torch.zeros(1, 3, size, size)).shape[-1] == got


def test_patch_discriminator_messages_name_the_argument():
    for args, name in (((0, 8, 2), "in_channels"), ((3, 0, 2), "ch"), ((3, 8, 0), "n_layers")):
        with pytest.raises(ValueError, match=f"^PatchDiscriminator: {name} must be a positive int, got 0$"):
            PatchDiscriminator(*args)


# -- LPIPS argument checks ----------------------------------------------------------------------------
def test_lpips_messages_name_the_argument():
    net = LPIPS()
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(TypeError, match="^LPIPS: x must be an image tensor"):
        net([0.0], x)
    with pytest.raises(TypeError, match="^LPIPS: y must be an image tensor"):
        net(x, [0.0])
    with pytest.raises(ValueError, match=r"^LPIPS: y must have shape \[B, 3, H, W\], got \(1, 1, 16, 16\)"):
        net(x, torch.zeros(1, 1, 16, 16))
    shape = r"^LPIPS: expected two \[B, 3, H, W\] images of one shape with H, W >= 16 .* got "
    with pytest.raises(ValueError, match=shape + r"\(1, 3, 16, 16\) and \(2, 3, 16, 16\)$"):
        net(x, torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match=shape + r"\(1, 3, 8, 16\) and \(1, 3, 8, 16\)$"):
        net(torch.zeros(1, 3, 8, 16), torch.zeros(1, 3, 8, 16))
