"""Input-validation sweep of diffrep.ops (every op family and the public entry points of its
reference twins), diffrep.bfn, diffrep.diffusion, diffrep.cluster and diffrep.config.

For each public callable one valid call on tiny inputs is built, then one argument at a time is
replaced by a bad value (None, a str, a float for an int, a bool for an int, negative / zero sizes,
NaN / inf, a wrong dtype, a wrong number of dimensions, a mismatched batch, an empty tensor, a list
for a tensor, a bad device or generator). A case passes when the call raises ValueError or TypeError
(ConfigError is a ValueError) whose message names the argument, or, where a case allows it, returns
an output with no NaN (and, for the value-only perturbations, the valid call's output shape). It
fails on any other exception (AttributeError, IndexError, torch's RuntimeError, an assert), on a
message that does not name the argument, and on a NaN or mis-shaped output.

Documented exceptions to "no NaN out": the reference twins and the diffusion schedule's elementwise
conversions and sampler steps propagate NaN / inf inputs as torch does (PROPAGATE: the public ops
refuse them before a twin runs; a finiteness check per training or sampling step would synchronise the
device each step), and file arguments may raise open()'s OSError naming the path. One test per
(callable, argument) runs its bad values; ``test_sweep_covers_every_public_callable`` finds the public
callables by import and fails on any that is neither in the table nor in ``LEFT`` (with why).
"""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch

RAISE = "raise"  # must raise ValueError/TypeError naming the argument
# (an exception class instead: that documented exception is accepted too, e.g. open()'s OSError naming the path)
EITHER = "either"  # may also be accepted: then the output has no NaN (and keeps the valid shape when SAME)
SAME = "same"  # as EITHER, and an accepted call keeps the valid output's shape
PROPAGATE = "propagate"  # may be accepted with NaN in the output (a twin's maths on NaN / inf input)


@dataclasses.dataclass
class Spec:
    name: str  # the callable, for the test id
    call: object  # (**kwargs) -> output
    valid: object  # () -> dict of valid kwargs
    bads: dict  # arg -> list of (label, value_or_fn(valid_value, valid_kwargs), expectation)
    names: dict = dataclasses.field(default_factory=dict)  # arg -> extra words a message may name it by
    nan_ok: bool = False  # the valid output may hold NaN (documented: degenerate rows)
    covers: list = dataclasses.field(default_factory=list)  # qualified names a wrapping lambda sweeps


def _v(fn):
    """Mark a bad value computed from the valid one."""
    fn._derived = True
    return fn


def _tensor_like(v, kw):
    return v


def _nan(v):
    w = v.clone().double() if not v.is_floating_point() else v.clone()
    w.view(-1)[0] = math.nan
    return w


def _inf(v):
    w = v.clone().double() if not v.is_floating_point() else v.clone()
    w.view(-1)[0] = math.inf
    return w


def T(*, floating=True, batch=True, nan=EITHER, empty=EITHER, dims=EITHER, listed=EITHER, number=RAISE):
    """The bad values of a tensor argument."""
    out = [("None", None, RAISE), ("str", "abc", RAISE), ("list", _v(lambda v, kw: v.tolist()), listed),
           ("complex", _v(lambda v, kw: v.to(torch.complex64)), RAISE),
           ("dims+1", _v(lambda v, kw: v.unsqueeze(0)), dims),
           ("dims-1", _v(lambda v, kw: v.reshape(-1)[0] if v.dim() == 1 else v.select(-1, 0)), dims),
           ("empty", _v(lambda v, kw: v[:0]), empty),
           ("number", 0.5, number)]
    if floating:
        out += [("int", _v(lambda v, kw: v.round().long()), SAME),
                ("float16", _v(lambda v, kw: v.half()), SAME),
                ("bool", _v(lambda v, kw: v > 0), SAME),
                ("nan", _v(lambda v, kw: _nan(v)), nan),
                ("inf", _v(lambda v, kw: _inf(v)), nan)]
    else:
        out += [("float", _v(lambda v, kw: v.double()), SAME),
                ("negative", _v(lambda v, kw: v - 100), RAISE)]
    if batch:  # True: a longer batch than the other arguments' must raise; or the expectation
        out.append(("batch", _v(lambda v, kw: torch.cat([v, v[:1]])), RAISE if batch is True else batch))
    return out


def INT(*, zero=RAISE, negative=RAISE, tensor=RAISE):
    return [("None", None, RAISE), ("str", "2", RAISE), ("float", 2.5, RAISE), ("bool", True, RAISE),
            ("negative", -1, negative), ("zero", 0, zero), ("nan", math.nan, RAISE),
            ("tensor", torch.tensor([2, 3]), tensor)]


def FLOAT(*, zero=RAISE, negative=RAISE, big=None):
    out = [("None", None, RAISE), ("str", "0.5", RAISE), ("nan", math.nan, RAISE), ("inf", math.inf, RAISE),
           ("bool", True, RAISE), ("negative", -0.5, negative), ("zero", 0.0, zero),
           ("tensor2", torch.tensor([0.5, 0.5]), RAISE)]
    if big is not None:
        out.append(("big", big, RAISE))
    return out


def CHOICE():
    return [("bogus", "bogus", RAISE), ("None", None, RAISE), ("int", 1, RAISE)]


def GEN():
    return [("str", "gen", RAISE), ("int", 7, RAISE)]


def DEVICE():
    return [("tpu", "tpu", RAISE), ("cuda9", "cuda:9", RAISE), ("int-9", 9, RAISE)]


SPECS: list[Spec] = []


def _labels(bads):
    """Class labels are categories: negative ones are as good as any (the MI is unchanged)."""
    return [(lb, v, SAME if lb == "negative" else e) for lb, v, e in bads]


def spec(name, call, valid, bads, **kw):
    SPECS.append(Spec(name, call, valid, bads, **kw))


# ============================================================================ diffrep.ops.bfn
def _g():
    return torch.Generator().manual_seed(0)


def _ops_bfn():
    from diffrep.ops import bfn as B

    x = lambda: torch.rand(2, 3) * 2 - 1  # noqa: E731
    spec("ops.bfn.continuous_flow", B.continuous_flow,
         lambda: dict(x=x(), t=torch.rand(2), sigma1=0.02, generator=_g()),
         dict(x=T(), t=T(number=SAME, batch=RAISE), sigma1=FLOAT(big=1.5), generator=GEN()))
    spec("ops.bfn.discrete_flow", B.discrete_flow,
         lambda: dict(x=torch.randint(0, 3, (2, 4)), t=torch.rand(2), beta1=3.0, num_classes=3, generator=_g()),
         dict(x=T(floating=False), t=T(number=SAME), beta1=FLOAT(), num_classes=INT() + [("one", 1, RAISE)],
              generator=GEN(), dtype=[("int64", torch.int64, RAISE), ("str", "float32", RAISE)]))
    spec("ops.bfn.continuous_update", B.continuous_update,
         lambda: dict(mu=torch.randn(2, 3), rho=torch.rand(2) + 1, y=torch.randn(2, 3), alpha=torch.rand(2) + 0.1),
         dict(mu=T(), rho=T(number=SAME), y=T(), alpha=T(number=SAME)))
    spec("ops.bfn.continuous_update_inverse", B.continuous_update_inverse,
         lambda: dict(mu=torch.randn(2, 3), rho=torch.rand(2) + 2, y=torch.randn(2, 3), alpha=torch.rand(2) + 0.1),
         dict(mu=T(), rho=T(number=SAME), y=T(), alpha=T(number=SAME)))
    spec("ops.bfn.continuous_sender_update", B.continuous_sender_update,
         lambda: dict(mu=torch.randn(2, 3), rho=torch.rand(2) + 1, x=x(), alpha=torch.rand(2) + 0.1, generator=_g()),
         dict(mu=T(), rho=T(number=SAME), x=T(), alpha=T(number=SAME), generator=GEN()))
    theta = lambda: torch.softmax(torch.randn(2, 4, 3), -1)  # noqa: E731
    spec("ops.bfn.discrete_update", B.discrete_update,
         lambda: dict(theta=theta(), y=torch.randn(2, 4, 3)),
         dict(theta=T(), y=T()))
    spec("ops.bfn.discrete_update_inverse", B.discrete_update_inverse,
         lambda: dict(theta=theta(), y=torch.randn(2, 4, 3)),
         dict(theta=T(), y=T()))
    spec("ops.bfn.discrete_sender_update", B.discrete_sender_update,
         lambda: dict(theta=theta(), x=torch.randint(0, 3, (2, 4)), alpha=torch.rand(2) + 0.1, generator=_g()),
         dict(theta=T(), x=T(floating=False), alpha=T(number=SAME), generator=GEN()))
    spec("ops.bfn.discretised_probs", B.discretised_probs,
         lambda: dict(mu_x=torch.randn(2, 3), sigma_x=torch.rand(2, 3) + 0.1, num_bins=4),
         dict(mu_x=T(), sigma_x=T(), num_bins=INT()))
    spec("ops.bfn.discretised_continuous_time_loss", B.discretised_continuous_time_loss,
         lambda: dict(out_mean=torch.randn(2, 3), out_log_sigma=torch.randn(2, 3), mu=torch.randn(2, 3),
                      t=torch.rand(2) * 0.9 + 0.05, x=torch.rand(2, 3) * 2 - 1, sigma1=0.02, num_bins=4),
         dict(out_mean=T(), out_log_sigma=T(), mu=T(), t=T(number=SAME), x=T(), sigma1=FLOAT(big=1.5),
              num_bins=INT(), min_loss_variance=[("nan", math.nan, RAISE), ("str", "a", RAISE)]))
    spec("ops.bfn.discrete_continuous_time_loss", B.discrete_continuous_time_loss,
         lambda: dict(logits=torch.randn(2, 4, 3), x=torch.randint(0, 3, (2, 4)), t=torch.rand(2), beta1=3.0),
         dict(logits=T(), x=T(floating=False), t=T(number=SAME), beta1=FLOAT()))


