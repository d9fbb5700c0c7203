"""Faithfulness review of InfoMEC (Hsu et al. 2023, the standalone latent_quantization ``infomec.py``),
DCI informativeness (disentanglement_lib ``dci.py``: mean per-factor ACCURACY of the GBT) and the
Frechet distance (Heusel et al. 2017, Eq. 6) against brute force written here and hand-derived values
(docs/metrics.md#infomec, #dci, #fid).
"""

import math
from collections import Counter

import numpy as np
import pytest
from scipy.special import digamma

from diffrep.metrics import generation as G
from diffrep.metrics.dci import dci
from diffrep.metrics.infomec import infomec


def bf_mi(a, b):
    n = len(a)
    pa, pb, pab = Counter(a), Counter(b), Counter(zip(a, b))
    return sum(c / n * math.log((c / n) / ((pa[x] / n) * (pb[y] / n))) for (x, y), c in pab.items())


def bf_info_m_c(nmi, active):
    """InfoM and InfoC (Hsu et al. 2023, Sec. 4) of an (F, d) NMI matrix over the active latents."""
    f = nmi.shape[0]
    cols = [j for j in range(nmi.shape[1]) if active[j]]
    da = len(cols)
    m = sum(max(nmi[i, j] for i in range(f)) / sum(nmi[i, j] for i in range(f)) for j in cols) / da
    c = sum(max(nmi[i, j] for j in cols) / sum(nmi[i, j] for j in cols) for i in range(f)) / f
    return (m - 1 / f) / (1 - 1 / f), (c - 1 / da) / (1 - 1 / da)


def bf_ross_mi(x, labels, k=10):
    """Ross (2014) kNN MI of a continuous x with discrete labels, as sklearn ``_compute_mi_cd``, by
    brute force: per point of a class with n_c > 1, k_c = min(k, n_c - 1), radius = distance to the
    k_c-th same-class neighbour (one ulp down), m = points of any class within it (itself included);
    points of singleton classes are dropped. Exact distances |x_i - x_j|: sklearn's brute-force
    kNN distances (||a||^2 - 2ab + ||b||^2) can sit an ulp or more above them, and its radius count
    then includes the k-th neighbour (see docs/metrics.md#infomec)."""
    x, labels = list(x), list(labels)
    counts = Counter(labels)
    keep = [i for i in range(len(x)) if counts[labels[i]] > 1]
    n = len(keep)
    ks, ms, ncs = [], [], []
    for i in keep:
        same = sorted(abs(x[i] - x[j]) for j in keep if j != i and labels[j] == labels[i])
        kc = min(k, counts[labels[i]] - 1)
        r = np.nextafter(same[kc - 1], 0)
        ms.append(sum(1 for j in keep if abs(x[i] - x[j]) <= r))
        ks.append(kc)
        ncs.append(counts[labels[i]])
    mi = digamma(n) + np.mean(digamma(ks)) - np.mean(digamma(ncs)) - np.mean(digamma(ms))
    return max(0.0, mi)


def _grid_sources(reps=3):
    """A full factorial grid of two sources (3 x 4 values): their plug-in MI is exactly 0."""
    s = np.array([(a, b) for a in range(3) for b in range(4)] * reps)
    return s


