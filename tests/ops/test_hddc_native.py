"""Native HDDC primitives (hddc_estep, hddc_mstep, cluster_density) against the float64 twin
(reference/hddc.py), on hypothesis-drawn shapes including degenerate data, plus whole fits on
the native backend against the reference backend, determinism and bad inputs."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffrep
from diffrep.cluster import em
from diffrep.cluster import hddc as cluster_hddc
from diffrep.ops import hddc, use_backend
from diffrep.ops.reference import hddc as ref

pytestmark = pytest.mark.skipif(not diffrep._native.cpu_available(), reason="_cpu not built")


# The arguments of _cpu.hddc_estep in table order (csrc/hddc/hddc_ops.h); the binding takes keywords.
_ESTEP_ARGS = ("x", "unit_of", "w", "mu", "qt", "ia", "dk", "tri", "ib", "cst", "act", "thr", "skip_zero", "resp",
               "llp", "L", "cnt")


def _estep(cpu, args, flags):
    cpu.hddc_estep(flags=flags, device=-1, stream=0, **dict(zip(_ESTEP_ARGS, args, strict=True)))


def problem(U, B, n, d, K, seed, dtype=torch.float64, device="cpu", degenerate=None):
    """x (U, n, d), a B-problem batch (unit_of, w, resp, active) and HDDC parameters from the twin."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(U, n, d, generator=g, dtype=torch.float64) * (1 + 3 * torch.rand(U, 1, d, generator=g,
                                                                                         dtype=torch.float64))
    if degenerate == "zero":
        x[0] = 0.0
    elif degenerate == "dup":
        x[:, n // 2:] = x[:, :1]
    unit_of = torch.randint(0, U, (B,), generator=g)
    w = torch.rand(B, n, generator=g, dtype=torch.float64)
    w[w < 0.2] = 0.0
    w[:, 0] = 1.0
    resp = torch.softmax(torch.randn(B, n, K, generator=g, dtype=torch.float64) * 4, -1)
    active = torch.rand(B, K, generator=g) < 0.8
    active[:, 0] = True
    resp = resp * active[:, None]
    resp = resp / resp.sum(-1, keepdim=True)
    x = x.to(dtype)
    return (x.to(device), unit_of.to(device), w.to(dtype).to(device), resp.to(dtype).to(device),
            active.to(device))


def params(x, unit_of, w, resp, active, model="AkjBkQkDk"):
    cfg = dict(model=model, threshold=0.2, dim_rule="cattell", reg_covar=1e-6)
    nk, mu, W = ref.mstep_stats(x[unit_of].double(), w.double(), resp.double())
    return hddc.params(nk, mu, W, w.double().sum(1), active, cfg)


shapes = st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 300), st.sampled_from([1, 2, 5, 31, 32, 40]),
                   st.sampled_from([1, 2, 5, 32]), st.integers(0, 10**6),
                   st.sampled_from([None, None, "zero", "dup"]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes, st.sampled_from(["AkjBkQkDk", "full"]), st.booleans())
def test_estep_matches_twin(shape, model, skip_zero):
    U, B, n, d, K, seed, deg = shape
    x, unit_of, w, resp, active = problem(U, B, n, d, K, seed, degenerate=deg)
    p = params(x, unit_of, w, resp, active, model)
    r_n, L_n, c_n = hddc.Engine("cpu", x).estep(unit_of, w, p, skip_zero)
    r_t, L_t, c_t = hddc.Engine("reference", x).estep(unit_of, w, p)
    assert not torch.isnan(r_n).any()
    keep = (w > 0)[..., None] if skip_zero else torch.ones_like(r_t, dtype=torch.bool)
    # the kernel's and the twin's cost forms differ algebraically; with b at its 1e-6 floor their
    # rounding differs by up to ~1e6 * eps * |x|^2 in the cost, hence 1e-7 on responsibilities
    torch.testing.assert_close(r_n * keep, r_t * keep, rtol=1e-7, atol=1e-7)
    if skip_zero:
        assert bool((r_n[~(w > 0)] == 0).all())
    # the two cost forms differ by (|e|^2 - sum u^2)/b, which cancels when d_k = d and b sits at its
    # 1e-6 floor: rounding of |e|^2 times 1e6
    torch.testing.assert_close(L_n, L_t, rtol=1e-8, atol=1e-8)
    assert bool((r_n[~active[:, None].expand_as(r_n)] == 0).all())
    # counts of t > 1/K: equal except for responsibilities within rounding of the threshold
    assert (c_n - c_t).abs().max() <= 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes)