def _ops_other():
    from diffrep.ops import explain, guidance, hddc, knn, metrics, mmd, random, use_backend

    spec("ops.explain", explain,
         lambda: dict(op="mmd.mmd2", x=torch.randn(3, 2), y=torch.randn(4, 2)),
         dict(op=CHOICE(), x=T(batch=False)))
    def enter_use_backend(**kw):  # its arguments are checked on entering the block; the block is left at once
        with use_backend(**kw):
            pass

    spec("ops.use_backend", enter_use_backend,
         lambda: dict(backend="reference"), dict(backend=CHOICE(), strict=[("str", "yes", RAISE)]),
         covers=["diffrep.ops._dispatch.use_backend"])
    spec("ops.guidance.log_posterior", guidance.log_posterior,
         lambda: dict(z=torch.randn(3, 2, 4), mu=torch.randn(2, 4), logvar=torch.randn(2, 4)),
         dict(z=T(batch=False), mu=T(), logvar=T(), constant=[("str", "yes", RAISE), ("None", None, RAISE)]))
    spec("ops.knn.knn_scan", knn.knn_scan,
         lambda: dict(q=torch.randn(4, 2), c=torch.randn(5, 2), kk=2, r2=torch.rand(5)),
         dict(q=T(batch=False), c=T(), kk=INT(zero=EITHER), r2=T()[1:]))
    spec("ops.knn.knn_radii", knn.knn_radii,
         lambda: dict(x=torch.randn(5, 2), k=2),
         dict(x=T(batch=False), k=INT() + [("too-big", 5, RAISE)]))
    spec("ops.knn.ball_count", knn.ball_count,
         lambda: dict(q=torch.randn(4, 2), centres=torch.randn(5, 2), r2=torch.rand(5)),
         dict(q=T(batch=False), centres=T(), r2=T()))
    spec("ops.mmd.mmd2", mmd.mmd2,
         lambda: dict(x=torch.randn(4, 2), y=torch.randn(5, 2)),
         dict(x=T(batch=False), y=T(batch=False), kernel=CHOICE(), estimator=CHOICE(),
              bandwidth=FLOAT()[1:], scales=[("empty", [], RAISE), ("neg", [-1.0], RAISE), ("str", "1", RAISE),
                                         ("nan", [math.nan], RAISE)],
              weights=[("short", [1.0, 2.0], RAISE), ("str", "a", RAISE)]))
    spec("ops.mmd.wae_imq_scales", mmd.wae_imq_scales, lambda: dict(dim=3, prior_var=1.0),
         dict(dim=INT(), prior_var=FLOAT()))
    spec("ops.mmd.median_bandwidth", mmd.median_bandwidth,
         lambda: dict(x=torch.randn(4, 2), y=torch.randn(5, 2)),
         dict(x=T(batch=False), y=T(batch=False)))
    spec("ops.random.normal", random.normal, lambda: dict(shape=(2, 3), generator=_g()),
         dict(shape=[("None", None, RAISE), ("neg", (-1, 2), RAISE), ("float", (2.5,), RAISE), ("str", "ab", RAISE)],
              dtype=[("int", torch.int64, RAISE), ("str", "float32", RAISE), ("complex", torch.complex64, RAISE)],
              device=DEVICE(), generator=GEN()))
    spec("ops.random.fill_normal", random.fill_normal, lambda: dict(out=torch.empty(2, 3), seed=1, offset=2),
         dict(out=[("None", None, RAISE), ("int", torch.empty(2, dtype=torch.int64), RAISE),
                   ("noncontig", torch.empty(3, 2).t(), RAISE), ("list", [0.0, 1.0], RAISE)],
              seed=[("None", None, RAISE), ("str", "1", RAISE), ("float", 1.5, RAISE), ("huge", 2**70, RAISE)],
              offset=[("None", None, RAISE), ("str", "1", RAISE), ("float", 1.5, RAISE), ("negative", -1, SAME),
                      ("huge", 2**64, RAISE)]))
    spec("ops.random.philox_key", random.philox_key, lambda: dict(generator=_g()), dict(generator=GEN()))
    spec("ops.random.check_generator", random.check_generator, lambda: dict(generator=_g()), dict(generator=GEN()))
    # metrics
    spec("ops.metrics.auroc_grid", metrics.auroc_grid,
         lambda: dict(scores=torch.randn(3, 10), labels=torch.arange(20).reshape(2, 10) % 2),
         dict(scores=T(batch=False), labels=T(floating=False, batch=False), stepsize=FLOAT(big=2.0),
              min_range=FLOAT(zero=SAME)), nan_ok=True)
    spec("ops.metrics.auroc_matrix", metrics.auroc_matrix,
         lambda: dict(scores=torch.randn(3, 10), labels=torch.arange(20).reshape(2, 10) % 2),
         dict(scores=T(batch=False), labels=T(floating=False, batch=False), on_degenerate=CHOICE()), nan_ok=True)
    spec("ops.metrics.hist_discretize", metrics.hist_discretize,
         lambda: dict(codes=torch.randn(10, 3), num_bins=4),
         dict(codes=T(batch=False), num_bins=INT()))
    spec("ops.metrics.knn_mi_cd", metrics.knn_mi_cd,
         lambda: dict(latents=torch.randn(2, 12), factors=torch.arange(24).reshape(2, 12) % 3, k=2),
         dict(latents=T(batch=False), factors=_labels(T(floating=False, batch=False)), k=INT()))
    spec("ops.metrics.mi_matrix", metrics.mi_matrix,
         lambda: dict(labels=torch.randint(0, 3, (10, 2)), factors=torch.randint(0, 2, (10, 3))),
         dict(labels=_labels(T(floating=False)), factors=_labels(T(floating=False))))
    spec("ops.metrics.factor_vae_votes", metrics.factor_vae_votes,
         lambda: dict(batches=torch.randn(4, 5, 3), factor_index=torch.randint(0, 2, (4,)),
                      global_var=torch.rand(3) + 0.5, active=torch.tensor([True, True, False]), num_factors=2),
         dict(batches=T(batch=False), factor_index=T(floating=False), global_var=T(batch=False),
              active=[("None", None, RAISE), ("float01", torch.tensor([1.0, 0.0, 1.0]), SAME),
                      ("float2", torch.tensor([2.0, 0.0, 1.0]), RAISE), ("short", torch.ones(2, dtype=torch.bool), RAISE)],
              num_factors=INT()))
    # hddc kernels
    spec("ops.hddc.prepare", hddc.prepare,
         lambda: dict(x=torch.randn(1, 20, 3), n_components=2, max_components=4),
         dict(x=T(batch=False), n_components=INT(), max_components=INT(), model=CHOICE()))
    spec("ops.hddc.eigh", hddc.eigh, lambda: dict(W=torch.eye(3).expand(2, 3, 3).clone()),
         dict(W=T(batch=False)))


