"""MIG, modularity/explicitness, SAP, InfoMEC against slow sklearn-based references and the
conformance properties of docs/metrics.md#mig, #modularity-and-explicitness, #sap, #infomec."""

import numpy as np
import pytest
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer, StandardScaler
from sklearn.svm import LinearSVC

from diffrep.metrics.infomec import infomec
from diffrep.metrics.mig import mig
from diffrep.metrics.modularity import modularity_explicitness, modularity_from_mi
from diffrep.metrics.sap import sap, sap_from_matrix

from helpers import sample_factors


def _ref_discretize(mus, bins=20):  # disentanglement_lib utils._histogram_discretize, (d, N)
    return np.stack([np.digitize(m, np.histogram(m, bins)[1][:-1]) for m in mus])


def _ref_mi(mus_d, ys):
    return np.array([[mutual_info_score(y, m) for y in ys] for m in mus_d])


def _ref_mig(codes, factors):
    m = _ref_mi(_ref_discretize(codes.T), factors.T)
    h = np.array([mutual_info_score(y, y) for y in factors.T])
    s = np.sort(m, axis=0)[::-1]
    return np.mean((s[0] - s[1]) / h)


def test_mig_matches_reference_and_properties(rng):
    f = sample_factors(1500, rng)
    noisy = f + 0.8 * rng.randn(*f.shape)
    codes = np.concatenate([noisy, rng.randn(1500, 3)], 1)
    assert abs(mig(codes, f)["mig"] - _ref_mig(codes, f)) < 1e-12
    assert mig(f + 0.01 * rng.randn(*f.shape), f)["mig"] >= 0.9
    assert mig(np.zeros((1500, 6)) + rng.randn(1500, 6) * 1e-9 * 0, f)["mig"] <= 0.2
    assert mig(np.concatenate([f[:, :1], f[:, :1], f[:, 1:]], 1) + 0.0, f)["mig"] <= 0.9
    dup = np.concatenate([f[:, :1], f[:, :1]], 1).astype(float)
    assert mig(dup, f[:, :1])["mig"] <= 0.1
    aff = codes * np.array([2.0, -3, 0.5, 1, 4, 7, 1, 1, 1]) + 5  # affine maps: same bins
    assert abs(mig(aff, f)["mig"] - mig(codes, f)["mig"]) < 1e-12


def test_mig_guards():
    f = np.stack([np.arange(100) % 4, np.zeros(100, int)], 1)
    c = np.stack([np.arange(100) % 4 + 0.0, np.ones(100)], 1)
    r = mig(c, f)
    assert np.isfinite(r["mig"]) and any("constant factors [1]" in x for x in r.flags)
    assert any("constant codes [1]" in x for x in r.flags)
    p = mig(c, f, mode="parity")
    assert np.isnan(p["discrete_mig"])
    with pytest.raises(ValueError, match="two codes"):
        mig(c[:, :1], f)


@pytest.mark.parametrize("m,expected", [
    (np.diag(np.ones(5)), 1.0),
    (np.vstack([np.diag(np.ones(5)), np.zeros((1, 5))])[:, :3][[0, 1, 2, 5]], 0.75),
    (np.zeros((5, 5)), 0.0),
    (np.vstack([np.diag(np.ones(5))] * 2), 1.0),
    (np.diag(np.ones(5))[:2], 1.0),
    (np.hstack([np.diag(np.ones(5))] * 2), 1 - 1 / 9),
])
def test_modularity_on_given_matrices(m, expected):
    assert abs(modularity_from_mi(m) - expected) < 1e-12


def test_modularity_diag_plus_empty_code_is_two_thirds():
    m = np.vstack([np.diag(np.ones(2)), np.zeros((1, 2))])
    assert abs(modularity_from_mi(m) - 2 / 3) < 1e-12


def _ref_explicitness(xtr, ytr, xte, yte):
    mean, std = xtr.mean(0), xtr.std(0)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    tr, te = [], []
    for j in range(ytr.shape[1]):
        clf = LogisticRegression().fit(xtr, ytr[:, j])
        mlb = MultiLabelBinarizer()
        tr.append(roc_auc_score(mlb.fit_transform(ytr[:, [j]]), clf.predict_proba(xtr)))
        te.append(roc_auc_score(mlb.fit_transform(yte[:, [j]]), clf.predict_proba(xte)))
    return np.mean(tr), np.mean(te)


def test_modularity_explicitness_matches_reference(rng):
    sizes = (4, 3, 5)
    ftr, fte = sample_factors(600, rng, sizes), sample_factors(400, rng, sizes)
    ctr = ftr + 0.7 * rng.randn(*ftr.shape)
    cte = fte + 0.7 * rng.randn(*fte.shape)
    for mode in ("robust", "parity"):
        r = modularity_explicitness(ctr, ftr, cte, fte, mode=mode, estimator="sklearn")
        etr, ete = _ref_explicitness(ctr, ftr, cte, fte)
        assert abs(r["explicitness_train"] - etr) < 1e-10 and abs(r["explicitness_test"] - ete) < 1e-10
        m = _ref_mi(_ref_discretize(ctr.T), ftr.T)
        assert abs(r["modularity"] - modularity_from_mi(m)) < 1e-12
    assert "modularity_score" in modularity_explicitness(ctr, ftr, cte, fte, mode="parity")


def test_modularity_end_to_end(identity_split, rng):
    r = modularity_explicitness(*identity_split)
    assert r["modularity"] >= 0.9 and r["explicitness_test"] >= 0.9
    ctr, ftr, cte, fte = identity_split
    dup = modularity_explicitness(np.hstack([ctr, ctr]), ftr, np.hstack([cte, cte]), fte)
    assert dup["modularity"] >= 0.9
    sh = modularity_explicitness(rng.permutation(ctr), ftr, rng.permutation(cte), fte)
    assert sh["explicitness_test"] <= 0.6  # row-shuffled codes carry no information about the factors


