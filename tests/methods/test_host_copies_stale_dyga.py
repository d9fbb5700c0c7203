"""DyGA's host copies of its buffers (the fitted flag, the largest d_k, the anchor counts;
docs/methods/dyga.md#host-copies) follow every write of the buffers, and still cost no host read per step
(diffrep.nn.derived).

Each way of writing below is followed by the eval-mode forward, compared with the alignment computed by hand from
the buffers themselves (Eq. 6 with the MAP anchor of the reference E-step; the tokens when ``fitted`` is False), and
by the host reads of the training path: one read right after the write, none after that.

===========================================  ====================================================
way of writing                               what changes (what the host copies compare)
===========================================  ====================================================
``fill_``, ``copy_``, indexing, ``+=``       the version counter (with or without grad, in
(also under no_grad / inference_mode)        inference mode too)
``load_state_dict``                          the version counter (it copies in place)
``load_state_dict(assign=True)``,            the tensor itself (a new buffer)
``dyga.fitted = t``, ``_apply`` / ``.to``,
``torch.func.functional_call``
``buf.data = t``, ``set_``, ``swap_tensors``  the data pointer (same Python object)
``buf.data.fill_(...)``, NumPy views, DDP's   nothing: not seen until ``sync_host()``
buffer broadcast
===========================================  ====================================================
"""

from __future__ import annotations

import copy

import pytest
import torch

from helpers import host_reads
from test_dyga import D, U, eq6, fitted, planted

from diffrep.methods.dyga import DyGA, DyGAConfig, align
from diffrep.ops.reference import hddc as ref


def _tokens() -> torch.Tensor:
    return planted(n=12, seed=3)[0]


def _by_hand(d: DyGA, c: torch.Tensor) -> torch.Tensor:
    """The eval forward from the buffers alone: c before a fit, else c + delta (mu_hat - c) with mu_hat the anchor
    of the reference E-step's MAP Gaussian on (c - lo) / (hi - lo + 1e-6)."""
    if not bool(d.fitted):
        return c
    lo, hi = d.norm_lo, d.norm_hi
    x = ((c - lo[None, :, None]) / (hi - lo + 1e-6)[None, :, None]).transpose(0, 1)
    k = ref.log_prob(x, d.mixture._params()).argmax(-1)                           # (U, B)
    mu_hat = torch.stack([d.anchors[u, k[u]] for u in range(U)], 1)               # (B, U, D)
    return eq6(c.double(), mu_hat.double(), d.config.lam).float()


def _check(d: DyGA, c: torch.Tensor, fitted_now: bool) -> None:
    d.eval()
    assert bool(d.fitted) is fitted_now and d.is_fitted is fitted_now
    out = d(c)
    if fitted_now:
        torch.testing.assert_close(out, _by_hand(d, c), rtol=1e-5, atol=1e-6)
        assert (out - c).abs().max() > 1e-3                                       # visibly aligned
    else:
        assert torch.equal(out, c)


def _reads_after_a_write(d: DyGA, c: torch.Tensor) -> list[int]:
    d.train()
    return [host_reads(lambda: d._align_tokens(c, torch.Generator().manual_seed(0)))[0] for _ in range(3)]


def _data_assign(d, v):
    d.fitted.data = torch.tensor(v)


def _attribute(d, v):
    d.fitted = torch.tensor(v)


def _setitem(d, v):
    d.fitted[...] = v


def _no_grad(d, v):
    with torch.no_grad():
        d.fitted.fill_(v)


def _inference_mode(d, v):
    with torch.inference_mode():
        d.fitted.fill_(v)


WRITES = {
    "fill_": lambda d, v: d.fitted.fill_(v),
    "no_grad": _no_grad,
    "inference_mode": _inference_mode,
    "setitem": _setitem,
    "copy_": lambda d, v: d.fitted.copy_(torch.tensor(v)),
    "detach().fill_": lambda d, v: d.fitted.detach().fill_(v),      # a detached view shares the version counter
    "attribute": _attribute,
    "data_assign": _data_assign,
    "set_": lambda d, v: d.fitted.set_(torch.tensor(v)),
    "swap_tensors": lambda d, v: torch.utils.swap_tensors(d.fitted, torch.tensor(v)),
    "_apply": lambda d, v: d._apply(lambda t: torch.full_like(t, v) if t.dtype == torch.bool and t.dim() == 0 else t),
}


