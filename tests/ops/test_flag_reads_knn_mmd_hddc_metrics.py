"""Host reads of the kNN, MMD, HDDC and metric ops on their CUDA path, counted on the CPU
(docs/kernels/bfn.md#host-reads-on-cuda; the technique of test_native_flag_reads.py: the dispatch chooses
``cuda`` and ``_native_call.launch_cuda`` runs the CPU kernel of the same name, so everything but the kernel
is the code a GPU runs and each read counted, ``.item()``, ``.tolist()``, ``bool()``/``int()`` of a
tensor, is a host-device synchronisation there).

Explicit reads per call on the CUDA path, before -> after (and inside ``deferred_checks()``):

=================================  ======  =====  ================================================
op                                 before  after  in ``deferred_checks()``
=================================  ======  =====  ================================================
mmd.mmd2 (a training loss)         1       1      0 (+1 per block)
knn.knn_radii                      1       1      1 (evaluation: results read at once)
knn.ball_count, knn_scan with r2   2       1      1 (r2 checked by the kernel's flag)
hddc Engine.estep (AkjBkQkDk)      6       1      1 (unit_of's range, the column count, x finite)
hddc Engine.estep (full)           3       1      1
  ... with a non-finite x          -       2      1 (its flags word, deferred in a block)
hddc Engine.mstep, .density        3       1      1 (the kernel writes no flags; unit_of's range)
metrics (evaluation)               1-6     1-4    same (input validation, then the flags word)
=================================  ======  =====  ================================================

Syncs that ``HostReads`` cannot see (boolean-mask indexing, ``nonzero``, ``unique``) are not in the table.
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers import assert_flagged_now_and_deferred, emulate_cuda_ops, host_reads

from diffrep import _native
from diffrep.ops import deferred_checks, hddc, knn, metrics, mmd, use_backend
from diffrep.ops.reference import hddc as ref_hddc

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")
F64 = torch.float64


@pytest.fixture
def cuda_path(monkeypatch):
    launched = emulate_cuda_ops(monkeypatch)
    with use_backend("cuda"):
        yield launched


def _randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _hddc_problem(model="AkjBkQkDk", U=2, B=2, n=40, d=4, K=3):
    """x (U, n, d), unit_of, w, resp, active and parameters from the twin's M-step."""
    x = _randn(U, n, d, seed=1) * torch.tensor([1.0, 2.0, 0.5, 3.0])[:d]
    unit_of = torch.tensor([1, 0])[:B]
    w = torch.ones(B, n, dtype=F64)
    resp = torch.softmax(_randn(B, n, K, seed=2) * 3, -1)
    active = torch.ones(B, K, dtype=torch.bool)
    nk, mu, W = ref_hddc.mstep_stats(x[unit_of], w, resp)
    p = hddc.params(nk, mu, W, w.sum(1), active, dict(model=model, threshold=0.2, dim_rule="cattell",
                                                       reg_covar=1e-6))
    return x, unit_of, w, resp, active, p


def _ops(bad=None):
    """name -> (kernel, call, deferrable): each op on small inputs, one of them made bad when ``bad`` names it."""
    x, y = _randn(6, 3, seed=3), _randn(5, 3, seed=4)
    r2 = torch.full((6,), 2.0, dtype=F64)
    if bad == "x":
        x[2, 1] = math.nan
    if bad == "r2":
        r2[4] = math.inf
    hx, unit_of, w, resp, active, p = _hddc_problem()
    _, _, _, _, _, pf = _hddc_problem("full")
    if bad == "hx":
        hx = hx.clone()
        hx[1, 3, 0] = math.nan  # unit 1, read by problem 0 at weight 1
    eng = hddc.Engine("cuda", hx)
    return {
        "mmd2": ("mmd2", lambda: mmd.mmd2(x, y), True),
        "knn_radii": ("knn_scan", lambda: knn.knn_radii(x, 2), False),
        "ball_count": ("knn_scan", lambda: knn.ball_count(y, x, r2), False),
        "knn_scan": ("knn_scan", lambda: knn.knn_scan(y, x, kk=2, r2=r2), False),
        # the E-step's flags are read (or deferred) only while x is not known to be all finite
        "estep": ("hddc_estep", lambda: eng.estep(unit_of, w, p), bad == "hx"),
        "estep_full": ("hddc_estep", lambda: eng.estep(unit_of, w, pf), bad == "hx"),
        "mstep": ("hddc_stats", lambda: eng.mstep(unit_of, w, resp, active), False),
        "density": ("hddc_stats", lambda: eng.density(unit_of, w, resp, active, 0.5), False),
    }