# ============================================================================ reference twins
def _reference():
    from diffrep.ops.reference import bfn as RB
    from diffrep.ops.reference import guidance as RG
    from diffrep.ops.reference import knn as RK
    from diffrep.ops.reference import metrics as RM
    from diffrep.ops.reference import mmd as RMMD
    from diffrep.ops.reference import philox as RP

    # The twins propagate NaN and inf as their maths does (the ops refuse them first): PROPAGATE.
    def TT(**kw):
        kw.setdefault("nan", PROPAGATE)
        kw.setdefault("number", RAISE)
        return T(**kw)

    def per_ex():  # t, alpha, rho: a tensor per example or per element (numbers are the ops' convenience)
        return TT(batch=RAISE)

    spec("ref.bfn.continuous_flow", RB.continuous_flow,
         lambda: dict(x=torch.rand(2, 3), t=torch.rand(2), sigma1=0.02, noise=torch.randn(2, 3)),
         dict(x=TT(), t=per_ex(), sigma1=FLOAT(big=1.5), noise=TT()))
    spec("ref.bfn.discrete_flow", RB.discrete_flow,
         lambda: dict(x=torch.randint(0, 3, (2, 4)), t=torch.rand(2), beta1=3.0, num_classes=3,
                      noise=torch.randn(2, 4, 3)),
         dict(x=TT(floating=False), t=per_ex(), beta1=FLOAT(), num_classes=INT(), noise=TT()))
    spec("ref.bfn.continuous_sender_sample", RB.continuous_sender_sample,
         lambda: dict(x=torch.rand(2, 3), alpha=torch.rand(2) + 0.1, noise=torch.randn(2, 3)),
         dict(x=TT(), alpha=per_ex(), noise=TT()))
    spec("ref.bfn.discrete_sender_sample", RB.discrete_sender_sample,
         lambda: dict(x=torch.randint(0, 3, (2, 4)), alpha=torch.rand(2) + 0.1, num_classes=3,
                      noise=torch.randn(2, 4, 3)),
         dict(x=TT(floating=False), alpha=per_ex(), num_classes=INT(), noise=TT()))
    for name in ("continuous_update", "continuous_update_inverse"):
        spec(f"ref.bfn.{name}", getattr(RB, name),
             lambda: dict(mu=torch.randn(2, 3), rho=torch.rand(2) + 2, y=torch.randn(2, 3), alpha=torch.rand(2) + 0.1),
             dict(mu=TT(), rho=per_ex(), y=TT(), alpha=per_ex()))
    for name in ("discrete_update", "discrete_update_inverse"):
        spec(f"ref.bfn.{name}", getattr(RB, name),
             lambda: dict(theta=torch.softmax(torch.randn(2, 4, 3), -1), y=torch.randn(2, 4, 3)),
             dict(theta=TT(), y=TT()))
    spec("ref.bfn.discretised_probs", RB.discretised_probs,
         lambda: dict(mu_x=torch.randn(2, 3), sigma_x=torch.rand(2, 3) + 0.1, num_bins=4),
         dict(mu_x=TT(), sigma_x=TT(), num_bins=INT()))
    spec("ref.bfn.discretised_continuous_time_loss", RB.discretised_continuous_time_loss,
         lambda: dict(out_mean=torch.randn(2, 3), out_log_sigma=torch.randn(2, 3), mu=torch.randn(2, 3),
                      t=torch.rand(2) * 0.9 + 0.05, x=torch.rand(2, 3) * 2 - 1, sigma1=0.02, num_bins=4),
         dict(out_mean=TT(), out_log_sigma=TT(), mu=TT(), t=per_ex(), x=TT(), sigma1=FLOAT(big=1.5),
              num_bins=INT(), min_loss_variance=[("nan", math.nan, RAISE), ("str", "a", RAISE)]))
    spec("ref.bfn.discrete_continuous_time_loss", RB.discrete_continuous_time_loss,
         lambda: dict(logits=torch.randn(2, 4, 3), x=torch.randint(0, 3, (2, 4)), t=torch.rand(2), beta1=3.0),
         dict(logits=TT(), x=TT(floating=False), t=per_ex(), beta1=FLOAT()))
    spec("ref.bfn.quantize", RB.quantize, lambda: dict(x=torch.rand(2, 3), num_bins=4),
         dict(x=TT(batch=EITHER), num_bins=INT()))
    spec("ref.guidance.log_posterior", RG.log_posterior,
         lambda: dict(z=torch.randn(3, 2, 4), mu=torch.randn(2, 4), logvar=torch.randn(2, 4)),
         dict(z=TT(batch=False), mu=TT(), logvar=TT()))
    spec("ref.knn.knn_scan", RK.knn_scan,
         lambda: dict(q=torch.randn(4, 2), c=torch.randn(5, 2), kk=2, r2=torch.rand(5)),
         dict(q=TT(batch=False), c=TT(), kk=INT(zero=EITHER), r2=TT()[1:]))
    spec("ref.mmd.mmd2", RMMD.mmd2, lambda: dict(x=torch.randn(4, 2), y=torch.randn(5, 2), scales=(1.0,)),
         dict(x=TT(batch=False), y=TT(batch=False), kernel=CHOICE(), estimator=CHOICE(),
              scales=[("empty", [], RAISE), ("neg", [-1.0], RAISE), ("str", "1", RAISE), ("None", None, RAISE)],
              weights=[("short", [1.0, 2.0], RAISE)]))
    spec("ref.mmd.median_sq_dist", RMMD.median_sq_dist, lambda: dict(x=torch.randn(4, 2), y=torch.randn(5, 2)),
         dict(x=TT(batch=False), y=TT(batch=False)))
    labels = lambda: torch.arange(20).reshape(2, 10) % 2  # noqa: E731
    spec("ref.metrics.auroc_matrix", RM.auroc_matrix, lambda: dict(scores=torch.randn(3, 10), labels=labels()),
         dict(scores=TT(batch=False), labels=_labels(TT(floating=False, batch=False))), nan_ok=True)
    spec("ref.metrics.auroc_grid", RM.auroc_grid, lambda: dict(scores=torch.randn(3, 10), labels=labels()),
         dict(scores=TT(batch=False), labels=_labels(TT(floating=False, batch=False)), stepsize=FLOAT(big=2.0),
              min_range=FLOAT(zero=SAME), chunk=INT()), nan_ok=True)
    spec("ref.metrics.hist_discretize", RM.hist_discretize, lambda: dict(codes=torch.randn(10, 3), num_bins=4),
         dict(codes=TT(batch=False), num_bins=INT()))
    spec("ref.metrics.mi_matrix", RM.mi_matrix,
         lambda: dict(labels=torch.randint(0, 3, (10, 2)), factors=torch.randint(0, 2, (10, 3))),
         dict(labels=_labels(TT(floating=False)), factors=_labels(TT(floating=False))))
    spec("ref.metrics.knn_mi_cd", RM.knn_mi_cd,
         lambda: dict(latents=torch.randn(2, 12), factors=torch.arange(24).reshape(2, 12) % 3, k=2),
         dict(latents=TT(batch=False), factors=_labels(TT(floating=False, batch=False)), k=INT()))
    spec("ref.metrics.factor_vae_votes", RM.factor_vae_votes,
         lambda: dict(batches=torch.randn(4, 5, 3), factor_index=torch.randint(0, 2, (4,)),
                      global_var=torch.rand(3) + 0.5, active=torch.tensor([True, True, False]), num_factors=2),
         dict(batches=TT(batch=False), factor_index=TT(floating=False), global_var=TT(batch=False),
              active=[("None", None, RAISE), ("float", torch.ones(3), RAISE)], num_factors=INT()))
    spec("ref.philox.normals", RP.normals, lambda: dict(numel=5, seed=1, offset=2),
         dict(numel=INT(zero=EITHER), seed=[("None", None, RAISE), ("str", "1", RAISE), ("float", 1.5, RAISE)],
              offset=[("None", None, RAISE), ("negative", -1, SAME), ("huge", 2**64, RAISE)],
              dtype=[("int", torch.int64, RAISE), ("str", "float32", RAISE)]))


