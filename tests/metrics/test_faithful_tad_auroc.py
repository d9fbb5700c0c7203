"""Faithfulness review of TAD (Yeats et al. 2022; InfoDiffusion's ``TADMetric``), the latent AUROC
(InfoDiffusion ``PredMetric("Linear")``), the suite's train/test split and the downstream efficiency
ratios against brute force written here: AUROC by counting every (positive, negative) pair (ties 1/2,
Mann-Whitney), binary MI by counting the 2 x 2 joint, the capture filter and the SUM over captured
attributes (docs/metrics.md#tad, #latent-auroc, #downstream-tasks).
"""

import math

import numpy as np
import pytest
import torch

from diffrep.metrics.auroc import latent_auroc
from diffrep.metrics.downstream import efficiency
from diffrep.metrics.tad import tad


# ----------------------------------------------------------------------------- brute force
def bf_auroc(y, z):
    pos = [v for v, t in zip(z, y) if t == 1]
    neg = [v for v, t in zip(z, y) if t == 0]
    s = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return s / (len(pos) * len(neg))


def bf_binary_mi(a, b):
    n = len(a)
    out = 0.0
    for u in (0, 1):
        for v in (0, 1):
            jp = sum(1 for x, w in zip(a, b) if x == u and w == v) / n
            pa = sum(1 for x in a if x == u) / n
            pb = sum(1 for w in b if w == v) / n
            if jp > 0:
                out += jp * math.log(jp / (pa * pb))
    return out


def bf_tad(z, y, float32=False):
    """TAD and captured count: A_ij = max(AUC, 1 - AUC); gap of the two largest per attribute; kept iff
    max >= 0.75 and max_{k != i} MI(y_i, y_k) / H(y_i) <= 0.2; SUM of the kept gaps."""
    a_n, d = y.shape[1], z.shape[1]
    auc = np.array([[max(bf_auroc(y[:, i], z[:, j]), 1 - bf_auroc(y[:, i], z[:, j])) for j in range(d)]
                    for i in range(a_n)])
    if float32:
        auc = auc.astype(np.float32)
    total, captured = (np.float32(0) if float32 else 0.0), 0
    for i in range(a_n):
        row = sorted(auc[i], reverse=True)
        best, second = row[0], (row[1] if d > 1 else 0.0)
        h = bf_binary_mi(y[:, i], y[:, i])
        other = max([bf_binary_mi(y[:, i], y[:, k]) for k in range(a_n) if k != i] + [0.0])
        if best >= 0.75 and other / h <= 0.2:
            total += best - second
            captured += 1
    return float(total), captured


# ----------------------------------------------------------------------------- TAD
def test_tad_hand_derived_single_attribute():
    y = np.array([[0], [0], [1], [1]])
    z = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    # latent 0 separates (AUC 1); latent 1: pairs (0,0) 1/2, (0,1) 0, (1,0) 1, (1,1) 1/2 -> 1/2
    assert bf_auroc(y[:, 0], z[:, 1]) == 0.5
    r = tad(z, y, variant="exact")
    assert r["tad"] == pytest.approx(0.5, abs=1e-15) and r["tad_attributes_captured"] == 1.0
    # a flipped latent counts as well: AUC(-z) = 1 - AUC(z)
    r2 = tad(np.stack([-z[:, 0], z[:, 1]], 1), y, variant="exact")
    assert r2["tad"] == pytest.approx(0.5, abs=1e-15)


def test_tad_correlated_attributes_are_filtered_and_the_score_is_a_sum():
    rng = np.random.RandomState(0)
    y1 = rng.randint(0, 2, 200)
    y3 = rng.randint(0, 2, 200)
    y = np.stack([y1, y1, y3], 1)  # attributes 0 and 1 identical: MI / H = 1 > 0.2, neither captured
    z = np.stack([y1 + 0.1 * rng.randn(200), y3 + 0.1 * rng.randn(200), rng.randn(200)], 1)
    r = tad(z, y, variant="exact")
    want, cap = bf_tad(z, y)
    assert cap == 1 and r["tad_attributes_captured"] == 1.0
    assert r["tad"] == pytest.approx(want, abs=1e-12)
    # two independent attributes, each with its own latent: the two gaps add up (a sum, not a mean)
    y2 = np.stack([y1, y3], 1)
    r2 = tad(z, y2, variant="exact")
    want2, cap2 = bf_tad(z, y2)
    assert cap2 == 2 and r2["tad"] == pytest.approx(want2, abs=1e-12)
    parts = [tad(z, y2[:, [i]], variant="exact")["tad"] for i in range(2)]
    assert r2["tad"] == pytest.approx(sum(parts), abs=1e-12) and min(parts) > 0.4