# reads per call on the CUDA path outside a block, and inside deferred_checks()
READS = {"mmd2": (1, 0), "knn_radii": (1, 1), "ball_count": (1, 1), "knn_scan": (1, 1), "estep": (1, 1),
         "estep_full": (1, 1), "mstep": (1, 1), "density": (1, 1)}


def _flat(out):
    return [v for v in (out if isinstance(out, tuple) else (out,)) if v is not None]


@pytest.mark.parametrize("name", sorted(READS))
def test_reads_per_call_and_the_cpu_paths_numbers(cuda_path, name):
    kernel, call, deferrable = _ops()[name]
    with use_backend("cpu", strict=True):
        want = call() if not name.startswith(("estep", "mstep", "density")) else None
    if want is None:  # the Engine names its backend itself: the CPU kernels through Engine("cpu", x)
        want = _cpu_engine_call(name)
    reads, got = host_reads(call)
    assert cuda_path == [kernel] and reads == READS[name][0]
    for a, b in zip(_flat(got), _flat(want), strict=True):
        assert torch.equal(a, b)  # the CUDA path passes the kernel what the CPU path does
    with deferred_checks() as checks:
        reads, got = host_reads(call)
        assert checks.pending() == (1 if deferrable else 0)
    assert reads == READS[name][1]
    for a, b in zip(_flat(got), _flat(want), strict=True):
        assert torch.equal(a, b)


def _cpu_engine_call(name):
    hx, unit_of, w, resp, active, p = _hddc_problem("full" if name == "estep_full" else "AkjBkQkDk")
    eng = hddc.Engine("cpu", hx)
    if name.startswith("estep"):
        return eng.estep(unit_of, w, p)
    return eng.mstep(unit_of, w, resp, active) if name == "mstep" else eng.density(unit_of, w, resp, active, 0.5)


def test_mmd2_with_grad_reads_once_and_not_in_its_backward(cuda_path):
    x = _randn(6, 3, seed=3).requires_grad_()
    y = _randn(5, 3, seed=4)
    reads, _ = host_reads(lambda: mmd.mmd2(x, y).backward())
    assert reads == 1 and cuda_path == ["mmd2"]
    with use_backend("cpu", strict=True):
        x2 = x.detach().clone().requires_grad_()
        mmd.mmd2(x2, y).backward()
    assert torch.equal(x.grad, x2.grad)
    x.grad = None
    with deferred_checks():
        assert host_reads(lambda: mmd.mmd2(x, y).backward())[0] == 0
    assert torch.equal(x.grad, x2.grad)


BAD = [("mmd2", "x", "mmd2: x or y contains NaN or infinite values"),
       ("knn_radii", "x", "knn_scan: x contains NaN or infinite values"),
       ("ball_count", "x", "knn_scan: q or centres contains NaN or infinite values"),
       ("ball_count", "r2", "r2 contains NaN or infinite values"),
       ("knn_scan", "r2", "r2 contains NaN or infinite values"),
       ("estep", "hx", "hddc.fit: x contains NaN or infinite values"),
       ("estep_full", "hx", "hddc.fit: x contains NaN or infinite values")]


@pytest.mark.parametrize("name,bad,message", BAD, ids=[f"{n}-{b}" for n, b, _ in BAD])
def test_bad_input_raises_the_cpu_paths_message_at_once_or_at_the_blocks_end(cuda_path, name, bad, message):
    _, call, deferrable = _ops(bad)[name]
    if name.startswith("estep"):
        hx, unit_of, w, _, _, p = _hddc_problem("full" if name == "estep_full" else "AkjBkQkDk")
        hx[1, 3, 0] = math.nan
        with pytest.raises(ValueError) as cpu:
            hddc.Engine("cpu", hx).estep(unit_of, w, p)
    else:
        with use_backend("cpu", strict=True), pytest.raises(ValueError) as cpu:
            call()
    assert message in str(cpu.value)
    assert_flagged_now_and_deferred(call, str(cpu.value), deferrable=deferrable)


