"""Batched HDDC-EM with split and filter: the Gaussian anchors of DyGA, fitted for U latent
units at once.

HDDC (Bouveyron, Girard, Schmid 2007) as implemented by cran/HDclassif 2.2.2, model AkjBkQkDk
(``hddc_e_step``, ``hddc_m_step``, ``hddc_main``, ``hdclassif_dim_choice``); the anchor-selection
procedure of DyGA (Jun et al., §3.2.1, Alg. 2, Eq. 4-6, Alg. 3); specification in
docs/kernels/hddc.md. The algorithm runs on the HDDC kernels
of :mod:`diffrep.ops.hddc` (E-step, M-step sums, cluster density; their twin is
:mod:`diffrep.ops.reference.hddc`): :mod:`.kmeans` initialises, :mod:`.em` iterates,
:mod:`.split` runs the split passes, and this module validates, filters and builds the result.
DyGA's alignment of features to the anchors (Eq. 6) is :func:`diffrep.methods.dyga.align`.

Procedure per unit (all units batched; a unit's result does not depend on the others):

1. init: k-means (k-means++ or random-point seeding, 10 Lloyd steps, seeded per unit) for
   ``n_components`` clusters -> one-hot responsibilities;
2. EM (M then E) until |dL| < tol or |dL|/(0.1 + |L|) < tol, or (after 20 iterations) a cycle
   between two states, ended on the better one (HDclassif's detector), or ``max_iter``;
3. split passes (DyGA Eq. 4-5): a cluster's members are the points with t_ik > ``phi``; its
   density is their mean distance to their plain mean; clusters with density > ``psi`` (plus,
   with probability ``p_arbitrary``, any other cluster) and at least 2 ``min_mass`` members are
   candidates, in descending density; a candidate's members are refitted as a 2-component
   mixture (children started at mu_k +- sqrt(lambda_1) q_1 with the parent's covariance,
   :func:`diffrep.cluster.split.child_starts`), and the children replace the parent with
   weights pi_k times the sub-mixture weights;
4. filter: one E-step, components with soft mass sum_i t_ik < ``min_mass`` are dropped (if
   every one would be, the largest stays);
5. final EM on all points.

``split_rule`` -- where DyGA's paper and diffrep differ:

* ``"bic"`` (default): a candidate split is kept only if it raises the unit's BIC
  (2 L - m log n, ``hdc_getComplexity``), and a unit keeps its splits only if its BIC after the
  filter and the final EM is strictly higher than without them (the same steps 4-5 from the
  model before the split passes; otherwise it gets that model, ``events["splits_undone"]``).
  The fit then finds the number of clusters the data has, on normalised or unnormalised data
  alike. Neither DyGA's paper nor its code uses a BIC: this rule is diffrep's.
* ``"dyga"``: the paper's rule, every candidate is split (``p_arbitrary`` defaults to 0.5, the
  coin of the authors' code). Because ψ is an absolute distance, on unnormalised data it keeps
  splitting up to ``max_components``; on [0, 1]-normalised data it rarely splits.

``model="full"`` is the full-covariance GMM that the DyGA authors' code runs (Sigma_k + 1e-6 I,
scikit-learn's ``reg_covar``), which equals scikit-learn's GaussianMixture from the same
initialisation.

Degenerate data (duplicates, n < d, collapsed or empty clusters) never gives NaN: eigenvalues
are floored (a_kj, b_k >= 1e-8 after the M-step, b_k >= 1e-6 in the E-step), components with
fewer than 2 points of t_ik > 1/K are deactivated, and ``result.events`` counts what happened.

Backend: the native kernels (CPU, CUDA) or the batched PyTorch twin for the E/M passes; the eigen
step is ``torch.linalg.eigh`` on the (unit, component) (d, d) matrices (inactive ones as I), which PyTorch runs
batched (syevj) for d <= 32 on CUDA. ``diffrep.ops.explain("hddc.fit", x)`` reports this.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings

import torch

from .._checks import non_negative_int, positive_int
from ..ops import _validate as V
from ..ops._full_precision import autocast_off
from ..ops import hddc as ops
from ..ops.reference import hddc as ref
from .em import bic, compact, em_compact, subset
from .kmeans import kmeans_labels
from .split import split_pass

__all__ = ["fit", "HDDCResult", "MODELS", "SPLIT_RULES"]

MODELS = ops.MODELS
SPLIT_RULES = ("bic", "dyga")


@dataclasses.dataclass
class HDDCResult:
    """Per-unit mixtures, padded to the largest K with an ``active`` mask.

    K = ``n_components.max()``: each unit's active components come first, in the fit's slot order,
    and slots past a unit's own count are padding (``active`` False, weight 0); :meth:`padded` widens
    the slots (DyGA stores its anchors in ``max_components`` slots).
    weights (U, K) (0 for inactive), means (U, K, d), n_components (U,), log_likelihood (U,)
    (sum_i log p(x_i) at the final parameters), bic (U,); AkjBkQkDk: subspaces (U, K, d, d)
    (eigenvectors as columns, the first ``dims`` span the signal subspace), a (U, K, d) (zero
    beyond ``dims``), b (U, K), dims (U, K); full mode: covariances (U, K, d, d).
    ``events``: counts per unit of splits, splits undone (``split_rule="bic"``: the final BIC was not
    higher with them), filtered and deactivated components, and components whose variances hit the
    regularisation floor.
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

    @autocast_off  # a statistic: the projection matmul under bf16 autocast moved it by thousands
    def log_prob(self, x):
        """log pi_k N_k(x_i) (U, n, K) (-inf for inactive components); differentiable in x."""
        return ref.log_prob(self._points(x), self._params())

    @autocast_off
    def _log_prob_trusted(self, x, max_dims):
        """:meth:`log_prob` without reading the device: ``x`` (U, n, d) in the means' dtype, computed by the
        library from checked inputs (DyGA's training path leaves a non-finite one to the trainer's
        non-finite-loss check, docs/architecture.md), ``max_dims`` the host copy of ``dims.max()``."""
        return ref.log_prob(x, self._params(), max_dims=max_dims)

    def responsibilities(self, x):
        """Posterior t_ik (U, n, K) of new points x (U, n, d) (DyGA Eq. 4)."""
        lp = self.log_prob(x)
        return torch.softmax(lp, -1)

    def labels(self, x):
        """MAP component (U, n) of new points."""
        return self.log_prob(x).argmax(-1)

    def padded(self, num_slots: int) -> "HDDCResult":
        """The same mixtures in ``num_slots`` >= K component slots: the new slots are inactive, with
        weight 0 and zero parameters (what fixed-size buffers, such as DyGA's anchors, hold)."""
        K = self.means.shape[1]
        if isinstance(num_slots, bool) or not isinstance(num_slots, int) or num_slots < K:
            raise ValueError(f"num_slots must be an int >= the result's {K} slots, got {num_slots!r}")
        out = dataclasses.replace(self)
        for name in _SLOT_FIELDS:
            t = getattr(self, name)
            if t is not None:
                pad = t.new_zeros((t.shape[0], num_slots - K, *t.shape[2:]))
                setattr(out, name, torch.cat([t, pad], 1))
        return out

    def align(self, features, lam=0.1, tau=1e-4, **kw):
        """Deprecated: ``diffrep.methods.dyga.align(result, features, ...)`` (DyGA Eq. 6)."""
        warnings.warn("HDDCResult.align(features, ...) moved to diffrep.methods.dyga.align(result, features, ...); "
                      "the method goes in the next release", DeprecationWarning, stacklevel=2)
        # DyGA sits above this layer: imported by name on use, as the deprecated aliases are
        return importlib.import_module("diffrep.methods.dyga").align(self, features, lam, tau, **kw)


