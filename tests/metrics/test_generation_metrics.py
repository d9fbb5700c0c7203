"""Generation metrics on features (diffrep.metrics.generation; docs/metrics.md, "Generation
metrics"): FID against closed forms, KID against a brute-force loop over the same subsets,
precision/recall/density/coverage against brute-force NumPy (with ties) and against the clovaai
``prdc`` package, and the errors on bad inputs."""

import numpy as np
import pytest
import torch

from diffrep import _native
from diffrep.metrics import generation as G


def test_frechet_of_gaussians_equals_closed_forms():
    rng = np.random.default_rng(0)
    # diagonal covariances: sum (m1 - m2)^2 + sum (sqrt(s1) - sqrt(s2))^2
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    want = ((m1 - m2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert G.frechet_distance(m1, np.diag(s1), m2, np.diag(s2)) == pytest.approx(want, rel=1e-12)
    # pytorch-fid's test (there in 2048-d): identity covariances, means 0 and 1 in d dims -> d
    eye = np.eye(256)
    assert G.frechet_distance(np.zeros(256), eye, np.ones(256), eye) == pytest.approx(256.0, rel=1e-10)
    # commuting covariances (same eigenvectors): tr(S1 + S2 - 2 (S1 S2)^{1/2}) = sum (sqrt(a) - sqrt(b))^2
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    a, b = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    S1, S2 = Q @ np.diag(a) @ Q.T, Q @ np.diag(b) @ Q.T
    assert G.frechet_distance(np.zeros(5), S1, np.zeros(5), S2) == pytest.approx(
        ((np.sqrt(a) - np.sqrt(b)) ** 2).sum(), rel=1e-9)


def test_fid_from_features_zero_symmetric_and_checks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    y = rng.normal(size=(200, 8)) + 0.3
    assert G.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    assert G.fid_from_features(x, y) == pytest.approx(G.fid_from_features(y, x), rel=1e-10)
    mu_x, mu_y = x.mean(0), y.mean(0)
    want = G.frechet_distance(mu_x, np.cov(x, rowvar=False), mu_y, np.cov(y, rowvar=False))
    assert G.fid_from_features(x, y) == want
    assert G.fid_from_features(torch.from_numpy(x).float(), y) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="at least as many samples as feature dimensions"):
        G.fid_from_features(x[:7], y)
    assert G.fid_from_features(x[:7], y, allow_singular=True) > 0
    with pytest.raises(ValueError, match="same dimension"):
        G.fid_from_features(x, y[:, :3])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="real contains NaN"):
        G.fid_from_features(bad, y)
    with pytest.raises(ValueError, match=r"\[N >= 2, k\]"):
        G.fid_from_features(x[0], y)


