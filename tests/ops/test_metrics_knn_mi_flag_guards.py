"""knn_mi_cd flags its bad indices from the kernels that read them: the label counts skip and flag a label
outside [0, V), and metrics_math.h's ``group_row`` drops and flags a vorder entry outside [0, n). The CUDA
launcher therefore no longer waits on the host for a separate range check before its later kernels
(docs/kernels/metrics.md#host-reads-on-cuda); the CPU kernel runs the same flag logic, so the CUDA path
emulated on the CPU (tests/helpers.py ``emulate_cuda_ops``) exercises it. Expected values come from the
pure-PyTorch twin (the reference backend) and a brute-force rule written here."""

import numpy as np
import pytest
import torch

from helpers import HostReads, emulate_cuda_ops

from diffrep import _native
from diffrep.ops import metrics as ops
from diffrep.ops import use_backend
from diffrep.ops._native_call import CLASS_OUT_OF_RANGE, run
from diffrep.ops.reference import metrics as ref_metrics

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="_cpu not built")

F64, I64 = torch.float64, torch.int64
MESSAGE = "^metrics.knn_mi_cd: an index or label is out of range$"


def _raw(sx, vorder, labels, v, k=3):
    """The CPU binding: (flags, mi (J, F))."""
    j, n = sx.shape
    f = labels.shape[0]
    mi = torch.full((j, f), -1.0, dtype=F64)
    flags = run("cpu", "knn_mi_cd", torch.device("cpu"), sx=sx, vorder=vorder, labels=labels, J=j, F=f, n=n, V=v,
                k=k, dscratch=torch.empty(4 * j * n, dtype=F64),
                iscratch=torch.empty(2 * f * v + j * (n + 1) + j * v, dtype=I64), mi=mi)
    return flags, mi


def _problem(j=3, f=2, n=40, v=3, seed=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(j, n, generator=g, dtype=F64)
    lab = torch.randint(0, v, (f, n), generator=g)
    for r in range(f):
        lab[r, :v] = torch.arange(v)  # every class present: the twin's remap keeps the codes as they are
    sx, vorder = torch.sort(x, dim=1, stable=True)
    return x, lab, sx.contiguous(), vorder.contiguous()


def _twin(x, lab, k=3):
    return ref_metrics.knn_mi_cd(x, lab, k)


@pytest.mark.parametrize("bad", [-1, 3, 10**12, -(2**62)])
def test_a_label_out_of_range_flags_and_leaves_the_other_factors_exact(bad):
    x, lab, sx, vorder = _problem()
    wrong = lab.clone()
    wrong[0, 17] = bad
    flags, mi = _raw(sx, vorder, wrong, 3)
    assert flags == CLASS_OUT_OF_RANGE
    torch.testing.assert_close(mi[:, 1:], _twin(x, lab[1:]), rtol=1e-12, atol=1e-12)
    assert torch.equal(mi[:, 0], torch.zeros(3, dtype=F64))  # the CPU kernel's value on a flagged pair


@pytest.mark.parametrize("bad", [-1, 40, 10**12, -(2**62)])
def test_a_vorder_entry_out_of_range_flags_and_leaves_the_other_latents_exact(bad):
    x, lab, sx, vorder = _problem()
    wrong = vorder.clone()
    wrong[1, 23] = bad
    flags, mi = _raw(sx, wrong, lab, 3)
    assert flags == CLASS_OUT_OF_RANGE
    want = _twin(x, lab)
    torch.testing.assert_close(mi[[0, 2]], want[[0, 2]], rtol=1e-12, atol=1e-12)
    assert torch.equal(mi[1], torch.zeros(2, dtype=F64))


def _flag_by_brute_force(vorder, labels, n, v):
    """An index out of range, or a latent row whose argsort gives some label more points than it has."""
    if ((labels < 0) | (labels >= v)).any() or ((vorder < 0) | (vorder >= n)).any():
        return True
    for row in vorder:
        for lab in labels:
            if any(np.sum(lab[row] == c) > np.sum(lab == c) for c in range(v)):
                return True
    return False


def test_junk_indices_are_flagged_exactly_when_brute_force_says_so():
    rng = np.random.RandomState(11)
    seen = set()
    for _ in range(300):
        n, j, f, v = rng.randint(1, 9), rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 4)
        mode = rng.randint(3)  # junk anywhere, in-range junk, or permutations with in-range labels
        lo, hi = (-3, n + 3) if mode == 0 else (0, n)
        vorder = rng.randint(lo, hi, (j, n)) if mode < 2 else np.stack([rng.permutation(n) for _ in range(j)])
        labels = rng.randint(-1 if mode == 0 else 0, v + (mode == 0), (f, n))
        flags, mi = _raw(torch.from_numpy(np.sort(rng.randn(j, n), axis=1)), torch.from_numpy(vorder),
                         torch.from_numpy(labels), v)
        want = _flag_by_brute_force(vorder, labels, n, v)
        assert flags == (CLASS_OUT_OF_RANGE if want else 0)
        assert bool(torch.isfinite(mi).all())
        seen.add(want)
    assert seen == {True, False}


@pytest.fixture
def cuda_path(monkeypatch):
    launched = emulate_cuda_ops(monkeypatch)
    with use_backend("cuda"):
        yield launched


def test_the_cuda_path_gives_the_twins_values_with_one_flag_read(cuda_path):
    """Ties, a singleton class and k above a group's size: the values of the twin; the flags word read once
    after the input check (2 reads), as before the launcher's own host wait was removed."""
    g = torch.Generator().manual_seed(2)
    x = torch.round(torch.randn(2, 50, generator=g, dtype=F64) * 2) / 2
    lab = torch.randint(0, 4, (3, 50), generator=g)
    lab[2, 0] = 9  # a singleton class: its point is dropped
    with HostReads() as r:
        got = ops.knn_mi_cd(x, lab, 20)
    assert r.count == 2 and cuda_path == ["knn_mi_cd"]
    torch.testing.assert_close(got, _twin(x, lab, 20), rtol=1e-12, atol=1e-12)


def test_a_label_out_of_range_raises_the_same_message_on_both_paths(cuda_path, monkeypatch):
    """The flag set by the guarded label counts (no separate check kernel any more) raises the op's message on
    the CUDA path, after the same 2 reads, and on the CPU path."""
    remap = ref_metrics._remap

    def broken(labels):  # a remap that lets one code out of its range: the public op cannot produce one
        codes, sizes = remap(labels)
        codes[5, 0] = sizes[0]
        return codes, sizes

    monkeypatch.setattr(ref_metrics, "_remap", broken)
    x, lab, _, _ = _problem()
    with HostReads() as r:
        with pytest.raises(ValueError, match=MESSAGE):
            ops.knn_mi_cd(x, lab, 3)
    assert r.count == 2 and cuda_path == ["knn_mi_cd"]
    with use_backend("cpu", strict=True):
        with pytest.raises(ValueError, match=MESSAGE):
            ops.knn_mi_cd(x, lab, 3)