@autocast_off  # k-means, the E-step twin and the eigen step in float32/64 whatever the caller's autocast
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
    choice = ops.prepare(x, n_components, max_components, model)  # x: a floating (units, n, d) tensor or a TypeError
    V.finite("x", x)
    positive_int(max_iter, "max_iter")
    non_negative_int(max_split_passes, "max_split_passes")
    tol = V.positive_scalar("tol", tol, allow_zero=True)
    min_mass = V.positive_scalar("min_mass", min_mass, allow_zero=True)
    non_negative_int(seed, "seed")
    if not isinstance(split, bool):
        raise TypeError(f"split must be a bool, got {type(split).__name__} {split!r}")
    if p_arbitrary is not None and (isinstance(p_arbitrary, bool) or not isinstance(p_arbitrary, (int, float))):
        raise TypeError(f"p_arbitrary must be a number in [0, 1] or None, got {type(p_arbitrary).__name__} {p_arbitrary!r}")
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
    threshold = V.positive_scalar("threshold", threshold)
    if threshold > 1.0:  # Cattell's scree test: a fraction of the largest eigenvalue gap
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    x = x.to(V.float_dtype(x=x)).detach().contiguous()
    U, n, d = x.shape
    if n_components > n:
        raise ValueError(f"n_components ({n_components}) exceeds the number of points per unit ({n})")
    if weights is None:
        w = torch.ones(U, n, dtype=x.dtype, device=x.device)
    else:
        V.tensor("weights", weights)
        if tuple(weights.shape) != (U, n):
            raise ValueError(f"weights must have shape ({U}, {n}), got {tuple(weights.shape)}")
        w = weights.to(x).detach().contiguous()
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ValueError("weights must lie in [0, 1] (and not be NaN)")
        if not bool((w.sum(1) > 0).all()):
            raise ValueError("every unit needs a positive total weight")
    eng = ops.Engine(choice.backend, x)
    Kmax = max_components
    cfg = dict(model=model, max_iter=max_iter, tol=tol, threshold=threshold, dim_rule=dim_rule, reg_covar=reg_covar)
    stats = {k: torch.zeros(U, dtype=torch.int64) for k in ("splits", "splits_undone", "filtered", "deactivated", "floored")}
    active = torch.zeros(U, Kmax, dtype=torch.bool, device=x.device)
    active[:, :n_components] = True
    resp = torch.zeros(U, n, Kmax, dtype=x.dtype, device=x.device)
    if init_resp is None:
        seeds = [seed * 1000003 + u for u in range(U)]
        labels = kmeans_labels(x, w, n_components, seeds, init=init)
        resp[..., :n_components] = torch.nn.functional.one_hot(labels, n_components).to(x.dtype)
    else:
        V.tensor("init_resp", init_resp)
        if tuple(init_resp.shape) != (U, n, n_components):
            raise ValueError(f"init_resp must have shape ({U}, {n}, {n_components}), got {tuple(init_resp.shape)}")
        r0 = init_resp.to(x).detach()
        if not bool(((r0 >= 0) & (r0 <= 1)).all()):  # NaN fails both: a NaN fit followed without a word
            raise ValueError("init_resp must lie in [0, 1] (and not be NaN)")
        if not bool(((r0.sum(-1) - 1).abs() <= 1e-4).all()):
            raise ValueError("every row of init_resp must sum to 1 (responsibilities of each point over the "
                             "n_components components)")
        resp[..., :n_components] = r0
    units = torch.arange(U, device=x.device)
    p, resp, L = em_compact(eng, units, w, resp, active, cfg, stats)
    if split and max_split_passes > 0 and Kmax > n_components:
        start = (p, resp, {k: v.clone() for k, v in stats.items()})    # the model without splits
        gen = torch.Generator().manual_seed(seed)
        for _ in range(max_split_passes):
            p, resp, L, n_split = split_pass(eng, w, p, resp, L, cfg, split_rule, phi, psi, p_arbitrary, min_mass,
                                              Kmax, gen, stats)
            if n_split == 0:
                break
        p, L = _filter_refit(eng, units, w, p, resp, min_mass, cfg, stats)
        if split_rule == "bic":
            p = _keep_better(eng, w, p, L, start, min_mass, cfg, stats)
    return _result(eng, w, p, stats)


