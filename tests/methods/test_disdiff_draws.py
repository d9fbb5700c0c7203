"""DisDiff (docs/methods/disdiff.md): every draw of the objective comes from the caller's generator and
lands on the images' device, DyGA's Gumbel draw included (benches/results/mutation_diffusion_baselines_2026-12-06c.md)."""

import torch

from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGAConfig
from helpers import break_zero_init, ddim_decode_by_hand, disdiff_images, tiny_disdiff, untrained_on_purpose


def test_the_objective_draws_on_the_images_device():
    """A meta default device makes a draw placed on the default device fail."""
    m, x = tiny_disdiff(), disdiff_images()
    with torch.device("meta"):
        out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    assert out["loss"].device.type == "cpu" and "disentangling" in out


def test_dygas_gumbel_draw_comes_from_the_generator():
    """In training DyGA aligns the units with a Gumbel-softmax assignment (tau = 1 so that the noise shows):
    with a generator neither the alignment nor the loss depends on the global RNG."""
    torch.manual_seed(0)
    m = untrained_on_purpose(DisDiff(DisDiffConfig(dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, max_components=4, min_mass=2.0,
                                              tau=1.0, lam=1.0),
                              sample_steps=2))).double()
    break_zero_init(m, std=0.05)  # a zero-initialised shift decoder would hide the units
    x = (torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1).double()
    m.refresh_anchors(x)
    m.train()
    units = m.encode_units(x[:4])
    free = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        free.append(m.align_units(units))
    assert (free[0] - free[1]).abs().max() > 1e-9  # without a generator the draw is the global RNG's
    outs = []
    for global_seed, seed in ((1, 3), (2, 3)):
        torch.manual_seed(global_seed)
        outs.append(m.align_units(units, generator=torch.Generator().manual_seed(seed)))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    losses = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        losses.append(m.loss(x[:4], step=0, generator=torch.Generator().manual_seed(3))["loss"])
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)


def test_unconditional_sampling_is_ddim_of_the_frozen_model_by_hand():
    """x_T ~ N(0, I) from the generator in the weights' dtype, then DDIM (eta = 0) with eps_theta alone on the
    LDM-linear schedule (beta = linspace(sqrt 0.0015, sqrt 0.0155)^2), clamped to [-1, 1]."""
    m = tiny_disdiff()
    got = m.sample(2, generator=torch.Generator().manual_seed(7), num_steps=3)
    abar = torch.cumprod(1 - torch.linspace(0.0015 ** 0.5, 0.0155 ** 0.5, 1000, dtype=torch.float64) ** 2, 0)
    xT = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    with torch.no_grad():
        want = ddim_decode_by_hand(lambda x, t: m.unet(x, t), xT, 3, abar).clamp(-1, 1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