def test_tad_exact_variant_equals_brute_force_with_ties():
    rng = np.random.RandomState(4)
    y = (rng.rand(60, 3) < [0.3, 0.5, 0.7]).astype(int)
    z = np.round(np.hstack([y + 0.8 * rng.randn(60, 3), rng.randn(60, 2)]), 1)  # ties in every latent
    r = tad(z, y, variant="exact")
    want, cap = bf_tad(z, y)
    assert r["tad"] == pytest.approx(want, abs=1e-12) and r["tad_attributes_captured"] == cap
    auc = np.array(r.meta["auroc_matrix"])
    for i in range(3):
        for j in range(5):
            a = bf_auroc(y[:, i], z[:, j])
            assert auc[i, j] == pytest.approx(max(a, 1 - a), abs=1e-14)


def test_tad_infodiffusion_equals_brute_force_on_the_training_folds_exactly():
    # the reference: KFold(5, shuffle, 0); StandardScaler fit on the train split; latents as float32;
    # TAD on the TRAINING split; AUROCs stored in a float32 tensor; mean and std (ddof 0) over folds
    from sklearn.model_selection import KFold

    rng = np.random.RandomState(7)
    y = (rng.rand(150, 3) < [0.4, 0.5, 0.3]).astype(int)
    z = np.hstack([y * 0.9 + 0.5 * rng.randn(150, 3), rng.randn(150, 2)]) * [1, 3, 0.2, 1, 5] + 2
    tads, caps = [], []
    for tr, _ in KFold(5, shuffle=True, random_state=0).split(z):
        zt = z[tr]
        zs = ((zt - zt.mean(0)) / zt.std(0)).astype(np.float32)
        t, c = bf_tad(zs, y[tr], float32=True)
        tads.append(t)
        caps.append(c)
    r = tad(z, y, variant="infodiffusion")
    assert r.meta["fold_tad"] == pytest.approx(tads, abs=1e-6)
    assert r["tad"] == pytest.approx(float(np.mean(tads)), abs=1e-6)
    assert r["tad_attributes_captured"] == np.mean(caps)
    assert r["tad_std"] == pytest.approx(float(np.std(tads)), abs=1e-6)


def test_tad_infodiffusion_keeps_the_reference_float32_arithmetic():
    # regression: the reference's AUROC tensor is float32 (InfoDiffusion TADMetric: aurocs_all =
    # torch.ones(...)); gaps and their sum are float32. A float64 matrix gave a different last bits
    rng = np.random.RandomState(9)
    y = (rng.rand(113, 2) < 0.45).astype(int)
    z = np.hstack([y + 0.6 * rng.randn(113, 2), rng.randn(113, 3)])
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    for f, (tr, _) in enumerate(KFold(5, shuffle=True, random_state=0).split(z)):
        a = torch.FloatTensor(StandardScaler().fit(z[tr]).transform(z[tr]))
        yt = y[tr]
        auc = torch.ones((2, 5)) * 0.5
        for i in range(2):
            for j in range(5):
                auc[i, j] = max(roc_auc_score(yt[:, i], a.numpy()[:, j]), roc_auc_score(yt[:, i], -a.numpy()[:, j]))
        mx, arg = torch.max(auc, dim=1)
        diffs = torch.zeros(2)
        for i in range(2):
            nxt = auc[i].clone()
            nxt[arg[i]] = 0.0
            diffs[i] = mx[i] - nxt.max()
        keep = torch.tensor(tad(z, y, variant="infodiffusion").meta["folds"][f]["captured"])
        assert tad(z, y, variant="infodiffusion").meta["fold_tad"][f] == diffs[keep].sum().item()


def test_tad_constant_attribute_is_skipped_in_robust_mode():
    rng = np.random.RandomState(1)
    y = np.stack([rng.randint(0, 2, 80), np.zeros(80, int)], 1)
    z = np.stack([y[:, 0] + 0.1 * rng.randn(80), rng.randn(80)], 1)
    r = tad(z, y, variant="exact")
    want, _ = bf_tad(z, y[:, :1])
    assert r["tad"] == pytest.approx(want, abs=1e-12) and r["tad_attributes_captured"] == 1.0
    assert any("[1]" in f for f in r.flags)


