"""EncDiff's ``loss`` with FITTED DyGA anchors reads the device as rarely as without them (docs/architecture.md
"Host synchronisation and the non-finite-loss check"; the unfitted counts: test_loss_host_reads.py).

Counts per ``loss`` call on the tiny EncDiff of test_loss_host_reads.py, anchors fitted on 64 random tokens, before
-> after this change (the same on the CPU and on the CUDA code paths under ``emulate_cuda_ops``):

=======================  ======  =====  ===============================================================
model                    before  after  the reads removed
=======================  ======  =====  ===============================================================
EncDiff, fitted anchors  10      1      float() of the two alignment statistics (now detached tensors the
                                        trainer reads at its logging interval); int(dims.max()) in the
                                        E-step; two finiteness checks of the extractor's own tokens (left
                                        to the trainer's non-finite-loss check); the fitted flag twice and
                                        the anchor counts' .tolist(); the first stage's ``scale_set``
                                        (host copies, read again only after their buffers change:
                                        diffrep.nn.derived, test_host_copies_stale_dyga.py)
=======================  ======  =====  ===============================================================

The read left is the batch's finiteness. Under ``compat="dis-dis"`` the
training alignment reads nothing either (before: the labels' finiteness check and float() of lambda). The public
``DyGA.forward`` keeps its two finiteness checks of what a caller passes in.
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers import emulate_cuda_ops, host_reads
from test_loss_host_reads import _encdiff, _g, _images

from diffrep.methods.dyga import DyGA, DyGAConfig, align
from diffrep.ops import use_backend
from diffrep.ops.reference import hddc as ref


def _fitted(seed: int = 5):
    m = _encdiff()
    m.dyga.fit(torch.randn(64, 4, 8, generator=_g(seed)))
    return m.train()


def _reads(m, x) -> int:
    return host_reads(lambda: m.loss(x, step=0, generator=_g()))[0]


def test_a_loss_call_with_fitted_anchors_reads_only_the_batch():
    m, x = _fitted(), _images(2, 3, 16)
    assert m.dyga.is_fitted and [_reads(m, x) for _ in range(3)] == [1, 1, 1]   # the first sets scale_factor


def test_the_same_on_the_cuda_code_paths(monkeypatch):
    m, x = _fitted(), _images(2, 3, 16)
    emulate_cuda_ops(monkeypatch)
    with use_backend("cuda"):
        assert [_reads(m, x) for _ in range(2)] == [1, 1]


def test_the_training_alignment_equals_the_checked_public_one_exactly():
    m = _fitted()
    c = m.extractor(_images(4, 3, 16))[1].detach()
    d = m.dyga
    for training in (True, False):
        d.train(training)
        checked = d(c, generator=_g(3))
        stats_checked = dict(d.last_align)
        fast = d._align_tokens(c, _g(3))
        assert torch.equal(fast, checked)
        assert stats_checked.keys() == d.last_align.keys() == {"delta_mean", "delta_small_frac"}
        for k, v in d.last_align.items():
            assert torch.equal(v, stats_checked[k])
        # align() on the mixture, the old route of forward
        cfg = d.config
        old = align(d.mixture, c, cfg.lam, cfg.tau, generator=_g(3), gumbel_input=cfg.gumbel_input,
                    assignment=cfg.assignment if training else "hard", normalise=(d.norm_lo, d.span),
                    anchors=d.anchors)
        assert torch.equal(fast, old)


def test_the_alignment_statistics_are_detached_tensors_of_eq6s_delta():
    m = _fitted()
    c = m.extractor(_images(4, 3, 16))[1].detach()
    d = m.dyga.eval()
    d(c)
    k = d.assign(c)                                                   # (B, N) the hard MAP anchor
    mu_hat = torch.stack([d.anchors[u, k[:, u]] for u in range(c.shape[1])], 1)       # (B, N, D)
    delta = d.config.lam * torch.exp(-((c - mu_hat) / (c.abs() + 1e-6)).abs().mean(-1))
    s = d.last_align
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in s.values())
    assert float(s["delta_mean"]) == pytest.approx(float(delta.mean()), rel=1e-6)
    assert float(s["delta_small_frac"]) == float((delta < 1e-3 * d.config.lam).float().mean())


def test_the_loss_logs_the_same_numbers_as_before():
    m, x = _fitted(), _images(2, 3, 16)
    out = m.loss(x, step=0, generator=_g())
    n = m.dyga.n_anchors.tolist()
    assert out["anchors_min"] == min(n) and out["anchors_max"] == max(n)
    assert out["anchors_mean"] == pytest.approx(sum(n) / len(n), rel=1e-7)
    t = m.dyga.n_anchors                                              # the old formulation, in one read
    assert [out["anchors_mean"], out["anchors_min"], out["anchors_max"]] == torch.stack(
        [t.float().mean(), t.min().float(), t.max().float()]).tolist()
    assert torch.equal(out["dyga_delta_mean"], m.dyga.last_align["delta_mean"])
    assert math.isfinite(float(out["loss"].detach()))


def test_the_e_step_with_the_host_max_dim_equals_the_read_one():
    d = _fitted().dyga
    assert d._max_dim == int(d.dims.max()) >= 1
    x = torch.rand(4, 7, 8, generator=_g(2))
    mix = d.mixture
    assert torch.equal(mix._log_prob_trusted(x, d._max_dim), mix.log_prob(x))
    assert torch.equal(ref.log_prob(x, mix._params(), max_dims=d._max_dim), ref.log_prob(x, mix._params()))


def test_the_host_copies_follow_a_refit_and_a_state_dict_load():
    d = DyGA(DyGAConfig(num_units=4, token_dim=8, n_components=2, min_mass=2))
    assert d.is_fitted is False and d._max_dim == 1
    g = _g(11)
    planted = torch.cat([torch.randn(40, 4, 8, generator=g) * 0.05 + 1, torch.randn(40, 4, 8, generator=g) * 0.05 - 1])
    d.fit(planted)
    first = (d._max_dim, d.anchor_counts)
    assert first == (int(d.dims.max()), tuple(float(v) for v in (d.n_anchors.float().mean(), d.n_anchors.min(),
                                                                    d.n_anchors.max())))
    d.fit(torch.randn(80, 4, 8, generator=g) * torch.linspace(0.1, 3, 8))   # a refit replaces them
    assert d._max_dim == int(d.dims.max()) and int(d.num_fits) == 2
    fresh = DyGA(d.config)
    fresh.load_state_dict(d.state_dict())
    assert fresh.is_fitted is True and fresh._max_dim == d._max_dim and fresh.anchor_counts == d.anchor_counts
    # an unfitted state loaded over a fitted module clears the flag
    fresh.load_state_dict(DyGA(d.config).state_dict())
    assert fresh.is_fitted is False and not bool(fresh.fitted)
    # through the owning model (the hook runs on the submodule)
    m, m2 = _fitted(), _encdiff()
    m2.load_state_dict(m.state_dict())
    assert m2.dyga.is_fitted and m2.dyga._max_dim == m.dyga._max_dim
    c = m.extractor(_images(2, 3, 16))[1].detach()
    m.dyga.eval(), m2.dyga.eval()
    assert torch.equal(m2.dyga(c), m.dyga(c))


def test_public_forward_still_refuses_non_finite_tokens_the_loss_leaves_them_to_the_trainer():
    d = _fitted().dyga
    c = torch.zeros(2, 4, 8)
    c[1, 2, 3] = math.nan
    with pytest.raises(ValueError, match=r"^c contains NaN or infinite values$"):
        d(c)
    with pytest.raises(ValueError, match=r"^c contains NaN or infinite values$"):
        d.assign(c)
    assert torch.isnan(d._align_tokens(c, _g())).any()              # -> a NaN loss, which the trainer stops on


def test_compat_alignment_reads_nothing_on_the_training_path_and_equals_the_checked_one():
    from test_dyga import fitted

    code, feats, _ = fitted(compat="dis-dis")
    c = feats[:16].clone()
    code.train()
    checked = code(c)
    lam_checked = code.last_align["lambda"]
    reads, fast = host_reads(lambda: code._align_tokens(c, None))
    assert reads == 0 and torch.equal(fast, checked)
    lam = code.last_align["lambda"]
    assert isinstance(lam, torch.Tensor) and lam.dim() == 0 and not lam.requires_grad
    assert torch.equal(lam, lam_checked)
    assert host_reads(lambda: code(c))[0] == 2                      # the public forward: c's finiteness, x's


def test_public_forward_names_its_argument_and_keeps_its_checks():
    d = _fitted().dyga.train()
    with pytest.raises(ValueError, match=r"^c must have shape \(B, 4, 8\), got \(2, 3, 8\)$"):
        d(torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match=r"^c is empty \(shape \(0, 4, 8\)\)$"):
        d(torch.zeros(0, 4, 8))
    with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got int$"):
        d(torch.zeros(2, 4, 8), generator=3)
    # finite tokens whose normalisation overflows (a fit on tiny features): the checked E-step refuses them
    tiny = DyGA(d.config)
    tiny.fit(torch.randn(64, 4, 8, generator=_g(5)) * 1e-30)
    with pytest.raises(ValueError, match=r"^x contains NaN or infinite values$"):
        tiny(torch.full((2, 4, 8), 3e38))


def test_half_and_double_tokens_align_in_float32_and_come_back_in_their_dtype():
    m = _fitted()
    c = m.extractor(_images(4, 3, 16))[1].detach()
    d = m.dyga
    for training in (True, False):
        d.train(training)
        want = d._align_tokens(c, _g(3))
        for dt in (torch.float64, torch.bfloat16):
            got = d._align_tokens(c.to(dt), _g(3))
            assert got.dtype == dt
            assert torch.equal(got, d._align_tokens(c.to(dt).float(), _g(3)).to(dt))
        assert torch.equal(d._align_tokens(c.double(), _g(3)), want.double())


def test_eval_assignment_is_the_hard_argmax_without_a_gradient_through_it():
    """Eval aligns with the hard one-hot (no gradient through the responsibilities), as align(assignment="hard")."""
    m = _fitted()
    c = m.extractor(_images(4, 3, 16))[1].detach()
    # tau = 1 (not 1e-4, whose straight-through softmax gradient underflows to 0): a soft path would show
    d = DyGA(DyGAConfig(**{**m.dyga.config.to_dict(), "tau": 1.0, "assignment": "argmax"}))
    d.load_state_dict(m.dyga.state_dict())
    d.eval()
    cfg = d.config
    a = c.clone().requires_grad_(True)
    d._align_tokens(a, None).pow(2).sum().backward()
    b = c.clone().requires_grad_(True)
    align(d.mixture, b, cfg.lam, cfg.tau, assignment="hard", normalise=(d.norm_lo, d.span),
          anchors=d.anchors).pow(2).sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_compat_alignment_of_double_tokens_evaluates_the_mixture_in_float32():
    from test_dyga import fitted

    code, feats, _ = fitted(compat="dis-dis")
    c = feats[:16].clone()
    code.train()
    got = code._align_tokens(c.double(), None)
    assert got.dtype == torch.float64 and code.last_align["lambda"].dtype == torch.float64
    k = code.assign(c)                                               # the MAP anchors of the float32 tokens
    cq = torch.stack([code.anchors[u][k[:, u]] for u in range(c.shape[1])], 1).double()
    lam = code.config.lam * torch.exp(-((c.double() - cq) / (c.double() + 1e-6)).abs().mean())
    torch.testing.assert_close(got, lam * cq + (1 - lam) * c.double(), rtol=1e-12, atol=1e-12)
