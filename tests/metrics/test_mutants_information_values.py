"""InfoMEC, SAP, modularity and DCI pieces against sklearn and hand values, for the survivors of a
mutation run (benches/results/mutation_information_metrics_2026-12-07b.md): the kNN MI's default k
(sklearn ``mutual_info_classif`` with ``n_neighbors=10``), InfoE on binary and constant sources,
SAP's variance guard, modularity with one factor, the macro AUROC's class mask, and DCI with a
single factor or a single code."""

import math

import numpy as np
import pytest

from diffrep.metrics.dci import completeness_from_importance, disentanglement_from_importance
from diffrep.metrics.infomec import infomec, mutual_info_classif_like
from diffrep.metrics.modularity import _macro_auroc, modularity_from_mi
from diffrep.metrics.sap import continuous_score_matrix


def test_knn_mi_default_is_sklearns_mutual_info_classif_with_ten_neighbours():
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.RandomState(0)
    n = 150
    s = np.stack([rng.randint(0, 3, n), rng.randint(0, 2, n)], axis=1)
    z = np.stack([s[:, 0] + 0.7 * rng.randn(n), 3.0 * rng.randn(n) - 2.0], axis=1)
    got = mutual_info_classif_like(z, s, seed=0)
    got4 = mutual_info_classif_like(z, s, seed=0, k=4)  # infomec's n_neighbors reaches the estimator
    for j in range(2):
        for i in range(2):
            for k, g in ((10, got), (4, got4)):
                want = mutual_info_classif(z[:, [j]], s[:, i], discrete_features=False, n_neighbors=k, random_state=0)[0]
                assert g[j, i] == pytest.approx(want, abs=1e-12)
    assert not np.allclose(got, got4)
    assert got[0, 0] > 0.3  # the informative pair is visible


def _balanced_unpenalised_ce(x, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    m = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=1000, tol=1e-10).fit(x, y)
    return log_loss(y, m.predict_proba(x), labels=m.classes_)


@pytest.mark.parametrize("estimator", ["fast", "sklearn"])
def test_infoe_uses_binary_sources_and_leaves_out_constant_ones(estimator):
    rng = np.random.RandomState(1)
    n = 300
    z = rng.randn(n, 2)
    y = (z[:, 0] + rng.randn(n) > 0.4).astype(np.int64)  # binary, imbalanced, not separable
    factors = np.stack([y, np.zeros(n, dtype=np.int64)], axis=1)
    r = infomec(z, factors, estimator=estimator)
    zs = (z - z.mean(0)) / z.std(0)
    want = (math.log(2) - _balanced_unpenalised_ce(zs, y)) / math.log(2)
    assert 0.1 < want < 0.9
    assert r["infoe"] == pytest.approx(want, abs=2e-4)
    assert "source 1 constant: left out of InfoE" in r.flags
    assert not any("L-BFGS" in f or "lbfgs" in f for f in r.flags)  # a converged fit raises no flag


def test_infoe_with_no_varying_source():
    z = np.random.RandomState(2).randn(50, 2)
    r = infomec(z, np.zeros((50, 1), dtype=np.int64))
    assert r["infoe"] == 0.0
    assert "no source with two classes: InfoE = 0" in r.flags
    with pytest.raises(ValueError, match=r"^factors: source 0 holds a single class \(sklearn raises\)$"):
        infomec(z, np.zeros((50, 1), dtype=np.int64), mode="parity")


def test_sap_guard_zeroes_a_code_of_negligible_variance():
    # var(code 1) = 1e-13 (ddof 1) is below the 1e-12 guard; its score is 0, not cov^2 / (var var) ~ 1
    rng = np.random.RandomState(3)
    n = 100
    y = rng.randn(n, 1)
    tiny = y[:, 0] - y[:, 0].mean()
    tiny = tiny / tiny.std(ddof=1) * math.sqrt(1e-13)
    codes = np.stack([y[:, 0] + rng.randn(n), tiny], axis=1)
    import torch

    s = continuous_score_matrix(torch.from_numpy(codes), torch.from_numpy(y))
    c = np.corrcoef(codes[:, 0], y[:, 0])[0, 1]
    assert s[0, 0] == pytest.approx(c ** 2, rel=1e-10)
    assert s[1, 0] == 0.0


def test_modularity_with_one_factor_counts_only_live_codes():
    # F = 1: a code with any MI scores 1 (nothing to confuse), a dead code 0; the mean is over all codes
    assert modularity_from_mi(np.array([[0.0], [0.5], [2.0]])) == pytest.approx(2 / 3, abs=1e-15)


def _auroc(score, label):
    pos, neg = score[label == 1], score[label == 0]
    return np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])


def test_macro_auroc_averages_the_classes_present_on_both_sides():
    labels = np.array([0, 0, 1, 1, 1, 0, 3, 1])  # class 2 absent; class 3 has a single positive
    onehot = np.eye(4)[labels]
    proba = np.random.RandomState(4).dirichlet(np.ones(4), size=8)
    got, excluded = _macro_auroc(onehot, proba)
    want = np.mean([_auroc(proba[:, k], onehot[:, k]) for k in (0, 1, 3)])
    assert got == pytest.approx(want, abs=1e-12)
    assert excluded == [2]
    # one class in every row: no one-vs-rest AUROC at all
    got, excluded = _macro_auroc(np.eye(2)[[0, 0, 0]], np.full((3, 2), 0.5))
    assert got is None and excluded == [0, 1]


def test_dci_scores_with_a_single_factor_or_a_single_code():
    r = np.array([[0.2], [0.0], [0.8]])  # 3 codes, 1 factor
    # disentanglement: each code's entropy over one factor is 0 -> 1 per code, weighted -> 1
    assert disentanglement_from_importance(r) == pytest.approx(1.0, abs=1e-12)
    # completeness of the single factor over 3 codes: 1 - H(0.2, 0, 0.8) / log 3
    p = (r[:, 0] + 1e-11) / (r[:, 0] + 1e-11).sum()
    assert completeness_from_importance(r) == pytest.approx(1 + (p * np.log(p)).sum() / math.log(3), abs=1e-12)
    assert completeness_from_importance(r.T) == pytest.approx(1.0, abs=1e-12)
