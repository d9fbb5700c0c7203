"""diffrep.analysis.representation read against hand computations: straightness of posterior-mean and
pixel trajectories by explicit cosines, and the observation -> image mapping and splits that
factor_metrics hands to the metrics (added after mutation testing, 2026-12-07)."""

import math

import numpy as np
import pytest
import torch

from diffrep.analysis import representation as R
from helpers import tiny_sami as tiny_model


def _mean_cosine(traj):
    """Mean over t of cos(d_t, d_{t+1}), d_t = f_{t+1} - f_t, of one trajectory [F, d]."""
    d = [traj[i + 1] - traj[i] for i in range(len(traj) - 1)]
    return float(np.mean([a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(d[:-1], d[1:])]))


def test_latent_and_pixel_straightness_by_explicit_cosines():
    m = tiny_model().eval()
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(1, 8, 8, generator=g, dtype=torch.float64), torch.rand(1, 8, 8, generator=g, dtype=torch.float64)
    line = torch.stack([a - 0.5 + 0.2 * f * b for f in range(4)])  # frames on a straight line in pixel space
    zigzag = torch.stack([a - 0.5 + 0.3 * (f % 2) * b + 0.1 * f * a for f in range(4)])
    videos = torch.stack([line, zigzag])  # [N=2, F=4, 1, 8, 8]
    r = R.latent_straightness(m, videos, batch_size=3)  # batches cross the video boundary
    with torch.no_grad():
        codes = [np.stack([m.posterior(fr[None])[0][0].numpy() for fr in v]) for v in videos]
    assert r["latent_straightness"] == pytest.approx(np.mean([_mean_cosine(c) for c in codes]), abs=1e-9)
    pix = [v.reshape(4, -1).numpy() for v in videos]
    assert _mean_cosine(pix[0]) == pytest.approx(1.0)
    assert r["pixel_straightness"] == pytest.approx(np.mean([_mean_cosine(p) for p in pix]), abs=1e-9)
    want_deg = np.mean([np.mean([math.degrees(math.acos(min(1.0, max(-1.0, c)))) for c in (
        [(p[i + 1] - p[i]) @ (p[i + 2] - p[i + 1]) / (np.linalg.norm(p[i + 1] - p[i]) * np.linalg.norm(p[i + 2] - p[i + 1]))
         for i in range(2)])]) for p in pix])
    assert r["pixel_curvature_deg"] == pytest.approx(want_deg, abs=1e-6)
    lat_deg = np.mean([np.mean([math.degrees(math.acos(min(1.0, max(-1.0, (c[i + 1] - c[i]) @ (c[i + 2] - c[i + 1]) / (
        np.linalg.norm(c[i + 1] - c[i]) * np.linalg.norm(c[i + 2] - c[i + 1])))))) for i in range(2)]) for c in codes])
    assert r["latent_curvature_deg"] == pytest.approx(lat_deg, abs=1e-6)
    assert (r["num_videos"], r["num_frames"]) == (2, 4)


def test_observations_map_to_minus_one_one_chw():
    u8 = np.array([[[0, 255], [51, 102]]], np.uint8)  # [N=1, H=2, W=2] greyscale
    x = R._observations_to_images(u8)
    assert x.shape == (1, 1, 2, 2)
    assert x[0, 0].flatten().tolist() == pytest.approx([-1.0, 1.0, 51 / 255 * 2 - 1, 102 / 255 * 2 - 1])
    f = np.zeros((1, 2, 3, 3), np.float32)  # [N, H, W, C] in [0, 1]
    f[0, 1, 2] = (0.0, 0.5, 1.0)
    y = R._observations_to_images(f)
    assert y.shape == (1, 3, 2, 3) and y[0, :, 1, 2].tolist() == [-1.0, 0.0, 1.0]
    assert float(y[0, 0, 0, 0]) == -1.0


