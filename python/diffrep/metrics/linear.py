"""The "fast" logistic-regression estimator: multinomial logistic regression for several factors
at once, fitted full-batch with L-BFGS in torch (float64), for the LR-heavy metrics
(explicitness, InfoE).

It minimises the same objective as sklearn ``LogisticRegression(solver="lbfgs")`` -- per factor,
the sample-weighted mean cross-entropy plus ``0.5 / (C * sum(w)) * ||W||^2`` (intercepts not
penalised; ``C = inf`` is unpenalised) -- with softmax over the factor's classes (K > 2) or the
binary logistic model (K = 2, as sklearn: one coefficient vector, so the symmetric two-class
softmax gets twice the penalty). ``class_weight="balanced"`` gives w_i = n / (K count(y_i)).

The difference from sklearn is the solver: sklearn runs scipy's L-BFGS-B per factor; here all
factors are fitted together by torch's L-BFGS with a strong-Wolfe line search (their objectives
are independent, so the joint minimiser is each factor's minimiser), in one GEMM per evaluation.
The stopping rule is sklearn's: the gradient's largest entry below ``tol`` (1e-4) or ``max_iter``
(100) iterations. Both approximate the same optimum to that tolerance, so probabilities differ by
about 1e-4 and rank-based scores much less; the measured agreement of the scores is in
benches/results/metrics_*.txt and tests/metrics/test_fast_lr.py. On separable data without a
penalty there is no optimum and each solver reports where it stopped (flagged).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

_F64 = torch.float64


@dataclasses.dataclass
class BatchedLogisticRegression:
    """Fitted models of :func:`fit_logistic`: one per factor, sharing the inputs' width."""

    coef: torch.Tensor  # (F, d, K_max)
    intercept: torch.Tensor  # (F, K_max)
    classes: list  # per factor: the sorted class values (np.ndarray)
    converged: list  # per factor: gradient max below tol
    iterations: int

    def predict_proba(self, x) -> list:
        """Per factor, probabilities (n, K_f) over its classes (sklearn ``predict_proba``)."""
        xt = torch.as_tensor(np.asarray(x), dtype=_F64) if not isinstance(x, torch.Tensor) else x.to(_F64)
        logits = _logits(xt, self.coef, self.intercept)
        return [torch.softmax(logits[:, f, : len(cls)], dim=1).numpy() for f, cls in enumerate(self.classes)]


def fit_logistic(x, ys, C: float = 1.0, class_weight: str | None = None, max_iter: int = 100,
                 tol: float = 1e-4) -> BatchedLogisticRegression:
    """Fit one logistic regression per label vector in ``ys`` on the shared inputs ``x`` (n, d).

    ``ys``: a list of (n,) label arrays (any values; each needs >= 2 classes). ``C``: inverse L2
    strength as sklearn (``np.inf``: unpenalised). ``class_weight``: None or ``"balanced"``.
    """
    from .._checks import non_negative_float, positive_int
    from . import _checks

    n = _checks.codes(x, "x").shape[0]  # (n, d), finite: torch's unpacking and L-BFGS named nothing
    if isinstance(ys, (str, bytes)) or not isinstance(ys, (list, tuple)) or not ys:
        raise TypeError(f"ys must be a non-empty list of (n,) label arrays, got {type(ys).__name__}")
    for j, y in enumerate(ys):
        if np.ndim(y) != 1 or len(y) != n:
            raise ValueError(f"ys[{j}] must be a label vector of the n = {n} rows of x, got shape {np.shape(y)}")
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:  # np.inf: unpenalised
        raise ValueError(f"C must be > 0 (np.inf: unpenalised), got {C!r}")
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    positive_int(max_iter, "max_iter")
    non_negative_float(tol, "tol")
    xt = torch.as_tensor(np.asarray(x), dtype=_F64)
    n, d = xt.shape
    classes, codes = [], []
    for y in ys:
        cls, inv = np.unique(np.asarray(y), return_inverse=True)
        if cls.size < 2:
            raise ValueError(f"fit_logistic: a label vector holds a single class ({cls.tolist()})")
        classes.append(cls)
        codes.append(torch.from_numpy(inv.astype(np.int64)))
    nf = len(ys)
    kmax = max(c.size for c in classes)
    y = torch.stack(codes, dim=1)  # (n, F)
    valid = torch.zeros(nf, kmax, dtype=torch.bool)
    weight = torch.ones(n, nf, dtype=_F64)
    pen = torch.zeros(nf, dtype=_F64)
    for f, cls in enumerate(classes):
        k = cls.size
        valid[f, :k] = True
        if class_weight == "balanced":
            counts = torch.bincount(y[:, f], minlength=k).to(_F64)
            weight[:, f] = (n / (k * counts))[y[:, f]]
        elif class_weight is not None:
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        if np.isfinite(C):
            # sklearn: 0.5 / (C sum(w)) ||W||^2 on the mean loss; K = 2 is the binary model with
            # w = w_1 - w_0, i.e. twice the penalty on the symmetric two-class softmax.
            pen[f] = (0.5 if k > 2 else 1.0) / (C * float(weight[:, f].sum()))
    wsum = weight.sum(dim=0)
    mask = torch.where(valid, torch.zeros((), dtype=_F64), torch.full((), float("-inf"), dtype=_F64))
    coef = torch.zeros(nf, d, kmax, dtype=_F64, requires_grad=True)  # LBFGS needs leaf tensors
    bias = torch.zeros(nf, kmax, dtype=_F64, requires_grad=True)
    opt = torch.optim.LBFGS([coef, bias], lr=1.0, max_iter=max_iter, tolerance_grad=tol, tolerance_change=0.0,
                            history_size=20, line_search_fn="strong_wolfe")

    onehot = torch.zeros(n, nf, kmax, dtype=_F64).scatter_(2, y.unsqueeze(2), 1.0)
    scale = (weight / wsum).unsqueeze(2)  # (n, F, 1): per-sample weight of the mean loss

    def closure():
        # loss and gradient in closed form (softmax cross-entropy), no autograd graph
        with torch.no_grad():
            z = _logits(xt, coef, bias) + mask  # (n, F, K), contiguous
            zmax = z.amax(dim=2, keepdim=True)
            e = torch.exp(z - zmax)
            se = e.sum(dim=2, keepdim=True)
            lse = zmax + torch.log(se)
            ce = (lse - torch.gather(z, 2, y.unsqueeze(2))).squeeze(2)  # (n, F): -log p(y_i)
            loss = (weight * ce).sum(dim=0) / wsum + pen * (coef ** 2).sum(dim=(1, 2))
            g = (e / se - onehot).mul_(scale)  # d loss / d z
            gx = (xt.T @ g.view(n, nf * kmax)).view(d, nf, kmax).permute(1, 0, 2)
            coef.grad = (gx + 2 * pen.view(-1, 1, 1) * coef).contiguous()
            bias.grad = g.sum(dim=0)
        return loss.sum()

    opt.step(closure)
    closure()
    gmax = torch.maximum(coef.grad.abs().amax(dim=(1, 2)), bias.grad.abs().amax(dim=1))
    iters = int(opt.state[opt._params[0]].get("n_iter", 0))
    return BatchedLogisticRegression(coef.detach(), bias.detach(), classes, (gmax <= tol * 10).tolist(), iters)


def _logits(x: torch.Tensor, coef: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(n, F, K) logits of every factor's model as one GEMM: x (n, d) @ coef as (d, F K)."""
    nf, d, k = coef.shape
    z = x @ coef.permute(1, 0, 2).reshape(d, nf * k)
    return z.view(-1, nf, k) + bias
