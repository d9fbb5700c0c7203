"""DyGA's host copies (fitted flag, max d_k, anchor counts; docs/methods/dyga.md) survive pickling a whole model, and
DisDiff's training path with fitted anchors reads the device as rarely as without them (docs/architecture.md "Host
synchronisation and the non-finite-loss check"; EncDiff's counts: test_loss_host_reads_dyga_fitted.py).

DisDiff (tiny, DyGA on its 4 units of 8 dims) reads per ``loss`` call, before -> after:

==========================  ======  =====  =================================================================
model                       before  after  the reads removed
==========================  ======  =====  =================================================================
DisDiff, no anchors yet     2       1      the fitted flag (a host copy)
DisDiff, fitted anchors     7       1      the fitted flag, the alignment statistics' float(), the units'
                                           and the normalised units' finiteness (the encoder's own units),
                                           int(dims.max()) in the E-step (a host copy taken at the fit)
==========================  ======  =====  =================================================================

The read left is the batch's range.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from helpers import host_reads, untrained_on_purpose

from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGA, DyGAConfig


def _g(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _disdiff():
    torch.manual_seed(0)
    cfg = DisDiffConfig(dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, max_components=4, min_mass=2.0),
                        shift_skip_dropout=0.2, sample_steps=2)
    x = torch.rand(40, 3, 16, 16, generator=_g(0)) * 2 - 1
    return untrained_on_purpose(DisDiff(cfg)), x


def test_a_fitted_dyga_pickles_with_its_host_copies():
    d = DyGA(DyGAConfig(num_units=2, token_dim=4, n_components=2, min_mass=2))
    d.fit(torch.randn(40, 2, 4, generator=_g(3)))
    buf = io.BytesIO()
    torch.save(d, buf)                                       # a lambda load hook made this raise
    buf.seek(0)
    e = torch.load(buf, weights_only=False)
    assert e.is_fitted is True and e._max_dim == int(d.dims.max()) and e.anchor_counts == d.anchor_counts
    c = torch.randn(5, 2, 4, generator=_g(4))
    d.eval(), e.eval()
    assert torch.equal(e(c), d(c))
    # the hook still runs on a load into the unpickled module
    e.load_state_dict(DyGA(d.config).state_dict())
    assert e.is_fitted is False


def test_disdiff_loss_with_fitted_anchors_reads_only_the_batch():
    m, x = _disdiff()
    m.train()
    assert host_reads(lambda: m.loss(x[:4], step=0, generator=_g()))[0] == 1
    m.refresh_anchors(x)
    m.train()
    assert m.dyga.is_fitted
    reads, out = host_reads(lambda: m.loss(x[:4], step=0, generator=_g()))
    assert reads == 1 and math.isfinite(float(out["loss"].detach()))


def test_disdiff_training_alignment_equals_the_public_checked_one():
    m, x = _disdiff()
    m.refresh_anchors(x)
    m.train()
    u = m.encode_units(x[:6]).detach()
    fast = m._align_units(u, _g(2))
    stats = dict(m.dyga.last_align)
    assert torch.equal(fast, m.dyga(u.to(fast.dtype), generator=_g(2)))    # the checked public forward
    assert torch.equal(fast, m.align_units(u, generator=_g(2)))
    assert stats.keys() == {"delta_mean", "delta_small_frac"}
    for k, v in m.dyga.last_align.items():
        assert torch.equal(v, stats[k])
    bad = u.clone()
    bad[1, 2, 3] = math.nan
    with pytest.raises(ValueError, match=r"^units holds NaN or infinite values$"):
        m.align_units(bad)
    with pytest.raises(ValueError, match=r"^c contains NaN or infinite values$"):
        m.dyga(bad)
