"""Index guards that keep the HDDC and FactorVAE-vote kernels inside their buffers on every backend:
hddc.Engine checks unit_of in Python (the CUDA binding cannot read device memory to check it, and
the twin's x[unit_of] would wrap a negative unit around) and that its inputs sit on x's device,
and the factor_vae_votes binding refuses more active code ids than d (with compressed indices a
vote lands in column "index into active", so a repeated id could write past the vote matrix)."""

import numpy as np
import pytest
import torch

import diffrep
from diffrep.ops import hddc
from diffrep.ops._native_call import run

BACKENDS = ["reference"] + (["cpu"] if diffrep._native.cpu_available() else [])


def _batch(U=2, B=2, n=20, d=3, K=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(U, n, d, generator=g, dtype=torch.float64)
    w = torch.ones(B, n, dtype=torch.float64)
    resp = torch.softmax(torch.randn(B, n, K, generator=g, dtype=torch.float64), -1)
    return x, w, resp, torch.ones(B, K, dtype=torch.bool)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("unit_of", [[0, 2], [-1, 0]])
def test_unit_of_outside_the_units_of_x_is_rejected(backend, unit_of):
    x, w, resp, active = _batch()
    eng = hddc.Engine(backend, x)
    bad = torch.tensor(unit_of)
    for call in (lambda: eng.mstep(bad, w, resp, active), lambda: eng.density(bad, w, resp, active, 0.5)):
        with pytest.raises(ValueError, match=r"unit_of must lie in \[0, 2\)"):
            call()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unit_of_must_be_a_1d_int64_tensor(backend):
    x, w, resp, active = _batch()
    eng = hddc.Engine(backend, x)
    for bad in (torch.tensor([0, 1], dtype=torch.int32), torch.tensor([[0, 1]]), [0, 1]):
        with pytest.raises(TypeError, match="unit_of"):
            eng.mstep(bad, w, resp, active)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_on_another_device_than_x_are_rejected(backend):
    """(A CUDA kernel launched on x's device would read another GPU's pointer: 'meta' stands in.)"""
    x, w, resp, active = _batch()
    eng = hddc.Engine(backend, x)
    unit_of = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="unit_of is on meta"):
        eng.mstep(unit_of.to("meta"), w, resp, active)
    with pytest.raises(ValueError, match="w is on meta"):
        eng.mstep(unit_of, w.to("meta"), resp, active)
    with pytest.raises(ValueError, match="resp is on meta"):
        eng.density(unit_of, w, resp.to("meta"), active, 0.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_valid_unit_of_reads_the_named_units(backend):
    """unit_of = [1, 1] gives the sums of unit 1 for both problems, written out by hand."""
    x, w, resp, active = _batch()
    nk, mu, _ = hddc.Engine(backend, x).mstep(torch.tensor([1, 1]), w, resp, active)
    for b in range(2):
        t = resp[b]  # (n, K), w = 1
        torch.testing.assert_close(nk[b], t.sum(0).to(nk.dtype))
        torch.testing.assert_close(mu[b], ((t.T @ x[1]) / t.sum(0)[:, None]).to(mu.dtype))


needs_cpu = pytest.mark.skipif(not diffrep._native.cpu_available(), reason="_cpu not built")
I64 = torch.int64


def _votes(batches, factor_index, g, active, F, compressed):
    nt, B, d = batches.shape
    votes, arg = torch.zeros(F, d, dtype=I64), torch.empty(nt, dtype=I64)
    flags = run("cpu", "factor_vae_votes", torch.device("cpu"), batches=batches, factor_index=factor_index,
                global_var=g, active=active, nt=nt, B=B, d=d, F=F, compressed=compressed, votes=votes, arg=arg)
    return flags, votes, arg


@needs_cpu
def test_factor_vae_votes_refuses_more_active_ids_than_d():
    batches = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(ValueError, match="more code ids than d"):
        _votes(batches, torch.tensor([0, 1, 0]), torch.ones(2, dtype=torch.float64), torch.tensor([0, 0, 1]), 2, True)


@needs_cpu
def test_factor_vae_votes_with_a_repeated_id_stay_inside_the_vote_matrix():
    """na = d with a repeated id: the first index of the smallest ddof=1 variance ratio wins (the
    repeat never does), so every vote column is < d; checked against NumPy by hand."""
    g = torch.Generator().manual_seed(2)
    batches = torch.randn(6, 5, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.0, 1.2])
    gv = torch.tensor([1.0, 1.0, 1.44], dtype=torch.float64)
    active = torch.tensor([2, 2, 1])
    fi = torch.tensor([0, 1, 0, 1, 0, 1])
    flags, votes, arg = _votes(batches, fi, gv, active, 2, True)
    assert flags == 0
    ratio = np.var(batches.numpy()[:, :, active.numpy()], axis=1, ddof=1) / gv.numpy()[active.numpy()]
    want = np.argmin(ratio, axis=1)
    np.testing.assert_array_equal(arg.numpy(), want)
    expected = np.zeros((2, 3), dtype=np.int64)
    np.add.at(expected, (fi.numpy(), want), 1)
    np.testing.assert_array_equal(votes.numpy(), expected)
