"""Faithfulness of the metric kernels (docs/kernels/metrics.md) against NumPy/sklearn and against
hand computations and brute force written here:

* ``hist_discretize``: disentanglement_lib ``_histogram_discretize`` = ``np.digitize(x,
  np.histogram(x, B)[1][:-1])`` per code;
* ``mi_matrix``: sklearn ``mutual_info_score`` (natural log) and disentanglement_lib
  ``discrete_entropy`` (= mutual_info_score(f, f));
* ``knn_mi_cd``: Ross (2014) Eq. 2, I = psi(N) - <psi(N_x)> + psi(k) - <psi(m)>, brute force;
* ``factor_vae_votes``: disentanglement_lib ``factor_vae._generate_training_sample`` (np.var
  ddof=1, np.argmin over the active codes) with its vote accumulation.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma
from sklearn.metrics import mutual_info_score

from diffrep.ops import metrics as ops
from diffrep.ops import use_backend

BACKENDS = ["cpu", "reference"]


def dlib_discretize(x, bins):
    return np.stack([np.digitize(x[:, j], np.histogram(x[:, j], bins)[1][:-1]) for j in range(x.shape[1])], 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hist_discretize_hand_case(backend):
    """0..10 in 5 bins: edges 0, 2, 4, 6, 8 (10 is the last edge, dropped): the maximum lands in
    bin 5, values on an edge in the bin it opens; a constant column uses (c - 0.5, c + 0.5)."""
    x = torch.stack([torch.arange(11, dtype=torch.float64), torch.full((11,), 3.0, dtype=torch.float64)], 1)
    with use_backend(backend, strict=True):
        out = ops.hist_discretize(x, 5)
    assert out[:, 0].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5]
    assert out[:, 1].tolist() == [3] * 11  # 3.0 in (2.5, 3.5): edges 2.5, 2.7, 2.9, 3.1 -> bin 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hist_discretize_equals_numpy(backend, dtype):
    rng = np.random.RandomState(0)
    cols = [rng.randn(200), rng.rand(200) * 1e-4 + 5.0, np.round(rng.randn(200) * 3), rng.randn(200) * 1e6,
            np.linspace(-1, 1, 200), rng.exponential(size=200), np.full(200, -2.25)]
    x = np.stack(cols, 1).astype(dtype)
    for bins in (1, 2, 7, 20, 64):
        with use_backend(backend, strict=True):
            out = ops.hist_discretize(torch.from_numpy(x), bins).numpy()
        np.testing.assert_array_equal(out, dlib_discretize(x, bins), err_msg=f"bins={bins}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mi_matrix_hand_cases(backend):
    a = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    half = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    indep = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    # joint of (p, q) = [[2, 1], [0, 1]] / 4 over n = 4
    p4, q4 = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1])
    with use_backend(backend, strict=True):
        mi, h = ops.mi_matrix(torch.stack([a, half, indep], 1), torch.stack([half, a], 1))
        mi4, h4 = ops.mi_matrix(p4[:, None], q4[:, None])
    ln2 = math.log(2)
    torch.testing.assert_close(h, torch.tensor([ln2, 2 * ln2], dtype=torch.float64), rtol=1e-14, atol=0)
    # I(a; half) = H(half) = ln 2; I(a; a) = ln 4; I(half; .) = ln 2; indep is uniform given half and given a
    expect = torch.tensor([[ln2, 2 * ln2], [ln2, ln2], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(mi, expect, rtol=1e-14, atol=1e-15)
    joint = {(0, 0): 0.5, (0, 1): 0.25, (1, 1): 0.25}
    pa, pb = {0: 0.75, 1: 0.25}, {0: 0.5, 1: 0.5}
    hand = sum(v * math.log(v / (pa[i] * pb[j])) for (i, j), v in joint.items())
    assert mi4.item() == pytest.approx(hand, rel=1e-14)
    assert h4.item() == pytest.approx(ln2, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mi_matrix_equals_sklearn(backend):
    rng = np.random.RandomState(1)
    n = 300
    lab = np.stack([rng.randint(0, 20, n), rng.randint(0, 3, n), np.zeros(n, int), rng.randint(0, 50, n)], 1)
    fac = np.stack([rng.randint(0, 4, n), lab[:, 0] // 5, rng.randint(-3, 3, n) * 10], 1)
    with use_backend(backend, strict=True):
        mi, h = ops.mi_matrix(torch.from_numpy(lab), torch.from_numpy(fac))
    ref = np.array([[mutual_info_score(fac[:, f], lab[:, j]) for f in range(3)] for j in range(4)])
    np.testing.assert_allclose(mi.numpy(), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h.numpy(), [mutual_info_score(fac[:, f], fac[:, f]) for f in range(3)], rtol=1e-12)


def ross_brute(c, d, k):
    """Ross (2014) Eq. 2 for one continuous c and discrete d, without ties: per point, d_i =
    distance to its k_l-th nearest same-label neighbour (k_l = min(k, N_l - 1)); m_i = number of
    other points (any label) within d_i, the k-th neighbour included; singleton labels dropped."""
    n = len(c)
    keep = np.array([np.sum(d == d[i]) > 1 for i in range(n)])
    c, d = c[keep], d[keep]
    n = len(c)
    terms = []
    for i in range(n):
        same = np.sort([abs(c[j] - c[i]) for j in range(n) if j != i and d[j] == d[i]])
        kl = min(k, len(same))
        r = same[kl - 1]
        m = sum(1 for j in range(n) if j != i and abs(c[j] - c[i]) <= r)
        terms.append(digamma(kl) - digamma(len(same) + 1) - digamma(m))
    return max(0.0, digamma(n) + float(np.mean(terms)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_mi_cd_equals_the_ross_estimator(backend):
    rng = np.random.RandomState(2)
    n = 120
    lab = np.concatenate([rng.randint(0, 3, n - 3), [7, 8, 8]])  # a singleton label and a pair (k_l = 1)
    c1 = rng.randn(n) + 1.5 * lab  # informative
    c2 = rng.randn(n)  # independent
    lat = np.stack([c1, c2])
    fac = np.stack([lab, rng.randint(0, 2, n)])
    for k in (1, 3, 10):
        with use_backend(backend, strict=True):
            mi = ops.knn_mi_cd(torch.from_numpy(lat), torch.from_numpy(fac), k).numpy()
        ref = np.array([[ross_brute(lat[j], fac[f], k) for f in range(2)] for j in range(2)])
        np.testing.assert_allclose(mi, ref, rtol=1e-12, atol=1e-14, err_msg=f"k={k}")
    assert mi[0, 0] > 0.3 and mi[1, 0] < 0.1


def test_mutual_info_classif_like_equals_sklearn():
    """The InfoMEC user: scale(with_mean=False) + 1e-10 noise from RandomState(seed), then Ross."""
    from sklearn.feature_selection import mutual_info_classif

    from diffrep.metrics.infomec import mutual_info_classif_like

    rng = np.random.RandomState(3)
    z = rng.randn(150, 2) * [1.0, 4.0] + 2.0
    s = rng.randint(0, 3, (150, 2))
    z[:, 0] += s[:, 0]
    ours = mutual_info_classif_like(z, s, seed=5, k=10)
    ref = np.array([[mutual_info_classif(z[:, [j]], s[:, i], discrete_features=False, n_neighbors=10,
                                         random_state=5)[0] for i in range(2)] for j in range(2)])
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("compressed", [True, False])
def test_factor_vae_votes_equal_the_reference_loop(backend, compressed):
    rng = np.random.RandomState(4)
    t, b, d, nf = 30, 8, 6, 3
    batches = rng.randn(t, b, d) * rng.uniform(0.1, 2.0, d)
    fi = rng.randint(0, nf, t)
    for i in range(t):  # the fixed factor shrinks one code's local variance
        batches[i, :, fi[i] * 2] *= 0.05
    gvar = rng.uniform(0.5, 1.5, d)
    active = np.array([True, True, False, True, True, True])
    votes = np.zeros((nf, d), dtype=np.int64)
    for i in range(t):
        local = np.var(batches[i], axis=0, ddof=1)
        arg = int(np.argmin(local[active] / gvar[active]))
        votes[fi[i], arg if compressed else np.flatnonzero(active)[arg]] += 1
    with use_backend(backend, strict=True):
        v, _ = ops.factor_vae_votes(torch.from_numpy(batches), torch.from_numpy(fi), torch.from_numpy(gvar),
                                    torch.from_numpy(active), nf, compressed_index=compressed)
    np.testing.assert_array_equal(v.numpy(), votes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_disentanglement_lib_utils_known_answers(backend):
    """disentanglement_lib ``evaluation/metrics/utils_test.py``: 0.1..0.6 (and reversed) into 3
    bins; H([1, 1, 2, 2, 3, 3]) = ln 3; the MI example gives diag(ln 2)."""
    target = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]], dtype=torch.float64)
    with use_backend(backend, strict=True):
        lab = ops.hist_discretize(target.T, 3)
        assert lab.T.tolist() == [[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]
        _, h = ops.mi_matrix(lab, lab)
        xs = torch.tensor([[1, 2, 1, 2], [1, 1, 2, 2]]).T
        ys = torch.tensor([[1, 2, 1, 2], [2, 2, 1, 1]]).T
        mi, _ = ops.mi_matrix(xs, ys)
    torch.testing.assert_close(h, torch.full((2,), math.log(3), dtype=torch.float64), rtol=1e-14, atol=0)
    torch.testing.assert_close(mi, torch.tensor([[math.log(2), 0.0], [0.0, math.log(2)]], dtype=torch.float64),
                               rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_auroc_hand_cases(backend):
    """Mann-Whitney with half credit for ties: sklearn's documented example (0.75), a tied case,
    and AUC(-s) = 1 - AUC(s)."""
    s = torch.tensor([[0.1, 0.4, 0.35, 0.8], [1.0, 1.0, 2.0, 2.0], [-0.1, -0.4, -0.35, -0.8]], dtype=torch.float64)
    y = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])
    with use_backend(backend, strict=True):
        auc, deg = ops.auroc_matrix(s, y)
    # labels [0, 0, 1, 1]: pos {0.35, 0.8} vs neg {0.1, 0.4}: 0.35 > 0.1, 0.35 < 0.4, 0.8 > both -> 3/4;
    # scores [1, 1, 2, 2] -> 1; the negated scores -> 1 - 3/4.
    # labels [0, 1, 0, 1]: pos {0.4, 0.8} vs neg {0.1, 0.35} -> 1; pos {1, 2} vs neg {1, 2}:
    # (1 vs 1) 1/2, (1 vs 2) 0, (2 vs 1) 1, (2 vs 2) 1/2 -> 2/4; negated -> 0
    expect = torch.tensor([[0.75, 1.0, 0.25], [1.0, 0.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(auc, expect, rtol=0, atol=1e-15)
    assert not bool(deg.any())
