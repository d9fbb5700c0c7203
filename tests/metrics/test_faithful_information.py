"""Faithfulness review of the histogram-MI metrics (MIG, modularity), SAP and DCI's formulas against
independent brute force written here (plain Python loops: no np.histogram, no sklearn), and hand-derived
cases (docs/metrics.md#mig, #modularity-and-explicitness, #sap, #dci).

References: disentanglement_lib ``utils._histogram_discretize`` (per code: ``np.digitize(x,
np.histogram(x, 20)[1][:-1])``, edges linspace(min, max, 21) in the codes' dtype, a constant code widened
to (c - 0.5, c + 0.5)), ``discrete_mutual_info`` / ``discrete_entropy`` (plug-in, natural log),
``_compute_mig`` (Chen et al. 2018, Eq. 12: gap of the two largest MIs over H(v_k)), ``modularity``
(Ridgeway & Mozer 2018, Eq. 2), ``sap_score`` (Kumar et al. 2018, Sec. 3), ``dci`` (Eastwood & Williams
2018, Eqs. 1-2 with the library's 1e-11 and row/column weights).
"""

import math
from collections import Counter

import numpy as np
import pytest

from diffrep.metrics.dci import completeness_from_importance, disentanglement_from_importance
from diffrep.metrics.mig import discretised_mi, mig
from diffrep.metrics.modularity import modularity_explicitness, modularity_from_mi
from diffrep.metrics.sap import sap, sap_from_matrix


# ----------------------------------------------------------------------------- brute force
def bf_bins(col, num_bins=20, f32=False):
    """Labels 1..B of one code: equal-width edges lo + k (hi - lo) / B, k < B, in the code's dtype
    (numpy >= 2 computes linspace in float32 for float32 input: k * step, then + lo, each rounded);
    a value v gets the largest k with v >= edge_k, plus 1."""
    if f32:
        vals = [np.float32(v) for v in col]
        lo, hi = min(vals), max(vals)
        if lo == hi:
            lo, hi = np.float32(lo - np.float32(0.5)), np.float32(hi + np.float32(0.5))
        step = np.float32(np.float32(hi - lo) / np.float32(num_bins))
        edges = [np.float32(np.float32(np.float32(k) * step) + lo) for k in range(num_bins)]
    else:
        vals = [float(v) for v in col]
        lo, hi = min(vals), max(vals)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        step = (hi - lo) / num_bins
        edges = [k * step + lo for k in range(num_bins)]
    out = []
    for v in vals:
        b = 0
        for k, e in enumerate(edges):
            if v >= e:
                b = k + 1
        out.append(b)
    return out


def bf_mi(a, b):
    """Plug-in mutual information of two label sequences, in nats."""
    n = len(a)
    pa, pb, pab = Counter(a), Counter(b), Counter(zip(a, b))
    return sum(c / n * math.log((c / n) / ((pa[x] / n) * (pb[y] / n))) for (x, y), c in pab.items())


def bf_entropy(a):
    n = len(a)
    return -sum(c / n * math.log(c / n) for c in Counter(a).values())


def bf_mi_matrix(codes, factors, f32=False):
    labels = [bf_bins(codes[:, i], f32=f32) for i in range(codes.shape[1])]
    fac = [list(factors[:, j]) for j in range(factors.shape[1])]
    return np.array([[bf_mi(lab, f) for f in fac] for lab in labels]), np.array([bf_entropy(f) for f in fac])


def bf_mig(codes, factors, f32=False):
    m, h = bf_mi_matrix(codes, factors, f32)
    gaps = []
    for j in range(m.shape[1]):
        col = sorted(m[:, j], reverse=True)
        gaps.append((col[0] - col[1]) / h[j])
    return sum(gaps) / len(gaps)


def bf_modularity(m):
    per = []
    for row in m:
        sq = [v * v for v in row]
        top = max(sq)
        if top == 0:
            per.append(0.0)
            continue
        per.append(1.0 - (sum(sq) - top) / (top * (len(row) - 1)))
    return sum(per) / len(per)


def bf_entropy_base(p, base):
    s = sum(p)
    return -sum(v / s * math.log(v / s) for v in p if v > 0) / math.log(base)


def bf_dci(r):
    """(D, C) of an importance matrix r (codes, factors): 1e-11 added before normalising, entropies
    in base F (rows) and base d (columns), weights row/column sums over the total."""
    d, f = r.shape
    tot = r.sum()
    dis = sum((1 - bf_entropy_base([v + 1e-11 for v in r[i]], f)) * (r[i].sum() / tot if tot else 1 / d)
              for i in range(d))
    com = sum((1 - bf_entropy_base([v + 1e-11 for v in r[:, j]], d)) * (r[:, j].sum() / tot if tot else 1 / f)
              for j in range(f))
    return dis, com