def test_infomec_discrete_latents_hand_values_and_brute_force():
    s = _grid_sources()
    # identity latents: NMI = I, InfoM = InfoC = 1
    r = infomec(s.copy(), s, discrete_latents=True, estimator="sklearn")
    assert r["infom"] == pytest.approx(1.0, abs=1e-12) and r["infoc"] == pytest.approx(1.0, abs=1e-12)
    # exact duplicates (d = 4): every source spreads equally over 2 of 4 latents:
    # InfoC = (1/2 - 1/4) / (1 - 1/4) = 1/3; every latent still serves one source: InfoM = 1
    dup = infomec(np.hstack([s, s]), s, discrete_latents=True, estimator="sklearn")
    assert dup["infoc"] == pytest.approx(1 / 3, abs=1e-12) and dup["infom"] == pytest.approx(1.0, abs=1e-12)
    # a mixed case against brute-force NMI (plug-in MI / H(source), natural logs) and the formulas
    rng = np.random.RandomState(0)
    z = np.stack([s[:, 0] + 3 * (s[:, 1] > 1), rng.randint(0, 3, len(s)), s[:, 1] // 2, np.full(len(s), 5)], 1)
    r = infomec(z, s, discrete_latents=True, estimator="sklearn")
    nmi = np.array([[bf_mi(list(s[:, i]), list(z[:, j])) / bf_mi(list(s[:, i]), list(s[:, i]))
                     for j in range(4)] for i in range(2)])
    np.testing.assert_allclose(np.array(r.meta["nmi"]), nmi, atol=1e-13)
    active = [True, True, True, False]  # range > 0 for discrete latents: the constant one is out
    assert r.meta["num_active"] == 3
    m, c = bf_info_m_c(nmi, active)
    assert r["infom"] == pytest.approx(m, abs=1e-12) and r["infoc"] == pytest.approx(c, abs=1e-12)


def test_knn_mi_equals_brute_force_ross_estimator_on_exact_distances():
    # values on a 1/8 grid: every distance is exact in floating point, so the reference's arithmetic
    # (sklearn's kNN radius, nudged one ulp down, and its radius count) is the estimator's definition;
    # ties in the distances are many, singleton classes are dropped
    import torch

    from diffrep.ops import metrics as ops

    rng = np.random.RandomState(3)
    lab = np.stack([rng.randint(0, 3, 60), rng.randint(0, 4, 60)])
    lab[1, 0] = 9  # a singleton class
    x = np.stack([(lab[0] * 8 + rng.randint(-6, 7, 60)) / 8.0, rng.randint(-20, 21, 60) / 8.0])
    got = ops.knn_mi_cd(torch.from_numpy(x), torch.from_numpy(lab), 10).numpy()
    for j in range(2):
        for i in range(2):
            assert got[j, i] == pytest.approx(bf_ross_mi(x[j], lab[i]), abs=1e-12)
    assert got[0, 0] > 0.3 > got[1, 0]  # the informative latent vs noise on a coarse grid


def test_infomec_continuous_formula_and_activity_mask():
    # InfoM / InfoC from the reported NMI and the activity rule range > max range / 20
    rng = np.random.RandomState(3)
    s = np.stack([rng.randint(0, 3, 70), rng.randint(0, 4, 70)], 1)
    z = np.stack([s[:, 0] + 0.5 * rng.randn(70), 4 * rng.randn(70), s[:, 1] + 0.3 * rng.randn(70),
                  s[:, 1] * 0.1 + 0.02 * rng.randn(70)], 1)
    r = infomec(z, s, seed=5, estimator="sklearn")
    nmi = np.array(r.meta["nmi"])
    ranges = z.max(0) - z.min(0)
    active = ranges > ranges.max() / 20  # the last latent (range ~0.4 vs ~30) is inactive
    assert list(active) == [True, True, True, False] and r.meta["num_active"] == 3
    m, c = bf_info_m_c(nmi, active)
    assert r["infom"] == pytest.approx(m, abs=1e-12) and r["infoc"] == pytest.approx(c, abs=1e-12)


# ----------------------------------------------------------------------------- DCI informativeness
def test_dci_informativeness_is_the_mean_of_per_factor_accuracies():
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.RandomState(1)
    ftr = np.stack([rng.randint(0, 3, 120), rng.randint(0, 2, 120)], 1)
    fte = np.stack([rng.randint(0, 3, 60), rng.randint(0, 2, 60)], 1)
    ctr = ftr + 0.9 * rng.randn(120, 2)
    cte = fte + 0.9 * rng.randn(60, 2)
    r = dci(ctr, ftr, cte, fte, estimator="sklearn", seed=0, n_jobs=1)
    tr, te = [], []
    for j in range(2):
        m = GradientBoostingClassifier(random_state=0).fit(ctr, ftr[:, j])
        tr.append(sum(int(a == b) for a, b in zip(m.predict(ctr), ftr[:, j])) / 120)
        te.append(sum(int(a == b) for a, b in zip(m.predict(cte), fte[:, j])) / 60)
    assert r["dci_informativeness_train"] == pytest.approx(sum(tr) / 2, abs=1e-15)
    assert r["dci_informativeness_test"] == pytest.approx(sum(te) / 2, abs=1e-15)
    assert r["dci_informativeness_test"] < 1.0  # an accuracy (higher is better), not an error


# ----------------------------------------------------------------------------- FID
def test_frechet_distance_2x2_non_commuting_closed_form():
    # for 2 x 2 covariances, S1 S2 has eigenvalues l1, l2 >= 0 and
    # tr (S1 S2)^(1/2) = sqrt(l1) + sqrt(l2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))
    s1 = np.array([[2.0, 0.7], [0.7, 1.0]])
    s2 = np.array([[0.5, -0.2], [-0.2, 3.0]])
    mu1, mu2 = np.array([0.3, -1.0]), np.array([1.0, 0.5])
    cross = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross
    assert G.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-13)
    # and equal to the sqrtm rule of pytorch-fid / clean-fid on a larger non-commuting pair
    from scipy.linalg import sqrtm

    rng = np.random.RandomState(0)
    a, b = rng.randn(9, 6), rng.randn(9, 6)
    s1, s2 = a.T @ a / 9, b.T @ b / 9 + 0.1 * np.eye(6)
    ref = np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2)).real
    assert G.frechet_distance(np.zeros(6), s1, np.zeros(6), s2) == pytest.approx(ref, rel=1e-10)