# ----------------------------------------------------------------------------- latent AUROC
def test_latent_auroc_equals_pairwise_auroc_of_the_reference_classifier():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    rng = np.random.RandomState(2)
    y = (rng.rand(100, 2) < [0.5, 0.35]).astype(int)
    z = np.hstack([y + rng.randn(100, 2), rng.randn(100, 2)]) * [2, 1, 1, 4]
    folds = []
    for tr, te in KFold(5, shuffle=True, random_state=0).split(z):
        mu, sd = z[tr].mean(0), z[tr].std(0)
        xtr, xte = (z[tr] - mu) / sd, (z[te] - mu) / sd
        vals = [bf_auroc(y[te, a], LogisticRegression().fit(xtr, y[tr, a]).predict_proba(xte)[:, 1]) for a in range(2)]
        folds.append(sum(vals) / 2)
    r = latent_auroc(z, y)
    assert r.meta["fold_means"] == pytest.approx(folds, abs=1e-9)
    assert r["latent_auroc"] == pytest.approx(np.mean(folds), abs=1e-9)
    assert r["latent_auroc_std"] == pytest.approx(np.std(folds), abs=1e-9)


# ----------------------------------------------------------------------------- downstream, suite
def test_statistical_efficiency_is_acc_at_100_and_1000_over_acc_at_the_largest_size():
    s = {"10:mean_test_accuracy": 0.2, "100:mean_test_accuracy": 0.45, "1000:mean_test_accuracy": 0.8,
         "10000:mean_test_accuracy": 0.9}
    e = efficiency(s)
    assert e == {"efficiency_100": pytest.approx(0.5, abs=1e-15), "efficiency_1000": pytest.approx(0.8 / 0.9, abs=1e-15)}


@pytest.mark.parametrize("n,train", [(15000, 10000), (300, 200), (30, 20), (10000, 6667), (7, 5)])
def test_suite_split_is_ceil_of_two_thirds(n, train):
    # regression: 1 - 1/3 is one ulp above 2/3, so ceil(N (1 - 1/3)) gave 10001/4999 for 15000 rows
    from diffrep.metrics.suite import _split

    z = {"codes": np.arange(n, dtype=float)[:, None]}

    class Z(dict):
        files = property(lambda self: list(self))

    tr, te = _split(Z(z), "codes", "codes_test", 1 / 3)
    assert len(tr) == train == math.ceil(n * 2 / 3 - 1e-9) and len(te) == n - train
    assert tr[-1, 0] == train - 1  # the first rows train, the last ones test


def test_tad_tied_best_latents_give_a_zero_gap():
    # the argmax entry is zeroed and the max taken again: a duplicated best latent is its own runner-up
    rng = np.random.RandomState(6)
    y = rng.randint(0, 2, (120, 1))
    z0 = y[:, 0] + 0.2 * rng.randn(120)
    r = tad(np.stack([z0, rng.randn(120), z0], 1), y, variant="exact")
    assert r["tad"] == 0.0 and r["tad_attributes_captured"] == 1.0  # captured (max >= 0.75), gap 0
    assert r.meta["max_auroc"][0] == r.meta["runner_up"][0] > 0.75


def _near_duplicates():
    """float32 latents where 60 points sit one float32 ulp above 60 others."""
    rng = np.random.RandomState(0)
    y = rng.randint(0, 2, (200, 2))
    z = (y * 1.0 + rng.randn(200, 2)).astype(np.float32)
    idx = rng.choice(200, 120, replace=False)
    z[idx[:60]] = np.nextafter(z[idx[60:]], np.float32(np.inf))
    return z, y