# ----------------------------------------------------------------------------- MIG
def test_mig_hand_derived_half_and_the_mi_is_in_nats():
    # factor uniform on 4 values; code 0 = the factor, code 1 = the factor // 2: MI ln 4 and ln 2,
    # H = ln 4, so MIG = (ln 4 - ln 2) / ln 4 = 1/2 exactly (each distinct value lands in its own bin)
    y = np.repeat(np.arange(4), 5)[:, None]
    codes = np.stack([y[:, 0] * 1.0, (y[:, 0] // 2) * 1.0], 1)
    m, h = discretised_mi(*_t(codes, y))
    assert m[0, 0].item() == pytest.approx(math.log(4), abs=1e-14)
    assert m[1, 0].item() == pytest.approx(math.log(2), abs=1e-14)
    assert h[0].item() == pytest.approx(math.log(4), abs=1e-14)
    assert mig(codes, y)["mig"] == pytest.approx(0.5, abs=1e-14)


def _t(codes, factors):
    import torch
    return torch.as_tensor(codes, dtype=torch.float64), torch.as_tensor(factors, dtype=torch.int64)


def test_mig_and_mi_matrix_equal_brute_force_on_random_codes():
    rng = np.random.RandomState(11)
    for trial in range(4):
        f = np.stack([rng.randint(0, 3, 60), rng.randint(0, 5, 60)], 1)
        codes = np.stack([f[:, 0] + 0.4 * rng.randn(60), rng.randn(60), f[:, 1] * 2.0 + rng.randn(60)], 1)
        if trial == 1:
            codes[:, 1] = 3.25  # a constant code: one bin, MI 0
        m, h = discretised_mi(*_t(codes, f))
        bm, bh = bf_mi_matrix(codes, f)
        np.testing.assert_allclose(m.numpy(), bm, atol=1e-13)
        np.testing.assert_allclose(h.numpy(), bh, atol=1e-13)
        assert mig(codes, f)["mig"] == pytest.approx(bf_mig(codes, f), abs=1e-13)


def test_mig_discretises_each_code_on_its_own_range():
    # an outlier in code 1 (or rescaling it) changes code 1's bins only: code 0's MI is untouched
    rng = np.random.RandomState(2)
    f = rng.randint(0, 4, (80, 1))
    codes = np.stack([f[:, 0] + 0.3 * rng.randn(80), f[:, 0] + 0.3 * rng.randn(80)], 1)
    m0, _ = discretised_mi(*_t(codes, f))
    moved = codes.copy()
    moved[0, 1] = 1e3
    m1, _ = discretised_mi(*_t(moved, f))
    assert m1[0, 0].item() == m0[0, 0].item()
    assert m1[1, 0].item() < m0[1, 0].item()


def test_mig_tie_between_the_two_best_codes_is_a_zero_gap():
    y = np.repeat(np.arange(3), 4)[:, None]
    codes = np.stack([y[:, 0] * 1.0, y[:, 0] * -2.0 + 7], 1)  # both carry all of the factor
    assert mig(codes, y)["mig"] == 0.0


def test_mig_constant_code_and_constant_factor():
    y = np.stack([np.repeat(np.arange(2), 5), np.zeros(10, int)], 1)
    codes = np.stack([y[:, 0] * 1.0, np.full(10, 4.0)], 1)
    assert bf_bins(codes[:, 1]) == [11] * 10  # range widened to (c - 0.5, c + 0.5): bin 11 of 20
    r = mig(codes, y)
    assert r["mig"] == pytest.approx(1.0, abs=1e-14)  # the constant factor is left out (robust)
    assert r.meta["per_factor_gap"][0] == pytest.approx(1.0, abs=1e-14)
    assert math.isnan(mig(codes, y, mode="parity")["mig"])  # 0 / 0 as in the reference


def _grid_float32_case():
    """Codes on a 0.05 grid in float32 whose bins differ between float32 edges (what np.histogram
    uses for a float32 code) and float64 edges."""
    rng = np.random.RandomState(0)
    for _ in range(200):
        f = rng.randint(0, 5, (60, 2))
        c = (f + 0.05 * rng.randint(-6, 7, (60, 2))).astype(np.float32)
        b32 = [bf_bins(c[:, i], f32=True) for i in range(2)]
        b64 = [bf_bins(c[:, i].astype(np.float64)) for i in range(2)]
        if b32 != b64:
            return c, f
    raise AssertionError("no discriminating case found")


def test_mig_of_float32_codes_uses_float32_edges_as_np_histogram():
    # disentanglement_lib discretises the codes as the representation function returns them
    # (float32 for a float32 network): np.histogram's edges are then float32. A float32 code value
    # sitting on a rounded-down edge goes to the upper bin there and to the lower one in float64.
    c, f = _grid_float32_case()
    want32, want64 = bf_mig(c, f, f32=True), bf_mig(c.astype(np.float64), f)
    assert want32 != want64
    assert mig(c, f)["mig"] == pytest.approx(want32, abs=1e-13)
    assert mig(c.astype(np.float64), f)["mig"] == pytest.approx(want64, abs=1e-13)
    import torch
    assert mig(torch.from_numpy(c), torch.from_numpy(f))["mig"] == pytest.approx(want32, abs=1e-13)


# ----------------------------------------------------------------------------- modularity
def test_modularity_end_to_end_equals_brute_force():
    rng = np.random.RandomState(5)
    ftr = np.stack([rng.randint(0, 3, 90), rng.randint(0, 4, 90)], 1)
    ctr = np.stack([ftr[:, 0] + 0.3 * rng.randn(90), ftr[:, 1] + 0.3 * rng.randn(90), rng.randn(90),
                    np.full(90, -1.0)], 1)  # a noise code and a dead code (modularity 0, counted)
    r = modularity_explicitness(ctr, ftr, ctr, ftr, estimator="sklearn")
    m, _ = bf_mi_matrix(ctr, ftr)
    assert r["modularity"] == pytest.approx(bf_modularity(m), abs=1e-13)
    # float32 codes are discretised with float32 edges as well
    c32, f32 = _grid_float32_case()
    r32 = modularity_explicitness(c32, f32, c32, f32, estimator="sklearn")
    assert r32["modularity"] == pytest.approx(bf_modularity(bf_mi_matrix(c32, f32, f32=True)[0]), abs=1e-13)


def test_modularity_hand_values():
    # one code shared equally by two factors: delta = (2a^2 - a^2) / (a^2 (2 - 1)) = 1 -> 0
    assert modularity_from_mi(np.array([[0.3, 0.3]])) == 0.0
    # theta = 0.4, other 0.2, F = 3: delta = (0.04 + 0) / (0.16 * 2) = 1/8
    assert modularity_from_mi(np.array([[0.2, 0.4, 0.0]])) == pytest.approx(1 - 1 / 8, abs=1e-15)
    rng = np.random.RandomState(0)
    m = rng.rand(5, 3)
    m[2] = 0
    assert modularity_from_mi(m) == pytest.approx(bf_modularity(m), abs=1e-14)


# ----------------------------------------------------------------------------- SAP
def test_sap_difference_of_the_top_two_and_ties():
    s = np.array([[0.9, 0.2], [0.5, 0.8], [0.1, 0.1]])
    assert sap_from_matrix(s) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.2)) / 2, abs=1e-15)
    assert sap_from_matrix(np.array([[0.5], [0.5], [0.1]])) == 0.0


