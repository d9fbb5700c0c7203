"""The HDDC EM (cluster/em.py) and M-step (ops/reference/hddc.py ``params_from_stats``) without the host
synchronisations their boolean masks and per-iteration tests made (docs/architecture.md "Host synchronisation
and the non-finite-loss check"; ``helpers.hidden_syncs`` counts the syncs that no Python read shows).

Per EM iteration on the CUDA path (``emulate_cuda_ops``), before -> after:

==========================================  ======  =====  ====================================================
where                                       before  after  what is left
==========================================  ======  =====  ====================================================
em: running.all(), dead.any(), .any()       3       1      the count of running problems (the stopping test)
deactivate: none.any() and its 4 masks      1 + 4   0      (every problem's largest, selected on the device)
em: the dead counts into stats (.cpu())     1/iter  1/em   one copy to the host after the loop
M-step: active.any(), W[active], 2 writes   1 + 3   0      (eigh on every slot, inactive ones as I)
M-step: torch.linalg.eigh                   1       1      eigh checks its solver's info on the host
em: running.nonzero() once some stopped     1       1      a data-dependent size: stopped problems not computed
==========================================  ======  =====  ====================================================

The E- and M-step kernels' own input checks (one read each, tests/ops/test_flag_reads_knn_mmd_hddc_metrics.py)
are unchanged. On the ten-iteration problem below: host reads 80 -> 40, hidden syncs 40 -> 11 per ``em`` call.
The values are those of the masked formulations, written here.
"""

from __future__ import annotations

import pytest
import torch

from helpers import emulate_cuda_ops, hidden_syncs, host_reads

from diffrep import _native
from diffrep.cluster.em import MIN_COUNT, deactivate, em
from diffrep.ops import hddc as ops
from diffrep.ops import use_backend
from diffrep.ops.reference import hddc as ref

F64 = torch.float64
CFG = dict(model="AkjBkQkDk", max_iter=10, tol=1e-3, threshold=0.2, dim_rule="cattell", reg_covar=1e-6)


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _deactivate_by_rows(active, cnt, resp, w):
    """Row by row: keep the active components with >= MIN_COUNT points; a row that would keep none keeps the
    active one of largest weighted mass (the first on a tie)."""
    keep = active & (cnt >= MIN_COUNT)
    for b in range(active.shape[0]):
        if not keep[b].any():
            mass = [float((resp[b, :, k] * w[b]).sum()) if active[b, k] else -1.0 for k in range(active.shape[1])]
            keep[b] = torch.zeros_like(keep[b])
            keep[b, mass.index(max(mass))] = True
    return keep, (active & ~keep).sum(1)


def test_deactivate_is_the_row_by_row_rule_without_a_read_or_a_mask():
    for seed in range(4):
        B, n, K = 6, 5, 4
        active = torch.rand(B, K, generator=_g(seed)) < 0.7
        active[:, 0] = True
        cnt = torch.randint(0, 4, (B, K), generator=_g(seed + 10))
        cnt[:2] = 1  # two rows that would lose every component
        resp = torch.softmax(torch.randn(B, n, K, generator=_g(seed + 20), dtype=F64), -1)
        w = torch.rand(B, n, generator=_g(seed + 30), dtype=F64)
        want = _deactivate_by_rows(active, cnt, resp, w)
        assert host_reads(lambda: deactivate(active, cnt, resp, w))[0] == 0
        syncs, got = hidden_syncs(lambda: deactivate(active, cnt, resp, w))
        assert syncs == [] and torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def _params_compacted(nk, mu, W, wtot, active):
    """The M-step's eigen part as it was: eigh on W[active] only, written back through the mask."""
    B, K, d = mu.shape
    lam = torch.zeros(B, K, d, dtype=W.dtype)
    Q = torch.eye(d, dtype=W.dtype).expand(B, K, d, d).clone()
    la, Qa = torch.linalg.eigh(W[active])
    lam[active] = la.flip(-1).clamp_min(0)
    Q[active] = ref._sign_fix(Qa.flip(-1))
    return lam, Q