def test_float32_latents_are_standardised_in_float32_for_tad_and_latent_auroc():
    # regression: InfoDiffusion standardises with StandardScaler, which keeps float32 latents in
    # float32 (two roundings); standardising in float64 and rounding once split or merged points one
    # ulp apart and moved AUROCs by ~1e-4
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    z, y = _near_duplicates()
    tads, folds = [], []
    for tr, te in KFold(5, shuffle=True, random_state=0).split(z):
        sc = StandardScaler().fit(z[tr])
        a = sc.transform(z[tr])
        assert a.dtype == np.float32
        tads.append(bf_tad(a, y[tr], float32=True)[0])
        b = sc.transform(z[te])
        folds.append(np.mean([bf_auroc(y[te, i], LogisticRegression().fit(a, y[tr, i]).predict_proba(b)[:, 1])
                              for i in range(2)]))
    r = tad(z, y, variant="infodiffusion")
    assert r.meta["fold_tad"] == pytest.approx(tads, abs=1e-7)
    aucs = [f["max_auroc"] for f in r.meta["folds"]]
    sk = []
    for tr, _ in KFold(5, shuffle=True, random_state=0).split(z):
        a = StandardScaler().fit(z[tr]).transform(z[tr])
        sk.append([max(max(bf_auroc(y[tr, i], a[:, j]), 1 - bf_auroc(y[tr, i], a[:, j])) for j in range(2))
                   for i in range(2)])
    np.testing.assert_allclose(np.array(aucs), np.array(sk, dtype=np.float32), atol=0)
    assert latent_auroc(z, y).meta["fold_means"] == pytest.approx(folds, abs=1e-12)


# ----------------------------------------------------------------------------- gaps the mutation run showed
def test_label_mi_matrix_and_filter_values_equal_the_references_float32_arithmetic():
    # InfoDiffusion / DisDiff: p_i = count / n and joints in float32, terms FF, FT, TF, TT added in that
    # order into a float32 matrix; ent_red_prop = 1 - (H_i - max_{k != i} MI_ik) / H_i
    from diffrep.metrics.tad import binary_mi_matrix

    rng = np.random.RandomState(8)
    base = rng.randint(0, 2, 300)
    y = np.stack([base, base ^ (rng.rand(300) < 0.1), rng.randint(0, 2, 300), (rng.rand(300) < 0.07).astype(int)], 1)
    t = torch.from_numpy(y).to(torch.int32)
    nt = 1 - t
    want = torch.zeros((4, 4))
    for i in range(4):
        pi1 = t[:, i].sum() / t.shape[0]
        for j in range(4):
            pj1 = t[:, j].sum() / t.shape[0]
            for a, b, pa, pb in ((nt[:, i], nt[:, j], 1.0 - pi1, 1.0 - pj1), (nt[:, i], t[:, j], 1.0 - pi1, pj1),
                                 (t[:, i], nt[:, j], pi1, 1.0 - pj1), (t[:, i], t[:, j], pi1, pj1)):
                jp = torch.logical_and(a, b).sum() / a.numel()
                if jp != 0 and pa != 0 and pb != 0:
                    want[i][j] += jp * torch.log(jp / (pa * pb))
    got = binary_mi_matrix(torch.from_numpy(y).to(torch.bool))
    assert got.dtype == torch.float32 and torch.equal(got, want)
    for i in range(4):  # and the nats values by counting
        for j in range(4):
            assert float(got[i, j]) == pytest.approx(bf_binary_mi(y[:, i], y[:, j]), abs=1e-6)
    z = np.hstack([y + 0.3 * rng.randn(300, 4), rng.randn(300, 1)])
    r = tad(z, y, variant="exact")
    h = [bf_binary_mi(y[:, i], y[:, i]) for i in range(4)]
    for i in range(4):
        other = max(bf_binary_mi(y[:, i], y[:, k]) for k in range(4) if k != i)
        assert r.meta["ent_red_prop"][i] == pytest.approx(other / h[i], abs=1e-5)
    assert r.meta["captured"] == [False, False, True, True]  # 0 and 1 share 60% of their entropy
    auc = np.array(r.meta["auroc_matrix"])
    srt = np.sort(auc, axis=1)
    assert r.meta["runner_up"] == pytest.approx(srt[:, -2].tolist(), abs=1e-12)
    assert r["tad"] == pytest.approx(float((srt[2:, -1] - srt[2:, -2]).sum()), abs=1e-12)


def test_auroc_of_exactly_075_is_captured():
    # y = 0 0 1 1, latent 0 = 0 2 1 3: 3 of the 4 (positive, negative) pairs ordered -> AUROC 3/4,
    # captured (>= 0.75); latent 1 gives 1/2, so TAD = 1/4
    y = np.array([[0], [0], [1], [1]])
    z = np.array([[0.0, 0.0], [2.0, 1.0], [1.0, 0.0], [3.0, 1.0]])
    assert bf_auroc(y[:, 0], z[:, 0]) == 0.75 and bf_auroc(y[:, 0], z[:, 1]) == 0.5
    r = tad(z, y, variant="exact")
    assert r["tad_attributes_captured"] == 1.0 and r["tad"] == pytest.approx(0.25, abs=1e-15)