def test_sap_continuous_matrix_equals_brute_force_on_the_train_split():
    rng = np.random.RandomState(3)
    ftr = np.stack([rng.randint(0, 4, 50), rng.randint(0, 2, 50)], 1)
    ctr = np.stack([ftr[:, 0] + rng.randn(50), rng.randn(50), np.full(50, 2.0)], 1)
    s = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            x, y = ctr[:, i], ftr[:, j].astype(float)
            mx, my = sum(x) / 50, sum(y) / 50
            cov = sum((a - mx) * (b - my) for a, b in zip(x, y)) / 49
            vx = sum((a - mx) ** 2 for a in x) / 49
            vy = sum((b - my) ** 2 for b in y) / 49
            s[i, j] = cov ** 2 / (vx * vy) if vx > 1e-12 else 0.0
    # the test split does not enter continuous mode: pass a different one
    r = sap(ctr, ftr, rng.randn(7, 3), rng.randint(0, 2, (7, 2)), continuous_factors=True)
    np.testing.assert_allclose(np.array(r.meta["score_matrix"]), s, atol=1e-13)
    assert r["sap"] == pytest.approx(sap_from_matrix(s), abs=1e-13)


def test_sap_discrete_is_plain_test_accuracy():
    # code 0 separates the binary factor on both splits (accuracy 1); code 1 is constant: S = 0 in
    # robust mode (the 1e-12 variance guard) -> SAP = 1 - 0
    ytr = np.repeat([0, 1], 20)[:, None]
    yte = np.array([0, 1, 1, 1, 1, 1, 0, 1])[:, None]  # unbalanced test split: plain accuracy
    ctr = np.stack([ytr[:, 0] * 20.0 - 10, np.ones(40)], 1)
    cte = np.stack([yte[:, 0] * 20.0 - 10, np.ones(8)], 1)
    r = sap(ctr, ytr, cte, yte)
    assert r.meta["score_matrix"] == [[1.0], [0.0]] and r["sap"] == 1.0
    cte_bad = cte.copy()
    cte_bad[0, 0] = 10.0  # one test point on the wrong side: accuracy 7/8 (not balanced: (1 + 6/7)/2)
    assert sap(ctr, ytr, cte_bad, yte).meta["score_matrix"][0][0] == pytest.approx(7 / 8, abs=1e-15)