def test_mstep_and_density_match_twin(shape):
    U, B, n, d, K, seed, deg = shape
    x, unit_of, w, resp, active = problem(U, B, n, d, K, seed, degenerate=deg)
    resp = resp * active[:, None]
    nat, tw = hddc.Engine("cpu", x), hddc.Engine("reference", x)
    for a, b in zip(nat.mstep(unit_of, w, resp, active), tw.mstep(unit_of, w, resp, active)):
        assert not torch.isnan(a).any()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    c_n, m_n, d_n = nat.density(unit_of, w, resp, active, 0.5)
    c_t, m_t, d_t = tw.density(unit_of, w, resp, active, 0.5)
    torch.testing.assert_close(c_n, c_t, rtol=0, atol=0)
    has = c_t > 0
    torch.testing.assert_close(m_n[has], m_t[has], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(d_n[has], d_t[has], rtol=1e-9, atol=1e-10)
    assert bool(d_n[~has].isnan().all()) and bool(d_t[~has].isnan().all())


def test_float32_kernels_within_tolerance_and_bitwise_deterministic():
    x, unit_of, w, resp, active = problem(3, 5, 5000, 32, 8, 1, dtype=torch.float32)
    p = params(x, unit_of, w, resp, active)
    nat = hddc.Engine("cpu", x)
    r1, L1, _ = nat.estep(unit_of, w, p)
    r2, L2, _ = nat.estep(unit_of, w, p)
    assert torch.equal(r1, r2) and torch.equal(L1, L2)
    r_t, L_t, _ = hddc.Engine("reference", x.double()).estep(unit_of, w.double(), p)
    torch.testing.assert_close(r1.double(), r_t, rtol=0, atol=2e-4)
    torch.testing.assert_close(L1, L_t, rtol=1e-5, atol=0)
    s1, s2 = nat.mstep(unit_of, w, resp, active), nat.mstep(unit_of, w, resp, active)
    st = ref.mstep_stats(x[unit_of].double(), w.double(), resp.double())
    for a, b, t in zip(s1, s2, st):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, t, rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 200), st.sampled_from([1, 3, 7, 8, 31, 32, 40, 64]), st.integers(0, 10**6),
       st.sampled_from([torch.float32, torch.float64]))
def test_estep_lower_triangular_rows_skip_only_zeros(n, d, seed, dtype):
    """tri = 1 (row j of Qt zero beyond column j) gives bitwise the result of the dense loop."""
    g = torch.Generator().manual_seed(seed)
    B, K, n = 2, 3, 50
    x = torch.randn(1, n, d, generator=g, dtype=torch.float64).to(dtype)
    f = dict(dtype=dtype)
    qt = torch.randn(B, K, d, d, generator=g, dtype=torch.float64).tril().to(dtype)
    args = lambda tri: [x, torch.zeros(B, dtype=torch.int64), torch.ones(B, n, **f),
                        torch.randn(B, K, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype),
                        qt, torch.ones(B, K, d, **f), torch.full((B, K), d, dtype=torch.int32),
                        torch.full((B, K), tri, dtype=torch.int32), torch.zeros(B, K, **f), torch.zeros(B, K, **f),
                        torch.ones(B, K, dtype=torch.int32), torch.full((B,), 0.3, **f), False,
                        torch.empty(B, n, K, **f), torch.empty(B, n, dtype=torch.float64),
                        torch.empty(B, dtype=torch.float64), torch.empty(B, K, dtype=torch.int64)]
    cpu = diffrep._native.cpu_module()
    out = []
    for tri in (0, 1):
        a = args(tri)
        _estep(cpu, a, torch.zeros(1, dtype=torch.int32))
        out.append(a[13:])
    for u, v in zip(*out):
        assert torch.equal(u, v)


