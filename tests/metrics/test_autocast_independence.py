"""Metrics and clustering are statistics of their inputs: the same numbers inside and outside the
caller's autocast (docs/architecture.md#autocast). CPU bf16 autocast lowers matmul, baddbmm, linear
and conv as CUDA's does; without the guard (diffrep.ops._full_precision) every case but the native
Engine (a control: the kernels never see autocast) moved under it: HDDC log-densities by ~100 %,
k-means and MAP labels flipped, the twin E/M sums, PCA-1 codes and extractor features moved by whole
units, and the FactorVAE protocol failed on a bf16 torch encoder's codes. Each case is computed once
outside autocast (the reference) and once inside, and must agree to float32 rounding."""

import numpy as np
import pytest
import torch

from diffrep import cluster
from diffrep.cluster import dyga_code, kmeans
from diffrep.metrics import generation as G
from diffrep.metrics.image_sources import tensor_source
from diffrep.metrics.pca import pca1_representation
from diffrep.metrics.protocols import factor_vae_score
from diffrep.ops import hddc as ops_hddc
from diffrep.ops import use_backend
from diffrep.ops._full_precision import full_precision

from helpers import TinyGroundTruth, assert_same_inside_and_outside_bf16_autocast

U, N, D, K = 3, 240, 8, 4


def _blobs():
    """K close clusters per unit, offset by 20 from the origin: |x|^2 ~ 3200 where the clusters are
    ~1 apart, so a bf16 |x - c|^2 (8-bit mantissa: steps of ~16) cannot tell them apart."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(U, K, D, generator=g) * 0.6 + 20
    lab = torch.randint(0, K, (U, N), generator=g)
    x = centres.gather(1, lab[..., None].expand(-1, -1, D)) + 0.3 * torch.randn(U, N, D, generator=g)
    return x.contiguous(), centres


X, CENTRES = _blobs()
FIT = cluster.fit(X, n_components=K, max_components=2 * K, seed=0)
MIDPOINTS = (X + X.roll(1, dims=1)) / 2  # between clusters, where MAP labels flip
RESP = FIT.responsibilities(X).contiguous()  # the M-step's input, taken outside autocast


def _fit_numbers(res):
    return [res.weights, res.means, res.log_likelihood, res.n_components, res.active]


def _engine(backend):
    """One E-step, point log-likelihoods, M-step sums and Eq. 5 densities of FIT on ``backend``."""
    eng = ops_hddc.Engine(backend, X)
    p = {k: v.to(eng.pdtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
         for k, v in FIT._params().items()}
    units, w = torch.arange(U), torch.ones(U, N)
    return [*eng.estep(units, w, p), eng.point_lse(units, p), *eng.mstep(units, w, RESP, FIT.active),
            *eng.density(units, w, RESP, FIT.active, 0.5)]


def _reference(fn):
    with use_backend("reference"):
        return fn()


def _extractor():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.Flatten(), torch.nn.Linear(4 * 37 * 37, 6))


def _images(seed, n=6):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _extract():
    """The generation metrics' feature pass (the FID Inception's place taken by a small conv net: the
    real weights are a local file, and the pass is what the guard wraps)."""
    return G._extract(tensor_source(_images(1), None), _extractor(), "clean", 4, torch.device("cpu"), False, "features")


def _image_features():
    net = _extractor()
    imgs = torch.nn.functional.interpolate(_images(2), size=299)
    return G.image_features(lambda x: net(x), lambda s, k: imgs[s:s + k], len(imgs), batch_size=4)


def _encoder():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 4)
    with torch.no_grad():
        lin.bias.add_(30.0)  # codes far from 0: a bf16 code keeps 2-3 digits
    return lambda obs: lin(torch.as_tensor(np.asarray(obs), dtype=torch.float32))


def _factor_vae():
    r = factor_vae_score(TinyGroundTruth(), _encoder(), batch_size=5, num_train=40, num_eval=20,
                         num_variance_estimate=60, mode="parity", cache=False)
    return [v for _, v in r.scalar_items()] + [r.meta["train_votes"], r.meta["eval_votes"]]


def _pca1():
    enc = _encoder()
    fit_obs = np.random.RandomState(0).rand(40, 3) * 3
    fn = pca1_representation(lambda o: enc(o), 2, fit_obs)
    return fn(np.random.RandomState(1).rand(10, 3) * 3)


CASES = {
    "cluster.fit": lambda: _fit_numbers(cluster.fit(X, n_components=K, max_components=2 * K, seed=0)),
    "cluster.fit full": lambda: _fit_numbers(cluster.fit(X, n_components=K, max_components=2 * K, model="full",
                                                         seed=0)),
    "cluster.fit twin": lambda: _reference(lambda: _fit_numbers(cluster.fit(X, n_components=K,
                                                                            max_components=2 * K, seed=0))),
    "fit_code twin": lambda: _reference(lambda: [*_fit_numbers((r := dyga_code.fit_code(
        X, n_components=K, max_components=2 * K, seeds=[0, 1, 2]))[0]), r[1]]),
    "HDDCResult.log_prob": lambda: FIT.log_prob(X),
    "HDDCResult.responsibilities": lambda: FIT.responsibilities(X),
    "HDDCResult.labels": lambda: FIT.labels(MIDPOINTS),
    "kmeans_labels": lambda: kmeans.kmeans_labels(X, torch.ones(U, N), K, [0, 1, 2]),
    "nearest_centre": lambda: kmeans.nearest_centre(X, CENTRES),
    "Engine native": lambda: _engine("cpu"),  # the kernels never see autocast: a control of the guarded path
    "Engine twin": lambda: _engine("reference"),
    "generation feature pass": _extract,
    "image_features": _image_features,
    "factor_vae_score": _factor_vae,
    "pca1_representation": _pca1,
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_numbers_inside_and_outside_bf16_autocast(name):
    assert_same_inside_and_outside_bf16_autocast(name, CASES[name])


def test_autocast_is_on_again_after_a_guarded_call():
    """The guard switches autocast off only for its own call: the caller's region keeps lowering."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        FIT.log_prob(X)
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_full_precision_is_a_no_op_where_autocast_does_not_exist():
    """The autocast guard: a device without autocast (here 'meta') gets no autocast context, which
    torch would refuse ("unsupported scalarType"); on CPU it switches CPU autocast off."""
    with full_precision(torch.empty(1, device="meta")):
        pass
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        with full_precision(torch.empty(1)):
            assert not torch.is_autocast_enabled("cpu")
            a = torch.ones(2, 2) @ torch.ones(2, 2)
        assert a.dtype == torch.float32