def test_fid_from_features_uses_ddof1_covariances():
    # two 1-d feature sets: FID = (m1 - m2)^2 + (s1 - s2)^2 with s the ddof-1 standard deviations
    x = np.array([[0.0], [1.0], [2.0], [5.0]])
    y = np.array([[1.0], [1.0], [4.0]])
    sx = math.sqrt(sum((v - 2.0) ** 2 for v in (0, 1, 2, 5)) / 3)
    sy = math.sqrt(sum((v - 2.0) ** 2 for v in (1, 1, 4)) / 2)
    assert G.fid_from_features(x, y) == pytest.approx((2.0 - 2.0) ** 2 + (sx - sy) ** 2, rel=1e-13)


def test_infoc_leaves_out_an_uninformative_source_and_says_so():
    # discrete latents carrying source 0 only; source 1 has NMI 0 with every latent (full grid): the
    # reference's InfoC is 0/0 = NaN; robust mode averages over the other sources and flags source 1
    s = _grid_sources()
    z = np.stack([s[:, 0], s[:, 0] + 10], 1)
    r = infomec(z, s, discrete_latents=True, estimator="sklearn")
    assert r["infoc"] == pytest.approx((1 / 2 - 1 / 2) / (1 - 1 / 2), abs=1e-12)  # source 0 split over 2
    assert any("sources [1]" in f and "InfoC" in f for f in r.flags)
    assert math.isnan(infomec(z, s, discrete_latents=True, mode="parity")["infoc"])


def test_float32_latents_are_standardised_in_float32_as_the_reference():
    # regression: the reference standardises each latent with StandardScaler, which keeps float32;
    # sklearn then casts to float64 and adds its 1e-10 noise. For quantised latents the float32
    # rounding of equal gaps outweighs that noise and decides the neighbour order: a float64
    # standardisation moved the NMI by 5e-3 here.
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.metrics import mutual_info_score
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    s = np.stack([rng.randint(0, 4, 600), rng.randint(0, 3, 600)], 1)
    z = np.stack([np.round(s[:, 0] + 0.7 * rng.randn(600), 1) * 0.37, np.round(rng.randn(600) + s[:, 1], 1) * 1.3,
                  np.round(rng.randn(600), 1)], 1).astype(np.float32)
    want = np.zeros((2, 3))
    for i in range(2):
        for j in range(3):
            zj = StandardScaler().fit_transform(z[:, j][:, None])
            want[i, j] = mutual_info_classif(zj, s[:, i], discrete_features=False, n_neighbors=10, random_state=0)[0]
        want[i] /= mutual_info_score(s[:, i], s[:, i])
    np.testing.assert_allclose(np.array(infomec(z, s, seed=0).meta["nmi"]), want, atol=1e-12)