def _kid_brute(real, fake, num_subsets, subset_size, degree, gamma, coef0, seed):
    rng = np.random.RandomState(seed)
    vals = []
    for _ in range(num_subsets):
        f = fake[rng.choice(len(fake), subset_size, replace=False)]
        r = real[rng.choice(len(real), subset_size, replace=False)]
        m = subset_size
        kff = np.array([[(gamma * f[i] @ f[j] + coef0) ** degree for j in range(m)] for i in range(m)])
        krr = np.array([[(gamma * r[i] @ r[j] + coef0) ** degree for j in range(m)] for i in range(m)])
        kfr = np.array([[(gamma * f[i] @ r[j] + coef0) ** degree for j in range(m)] for i in range(m)])
        within = sum(kff[i, j] + krr[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        vals.append(within - 2 * kfr.sum() / m ** 2)
    return np.mean(vals), np.std(vals)


def test_kid_equals_brute_force_over_the_same_subsets():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(35, 5)) * 1.3 + 0.2
    for kw in ({}, {"degree": 2, "gamma": 0.5, "coef0": 0.0, "seed": 7}):
        args = {"degree": 3, "gamma": None, "coef0": 1.0, "seed": 0, **kw}
        gamma = args["gamma"] if args["gamma"] is not None else 1 / 5
        want = _kid_brute(real, fake, 6, 12, args["degree"], gamma, args["coef0"], args["seed"])
        got = G.kid_from_features(real, fake, num_subsets=6, subset_size=12, device="cpu", **args)
        assert got == pytest.approx(want, rel=1e-10, abs=1e-14)
    # gamma None is 1 / d
    assert G.kid_from_features(real, fake, num_subsets=3, subset_size=10, device="cpu") == \
        G.kid_from_features(real, fake, num_subsets=3, subset_size=10, gamma=0.2, device="cpu")


def test_kid_of_identical_sets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    # subsets of the whole set are permutations of it: every subset gives the same unbiased value,
    # 2 [(S - tr K) / (N (N - 1)) - S / N^2] with K the full kernel matrix and S its sum
    K = (x @ x.T / 4 + 1) ** 3
    S, tr, n = K.sum(), np.trace(K), len(x)
    mean, std = G.kid_from_features(x, x, num_subsets=5, subset_size=30, device="cpu")
    assert mean == pytest.approx(2 * ((S - tr) / (n * (n - 1)) - S / n ** 2), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    # two samples of one distribution: zero mean within the subset spread
    a, b = rng.normal(size=(600, 4)), rng.normal(size=(600, 4))
    mean, std = G.kid_from_features(a, b, num_subsets=40, subset_size=100, device="cpu")
    assert abs(mean) < 4 * std / np.sqrt(40) + 1e-3
    # a shifted distribution is clearly apart
    assert G.kid_from_features(a, b + 1.0, num_subsets=10, subset_size=100, device="cpu")[0] > 0.1


def test_kid_checks():
    x = np.zeros((20, 3))
    with pytest.raises(ValueError, match="subset_size=21 exceeds"):
        G.kid_from_features(x, x, subset_size=21)
    with pytest.raises(ValueError, match="gamma"):
        G.kid_from_features(x, x, subset_size=5, gamma=-1.0)
    with pytest.raises(ValueError, match="num_subsets"):
        G.kid_from_features(x, x, subset_size=5, num_subsets=0)
    with pytest.raises(TypeError, match="degree"):
        G.kid_from_features(x, x, subset_size=5, degree=2.5)


def _prdc_brute(real, fake, k, strict):
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)

    def d2(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    rr, ff, rf = d2(real, real), d2(fake, fake), d2(real, fake)  # rf: real rows, fake columns
    r_real = np.partition(rr, k, axis=1)[:, k]
    r_fake = np.partition(ff, k, axis=1)[:, k]
    inside = (lambda a, r: a < r) if strict else (lambda a, r: a <= r)
    in_real = inside(rf, r_real[:, None])  # fake j inside real ball i
    in_fake = inside(rf, r_fake[None, :])  # real i inside fake ball j
    return {"precision": in_real.any(0).mean(), "recall": in_fake.any(1).mean(),
            "density": in_real.sum() / (k * len(fake)), "coverage": inside(rf.min(1), r_real).mean()}


needs_cpu = pytest.mark.skipif(not _native.cpu_available(), reason="diffrep._cpu not built")


@needs_cpu
@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_equals_brute_force_with_ties(strict, k):
    rng = np.random.default_rng(4)
    real = rng.integers(0, 3, (40, 3)).astype(np.float64)   # many duplicates and exact ties
    fake = np.vstack([real[:10], rng.integers(0, 4, (25, 3))]).astype(np.float64)
    want = _prdc_brute(real, fake, k, strict)
    got = G.prdc(real, fake, k=k, dc_k=k, strict=strict, device="cpu")
    assert got == pytest.approx(want, abs=1e-15)
    got32 = G.prdc(real.astype(np.float32), fake.astype(np.float32), k=k, dc_k=k, strict=strict,
                   device="cpu")
    assert got32 == pytest.approx(want, abs=1e-15)  # integers: float32 distances are exact too


@needs_cpu
def test_prdc_identities_and_torch_fidelity_convention():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 6))
    same = G.prdc(x, x, dc_k=3, device="cpu")
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(_prdc_brute(x, x, 3, False)["density"])
    y = rng.normal(size=(90, 6)) * 1.5
    a, b = G.prdc(x, y, device="cpu"), G.prdc(y, x, device="cpu")
    assert (a["precision"], a["recall"]) == (b["recall"], b["precision"])
    # torch-fidelity tests/torch_pure/misc/test_prc_convention.py: generated N(0, 0.1^2) vs real N(0, 3^2), 16-d
    real = rng.normal(size=(200, 16)) * 3.0
    fake = rng.normal(size=(200, 16)) * 0.1
    r = G.prdc(real, fake, device="cpu")
    assert r["precision"] > 0.8 and r["recall"] < 0.3