def test_the_m_step_eigen_part_equals_the_masked_one_with_eigh_as_its_only_sync():
    B, K, d, n = 3, 4, 5, 30
    x = torch.randn(B, n, d, generator=_g(1), dtype=F64) * torch.tensor([1.0, 2.0, 0.5, 3.0, 1.5], dtype=F64)
    resp = torch.softmax(torch.randn(B, n, K, generator=_g(2), dtype=F64) * 3, -1)
    w = torch.ones(B, n, dtype=F64)
    active = torch.tensor([[True, False, True, True], [False, False, False, False], [True, True, True, True]])
    nk, mu, W = ref.mstep_stats(x, w, resp)
    lam, Q = _params_compacted(nk, mu, W, w.sum(1), active)
    reads, (syncs, p) = host_reads(lambda: hidden_syncs(lambda: ref.params_from_stats(nk, mu, W, w.sum(1), active)))
    assert reads == 0 and syncs == ["linalg_eigh"]
    assert torch.equal(p["lam"], lam) and torch.equal(p["Q"], Q)
    # inactive slots: lambda = 0, Q = I (the rest of the parameters are functions of lambda, Q and the sums)
    assert torch.equal(p["lam"][1], torch.zeros(K, d, dtype=F64)) and torch.equal(p["Q"][0, 1], torch.eye(d, dtype=F64))


def _problem(B=2, n=60, d=3, K=3):
    x = torch.randn(B, n, d, generator=_g(7), dtype=F64)
    resp = torch.softmax(torch.randn(B, n, K, generator=_g(2), dtype=F64) * 3, -1)
    return x, resp, torch.ones(B, n, dtype=F64), torch.ones(B, K, dtype=torch.bool)


@pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")
def test_em_syncs_per_call_on_the_cuda_path(monkeypatch):
    x, resp, w, active = _problem()
    want = em(ops.Engine("cpu", x), torch.arange(2), w, resp.clone(), active, CFG, None)
    emulate_cuda_ops(monkeypatch)
    stats = {"deactivated": torch.zeros(2, dtype=torch.int64)}
    with use_backend("cuda"):
        eng = ops.Engine("cuda", x)
        reads, (syncs, got) = host_reads(lambda: hidden_syncs(
            lambda: em(eng, torch.arange(2), w, resp.clone(), active, CFG, stats)))
    assert reads == 40 and sorted(syncs) == ["cpu"] + ["linalg_eigh"] * 10  # 10 iterations: the table above
    assert torch.equal(got[2], want[2]) and torch.equal(got[1], want[1])
    assert stats["deactivated"].tolist() == [0, 0]


def test_em_counts_the_deactivated_components_of_each_unit_into_stats():
    """A component with fewer than MIN_COUNT points of t_ik > 1/K dies at the first M-step; the counts reach
    ``stats`` per unit (unit_of maps problems to units) after the loop."""
    x, resp, w, active = _problem(B=3, K=4)
    resp = resp.clone()
    resp[0, :, 3] = 0.0       # problem 0: component 3 has no point
    resp[2, :, 1:3] = 0.0     # problem 2: components 1 and 2 have none
    resp[2, 0, 1] = 0.9       # ... component 1 one point
    resp = resp / resp.sum(-1, keepdim=True)
    stats = {"deactivated": torch.zeros(5, dtype=torch.int64)}
    unit_of = torch.tensor([4, 0, 2])
    p, _, _ = em(ops.Engine("cpu" if _native.cpu_available() else "reference", x), torch.arange(3), w,
                 resp, active, CFG, stats)
    lost = (active & ~p["active"]).sum(1)
    assert lost.tolist() == [1, 0, 2]
    stats2 = {"deactivated": torch.zeros(5, dtype=torch.int64)}
    em(ops.Engine("cpu" if _native.cpu_available() else "reference", x.new_zeros(5, 60, 3).index_copy(0, unit_of, x)),
       unit_of, w, resp, active, CFG, stats2)
    assert stats["deactivated"].tolist() == [1, 0, 2, 0, 0]
    assert stats2["deactivated"].tolist() == [0, 0, 2, 0, 1]
