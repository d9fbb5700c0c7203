"""The exact-Bayes eps-MSE on disks (analysis/disks_bayes.py) for the survivors of a mutation run
(benches/results/mutation_disks_analysis_2026-12-07b.md): a two-image prior whose images differ in
background, so their squared norms differ and the -abar |x0_k|^2 / 2 term of the Gaussian
log-likelihood matters; a single test image; the first timestep t = 0."""

import numpy as np
import pytest

from diffrep.analysis.disks_bayes import disks_bayes_eps_mse
from diffrep.data.disks import Disks, render_disks

from test_disks_bayes import SCHED, two_point_eps_mse as _two_point_eps_mse


def test_two_backgrounds_of_different_norm_match_the_closed_form():
    disks = Disks(size=8, radius=2.0, transition=1.0, x_range=(4.0, 4.0), y_range=(4.0, 4.0),
                  background_range=(0.2, 0.45))
    imgs = render_disks([4.0, 4.0], [4.0, 4.0], [0.2, 0.45], disks.config).reshape(2, -1).astype(np.float64) * 2 - 1
    assert abs((imgs[0] ** 2).sum() - (imgs[1] ** 2).sum()) > 1.0  # the norms differ
    ts = [60, 80]
    r = disks_bayes_eps_mse(SCHED, ts, disks, grid=(1, 1, 2), num_images=4000, seed=1)
    for j, t in enumerate(ts):
        ab = float(SCHED.alphas_cumprod[t])
        want = _two_point_eps_mse(imgs[0], imgs[1], ab)
        assert want > 1e-3
        assert r["unconditional"][j] == pytest.approx(want, rel=0.06)
        assert r["given_background"][j] == 0.0                       # the background picks the image
        assert r["given_position"][j] == r["unconditional"][j]       # the position is known already


def test_a_single_image_and_the_first_timestep():
    disks = Disks(size=8, radius=2.0, transition=1.0, x_range=(3.0, 4.5), y_range=(4.0, 4.0),
                  background_range=(0.1, 0.1))
    r = disks_bayes_eps_mse(SCHED, [0, 90], disks, grid=(2, 1, 1), num_images=1, seed=0)
    assert r["timesteps"] == [0, 90] and r["num_images"] == 1 and r["grid"] == [2, 1, 1]
    assert r["unconditional"][1] > 0.0  # one image, counted


def _image(pixels, bg=0.2, size=8):
    """An image in [-1, 1] from [0, 1] intensities: background ``bg`` and the given {(row, col): v}."""
    import torch

    v = torch.full((size, size), bg, dtype=torch.float64)
    for (r, c), val in pixels.items():
        v[r, c] = val
    return (2 * v - 1)[None, None]


def test_disk_centres_by_hand():
    import torch

    from diffrep.analysis.disks_probes import disk_centres

    # background 0.2, foreground 0.5: mask = clamp((v - 0.2) / 0.3, 0, 1), dropped below 0.25.
    # (2, 3) v 0.5 -> 1; (2, 4) v 0.35 -> 0.5; (3, 3) v 0.26 -> 0.2, dropped; (5, 6) v 0.9 -> 1 (clamped);
    # (0, 0) v 0.0 -> 0 (clamped). Centroid: x = (3 + 0.5 * 4 + 6) / 2.5, y = (2 + 0.5 * 2 + 5) / 2.5
    img = _image({(2, 3): 0.5, (2, 4): 0.35, (3, 3): 0.26, (5, 6): 0.9, (0, 0): 0.0})
    # a single full pixel (mask total exactly 1) is a disk; half a pixel (total 0.5) is not
    one = _image({(6, 1): 0.5})
    half = _image({(6, 1): 0.35})
    got = disk_centres(torch.cat([img, one, half]))
    np.testing.assert_allclose(got[0], [11 / 2.5, 8 / 2.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], [1.0, 6.0], rtol=0, atol=1e-12)
    assert np.isnan(got[2]).all()


def test_defaults_sami_geometry_at_32_pixels_256_images_seed_0():
    from diffrep.data.disks import disks_geometry

    r = disks_bayes_eps_mse(SCHED, [50], grid=(2, 2, 2))
    assert r["num_images"] == 256 and r["seed"] == 0
    assert r == disks_bayes_eps_mse(SCHED, [50], disks_geometry(32), grid=(2, 2, 2), num_images=256, seed=0)