class _Ramp:
    """A ground-truth dataset whose single factor k is rendered as a uniform grey image of level k / 4."""

    def sample_factors(self, n, rng):
        return rng.randint(0, 5, size=(n, 1))

    def sample_observations_from_factors(self, f, rng):
        rng.uniform(size=len(f))  # a reader that draws (noise, a random variant) advances the shared stream
        return np.repeat(np.repeat(f[:, :, None] / 4.0, 8, 1), 8, 2).astype(np.float32)  # [n, 8, 8]


def test_factor_metrics_reads_posterior_means_of_the_mapped_observations(monkeypatch):
    m = tiny_model().eval()
    seen = {}
    monkeypatch.setattr(R, "modularity_explicitness", lambda *s: seen.setdefault("me", s) and {"modularity": 0.5})
    monkeypatch.setattr(R, "dci", lambda *s, seed: seen.setdefault("dci", (s, seed)) and {"disentanglement": 0.25})
    out = R.factor_metrics(m, _Ramp(), num_train=6, num_test=4, seed=2, batch_size=4)
    rng = np.random.RandomState(2)
    f_train = rng.randint(0, 5, size=(6, 1))
    rng.uniform(size=6)
    f_test = rng.randint(0, 5, size=(4, 1))
    codes_tr, y_tr, codes_te, y_te = seen["me"]
    assert np.array_equal(y_tr, f_train) and np.array_equal(y_te, f_test)
    with torch.no_grad():
        for codes, f in ((codes_tr, f_train), (codes_te, f_test)):
            x = torch.full((len(f), 1, 8, 8), 0.0, dtype=torch.float64) + torch.as_tensor(f / 4.0 * 2 - 1)[:, :, None, None]
            np.testing.assert_allclose(codes, m.posterior(x)[0].numpy(), atol=1e-6)
    assert seen["dci"][1] == 2 and len(seen["dci"][0]) == 4 and all(np.array_equal(a, b) for a, b in zip(seen["dci"][0], seen["me"]))
    assert out["modularity"] == 0.5 and out["disentanglement"] == 0.25
    assert (out["num_train"], out["num_test"], out["seed"]) == (6, 4, 2)


def test_factor_metrics_defaults_and_messages(monkeypatch):
    """SAMI A.7: 10,000 training and 5,000 test samples by default; bad arguments named."""
    m = tiny_model().eval()
    seen = {}
    monkeypatch.setattr(R, "modularity_explicitness", lambda *s: seen.setdefault("me", s) and {})
    monkeypatch.setattr(R, "dci", lambda *s, seed: seen.update(seed=seed) or {})
    out = R.factor_metrics(m, _Ramp())
    assert [len(a) for a in seen["me"]] == [10000, 10000, 5000, 5000] and seen["seed"] == 0
    assert np.array_equal(seen["me"][1], np.random.RandomState(0).randint(0, 5, size=(10000, 1)))
    assert (out["num_train"], out["num_test"], out["seed"]) == (10000, 5000, 0)
    with pytest.raises(TypeError, match=r"^dataset must be a ground-truth dataset with sample_factors\(\)$"):
        R.factor_metrics(m, object())
    for kw in ("num_train", "num_test"):
        with pytest.raises(ValueError, match=f"^{kw} must be a positive int, got 0$"):
            R.factor_metrics(m, _Ramp(), **{kw: 0})


def test_latent_straightness_needs_five_axes_and_three_frames():
    m = tiny_model().eval()
    x = torch.rand(1, 3, 1, 8, 8, dtype=torch.float64)
    assert R.latent_straightness(m, x)["num_frames"] == 3  # three frames: one pair of steps
    with pytest.raises(ValueError, match=r"^videos must be \[N, F >= 3, C, H, W\], got \(1, 2, 1, 8, 8\)$"):
        R.latent_straightness(m, x[:, :2])
    with pytest.raises(ValueError, match=r"^videos must be \[N, F >= 3, C, H, W\], got \(3, 1, 8, 8\)$"):
        R.latent_straightness(m, x[0])
