"""Contract of issue 4 (the metric suite): the public names, signatures, score keys, results and CLI
the issue gives, each called by the path the issue names and checked against an independent
computation written here (scikit-learn / SciPy / plain NumPy, following the references'
documented arithmetic, docs/metrics.md). Deeper value tests live in tests/metrics/ (named per item).

Items: array metrics ``mig``, ``dci``, ``sap``, ``modularity_explicitness``, ``infomec``, ``tad``
(variants ``infodiffusion``, ``disdiff``, ``nashae``), ``latent_auroc``, ``downstream_efficiency``,
``straightness``, ``participation_ratio``; protocols ``factor_vae_score``, ``beta_vae_score``,
``evaluate``; the PCA(1) helper; numpy or torch input; the robustness list; results recording
variant, sizes, seeds and versions; the metric kernels and their twins; ``diffrep eval`` on an
.npz of codes (with factors, or aligned to dataset indices) writing JSON and printing a table.
"""

import inspect
import json
import math
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

import diffrep.metrics as M
from diffrep.cli import main

from helpers import TinyGroundTruth


def _data(n=300, sizes=(3, 4), extra=2, seed=0):
    """Codes = factors + noise, plus ``extra`` pure-noise codes; factors (n, F) int."""
    rs = np.random.RandomState(seed)
    f = np.stack([rs.randint(s, size=n) for s in sizes], axis=1)
    c = np.concatenate([f + 0.3 * rs.randn(n, len(sizes)), rs.randn(n, extra)], axis=1)
    return c, f


def _attributes(n=200, a=3, seed=1):
    rs = np.random.RandomState(seed)
    y = (rs.rand(n, a) > 0.5).astype(np.int64)
    z = np.concatenate([y + 0.6 * rs.randn(n, a), rs.randn(n, 1)], axis=1)
    return z, y


def _params(fn):
    return list(inspect.signature(fn).parameters.values())


# ---------------------------------------------------------------- names and signatures (issue text)
SIGNATURES = [
    ("mig", [("codes", None), ("factors", None), ("num_bins", 20)]),
    ("dci", [("codes_train", None), ("factors_train", None), ("codes_test", None), ("factors_test", None),
             ("estimator", "fast")]),
    ("sap", [("codes_train", None), ("factors_train", None), ("codes_test", None), ("factors_test", None),
             ("continuous_factors", False)]),
    ("modularity_explicitness", [("codes_train", None), ("factors_train", None), ("codes_test", None),
                                 ("factors_test", None)]),
    ("infomec", [("codes", None), ("factors", None), ("discrete_latents", False)]),
    ("tad", [("codes", None), ("attributes", None), ("variant", "infodiffusion")]),
    ("latent_auroc", [("codes", None), ("attributes", None)]),
    ("downstream_efficiency", [("codes_train", None), ("factors_train", None), ("codes_test", None),
                               ("factors_test", None), ("sizes", (10, 100, 1000, 10000))]),
    ("straightness", [("trajectories", None)]),
    ("participation_ratio", [("weights", None)]),
    ("factor_vae_score", [("dataset", None), ("representation_fn", None)]),
    ("beta_vae_score", [("dataset", None), ("representation_fn", None)]),
    ("evaluate", [("dataset", None), ("representation_fn", None), ("metrics", None)]),
]