def test_knn_r2_checked_by_the_kernel_on_the_cpu_too():
    """The CPU kernel flags a non-finite r2 (no Python check before it): NaN and -inf, not a finite r2 < 0
    (an empty ball), with the message naming r2; the twin raises the same."""
    q, c = _randn(4, 2, seed=5), _randn(7, 2, seed=6)
    for v in (math.nan, -math.inf):
        r2 = torch.ones(7, dtype=F64)
        r2[6] = v
        for backend in ("cpu", "reference"):
            with use_backend(backend, strict=True), pytest.raises(ValueError, match="^r2 contains NaN or inf"):
                knn.ball_count(q, c, r2)
    r2 = torch.full((7,), -1.0, dtype=F64)
    with use_backend("cpu", strict=True):
        assert torch.equal(knn.ball_count(q, c, r2), torch.zeros(4, dtype=torch.int64))


def test_hddc_unit_of_out_of_range_in_the_one_read(cuda_path):
    hx, unit_of, w, resp, active, p = _hddc_problem()
    eng = hddc.Engine("cuda", hx)
    bad = torch.tensor([0, 2])
    for call in (lambda: eng.estep(bad, w, p), lambda: eng.mstep(bad, w, resp, active),
                 lambda: eng.density(bad, w, resp, active, 0.5)):
        with pytest.raises(ValueError, match=r"unit_of must lie in \[0, 2\) \(the units of x\), got values in \[0, 2\]"):
            call()
    assert cuda_path == []  # refused before any launch


def test_hddc_subspace_width_read_with_unit_of(cuda_path):
    """The E-step's column count D (the largest active d_k, or d when a component takes the triangular form)
    comes from the same read as unit_of's range; both forms give the CPU path's numbers (a component with
    2 d_k > d + 7 takes the triangular form: d = 4 and d_k = 4 there)."""
    hx, unit_of, w, _, _, p = _hddc_problem()
    q = dict(p)
    q["dk"] = torch.full_like(p["dk"], 4)
    q["dk"][0, 1] = 1
    with use_backend("cpu", strict=True):
        want = hddc.Engine("cpu", hx).estep(unit_of, w, q)
    reads, got = host_reads(lambda: hddc.Engine("cuda", hx).estep(unit_of, w, q))
    assert reads == 1 and cuda_path == ["hddc_estep"]
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def _metric_calls():
    """name -> (kernel, call) of each metric op with a native kernel, on small inputs."""
    g = torch.Generator().manual_seed(8)
    scores = torch.randn(3, 20, generator=g, dtype=F64)
    labels = torch.randint(0, 2, (2, 20), generator=g)
    labels[1] = 1  # a single-class row: degenerate
    codes = _randn(20, 3, seed=7)
    lab, fac = torch.randint(0, 3, (20, 2), generator=g), torch.randint(0, 3, (20, 2), generator=g)
    batches = torch.randn(4, 5, 3, generator=g, dtype=F64)
    return {
        "auroc_matrix": ("auroc_matrix", lambda: metrics.auroc_matrix(scores, labels)),
        "auroc_matrix bool labels": ("auroc_matrix", lambda: metrics.auroc_matrix(scores, labels.bool(), "half")),
        "hist_discretize": ("hist_discretize", lambda: metrics.hist_discretize(codes, 5)),
        "mi_matrix": ("mi_matrix", lambda: metrics.mi_matrix(lab, fac)),
        "knn_mi_cd": ("knn_mi_cd", lambda: metrics.knn_mi_cd(scores, fac.T.contiguous(), 3)),
        "factor_vae_votes": ("factor_vae_votes", lambda: metrics.factor_vae_votes(
            batches, torch.tensor([0, 1, 0, 1]), torch.ones(3, dtype=F64), torch.ones(3, dtype=torch.bool), 2)),
    }


# reads per call: the input validation's (finiteness, 0/1 labels, active codes and factor_index's range in one
# read), then the flags word (before: auroc_matrix 4 and 3, reading its degenerate rows in every mode;
# factor_vae_votes 6, reading any(active), min and max of factor_index one by one)
METRIC_READS = {"auroc_matrix": 3, "auroc_matrix bool labels": 2, "hist_discretize": 2, "mi_matrix": 1,
                "knn_mi_cd": 2, "factor_vae_votes": 4}


