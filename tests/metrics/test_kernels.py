"""The metric-kernel twins against sklearn / NumPy (docs/kernels/metrics.md test obligations)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.feature_selection import mutual_info_classif
from sklearn.metrics import mutual_info_score, roc_auc_score

from diffrep.ops import explain, use_backend
from helpers import sklearn_mi_cd
from diffrep.ops import metrics as ops


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 60), st.integers(0, 2**31 - 1), st.sampled_from([None, 0, 1]))
def test_auroc_matches_sklearn_with_ties(n, seed, rounding):
    rng = np.random.RandomState(seed)
    s = rng.randn(4, n)
    if rounding is not None:
        s = np.round(s, rounding)
    y = rng.rand(3, n) < rng.uniform(0.05, 0.95)
    auc, deg = ops.auroc_matrix(s, y)
    for a in range(3):
        if deg[a]:
            assert torch.isnan(auc[a]).all()
            continue
        ref = [roc_auc_score(y[a], s[u]) for u in range(4)]
        np.testing.assert_allclose(auc[a].numpy(), ref, rtol=0, atol=1e-12)


def test_auroc_symmetry_and_modes():
    rng = np.random.RandomState(1)
    s, y = np.round(rng.randn(3, 500), 1), rng.rand(2, 500) < 0.3
    a1, _ = ops.auroc_matrix(s, y)
    a2, _ = ops.auroc_matrix(-s, y)
    np.testing.assert_allclose((a1 + a2).numpy(), 1.0, atol=1e-15)
    a3, _ = ops.auroc_matrix(np.exp(s), y)  # strictly increasing map
    np.testing.assert_allclose(a1.numpy(), a3.numpy(), atol=0)
    assert float(ops.auroc_matrix(np.zeros((1, 10)), y[:, :10])[0][0, 0]) == 0.5
    yd = np.zeros((1, 500), bool)
    with pytest.raises(ValueError, match="single class"):
        ops.auroc_matrix(s, yd, on_degenerate="raise")
    assert float(ops.auroc_matrix(s, yd, on_degenerate="half")[0][0, 0]) == 0.5
    with pytest.raises(ValueError, match="NaN"):
        ops.auroc_matrix(np.full((1, 3), np.nan), y[:, :3])
    with pytest.raises(ValueError, match="number of samples"):
        ops.auroc_matrix(s, y[:, :10])


def _calculate_auroc_port(targ, z, stepsize):
    """A loop port of ThomasMrY/DisDiff ae_utils_exp.calculate_auroc + aurocs for one pair (float32)."""
    thr = torch.arange(0.0, 1.0001, step=stepsize)
    ma, mi = z.max(), z.min()
    if not ma - mi > 0.2:
        return 0.5
    pos_total = targ.sum()
    neg_total = targ.shape[0] - pos_total
    areas = []
    for is_pos in (True, False):
        pts = torch.zeros((thr.shape[0], 2))
        for i, t in enumerate(thr):
            th = t * (ma - mi) + mi
            pred = (z >= th) if is_pos else (z < th)
            pts[i, 0] = (pred & ~targ).sum() / neg_total
            pts[i, 1] = (pred & targ).sum() / pos_total
        pts = pts.sort(dim=0)[0]
        areas.append(float((pts[1:, 1] * (pts[1:, 0] - pts[:-1, 0])).sum()))
    return max(areas)


@pytest.mark.parametrize("stepsize", [0.1, 0.01])
def test_auroc_grid_matches_disdiff_loop(stepsize):
    rng = np.random.RandomState(2)
    z = (rng.randn(3, 300) * np.array([[1.0], [0.02], [2.0]])).astype(np.float32)
    y = rng.rand(2, 300) < 0.4
    z[0] += y[0]
    out = ops.auroc_grid(z, y, stepsize=stepsize)
    for a in range(2):
        for u in range(3):
            ref = _calculate_auroc_port(torch.from_numpy(y[a]), torch.from_numpy(z[u]), stepsize)
            assert abs(float(out[a, u]) - ref) < 1e-6
    assert float(out[0, 1]) == 0.5  # range <= 0.2: not evaluated


def test_hist_discretize_matches_numpy_and_utils_test():
    x = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]]).T
    assert ops.hist_discretize(x, 3)[:, 0].tolist() == [1, 1, 2, 2, 3, 3]
    assert ops.hist_discretize(x[::-1].copy(), 3)[:, 0].tolist() == [3, 3, 2, 2, 1, 1]
    assert ops.hist_discretize(np.full((5, 1), 2.5), 20)[:, 0].tolist() == [11] * 5
    rng = np.random.RandomState(3)
    for dtype in (np.float32, np.float64):
        z = rng.randn(500, 4).astype(dtype)
        z[:, 1] = np.round(z[:, 1], 1)
        z[:, 2] = np.linspace(0, 1, 500, dtype=dtype)  # values on the edges
        ref = np.stack([np.digitize(z[:, j], np.histogram(z[:, j], 20)[1][:-1]) for j in range(4)], 1)
        np.testing.assert_array_equal(ops.hist_discretize(z, 20).numpy(), ref)


def test_mi_matrix_matches_sklearn():
    lab = np.array([[1, 1, 2, 2, 3, 3]]).T
    assert abs(float(ops.mi_matrix(lab, lab)[1][0]) - np.log(3)) < 1e-15
    m, _ = ops.mi_matrix(np.array([[1, 1, 2, 2], [1, 2, 1, 2]]).T, np.array([[1, 1, 2, 2], [1, 2, 1, 2]]).T)
    np.testing.assert_allclose(m.numpy(), np.diag([np.log(2)] * 2), atol=1e-15)
    rng = np.random.RandomState(4)
    lab = rng.randint(0, 20, (400, 5))
    lab[:, 4] = 7
    fac = np.stack([rng.randint(0, 3, 400), (rng.rand(400) < 0.05).astype(int) + 5, np.zeros(400, int)], 1)
    m, h = ops.mi_matrix(lab, fac)
    ref = np.array([[mutual_info_score(fac[:, j], lab[:, i]) for j in range(3)] for i in range(5)])
    np.testing.assert_allclose(m.numpy(), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.numpy(), [mutual_info_score(f, f) for f in fac.T], rtol=1e-12)
    m2, _ = ops.mi_matrix(lab, fac * 3 + 11)  # relabelling invariance
    np.testing.assert_allclose(m.numpy(), m2.numpy(), atol=0)
    with pytest.raises(TypeError, match="factors"):
        ops.mi_matrix(lab, fac + 0.5)


@pytest.mark.parametrize("case", ["continuous", "ties", "singletons", "small_labels"])
def test_knn_mi_cd_matches_sklearn(case):
    rng = np.random.RandomState(5)
    c = rng.randn(3, 800)
    d = rng.randint(0, 5, (2, 800))
    if case == "ties":
        c = np.round(c, 1)
    if case == "singletons":
        d[0, :4] = 100 + np.arange(4)
    if case == "small_labels":
        d[1, :15] = 50
        d[1, 15:18] = 51
    out = ops.knn_mi_cd(c, d, 10).numpy()
    ref = np.array([[sklearn_mi_cd()(c[j], d[i], 10) for i in range(2)] for j in range(3)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 150), k=st.sampled_from([1, 3, 10]), seed=st.integers(0, 2**31 - 1),
       ties=st.sampled_from([None, 0, 1, 2]), classes=st.integers(1, 12), singletons=st.sampled_from([0, 1, 3]))
def test_knn_mi_cd_twin_matches_sklearn(n, k, seed, ties, classes, singletons):
    """The twin against sklearn ``_compute_mi_cd`` on small samples: random and tied values,
    singleton labels, k > N_l - 1 (few points per label) and brute-force label groups."""
    rng = np.random.RandomState(seed)
    c = rng.randn(2, n)
    if ties is not None:
        c = np.round(c, ties)
    d = rng.randint(0, classes, (1, n))
    d[0, :singletons] = 100 + np.arange(min(singletons, n))
    with use_backend("reference"):
        out = ops.knn_mi_cd(c, d, k).numpy()
    if not (np.unique(d[0], return_counts=True)[1] > 1).any():
        np.testing.assert_array_equal(out, 0.0)  # sklearn has no kept point to estimate from
        return
    ref = np.array([[sklearn_mi_cd()(c[j], d[0], k)] for j in range(2)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_fast_suite_full_size_random_codes():
    """The fast suite at the study's sizes (10,000 train / 5,000 test points) on Shapes3D-sized
    factors with random 10-d codes: every score is finite and in [0, 1], and each part records
    which estimator ran."""
    from diffrep.metrics.protocols import evaluate
    from helpers import SIZES, TinyGroundTruth

    proj = np.random.RandomState(1).randn(len(SIZES), 10)

    def rep(x):  # a fixed random non-linear code of the factors
        return np.sin(np.asarray(x, np.float64) @ proj)

    r = evaluate(TinyGroundTruth(SIZES), rep, metrics=["mig", "dci", "sap", "modularity_explicitness", "infomec"],
                 num_train=10000, num_test=5000, estimator="fast")
    vals = {k: v for k, v in r.items() if isinstance(v, float)}
    assert {"mig", "dci_disentanglement", "sap", "modularity", "infom"} <= set(vals)
    for k, v in vals.items():
        assert np.isfinite(v) and 0.0 <= v <= 1.0, (k, v)
    est = {p["metric"]: p.get("estimator") for p in r.meta["parts"]}
    assert est["dci"] == "fast" and est["infomec"] in ("fast", "sklearn")


def test_knn_mi_matches_mutual_info_classif_seeded():
    from diffrep.metrics.infomec import mutual_info_classif_like

    rng = np.random.RandomState(6)
    z, s = rng.randn(600, 2), rng.randint(0, 4, (600, 2))
    z[:, 0] += s[:, 0]
    out = mutual_info_classif_like(z, s, seed=3)
    ref = np.array([[mutual_info_classif(z[:, [j]], s[:, i], discrete_features=False, n_neighbors=10,
                                         random_state=3)[0] for i in range(2)] for j in range(2)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_factor_vae_votes_nan_and_ties():
    b = np.zeros((3, 4, 3))
    b[:, :, 1] = np.arange(4)
    b[:, :, 2] = np.arange(4) * 2
    g = np.array([0.0, 1.0, 1.0])  # code 0 constant: 0/0 = NaN wins like np.argmin
    v, arg = ops.factor_vae_votes(b, np.array([0, 1, 1]), g, np.array([True, True, True]), 2)
    assert arg.tolist() == [0, 0, 0] and v.tolist() == [[1, 0, 0], [2, 0, 0]]
    v, arg = ops.factor_vae_votes(b, np.array([0, 1, 1]), g, np.array([False, True, True]), 2,
                                  compressed_index=False)
    assert arg.tolist() == [1, 1, 1]  # 1/1 < 4/1: code 1


def test_dispatch_reports_backend():
    ch = explain("metrics.auroc_matrix", torch.zeros(2, 3), torch.zeros(1, 3, dtype=torch.bool))
    assert ch.backend in ("cpu", "reference")
    ch = explain("metrics.auroc_grid", torch.zeros(2, 3), torch.zeros(1, 3, dtype=torch.bool))
    assert ch.backend == "reference"
    assert any("threshold sweep" in r for rs in ch.skipped.values() for r in rs)
