"""``helpers.hidden_syncs`` names each operation that synchronises a CUDA device without a Python read, once per
call made at Python level, and leaves the sync-free forms of the same operations alone; ``host_reads`` keeps
its meaning (it counts none of these)."""

from __future__ import annotations

import pytest
import torch

from helpers import hidden_syncs, host_reads

X = torch.arange(15.0).reshape(5, 3)
MASK = X[:, 0] > 4
F = torch.nn.functional

SYNCING = [  # (call, the name counted)
    (lambda: X[MASK], "__getitem__[bool mask]"),
    (lambda: X[:, X[0] > 0], "__getitem__[bool mask]"),
    (lambda: X[[0, 2]], "__getitem__[list index]"),
    (lambda: X.clone().__setitem__(MASK, torch.zeros(3, 3)), "__setitem__[bool mask]"),
    (lambda: X.clone().index_put_((MASK,), torch.zeros(3, 3)), "index_put_[bool mask]"),
    (lambda: MASK.nonzero(), "nonzero"),
    (lambda: torch.nonzero(MASK), "nonzero"),
    (lambda: torch.argwhere(MASK), "argwhere"),
    (lambda: torch.where(MASK), "where[one argument]"),
    (lambda: X.masked_select(X > 3), "masked_select"),
    (lambda: torch.unique(MASK), "unique"),
    (lambda: MASK.unique(), "unique"),
    (lambda: torch.unique_consecutive(MASK), "unique_consecutive"),
    (lambda: X.repeat_interleave(torch.tensor([1, 2, 0, 1, 1]), 0), "repeat_interleave[tensor repeats, no output_size]"),
    (lambda: torch.repeat_interleave(torch.tensor([1, 2])), "repeat_interleave[tensor repeats, no output_size]"),
    (lambda: F.one_hot(torch.tensor([0, 2])), "one_hot[no num_classes]"),
    (lambda: torch.bincount(torch.tensor([0, 2]), minlength=3), "bincount"),
    (lambda: torch.equal(X, X), "equal"),
    (lambda: torch.allclose(X, X), "allclose"),
    (lambda: X.cpu(), "cpu"),
    (lambda: torch.linalg.eigh(torch.eye(2)), "linalg_eigh"),
    (lambda: torch.linalg.cholesky(torch.eye(2)), "linalg_cholesky"),
    (lambda: torch.linalg.cholesky_ex(torch.eye(2), check_errors=True), "linalg_cholesky_ex"),
]

SYNC_FREE = [
    lambda: X[torch.tensor([0, 2])],                  # a long index: device-side bounds assert
    lambda: X[1:3, 0], lambda: X[0], lambda: X[None, ..., 1],
    lambda: X.clone().__setitem__(MASK, 0.0),         # a scalar value: masked_fill_
    lambda: torch.where(MASK[:, None], X, 0.0),
    lambda: X.repeat_interleave(2, 0),
    lambda: torch.repeat_interleave(X, torch.tensor([1, 2, 0, 1, 1]), 0, output_size=5),
    lambda: F.one_hot(torch.tensor([0, 2]), 3),
    lambda: torch.linalg.cholesky_ex(torch.eye(2)),
    lambda: X.numpy(),                                # refuses a CUDA tensor: never a sync itself
    lambda: (X * MASK[:, None]).sum(0),
]


@pytest.mark.parametrize("call,name", SYNCING, ids=[f"{i}-{n}" for i, (_, n) in enumerate(SYNCING)])
def test_each_syncing_op_is_counted_once_by_name(call, name):
    assert hidden_syncs(call)[0] == [name]


@pytest.mark.parametrize("call", SYNC_FREE, ids=[str(i) for i in range(len(SYNC_FREE))])
def test_the_sync_free_forms_are_not_counted(call):
    assert hidden_syncs(call)[0] == []


def test_host_reads_count_none_of_them_and_results_pass_through():
    for call, _ in SYNCING:
        assert host_reads(call)[0] == 0
    ops, out = hidden_syncs(lambda: X[MASK].sum())
    assert ops == ["__getitem__[bool mask]"] and float(out) == float(X[2:].sum())