def test_estep_mixed_subspace_and_triangular_components_match_twin():
    """Components with large d_k take the triangular precision form, small ones the subspace form,
    in one batch; both agree with the twin, also at the b floor."""
    x, unit_of, w, resp, active = problem(2, 3, 400, 12, 4, 3)
    p = params(x, unit_of, w, resp, active)
    p["active"] = torch.ones_like(p["active"])
    p["dk"] = torch.tensor([[1, 11, 6, 10], [12, 2, 9, 3], [11, 11, 11, 11]], dtype=p["dk"].dtype)
    lam = p["lam"]
    sig = torch.arange(12) < p["dk"][..., None]
    p["a"] = torch.where(sig, lam.clamp_min(1e-8), torch.zeros_like(lam))
    p["b"] = torch.where(p["dk"] < 12, ((lam * ~sig).sum(-1) / (12 - p["dk"]).clamp_min(1)), p["b"]).clamp_min(1e-8)
    p["b"][2, 1] = 1e-9
    low = 2 * p["dk"] > 12 + 7
    assert bool(low.any()) and bool((~low).any())
    r_n, L_n, _ = hddc.Engine("cpu", x).estep(unit_of, w, p)
    r_t, L_t, _ = hddc.Engine("reference", x).estep(unit_of, w, p)
    torch.testing.assert_close(r_n, r_t, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(L_n, L_t, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_split_trial_score_equals_full_estep(backend):
    """The split pass scores a trial from the per-point likelihood of the current mixture minus the
    parent plus the children; that equals the likelihood of a full E-step at the trial."""
    x, unit_of, w, resp, active = problem(2, 3, 500, 6, 5, 4)
    active[:, :4], active[:, 4] = True, False
    p = params(x, unit_of, w, resp, active)
    eng = hddc.Engine(backend, x)
    bk, free, src = torch.tensor([0, 2, 3]), torch.full((3,), 4), torch.tensor([1, 1, 0])
    trial = em.subset(p, slice(None))
    j = torch.arange(3)
    for key in ("mu", "Q", "a", "b", "dk", "lam"):
        trial[key][j, free] = p[key][j, src] if key != "mu" else p["mu"][j, bk] + 0.5
    trial["pi"][j, bk] = p["pi"][j, bk] * 0.3
    trial["pi"][j, free] = p["pi"][j, bk] * 0.7
    trial["active"][j, free] = True
    lse = eng.point_lse(unit_of, em.compact(p))
    lpp = eng.point_lse(unit_of, em.pick(p, j, bk[:, None]))
    lpc = eng.point_lse(unit_of, em.pick(trial, j, torch.stack([bk, free], 1)))
    m = torch.maximum(lse, lpc)
    lnew = (((lse - m).exp() - (lpp - m).exp()).clamp_min(0) + (lpc - m).exp()).log() + m
    L_inc = (w * lnew).sum(1)
    _, L_full, _ = eng.estep(unit_of, w, em.compact(trial))
    torch.testing.assert_close(L_inc, L_full.to(L_inc.dtype), rtol=1e-9, atol=1e-6)


def test_batch_invariance_of_the_primitives():
    x, unit_of, w, resp, active = problem(2, 4, 700, 6, 3, 2)
    p = params(x, unit_of, w, resp, active)
    nat = hddc.Engine("cpu", x)
    full = nat.estep(unit_of, w, p)
    sub = nat.estep(unit_of[2:3], w[2:3], {k: (v[2:3] if isinstance(v, torch.Tensor) else v) for k, v in p.items()})
    for a, b in zip(full, sub):
        assert torch.equal(a[2:3], b)
    assert torch.equal(nat.mstep(unit_of, w, resp, active)[2][2:3], nat.mstep(unit_of[2:3], w[2:3], resp[2:3],
                                                                               active[2:3])[2])


@pytest.mark.parametrize("model", ["AkjBkQkDk", "full"])
def test_native_fit_matches_reference_backend(model):
    g = torch.Generator().manual_seed(11)
    c = torch.randn(3, 5, 5, generator=g, dtype=torch.float64) * 6
    lab = torch.randint(0, 5, (3, 400), generator=g)
    x = torch.gather(c, 1, lab[..., None].expand(-1, -1, 5)) + torch.randn(3, 400, 5, generator=g,
                                                                            dtype=torch.float64)
    a = cluster_hddc.fit(x, 2, 8, model=model, seed=3)
    with use_backend("reference"):
        b = cluster_hddc.fit(x, 2, 8, model=model, seed=3)
    assert torch.equal(a.active, b.active)
    for key in ("splits", "filtered", "deactivated"):
        assert torch.equal(a.events[key], b.events[key])
    torch.testing.assert_close(a.means[a.active], b.means[b.active], rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(a.weights, b.weights, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(a.log_likelihood, b.log_likelihood, rtol=1e-9, atol=0)
    if model != "full":
        assert torch.equal(a.dims[a.active], b.dims[b.active])


def test_fit_float32_no_nan_on_degenerate_units_and_deterministic():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 3000, 32, generator=g)
    x[0] = 0.0
    x[1, 1000:] = x[1, 0]
    x[2] = x[2, :3].repeat(1000, 1)
    a = cluster_hddc.fit(x, 8, 16, seed=5)
    b = cluster_hddc.fit(x, 8, 16, seed=5)
    assert torch.equal(a.means, b.means) and torch.equal(a.log_likelihood, b.log_likelihood)
    for v in (a.weights, a.means, a.log_likelihood, a.a, a.b):
        assert not torch.isnan(v).any()
    assert int(a.events["deactivated"].sum() + a.events["filtered"].sum()) > 0


def test_native_bad_inputs():
    x, unit_of, w, resp, active = problem(2, 2, 50, 4, 3, 0)
    p = params(x, unit_of, w, resp, active)
    cpu = diffrep._native.cpu_module()
    flags = torch.zeros(1, dtype=torch.int32)
    B, K, n = 2, 3, 50
    f64 = dict(dtype=torch.float64)
    args = lambda: [x, unit_of, w, p["mu"], p["Q"][..., :1].transpose(-1, -2).contiguous(), torch.ones(B, K, 1, **f64),
                    torch.ones(B, K, dtype=torch.int32), torch.zeros(B, K, dtype=torch.int32), torch.ones(B, K, **f64),
                    torch.zeros(B, K, **f64),
                    active.to(torch.int32), torch.full((B,), 0.3, **f64), False, torch.empty(B, n, K, **f64),
                    torch.empty(B, n, **f64), torch.empty(B, **f64), torch.empty(B, K, dtype=torch.int64)]
    a = args()
    _estep(cpu, a, flags)
    a = args()
    a[13] = torch.empty(B, n, K + 1, **f64)
    with pytest.raises(ValueError, match="resp"):
        _estep(cpu, a, flags)
    a = args()
    a[13] = torch.empty(B, K, n, **f64).transpose(1, 2)
    with pytest.raises(TypeError):
        _estep(cpu, a, flags)
    a = args()
    a[1] = torch.tensor([0, 7])
    with pytest.raises(ValueError, match="unit_of"):
        _estep(cpu, a, flags)
    a = args()
    a[6] = torch.full((B, K), 5, dtype=torch.int32)
    with pytest.raises(ValueError, match="dk"):
        _estep(cpu, a, flags)
    a = args()
    a[7] = torch.zeros(B, K + 1, dtype=torch.int32)
    with pytest.raises(ValueError, match="tri"):
        _estep(cpu, a, flags)
    a = args()
    a[7] = torch.zeros(B, K, dtype=torch.int64)
    with pytest.raises(TypeError):
        _estep(cpu, a, flags)
    a = args()
    a[0] = x.float()
    with pytest.raises(TypeError):
        _estep(cpu, a, flags)
    bad = x.clone()
    bad[1, 3, 0] = math.inf
    r = hddc.Engine("cpu", bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        r.estep(torch.tensor([1]), w[:1], {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in p.items()})
    with pytest.raises(ValueError, match="K_max|max_components"):
        cluster_hddc.fit(torch.randn(1, 100, 3), 2, 65)
    with pytest.raises(ValueError, match="weights"):
        cluster_hddc.fit(torch.randn(1, 100, 3), 2, 4, weights=-torch.ones(1, 100))
    with pytest.raises(TypeError, match="floating"):
        cluster_hddc.fit(torch.ones(1, 100, 3, dtype=torch.int32))
