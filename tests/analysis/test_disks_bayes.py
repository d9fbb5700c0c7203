"""The Bayes-optimal eps-MSE on disks: a two-image prior against its closed form, orderings, input checks."""

import math

import numpy as np
import pytest
import torch

from diffrep.analysis.disks_bayes import disks_bayes_eps_mse
from diffrep.data.disks import Disks, disks_geometry, render_disks
from diffrep.diffusion import NoiseSchedule, NoiseScheduleConfig

SCHED = NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=100, beta_start=1e-3, beta_end=0.05))


def two_point_eps_mse(a: np.ndarray, b: np.ndarray, abar: float) -> float:
    """Equal-weight prior on {a, b}: the posterior weight of the wrong image is sigmoid(l), with
    l ~ N(-k/2, k), k = abar ||a - b||^2 / (1 - abar); MMSE_x0 = ||a - b||^2 E[sigmoid(l)^2]."""
    d2 = float(((a - b) ** 2).sum())
    k = abar * d2 / (1 - abar)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    ell = -k / 2 + math.sqrt(k) * nodes
    e_sig2 = float((weights * (1 / (1 + np.exp(-ell))) ** 2).sum() / weights.sum())
    return abar / (1 - abar) * d2 * e_sig2 / a.size


def test_two_image_prior_matches_closed_form():
    disks = Disks(size=8, radius=2.0, transition=1.0, x_range=(3.0, 4.5), y_range=(4.0, 4.0), background_range=(0.1, 0.1))
    imgs = render_disks([3.0, 4.5], [4.0, 4.0], [0.1, 0.1], disks.config).reshape(2, -1).astype(np.float64) * 2 - 1
    ts = [40, 55, 70]
    r = disks_bayes_eps_mse(SCHED, ts, disks, grid=(2, 1, 1), num_images=6000, seed=0)
    for j, t in enumerate(ts):
        ab = float(SCHED.alphas_cumprod[t])
        want = two_point_eps_mse(imgs[0], imgs[1], ab)
        assert want > 1e-4  # the levels where the two images are confusable
        assert r["unconditional"][j] == pytest.approx(want, rel=0.06)
        # the background is known already (one value): conditioning on it changes nothing
        assert r["given_background"][j] == r["unconditional"][j]
        # knowing the position leaves a single image
        assert r["given_position"][j] == 0.0
        assert r["snr"][j] == pytest.approx(ab / (1 - ab))


def test_conditioning_lowers_the_error_and_is_reproducible():
    ts = [10, 40, 70, 95]
    r = disks_bayes_eps_mse(SCHED, ts, disks_geometry(8), grid=(7, 7, 9), num_images=128, seed=3)
    u, b, p = (np.array(r[k]) for k in ("unconditional", "given_background", "given_position"))
    assert (u > 0).all() and (b < u).all() and (p < u).all()
    # at the noisiest level nearly nothing is identifiable: the background gain dominates there
    assert u[-1] - b[-1] > u[-1] - p[-1]
    assert r == disks_bayes_eps_mse(SCHED, ts, disks_geometry(8), grid=(7, 7, 9), num_images=128, seed=3)


def test_a_sami_model_supplies_schedule_and_geometry():
    from diffrep.methods.sami import SAMI, SAMIConfig, SAMIConvNetConfig
    from diffrep.nn.unet import UNetConfig

    m = SAMI(SAMIConfig(
        denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                            num_res_blocks=1, attention_resolutions=(), middle_attention=False, num_groups=4),
        convnet=SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, latent_dim=3),
        schedule=NoiseScheduleConfig(kind="linear", num_timesteps=100, beta_start=1e-3, beta_end=0.05), sample_steps=5))
    got = disks_bayes_eps_mse(m, [30], grid=(5, 5, 5), num_images=16)
    assert got == disks_bayes_eps_mse(SCHED, [30], disks_geometry(8), grid=(5, 5, 5), num_images=16)


@pytest.mark.parametrize("kw, match", [
    (dict(timesteps=[]), "timesteps"), (dict(timesteps=[100]), "timesteps"), (dict(timesteps=[-1]), "timesteps"),
    (dict(timesteps=[1.5]), "timesteps"), (dict(timesteps=[True]), "timesteps"),
    (dict(grid=(3, 3)), "grid"), (dict(grid=(3, 0, 3)), "grid"), (dict(grid=(3, 3, 2.5)), "grid"),
    (dict(grid=(2000, 2000, 2000)), "GB"), (dict(num_images=0), "num_images"),
])
def test_bad_inputs_raise(kw, match):
    args = dict(timesteps=[10], grid=(3, 3, 3), num_images=4)
    args.update(kw)
    ts = args.pop("timesteps")
    with pytest.raises(ValueError, match=match):
        disks_bayes_eps_mse(SCHED, ts, disks_geometry(8), **args)


def test_wrong_types_raise():
    with pytest.raises(TypeError, match="schedule"):
        disks_bayes_eps_mse(torch.ones(3), [1])
    with pytest.raises(TypeError, match="disks"):
        disks_bayes_eps_mse(SCHED, [1], disks="disks")
