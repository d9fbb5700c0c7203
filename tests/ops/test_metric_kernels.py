"""Native metric kernels (csrc/metrics) against their PyTorch twins: random, tied and degenerate
inputs (hypothesis), bad inputs, and a fuzz of the raw bindings. Runs on every device of the
``device`` fixture (CUDA only where a GPU is usable)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffrep import _native
from diffrep.ops import explain, use_backend
from diffrep.ops import metrics as ops
from diffrep.ops._native_call import run

from helpers import native_and_twin, sklearn_mi_cd

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="_cpu not built")


def _round(x, ties):
    return np.round(x, ties) if ties is not None else x


@settings(max_examples=30, deadline=None)
@given(u=st.integers(1, 6), a=st.integers(1, 5), n=st.integers(1, 80), seed=st.integers(0, 2**31 - 1),
       ties=st.sampled_from([None, 0, 1]), dtype=st.sampled_from([np.float32, np.float64]))
def test_auroc_matrix_equals_twin(device, u, a, n, seed, ties, dtype):
    rng = np.random.RandomState(seed)
    s = torch.from_numpy(_round(rng.randn(u, n), ties).astype(dtype)).to(device)
    y = torch.from_numpy(rng.rand(a, n) < rng.uniform(0, 1)).to(device)
    y[0] = bool(seed % 2)  # a degenerate (single-class) row
    (auc, deg), (auc_t, deg_t) = native_and_twin(lambda: ops.auroc_matrix(s, y), device)
    assert torch.equal(deg, deg_t)
    assert torch.equal(auc.isnan(), auc_t.isnan())
    assert torch.equal(auc.nan_to_num(), auc_t.nan_to_num())  # one rounding from exact integers: bitwise


def test_auroc_signed_zero_and_constant_rows(device):
    s = torch.tensor([[0.0, -0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]], device=device)
    y = torch.tensor([[True, False, False, True]], device=device)
    (auc, _), (auc_t, _) = native_and_twin(lambda: ops.auroc_matrix(s, y), device)
    assert torch.equal(auc, auc_t)
    assert auc[0, 1].item() == 0.5 and auc[0, 0].item() == pytest.approx(0.75)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), j=st.integers(1, 5), bins=st.sampled_from([1, 3, 20]), seed=st.integers(0, 2**31 - 1),
       ties=st.sampled_from([None, 0, 1]), dtype=st.sampled_from([np.float32, np.float64]))
def test_hist_discretize_equals_twin(device, n, j, bins, seed, ties, dtype):
    rng = np.random.RandomState(seed)
    x = _round(rng.randn(n, j) * 10 ** rng.uniform(-3, 3), ties).astype(dtype)
    x[:, 0] = 1.5  # constant column: bin 11 of 20
    x = torch.from_numpy(x).to(device)
    a, b = native_and_twin(lambda: ops.hist_discretize(x, bins), device)
    assert torch.equal(a, b)


def test_hist_discretize_edges_exact(device):
    z = np.linspace(0, 1, 501, dtype=np.float32)[:, None]  # values on the edges
    ref = np.digitize(z[:, 0], np.histogram(z[:, 0], 20)[1][:-1])
    with use_backend(device.type, strict=True):
        out = ops.hist_discretize(torch.from_numpy(z).to(device), 20)
    np.testing.assert_array_equal(out[:, 0].cpu().numpy(), ref)


@pytest.mark.parametrize("dtype, width, bins", [(np.float32, 9, 20), (np.float64, 3, 20), (np.float32, 5, 3),
                                                (np.float64, 5, 3)])
def test_hist_discretize_step_is_a_true_division(device, dtype, width, bins):
    """Ranges whose step (max - min) / B differs by an ulp from (max - min) * (1 / B), with values on
    NumPy's edges and one ulp either side: torch on CUDA divides by a Python number through its
    reciprocal, which put such values in the neighbouring bin of the twin."""
    lo, hi = dtype(0), dtype(width)
    edges = np.arange(bins, dtype=dtype) * ((hi - lo) / dtype(bins)) + lo
    assert (edges != np.arange(bins, dtype=dtype) * ((hi - lo) * (dtype(1) / dtype(bins))) + lo).any()
    x = np.concatenate([[lo, hi], edges, np.nextafter(edges, dtype(-1)), np.nextafter(edges, dtype(99))])
    x = x[(x >= lo) & (x <= hi)].astype(dtype)
    want = np.digitize(x, np.histogram(x, bins)[1][:-1])
    for backend in (device.type, "reference"):
        with use_backend(backend, strict=backend != "reference"):
            got = ops.hist_discretize(torch.from_numpy(x[:, None]).to(device), bins)
        np.testing.assert_array_equal(got[:, 0].cpu().numpy(), want)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 80), j=st.integers(1, 4), f=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_mi_matrix_equals_twin(device, n, j, f, seed):
    rng = np.random.RandomState(seed)
    lab = torch.from_numpy(rng.randint(0, rng.randint(1, 8), (n, j))).to(device)
    fac = torch.from_numpy(rng.randint(-3, rng.randint(-2, 6), (n, f)) * 7).to(device)  # arbitrary values
    (m, h), (m_t, h_t) = native_and_twin(lambda: ops.mi_matrix(lab, fac), device)
    torch.testing.assert_close(m, m_t, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(h, h_t, rtol=1e-12, atol=1e-15)


def knn_case(n, j, f, seed, ties, classes, singletons):
    """Latents (J, n) and factors (F, n) for the kNN MI tests: random or tied values, up to
    ``classes`` labels (so k > N_l - 1 is common), the first factor optionally with singleton
    labels; None when sklearn has no kept point for some factor."""
    rng = np.random.RandomState(seed)
    c = _round(rng.randn(j, n), ties)
    d = rng.randint(0, classes, (f, n))
    d[0, :singletons] = 100 + np.arange(min(singletons, n))  # singleton labels are dropped
    if not all((np.unique(row, return_counts=True)[1] > 1).any() for row in d):
        return None
    return c, d


def knn_given(fn):
    return settings(max_examples=30, deadline=None)(given(
        n=st.integers(2, 150), j=st.integers(1, 2), f=st.integers(1, 2), k=st.sampled_from([1, 3, 10]),
        seed=st.integers(0, 2**31 - 1), ties=st.sampled_from([None, 0, 1, 2]), classes=st.integers(1, 12),
        singletons=st.sampled_from([0, 2]))(fn))


@knn_given
def test_knn_mi_cd_equals_sklearn(device, n, j, f, k, seed, ties, classes, singletons):
    """Native against sklearn ``_compute_mi_cd`` itself."""
    _compute_mi_cd = sklearn_mi_cd()

    case = knn_case(n, j, f, seed, ties, classes, singletons)
    if case is None:
        return
    c, d = case
    with use_backend(device.type, strict=True):
        out = ops.knn_mi_cd(torch.from_numpy(c).to(device), torch.from_numpy(d).to(device), k).cpu().numpy()
    ref = np.array([[_compute_mi_cd(c[a], d[b], k) for b in range(f)] for a in range(j)])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


# Heavy ties in a brute-force label group (N_l <= 2 k_l + 1): the expansion x^2 - 2xy + y^2 that
# sklearn's brute force measures with reorders neighbours at equal exact distance.
BRUTE_TIES = ([-0.6, 0.5, 2.0, 0.6, 1.3, 2.1, 0.0, -0.6, 0.8, 1.1, 0.4, -1.7, -1.2, -0.1, -0.5, -0.2, -1.7, -0.0,
               -0.1, 1.3, 0.6], [0, 2, 1, 1, 1, 0, 2, 0, 2, 2, 0, 2, 0, 0, 2, 2, 2, 2, 0, 0, 1])


@knn_given
def test_knn_mi_cd_equals_twin(device, n, j, f, k, seed, ties, classes, singletons):
    case = knn_case(n, j, f, seed, ties, classes, singletons)
    if case is None:
        return
    c, d = (torch.from_numpy(a).to(device) for a in case)
    a, b = native_and_twin(lambda: ops.knn_mi_cd(c, d, k), device)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_knn_mi_cd_brute_force_ties_equal_twin_and_sklearn(device):
    _compute_mi_cd = sklearn_mi_cd()

    c, d = (np.array(v) for v in BRUTE_TIES)
    ref = _compute_mi_cd(c, d, 10)
    a, b = native_and_twin(lambda: ops.knn_mi_cd(torch.from_numpy(c[None]).to(device),
                                                 torch.from_numpy(d[None]).to(device), 10), device)
    assert b.item() == pytest.approx(ref, rel=1e-12, abs=1e-12)  # the twin
    assert a.item() == pytest.approx(ref, rel=1e-12, abs=1e-12)  # the native kernel


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 30), b=st.integers(2, 9), d=st.integers(1, 6), nf=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1), compressed=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_factor_vae_votes_equal_twin(device, t, b, d, nf, seed, compressed, dtype):
    rng = np.random.RandomState(seed)
    x = rng.randn(t, b, d)
    x[:, :, 0] = 0.5  # a constant code: 0/0 = NaN wins when active, as np.argmin
    if d > 2:
        x[:, :, 2] = x[:, :, 1]  # a duplicated code: ties go to the first
    batches = torch.from_numpy(x.astype(dtype)).to(device)
    g = torch.from_numpy(rng.uniform(0.5, 2, d)).to(device)
    g[0] = 0.0 if seed % 2 else g[0]
    if d > 2:
        g[2] = g[1]
    act = torch.from_numpy(rng.rand(d) < 0.7).to(device)
    act[-1] = True
    fi = torch.from_numpy(rng.randint(0, nf, t)).to(device)
    (v, arg), (v_t, arg_t) = native_and_twin(lambda: ops.factor_vae_votes(batches, fi, g, act, nf, compressed), device)
    assert torch.equal(arg, arg_t) and torch.equal(v, v_t)


def test_explain_reports_native(device):
    ch = explain("metrics.auroc_matrix", torch.zeros(2, 3, device=device), torch.zeros(1, 3, dtype=torch.bool,
                                                                                       device=device))
    assert ch.backend == device.type
    ch = explain("metrics.auroc_grid", torch.zeros(2, 3, device=device), torch.zeros(1, 3, dtype=torch.bool,
                                                                                     device=device))
    assert ch.backend == "reference" and any("threshold sweep" in r for rs in ch.skipped.values() for r in rs)


# ------------------------------------------------------------------------------- bad inputs
CPU = torch.device("cpu")
I64 = torch.int64


# The kernels' arguments in table order (csrc/metrics/metrics_ops.h); native calls take keywords.
_ARGS = {
    "auroc_matrix": ("scores", "order", "labels", "npos", "U", "A", "n", "r2", "auc"),
    "hist_discretize": ("codes", "n", "J", "B", "lohi", "labels"),
    "mi_matrix": ("labels", "factors", "n", "J", "F", "B", "V", "scratch", "mi", "h"),
    "knn_mi_cd": ("sx", "vorder", "labels", "J", "F", "n", "V", "k", "dscratch", "iscratch", "mi"),
    "factor_vae_votes": ("batches", "factor_index", "global_var", "active", "nt", "B", "d", "F", "compressed",
                         "votes", "arg"),
}


def _call(name, *args):
    return run("cpu", name, CPU, **dict(zip(_ARGS[name], args, strict=True)))


def test_out_of_range_indices_set_the_flag_not_crash():
    order = torch.tensor([[0, 5, 1]], dtype=I64)  # 5 >= n
    lab = torch.ones(3, 1, dtype=torch.uint8)
    flags = _call("auroc_matrix", torch.zeros(1, 3), order, lab, torch.tensor([3]), 1, 1, 3,
                  torch.empty(1, 3, dtype=torch.int32), torch.empty(1, 1, dtype=torch.float64))
    assert flags == 2
    flags = _call("mi_matrix", torch.tensor([[0], [7]]), torch.tensor([[0], [1]]), 2, 1, 1, 2, 2,
                  torch.zeros(4 + 2 + 2, dtype=I64), torch.empty(1, 1, dtype=torch.float64),
                  torch.empty(1, dtype=torch.float64))
    assert flags == 2
    flags = _call("knn_mi_cd", torch.zeros(1, 3, dtype=torch.float64), torch.tensor([[0, 1, -1]]),
                  torch.tensor([[0, 0, 0]]), 1, 1, 3, 1, 2, torch.empty(12, dtype=torch.float64),
                  torch.empty(2 + 4 + 1, dtype=I64), torch.empty(1, 1, dtype=torch.float64))
    assert flags == 2
    flags = _call("factor_vae_votes", torch.zeros(2, 3, 2), torch.tensor([0, 9]), torch.ones(2, dtype=torch.float64),
                  torch.tensor([0, 1]), 2, 3, 2, 2, True, torch.zeros(2, 2, dtype=I64), torch.empty(2, dtype=I64))
    assert flags == 2


def test_sizes_and_dtypes_are_checked_by_the_binding():
    with pytest.raises(ValueError, match="scratch"):
        _call("mi_matrix", torch.tensor([[0], [1]]), torch.tensor([[0], [1]]), 2, 1, 1, 2, 2,
              torch.zeros(3, dtype=I64), torch.empty(1, 1, dtype=torch.float64), torch.empty(1, dtype=torch.float64))
    with pytest.raises(TypeError):  # wrong-dtype out-param: .noconvert()
        _call("hist_discretize", torch.zeros(4, 2), 4, 2, 3, torch.empty(4), torch.empty(4, 2, dtype=torch.int32))
    with pytest.raises(TypeError):  # non-contiguous out-param
        _call("hist_discretize", torch.zeros(4, 2), 4, 2, 3, torch.empty(4),
              torch.empty(2, 4, dtype=I64).T)
    with pytest.raises(ValueError, match="num_bins"):
        _call("hist_discretize", torch.zeros(4, 2), 4, 2, 0, torch.empty(4), torch.empty(4, 2, dtype=I64))
    with pytest.raises(ValueError, match="B must be >= 2"):
        _call("factor_vae_votes", torch.zeros(2, 1, 2), torch.tensor([0, 0]), torch.ones(2, dtype=torch.float64),
              torch.tensor([0]), 2, 1, 2, 1, True, torch.zeros(1, 2, dtype=I64), torch.empty(2, dtype=I64))


@pytest.mark.parametrize("call, match", [
    (lambda: ops.auroc_matrix(np.zeros((2, 3)), np.zeros((1, 4), bool)), "number of samples"),
    (lambda: ops.auroc_matrix(np.full((1, 3), np.inf), np.zeros((1, 3), bool)), "NaN or inf"),
    (lambda: ops.auroc_matrix(np.zeros((1, 3)), np.full((1, 3), 2)), "0/1"),
    (lambda: ops.hist_discretize(np.zeros((3, 2)), 0), "num_bins"),
    (lambda: ops.hist_discretize(np.zeros((0, 2)), 5), "empty"),
    (lambda: ops.mi_matrix(np.zeros((3, 1), int), np.zeros((3, 1)) + 0.5), "integer class labels"),
    (lambda: ops.knn_mi_cd(np.zeros((1, 3)), np.zeros((1, 3), int), 0), "k must be"),
    (lambda: ops.knn_mi_cd(np.zeros((1, 3)), np.zeros((2, 4), int)), "number of samples"),
    (lambda: ops.factor_vae_votes(np.zeros((2, 1, 2)), [0, 0], np.ones(2), np.ones(2, bool), 1), "at least 2"),
    (lambda: ops.factor_vae_votes(np.zeros((2, 3, 2)), np.array([0, 3]), np.ones(2), np.ones(2, bool), 2),
     r"\[0, 2\)"),
    (lambda: ops.factor_vae_votes(np.zeros((2, 3, 2)), np.array([0, 1]), np.ones(2), np.zeros(2, bool), 2),
     "no active code"),
])
def test_bad_input_raises_a_named_error(device, call, match):
    with use_backend(device.type, strict=True):
        with pytest.raises((ValueError, TypeError), match=match):
            call()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12), j=st.integers(1, 3), v=st.integers(1, 4))
def test_native_fuzz_garbage_indices_never_crash(seed, n, j, v):
    """Arbitrary (also negative / huge) index arrays with correct sizes: the kernels flag them."""
    rng = np.random.RandomState(seed)
    junk = lambda *shape: torch.from_numpy(rng.randint(-5, 2 * n + 5, shape).astype(np.int64))  # noqa: E731
    f64 = torch.float64
    _call("auroc_matrix", torch.randn(j, n), junk(j, n), torch.from_numpy(rng.randint(0, 2, (n, 1)).astype(np.uint8)),
          junk(1), j, 1, n, torch.empty(j, n, dtype=torch.int32), torch.empty(1, j, dtype=f64))
    _call("mi_matrix", junk(n, j), junk(n, 1), n, j, 1, v, v, torch.zeros(j * v * v + j * v + v, dtype=I64),
          torch.empty(j, 1, dtype=f64), torch.empty(1, dtype=f64))
    _call("knn_mi_cd", torch.randn(j, n, dtype=f64), junk(j, n), junk(1, n), j, 1, n, v, 3,
          torch.empty(4 * j * n, dtype=f64), torch.empty(2 * v + j * (n + 1) + j * v, dtype=I64),
          torch.empty(j, 1, dtype=f64))
    votes = lambda: _call("factor_vae_votes", torch.randn(n, 2, j), junk(n), torch.rand(j, dtype=f64),  # noqa: E731
                          junk(max(1, v - 1)), n, 2, j, 2, bool(seed % 2), torch.zeros(2, j, dtype=I64),
                          torch.empty(n, dtype=I64))
    if max(1, v - 1) > j:  # more active ids than d: refused before the kernel (a compressed vote column is < na)
        with pytest.raises(ValueError, match="more code ids than d"):
            votes()
    else:
        votes()
