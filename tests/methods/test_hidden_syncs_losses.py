"""The methods' ``loss`` makes no host synchronisation that a Python read does not show (``helpers.hidden_syncs``:
boolean-mask indexing, ``nonzero``, ``unique``, one-argument ``where``, ``repeat_interleave`` without
``output_size``, ``bincount``, ``one_hot`` without ``num_classes``, ``.cpu()``, ``torch.equal``, the linalg
routines that check their info on the host; docs/architecture.md "Host synchronisation and the non-finite-loss
check"). The Python reads are counted by test_loss_host_reads.py, on the same tiny models (its ``CASES``).

Hidden syncs per ``loss`` call, before -> after, on the CPU and on the CUDA path (``emulate_cuda_ops``: the
native ops' Python side as a GPU runs it):

=========================================  ======  =====  ===============================================
model                                      before  after  note
=========================================  ======  =====  ===============================================
every model of test_loss_host_reads.py     0       0      DisDiff's every-pair units index, no nonzero()
EncDiff, DyGA fitted (the alignment)       0       0      one_hot with its class count
ParamReL, mmd_time_strata = 4 (8 codes)    6       0      two mask rows per bin of >= 2 codes (and 4 reads)
=========================================  ======  =====  ===============================================

ParamReL's strata: tests/methods/test_hidden_syncs_paramrel_strata.py. Outside ``loss``, DyGA's anchor fit (the
HDDC EM, once per refit) keeps the syncs of its data-dependent sizes: tests/cluster/test_hidden_syncs_hddc_em.py.
"""

from __future__ import annotations

import pytest
import torch

from helpers import emulate_cuda_ops, hidden_syncs, tiny_paramrel
from test_loss_host_reads import CASES, _bfn_classes, _encdiff, _g, _images

from diffrep.ops import use_backend


def _syncs(m, x, **kw) -> list:
    return hidden_syncs(lambda: m.loss(x, step=0, generator=_g(), **kw))[0]


@pytest.mark.parametrize("name", list(CASES))
def test_no_hidden_sync_in_a_loss_call(name):
    make, batch, _, _ = CASES[name]
    assert _syncs(make(), batch()) == []


@pytest.mark.parametrize("name", ["DisDiff", "SAMI", "BFN-discretised", "ParamReL-discrete"])
def test_none_on_the_cuda_path_either(name, monkeypatch):
    make, batch, _, _ = CASES[name]
    m, x = make(), batch()
    emulate_cuda_ops(monkeypatch)
    with use_backend("cuda"):
        assert _syncs(m, x) == []


def test_encdiff_with_fitted_anchors_aligns_without_a_hidden_sync():
    m = _encdiff()
    m.dyga.fit(torch.randn(64, 4, 8, generator=_g(5)))
    assert bool(m.dyga.fitted)
    assert _syncs(m.train(), _images(2, 3, 16)) == []


@pytest.mark.parametrize("kind", ["discrete", "continuous"])
def test_paramrel_time_strata_without_a_hidden_sync(kind):
    x = _bfn_classes(8) if kind == "discrete" else _images(8, 1, 8)
    assert _syncs(tiny_paramrel(kind, mmd_time_strata=4), x) == []