@pytest.mark.parametrize("name,lead", SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_public_name_and_leading_parameters(name, lead):
    """Each name imports from diffrep.metrics; its leading parameters are the issue's, in order,
    positional-or-keyword, with the issue's defaults (None here = required, or a default not stated)."""
    fn = getattr(M, name)
    assert name in M.__all__
    ps = _params(fn)
    assert [p.name for p in ps[:len(lead)]] == [n for n, _ in lead]
    for p, (n, default) in zip(ps, lead):
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, n
        if default is not None:
            assert p.default == default, n
    required = [p.name for p in ps if p.default is inspect.Parameter.empty]
    assert required == [n for n, d in lead if d is None and n != "metrics"]  # later parameters have defaults


def test_pca1_helper_is_public():
    assert "pca1_units" in M.__all__ and "pca1_representation" in M.__all__


# ---------------------------------------------------------------- MIG
def _mi(a, b):
    from sklearn.metrics import mutual_info_score

    return mutual_info_score(a, b)


def _bins(col, num_bins=20):
    """disentanglement_lib ``_histogram_discretize``: np.histogram edges, digitize on all but the last."""
    return np.digitize(col, np.histogram(col, num_bins)[1][:-1])


def test_mig_keys_and_value():
    c, f = _data()
    m = np.array([[_mi(f[:, j], _bins(c[:, i])) for j in range(f.shape[1])] for i in range(c.shape[1])])
    h = np.array([_mi(f[:, j], f[:, j]) for j in range(f.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    want = np.mean((top[0] - top[1]) / h)
    r = M.mig(c, f)
    assert set(r) == {"mig"}
    assert r["mig"] == pytest.approx(want, abs=1e-12)
    assert M.mig(c, f, num_bins=7)["mig"] == pytest.approx(
        np.mean([np.diff(np.sort([_mi(f[:, j], _bins(c[:, i], 7)) for i in range(c.shape[1])])[-2:])[0]
                 / h[j] for j in range(f.shape[1])]), abs=1e-12)


# ---------------------------------------------------------------- DCI
def _entropy_based(r):
    """disentanglement_lib ``disentanglement`` / ``completeness`` of an importance matrix (codes x factors)."""
    per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    w = np.ones_like(r) if r.sum() == 0 else r
    d = np.sum(per_code * w.sum(axis=1) / w.sum())
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    c = np.sum(per_factor * w.sum(axis=0) / w.sum())
    return d, c


def test_dci_keys_accuracies_and_estimator_recorded():
    from sklearn.ensemble import GradientBoostingClassifier

    c, f = _data(300, (3, 3), extra=1)
    tr, te = slice(0, 150), slice(150, 300)
    models = [GradientBoostingClassifier(random_state=0).fit(c[tr], f[tr, j]) for j in range(2)]
    r_mat = np.stack([np.abs(m.feature_importances_) for m in models], axis=1)
    d, comp = _entropy_based(r_mat)
    acc_tr = np.mean([np.mean(m.predict(c[tr]) == f[tr, j]) for j, m in enumerate(models)])
    acc_te = np.mean([np.mean(m.predict(c[te]) == f[te, j]) for j, m in enumerate(models)])
    r = M.dci(c[tr], f[tr], c[te], f[te], estimator="sklearn", seed=0, n_jobs=1)
    assert set(r) == {"dci_disentanglement", "dci_completeness", "dci_informativeness_train",
                      "dci_informativeness_test"}
    assert r["dci_disentanglement"] == pytest.approx(d, abs=1e-12)
    assert r["dci_completeness"] == pytest.approx(comp, abs=1e-12)
    # informativeness is the mean ACCURACY, as the reference computes it (not an error)
    assert r["dci_informativeness_train"] == pytest.approx(acc_tr, abs=1e-12)
    assert r["dci_informativeness_test"] == pytest.approx(acc_te, abs=1e-12)
    assert r.meta["estimator"] == "sklearn"
    fast = M.dci(c[tr], f[tr], c[te], f[te], n_jobs=1)
    assert fast.meta["estimator"] == "fast"  # the default, and the result says so
    assert abs(fast["dci_informativeness_test"] - acc_te) < 0.05


@pytest.mark.parametrize("r,d,c", [
    (np.eye(5), 1.0, 1.0),
    (np.vstack([np.eye(5), np.eye(5)]), 1.0, 1.0 - np.log(2) / np.log(10)),
    (np.hstack([np.eye(5), np.eye(5)]), 1.0 - np.log(2) / np.log(10), 1.0),
])
def test_dci_on_given_importance_matrices(r, d, c):
    """metrics.md's conformance matrices (deeper: tests/metrics/test_faithful_infomec_dci_fid.py)."""
    from diffrep.metrics.dci import completeness_from_importance, disentanglement_from_importance

    assert disentanglement_from_importance(r) == pytest.approx(d, abs=1e-6)
    assert completeness_from_importance(r) == pytest.approx(c, abs=1e-6)


# ---------------------------------------------------------------- SAP
def _gap(s):
    s = np.sort(s, axis=0)
    return float(np.mean(s[-1] - s[-2]))


def test_sap_discrete_and_continuous():
    from sklearn.svm import LinearSVC

    c, f = _data(240, (3, 2), extra=1)
    tr, te = slice(0, 160), slice(160, 240)
    s = np.array([[np.mean(LinearSVC(C=0.01, class_weight="balanced", dual="auto", random_state=0)
                           .fit(c[tr, [i]], f[tr, j]).predict(c[te, [i]]) == f[te, j])
                   for j in range(2)] for i in range(3)])
    r = M.sap(c[tr], f[tr], c[te], f[te])
    assert set(r) == {"sap"} and r["sap"] == pytest.approx(_gap(s), abs=1e-12)
    corr = np.corrcoef(c[tr].T, f[tr].T)[:3, 3:] ** 2
    assert M.sap(c[tr], f[tr], c[te], f[te], continuous_factors=True)["sap"] == pytest.approx(_gap(corr), abs=1e-12)


# ---------------------------------------------------------------- modularity and explicitness
def test_modularity_explicitness_keys_and_values():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    c, f = _data(300, (3, 2), extra=1)
    tr, te = slice(0, 200), slice(200, 300)
    m = np.array([[_mi(f[tr, j], _bins(c[tr, i])) for j in range(2)] for i in range(3)])
    sq = m ** 2
    mx = sq.max(axis=1)
    mod = np.mean(np.where(mx == 0, 0.0, 1.0 - (sq.sum(axis=1) - mx) / (mx * (2 - 1))))
    mean, std = c[tr].mean(axis=0), c[tr].std(axis=0)
    xtr, xte = (c[tr] - mean) / std, (c[te] - mean) / std
    ex_tr, ex_te = [], []
    for j in range(2):
        clf = LogisticRegression().fit(xtr, f[tr, j])
        mlb = MultiLabelBinarizer()
        ex_tr.append(roc_auc_score(mlb.fit_transform(f[tr, j][:, None]), clf.predict_proba(xtr)))
        ex_te.append(roc_auc_score(mlb.fit_transform(f[te, j][:, None]), clf.predict_proba(xte)))
    r = M.modularity_explicitness(c[tr], f[tr], c[te], f[te], estimator="sklearn")
    assert set(r) == {"modularity", "explicitness_train", "explicitness_test"}
    assert r["modularity"] == pytest.approx(mod, abs=1e-12)
    assert r["explicitness_train"] == pytest.approx(np.mean(ex_tr), abs=1e-12)
    assert r["explicitness_test"] == pytest.approx(np.mean(ex_te), abs=1e-12)
    fast = M.modularity_explicitness(c[tr], f[tr], c[te], f[te])  # the default fast L-BFGS: same objective
    assert fast.meta["estimator"] == "fast"
    assert fast["explicitness_test"] == pytest.approx(np.mean(ex_te), abs=2e-3)


# ---------------------------------------------------------------- InfoMEC
def test_infomec_discrete_latents_by_the_formulas():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import OneHotEncoder

    rs = np.random.RandomState(2)
    s = np.stack([rs.randint(3, size=400), rs.randint(2, size=400)], axis=1)
    flip = rs.rand(400, 2) < 0.3
    z = np.where(flip, rs.randint(3, size=(400, 2)), s)
    z = np.concatenate([z, rs.randint(2, size=(400, 1))], axis=1)
    nf, d = 2, 3
    h = np.array([_mi(s[:, i], s[:, i]) for i in range(nf)])
    nmi = np.array([[_mi(s[:, i], z[:, j]) / h[i] for j in range(d)] for i in range(nf)])  # (F, d); all active
    infom = (np.mean(nmi.max(axis=0) / nmi.sum(axis=0)) - 1 / nf) / (1 - 1 / nf)
    infoc = (np.mean(nmi.max(axis=1) / nmi.sum(axis=1)) - 1 / d) / (1 - 1 / d)
    x = OneHotEncoder(sparse_output=False).fit_transform(z)
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(nf):
            lr = LogisticRegression(C=np.inf, class_weight="balanced", solver="lbfgs", max_iter=100, tol=1e-4)
            p = lr.fit(x, s[:, i]).predict_proba(x)
            k = len(np.unique(s[:, i]))
            vals.append((np.log(k) - log_loss(s[:, i], p, labels=lr.classes_)) / np.log(k))  # CE_0 = log K
        r = M.infomec(z, s, discrete_latents=True, estimator="sklearn")
    assert set(r) == {"infom", "infoc", "infoe"}
    assert r["infom"] == pytest.approx(infom, abs=1e-12)
    assert r["infoc"] == pytest.approx(infoc, abs=1e-12)
    assert r["infoe"] == pytest.approx(np.mean(vals), abs=1e-9)


def test_infomec_continuous_knn_is_seeded_and_recorded():
    """Continuous latents: the kNN (k = 10) estimate with the tie-breaking noise from RandomState(seed)
    in robust mode (deep values: tests/metrics/test_faithful_information.py)."""
    c, f = _data(300, (3, 2), extra=1)
    a, b = M.infomec(c, f), M.infomec(c, f)
    assert dict(a) == dict(b) and a.meta["seed"] == 0 and a.meta["n_neighbors"] == 10
    assert a["infom"] > 0.8 and a["infoe"] > 0.3


# ---------------------------------------------------------------- TAD
def _binary_mi(a, b):
    out = 0.0
    for u in (0, 1):
        for v in (0, 1):
            p = np.mean((a == u) & (b == v))
            if p > 0:
                out += p * np.log(p / (np.mean(a == u) * np.mean(b == v)))
    return out


def _tad_core(auc, y):
    """(TAD, captured): per attribute max minus runner-up; captured iff max >= 0.75 and
    max_{k != i} MI(y_i, y_k) / H(y_i) <= 0.2; the SUM over captured attributes."""
    a = y.shape[1]
    tad, cap = 0.0, 0
    for i in range(a):
        row = np.sort(auc[i])
        h = _binary_mi(y[:, i], y[:, i])
        red = max([_binary_mi(y[:, i], y[:, k]) for k in range(a) if k != i] + [0.0]) / h
        if row[-1] >= 0.75 and red <= 0.2:
            tad += row[-1] - (row[-2] if len(row) > 1 else 0.0)
            cap += 1
    return tad, cap


def test_tad_infodiffusion_variant_by_its_folds():
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    z, y = _attributes()
    tads, caps = [], []
    for tr, _ in KFold(5, shuffle=True, random_state=0).split(z):
        zt = StandardScaler().fit_transform(z[tr])
        auc = np.array([[max(roc_auc_score(y[tr, i], zt[:, j]), roc_auc_score(y[tr, i], -zt[:, j]))
                         for j in range(z.shape[1])] for i in range(y.shape[1])])
        t, c = _tad_core(auc, y[tr])
        tads.append(t)
        caps.append(c)
    r = M.tad(z, y)  # default variant
    assert {"tad", "tad_attributes_captured"} <= set(r)
    assert r.variant.startswith("infodiffusion")
    assert r["tad"] == pytest.approx(np.mean(tads), abs=1e-6)  # the reference's float32 AUROCs
    assert r["tad_attributes_captured"] == np.mean(caps)


@pytest.mark.parametrize("variant,thresholds", [("infodiffusion", None), ("disdiff", 11), ("nashae", 101),
                                                ("exact", None)])
def test_tad_variants_hand_case(variant, thresholds):
    """Two independent balanced attributes, each carried exactly by one latent: every variant's AUROC
    is 1 for its own latent and 1/2 for the other, so TAD = 2 x (1 - 1/2) = 1 (a SUM), 2 captured."""
    y = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25)
    r = M.tad(y.astype(np.float64), y, variant=variant)
    if variant == "infodiffusion":  # folds of 80 points keep the attributes only nearly independent
        assert r["tad"] == pytest.approx(1.0, abs=0.1) and r["tad_attributes_captured"] == 2
    else:
        assert r["tad"] == pytest.approx(1.0, abs=1e-6) and r["tad_attributes_captured"] == 2
        assert r.meta["thresholds"] == thresholds
    assert r.variant.split("/")[0] == variant


# ---------------------------------------------------------------- latent AUROC
def test_latent_auroc_five_fold_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    z, y = _attributes()
    folds = []
    for tr, te in KFold(5, shuffle=True, random_state=0).split(z):
        sc = StandardScaler().fit(z[tr])
        folds.append(np.mean([roc_auc_score(y[te, a], LogisticRegression().fit(sc.transform(z[tr]), y[tr, a])
                                            .predict_proba(sc.transform(z[te]))[:, 1]) for a in range(y.shape[1])]))
    r = M.latent_auroc(z, y)
    assert r["latent_auroc"] == pytest.approx(np.mean(folds), abs=1e-12)
    assert r["latent_auroc_std"] == pytest.approx(np.std(folds), abs=1e-12)


# ---------------------------------------------------------------- downstream efficiency
def test_downstream_accuracies_per_size_and_efficiency_ratios():
    from sklearn.ensemble import GradientBoostingClassifier

    from diffrep.metrics.downstream import efficiency

    c, f = _data(500, (2, 2), extra=1, seed=3)
    ctr, ftr, cte, fte = c[:300], f[:300], c[300:], f[300:]
    r = M.downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 100, 300), n_jobs=1)
    for s in (10, 100, 300):
        assert 0.0 <= r[f"{s}:mean_test_accuracy"] <= 1.0
    # Acc100/Acc with Acc the largest size's accuracy; Acc1000/Acc needs a size above 1000
    assert r["efficiency_100"] == pytest.approx(r["100:mean_test_accuracy"] / r["300:mean_test_accuracy"], abs=1e-15)
    assert "efficiency_1000" not in r
    acc = {f"{s}:mean_test_accuracy": a for s, a in zip((10, 100, 1000, 10000), (0.5, 0.6, 0.7, 0.8))}
    assert efficiency(acc) == {"efficiency_100": 0.6 / 0.8, "efficiency_1000": 0.7 / 0.8}
    # the parity predictor: GradientBoostingClassifier on the first s train rows, accuracy on the test set
    p = M.downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 100), predictor="sklearn", seed=0, n_jobs=1)
    for s in (10, 100):
        want = np.mean([np.mean(GradientBoostingClassifier(random_state=0).fit(ctr[:s], ftr[:s, j]).predict(cte)
                                == fte[:, j]) for j in range(2)])
        assert p[f"{s}:mean_test_accuracy"] == pytest.approx(want, abs=1e-12)
    assert r.variant.endswith("/fast") and p.variant.endswith("/sklearn")  # which estimator ran is recorded


