"""DyGA's split children (Alg. 2; docs/kernels/hddc.md, step 3): they start at mu +- sqrt(lambda_1) q_1
with the parent's covariance and weights 1/2, on the native kernels and on the twin alike. Values
are derived by hand in numpy: the start, the first E-step's sigmoid(2 s / sqrt(lambda_1)), and the
children's means, weights and scatter after one M-step."""

import numpy as np
import pytest
import torch

from diffrep.cluster import em as cem
from diffrep.cluster import split
from diffrep.ops import hddc as ops
from diffrep.ops.reference import hddc as ref

CFG = dict(threshold=0.2, dim_rule="cattell", reg_covar=1e-6, tol=0.0)


def two_blob_parent(model, seed=0, n=300, d=4, scale=1.0):
    """One unit: a parent component 0 holding two blobs (the first 200 points) and a component 1
    holding the rest; returns x (1, n, d), w, resp, the twin's parameters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, d, generator=g, dtype=torch.float64) * 0.3
    x[0, :100, 0] += 2.0
    x[0, 100:200, 0] -= 2.0
    x[0, 100:200, 1] += 0.7
    x[0, 200:] += 10.0
    x = x * scale
    resp = torch.zeros(1, n, 2, dtype=torch.float64)
    resp[0, :200, 0] = 1.0
    resp[0, 200:, 1] = 1.0
    w = torch.ones(1, n, dtype=torch.float64)
    active = torch.ones(1, 2, dtype=torch.bool)
    p = ref.m_step(x, w, resp, active, model=model, threshold=0.2, reg_covar=1e-6)
    return x, w, resp, p


def leading(p, model):
    """(lambda_1, q_1) of the parent (unit 0, component 0), by numpy."""
    if model == "full":
        lam, vec = np.linalg.eigh(p["cov"][0, 0].numpy())
        return lam[-1], vec[:, -1]
    W = (p["Q"][0, 0] * p["lam"][0, 0]) @ p["Q"][0, 0].T        # the parent's scatter
    lam, vec = np.linalg.eigh(W.numpy())
    return lam[-1], vec[:, -1]


@pytest.mark.parametrize("model", ["AkjBkQkDk", "full"])
@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_children_start_at_mu_plus_minus_sqrt_lambda1_q1_with_the_parents_covariance(model, scale):
    x, w, resp, p = two_blob_parent(model, scale=scale)
    p0 = split.child_starts(p, torch.tensor([0]), torch.tensor([0]))
    lam1, q1 = leading(p, model)
    mu = x[0, :200].mean(0).numpy()
    q = p0["mu"][0, 0].numpy() - mu                                  # + child offset
    np.testing.assert_allclose(np.linalg.norm(q), np.sqrt(lam1), rtol=1e-10)
    np.testing.assert_allclose(np.abs(q @ q1), np.sqrt(lam1), rtol=1e-10)   # along q_1 (either sign)
    np.testing.assert_allclose(p0["mu"][0, 1].numpy(), mu - q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p0["pi"].numpy(), [[0.5, 0.5]])
    assert p0["active"].all()
    keys = ("cov",) if model == "full" else ("Q", "a", "b", "dk")
    for key in keys:
        for c in range(2):
            assert torch.equal(p0[key][0, c], p[key][0, 0])
    if model != "full":
        np.testing.assert_allclose(float(p0["a"][0, 0, 0]), lam1, rtol=1e-10)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("model", ["AkjBkQkDk", "full"])
@pytest.mark.parametrize("scale", [1.0, 0.1])                       # lambda_1 ~ 4 and ~ 0.04
def test_first_estep_is_the_sigmoid_of_the_projection_and_one_mstep_gives_weighted_children(model, backend, scale):
    """Started at mu +- sqrt(l1) q1 with the parent's Sigma, a member's "+" responsibility is
    sigmoid(2 s / sqrt(l1)), s = q1^T (x - mu); one M-step then gives the children's weighted means,
    weights (sum of t over the members / #members) and scatter: all checked against numpy."""
    x, w, resp, p = two_blob_parent(model, seed=1, scale=scale)
    if backend == "cpu":
        p = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in p.items()}
    eng = ops.Engine(backend, x)
    cfg = dict(CFG, model=model, max_iter=1)
    kept, p2 = split._children(eng, w, p, resp, [(0, 0)], 0.5, cfg)
    assert kept == [(0, 0)]
    p0 = split.child_starts(p, torch.tensor([0]), torch.tensor([0]))
    lam1 = leading(p, model)[0]
    xm = x[0, :200].numpy()                                          # the members (t > 1/2)
    mu = xm.mean(0)
    dplus = (p0["mu"][0, 0].numpy() - mu) / np.sqrt(lam1)           # unit vector, the "+" side
    s = (xm - mu) @ dplus
    t = 1 / (1 + np.exp(-2 * s / np.sqrt(lam1)))
    # the E-step at the start, on the members
    wm = (w[0] * (torch.arange(300) < 200)).to(x.dtype)
    r0 = eng.estep(torch.tensor([0]), wm[None].contiguous(), p0, True)[0][0, :200, 0]
    np.testing.assert_allclose(r0.numpy(), t, rtol=1e-9, atol=1e-12)
    assert ((r0 > 0.5).numpy() == (s > 0)).all()
    for c, tc in enumerate([t, 1 - t]):
        mean = (tc[:, None] * xm).sum(0) / tc.sum()
        np.testing.assert_allclose(p2["mu"][0, c].numpy(), mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(float(p2["pi"][0, c]), tc.sum() / 200, rtol=1e-9)
        e = xm - mean
        scatter = (tc[:, None, None] * e[:, :, None] * e[:, None, :]).sum(0) / tc.sum()
        if model == "full":
            np.testing.assert_allclose(p2["cov"][0, c].numpy(), scatter + 1e-6 * np.eye(4), rtol=1e-7, atol=1e-12)
        else:
            lam = np.linalg.eigvalsh(scatter)[::-1]
            np.testing.assert_allclose(p2["lam"][0, c].numpy(), lam, rtol=1e-8, atol=1e-12)
    # the children really separate the two blobs: each blob's members go (mostly) to one child
    side = t > 0.5
    assert side[:100].mean() in (pytest.approx(1.0, abs=0.02), pytest.approx(0.0, abs=0.02))
    assert abs(side[:100].mean() - side[100:].mean()) > 0.95


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_native_and_twin_refits_agree_from_the_specified_start(backend):
    """A full (converged) refit of two candidates in one batch gives the same children on both
    backends, and the children of a candidate equal those of a batch of one (batch invariance)."""
    x, w, resp, p = two_blob_parent("AkjBkQkDk", seed=2)
    cfg = dict(CFG, model="AkjBkQkDk", max_iter=30, tol=1e-9)
    pd = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in p.items()}
    ka, pa = split._children(ops.Engine("cpu", x), w, pd, resp, [(0, 0), (0, 1)], 0.5, cfg)
    kb, pb = split._children(ops.Engine("reference", x), w, p, resp, [(0, 0), (0, 1)], 0.5, cfg)
    assert ka == kb and (0, 0) in ka
    i = ka.index((0, 0))
    torch.testing.assert_close(pa["mu"][i], pb["mu"][i], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(pa["pi"][i], pb["pi"][i], rtol=1e-7, atol=1e-9)
    k1, p1 = split._children(ops.Engine(backend, x), w, pd if backend == "cpu" else p, resp, [(0, 0)], 0.5, cfg)
    torch.testing.assert_close(p1["mu"][0], (pa if backend == "cpu" else pb)["mu"][i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_a_one_sided_candidate_is_dropped(backend):
    """Members all on one side of mu except one point: the "-" child has fewer than 2 points of
    t > 1/2, the EM deactivates it and the candidate is not split."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 60, 3, generator=g, dtype=torch.float64) * 1e-3
    x[0, 0, 0] = -50.0                                              # one far point on the "-" side
    w = torch.ones(1, 60, dtype=torch.float64)
    resp = torch.ones(1, 60, 1, dtype=torch.float64)
    p = ref.m_step(x, w, resp, torch.ones(1, 1, dtype=torch.bool), threshold=0.2)
    p0 = split.child_starts(p, torch.tensor([0]), torch.tensor([0]))
    r0 = ops.Engine("reference", x).estep(torch.tensor([0]), w, p0)[0]
    assert int((r0[0, :, 0] > 0.5).sum()) == 1 or int((r0[0, :, 1] > 0.5).sum()) == 1
    cfg = dict(CFG, model="AkjBkQkDk", max_iter=5)
    kept, p2 = split._children(ops.Engine(backend, x), w, p, resp, [(0, 0)], 0.5, cfg)
    assert kept == [] and p2 is None
    assert cem.MIN_COUNT == 2


def test_members_are_strictly_above_phi():
    """Eq. 4's membership is t_ik > phi: points with t exactly 1/2 do not enter the refit (the same
    children as with those points given to the other component)."""
    x, w, resp, p = two_blob_parent("AkjBkQkDk", seed=4)
    tie = resp.clone()
    tie[0, 200:210] = 0.5
    other = resp.clone()
    other[0, 200:210] = torch.tensor([0.0, 1.0], dtype=torch.float64)
    cfg = dict(CFG, model="AkjBkQkDk", max_iter=3)
    for backend in ("cpu", "reference"):
        eng = ops.Engine(backend, x)
        pp = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in p.items()}
        _, a = split._children(eng, w, pp, tie, [(0, 0)], 0.5, cfg)
        _, b = split._children(eng, w, pp, other, [(0, 0)], 0.5, cfg)
        assert torch.equal(a["mu"], b["mu"]) and torch.equal(a["pi"], b["pi"])


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_split_pass_children_replace_the_parent_with_pi_k_times_the_sub_weights(backend):
    """One split pass (rule "dyga", psi = 0: both clusters are candidates, in descending density):
    the two-blob parent takes the only free slot; its children (the batch's K = 2 refit) replace it
    with weights pi_k x the sub-mixture weights and their means; the other candidate finds no slot.
    Under rule "bic" a split of a single Gaussian blob does not raise the BIC and is refused."""
    x, w, resp2, _ = two_blob_parent("AkjBkQkDk", seed=5)
    resp2[0, 150:200] = torch.tensor([0.0, 1.0], dtype=torch.float64)   # parent: blobs of 100 and 50 points
    resp = torch.cat([resp2, torch.zeros(1, 300, 1, dtype=torch.float64)], -1)
    active = torch.tensor([[True, True, False]])
    p = ref.m_step(x, w, resp, active, threshold=0.2)
    if backend == "cpu":
        p = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in p.items()}
    eng = ops.Engine(backend, x)
    cfg = dict(CFG, model="AkjBkQkDk", max_iter=20, tol=1e-6)
    _, L, _ = eng.estep(torch.tensor([0]), w, p)
    stats = {"splits": torch.zeros(1, dtype=torch.int64)}
    dens = ref.cluster_density(x, w, resp, active)[2][0]
    k = int(torch.nan_to_num(dens, nan=-1.0).argmax())                   # the denser candidate gets the slot
    _, p2 = split._children(eng, w, p, resp, [(0, k)], 0.5, cfg)
    q, r, L2, n_split = split.split_pass(eng, w, p, resp, L, cfg, "dyga", 0.5, 0.0, 0.0, 10.0, 3,
                                         torch.Generator().manual_seed(0), stats)
    assert n_split == 1 and stats["splits"].tolist() == [1] and q["active"].tolist() == [[True, True, True]]
    pik = float(p["pi"][0, k])
    for slot, c in ((k, 0), (2, 1)):
        assert float(q["pi"][0, slot]) == pytest.approx(pik * float(p2["pi"][0, c]), rel=1e-12)
        torch.testing.assert_close(q["mu"][0, slot], p2["mu"][0, c].to(q["mu"].dtype), rtol=1e-12, atol=1e-12)
    assert float(q["pi"][0, 1 - k]) == pytest.approx(float(p["pi"][0, 1 - k]), rel=1e-12)
    assert float(q["pi"].sum()) == pytest.approx(1.0, rel=1e-12)
    assert abs(float(p2["pi"][0, 0]) - float(p2["pi"][0, 1])) > 0.2          # unequal children
    torch.testing.assert_close(r, eng.estep(torch.tensor([0]), w, q)[0])
    # rule "bic": the single blob (component 1) split is refused, the two-blob one kept
    stats = {"splits": torch.zeros(1, dtype=torch.int64)}
    one = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
    q1, _, _, n1 = split.split_pass(eng, w, one, resp, L, cfg, "bic", 0.5, 0.0, 0.0, 10.0, 3,
                                    torch.Generator().manual_seed(0), stats)
    assert n1 == 1 and bool(q1["active"][0, 2])
    resp_single = torch.zeros(1, 300, 4, dtype=torch.float64)
    resp_single[0, 200:, 0] = 1.0
    resp_single[0, :200, 1] = 1.0
    ps = ref.m_step(x, w, resp_single, torch.tensor([[True, True, False, False]]), threshold=0.2)
    if backend == "cpu":
        ps = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in ps.items()}
    _, Ls, _ = eng.estep(torch.tensor([0]), w, ps)
    runs = {}
    for rule in ("bic", "dyga"):
        st = {"splits": torch.zeros(1, dtype=torch.int64)}
        qq, _, _, runs[rule] = split.split_pass(eng, w, {k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                                          for k, v in ps.items()}, resp_single, Ls, cfg, rule, 0.5,
                                                 0.0, 0.0, 10.0, 4, torch.Generator().manual_seed(0), st)
    assert runs == {"bic": 1, "dyga": 2}      # BIC keeps the two-blob split only; the paper's rule splits both