@pytest.mark.parametrize("how", list(WRITES))
def test_each_way_of_writing_the_fitted_flag_is_followed_by_the_forward(how):
    d, _, _ = fitted()
    c = _tokens()
    _check(d, c, True)
    WRITES[how](d, False)
    assert _reads_after_a_write(d, c) == [1, 0, 0]                   # one read for the write, none per step after
    _check(d, c, False)
    WRITES[how](d, True)
    assert _reads_after_a_write(d, c) == [1, 0, 0]
    _check(d, c, True)


@pytest.mark.parametrize("assign", [False, True])
def test_a_state_dict_load_in_place_or_assigned_is_followed(assign):
    d, _, _ = fitted()
    c = _tokens()
    other = DyGA(d.config)
    other.fit(planted(seed=1, scale=2.0)[0])
    d.eval()(c)
    d.load_state_dict(DyGA(d.config).state_dict(), assign=assign)     # unfitted over fitted
    _check(d, c, False)
    d.load_state_dict(other.state_dict(), assign=assign)
    _check(d, c, True)
    n = other.n_anchors
    assert d.anchor_counts == (float(n.float().mean()), float(n.min()), float(n.max()))
    assert d._max_dim == int(other.dims.max())
    assert torch.equal(d(c), other.eval()(c))


def test_buffers_copied_from_another_model_are_followed():
    d, _, _ = fitted()
    c = _tokens()
    other = DyGA(d.config)
    other.fit(planted(seed=2, scale=3.0, spread=0.2)[0])
    d.eval()(c)
    before = d.anchor_counts
    for (name, mine), (_, theirs) in zip(d.named_buffers(), other.named_buffers()):
        mine.copy_(theirs)
    n = other.n_anchors
    want = (float(n.float().mean()), float(n.min()), float(n.max()))
    assert d.anchor_counts == want != before
    assert torch.equal(d(c), other.eval()(c))
    torch.testing.assert_close(d(c), _by_hand(other, c), rtol=1e-5, atol=1e-6)


def test_a_write_of_dims_changes_the_e_steps_width_and_the_training_alignment_follows():
    base, _, _ = fitted()
    # tau = 1: the Gumbel-softmax weights move with every log-probability, so a wrong E-step width shows
    d = DyGA(DyGAConfig(**{**base.config.to_dict(), "tau": 1.0}))
    d.load_state_dict(base.state_dict())
    c = _tokens()
    full = d.dims.clone()
    assert d._max_dim == int(full.max()) == 3
    d.dims.clamp_(max=1)
    assert d._max_dim == 1
    d.dims.copy_(full)                                                  # a stale width 1 would truncate Q_k
    assert _reads_after_a_write(d, c) == [1, 0, 0] and d._max_dim == 3
    cfg = d.config
    x = torch.rand(U, 5, D, generator=torch.Generator().manual_seed(4))
    assert torch.equal(d.mixture._log_prob_trusted(x, d._max_dim), ref.log_prob(x, d.mixture._params()))
    d.train()
    got = d._align_tokens(c, torch.Generator().manual_seed(5))
    want = align(d.mixture, c, cfg.lam, cfg.tau, generator=torch.Generator().manual_seed(5),
                 normalise=(d.norm_lo, d.span), anchors=d.anchors)     # reads d_k itself
    assert torch.equal(got, want)


def test_a_write_through_data_is_not_seen_until_sync_host():
    """``.data`` is a tensor with a version counter of its own: a write through it leaves the buffer's counter, its
    identity and its data pointer as they were (as DistributedDataParallel's buffer broadcast does). Documented, and
    ``sync_host()`` reads the buffers again."""
    d, _, _ = fitted()
    c = _tokens()
    _check(d, c, True)
    d.fitted.data.fill_(False)
    assert d.is_fitted is True and not bool(d.fitted)                  # the documented blind spot
    d.sync_host()
    _check(d, c, False)
    d.fitted.data.fill_(True)
    d.sync_host()
    _check(d, c, True)


def test_buffers_made_in_inference_mode_are_read_at_every_call():
    """An inference tensor has no version counter: its host copy is read again at each use (correct, one read)."""
    src, _, _ = fitted()
    c = _tokens()
    with torch.inference_mode():
        d = DyGA(src.config)
        d.load_state_dict(src.state_dict())
        assert d.fitted.is_inference()
        assert [host_reads(lambda: d.is_fitted)[0] for _ in range(2)] == [1, 1]
        assert d.is_fitted is True
        d.eval()
        torch.testing.assert_close(d(c), _by_hand(src, c), rtol=1e-5, atol=1e-6)
        d.fitted.fill_(False)
        assert d.is_fitted is False and torch.equal(d(c), c)