@needs_cpu
def test_prdc_matches_the_prdc_package():
    prdc_pkg = pytest.importorskip("prdc", reason="the clovaai prdc package (test extra) is not installed")
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(300, 20)), rng.normal(size=(250, 20)) + 0.2
    want = prdc_pkg.compute_prdc(real_features=real, fake_features=fake, nearest_k=5)
    got = G.prdc(real, fake, k=5, strict=True, device="cpu")
    assert got == pytest.approx({k: float(v) for k, v in want.items()}, abs=1e-12)


def test_prdc_checks():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="at least k \\+ 1 = 4"):
        G.prdc(x[:3], x, k=3, dc_k=3)
    with pytest.raises(ValueError, match="fake has 2 samples"):
        G.prdc(x, x[:2], k=3)
    with pytest.raises(ValueError, match="same dimension"):
        G.prdc(x, x[:, :2])
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="real contains NaN or inf"):
        G.prdc(bad, x)
    with pytest.raises(ValueError, match="k must be >= 1"):
        G.prdc(x, x, k=0)
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        G.prdc(x[0], x)


def test_smallest_allowed_inputs_and_kid_settings():
    # two samples are enough for a mean and an unbiased covariance: by hand
    two = np.array([[0.0, 1.0], [2.0, 5.0]])
    mu, cov = G.feature_statistics(two)
    np.testing.assert_allclose(mu, [1.0, 3.0])
    np.testing.assert_allclose(cov, [[2.0, 4.0], [4.0, 8.0]])
    assert G.frechet_distance_from_features(two, two + 1.0) == pytest.approx(2.0, rel=1e-12)  # only the means move
    for a, b in ((two[0], two), (two, two[0]), (two[:1], two)):
        with pytest.raises(ValueError, match=r"\[N >= 2, k\]"):
            G.frechet_distance_from_features(a, b)
    # exactly d samples per set is allowed without allow_singular
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(4, 4)), rng.normal(size=(4, 4)) + 1.0
    assert G.fid_from_features(x, y) == G.fid_from_features(x, y, allow_singular=True)
    # the smallest KID settings (1 subset of 2, degree 1) against the brute force
    real, fake = rng.normal(size=(6, 3)), rng.normal(size=(5, 3))
    got = G.kid_from_features(real, fake, num_subsets=1, subset_size=2, degree=1, device="cpu")
    assert got == pytest.approx(_kid_brute(real, fake, 1, 2, 1, 1 / 3, 1.0, 0), rel=1e-12, abs=1e-15)
    for bad, match in ((dict(gamma=0.0), "gamma"), (dict(gamma=True), "gamma"), (dict(gamma=float("inf")), "gamma"),
                       (dict(coef0=float("nan")), "coef0"), (dict(coef0=True), "coef0"), (dict(coef0="1"), "coef0")):
        with pytest.raises(ValueError, match=match):
            G.kid_from_features(real, fake, subset_size=3, **bad)
    # torch-fidelity's defaults (metric_kid.py), as KID_DEFAULTS states them
    import inspect

    params = inspect.signature(G.kid_from_features).parameters
    assert {k: params[k].default for k in G.KID_DEFAULTS} == G.KID_DEFAULTS == {
        "num_subsets": 100, "subset_size": 1000, "degree": 3, "gamma": None, "coef0": 1.0}
    assert params["seed"].default == 0