def _filter_refit(eng, units, w, p, resp, min_mass, cfg, stats):
    """Steps 4-5 for the problems ``units`` (w, p and resp are theirs; resp is the E-step at p): the
    components of soft mass sum_i w_i t_ik < min_mass are dropped (the largest stays if all would
    be), each point's remaining responsibilities renormalised, then the final EM on all points.
    Returns (params, L)."""
    dtype = resp.dtype
    mass = (resp * w[..., None]).sum(1)
    keep = p["active"] & (mass >= min_mass)
    none = ~keep.any(1)
    if bool(none.any()):
        keep[none] = torch.nn.functional.one_hot(torch.where(p["active"], mass, -1.0)[none].argmax(1),
                                                  keep.shape[1]).bool()
    stats["filtered"].index_add_(0, units.cpu(), (p["active"] & ~keep).sum(1).cpu())
    resp = resp * keep[:, None]
    resp = resp / resp.sum(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    p, _, L = em_compact(eng, units, w, resp, keep, cfg, stats)
    return p, L


def _keep_better(eng, w, p, L, start, min_mass, cfg, stats):
    """``split_rule="bic"``: a split is accepted when it raises the unit's BIC at that moment, but the
    filter can then drop a child and the final EM can end elsewhere, below the model without splits
    (docs/kernels/hddc.md, "split_rule"). So each unit that split is also taken through steps 4-5
    from the model before the split passes (``start``: params, resp, events), and keeps its splits
    only if the final BIC is strictly higher; otherwise it gets that model and its events, and
    ``events["splits_undone"]`` counts the splits it discarded. Returns the params."""
    d = eng.x.shape[2]
    p0, resp0, stats0 = start
    redo = (stats["splits"] > stats0["splits"]).nonzero()[:, 0].to(p["active"].device)
    if len(redo) == 0:
        return p
    base = {k: v.clone() for k, v in stats0.items()}
    pb, Lb = _filter_refit(eng, redo, w[redo], subset(p0, redo), resp0[redo], min_mass, cfg, base)
    n_eff = w[redo].sum(1).to(Lb.dtype)
    undo = bic(Lb, pb, n_eff, d) >= bic(L[redo].to(Lb.dtype), subset(p, redo), n_eff, d)
    back, rows = redo[undo], undo.nonzero()[:, 0]
    if len(back) == 0:
        return p
    p = subset(p, slice(None))
    for key, v in pb.items():
        if isinstance(v, torch.Tensor):
            p[key][back] = v[rows].to(p[key].dtype)
    cpu = back.cpu()
    stats["splits_undone"][cpu] = stats["splits"][cpu]
    for key in ("splits", "filtered", "deactivated"):
        stats[key][cpu] = base[key][cpu]
    return p


def _result(eng, w, p, stats):
    x = eng.x
    units = torch.arange(x.shape[0], device=x.device)
    _, L, _ = eng.estep(units, w, compact(p))
    d = x.shape[2]
    act = p["active"]
    p = {k: (v.to(x.dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in p.items()}
    L = L.to(x.dtype)
    if p["model"] == "full":
        stats["floored"] += (act & (torch.linalg.eigvalsh(p["cov"])[..., 0] <= 2e-6)).sum(1).cpu()
    else:
        stats["floored"] += (act & (p["b"] <= ref.A_FLOOR * 1.0001)).sum(1).cpu()
    res = HDDCResult(weights=p["pi"] * act, means=p["mu"], n_components=act.sum(1), log_likelihood=L,
                     bic=bic(L, p, w.sum(1), d), active=act, model=p["model"], events=stats)
    if p["model"] == "full":
        res.covariances = p["cov"]
    else:
        res.subspaces, res.a, res.b, res.dims = p["Q"], p["a"], p["b"], p["dk"]
    # the fit works in max_components slots with holes where components were filtered; the result
    # is padded to the largest K only (issue 5's contract): active slots first, order kept
    order = torch.argsort((~act).to(torch.int8), dim=1, stable=True)
    return _take_slots(res, order[:, :max(1, int(res.n_components.max()))])


_SLOT_FIELDS = ("weights", "means", "active", "subspaces", "a", "b", "dims", "covariances")


def _take_slots(res: HDDCResult, idx: torch.Tensor) -> HDDCResult:
    """``res`` with its component slots gathered by ``idx`` (U, K') along dim 1."""
    out = dataclasses.replace(res)
    for name in _SLOT_FIELDS:
        t = getattr(res, name)
        if t is not None:
            i = idx.view(*idx.shape, *([1] * (t.dim() - 2))).expand(*idx.shape, *t.shape[2:])
            setattr(out, name, torch.gather(t, 1, i))
    return out