def test_explicitness_constant_code_robust(identity_split):
    ctr, ftr, cte, fte = identity_split
    ctr = np.hstack([ctr, np.ones((len(ctr), 1))])
    cte = np.hstack([cte, np.ones((len(cte), 1))])
    r = modularity_explicitness(ctr, ftr, cte, fte)
    assert np.isfinite(r["explicitness_test"]) and any("constant codes [6]" in f for f in r.flags)
    with pytest.raises(ValueError):
        modularity_explicitness(ctr, ftr, cte, fte, mode="parity")  # sklearn rejects the NaN features


def test_sap_continuous_exact_and_discrete_matches_reference(rng):
    sizes = (4, 3, 5)
    ftr, fte = sample_factors(500, rng, sizes), sample_factors(300, rng, sizes)
    ctr = np.hstack([ftr + rng.randn(*ftr.shape), rng.randn(500, 1)])
    cte = np.hstack([fte + rng.randn(*fte.shape), rng.randn(300, 1)])
    s = np.zeros((4, 3))
    for i in range(4):
        for j in range(3):
            s[i, j] = np.cov(ctr[:, i], ftr[:, j], ddof=1)[0, 1] ** 2 / (np.var(ctr[:, i], ddof=1) * np.var(ftr[:, j], ddof=1))
    assert abs(sap(ctr, ftr, cte, fte, continuous_factors=True)["sap"] - sap_from_matrix(s)) < 1e-12
    for i in range(4):
        for j in range(3):
            clf = LinearSVC(C=0.01, class_weight="balanced", dual="auto", random_state=0).fit(ctr[:, [i]], ftr[:, j])
            s[i, j] = np.mean(clf.predict(cte[:, [i]]) == fte[:, j])
    assert abs(sap(ctr, ftr, cte, fte)["sap"] - sap_from_matrix(s)) < 1e-12
    ident = sap(ftr + 0.01 * rng.randn(*ftr.shape), ftr, fte + 0.01 * rng.randn(*fte.shape), fte,
                continuous_factors=True)
    assert ident["sap"] >= 0.9
    dup = np.hstack([ftr[:, :1], ftr[:, :1]]) + 0.0
    assert sap(dup, ftr[:, :1], dup, ftr[:, :1], continuous_factors=True)["sap"] <= 0.2


def test_sap_constant_code_guard(identity_split):
    ctr, ftr, cte, fte = identity_split
    c1 = np.hstack([ctr, np.zeros((len(ctr), 1))])
    r = sap(c1, ftr, np.hstack([cte, np.zeros((len(cte), 1))]), fte)
    assert any("code 6" in f for f in r.flags)
    with pytest.raises(ValueError, match="two codes"):
        sap(ctr[:, :1], ftr, cte[:, :1], fte)


def _ref_infom_c(z, s):
    zs = StandardScaler().fit_transform(z)
    nmi = np.zeros((s.shape[1], z.shape[1]))
    for i in range(s.shape[1]):
        for j in range(z.shape[1]):
            nmi[i, j] = mutual_info_classif(zs[:, [j]], s[:, i], discrete_features=False, n_neighbors=10,
                                            random_state=0)[0]
        nmi[i] /= mutual_info_score(s[:, i], s[:, i])
    r = z.max(0) - z.min(0)
    act = r > r.max() / 20
    na = nmi[:, act]
    f, d = s.shape[1], act.sum()
    return ((np.mean(na.max(0) / na.sum(0)) - 1 / f) / (1 - 1 / f),
            (np.mean(na.max(1) / na.sum(1)) - 1 / d) / (1 - 1 / d))


def test_infomec_matches_reference_and_properties(rng):
    sizes = (10, 10, 10, 8, 4, 15)
    s = sample_factors(800, rng, sizes)
    z = s + 0.01 * rng.randn(*s.shape)
    r = infomec(z, s)
    im, ic = _ref_infom_c(z, s)
    assert abs(r["infom"] - im) < 1e-12 and abs(r["infoc"] - ic) < 1e-12
    assert r["infom"] > 0.9 and r["infoc"] > 0.9 and r["infoe"] > 0.9
    dup = infomec(np.hstack([s, s]) + 0.0, s)  # exact duplicates
    f = 6
    assert abs(dup["infoc"] - (0.5 - 0.5 / f) / (1 - 0.5 / f)) < 0.02
    noise = infomec(rng.randn(800, 6), s)
    assert abs(noise["infoe"]) < 0.1 and 0.2 < noise["infom"] < 0.8


def test_infoe_baseline_is_log_k(rng):
    s = np.repeat([0, 1, 2, 3], [100, 50, 30, 20])[:, None]
    z = rng.randn(200, 2)
    r_parity = infomec(z, s, mode="parity")
    r = infomec(z, s)
    assert abs(r_parity["infoe"] - r["infoe"]) < 1e-3  # CE_0 fitted on zeros ~ log 4


def test_infomec_nan_guard(rng):
    s = rng.randint(0, 3, (300, 2))
    z = np.hstack([rng.randn(300, 1) * 1e-3 + s[:, :1], np.repeat(np.arange(3.0), 100)[:, None] * 0 + rng.randn(300, 1)])
    z[:, 1] = 0.0
    z[0, 1] = 1.0  # active only by its range; NMI column (almost surely) zero
    r = infomec(z, s)
    assert np.isfinite(r["infom"])
    assert any("1 active latent" in f or "all-zero NMI" in f for f in r.flags) or r.meta["num_active"] == 2