# ============================================================================ diffrep.bfn
def _bfn():
    import importlib

    from diffrep.bfn import conversions, distributions, flows, loss_terms, losses, sampler, schedules
    from diffrep.bfn.config import BFNDataConfig, make_flow, make_output, unet_io
    from diffrep.bfn.model import draw_time
    from helpers import tiny_bfn

    cts, disc = flows.ContinuousFlow(0.02), flows.DiscreteFlow(3, 2.0)
    img = lambda: torch.rand(2, 1, 2, 2) * 2 - 1  # noqa: E731
    cls = lambda: torch.randint(0, 3, (2, 1, 2, 2))  # noqa: E731
    TIME = T(number=SAME, floating=True) + [("negative", -0.5, RAISE), ("big", 1.5, RAISE)]
    for name in ("gamma", "continuous_precision"):
        spec(f"bfn.schedules.{name}", getattr(schedules, name), lambda: dict(t=torch.rand(3), sigma1=0.02),
             dict(t=[("None", None, RAISE), ("str", "a", RAISE)], sigma1=FLOAT(big=1.5)))
    spec("bfn.schedules.discrete_beta", schedules.discrete_beta, lambda: dict(t=torch.rand(3), beta1=3.0),
         dict(t=[("None", None, RAISE), ("str", "a", RAISE)], beta1=FLOAT()))
    spec("bfn.schedules.continuous_alpha", schedules.continuous_alpha, lambda: dict(i=2, n_steps=4, sigma1=0.02),
         dict(i=[("None", None, RAISE), ("zero", 0, RAISE), ("big", 5, RAISE)], n_steps=INT(), sigma1=FLOAT(big=1.5)),
         names={"i": ["step i"]})
    spec("bfn.schedules.discrete_alpha", schedules.discrete_alpha, lambda: dict(i=2, n_steps=4, beta1=3.0),
         dict(i=[("None", None, RAISE), ("zero", 0, RAISE)], n_steps=INT(), beta1=FLOAT()), names={"i": ["step i"]})
    spec("bfn.conversions.noise_pred_to_data_pred", conversions.noise_pred_to_data_pred,
         lambda: dict(eps_hat=torch.randn(2, 3), mu=torch.randn(2, 3), t=torch.rand(2), sigma1=0.02,
                      log_sigma_eps=torch.randn(2, 3)),
         dict(eps_hat=T(), mu=T(), t=TIME, sigma1=FLOAT(big=1.5), log_sigma_eps=T()[1:], min_t=FLOAT()))
    spec("bfn.conversions.output_normal_params", conversions.output_normal_params,
         lambda: dict(out_mean=torch.randn(2, 3), out_log_sigma=torch.randn(2, 3), mu=torch.randn(2, 3),
                      t=torch.rand(2), sigma1=0.02),
         dict(out_mean=T(), out_log_sigma=T(), mu=T(), t=TIME, sigma1=FLOAT(big=1.5)))
    quantize = importlib.import_module("diffrep.bfn.quantize")  # the package re-exports the function's name
    for name in ("quantize", "bin_index"):
        spec(f"bfn.quantize.{name}", getattr(quantize, name), lambda: dict(x=torch.rand(2, 3), num_bins=4),
             dict(x=T(batch=EITHER, dims=EITHER), num_bins=INT()))
    spec("bfn.flows.step_times", flows.step_times, lambda: dict(n_steps=3), dict(n_steps=INT()))
    for flow, data in ((cts, img), (disc, cls)):
        k = type(flow).__name__
        spec(f"bfn.{k}.sample", flow.sample, lambda data=data: dict(x=data(), t=torch.rand(2), generator=_g()),
             dict(x=T(floating=flow is cts), t=TIME, generator=GEN()))
        spec(f"bfn.{k}.mean_state", flow.mean_state, lambda data=data: dict(x=data(), t=torch.rand(2)),
             dict(x=T(floating=flow is cts), t=TIME, dtype=[("int", torch.int64, RAISE), ("str", "f", RAISE)]))
        spec(f"bfn.{k}.prior", flow.prior, lambda: dict(data_shape=(2, 1, 2, 2)),
             dict(data_shape=[("None", None, RAISE), ("neg", (-1, 2), RAISE), ("float", (2.5, 1), RAISE),
                              ("empty", (), RAISE)],
                  device=DEVICE(), dtype=[("int", torch.int64, RAISE), ("str", "f", RAISE)]))
        spec(f"bfn.{k}.input_channels", flow.input_channels, lambda: dict(channels=3), dict(channels=INT()))
        spec(f"bfn.{k}.prepare_data", flow.prepare_data, lambda data=data: dict(x=data()),
             dict(x=T(floating=flow is cts, batch=EITHER)[:4]))
        state = (lambda f=flow, d=data: f.mean_state(d(), 0.25, dtype=torch.float32))
        xt = (lambda d=data, c=flow is cts: (d() if c else torch.softmax(torch.randn(2, 1, 2, 2, 3), -1)))
        spec(f"bfn.{k}.step", flow.step,
             lambda state=state, xt=xt: dict(state=state(), x_tilde=xt(), t_next=0.5, generator=_g()),
             dict(state=[("None", None, RAISE), ("tensor", torch.zeros(2, 1, 2, 2), RAISE)],
                  x_tilde=T(batch=RAISE)[:5], t_next=[("None", None, RAISE), ("earlier", 0.1, RAISE),
                                                       ("nan", math.nan, RAISE)], generator=GEN()))
        spec(f"bfn.{k}.inverse_step", flow.inverse_step,
             lambda state=state, xt=xt: dict(state=state(), y=xt(), t_prev=0.1),
             dict(state=[("None", None, RAISE), ("tensor", torch.zeros(2, 1, 2, 2), RAISE)],
                  y=T(batch=RAISE)[:5], t_prev=[("None", None, RAISE), ("nan", math.nan, RAISE)]))
        spec(f"bfn.{k}.network_input", flow.network_input, lambda state=state: dict(state=state()),
             dict(state=[("None", None, RAISE), ("tensor", torch.zeros(2, 1, 2, 2), RAISE)]))
    spec("bfn.flows.ContinuousFlow", flows.ContinuousFlow, lambda: dict(sigma1=0.02, num_bins=4),
         dict(sigma1=FLOAT(big=1.5), num_bins=INT()[1:] + [("one", 1, RAISE)]))
    spec("bfn.flows.DiscreteFlow", flows.DiscreteFlow, lambda: dict(num_classes=3, sqrt_beta1=2.0),
         dict(num_classes=INT(), sqrt_beta1=FLOAT()))
    # output distributions
    spec("bfn.DeltaOutput", distributions.DeltaOutput, lambda: dict(sigma1=0.02),
         dict(sigma1=FLOAT(big=1.5), clip_range=FLOAT(zero=EITHER), eps_sign=[("zero", 0, RAISE), ("str", "-1", RAISE)],
              noise_pred=[("str", "yes", RAISE)]))
    spec("bfn.DiscretisedNormalOutput", distributions.DiscretisedNormalOutput, lambda: dict(sigma1=0.02, num_bins=4),
         dict(sigma1=FLOAT(big=1.5), num_bins=INT(), eps_sign=[("zero", 0, RAISE)], clip=[("str", "no", RAISE)]))
    spec("bfn.CategoricalOutput", distributions.CategoricalOutput, lambda: dict(num_classes=3),
         dict(num_classes=INT()))
    cstate = lambda: cts.mean_state(img(), 0.5, dtype=torch.float32)  # noqa: E731
    out_call = lambda o: (lambda net_out, state, t: o(net_out, state, t))  # noqa: E731
    spec("bfn.DeltaOutput.__call__", out_call(distributions.DeltaOutput(0.02)),
         lambda: dict(net_out=torch.randn(2, 1, 2, 2), state=cstate(), t=torch.full((2,), 0.5)),
         dict(net_out=T(batch=RAISE), state=[("None", None, RAISE)], t=TIME[:3] + TIME[-2:]))
    spec("bfn.DiscretisedNormalOutput.__call__", out_call(distributions.DiscretisedNormalOutput(0.02, 4)),
         lambda: dict(net_out=(torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)), state=cstate(),
                      t=torch.full((2,), 0.5)),
         dict(net_out=[("None", None, RAISE), ("one", torch.randn(2, 1, 2, 2), RAISE),
                       ("badlog", (torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2)), RAISE),
                       ("strlog", (torch.randn(2, 1, 2, 2), "a"), RAISE)],
              state=[("None", None, RAISE)], t=TIME[:3]))
    dstate = lambda: disc.mean_state(cls(), 0.5, dtype=torch.float32)  # noqa: E731
    spec("bfn.CategoricalOutput.__call__", out_call(distributions.CategoricalOutput(3)),
         lambda: dict(net_out=torch.randn(2, 3, 2, 2), state=dstate(), t=torch.full((2,), 0.5)),
         dict(net_out=T(batch=RAISE)[:5], state=[("None", None, RAISE)]))
    mk_dn = lambda: distributions.DiscretisedNormalDist(torch.randn(2, 3), torch.rand(2, 3) + 0.1, 4)  # noqa: E731
    spec("bfn.DiscretisedNormalDist", distributions.DiscretisedNormalDist,
         lambda: dict(mu_x=torch.randn(2, 3), sigma_x=torch.rand(2, 3) + 0.1, num_bins=4),
         dict(mu_x=T()[:5], sigma_x=T()[:5] + [("negative", torch.full((2, 3), -1.0), RAISE)], num_bins=INT()))
    spec("bfn.DiscretisedNormalDist.log_prob", lambda x: mk_dn().log_prob(x), lambda: dict(x=torch.rand(2, 3) * 2 - 1),
         dict(x=T(batch=RAISE)[:5]), covers=["DiscretisedNormalDist.log_prob"])
    spec("bfn.DiscretisedNormalDist.sample", lambda generator: mk_dn().sample(generator), lambda: dict(generator=_g()),
         dict(generator=GEN()), covers=["DiscretisedNormalDist.sample"])
    spec("bfn.DeltaDist", distributions.DeltaDist, lambda: dict(x_hat=torch.randn(2, 3), sigma1=0.02),
         dict(x_hat=T()[:5], sigma1=FLOAT(big=1.5)))
    spec("bfn.DeltaDist.log_prob", lambda x: distributions.DeltaDist(torch.randn(2, 3), 0.02).log_prob(x),
         lambda: dict(x=torch.randn(2, 3)), dict(x=T(batch=RAISE)[:5]), covers=["DeltaDist.log_prob"])
    spec("bfn.CategoricalDist", distributions.CategoricalDist, lambda: dict(logits=torch.randn(2, 4, 3)),
         dict(logits=T()[:5]))
    spec("bfn.CategoricalDist.log_prob", lambda x: distributions.CategoricalDist(torch.randn(2, 4, 3)).log_prob(x),
         lambda: dict(x=torch.randint(0, 3, (2, 4))), dict(x=T(floating=False, batch=RAISE)[:5]),
         covers=["CategoricalDist.log_prob"])
    spec("bfn.CategoricalDist.sample", lambda generator: distributions.CategoricalDist(torch.randn(2, 4, 3)).sample(generator),
         lambda: dict(generator=_g()), dict(generator=GEN()), covers=["CategoricalDist.sample"])
    spec("bfn.discretised_log_prob", distributions.discretised_log_prob,
         lambda: dict(x=torch.rand(2, 3) * 2 - 1, mu_x=torch.randn(2, 3), sigma_x=torch.rand(2, 3) + 0.1, num_bins=4),
         dict(x=T(), mu_x=T(), sigma_x=T(), num_bins=INT()))
    # loss terms
    spec("bfn.loss_terms.continuous_time_loss", loss_terms.continuous_time_loss,
         lambda: dict(net_out=torch.randn(2, 3), x=torch.rand(2, 3), t=torch.rand(2), sigma1=0.02),
         dict(net_out=T(), x=T(), t=TIME, sigma1=FLOAT(big=1.5), clip_range=FLOAT(zero=EITHER),
              min_loss_variance=[("nan", math.nan, RAISE), ("str", "a", RAISE)]))
    spec("bfn.loss_terms.continuous_discrete_time_loss", loss_terms.continuous_discrete_time_loss,
         lambda: dict(net_out=torch.randn(2, 3), x=torch.rand(2, 3), t=torch.tensor([0.0, 0.25]), sigma1=0.02,
                      n_steps=4),
         dict(net_out=T(), x=T(), t=TIME[:3], sigma1=FLOAT(big=1.5), n_steps=INT(), clip_range=FLOAT(zero=EITHER)))
    spec("bfn.loss_terms.discretised_discrete_time_loss", loss_terms.discretised_discrete_time_loss,
         lambda: dict(out_mean=torch.randn(2, 3), out_log_sigma=torch.randn(2, 3), mu=torch.randn(2, 3),
                      t=torch.tensor([0.0, 0.25]), x=torch.rand(2, 3), sigma1=0.02, num_bins=4, n_steps=4,
                      n_samples=2, generator=_g()),
         dict(out_mean=T(), out_log_sigma=T(), mu=T(), t=TIME[:3], x=T(), sigma1=FLOAT(big=1.5), num_bins=INT(),
              n_steps=INT(), n_samples=INT(), generator=GEN()))
    # flow-level losses and the sampler
    d_out = distributions.DeltaOutput(0.02)
    c_out = distributions.CategoricalOutput(3)
    lvalid = lambda: dict(flow=cts, output=d_out, net_out=torch.randn(2, 1, 2, 2), x=img(), state=cstate())  # noqa: E731
    lbads = dict(flow=[("None", None, RAISE), ("str", "cts", RAISE)], output=[("None", None, RAISE), ("str", "d", RAISE)],
                 net_out=T(batch=RAISE)[:5], x=T(batch=RAISE)[:5], state=[("None", None, RAISE)])
    spec("bfn.losses.continuous_time_loss", losses.continuous_time_loss, lvalid, lbads)
    spec("bfn.losses.reconstruction_loss", losses.reconstruction_loss, lvalid, lbads)
    dvalid = lambda: dict(flow=disc, output=c_out, net_out=torch.randn(2, 3, 2, 2), x=cls(),  # noqa: E731
                          state=disc.mean_state(cls(), 0.25, dtype=torch.float32), n_steps=4, generator=_g())
    spec("bfn.losses.discrete_time_loss", losses.discrete_time_loss, dvalid,
         dict(lbads, x=T(floating=False, batch=RAISE)[:5], n_steps=INT(), n_samples=INT(),
              receiver=CHOICE(), generator=GEN()))
    predict = lambda state, t: torch.zeros(state.params.shape[:-1][:1] + (3, 2, 2))  # noqa: E731
    spec("bfn.sampler.sample", sampler.sample,
         lambda: dict(flow=disc, output=c_out, predict=predict, state=disc.prior((2, 1, 2, 2)), n_steps=2,
                      generator=_g()),
         dict(flow=[("None", None, RAISE)], output=[("None", None, RAISE)], predict=[("None", None, RAISE)],
              state=[("None", None, RAISE)], n_steps=INT(), final=CHOICE(), x_tilde=CHOICE(), generator=GEN(),
              callback=[("str", "cb", RAISE)]))
    spec("bfn.sampler.reverse_chain", sampler.reverse_chain,
         lambda: dict(flow=disc, output=c_out, predict=predict, x=cls(), n_steps=2),
         dict(flow=[("None", None, RAISE)], output=[("None", None, RAISE)], predict=[("None", None, RAISE)],
              x=T(floating=False)[:4], n_steps=INT(), dtype=[("int", torch.int64, RAISE)],
              callback=[("str", "cb", RAISE)]))
    # config and model
    spec("bfn.BFNDataConfig", BFNDataConfig, lambda: dict(data="discrete"),
         dict(data=CHOICE(), image_size=INT(), channels=INT(), num_bins=INT(), num_classes=INT(),
              sigma1=FLOAT(big=1.5), sqrt_beta1=FLOAT(), receiver=CHOICE()))
    for name, fn in (("make_flow", make_flow), ("make_output", make_output), ("unet_io", unet_io)):
        spec(f"bfn.config.{name}", fn, lambda: dict(cfg=BFNDataConfig()),
             dict(cfg=[("None", None, RAISE), ("dict", {"data": "discrete"}, RAISE)]))
    spec("bfn.model.draw_time", draw_time, lambda: dict(cfg=BFNDataConfig(), batch=2, device="cpu", generator=_g()),
         dict(cfg=[("None", None, RAISE)], batch=INT(), device=DEVICE(), generator=GEN()))
    model = tiny_bfn("discrete")
    spec("bfn.BFN.loss", model.loss, lambda: dict(batch=torch.rand(2, 1, 8, 8) * 2 - 1, generator=_g()),
         dict(batch=T(batch=EITHER, dims=RAISE, empty=RAISE, listed=RAISE)[:7], generator=GEN()))
    spec("bfn.BFN.reconstruction_loss", model.reconstruction_loss, lambda: dict(x=torch.rand(2, 1, 8, 8) * 2 - 1),
         dict(x=T(batch=EITHER, dims=RAISE, empty=RAISE, listed=RAISE)[:7]))
    spec("bfn.BFN.sample", model.sample, lambda: dict(n=1, num_steps=1, generator=_g()),
         dict(n=INT(), num_steps=INT()[1:], final=CHOICE()[0::2], generator=GEN()))