def test_infodiffusion_float64_latents_are_standardised_in_float64():
    # a large offset: float64 latents must not be cast to float32 before standardising (the values
    # 1e8 + u would collapse onto a grid of 8)
    from sklearn.model_selection import KFold

    rng = np.random.RandomState(12)
    y = rng.randint(0, 2, (100, 2))
    z = 1e8 + np.hstack([y + rng.randn(100, 2), rng.randn(100, 1)])
    tads = []
    for tr, _ in KFold(5, shuffle=True, random_state=0).split(z):
        zt = z[tr]
        tads.append(bf_tad(((zt - zt.mean(0)) / zt.std(0)).astype(np.float32), y[tr], float32=True)[0])
    assert tad(z, y, variant="infodiffusion").meta["fold_tad"] == pytest.approx(tads, abs=1e-6)


def test_infodiffusion_constant_attribute_in_the_folds_is_flagged_not_raised():
    rng = np.random.RandomState(13)
    y = np.stack([rng.randint(0, 2, 60), np.ones(60, int)], 1)
    z = np.stack([y[:, 0] + 0.2 * rng.randn(60), rng.randn(60)], 1)
    r = tad(z, y, variant="infodiffusion")
    assert r["tad_attributes_captured"] == 1.0 and any("[1]" in f for f in r.flags)
    with pytest.raises(ValueError):
        tad(z, y, variant="infodiffusion", mode="parity")


def bf_sweep_auroc(y, z, step):
    """DisDiff / NashAE threshold sweep for one (attribute, latent) pair, float32 thresholds
    t (max - min) + min for t in arange(0, 1.0001, step); per direction (z >= thr, z < thr) the
    (FPR, TPR) points sorted per column and the right-endpoint sum; the better direction; a latent
    with range <= 0.2 keeps 0.5."""
    z = torch.from_numpy(np.asarray(z, dtype=np.float32))
    ma, mi = z.max(), z.min()
    if not float(ma - mi) > 0.2:
        return 0.5
    pos = int(y.sum())
    neg = len(y) - pos
    best = -1.0
    for ge in (True, False):
        pts = []
        for t in torch.arange(0.0, 1.0001, step=step):
            thr = t * (ma - mi) + mi
            pred = [(float(v) >= float(thr)) if ge else (float(v) < float(thr)) for v in z]
            tp = sum(1 for p, lab in zip(pred, y) if p and lab == 1)
            fp = sum(1 for p, lab in zip(pred, y) if p and lab == 0)
            pts.append((fp / neg, tp / pos))
        fprs = sorted(p[0] for p in pts)
        tprs = sorted(p[1] for p in pts)
        best = max(best, sum(tprs[k] * (fprs[k] - fprs[k - 1]) for k in range(1, len(pts))))
    return best


@pytest.mark.parametrize("variant,step", [("disdiff", 0.1), ("nashae", 0.01)])
def test_sweep_variants_equal_brute_force(variant, step):
    rng = np.random.RandomState(14)
    y = (rng.rand(80, 2) < [0.4, 0.6]).astype(int)
    # latent 2 (range ~0.6) is evaluated; latent 3 (range <= 0.2) keeps 0.5
    z = np.hstack([y + 0.5 * rng.randn(80, 2), 0.6 * rng.rand(80, 1) + 0.1 * y[:, :1], 0.02 * rng.randn(80, 1)])
    r = tad(z, y, variant=variant)
    auc = np.array(r.meta["auroc_matrix"])
    assert 0.2 < np.ptp(z[:, 2]) < 1.0 and np.ptp(z[:, 3]) <= 0.2
    for i in range(2):
        for j in range(4):
            assert auc[i, j] == pytest.approx(bf_sweep_auroc(y[:, i], z[:, j], step), abs=1e-6)
    assert (auc[:, 3] == 0.5).all() and auc[0, 2] != 0.5 and r.meta["thresholds"] == {"disdiff": 11, "nashae": 101}[variant]
    srt = np.sort(auc, axis=1)
    keep = np.array(r.meta["captured"])
    assert r["tad"] == pytest.approx(float((srt[keep, -1] - srt[keep, -2]).sum()), abs=1e-12)