# ---------------------------------------------------------------- SAMI's analyses
def test_straightness_closed_forms():
    line = np.arange(6.0)[:, None] * np.array([[1.0, 2.0]])
    assert M.straightness(line)["straightness"] == pytest.approx(1.0, abs=1e-12)
    zigzag = np.array([[0.0], [1.0], [0.0], [1.0], [0.0]])
    r = M.straightness(zigzag)
    assert r["straightness"] == pytest.approx(-1.0, abs=1e-12) and r["curvature_deg"] == pytest.approx(180.0)
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    r = M.straightness(np.stack([square, square]))  # (B, T, d)
    assert r["straightness"] == pytest.approx(0.0, abs=1e-12) and r["curvature_deg"] == pytest.approx(90.0)


def test_participation_ratio_closed_forms():
    assert M.participation_ratio(np.array([0.0, 3.0, 0.0]))["participation_ratio"] == pytest.approx(1.0)
    assert M.participation_ratio(np.ones(16))["participation_ratio"] == pytest.approx(4.0)  # sqrt(d)
    w = np.array([[3.0, 4.0], [1.0, 0.0]])
    want = np.mean([25.0 / np.sqrt(81.0 + 256.0), 1.0])  # ||w||_2^2 / ||w||_4^2 per row, then the mean
    assert M.participation_ratio(w)["participation_ratio"] == pytest.approx(want, abs=1e-12)