def _bfn_rest():
    from diffrep.bfn import distributions, flows, losses
    from diffrep.bfn.config import BFNDataConfig
    from diffrep.bfn.model import BFN, BFNConfig, bfn_loss, data_images, model_dtypes
    from helpers import tiny_bfn

    cts, disc = flows.ContinuousFlow(0.02), flows.DiscreteFlow(3, 2.0)
    img = lambda: torch.rand(2, 1, 2, 2) * 2 - 1  # noqa: E731
    TIME = [("None", None, RAISE), ("str", "a", RAISE), ("complex", torch.ones(2, dtype=torch.complex64), RAISE)]
    for k, flow in (("ContinuousFlow", cts), ("DiscreteFlow", disc)):
        for m in ("beta",) + (("gamma", "precision") if flow is cts else ()):
            spec(f"bfn.{k}.{m}", getattr(flow, m), lambda: dict(t=torch.rand(2)), dict(t=TIME))
        spec(f"bfn.{k}.data_to_float", flow.data_to_float,
             lambda c=flow is cts: dict(**{("x" if c else "classes"): img() if c else torch.randint(0, 3, (2, 1, 2, 2))}),
             {("x" if flow is cts else "classes"): T(floating=flow is cts, batch=EITHER, dims=EITHER)[:4]})
    spec("bfn.ContinuousFlow.sender_mean", cts.sender_mean, lambda: dict(x_tilde=img(), alpha=torch.rand(2)),
         dict(x_tilde=T(batch=EITHER, dims=EITHER)[:4]))
    spec("bfn.DiscreteFlow.sender_mean", disc.sender_mean,
         lambda: dict(x_tilde=torch.softmax(torch.randn(2, 4, 3), -1), alpha=torch.rand(2, 1, 1)),
         dict(x_tilde=T(batch=RAISE)[:5], alpha=T()[:4] + [("2x3", torch.rand(2, 3), RAISE)]))
    spec("bfn.FlowState", flows.FlowState, lambda: dict(params=torch.zeros(2, 3), t=torch.zeros(2, dtype=torch.float64)),
         dict(params=T(batch=EITHER)[:5], t=[("None", None, RAISE), ("list", [0.0, 0.0], RAISE),
                                             ("2d", torch.zeros(2, 1), RAISE), ("batch", torch.zeros(3), RAISE)]))
    spec("bfn.FlowState.to", lambda dtype: flows.FlowState(torch.zeros(2, 3), torch.zeros(2)).to(dtype),
         lambda: dict(dtype=torch.float64), dict(dtype=[("int", torch.int64, RAISE), ("str", "f", RAISE)]),
         covers=["FlowState.to"])
    for name, out, net in (("DeltaOutput", distributions.DeltaOutput(0.02), torch.randn(2, 3)),
                           ("DiscretisedNormalOutput", distributions.DiscretisedNormalOutput(0.02, 4), torch.randn(2, 3)),
                           ("CategoricalOutput", distributions.CategoricalOutput(3), torch.randn(2, 3))):
        spec(f"bfn.{name}.out_channels", out.out_channels, lambda: dict(channels=3), dict(channels=INT()))
    spec("bfn.DeltaOutput.eps", distributions.DeltaOutput(0.02, eps_sign=1).eps, lambda: dict(net_out=torch.randn(2, 3)),
         dict(net_out=T(batch=EITHER, dims=EITHER, empty=EITHER)[:5]))
    spec("bfn.DiscretisedNormalOutput.split", distributions.DiscretisedNormalOutput(0.02, 4).split,
         lambda: dict(net_out=(torch.randn(2, 3), torch.randn(2, 3))),
         dict(net_out=[("None", None, RAISE), ("one", torch.randn(2, 3), RAISE), ("triple", (1, 2, 3), RAISE),
                       ("str", "ab", RAISE), ("strs", ("a", "b"), RAISE)]))
    spec("bfn.CategoricalOutput.logits", distributions.CategoricalOutput(3).logits,
         lambda: dict(net_out=torch.randn(2, 3, 2, 2), data_shape=(2, 1, 2, 2)),
         dict(net_out=T(batch=RAISE)[:5], data_shape=[("None", None, RAISE), ("short", (2,), RAISE), ("str", "ab", RAISE)]))
    spec("bfn.check_out", distributions.check_out, lambda: dict(net_out=torch.randn(2, 3), shape=(2, 3), who="w"),
         dict(net_out=T(batch=RAISE)[:5]))
    spec("bfn.check_parts", distributions.check_parts, lambda: dict(flow=cts, output=distributions.DeltaOutput(0.02)),
         dict(flow=[("None", None, RAISE), ("disc", disc, RAISE)], output=[("None", None, RAISE)],
              state=[("str", "s", RAISE)], x=[("str", "s", RAISE)]),
         names={"flow": ["output"], "x": ["state"]})
    spec("bfn.DeltaDist.sample", lambda generator: distributions.DeltaDist(torch.randn(2, 3), 0.02).sample(generator),
         lambda: dict(generator=_g()), dict(generator=GEN()), covers=["DeltaDist.sample"])
    spec("bfn.losses.per_example_sum", losses.per_example_sum, lambda: dict(v=torch.randn(2, 3)),
         dict(v=T(batch=EITHER, dims=EITHER)[:4] + [("0d", torch.tensor(1.0), RAISE)]))
    spec("bfn.losses.loss_dtype", losses.loss_dtype, lambda: dict(net_out=torch.randn(2, 3)),
         dict(net_out=[("None", None, RAISE), ("str", "s", RAISE), ("int tensor", torch.zeros(2, dtype=torch.long), RAISE),
                       ("empty tuple", (), RAISE), ("pair", (torch.randn(2), torch.randn(2)), EITHER)]))
    spec("bfn.flows.state_dtype", flows.state_dtype, lambda: dict(param_dtype=torch.float32),
         dict(param_dtype=[("None", None, RAISE), ("str", "float32", RAISE), ("int dtype", torch.int64, RAISE),
                           ("bf16", torch.bfloat16, EITHER)]))
    model = tiny_bfn("discrete")
    spec("bfn.BFN", BFN, lambda: dict(config=model.config), dict(config=[("None", None, RAISE), ("str", "c", RAISE)]))
    st = lambda: model.flow.prior((2, 1, 8, 8))  # noqa: E731
    spec("bfn.model.model_dtypes", model_dtypes, lambda: dict(module=model),
         dict(module=[("None", None, RAISE), ("str", "m", RAISE), ("no params", torch.nn.ReLU(), RAISE)]))
    spec("bfn.BFN.predict", model.predict, lambda: dict(state=st(), t=torch.rand(2)),
         dict(state=[("None", None, RAISE), ("tensor", torch.zeros(2, 1, 8, 8, 2), RAISE)],
              t=[("None", None, RAISE), ("str", "a", RAISE), ("batch", torch.rand(3), RAISE)]))
    cfg = BFNDataConfig(data="continuous")
    spec("bfn.model.bfn_loss", bfn_loss,
         lambda: dict(cfg=cfg, flow=cts, output=distributions.DeltaOutput(0.02), net_out=torch.randn(2, 1, 2, 2),
                      x=img(), state=cts.mean_state(img(), 0.5, dtype=torch.float32)),
         dict(cfg=[("None", None, RAISE), ("str", "c", RAISE)], flow=[("None", None, RAISE)],
              net_out=[("None", None, RAISE)], x=[("None", None, RAISE)], state=[("None", None, RAISE)]))
    spec("bfn.model.data_images", data_images,
         lambda: dict(batch=torch.rand(2, 1, 28, 28), cfg=BFNDataConfig(), who="w"),
         dict(batch=[("None", None, RAISE), ("str", "b", RAISE), ("3d", torch.rand(2, 28, 28), RAISE)],
              cfg=[("None", None, RAISE), ("str", "c", RAISE)]))
    spec("bfn.BFNConfig", BFNConfig, lambda: dict(sample_steps=3),
         dict(sample_steps=INT(), time_scale=FLOAT(), final=CHOICE(), bfn=[("dict", {"data": "x"}, RAISE)]))