# ----------------------------------------------------------------------------- DCI formulas
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dci_formulas_equal_brute_force(seed):
    rng = np.random.RandomState(seed)
    r = rng.rand(4, 3) ** 3
    r[1] = 0  # an unused code
    d, c = bf_dci(r)
    assert disentanglement_from_importance(r) == pytest.approx(d, abs=1e-12)
    assert completeness_from_importance(r) == pytest.approx(c, abs=1e-12)


def test_dci_hand_derived_matrix():
    # code 0 -> factor 0 only (D_0 = 1), code 1 split equally (D_1 = 1 - log2(2) = 0); rows weigh 1/2
    r = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert disentanglement_from_importance(r) == pytest.approx(0.5, abs=1e-9)
    # factor 0: (2/3, 1/3) over 2 codes -> C_0 = 1 - H_2(2/3, 1/3); factor 1: (0, 1) -> 1; weights 3/4, 1/4
    h = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert completeness_from_importance(r) == pytest.approx(0.75 * (1 - h) + 0.25, abs=1e-9)


def test_evaluate_bins_a_float32_representation_with_float32_edges():
    # evaluate() keeps float64 copies of the codes; for MIG and modularity it hands the float32
    # values back as float32 when the representation returned float32, as the reference would see them
    from diffrep.metrics.protocols import _Encoder, evaluate, generate_batch_factor_code

    from helpers import TinyGroundTruth

    data = TinyGroundTruth((21, 4))

    def rep(x):  # code 0 = 0.7 v_0 in float32: 10 of its 21 values sit on float32-rounded edges
        x = np.asarray(x)
        return np.stack([x[:, 0] * 0.7, x[:, 1] - 0.5 * x[:, 0]], 1).astype(np.float32)

    c, f = generate_batch_factor_code(_Encoder(data, rep, cache=False), 200, np.random.RandomState(0))
    want32, want64 = bf_mig(c.astype(np.float32), f, f32=True), bf_mig(c, f)
    assert want32 != want64
    r = evaluate(data, rep, metrics=("mig",), num_train=200, num_test=50)
    assert r["mig"] == pytest.approx(want32, abs=1e-13)
    r64 = evaluate(data, lambda x: rep(x).astype(np.float64), metrics=("mig",), num_train=200, num_test=50)
    assert r64["mig"] == pytest.approx(want64, abs=1e-13)


# ----------------------------------------------------------------------------- gaps the mutation run showed
def test_mig_with_another_bin_count_equals_brute_force():
    rng = np.random.RandomState(21)
    f = np.stack([rng.randint(0, 3, 70), rng.randint(0, 4, 70)], 1)
    codes = np.stack([f[:, 0] + 0.5 * rng.randn(70), f[:, 1] + 0.5 * rng.randn(70), rng.randn(70)], 1)
    labels = [bf_bins(codes[:, i], num_bins=5) for i in range(3)]
    m = np.array([[bf_mi(lab, list(f[:, j])) for j in range(2)] for lab in labels])
    h = [bf_entropy(list(f[:, j])) for j in range(2)]
    want = np.mean([(sorted(m[:, j])[-1] - sorted(m[:, j])[-2]) / h[j] for j in range(2)])
    r = mig(codes, f, num_bins=5)
    assert r["mig"] == pytest.approx(want, abs=1e-13) and r.meta["num_bins"] == 5
    assert r["mig"] != pytest.approx(mig(codes, f)["mig"], abs=1e-6)  # 20 bins give another value


def test_mig_guards_report_what_they_did():
    y = np.stack([np.repeat(np.arange(2), 5), np.zeros(10, int), np.full(10, 3)], 1)
    codes = np.stack([y[:, 0] * 1.0, np.full(10, 4.0), np.arange(10.0)], 1)
    r = mig(codes, y)
    assert any("constant factors [1, 2]" in f for f in r.flags)
    assert any("constant codes [1]" in f for f in r.flags)
    # every factor constant: nothing to average -> 0, flagged
    allc = mig(codes, y[:, 1:])
    assert allc["mig"] == 0.0 and any("constant factors [0, 1]" in f for f in allc.flags)
    assert math.isnan(mig(codes, y[:, 1:], mode="parity")["discrete_mig"])