def test_user_torchscript_extractor(tmp_path, monkeypatch):
    class Corner(torch.nn.Module):
        def forward(self, x):  # [B, 3, 2, 2]: flattened to 12 features; the sums see every pixel
            return x[:, :, :2, :2] * 2.0 + x.sum((2, 3), keepdim=True)

    def corner(x):
        return x[:, :, :2, :2] * 2.0 + x.sum((2, 3), keepdim=True)

    path = tmp_path / "extractor.pt"
    torch.jit.script(Corner()).save(str(path))
    fe = G.load_feature_extractor(path)
    gray = torch.rand(4, 1, 5, 5, dtype=torch.float64)
    want = corner(gray.float().repeat(1, 3, 1, 1)).reshape(4, 12)  # 1 channel repeated to 3, nothing else
    torch.testing.assert_close(fe(gray), want)
    rgb = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(fe(rgb), corner(rgb).reshape(2, 12))
    # the user-extractor FID takes the TorchScript path itself, and no Inception keywords
    imgs = torch.rand(6, 3, 5, 5) * 2 - 1
    assert G.fid(imgs, imgs, path) == pytest.approx(0.0, abs=1e-4)  # singular covariances: rounding noise
    assert G.fid(imgs, imgs + 0.5, str(path)) == pytest.approx(
        G.frechet_distance_from_features(fe(imgs).double().numpy(), fe(imgs + 0.5).double().numpy()), rel=1e-9)
    with pytest.raises(TypeError, match=r"fid with a user extractor takes no \['protocol'\]"):
        G.fid(imgs, imgs, path, protocol="clean")
    monkeypatch.setenv("DIFFREP_FID_EXTRACTOR", str(path))
    torch.testing.assert_close(G.load_feature_extractor()(rgb), fe(rgb))
    (tmp_path / "junk.pt").write_bytes(b"not torchscript")
    with pytest.raises(ValueError, match="not a TorchScript module"):
        G.load_feature_extractor(tmp_path / "junk.pt")
    # image_features: float64 out whatever the extractor returns, batches told where they start
    feats = G.image_features(fe, lambda s, k: rgb.repeat(3, 1, 1, 1)[s:s + k], 6, batch_size=4)
    assert feats.dtype == np.float64 and feats.shape == (6, 12)
    np.testing.assert_array_equal(feats[4:], feats[:2])


def test_statistics_shapes_feature_dtypes_and_k_bounds():
    from diffrep.ops.knn import MAX_K

    m, s = np.zeros(3), np.eye(3)
    for args in ((m, s, m[:2], s), (m, s[:2, :2], m, s), (m, s, m, s[:2, :2]), (m[None], s, m, s)):
        with pytest.raises(ValueError, match="equal k"):
            G.frechet_distance(*args)
    rng = np.random.default_rng(9)
    real, fake = rng.integers(0, 4, (30, 3)), rng.integers(0, 5, (25, 3))
    want = _prdc_brute(real, fake, 3, False)
    if _native.cpu_available():
        assert G.prdc(real, fake, dc_k=3, device="cpu") == pytest.approx(want, abs=1e-15)  # integers -> float64
        # float16 -> float32
        half = G.prdc(torch.from_numpy(real).half(), torch.from_numpy(fake).float(), dc_k=3, device="cpu")
        assert half == pytest.approx(want, abs=1e-15)
        for a, b in ((np.float64, np.float32), (np.float32, np.float64)):  # promoted to float64 either way
            assert G.prdc(real.astype(a), fake.astype(b), dc_k=3, device="cpu") == pytest.approx(want, abs=1e-15)
        # exactly k + 1 samples, and the largest k the kernel takes (MAX_K - 1)
        assert G.prdc(real[:4], fake[:4], k=3, dc_k=3, device="cpu") == pytest.approx(
            _prdc_brute(real[:4], fake[:4], 3, False))
        big_k = MAX_K - 1
        r2, f2 = rng.normal(size=(MAX_K + 3, 2)), rng.normal(size=(MAX_K + 1, 2))
        assert G.prdc(r2, f2, k=big_k, dc_k=big_k, device="cpu") == pytest.approx(_prdc_brute(r2, f2, big_k, False),
                                                                             abs=1e-12)
    with pytest.raises(ValueError, match=f"k must be <= {MAX_K - 1}, got {MAX_K}"):
        G.prdc(real, fake, k=MAX_K)
    with pytest.raises(TypeError, match="fake must be a tensor or numpy array of features \\[N, d\\], got list"):
        G.prdc(real, [[0.0]])
    with pytest.raises(TypeError, match="strict must be a bool, got int"):
        G.prdc(real, fake, strict=1)
    with pytest.raises(TypeError, match="degree must be an int, got float"):
        G.kid_from_features(real, fake, subset_size=3, degree=2.5)