# ============================================================================ diffrep.diffusion
def _diffusion():
    from diffrep.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, NoiseScheduleConfig, ddim_timesteps, expand_like

    sch = NoiseSchedule(num_timesteps=10)
    tt = lambda: torch.tensor([3, 7])  # noqa: E731
    TSTEP = T(floating=False) + [("big", torch.tensor([3, 10]), RAISE)]

    # The schedule's conversions and the samplers' steps are elementwise algebra run every training and
    # sampling step: NaN propagates as in torch (a finiteness check would synchronise the device each
    # step); a whole chain (sample from x_T, invert from x0) checks its start once.
    def TP(**kw):
        kw.setdefault("nan", PROPAGATE)
        return T(**kw)
    spec("diffusion.NoiseScheduleConfig", NoiseScheduleConfig, lambda: dict(num_timesteps=10),
         dict(kind=CHOICE(), num_timesteps=INT(), beta_start=FLOAT(big=1.5), beta_end=FLOAT(big=1.5),
              cosine_s=FLOAT(zero=SAME), max_beta=FLOAT(big=1.5)))
    spec("diffusion.NoiseSchedule", NoiseSchedule, lambda: dict(config=NoiseScheduleConfig(num_timesteps=10)),
         dict(config=[("dict", {"num_timesteps": 10}, RAISE), ("str", "linear", RAISE)]))
    spec("diffusion.NoiseSchedule.gather", sch.gather, lambda: dict(name="betas", t=tt(), like=torch.randn(2, 3)),
         dict(name=CHOICE() + [("private", "_cache", RAISE), ("method", "gather", RAISE)], t=TSTEP,
              like=[("str", "a", RAISE), ("batch", torch.randn(3, 3), RAISE), ("0d", torch.tensor(1.0), RAISE)]))
    for m in ("alpha_bar", "snr"):
        spec(f"diffusion.NoiseSchedule.{m}", getattr(sch, m), lambda: dict(t=tt()),
             dict(t=T(floating=False, batch=EITHER) + [("big", torch.tensor([3, 10]), RAISE)]))
    spec("diffusion.NoiseSchedule.sample_timesteps", sch.sample_timesteps, lambda: dict(batch_size=2, generator=_g()),
         dict(batch_size=INT(), device=DEVICE(), generator=GEN()))
    spec("diffusion.NoiseSchedule.q_sample", sch.q_sample,
         lambda: dict(x0=torch.randn(2, 3), t=tt(), noise=torch.randn(2, 3)),
         dict(x0=TP(), t=TSTEP, noise=TP()[1:], generator=GEN()))
    for m in ("eps_to_x0", "x0_to_eps", "eps_to_score", "score_to_eps", "x0_to_score", "eps_to_v", "v_to_eps"):
        other = m.split("_")[0] if m.startswith(("eps", "score", "v_", "x0")) else "eps"
        other = {"eps_to_x0": "eps", "x0_to_eps": "x0", "eps_to_score": "eps", "score_to_eps": "score",
                 "x0_to_score": "x0", "eps_to_v": "eps", "v_to_eps": "v"}[m]
        spec(f"diffusion.NoiseSchedule.{m}", getattr(sch, m),
             lambda other=other: {"x_t": torch.randn(2, 3), "t": tt(), other: torch.randn(2, 3)},
             {"x_t": TP(), "t": TSTEP, other: TP()})
    spec("diffusion.NoiseSchedule.to_eps", sch.to_eps,
         lambda: dict(output=torch.randn(2, 3), x_t=torch.randn(2, 3), t=tt(), prediction="x0"),
         dict(output=TP(), x_t=TP(), t=TSTEP, prediction=CHOICE()))
    spec("diffusion.expand_like", expand_like, lambda: dict(v=torch.rand(2), x=torch.randn(2, 3)),
         dict(v=T()[:3] + [("2d", torch.rand(2, 2), RAISE), ("batch", torch.rand(3), RAISE)], x=T(batch=False)[:3]))
    spec("diffusion.ddim_timesteps", ddim_timesteps, lambda: dict(num_timesteps=10, num_steps=3),
         dict(num_timesteps=INT(), num_steps=INT() + [("big", 11, RAISE)], spacing=CHOICE()))
    spec("diffusion.DDPMSampler", DDPMSampler, lambda: dict(schedule=sch),
         dict(schedule=[("None", None, RAISE)], variance=CHOICE(), prediction=CHOICE(),
              clip_x0=FLOAT()[1:]))
    spec("diffusion.DDIMSampler", DDIMSampler, lambda: dict(schedule=sch),
         dict(schedule=[("None", None, RAISE)], eta=FLOAT(zero=SAME), spacing=CHOICE(), prediction=CHOICE(),
              clip_x0=FLOAT()[1:]))
    ddpm, ddim = DDPMSampler(sch), DDIMSampler(sch, eta=0.5)
    spec("diffusion.DDPMSampler.posterior", ddpm.posterior,
         lambda: dict(x0=torch.randn(2, 3), x_t=torch.randn(2, 3), t=tt()), dict(x0=TP(), x_t=TP(), t=TSTEP))
    spec("diffusion.DDPMSampler.step", ddpm.step,
         lambda: dict(model_output=torch.randn(2, 3), t=tt(), x_t=torch.randn(2, 3), generator=_g()),
         dict(model_output=TP(), t=TSTEP, x_t=TP(), generator=GEN(), noise=TP()[1:]))
    spec("diffusion.DDIMSampler.step", ddim.step,
         lambda: dict(model_output=torch.randn(2, 3), t=tt(), t_prev=torch.tensor([1, -1]), x_t=torch.randn(2, 3),
                      generator=_g()),
         dict(model_output=TP(), t=TSTEP, t_prev=T(floating=False)[:6] + [("late", torch.tensor([5, 7]), RAISE)],
              x_t=TP(), generator=GEN(), noise=TP()[1:]))
    model_fn = lambda x, t: torch.zeros_like(x)  # noqa: E731
    for name, smp in (("DDPMSampler", ddpm), ("DDIMSampler", ddim)):
        spec(f"diffusion.{name}.sample", smp.sample,
             lambda: dict(model_fn=model_fn, shape=(2, 3), generator=_g()),
             dict(model_fn=[("None", None, RAISE)], shape=[("None", None, RAISE), ("neg", (-1, 3), RAISE),
                                                         ("float", (2.5, 3), RAISE)],
                  num_steps=INT()[1:] if name == "DDIMSampler" else [("bad", 3, RAISE)], generator=GEN(),
                  device=DEVICE(), dtype=[("int", torch.int64, RAISE), ("str", "f", RAISE)],
                  x_T=[("str", "a", RAISE), ("shape", torch.randn(3, 3), RAISE)],
                  callback=[("str", "cb", RAISE)]))
    spec("diffusion.DDIMSampler.invert", DDIMSampler(sch).invert,
         lambda: dict(model_fn=model_fn, x0=torch.randn(2, 3), num_steps=3),
         dict(model_fn=[("None", None, RAISE)], x0=T(batch=False), num_steps=INT()[1:],
              callback=[("str", "cb", RAISE)]))


