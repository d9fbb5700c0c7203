"""Input audit of diffrep.cluster.fit (HDDC): each test pins a defect that was found and fixed; the
comment says what happened before."""

from __future__ import annotations

import math

import pytest
import torch

from diffrep.cluster import hddc


def _x():
    return torch.randn(1, 40, 2, generator=torch.Generator().manual_seed(0))


def _fit(**kw):
    return hddc.fit(_x(), n_components=2, max_components=2, split=kw.pop("split", False), max_iter=3, **kw)


@pytest.mark.parametrize("r0, msg", [
    (torch.full((1, 40, 2), math.nan), "init_resp must lie in"),  # was a fit of NaN weights and likelihood
    (-torch.full((1, 40, 2), 0.5), "init_resp must lie in"),  # was accepted (clamped away inside EM)
    (torch.zeros(1, 40, 2), "sum to 1"),  # was accepted: every point in no component
    (torch.ones(1, 40, 2), "sum to 1"),  # rows summing to 2 were accepted
])
def test_init_resp_values_are_checked(r0, msg):
    with pytest.raises(ValueError, match=msg):
        _fit(init_resp=r0)


def test_init_resp_valid_rows_still_fit():
    r0 = torch.softmax(torch.randn(1, 40, 2, generator=torch.Generator().manual_seed(1)), -1)
    r = _fit(init_resp=r0)
    assert torch.isfinite(r.log_likelihood).all()
    assert float(r.weights.sum()) == pytest.approx(1.0)


def test_split_and_p_arbitrary_types():
    # Before: split="no" was truthy (split passes ran), p_arbitrary="0.5" was read through float().
    with pytest.raises(TypeError, match="split must be a bool"):
        _fit(split="no")
    with pytest.raises(TypeError, match="p_arbitrary must be a number"):
        _fit(p_arbitrary="0.5")
    with pytest.raises(TypeError, match="p_arbitrary must be a number"):
        _fit(p_arbitrary=True)


def test_fit_code_p_arbitrary_type():
    # Before: the DyGA-code fit read p_arbitrary through float(): "0.5" and True were accepted.
    from diffrep.cluster.dyga_code import fit_code

    for bad in ("0.5", True):
        with pytest.raises(TypeError, match="p_arbitrary must be a number"):
            fit_code(_x(), n_components=2, max_components=2, max_iter=2, p_arbitrary=bad)
