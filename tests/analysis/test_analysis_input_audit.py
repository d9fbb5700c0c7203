"""Regression tests of the analysis/viz input audit (2026-12-07): inputs that gave a silently NaN or wrong
result, or an error naming an argument the caller never passed. Each test names what happened before."""

import math

import numpy as np
import pytest
import torch

from diffrep.analysis import traversal
from diffrep.analysis.multibeta import spearman
from diffrep.analysis.variability import variability
from diffrep.viz.latents import traversal_frames, traversal_grid

NAN = float("nan")


def test_traversal_values_refuse_non_finite_codes():
    # before: every traversal value came back NaN
    codes = torch.randn(20, 3)
    codes[4, 1] = NAN
    with pytest.raises(ValueError, match="codes: contains NaN"):
        traversal.traversal_values(codes, 3)
    v = traversal.traversal_values(torch.arange(10.0)[:, None], 3, q=0.0)
    torch.testing.assert_close(v, torch.tensor([[0.0, 4.5, 9.0]]))  # min, middle, max of 0..9


def test_image_centroids_refuse_non_finite_images():
    # before: a NaN image gave a NaN centroid, the value documented for an EMPTY image
    img = torch.full((1, 1, 4, 4), -1.0)
    img[0, 0, 1, 2] = 1.0
    torch.testing.assert_close(traversal.image_centroids(img), torch.tensor([[2.5, 1.5]], dtype=torch.float64))
    img[0, 0, 0, 0] = NAN
    with pytest.raises(ValueError, match="images contain NaN"):
        traversal.image_centroids(img)


def test_variability_refuses_non_finite_samples():
    # before: {'v_per_pixel': nan, ...} was returned silently
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    assert variability(x)["v_sum"] == pytest.approx(1.0)  # (1/N) sum ||x_n - mean||^2, each at distance 1
    x[1, 1] = NAN
    with pytest.raises(ValueError, match="samples contain NaN"):
        variability(x)


def test_spearman_refuses_non_finite_input():
    # before: nan was returned silently
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="must be finite"):
        spearman([1, math.nan, 3], [1, 2, 3])


def _decode(z):
    return z[:, :1, None, None].expand(-1, 1, 2, 2).clone()  # image = first latent, 2x2


def test_traversal_grid_and_frames_check_values_and_dims():
    # before: empty values raised "nrow must be a positive int, got 0" (an argument the caller never passed),
    # NaN values were decoded silently, and traversal_frames did not check dims at all (an IndexError from
    # torch for dims=[5], and negative dims wrapped silently to the last latent)
    z = torch.zeros(3)
    g = traversal_grid(_decode, z, [0.25, 0.75], dims=[0], padding=0)
    torch.testing.assert_close(g[0], torch.tensor([[0.25, 0.25, 0.75, 0.75]] * 2))
    for fn in (traversal_grid, traversal_frames):
        with pytest.raises(ValueError, match="values must be a non-empty vector"):
            fn(_decode, z, [])
        with pytest.raises(ValueError, match="values must be a non-empty vector"):
            fn(_decode, z, [0.0, NAN])
        for dims in ([5], [-1], [], [True]):
            with pytest.raises(ValueError, match="dims must be a non-empty list of ints"):
                fn(_decode, z, [0.0, 1.0], dims=dims)
    frames = traversal_frames(_decode, z, np.array([0.5, 1.0]), dims=[0], padding=0)
    assert [float(f.mean()) for f in frames] == [0.5, 1.0]


def test_analysis_seeds_must_be_non_negative_ints():
    # before: seeded(1.7) used seed 1, seeded(True) seed 1 and seeded(-1) the wrapped seed 2**64 - 1;
    # eps_mse_by_band(seed=-1) ran (and reported seed -1)
    from diffrep.analysis.encoding import seeded
    from diffrep.analysis.sami_validation import eps_mse_by_band
    from helpers import tiny_sami

    assert seeded(None) is None
    assert torch.equal(torch.rand(3, generator=seeded(5)), torch.rand(3, generator=torch.Generator().manual_seed(5)))
    for bad in (1.7, True, -1):
        with pytest.raises(ValueError, match="seed must be a non-negative int"):
            seeded(bad)
    m = tiny_sami()
    x = torch.zeros(2, *m.image_shape, dtype=torch.float64)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        eps_mse_by_band(m, x, num_bands=2, seed=-1)


def test_posterior_geometry_checks_timesteps_and_alphas():
    # before: timesteps=[2.5] was truncated to step 2 silently, and a NaN alpha failed deep inside
    # log_posterior ("z, mu or logvar contains NaN or infinite values")
    from diffrep.analysis.posterior_geometry import perturb_low_variance_axes, posterior_variance_spectrum
    from helpers import tiny_sami

    m = tiny_sami()
    x = torch.zeros(1, *m.image_shape, dtype=torch.float64)
    assert posterior_variance_spectrum(m, x, timesteps=[2], num_noise=2)["timesteps"] == [2]
    for bad in ([2.5], [True]):
        with pytest.raises(ValueError, match="timesteps must be integer steps"):
            posterior_variance_spectrum(m, x, timesteps=bad, num_noise=2)
    with pytest.raises(ValueError, match="alphas must be a non-empty list of finite numbers"):
        perturb_low_variance_axes(m, x, alphas=[0.0, NAN])


def test_training_curves_name_a_malformed_metrics_line(tmp_path):
    # before: json.JSONDecodeError ("Expecting value: line 1 column 1") without the file or its line number
    pytest.importorskip("matplotlib")
    from diffrep.viz.curves import training_curves

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a JSON record"):
        training_curves(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"line 2 is not a JSON object"):
        training_curves(tmp_path)


def test_save_gif_checks_loop(tmp_path):
    # before: loop=-1 raised PIL's OverflowError "can't convert negative int to unsigned"
    from diffrep.viz.grids import save_gif

    assert save_gif([torch.zeros(3, 4, 4)], tmp_path / "a.gif", loop=2).is_file()
    for bad in (-1, 70000, 1.5):
        with pytest.raises(ValueError, match="loop must be an int"):
            save_gif([torch.zeros(3, 4, 4)], tmp_path / "b.gif", loop=bad)
