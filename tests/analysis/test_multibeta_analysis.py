"""diffrep.analysis.multibeta against hand computations: the information curve of a toy VAE whose encoder,
decoder and sigma_beta are known in closed form, the informative-beta rule, nearest-neighbour distances
by brute force and Spearman's rho on hand-ranked cases."""

import math
import types

import numpy as np
import pytest
import torch

from diffrep.analysis.multibeta import information_curve, informative_beta, nearest_distance, spearman


class ToyVAE:
    """f(x, b) = (1 - b) W x (d = 2), g(z, b) = W^+ z, sigma_b^2 = 1e-4 + b: every quantity in closed form."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(2, 12, generator=g, dtype=torch.float64) * 0.5
        self.V = torch.linalg.pinv(self.W)  # g(f(x, 0)) is the orthogonal projection of x onto W's row space
        self.config = types.SimpleNamespace(beta_max=1.0)

    def encode(self, x, b):
        return (1 - b) * x.flatten(1).double() @ self.W.T

    def decode(self, z, b):
        return (z @ self.V.T).reshape(-1, 1, 3, 4)

    def sigma(self, b):
        return torch.tensor([math.sqrt(1e-4 + b)], dtype=torch.float64)


def test_information_curve_closed_form():
    vae = ToyVAE()
    g = torch.Generator().manual_seed(1)  # data mostly in the encoder's row space, so the beta = 0 code explains it
    a = torch.randn(9, 2, generator=g, dtype=torch.float64)
    x = (a @ vae.W + 0.1 * torch.randn(9, 12, generator=g, dtype=torch.float64)).reshape(9, 1, 3, 4)
    betas = [0.0, 0.25, 0.5, 1.0]
    c = information_curve(vae, x, betas, batch_size=4)  # batches of 4, 4, 1: sums must not depend on them
    X = x.reshape(9, 12).numpy()
    W, V = vae.W.numpy(), vae.V.numpy()
    var = ((X - X.mean(0)) ** 2).mean()
    assert c["variance"] == pytest.approx(var, rel=1e-12)
    for k, b in enumerate(betas):
        f = (1 - b) * X @ W.T
        mse = ((f @ V.T - X) ** 2).mean()
        s2 = 1e-4 + b
        kl = np.mean([sum(float(torch.distributions.kl_divergence(
            torch.distributions.Normal(torch.tensor(fi, dtype=torch.float64), torch.tensor(math.sqrt(s2), dtype=torch.float64)),
            torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)))) for fi in row) for row in f])
        assert c["mse"][k] == pytest.approx(mse, rel=1e-10)
        assert c["rate"][k] == pytest.approx(kl, rel=1e-9, abs=1e-14)
        assert c["sigma"][k] == pytest.approx(math.sqrt(s2), rel=1e-6)
    mse0 = c["mse"][0]
    assert c["explained"] == pytest.approx([(var - m) / (var - mse0) for m in c["mse"]], rel=1e-12)
    assert c["explained"][0] == 1.0 and 0 < c["explained"][1] < 1 and c["explained"][-1] < 0.05  # f(x, 1) = 0
    # a decoder that explains nothing at beta = 0 (error above the variance): NaN, not a negative share
    vae.V = vae.V * -3.0
    assert all(math.isnan(r) for r in information_curve(vae, x, betas)["explained"])
    vae.V = vae.V / -3.0
    # without beta = 0 there is no reference code: NaN, and the rule refuses
    c2 = information_curve(vae, x, [0.5, 1.0])
    assert all(math.isnan(r) for r in c2["explained"])
    with pytest.raises(ValueError, match="keeps the code informative"):
        informative_beta(c2)


def test_information_curve_input_checks():
    vae = ToyVAE()
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64)
    for bad in ([], [0.5, 0.2], [0.0, 1.5], [float("nan")], "0.1", [True]):
        with pytest.raises(ValueError):
            information_curve(vae, x, bad)
    with pytest.raises(ValueError, match="at least 2 images"):
        information_curve(vae, x[:1], [0.0])
    with pytest.raises(ValueError, match="batch_size"):
        information_curve(vae, x, [0.0], batch_size=0)


def test_informative_beta_rule():
    curve = {"betas": [0.1, 0.3, 0.5, 0.7, 0.9], "explained": [0.95, 0.8, 0.5, 0.49, 0.6]}
    assert informative_beta(curve, 0.5) == 0.9  # the largest beta meeting the fraction (not the first gap)
    assert informative_beta(curve, 0.61) == 0.3
    assert informative_beta(curve, 0.95) == 0.1
    assert informative_beta(dict(curve, explained=[0.95, 0.8, float("nan"), 0.1, 0.2]), 0.5) == 0.3
    for bad in (0, -0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="fraction"):
            informative_beta(curve, bad)
    with pytest.raises(ValueError, match="keeps the code informative"):
        informative_beta(curve, 0.99)
    with pytest.raises(ValueError, match="curve"):
        informative_beta({"betas": [0.1]}, 0.5)


def test_nearest_distance_brute_force():
    g = torch.Generator().manual_seed(3)
    imgs = torch.randn(7, 2, 3, 3, generator=g, dtype=torch.float64)
    ref = torch.randn(23, 2, 3, 3, generator=g, dtype=torch.float64)
    want = np.array([min(float(((a - r) ** 2).mean()) for r in ref) for a in imgs])
    for chunk in (1, 5, 100):
        assert np.allclose(nearest_distance(imgs, ref, chunk=chunk).numpy(), want, rtol=1e-9, atol=1e-12)
    # an image that is in the reference set is at distance 0
    assert nearest_distance(ref[4:6], ref).tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    with pytest.raises(ValueError, match="same image shape"):
        nearest_distance(imgs, ref[:, :1])
    with pytest.raises(ValueError, match="non-empty"):
        nearest_distance(imgs[:0], ref)
    with pytest.raises(TypeError):
        nearest_distance(imgs.numpy(), ref)
    with pytest.raises(ValueError, match="chunk"):
        nearest_distance(imgs, ref, chunk=0)


def test_spearman_hand_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)
    # ties take average ranks: y ranks (1.5, 1.5, 3.5, 3.5), rho = 4 / (sqrt(5) * 2)
    assert spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(2 / math.sqrt(5))
    with pytest.raises(ValueError):
        spearman([1], [1])
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def test_messages_and_edges_of_the_validators():
    vae = ToyVAE()
    x = torch.randn(4, 1, 3, 4, dtype=torch.float64)
    for bad, msg in (([], "non-empty"), ("0.1", "non-empty"), ([float("nan")], "finite numbers"),
                     ([1.5], r"lie in \[0, B=1\]"), ([0.5, 0.5], "strictly increasing"), ([0.5, 0.2], "strictly")):
        with pytest.raises(ValueError, match=msg):
            information_curve(vae, x, bad)
    curve = {"betas": [0.1, 0.3], "explained": [1.0, 0.4]}
    assert informative_beta(curve, 1.0) == 0.1  # fraction 1 is allowed: only the codes as good as beta = 0
    with pytest.raises(ValueError, match="curve must be"):
        informative_beta({"explained": [1.0]}, 0.5)
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        informative_beta(curve, 0.0)
    with pytest.raises(ValueError, match="keeps the code informative .* decoder that explains some variance"):
        informative_beta({"betas": [0.1], "explained": [float("nan")]}, 0.5)
    assert spearman([1, 2], [3, 4]) == pytest.approx(1.0)  # two points are enough
    with pytest.raises(ValueError, match="1-D sequences of the same length >= 2"):
        spearman([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="1-D sequences"):
        spearman([1], [1])