# ============================================================================ diffrep.cluster
def _cluster():
    from diffrep.cluster import dyga_code, fit, kmeans

    x = lambda: torch.randn(1, 24, 2, generator=torch.Generator().manual_seed(0))  # noqa: E731
    small = dict(n_components=2, max_components=2, split=False, max_iter=2)
    spec("cluster.fit", fit, lambda: dict(x=x(), **small),
         dict(x=T(batch=False, dims=RAISE, empty=RAISE, listed=RAISE), n_components=INT(), max_components=INT(),
              model=CHOICE(), max_iter=INT(), tol=FLOAT(zero=SAME), split=[("str", "no", RAISE), ("int", 1, RAISE)],
              min_mass=FLOAT(zero=SAME), seed=INT(zero=SAME), split_rule=CHOICE(), phi=FLOAT(big=1.5),
              psi=FLOAT(zero=SAME), p_arbitrary=FLOAT(zero=SAME, big=1.5)[1:], max_split_passes=INT(zero=SAME),
              threshold=FLOAT(big=1.5), dim_rule=CHOICE(), init=CHOICE(), reg_covar=FLOAT(zero=SAME),
              weights=T(batch=False)[1:] + [("negative", -torch.ones(1, 24), RAISE)],
              init_resp=[("str", "a", RAISE), ("shape", torch.full((1, 24, 3), 1 / 3), RAISE)]))
    res = fit(x(), **small)
    for m in ("log_prob", "responsibilities", "labels"):
        spec(f"cluster.HDDCResult.{m}", getattr(res, m), lambda: dict(x=x()),
             dict(x=T(batch=False, dims=RAISE, empty=EITHER)))
    spec("cluster.HDDCResult.padded", res.padded, lambda: dict(num_slots=4), dict(num_slots=INT()))
    spec("cluster.dyga_code.fit_code", dyga_code.fit_code,
         lambda: dict(x=x(), n_components=2, max_components=2, max_iter=2),
         dict(x=T(batch=False, dims=RAISE, empty=RAISE, listed=RAISE), n_components=INT(), max_components=INT(),
              max_iter=INT(), min_mass=FLOAT(zero=SAME), phi=FLOAT(big=1.5), psi=FLOAT(zero=SAME),
              p_arbitrary=FLOAT(zero=SAME, big=1.5), max_split_iter=INT(zero=SAME), reg_covar=FLOAT(zero=SAME),
              seeds=[("short", [0, 1], RAISE), ("neg", [-1], RAISE), ("str", "0", RAISE), ("int", 3, RAISE)]))
    spec("cluster.dyga_code.capacity", dyga_code.capacity, lambda: dict(max_components=4), dict(max_components=INT()))
    spec("cluster.kmeans.kmeans_labels", kmeans.kmeans_labels,
         lambda: dict(x=x(), w=torch.ones(1, 24), K=2, seeds=[0]),
         dict(x=T(batch=False, dims=RAISE, empty=RAISE), w=T(batch=False)[:5] + [("zero", torch.zeros(1, 24), RAISE)],
              K=INT() + [("big", 25, RAISE)], seeds=[("None", None, RAISE), ("short", [], RAISE)],
              init=CHOICE(), iters=INT(zero=SAME)))
    spec("cluster.kmeans.nearest_centre", kmeans.nearest_centre,
         lambda: dict(x=x(), cents=torch.randn(1, 2, 2)),
         dict(x=T(batch=False, dims=RAISE, empty=RAISE), cents=T(batch=False, dims=RAISE, empty=RAISE)))


# ============================================================================ diffrep.config
def _config(tmp):
    import yaml

    from diffrep import config as C
    from diffrep.config import describe
    from diffrep.diffusion import NoiseScheduleConfig as N

    NOT_CLASS = [("None", None, RAISE), ("int", 3, RAISE), ("str", "N", RAISE), ("instance", N(), RAISE),
                 ("plain class", dict, RAISE)]
    NOT_DICT = [("None", None, RAISE), ("list", [("kind", "linear")], RAISE), ("str", "kind: linear", RAISE),
                ("unknown key", {"nope": 1}, RAISE), ("bad value", {"num_timesteps": "many"}, RAISE),
                ("int key", {3: 1}, RAISE)]
    NOT_CFG = [("None", None, RAISE), ("int", 3, RAISE), ("class", N, RAISE), ("dict", {"kind": "linear"}, RAISE)]
    spec("config.config_from_dict", C.config_from_dict, lambda: dict(cls=N, data={"kind": "cosine"}),
         dict(cls=NOT_CLASS, data=NOT_DICT), names={"data": ["nope", "num_timesteps", "3"]})
    spec("config.Config.from_dict", N.from_dict, lambda: dict(data={"kind": "cosine"}), dict(data=NOT_DICT),
         names={"data": ["nope", "num_timesteps", "3"]})
    spec("config.with_fields_added", C.with_fields_added, lambda: dict(cls=N, data={"kind": "cosine"}),
         dict(cls=NOT_CLASS, data=[(lb, v, EITHER) for lb, v, _ in NOT_DICT[:3]]))  # returned as is (documented)
    spec("config.config_to_dict", C.config_to_dict, lambda: dict(cfg=N()),
         dict(cfg=[("class", N, RAISE), ("object", object(), RAISE)]))
    spec("config.validate_tree", C.validate_tree, lambda: dict(cfg=N()), dict(cfg=NOT_CFG))
    spec("config.flatten_dict", C.flatten_dict, lambda: dict(d={"a": {"b": 1}}, prefix="x"),
         dict(d=[("None", None, RAISE), ("list", [1, 2], RAISE), ("str", "a", RAISE)],
              prefix=[("None", None, RAISE), ("int", 3, RAISE)]))
    spec("config.apply_overrides", C.apply_overrides, lambda: dict(cfg=N(), overrides=["--kind=cosine"]),
         dict(cfg=NOT_CFG, overrides=[("None", None, RAISE), ("str", "--kind=cosine", RAISE), ("no --", ["kind"], RAISE),
                                      ("unknown", ["--nope=1"], RAISE), ("bad value", ["--num_timesteps=many"], RAISE),
                                      ("int item", [3], RAISE), ("bad dict", {"kind": "nope"}, RAISE)]),
         names={"overrides": ["kind", "nope", "num_timesteps", "3"]})
    spec("config.parse_override_args", C.parse_override_args, lambda: dict(tokens=["--kind=cosine"]),
         dict(tokens=[("None", None, RAISE), ("str", "--kind=cosine", RAISE), ("no --", ["kind"], RAISE),
                      ("int", [3], RAISE)]), names={"tokens": ["kind", "3"]})
    spec("config.set_path", C.set_path, lambda: dict(cfg=N(), path="kind", raw="cosine"),
         dict(cfg=NOT_CFG, path=[("None", None, RAISE), ("empty", "", RAISE), ("unknown", "nope", RAISE),
                                 ("deep", "kind.x", RAISE), ("int", 3, RAISE)],
              raw=[("bad", "nope", RAISE), ("None", None, RAISE), ("list", [1], RAISE)]),
         names={"path": ["nope", "kind"], "raw": ["kind"]})
    spec("config.load_yaml", C.load_yaml, lambda: dict(path=str(tmp / "ok.yaml")),
         dict(path=[("None", None, RAISE), ("missing", str(tmp / "missing.yaml"), OSError), ("dir", str(tmp), OSError),
                    ("int", 3, RAISE), ("not yaml", str(tmp / "bad.yaml"), yaml.YAMLError)]),
         names={"path": ["missing.yaml", "bad.yaml", str(tmp)]})
    spec("config.parse_yaml", C.parse_yaml, lambda: dict(text="a: 1e-3"),
         dict(text=[("None", None, RAISE), ("int", 3, RAISE), ("bytes", b"a: 1", RAISE),
                    ("repeated key", "{a: 1, a: 2}", yaml.YAMLError), ("not yaml", "a: [1", yaml.YAMLError)]),
         names={"text": ["text", "a"]})
    spec("config.dump_yaml", C.dump_yaml, lambda: dict(cfg=N(), path=str(tmp / "out.yaml")),
         dict(cfg=NOT_CFG[:3], path=[("None", None, RAISE), ("dir", str(tmp), OSError), ("float", 3.5, RAISE)]),
         names={"path": [str(tmp)]})
    for b in (C.Ge, C.Gt, C.Le, C.Lt):
        spec(f"config.{b.__name__}", b, lambda: dict(value=0.0), dict(value=FLOAT(zero=SAME, negative=SAME)))
        spec(f"config.{b.__name__}.check", lambda value, field, b=b: b(0.5).check(value, field),
             lambda b=b: dict(value=1.0 if b in (C.Ge, C.Gt) else 0.0, field="f"),
             dict(value=[("None", None, EITHER), ("str", "1", RAISE), ("nan", math.nan, RAISE)],  # None: an unset Optional
                  field=[("None", None, RAISE), ("int", 3, RAISE)]),
             names={"value": ["f"]})
    spec("config.ConfigError", C.ConfigError, lambda: dict(field="f", message="m"),
         dict(field=[("None", None, RAISE), ("int", 3, RAISE)], message=[("None", None, RAISE), ("int", 3, RAISE)]))
    spec("config.field_docs", describe.field_docs, lambda: dict(cls=N), dict(cls=NOT_CLASS))
    spec("config.describe_fields", describe.describe_fields, lambda: dict(cfg=N()),
         dict(cfg=NOT_CFG, prefix=[("None", None, RAISE), ("int", 3, RAISE)]))
    spec("config.annotated_yaml", describe.annotated_yaml, lambda: dict(cfg=N()), dict(cfg=NOT_CFG))


# ============================================================================ the engine
def _build():
    import tempfile
    from pathlib import Path

    global _TMP
    for part in (_ops_bfn, _ops_other, _reference, _bfn, _bfn_rest, _diffusion, _cluster):
        part()
    # the YAML cases' files, written once at collection; the folder is removed when the session ends (held here:
    # a TemporaryDirectory no longer referenced removes its folder at once)
    _TMP = tempfile.TemporaryDirectory(prefix="sweep-config-")
    tmp = Path(_TMP.name)
    (tmp / "ok.yaml").write_text("kind: cosine\n")
    (tmp / "bad.yaml").write_text("kind: [unclosed\n")
    _config(tmp)
    return [pytest.param(s, arg, bads, id=f"{s.name}-{arg}") for s in SPECS for arg, bads in s.bads.items()]


CASES = _build()


def _nan_in(out) -> bool:
    if isinstance(out, torch.Tensor):
        return out.is_floating_point() and bool(torch.isnan(out).any())
    if isinstance(out, (tuple, list)):
        return any(_nan_in(o) for o in out)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return any(_nan_in(getattr(out, f.name)) for f in dataclasses.fields(out))
    if isinstance(out, float):
        return math.isnan(out)
    return False


