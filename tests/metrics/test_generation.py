"""Generation metrics (diffrep.metrics.generation): the Frechet distance of Gaussians and of feature
sets against closed forms, FID of images and of a generator, and the extractor's errors."""

import numpy as np
import pytest
import torch

from diffrep.metrics import generation as G


def test_frechet_distance_of_features_and_extractor_errors():
    g = np.random.default_rng(0)
    a = g.normal(size=(4000, 3))
    assert G.frechet_distance_from_features(a, a) == pytest.approx(0.0, abs=1e-9)
    b = a + np.array([1.0, 2.0, 0.0])
    assert G.frechet_distance_from_features(a, b) == pytest.approx(5.0, rel=1e-6)
    c = a * 2.0  # cov 4I vs I: tr(I + 4I - 2*2I) = 3
    assert G.frechet_distance_from_features(a, c) == pytest.approx(3.0 + float((a.mean(0) ** 2).sum()), rel=0.05)
    with pytest.raises(FileNotFoundError, match="feature extractor"):
        G.load_feature_extractor(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        G.load_feature_extractor("/nonexistent/inception.pt")


def test_frechet_distance_of_gaussians_matches_closed_forms():
    # one dimension: (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2)
    assert G.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 4.0 + 9.0 - 12.0)
    # general covariances against scipy's matrix square root
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(1)
    A_, B_ = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = A_ @ A_.T + 0.1 * np.eye(5), B_ @ B_.T + 0.1 * np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    want = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(sqrtm(s1 @ s2)))
    assert G.frechet_distance(m1, s1, m2, s2) == pytest.approx(want, rel=1e-8)
    assert G.frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-8)
    # from features: the same as from their statistics
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(300, 3)) * 1.5
    assert G.frechet_distance_from_features(a, b) == G.frechet_distance(*G.feature_statistics(a),
                                                                          *G.feature_statistics(b))
    with pytest.raises(ValueError, match="equal k"):
        G.frechet_distance(m1, s1, m2[:3], s2[:3, :3])
    with pytest.raises(ValueError, match="finite"):
        G.frechet_distance(m1 * np.nan, s1, m2, s2)
    with pytest.raises(ValueError, match="NaN or inf"):
        G.feature_statistics(np.full((4, 2), np.inf))
    with pytest.raises(ValueError, match="equal k"):
        G.frechet_distance_from_features(a, b[:, :2])


def test_fid_of_images_and_of_a_generator():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(12, 1, 4, 4, generator=g) * 2 - 1
    extract = lambda x: x.flatten(1)[:, :3].double()  # noqa: E731
    assert G.fid(real, real, extract, batch_size=5) == pytest.approx(0.0, abs=1e-9)
    shifted = real + 0.5
    assert G.fid(real, shifted, extract) == pytest.approx(3 * 0.25, rel=1e-6)  # only the means differ
    # a generator called in batches of at most batch_size, told where each batch starts
    starts = []

    def make(start, k):
        starts.append((start, k))
        return shifted[start:start + k]

    assert G.fid(real, make, extract, batch_size=5) == pytest.approx(3 * 0.25, rel=1e-6)
    assert starts == [(0, 5), (5, 5), (10, 2)]
    with pytest.raises(ValueError, match=r"^real must be images \[N >= 2, C, H, W\]"):
        G.fid(real[0], real, extract)
    with pytest.raises(ValueError, match="num_samples"):
        G.fid(real, make, extract, num_samples=0)
