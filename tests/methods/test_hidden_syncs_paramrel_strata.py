"""ParamReL's time-stratified MMD (``mmd_time_strata = G > 1``, docs/methods/paramrel.md "Mixed times") without
host synchronisations (diffrep.methods.paramrel_strata; docs/architecture.md "Host synchronisation and the
non-finite-loss check").

It averaged ``mmd2(z[bins == g], prior[bins == g])`` over the bins g with ``int((bins == g).sum()) >= 2``: per
loss call G host reads (the counts) and two boolean-mask indexings per kept bin, each a synchronisation on CUDA
(``helpers.hidden_syncs``). Now every bin's kernel sums come from the batch's Gram matrices through one-hot bin
indicators. Per ``_mmd`` call on 8 codes, G = 4 (three bins with >= 2 codes), before -> after:

===================================  ======  =====
count                                before  after
===================================  ======  =====
host reads (the bins' counts)        4       0
hidden syncs (boolean-mask rows)     6       0
===================================  ======  =====

The values are those of the per-bin formulation (float64, to rounding) and of a brute force written here.
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers import assert_same_inside_and_outside_bf16_autocast, hidden_syncs, host_reads, tiny_paramrel

from diffrep.methods.paramrel_strata import _stratified_mmd2, stratified_mmd2
from diffrep.ops import mmd as mmd_ops

F64 = torch.float64
STRATA = torch.tensor([0, 2, 2, 0, 3, 0, 2, 3, 3])  # bin 1 empty, every other bin with >= 2 pairs


def _pairs(n=9, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, d, generator=g, dtype=F64) * 1.3 + 0.2


def _brute(x, y, strata, G, kernel, bandwidth, estimator):
    """The mean over the bins with >= 2 pairs of the MMD^2 of their rows, in Python floats, pair by pair."""
    d = x.shape[1]
    c = bandwidth if bandwidth is not None else (d * d if kernel == "rbf" else 2.0 * d)

    def k(u, v):
        r2 = sum((float(a) - float(b)) ** 2 for a, b in zip(u, v))
        return math.exp(-r2 / c) if kernel == "rbf" else c / (c + r2)

    vals = []
    for g in range(G):
        rows = [i for i in range(len(strata)) if int(strata[i]) == g]
        n = len(rows)
        if n < 2:
            continue
        pairs = [(i, j) for i in rows for j in rows if estimator == "biased" or i != j]
        norm = n * n if estimator == "biased" else n * (n - 1)
        kxx = sum(k(x[i], x[j]) for i, j in pairs) / norm
        kyy = sum(k(y[i], y[j]) for i, j in pairs) / norm
        kxy = sum(k(x[i], y[j]) for i in rows for j in rows) / (n * n)
        vals.append(kxx + kyy - 2 * kxy)
    return sum(vals) / len(vals) if vals else 0.0


def _per_bin(x, y, strata, G, **kw):
    """The formulation before: mmd2 (the native kernel) on each bin's rows, bins of >= 2 pairs, averaged."""
    vals = [mmd_ops.mmd2(x[strata == g], y[strata == g], **kw) for g in range(G) if int((strata == g).sum()) >= 2]
    return torch.stack(vals).mean() if vals else x.sum() * 0


CASES = [("rbf", None, "biased"), ("rbf", 1.7, "unbiased"), ("imq", None, "unbiased"), ("imq", 0.5, "biased")]


@pytest.mark.parametrize("kernel,bandwidth,estimator", CASES)
def test_the_stratified_mmd_is_the_brute_force_and_the_per_bin_formulation(kernel, bandwidth, estimator):
    x, y = _pairs()
    got = stratified_mmd2(x, y, STRATA, 4, kernel, bandwidth, estimator)
    assert float(got) == pytest.approx(_brute(x, y, STRATA, 4, kernel, bandwidth, estimator), rel=1e-12, abs=1e-14)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    new = _stratified_mmd2(xa, y, STRATA, 4, kernel, bandwidth, estimator)
    old = _per_bin(xb, y, STRATA, 4, kernel=kernel, bandwidth=bandwidth, estimator=estimator)
    new.backward()
    old.backward()
    torch.testing.assert_close(new, old, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-13)


def test_bins_below_two_pairs_are_left_out_and_none_gives_zero_with_x_in_the_graph():
    x, y = _pairs(5)
    one_pair_each = torch.tensor([0, 1, 2, 3, 4])
    xg = x.clone().requires_grad_()
    out = stratified_mmd2(xg, y, one_pair_each, 5)
    out.backward()
    assert float(out.detach()) == 0.0 and torch.equal(xg.grad, torch.zeros_like(x))
    nan_x = x.clone()
    nan_x[0, 0] = math.nan  # the private path is not checked: a NaN code gives a NaN loss, as before
    assert math.isnan(float(_stratified_mmd2(nan_x, y, one_pair_each, 5)))
    # bin 4 of [0, 0, 1, 1, 4] is a single pair: the mean is over bins 0 and 1 only
    strata = torch.tensor([0, 0, 1, 1, 4])
    assert float(stratified_mmd2(x, y, strata, 5)) == pytest.approx(_brute(x, y, strata, 5, "rbf", None, "biased"),
                                                                     rel=1e-12)