@pytest.mark.parametrize("name", sorted(METRIC_READS))
def test_metric_ops_read_their_flags_once_after_their_validation(cuda_path, name):
    """The metric kernels (evaluation: every result is read on the host at once, so no deferred_checks() path)
    read their flags word once per call; no launcher waits inside C++ (knn_mi_cd's kernels guard their own
    indices: tests/ops/test_metrics_knn_mi_flag_guards.py), so these are all the synchronisations."""
    kernel, call = _metric_calls()[name]
    with use_backend("cpu", strict=True):
        want = call()
    reads, got = host_reads(call)
    assert cuda_path == [kernel] and reads == METRIC_READS[name]
    for a, b in zip(_flat(got), _flat(want), strict=True):
        assert torch.equal(a.nan_to_num(-7.0), b.nan_to_num(-7.0))
    with deferred_checks() as checks:
        assert host_reads(call)[0] == METRIC_READS[name] and checks.pending() == 0


def test_auroc_matrix_degenerate_rows_per_mode(cuda_path):
    """The single-class row: NaN ("nan", read nowhere), 0.5 ("half", no read), an error naming it ("raise")."""
    scores = torch.tensor([[0.1, 0.4, 0.35, 0.8]], dtype=F64)
    labels = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    auc, deg = metrics.auroc_matrix(scores, labels)
    assert auc[0, 0] == 0.75 and math.isnan(auc[1, 0]) and deg.tolist() == [False, True]
    assert metrics.auroc_matrix(scores, labels, "half")[0].flatten().tolist() == [0.75, 0.5]
    with pytest.raises(ValueError, match=r"labels: rows \[1\] hold a single class"):
        metrics.auroc_matrix(scores, labels, "raise")


def test_hddc_estep_reads_its_flags_while_x_is_not_known_finite(cuda_path):
    """x checked once per Engine in the E-step's pre-launch read: all finite, the flags word is never read; a NaN
    at a point of weight 0 with skip_zero (which the kernel skips, as on the CPU) leaves x not known finite, so
    each call reads its flags too; a NaN written into x in place (x's version moves) is found again."""
    hx, unit_of, w, _, _, p = _hddc_problem()
    eng = hddc.Engine("cuda", hx)
    assert [host_reads(lambda: eng.estep(unit_of, w, p))[0] for _ in range(3)] == [1, 1, 1]
    hx[0, 5, 2] = math.nan  # unit 0 is read by problem 1
    with pytest.raises(ValueError, match="^hddc.fit: x contains NaN or infinite values$"):
        eng.estep(unit_of, w, p)
    w0 = w.clone()
    w0[1, 5] = 0.0
    with use_backend("cpu", strict=True):
        want = hddc.Engine("cpu", hx).estep(unit_of, w0, p, skip_zero=True)
    reads, got = host_reads(lambda: eng.estep(unit_of, w0, p, skip_zero=True))
    assert reads == 2 and all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert cuda_path == ["hddc_estep"] * 5


def test_mmd2_in_the_trainers_op_checks_is_read_at_the_interval_boundary(cuda_path):
    """InfoDiffusion's MMD^2 term inside the trainer's deferred op checks (diffrep.train.log_interval): no read
    per step; the interval's check raises the op's message with the step it came from."""
    from diffrep.train.log_interval import LogInterval

    iv = LogInterval("cpu", deferred=True)
    z, prior = _randn(6, 3, seed=3), _randn(5, 3, seed=4)
    bad = z.clone()
    bad[0, 0] = math.nan
    reads = []
    for step, codes in ((1, z), (2, bad), (3, z)):
        with iv.op_checks(step):
            reads.append(host_reads(lambda: mmd.mmd2(codes, prior))[0])
        iv.check_loss(torch.tensor(1.0), step)
    assert reads == [0, 0, 0] and cuda_path == ["mmd2"] * 3
    with pytest.raises(ValueError, match=r"^mmd2: x or y contains NaN or infinite values \(at step 2\)\. Found "):
        iv.check(3)