def test_pca1_units_is_the_first_principal_component_per_unit():
    rs = np.random.RandomState(4)
    x = rs.randn(50, 3, 4) @ np.diag([3.0, 1.0, 0.5, 0.1])
    out = M.pca1_units(x).numpy()
    assert out.shape == (50, 3)
    for u in range(3):
        xc = x[:, u] - x[:, u].mean(axis=0)
        v = np.linalg.svd(xc, full_matrices=False)[2][0]
        v = v * np.sign(v[np.argmax(np.abs(v))])  # documented sign: largest-magnitude entry positive
        np.testing.assert_allclose(out[:, u], xc @ v, atol=1e-10)


# ---------------------------------------------------------------- protocols
SMALL_FV = dict(batch_size=16, num_train=40, num_eval=30, num_variance_estimate=200)


def _identity(x):
    return np.asarray(x, dtype=np.float64)


def test_factor_vae_identity_code_votes_on_the_diagonal():
    r = M.factor_vae_score(TinyGroundTruth((4, 5, 3)), _identity, **SMALL_FV)
    assert r["factor_vae_train"] == 1.0 and r["factor_vae_eval"] == 1.0
    assert r.meta["seed"] == 0 and r.meta["cache"] is True  # RandomState(0); encode each observation once
    assert r.meta["encoded_observations"] <= 4 * 5 * 3 + SMALL_FV["num_variance_estimate"]