def test_no_host_read_and_no_hidden_sync_where_the_per_bin_formulation_had_them():
    x, y = _pairs(8)
    strata = torch.tensor([0, 0, 1, 2, 2, 3, 3, 3])  # bins 0, 2, 3 with >= 2 pairs
    xg = x.clone().requires_grad_()
    assert host_reads(lambda: _stratified_mmd2(xg, y, strata, 4).backward())[0] == 0
    assert hidden_syncs(lambda: _stratified_mmd2(xg, y, strata, 4).backward())[0] == []
    # before: a read per bin and two boolean-mask rows per kept bin (the table above)
    assert host_reads(lambda: _per_bin(x, y, strata, 4))[0] == 4
    assert hidden_syncs(lambda: _per_bin(x, y, strata, 4))[0] == ["__getitem__[bool mask]"] * 6
    # the public function checks its inputs in two reads: x and y finite, the strata's range
    assert host_reads(lambda: stratified_mmd2(x, y, strata, 4))[0] == 2


def test_paramrel_loss_with_time_strata_syncs_no_more_than_without():
    x = torch.randint(0, 2, (8, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    counts = {}
    for G in (1, 4):
        m = tiny_paramrel("discrete", mmd_time_strata=G)
        g = torch.Generator().manual_seed(0)
        counts[G] = (host_reads(lambda: m.loss(x, step=0, generator=g))[0],
                     hidden_syncs(lambda: m.loss(x, step=0, generator=g))[0])
    assert counts[4] == counts[1] and counts[4][1] == []


def test_paramrel_mmd_is_the_per_bin_formulation_on_the_same_draws():
    m = tiny_paramrel("continuous", mmd_time_strata=3, mmd_estimator="unbiased")
    z = torch.randn(10, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    t = torch.rand(10, generator=torch.Generator().manual_seed(3), dtype=F64)
    got = m._mmd(z, t, torch.Generator().manual_seed(4))
    prior = torch.randn(z.shape, generator=torch.Generator().manual_seed(4), dtype=F64)  # _mmd's one draw
    bins = (t * 3).long().clamp(max=2)
    want = _per_bin(z, prior, bins, 3, kernel="rbf", estimator="unbiased")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


def test_the_same_numbers_under_bf16_autocast():
    x, y = (v.float() for v in _pairs())
    assert_same_inside_and_outside_bf16_autocast("stratified_mmd2", lambda: stratified_mmd2(x, y, STRATA, 4))


@pytest.mark.parametrize("call, error, message", [
    (lambda x, y: stratified_mmd2(x, y[:5], STRATA, 4), ValueError, r"^x and y must be paired samples of one shape"),
    (lambda x, y: stratified_mmd2(x, y.float(), STRATA, 4), TypeError, r"^x and y must both be float32 or both float64"),
    (lambda x, y: stratified_mmd2(x[:, None], y, STRATA, 4), ValueError, r"^x must have shape \(samples, d\), got \(9, 1, 3\)$"),
    (lambda x, y: stratified_mmd2(x, y[0], STRATA, 4), ValueError, r"^y must have shape \(samples, d\), got \(3,\)$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA.double(), 4), TypeError,
     r"^strata must be an int32 or int64 tensor, got torch.float64$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA.tolist(), 4), TypeError, r"^strata must be an int32 or int64 tensor, got list$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA.to("meta"), 4), ValueError,
     r"^all tensors must be on one device; got x on cpu, y on cpu, strata on meta$"),
    (lambda x, y: stratified_mmd2(x, y.to("meta"), STRATA, 4), ValueError,
     r"^all tensors must be on one device; got x on cpu, y on meta, strata on cpu$"),
    (lambda x, y: stratified_mmd2(x.to("meta"), y, STRATA, 4), ValueError,
     r"^all tensors must be on one device; got x on meta, y on cpu, strata on cpu$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA[:4], 4), ValueError, r"^strata must have shape \(9,\)"),
    (lambda x, y: stratified_mmd2(x, y, STRATA, 3), ValueError, r"^strata must lie in \[0, 2\], got range \[0, 3\]$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA - 1, 4), ValueError, r"^strata must lie in \[0, 3\], got range \[-1, 2\]$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA, 0), ValueError, r"^num_strata must be a positive int"),
    (lambda x, y: stratified_mmd2(x * math.nan, y, STRATA, 4), ValueError, r"^x or y contains NaN or infinite values$"),
    (lambda x, y: stratified_mmd2(x, y, STRATA, 4, "gauss"), ValueError, r"^kernel must be one of"),
    (lambda x, y: stratified_mmd2(x, y, STRATA, 4, estimator="v"), ValueError, r"^estimator must be one of"),
    (lambda x, y: stratified_mmd2(x, y, STRATA, 4, bandwidth=-1.0), ValueError, r"^bandwidth: every h must be > 0"),
], ids=["unpaired", "dtypes", "x-shape", "y-shape", "float-strata", "list-strata", "strata-device", "y-device",
        "x-device", "strata-shape", "strata-high", "strata-low", "no-strata", "nan",
        "kernel", "estimator", "bandwidth"])
def test_the_public_function_names_the_problem(call, error, message):
    x, y = _pairs()
    with pytest.raises(error, match=message):
        call(x, y)