def test_functional_call_with_other_buffers_aligns_as_they_say_and_leaves_the_module_as_it_was():
    d, _, _ = fitted()
    c = _tokens()
    d.eval()
    assert torch.equal(torch.func.functional_call(d, {"fitted": torch.tensor(False)}, (c,)), c)
    _check(d, c, True)                                                  # its own buffer again
    d.fitted.fill_(False)
    got = torch.func.functional_call(d, {"fitted": torch.tensor(True)}, (c,))
    d.fitted.fill_(True)
    torch.testing.assert_close(got, _by_hand(d, c), rtol=1e-5, atol=1e-6)


def test_a_deep_copy_keeps_its_own_host_copies():
    d, _, _ = fitted()
    c = _tokens()
    d.eval()(c)
    e = copy.deepcopy(d)
    e.fitted.fill_(False)
    _check(e, c, False)
    _check(d, c, True)
    assert e.anchor_counts == d.anchor_counts


def test_encdiff_logs_the_anchor_counts_its_buffer_holds():
    from test_loss_host_reads import _encdiff, _g, _images

    m = _encdiff()
    m.dyga.fit(torch.randn(64, 4, 8, generator=_g(5)))
    m.train()
    x = _images(2, 3, 16)
    m.loss(x, step=0, generator=_g())
    m.dyga.n_anchors.copy_(torch.tensor([1, 2, 2, 7]))
    reads, out = host_reads(lambda: m.loss(x, step=0, generator=_g()))
    assert reads == 2                                                   # the batch, the changed counts (once)
    assert (out["anchors_mean"], out["anchors_min"], out["anchors_max"]) == (3.0, 1.0, 7.0)
    assert host_reads(lambda: m.loss(x, step=0, generator=_g()))[0] == 1
    m.dyga.fitted.fill_(False)
    out = m.loss(x, step=0, generator=_g())
    assert "anchors_mean" not in out and "dyga_delta_mean" not in out   # unaligned, nothing to log


def test_the_training_path_equals_the_checked_alignment_where_the_gumbel_draw_matters():
    """Overlapping Gaussians and tau = 1: the Gumbel-softmax weights depend on the draw, so the unchecked training
    path (host copy of max d_k) must use the caller's generator, assignment and detach flag as align does."""
    for detach in (False, True):
        d = DyGA(DyGAConfig(num_units=4, token_dim=8, n_components=2, min_mass=2, tau=1.0, detach_assignment=detach))
        d.fit(torch.randn(64, 4, 8, generator=torch.Generator().manual_seed(5)))
        c = torch.randn(6, 4, 8, generator=torch.Generator().manual_seed(6))
        cfg = d.train().config
        a, b = c.clone().requires_grad_(True), c.clone().requires_grad_(True)
        got = d._align_tokens(a, torch.Generator().manual_seed(3))
        want = align(d.mixture, b, cfg.lam, cfg.tau, generator=torch.Generator().manual_seed(3),
                     detach_assignment=detach, normalise=(d.norm_lo, d.span), anchors=d.anchors)
        assert torch.equal(got, want)
        assert not torch.equal(got, d._align_tokens(c, torch.Generator().manual_seed(4)))   # the draw matters
        got.pow(2).sum().backward()
        want.pow(2).sum().backward()
        assert torch.equal(a.grad, b.grad)
        if not detach:   # the soft assignment's gradient reaches c through the responsibilities
            d2 = DyGA(DyGAConfig(**{**cfg.to_dict(), "detach_assignment": True}))
            d2.load_state_dict(d.state_dict())
            e = c.clone().requires_grad_(True)
            d2.train()._align_tokens(e, torch.Generator().manual_seed(3)).pow(2).sum().backward()
            assert not torch.equal(e.grad, a.grad)


def test_compat_has_no_e_step_width_and_a_bad_config_is_named():
    code, _, _ = fitted(compat="dis-dis")
    assert code._max_dim is None and code.is_fitted is True
    with pytest.raises(TypeError, match=r"^DyGA: config must be a DyGAConfig, got int$"):
        DyGA(3)