def test_beta_vae_keys():
    r = M.beta_vae_score(TinyGroundTruth((4, 5, 3)), _identity, batch_size=8, num_train=60, num_eval=30)
    assert {"beta_vae_train", "beta_vae_eval"} <= set(r)
    assert r["beta_vae_train"] >= 0.9 and r["beta_vae_eval"] >= 0.9  # disentanglement_lib's identity bound


def test_evaluate_replays_randomstate_zero_batches_of_16():
    ds = TinyGroundTruth((4, 5, 3))
    rs = np.random.RandomState(0)  # factors first, one randint per factor, per batch of 16
    f = np.concatenate([np.stack([rs.randint(s, size=min(16, 100 - b)) for s in (4, 5, 3)], axis=1)
                        for b in range(0, 100, 16)])
    r = M.evaluate(ds, _identity, metrics=["mig", "factor_vae"], num_train=100, num_test=50,
                   factor_vae_kwargs=SMALL_FV)
    assert r["mig"] == M.mig(f.astype(np.float64), f)["mig"]
    assert r["factor_vae_eval"] == 1.0
    assert r.meta["seed"] == 0 and r.meta["num_train"] == 100


def test_evaluate_scores_binary_factors_as_attributes():
    r = M.evaluate(TinyGroundTruth((2, 2, 2)), _identity, metrics=["tad", "latent_auroc"], num_train=100)
    assert {"tad", "tad_attributes_captured", "latent_auroc"} <= set(r)
    assert r["latent_auroc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="binary attributes"):
        M.evaluate(TinyGroundTruth((4, 5, 3)), _identity, metrics=["tad"], num_train=100)


# ---------------------------------------------------------------- parity mode
def test_parity_mode_keeps_the_reference_key_names():
    """mode="parity" adds the references' own keys with the same values (RNG-stream and array parity
    in depth: tests/metrics/test_protocols.py, tests/metrics/test_faithful_*.py)."""
    c, f = _data(200, (3, 2))
    tr, te = slice(0, 120), slice(120, 200)
    r = M.mig(c, f, mode="parity")
    assert r["discrete_mig"] == r["mig"]
    r = M.dci(c[tr], f[tr], c[te], f[te], mode="parity", n_jobs=1)
    for k in ("disentanglement", "completeness", "informativeness_train", "informativeness_test"):
        assert r[k] == r["dci_" + k]
    assert M.sap(c[tr], f[tr], c[te], f[te], mode="parity")["SAP_score"] == M.sap(c[tr], f[tr], c[te], f[te])["sap"]
    r = M.modularity_explicitness(c[tr], f[tr], c[te], f[te], mode="parity")
    assert (r["modularity_score"], r["explicitness_score_train"], r["explicitness_score_test"]) == (
        r["modularity"], r["explicitness_train"], r["explicitness_test"])
    assert r.meta["estimator"] == "sklearn"  # parity fits the reference's classifier
    r = M.factor_vae_score(TinyGroundTruth((4, 5, 3)), _identity, mode="parity", **SMALL_FV)
    assert (r["train_accuracy"], r["eval_accuracy"]) == (r["factor_vae_train"], r["factor_vae_eval"])
    assert r["num_active_dims"] == 3 and "parity" in r.variant


# ---------------------------------------------------------------- results
def test_results_record_variant_sizes_seeds_and_versions():
    import scipy
    import sklearn

    import diffrep

    c, f = _data(200, (3, 2))
    z, y = _attributes()
    results = {
        "mig": M.mig(c, f), "dci": M.dci(c[:100], f[:100], c[100:], f[100:], n_jobs=1),
        "sap": M.sap(c[:100], f[:100], c[100:], f[100:]), "infomec": M.infomec(c, f), "tad": M.tad(z, y),
        "latent_auroc": M.latent_auroc(z, y),
        "modularity_explicitness": M.modularity_explicitness(c[:100], f[:100], c[100:], f[100:]),
    }
    want = {"diffrep": diffrep.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__}
    for name, r in results.items():
        assert isinstance(r, dict) and isinstance(r, M.Result), name
        assert r.meta["variant"], name
        assert {k: r.meta["versions"][k] for k in want} == want, name
        assert any(k in r.meta for k in ("num_points", "num_train")), name
        json.dumps(r.to_json())  # writable as JSON
    for name in ("dci", "sap", "infomec", "tad", "latent_auroc"):  # the ones that draw random numbers
        assert "seed" in results[name].meta, name


# ---------------------------------------------------------------- inputs: numpy or torch, any device
def test_torch_inputs_on_each_device_equal_numpy(device):
    c, f = _data(200, (3, 2))
    z, y = _attributes()
    tc, tf = torch.from_numpy(c).to(device), torch.from_numpy(f).to(device)
    # the CPU path is the numpy path, to the bit; CUDA's MI tables take libdevice's log, not glibc's
    assert M.mig(tc, tf)["mig"] == pytest.approx(M.mig(c, f)["mig"], abs=0 if device.type == "cpu" else 1e-12, rel=0)
    tz, ty = torch.from_numpy(z).to(device), torch.from_numpy(y).to(device)
    assert M.tad(tz, ty, variant="exact")["tad"] == pytest.approx(M.tad(z, y, variant="exact")["tad"], abs=1e-12)
    assert dict(M.infomec(tc, tf, discrete_latents=True)) == pytest.approx(
        dict(M.infomec(c, f, discrete_latents=True)), abs=1e-12)


# ---------------------------------------------------------------- robustness (issue's list)
def _suite(c, f, a):
    n = len(c)
    h = n // 2
    return {
        "mig": lambda: M.mig(c, f),
        "dci": lambda: M.dci(c[:h], f[:h], c[h:], f[h:], n_jobs=1),
        "sap": lambda: M.sap(c[:h], f[:h], c[h:], f[h:]),
        "modularity_explicitness": lambda: M.modularity_explicitness(c[:h], f[:h], c[h:], f[h:]),
        "infomec": lambda: M.infomec(c, f),
        "tad": lambda: M.tad(c, a),
        "latent_auroc": lambda: M.latent_auroc(c, a),
    }


def _robust_cases():
    c, f = _data(120, (3, 2))
    a = (np.random.RandomState(5).rand(120, 2) > 0.5).astype(np.int64)
    return {
        "constant codes": (np.zeros_like(c), f, a),
        "constant factors": (c, np.zeros_like(f), np.zeros_like(a)),
        "fewer samples than classes": (c[:10], np.stack([np.arange(10), np.arange(10) % 7], axis=1), a[:10]),
    }


@pytest.mark.parametrize("case", ["constant codes", "constant factors", "fewer samples than classes"])
def test_robust_default_gives_finite_flagged_scores(case):
    """Where the references crash (sklearn on one class) or divide 0 by 0, the robust default gives a
    defined score and names the guard that fired (the one documented NaN, InfoC with <= 1 active
    latent, cannot arise here: constant codes leave no active latent, InfoC = 0). A constant latent
    needs no guard in the AUROC metrics: its tied scores give AUROC 1/2 by the definition."""
    c, f, a = _robust_cases()[case]
    guarded = {"constant codes": {"mig", "dci", "sap", "modularity_explicitness", "infomec"},
               "constant factors": set(_suite(c, f, a)), "fewer samples than classes": {"infomec"}}[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in _suite(c, f, a).items():
            r = fn()
            assert all(math.isfinite(v) for v in r.values()), (case, name, dict(r))
            assert bool(r.flags) or name not in guarded, (case, name)


def test_single_code_or_source_is_an_error_or_documented():
    c, f = _data(120, (3, 2), extra=0)
    one = c[:, :1]
    with pytest.raises(ValueError, match="at least two codes"):
        M.mig(one, f)
    with pytest.raises(ValueError, match="at least two codes"):
        M.sap(one[:60], f[:60], one[60:], f[60:])
    r = M.infomec(one, f)  # one active latent: InfoC undefined (docs/metrics.md#infomec), flagged
    assert math.isnan(r["infoc"]) and any("InfoC undefined" in x for x in r.flags)
    assert math.isfinite(r["infom"]) and math.isfinite(r["infoe"])
    r = M.infomec(c, f[:, :1])  # one source: InfoM likewise (0/0 in the reference), flagged
    assert math.isnan(r["infom"]) and any("InfoM undefined" in x for x in r.flags)
    assert math.isfinite(r["infoc"]) and math.isfinite(r["infoe"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_codes_are_a_clear_error(bad):
    c, f = _data(120, (3, 2))
    c[3, 1] = bad
    for fn in _suite(c, f, (f > 0).astype(np.int64)).values():
        with pytest.raises(ValueError, match="NaN or inf"):
            fn()


def test_mismatched_n_and_noninteger_factors_are_clear_errors():
    c, f = _data(120, (3, 2))
    with pytest.raises(ValueError, match="disagree on the number of samples"):
        M.mig(c[:-1], f)
    with pytest.raises(ValueError, match="disagree on the number of samples"):
        M.dci(c[:60], f[:60], c[60:], f[61:])
    with pytest.raises(TypeError, match="integer"):
        M.infomec(c, f + 0.5)
    with pytest.raises(TypeError, match="integer"):
        M.tad(c, (f > 0) + 0.5)


def test_too_few_samples_for_the_folds_is_a_clear_error():
    z, y = _attributes(4)
    for fn in (M.tad, M.latent_auroc):
        with pytest.raises(ValueError, match="4 samples cannot fill n_splits=5"):
            fn(z, y)
        with pytest.raises(ValueError, match="n_splits must be an int >= 2"):
            fn(z, y, n_splits=1)


# ---------------------------------------------------------------- metric kernels and their twins
def test_kernels_match_the_reference_rules():
    from sklearn.metrics import mutual_info_score, roc_auc_score

    import diffrep.ops as ops
    from diffrep.ops import metrics as K
    from diffrep.ops.reference import metrics as twin

    rs = np.random.RandomState(6)
    scores = np.round(rs.randn(3, 80), 1)  # ties
    labels = rs.rand(2, 80) > 0.5
    auc, _ = K.auroc_matrix(torch.from_numpy(scores), torch.from_numpy(labels))
    want = [[roc_auc_score(labels[a], scores[u]) for u in range(3)] for a in range(2)]
    np.testing.assert_allclose(auc.numpy(), want, atol=1e-15)
    codes = rs.randn(80, 3)
    bins = K.hist_discretize(torch.from_numpy(codes)).numpy()
    np.testing.assert_array_equal(bins, np.stack([_bins(codes[:, i]) for i in range(3)], axis=1))
    fac = rs.randint(4, size=(80, 2))
    mi, h = K.mi_matrix(torch.from_numpy(bins), torch.from_numpy(fac))
    np.testing.assert_allclose(mi.numpy(), [[mutual_info_score(fac[:, j], bins[:, i]) for j in range(2)]
                                            for i in range(3)], atol=1e-12)
    np.testing.assert_allclose(h.numpy(), [mutual_info_score(fac[:, j], fac[:, j]) for j in range(2)], atol=1e-12)
    assert inspect.signature(K.knn_mi_cd).parameters["k"].default == 10  # the k = 10
    for op in ("metrics.auroc_matrix", "metrics.hist_discretize", "metrics.mi_matrix", "metrics.knn_mi_cd",
               "metrics.factor_vae_votes"):
        assert hasattr(twin, op.split(".")[1]), op  # the pure-PyTorch twin
    assert ops.explain("metrics.mi_matrix", torch.from_numpy(bins), torch.from_numpy(fac)).backend == "cpu"  # native


def test_knn_mi_is_the_ross_estimator_sklearn_uses():
    from sklearn.feature_selection._mutual_info import _compute_mi_cd

    from diffrep.ops import metrics as K

    rs = np.random.RandomState(7)
    y = rs.randint(3, size=150)
    x = y + rs.randn(150)
    got = K.knn_mi_cd(torch.from_numpy(x[None]), torch.from_numpy(y[None]))[0, 0].item()
    assert got == pytest.approx(_compute_mi_cd(x, y, 10), abs=1e-12)


def test_factor_vae_votes_by_brute_force():
    from diffrep.ops import metrics as K

    rs = np.random.RandomState(8)
    b = rs.randn(30, 8, 4)
    k = rs.randint(3, size=30)
    g = b.reshape(-1, 4).var(axis=0, ddof=1)
    active = np.array([True, False, True, True])
    votes, _ = K.factor_vae_votes(torch.from_numpy(b), torch.from_numpy(k), torch.from_numpy(g),
                                  torch.from_numpy(active), 3, compressed_index=False)
    want = np.zeros((3, 4), dtype=np.int64)
    idx = np.nonzero(active)[0]
    for t in range(30):
        want[k[t], idx[np.argmin(b[t][:, idx].var(axis=0, ddof=1) / g[idx])]] += 1
    np.testing.assert_array_equal(votes.numpy(), want)


# ---------------------------------------------------------------- CLI: diffrep eval
# ``diffrep eval --model DIR --dataset NAME``: tests/metrics/test_eval_cli.py::test_eval_model_on_dataset
def test_eval_codes_file_writes_json_and_prints_a_table(tmp_path, capsys):
    c, f = _data(300, (3, 2))
    np.savez(tmp_path / "c.npz", codes=c, factors=f)
    out = tmp_path / "res" / "r.json"
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig,sap", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["scores"]["mig"] == pytest.approx(M.mig(c, f)["mig"], abs=1e-12)
    assert {"sap"} <= set(res["scores"]) and "versions" in res["meta"]
    printed = capsys.readouterr().out
    assert "mig" in printed and "sap" in printed


def test_eval_codes_aligned_to_dataset_indices(tmp_path, capsys):
    """``--codes F.npz --dataset NAME``: the rows are dataset items (row i = item i, or ``indices``);
    the factors are the dataset's (digits: scikit-learn's labels, in their order)."""
    from sklearn.datasets import load_digits

    labels = load_digits().target
    rs = np.random.RandomState(9)
    c = np.stack([labels + 0.5 * rs.randn(len(labels)), rs.randn(len(labels))], axis=1)
    np.savez(tmp_path / "all.npz", codes=c)
    out = tmp_path / "r.json"
    assert main(["eval", "--codes", str(tmp_path / "all.npz"), "--dataset", "digits", "--metrics", "mig",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["scores"]["mig"] == pytest.approx(M.mig(c, labels[:, None])["mig"], abs=1e-12)
    assert res["meta"]["dataset"] == "digits"
    idx = rs.choice(len(labels), 600, replace=False)
    np.savez(tmp_path / "sub.npz", codes=c[idx], indices=idx)
    assert main(["eval", "--codes", str(tmp_path / "sub.npz"), "--dataset", "digits", "--metrics", "mig",
                 "--out", str(out), "--overwrite"]) == 0  # an existing --out is refused without it
    assert json.loads(out.read_text())["scores"]["mig"] == pytest.approx(
        M.mig(c[idx], labels[idx, None])["mig"], abs=1e-12)
    capsys.readouterr()
    np.savez(tmp_path / "short.npz", codes=c[:100])  # neither one row per item nor indices
    assert main(["eval", "--codes", str(tmp_path / "short.npz"), "--dataset", "digits", "--metrics", "mig"]) == 2
    assert "has 100 rows but digits has 1797 items" in capsys.readouterr().err
    np.savez(tmp_path / "own.npz", codes=c, factors=labels[:, None])  # its own factors: ambiguous with --dataset
    assert main(["eval", "--codes", str(tmp_path / "own.npz"), "--dataset", "digits", "--metrics", "mig"]) == 2
    assert "has its own ['factors']" in capsys.readouterr().err


class _AttributeData:
    """A CelebA-like dataset: binary attribute targets per item, read without images."""

    def __init__(self, y):
        self.y = y

    def __len__(self):
        return len(self.y)

    def targets(self, indices):
        return self.y[np.asarray(indices)]


def test_index_aligned_binary_targets_serve_as_attributes():
    from diffrep.metrics.suite import align_to_dataset, compute

    z, y = _attributes(300)
    ds = _AttributeData(y)
    idx_tr, idx_te = np.arange(0, 300, 2), np.arange(1, 300, 2)
    arrays = align_to_dataset({"codes": z[idx_tr], "indices": idx_tr, "codes_test": z[idx_te],
                               "indices_test": idx_te}, ds, "attrs")
    np.testing.assert_array_equal(arrays["factors"], y[idx_tr])
    np.testing.assert_array_equal(arrays["factors_test"], y[idx_te])
    np.testing.assert_array_equal(arrays["attributes"], np.concatenate([y[idx_tr], y[idx_te]]))
    r = compute(arrays, ["tad"], tad_variant="exact", source="attrs.npz")
    want = M.tad(np.concatenate([z[idx_tr], z[idx_te]]), arrays["attributes"], variant="exact")
    assert r["tad"] == want["tad"] and r.meta["source"] == "attrs.npz"
    with pytest.raises(ValueError, match="'codes_test' needs an 'indices_test' array"):
        align_to_dataset({"codes": z, "codes_test": z[:5]}, ds)
    with pytest.raises(ValueError, match=r"integer dataset indices in \[0, 300\)"):
        align_to_dataset({"codes": z[:2], "indices": np.array([0, 300])}, ds)
