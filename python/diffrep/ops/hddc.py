"""Batched HDDC-EM with split and filter: the Gaussian anchors of DyGA, fitted for U latent
units at once.

HDDC (Bouveyron, Girard, Schmid 2007) as implemented by cran/HDclassif 2.2.2, model AkjBkQkDk
(``hddc_e_step``, ``hddc_m_step``, ``hddc_main``, ``hdclassif_dim_choice``); the anchor-selection
procedure of DyGA (Jun et al., §3.2.1, Alg. 2, Eq. 4-6, Alg. 3); specification in
shared/reference/dyga-encdiff.md §2, §4 and kernels.md §4. The maths lives in the twin
:mod:`diffrep.ops.reference.hddc`; this module adds validation, the split/filter driver, the
result object and the alignment op.

Procedure per unit (all units batched; a unit's result does not depend on the others):

1. init: k-means (k-means++ or random-point seeding, 10 Lloyd steps, seeded per unit) for
   ``n_components`` clusters -> one-hot responsibilities;
2. EM (M then E) until |dL| < tol or |dL|/(0.1 + |L|) < tol or ``max_iter``;
3. split passes (DyGA Eq. 4-5): a cluster's members are the points with t_ik > ``phi``; its
   density is their mean distance to their plain mean; clusters with density > ``psi`` (plus,
   with probability ``p_arbitrary``, any other cluster) and at least 2 ``min_mass`` members are
   candidates, in descending density; a candidate's members are refitted as a 2-component
   mixture (children initialised by the sign of the projection on the leading eigenvector),
   and the children replace the parent with weights pi_k times the sub-mixture weights;
4. filter: one E-step, components with soft mass sum_i t_ik < ``min_mass`` are dropped (if
   every one would be, the largest stays);
5. final EM on all points.

``split_rule`` -- where DyGA's paper and diffrep differ:

* ``"bic"`` (default): a candidate split is kept only if it raises the unit's BIC
  (2 L - m log n, ``hdc_getComplexity``). The fit then finds the number of clusters the data
  has, on normalised or unnormalised data alike.
* ``"dyga"``: the paper's rule, every candidate is split (``p_arbitrary`` defaults to 0.5, the
  coin of the authors' code). Because ψ is an absolute distance, on unnormalised data it keeps
  splitting up to ``max_components``; on [0, 1]-normalised data it rarely splits.

``model="full"`` is the full-covariance GMM that the DyGA authors' code runs (Sigma_k + 1e-6 I,
scikit-learn's ``reg_covar``), which equals scikit-learn's GaussianMixture from the same
initialisation.

Degenerate data (duplicates, n < d, collapsed or empty clusters) never gives NaN: eigenvalues
are floored (a_kj, b_k >= 1e-8 after the M-step, b_k >= 1e-6 in the E-step), components with
fewer than 2 points of t_ik > 1/K are deactivated, and ``result.events`` counts what happened.

Backend: the batched PyTorch implementation (twin) runs on CPU and CUDA tensors; the eigen
step is ``torch.linalg.eigh`` on (U K, d, d), which PyTorch runs batched (syevj) for d <= 32 on
CUDA. ``diffrep.ops.explain("hddc.fit", x)`` reports this.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from . import _validate as V
from ._dispatch import register, select
from .reference import hddc as ref

__all__ = ["fit", "HDDCResult", "MODELS", "SPLIT_RULES"]

MODELS = ("AkjBkQkDk", "full")
SPLIT_RULES = ("bic", "dyga")
MAX_DIM = 64
MAX_COMPONENTS = 64


@dataclasses.dataclass
class HDDCResult:
    """Per-unit mixtures, padded to K = ``max_components`` with an ``active`` mask.

    weights (U, K) (0 for inactive), means (U, K, d), n_components (U,), log_likelihood (U,)
    (sum_i log p(x_i) at the final parameters), bic (U,); AkjBkQkDk: subspaces (U, K, d, d)
    (eigenvectors as columns, the first ``dims`` span the signal subspace), a (U, K, d) (zero
    beyond ``dims``), b (U, K), dims (U, K); full mode: covariances (U, K, d, d).
    ``events``: counts per unit of splits, filtered and deactivated components, and components
    whose variances hit the regularisation floor.
    """

    weights: torch.Tensor
    means: torch.Tensor
    n_components: torch.Tensor
    log_likelihood: torch.Tensor
    bic: torch.Tensor
    active: torch.Tensor
    model: str
    subspaces: torch.Tensor | None = None
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None
    dims: torch.Tensor | None = None
    covariances: torch.Tensor | None = None
    events: dict = dataclasses.field(default_factory=dict)

    def _params(self):
        p = dict(pi=self.weights, mu=self.means, active=self.active, model=self.model)
        if self.model == "full":
            p["cov"] = self.covariances
        else:
            p.update(Q=self.subspaces, a=self.a, b=self.b, dk=self.dims)
        return p

    def _points(self, x, name="x"):
        V.tensor(name, x)
        U, K, d = self.means.shape
        if x.dim() != 3 or x.shape[0] != U or x.shape[2] != d:
            raise ValueError(f"{name} must have shape ({U}, n, {d}), got {tuple(x.shape)}")
        if x.device != self.means.device:
            raise ValueError(f"{name} is on {x.device} but the mixture is on {self.means.device}")
        V.finite(name, x)
        return x.to(self.means.dtype)

    def log_prob(self, x):
        """log pi_k N_k(x_i) (U, n, K) (-inf for inactive components); differentiable in x."""
        return ref.log_prob(self._points(x), self._params())

    def responsibilities(self, x):
        """Posterior t_ik (U, n, K) of new points x (U, n, d) (DyGA Eq. 4)."""
        lp = self.log_prob(x)
        return torch.softmax(lp, -1)

    def labels(self, x):
        """MAP component (U, n) of new points."""
        return self.log_prob(x).argmax(-1)

    def align(self, features, lam=0.1, tau=1e-4, *, generator=None, gumbel=True, gumbel_input="log",
              detach_assignment=False):
        """DyGA feature alignment (Eq. 6, Alg. 3), differentiable w.r.t. ``features``.

        features (B, U, d) in the space the mixture was fitted in. Per (sample, unit): logits
        l = log t (``gumbel_input="log"``, the standard Gumbel-softmax input; ``"responsibility"``
        is Alg. 3's literal t), y = softmax((l + g)/tau) with Gumbel noise g (none when
        ``gumbel=False``: y = one-hot argmax, for evaluation), anchor mu_hat = sum_k y_k mu_k,
        delta = lam exp(-mean_j |(c_j - mu_hat_j)/(|c_j| + 1e-6)|), and
        c_tilde = c + delta (mu_hat - c).
        """
        V.tensor("features", features)
        if features.dim() != 3:
            raise ValueError(f"features must have shape (B, U, d), got {tuple(features.shape)}")
        lam = V.positive_scalar("lam", lam)
        tau = V.positive_scalar("tau", tau)
        if gumbel_input not in ("log", "responsibility"):
            raise ValueError(f"gumbel_input must be 'log' or 'responsibility', got {gumbel_input!r}")
        c = features.transpose(0, 1)                                   # (U, B, d)
        lp = self.log_prob(c)
        logt = lp - torch.logsumexp(lp, -1, keepdim=True)
        logits = logt if gumbel_input == "log" else logt.exp()
        logits = torch.where(self.active[:, None], logits, torch.full_like(logits, -math.inf))
        if gumbel:
            u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device="cpu").to(logits.device)
            g = -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))
            y = torch.softmax((logits + g) / tau, -1)
        else:
            y = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
        if detach_assignment:
            y = y.detach()
        mu_hat = y @ self.means.to(c.dtype)                             # (U, B, d)
        delta = lam * torch.exp(-((c - mu_hat) / (c.abs() + 1e-6)).abs().mean(-1, keepdim=True))
        return (c + delta * (mu_hat - c)).transpose(0, 1)


# --------------------------------------------------------------------------- validation
def _int(name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}], got {v}")
    return v


def _prep(x, n_components=8, max_components=32, model="AkjBkQkDk", **kw):
    V.tensor("x", x)
    if x.dim() != 3:
        raise ValueError(f"x must have shape (units, n, d), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)})")
    d = x.shape[2]
    if d > MAX_DIM:
        raise ValueError(f"x has d={d} > {MAX_DIM} features per unit (the HDDC kernels support d <= {MAX_DIM})")
    _int("max_components", max_components, 1, MAX_COMPONENTS)
    _int("n_components", n_components, 1, max_components)
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    reasons = ["no native HDDC kernel yet: batched PyTorch (torch.linalg.eigh for the eigen step)"]
    return select("hddc.fit", x.device, native_reasons=reasons)


def fit(x, n_components=8, max_components=32, model="AkjBkQkDk", max_iter=30, tol=1e-3, split=True, min_mass=10,
        seed=0, *, split_rule="bic", phi=0.5, psi=0.5, p_arbitrary=None, max_split_passes=3, threshold=0.2,
        dim_rule="cattell", init="kmeans++", reg_covar=1e-6, weights=None, init_resp=None) -> HDDCResult:
    """Fit an independent HDDC mixture to each of the U units of ``x`` (U, n, d), d <= 64.

    ``n_components``: initial K; ``max_components``: the cap for splits (K_max);
    ``model``: ``"AkjBkQkDk"`` (HDclassif) or ``"full"``; ``max_iter``, ``tol``: EM stopping
    per phase (HDclassif's tests on |dL|); ``split``: run the split passes;
    ``min_mass``: filter threshold on the soft size (DyGA: 10); ``seed``: k-means seeding and
    arbitrary splits (same seed -> same result).
    Keywords: ``split_rule`` ("bic" or "dyga", see the module doc), ``phi`` (membership, 0.5),
    ``psi`` (density threshold, 0.5), ``p_arbitrary`` (random-split probability; default 0.5
    under "dyga", 0 under "bic"), ``max_split_passes`` (3), ``threshold`` (Cattell, 0.2),
    ``dim_rule`` ("cattell" or "bic"), ``init`` ("kmeans++" or "random"), ``reg_covar`` (full
    mode), ``weights`` (U, n) point weights in [0, 1], ``init_resp`` (U, n, n_components)
    initial responsibilities instead of k-means.
    """
    _prep(x, n_components, max_components, model)
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    V.finite("x", x)
    _int("max_iter", max_iter, 1)
    _int("max_split_passes", max_split_passes, 0)
    tol = V.positive_scalar("tol", tol, allow_zero=True)
    min_mass = V.positive_scalar("min_mass", min_mass, allow_zero=True)
    _int("seed", seed, 0)
    if split_rule not in SPLIT_RULES:
        raise ValueError(f"split_rule must be one of {SPLIT_RULES}, got {split_rule!r}")
    if dim_rule not in ("cattell", "bic"):
        raise ValueError(f"dim_rule must be 'cattell' or 'bic', got {dim_rule!r}")
    if init not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random', got {init!r}")
    phi = V.positive_scalar("phi", phi, upper=1.0)
    psi = V.positive_scalar("psi", psi, allow_zero=True)
    p_arbitrary = (0.5 if split_rule == "dyga" else 0.0) if p_arbitrary is None else float(p_arbitrary)
    if not 0.0 <= p_arbitrary <= 1.0:
        raise ValueError(f"p_arbitrary must be in [0, 1], got {p_arbitrary}")
    reg_covar = V.positive_scalar("reg_covar", reg_covar, allow_zero=True)
    x = x.to(V.float_dtype(x=x)).detach().contiguous()
    U, n, d = x.shape
    if weights is None:
        w = torch.ones(U, n, dtype=x.dtype, device=x.device)
    else:
        V.tensor("weights", weights)
        if tuple(weights.shape) != (U, n):
            raise ValueError(f"weights must have shape ({U}, {n}), got {tuple(weights.shape)}")
        w = weights.to(x).detach()
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ValueError("weights must lie in [0, 1] (and not be NaN)")
        if not bool((w.sum(1) > 0).all()):
            raise ValueError("every unit needs a positive total weight")
    Kmax = max_components
    cfg = dict(model=model, max_iter=max_iter, tol=tol, threshold=threshold, dim_rule=dim_rule, reg_covar=reg_covar)
    stats = {k: torch.zeros(U, dtype=torch.int64) for k in ("splits", "filtered", "deactivated", "floored")}
    active = torch.zeros(U, Kmax, dtype=torch.bool, device=x.device)
    active[:, :n_components] = True
    resp = torch.zeros(U, n, Kmax, dtype=x.dtype, device=x.device)
    if init_resp is None:
        seeds = [seed * 1000003 + u for u in range(U)]
        labels = ref.kmeans_labels(x, w, n_components, seeds, init=init)
        resp[..., :n_components] = torch.nn.functional.one_hot(labels, n_components).to(x.dtype)
    else:
        V.tensor("init_resp", init_resp)
        if tuple(init_resp.shape) != (U, n, n_components):
            raise ValueError(f"init_resp must have shape ({U}, {n}, {n_components}), got {tuple(init_resp.shape)}")
        resp[..., :n_components] = init_resp.to(x).detach()
    p, resp, L = ref.em(x, w, resp, active, stats=stats, **cfg)
    if split and max_split_passes > 0 and Kmax > n_components:
        gen = torch.Generator().manual_seed(seed)
        for _ in range(max_split_passes):
            p, resp, L, n_split = _split_pass(x, w, p, resp, L, cfg, split_rule, phi, psi, p_arbitrary, min_mass,
                                              Kmax, gen, stats)
            if n_split == 0:
                break
        # filter, then the final EM on all points
        resp, _ = ref.e_step(x, w, p)
        mass = (resp * w[..., None]).sum(1)
        keep = p["active"] & (mass >= min_mass)
        none = ~keep.any(1)
        if bool(none.any()):
            keep[none] = torch.nn.functional.one_hot(torch.where(p["active"], mass, -1.0)[none].argmax(1),
                                                      Kmax).bool()
        stats["filtered"] += (p["active"] & ~keep).sum(1).cpu()
        resp = resp * keep[:, None]
        resp = resp / resp.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        p, resp, L = ref.em(x, w, resp, keep, stats=stats, **cfg)
    return _result(x, w, p, L, stats)


def _result(x, w, p, L, stats):
    _, L = ref.e_step(x, w, p)
    d = x.shape[2]
    act = p["active"]
    if p["model"] == "full":
        stats["floored"] += (act & (torch.linalg.eigvalsh(p["cov"])[..., 0] <= 2e-6)).sum(1).cpu()
    else:
        stats["floored"] += (act & (p["b"] <= ref.A_FLOOR * 1.0001)).sum(1).cpu()
    res = HDDCResult(weights=p["pi"] * act, means=p["mu"], n_components=act.sum(1), log_likelihood=L,
                     bic=ref.bic(L, p, w.sum(1), d), active=act, model=p["model"], events=stats)
    if p["model"] == "full":
        res.covariances = p["cov"]
    else:
        res.subspaces, res.a, res.b, res.dims = p["Q"], p["a"], p["b"], p["dk"]
    return res


# --------------------------------------------------------------------------- split
def _unit(p, u):
    return {k: (v[u:u + 1] if isinstance(v, torch.Tensor) else v) for k, v in p.items()}


def _children(x, w, p, resp, u, k, phi, cfg):
    """Refit the members of (unit u, component k) as a 2-component mixture; None if it fails."""
    member = (resp[u, :, k] > phi) & (w[u] > 0)
    wu = (w[u] * member)[None]
    xu = x[u:u + 1]
    mu = p["mu"][u, k]
    if p["model"] == "full":
        q1 = torch.linalg.eigh(p["cov"][u, k])[1][:, -1]
    else:
        q1 = p["Q"][u, k, :, 0]
    side = ((xu[0] - mu) @ q1 > 0).to(x.dtype)
    r0 = torch.stack([side, 1 - side], -1)[None]
    act = torch.ones(1, 2, dtype=torch.bool, device=x.device)
    if int(side[member].sum()) < 2 or int((1 - side)[member].sum()) < 2:
        return None
    p2, _, _ = ref.em(xu, wu, r0, act, **cfg)
    if not bool(p2["active"].all()):
        return None
    return p2


def _put(p, u, k, p2, c, pi):
    for key, v in p2.items():
        if isinstance(v, torch.Tensor) and key in p and key not in ("pi", "active", "nk"):
            p[key][u, k] = v[0, c]
    p["pi"][u, k] = pi
    p["active"][u, k] = True


def _split_pass(x, w, p, resp, L, cfg, rule, phi, psi, p_arb, min_mass, Kmax, gen, stats):
    """One pass of DyGA's split rule over every unit; returns the updated state and #splits."""
    U, n, d = x.shape
    p = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
    n_split = 0
    for u in range(U):
        member = (resp[u] > phi) & (w[u, :, None] > 0)                   # (n, K)
        cnt = member.sum(0)
        m = member.to(x.dtype)
        xbar = (m.T @ x[u]) / cnt.clamp_min(1)[:, None].to(x.dtype)
        dens = (torch.cdist(x[u], xbar) * m).sum(0) / cnt.clamp_min(1).to(x.dtype)
        coin = torch.rand(Kmax, generator=gen) < p_arb
        cand = [k for k in torch.argsort(dens.cpu(), descending=True, stable=True).tolist()
                if bool(p["active"][u, k]) and int(cnt[k]) >= 2 * max(min_mass, 1)
                and (float(dens[k]) > psi or bool(coin[k]))]
        for k in cand:
            free = (~p["active"][u]).nonzero()
            if len(free) == 0:
                break
            f = int(free[0])
            p2 = _children(x, w, p, resp, u, k, phi, cfg)
            if p2 is None:
                continue
            trial = {kk: (v.clone() if isinstance(v, torch.Tensor) else v) for kk, v in _unit(p, u).items()}
            pik = float(p["pi"][u, k])
            _put(trial, 0, k, p2, 0, pik * float(p2["pi"][0, 0]))
            _put(trial, 0, f, p2, 1, pik * float(p2["pi"][0, 1]))
            if "nk" in trial:
                trial["nk"][0, f] = trial["nk"][0, k] * float(p2["pi"][0, 1])
            r_new, L_new = ref.e_step(x[u:u + 1], w[u:u + 1], trial)
            if rule == "bic":
                n_eff = w[u:u + 1].sum(1)
                if not bool(ref.bic(L_new, trial, n_eff, d) > ref.bic(L[u:u + 1], _unit(p, u), n_eff, d)):
                    continue
            for kk, v in trial.items():
                if isinstance(v, torch.Tensor):
                    p[kk][u] = v[0]
            resp = resp.clone()
            resp[u] = r_new[0]
            L = L.clone()
            L[u] = L_new[0]
            stats["splits"][u] += 1
            n_split += 1
    return p, resp, L, n_split


register("hddc.fit")(lambda *a, **k: _prep(*a, **k))