def _shape(out):
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        return tuple(_shape(o) for o in out)
    return None


def _brief(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor{tuple(v.shape)}:{v.dtype}"
    return repr(v)[:40]


_VALID_SHAPES: dict = {}
MISMATCH = ("batch", "dims+1", "dims-1", "empty")  # a mismatch may be reported by the other argument's name


def _names(s: Spec, arg: str, label: str, kw: dict) -> list[str]:
    extra = [k for k, v in kw.items() if isinstance(v, torch.Tensor) and k != arg] if label in MISMATCH else []
    return [arg, *s.names.get(arg, []), *extra]


def _check(s: Spec, arg: str, label: str, bad, expect) -> str | None:
    """None when the case passes, else what went wrong."""
    if s.name not in _VALID_SHAPES:  # the valid call, once per callable
        ref = s.call(**s.valid())
        assert s.nan_ok or not _nan_in(ref), f"{s.name}: the valid call gave NaN"
        _VALID_SHAPES[s.name] = _shape(ref)
    kw = s.valid()
    if getattr(bad, "_derived", False):  # an optional tensor left out of the valid call: derive from a float one
        base = kw[arg] if arg in kw else next(v for v in kw.values()
                                              if isinstance(v, torch.Tensor) and v.is_floating_point())
        bad = bad(base, kw)
    kw[arg] = bad
    try:
        out = s.call(**kw)
    except (ValueError, TypeError) + ((expect,) if isinstance(expect, type) else ()) as e:
        msg = str(e)
        if not any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg)
                   for n in _names(s, arg, label, kw)):
            return f"raised {type(e).__name__} not naming {arg}: {msg}"
        return None
    except Exception as e:  # noqa: BLE001 - any other exception is the failure this sweep looks for
        return f"raised {type(e).__name__}: {e}"
    if expect == RAISE or isinstance(expect, type):
        return "accepted the bad value"
    if not (s.nan_ok or expect == PROPAGATE) and _nan_in(out):
        return "returned NaN"
    if expect == SAME and _shape(out) != _VALID_SHAPES[s.name]:
        return f"changed the output shape to {_shape(out)}"
    return None


@pytest.mark.parametrize("s, arg, bads", CASES)
def test_input_sweep(s, arg, bads):
    failures = [f"{label} ({_brief(bad) if not getattr(bad, '_derived', False) else 'derived'}): {why}"
                for label, bad, expect in bads if (why := _check(s, arg, label, bad, expect)) is not None]
    assert not failures, f"{s.name}({arg}=...):\n" + "\n".join(failures)


# Public names the sweep leaves out, with why. Everything else that the modules export (``__all__``, else
# the names they define without a leading underscore; a class's public methods too) must be in the table.
LEFT = {
    # plumbing of the HDDC fit, exported for its sibling modules: parameter dicts built and checked by
    # diffrep.cluster.fit / fit_code (whose arguments the sweep covers), never a user's entry point
    **{f"diffrep.cluster.em.{n}": "EM plumbing of cluster.fit" for n in (
        "bic", "compact", "deactivate", "em", "em_compact", "n_free_params", "pick", "put", "slots", "subset",
        "take")},
    "diffrep.cluster.split.child_starts": "split plumbing of cluster.fit",
    "diffrep.cluster.split.split_pass": "split plumbing of cluster.fit",
    **{f"diffrep.ops.hddc.Engine{m}": "the fit's kernel engine (parameter dicts of cluster.fit)"
       for m in ("", ".density", ".estep", ".mstep", ".point_lse")},
    "diffrep.ops.hddc.params": "the fit's eigen step on M-step sums built by Engine.mstep",
    **{f"diffrep.ops.reference.hddc.{n}": "twin of the fit's kernels (parameter dicts of cluster.fit)" for n in (
        "bic_dims", "cattell_dims", "cluster_density", "e_step", "log_prob", "m_step", "mstep_stats",
        "params_from_stats")},
    # building blocks of the twins (the twins' entry points are swept): called with checked tensors only
    **{f"diffrep.ops.reference.bfn.{n}": "building block of the BFN twins" for n in (
        "bin_boundaries", "bin_centres", "boundary_cdfs", "discretised_mean", "float_to_idx", "gamma",
        "loss_weight", "noise_pred_to_data_pred", "normal_cdf", "output_normal_params", "per_element")},
    "diffrep.ops.reference.metrics.doubled_midranks": "building block of the AUROC twin",
    "diffrep.ops.reference.metrics.mi_from_counts": "building block of the MI twin",
    "diffrep.ops.reference.mmd.kernel_from_sq_dist": "building block of the MMD twin",
    "diffrep.ops.reference.mmd.sq_dist": "building block of the MMD twin",
    "diffrep.ops.reference.philox.philox4x32_10": "the Philox rounds on counter words (normals is swept)",
    "diffrep.ops.reference.philox.uniforms": "uint32 words to uniforms (normals is swept)",
    "diffrep.ops.reference.philox.key_word": "the seed/offset check itself (swept through normals, fill_normal)",
    # no argument to get wrong, or only a type annotation / the dataclass machinery
    "diffrep.config.describe.type_label": "total over its input: any annotation gets a label",
    "diffrep.config.errors.ConfigError.prefixed": "a str prefix on an existing error",
    "diffrep.diffusion.samplers.ChainDivergedError": "an exception class (a message, raised by SAMI's chain check)",
    "diffrep.bfn.model.BFN.config_class": "a class attribute",
    "diffrep.cluster.hddc.HDDCResult": "a result record built by fit",
    "diffrep.config.bounds.Bound": "the base of Ge, Gt, Le, Lt (swept)",
    "diffrep.config.core.Config": "the base of every config (swept through BFNDataConfig, NoiseScheduleConfig, ...)",
    "diffrep.config.core.differing_fields": "its bad inputs (non-config, a class) in tests/config/test_differing_fields.py",
    "diffrep.cluster.hddc.HDDCResult.align": "deprecated alias of diffrep.methods.dyga.align (swept there)",
    "diffrep.nn.images.batch_images": "diffrep.nn's (re-exported by diffrep.bfn.model)",
    "diffrep.ops._deferred.deferred_checks": "takes no arguments (its behaviour: tests/ops/test_native_flag_reads.py)",
    "diffrep.ops._deferred.DeferredChecks": "takes no arguments (its behaviour: tests/ops/test_native_flag_reads.py)",
    "diffrep.ops._deferred.DeferredChecks.active": "takes no arguments (a context manager)",
    "diffrep.ops._deferred.DeferredChecks.pending": "takes no arguments",
    "diffrep.ops._deferred.DeferredChecks.slot": "device and fail type-checked (tests/ops/test_native_flag_reads.py)",
    "diffrep.ops._deferred.DeferredChecks.check_after": "exc type-checked (tests/ops/test_native_flag_reads.py)",
}
NO_ARGUMENTS = ("validate", "to_dict")  # Config methods of the instance itself (swept through the constructors)
INHERITED = ("from_dict", "from_pretrained", "read_config", "save_pretrained", "compare", "check")


def _public_callables():
    import importlib
    import inspect
    import pkgutil

    mods = []
    for pkg in ("diffrep.ops", "diffrep.ops.reference", "diffrep.bfn", "diffrep.diffusion", "diffrep.cluster",
                "diffrep.config"):
        m = importlib.import_module(pkg)
        mods.append(m)
        mods += [importlib.import_module(f"{pkg}.{i.name}") for i in pkgutil.iter_modules(m.__path__)
                 if not i.name.startswith("_")]
    out = {}
    for mod in mods:
        names = getattr(mod, "__all__", None) or [
            n for n in dir(mod) if not n.startswith("_") and getattr(getattr(mod, n), "__module__", None) == mod.__name__]
        for n in names:
            o = getattr(mod, n)
            if inspect.ismodule(o) or not callable(o) or not str(getattr(o, "__module__", "")).startswith("diffrep"):
                continue
            out[f"{o.__module__}.{o.__qualname__}"] = o
            if inspect.isclass(o):
                for mn, mv in inspect.getmembers(o):
                    if (mn.startswith("_") or isinstance(inspect.getattr_static(o, mn), property) or not callable(mv)
                            or not str(getattr(mv, "__module__", "")).startswith("diffrep")
                            or mn in NO_ARGUMENTS + INHERITED):
                        continue
                    out[f"{o.__module__}.{o.__qualname__}.{mn}"] = (o, mn)
    return out


def test_sweep_covers_every_public_callable():
    """Every public callable of the swept modules, found by import, is in the table or in LEFT (with why)."""
    import inspect

    covered = set()
    for s in SPECS:
        c = s.call
        if inspect.ismethod(c):
            owner = c.__self__ if inspect.isclass(c.__self__) else type(c.__self__)
            covered.add(f"{owner.__module__}.{owner.__qualname__}.{c.__name__}")
        elif inspect.isclass(c) or (inspect.isfunction(c) and c.__name__ != "<lambda>"):
            covered.add(f"{c.__module__}.{c.__qualname__}")
        elif callable(c) and not inspect.isfunction(c):  # an output distribution instance: its __call__
            covered.add(f"{type(c).__module__}.{type(c).__qualname__}")
        covered.update(x for x in s.covers)
    public = _public_callables()
    missing = sorted(k for k in public if k not in covered and k not in LEFT
                     and not any(k.endswith("." + c) for c in covered if "." in c and not c.startswith("diffrep")))
    assert not missing, "public callables neither swept nor in LEFT:\n" + "\n".join(missing)
    assert not [k for k in LEFT if k not in public], "LEFT names what is no longer public"
