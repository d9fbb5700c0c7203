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
from . import _dispatch
from ._dispatch import register, select
from ._native_call import NON_FINITE, raise_flags, run
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


class _HDDCChoice(_dispatch.Choice):
    """A dispatch choice that also says how the driver runs on that backend."""

    def __init__(self, choice, notes):
        super().__init__(choice.op, choice.backend, choice.skipped)
        self.notes = notes

    def __str__(self) -> str:
        return "\n".join([super().__str__()] + [f"  note: {n}" for n in self.notes])


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
    choice = select("hddc.fit", x.device)
    notes = []
    if choice.backend == "reference":
        notes.append("batched PyTorch twin for the E/M passes (reference/hddc.py)")
    else:
        notes.append(f"native {choice.backend} kernels: hddc_estep (cost form, first d_k columns of Q_k; "
                     "when 2 d_k > d + 7 a triangular root of the precision), "
                     "hddc_mstep (two passes, float64 block combine), cluster_density")
        if x.dtype not in (torch.float32, torch.float64):
            notes.append(f"{x.dtype} input cast to float32")
    if x.device.type == "cuda":
        notes.append(f"eigen step: torch.linalg.eigh on the active (unit, component) {d}x{d} matrices, float64; "
                     + ("batched syevj path (d <= 32)" if d <= 32 else "d > 32: not the batched syevj path"))
    else:
        notes.append(f"eigen step: torch.linalg.eigh (LAPACK) on the active (unit, component) {d}x{d} matrices")
    notes.append("split candidates refitted as one batched K=2 problem over the same x (weights = membership); "
                 "converged problems frozen; only active components computed")
    return _HDDCChoice(choice, notes)


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
    choice = _prep(x, n_components, max_components, model)
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
        w = weights.to(x).detach().contiguous()
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ValueError("weights must lie in [0, 1] (and not be NaN)")
        if not bool((w.sum(1) > 0).all()):
            raise ValueError("every unit needs a positive total weight")
    eng = _Engine(choice.backend, x)
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
    units = torch.arange(U, device=x.device)
    p, resp, L = _em_compact(eng, units, w, resp, active, cfg, stats)
    if split and max_split_passes > 0 and Kmax > n_components:
        gen = torch.Generator().manual_seed(seed)
        for _ in range(max_split_passes):
            p, resp, L, n_split = _split_pass(eng, w, p, resp, L, cfg, split_rule, phi, psi, p_arbitrary, min_mass,
                                              Kmax, gen, stats)
            if n_split == 0:
                break
        # filter (resp is the E-step at the current parameters), then the final EM on all points
        mass = (resp * w[..., None]).sum(1)
        keep = p["active"] & (mass >= min_mass)
        none = ~keep.any(1)
        if bool(none.any()):
            keep[none] = torch.nn.functional.one_hot(torch.where(p["active"], mass, -1.0)[none].argmax(1),
                                                      Kmax).bool()
        stats["filtered"] += (p["active"] & ~keep).sum(1).cpu()
        resp = resp * keep[:, None]
        resp = resp / resp.sum(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        p, resp, L = _em_compact(eng, units, w, resp, keep, cfg, stats)
    return _result(eng, w, p, stats)


# --------------------------------------------------------------------------- kernels
class _Engine:
    """The three HDDC primitives over a batch of B problems on one x buffer (problem b reads unit
    unit_of[b]): on the native backend the hddc_estep / hddc_mstep / cluster_density kernels,
    on the reference backend the twin (which gathers x[unit_of])."""

    def __init__(self, backend, x):
        self.backend, self.x = backend, x
        self.native = backend != "reference"
        # parameters are kept in float64 on the native path (its M-step sums are float64)
        self.pdtype = torch.float64 if self.native else x.dtype

    def _xs(self, unit_of):
        return self.x[unit_of]

    def estep(self, unit_of, w, p, skip_zero=False, point_ll=False):
        """(resp (B, n, K), L (B,), counts (B, K) of t_ik > 1/K_active with w_i > 0), plus the
        per-point log-likelihood (B, n) float64 when ``point_ll`` (native path only)."""
        act = p["active"]
        thr = 1.0 / act.sum(1).clamp_min(1).to(self.x.dtype)
        if not self.native:
            resp, L = ref.e_step(self._xs(unit_of), w, p)
            cnt = ((resp > thr[:, None, None]) & (w[..., None] > 0)).sum(1)
            return resp, L.to(self.pdtype), cnt
        x = self.x
        T, (B, K), d, n = x.dtype, act.shape, x.shape[2], x.shape[1]
        f64 = dict(dtype=torch.float64, device=x.device)
        logpi = torch.where(act, p["pi"].clamp_min(1e-300).log(), torch.zeros_like(p["pi"]))
        if p["model"] == "full":
            Lc = _lapack(torch.linalg.cholesky, p["cov"].double())
            eye = torch.eye(d, **f64).expand_as(Lc)
            qt = _lapack(torch.linalg.solve_triangular, Lc, eye, upper=False)  # rows of L^-1
            ia = torch.ones(B, K, d, **f64)
            ib = torch.zeros(B, K, **f64)
            dk = torch.full((B, K), d, dtype=torch.int32, device=x.device)
            tri = torch.ones(B, K, dtype=torch.int32, device=x.device)
            cst = 2 * Lc.diagonal(dim1=-2, dim2=-1).log().sum(-1) + d * ref.LOG_2PI - 2 * logpi
        else:
            dkl = torch.where(act, p["dk"], torch.zeros_like(p["dk"]))
            b = p["b"].clamp_min(ref.B_FLOOR_E)
            sig_d = torch.arange(d, device=x.device) < dkl[..., None]
            a_d = p["a"].clamp_min(ref.A_FLOOR)
            cst = torch.where(sig_d, a_d.log(), torch.zeros_like(a_d)).sum(-1) + (d - dkl) * b.log() \
                + d * ref.LOG_2PI - 2 * logpi
            # d d_k FMAs per point in the subspace form, d (d + 1) / 2 + 3 d in the triangular one
            low = act & (2 * dkl > d + 7)
            D = d if bool(low.any()) else max(1, int(dkl.max()))
            qt = p["Q"][..., :D].transpose(-1, -2).clone()
            sig = torch.arange(D, device=x.device) < dkl[..., None]
            a = a_d[..., :D]
            ia = torch.where(sig, 1.0 / a, torch.zeros_like(a))
            ib = 1.0 / b
            dk = dkl.to(torch.int32)
            tri = low.to(torch.int32)
            if bool(low.any()):
                qt[low] = _lower_root(p["Q"][low], torch.where(sig_d, a_d, b[..., None])[low])
                ia[low], ib[low], dk[low] = 1.0, 0.0, d
        c = lambda t: t.to(T).contiguous()
        resp = torch.empty(B, n, K, dtype=T, device=x.device)
        llp = torch.empty(B, n, **f64)
        L = torch.empty(B, **f64)
        cnt = torch.empty(B, K, dtype=torch.int64, device=x.device)
        flags = run(self.backend, "hddc_estep", x.device, x=x, unit_of=unit_of.contiguous(), w=c(w), mu=c(p["mu"]),
                    qt=c(qt), ia=c(ia), dk=dk.contiguous(), tri=tri.contiguous(), ib=c(ib), cst=c(cst),
                    act=act.to(torch.int32).contiguous(), thr=c(thr), skip_zero=bool(skip_zero), resp=resp, llp=llp,
                    L=L, cnt=cnt)
        raise_flags("hddc.fit", flags, {NON_FINITE: "x contains NaN or infinite values"})
        return (resp, L, cnt, llp) if point_ll else (resp, L, cnt)

    def point_lse(self, unit_of, p):
        """log sum_k pi_k N_k(x_i) (B, n) float64 over p's active components, for every point
        (the E-step's per-point log-likelihood at unit weights)."""
        if not self.native:
            return ref.log_prob(self._xs(unit_of), p).logsumexp(-1).to(torch.float64)
        ones = torch.ones(len(unit_of), self.x.shape[1], dtype=self.x.dtype, device=self.x.device)
        return self.estep(unit_of, ones, p, point_ll=True)[3]

    def _stats(self, unit_of, w, resp, act, mode, phi):
        x = self.x
        B, n, K = resp.shape
        d = x.shape[2]
        nblk = -(-n // 4096)
        width = K * (max(d * d, d + 1) if mode == 0 else d + 1)
        f64 = dict(dtype=torch.float64, device=x.device)
        part = torch.empty(B * nblk * width, dtype=x.dtype, device=x.device)
        mass, mean = torch.empty(B, K, **f64), torch.empty(B, K, d, **f64)
        second = torch.empty(B, K, d, d, **f64) if mode == 0 else torch.empty(B, K, **f64)
        run(self.backend, "hddc_stats", x.device, x=x, unit_of=unit_of.contiguous(), w=w.contiguous(),
            resp=resp.contiguous(), act=act.to(torch.int32).contiguous(), mode=mode, phi=float(phi), part=part,
            mass=mass, mean=mean, second=second)
        return mass, mean, second

    def mstep(self, unit_of, w, resp, act):
        """(n_k, mu, W) of the M-step (twin: ref.mstep_stats)."""
        if not self.native:
            return ref.mstep_stats(self._xs(unit_of), w, resp * act[:, None])
        return self._stats(unit_of, w, resp, act, 0, 0.0)

    def density(self, unit_of, w, resp, act, phi):
        """(count, centroid, density) of DyGA Eq. 5 (twin: ref.cluster_density)."""
        if not self.native:
            return ref.cluster_density(self._xs(unit_of), w, resp, act, phi)
        return self._stats(unit_of, w, resp, act, 1, phi)


# --------------------------------------------------------------------------- EM driver
def _lapack(fn, *args, **kw):
    """A batched small-matrix LAPACK call (eigh, cholesky, triangular solve); on the CPU with one
    thread: MKL's threaded batched eigh took 0.03-4 s for 64 matrices of 32 x 32 on a loaded
    2-core host, one thread 3-12 ms."""
    if args[0].device.type != "cpu" or torch.get_num_threads() == 1:
        return fn(*args, **kw)
    nt = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(*args, **kw)
    finally:
        torch.set_num_threads(nt)


def _lower_root(Q, v):
    """Lower-triangular M with M^T M = Q diag(1/v) Q^T (the precision of Sigma = Q diag(v) Q^T),
    so that (x - mu)^T Sigma^-1 (x - mu) = |M (x - mu)|^2: with J the reversal, the QR of
    diag(v^-1/2) Q^T J gives R upper with R^T R = J Sigma^-1 J, and M = J R J. QR, not Cholesky of
    Sigma: it cannot fail when v spans the 1e-8 floor to large variances."""
    m0 = Q.transpose(-1, -2) / v.sqrt()[..., None]
    r = _lapack(torch.linalg.qr, m0.flip(-1), mode="r")[1]
    return r.flip(-1, -2)


def _eigh(W):
    return _lapack(torch.linalg.eigh, W)


def _params(nk, mu, W, wtot, active, cfg):
    """HDDC (or full-covariance) parameters from the M-step sums; the eigen step runs only on
    the active (problem, component) matrices."""
    B, K, d = mu.shape
    dt, dev = W.dtype, W.device
    pi = torch.where(active, nk / wtot[:, None], torch.zeros_like(nk))
    p = dict(pi=pi, mu=mu, nk=nk, active=active.clone(), model=cfg["model"])
    eye = torch.eye(d, dtype=dt, device=dev)
    if cfg["model"] == "full":
        p["cov"] = torch.where(active[..., None, None], W + cfg["reg_covar"] * eye, eye)
        return p
    lam = torch.zeros(B, K, d, dtype=dt, device=dev)
    Q = eye.expand(B, K, d, d).clone()
    if bool(active.any()):
        la, Qa = _eigh(W[active])                                           # ascending
        lam[active] = la.flip(-1).clamp_min(0)
        Q[active] = ref._sign_fix(Qa.flip(-1))
    dk = ref.cattell_dims(lam, cfg["threshold"]) if cfg["dim_rule"] == "cattell" else ref.bic_dims(lam, nk, pi)
    sig = torch.arange(d, device=dev) < dk[..., None]
    a = torch.where(sig, lam.clamp_min(ref.A_FLOOR), torch.zeros_like(lam))
    tr = W.diagonal(dim1=-2, dim2=-1).sum(-1)
    b = ((tr - (lam * sig).sum(-1)) / (d - dk).clamp_min(1)).clamp_min(ref.A_FLOOR)
    p.update(lam=lam, Q=Q, dk=dk, a=a, b=b)
    return p


def _deactivate(active, cnt, resp, w):
    """ref.deactivate_small from the E-step's counts of t_ik > 1/K (no pass over resp)."""
    keep = active & (cnt >= ref.MIN_COUNT)
    none = ~keep.any(1)
    if bool(none.any()):
        big = torch.where(active[none], (resp[none] * w[none][..., None]).sum(1), torch.full_like(
            active[none], -1, dtype=resp.dtype))
        keep[none] = torch.nn.functional.one_hot(big.argmax(1), active.shape[1]).bool()
    return keep, (active & ~keep).sum(1)


def _em(eng, unit_of, w, resp, active, cfg, stats=None, skip_zero=False):
    """M -> E iterations (``hddc_main``) over B problems until |dL| < tol or
    |dL|/(0.1 + |L|) < tol or max_iter; a converged problem is frozen and no longer computed.
    Returns (params, resp, L)."""
    B = unit_of.shape[0]
    dev = resp.device
    K = active.sum(1, keepdim=True).clamp_min(1).to(resp.dtype)
    cnt = ((resp > 1.0 / K[:, None]) & (w[..., None] > 0)).sum(1)
    wtot = w.sum(1).to(eng.pdtype)
    running = torch.ones(B, dtype=torch.bool, device=dev)
    L_prev = torch.full((B,), -math.inf, dtype=eng.pdtype, device=dev)
    active = active.clone()
    p = None
    for _ in range(max(1, cfg["max_iter"])):
        idx = None if bool(running.all()) else running.nonzero()[:, 0]
        sub = (lambda t: t) if idx is None else (lambda t: t[idx])
        w_s, resp_s = sub(w), sub(resp)
        keep, dead = _deactivate(sub(active), sub(cnt), resp_s, w_s)
        if bool(dead.any()):
            if stats is not None:
                stats["deactivated"].index_add_(0, sub(unit_of).cpu(), dead.cpu())
            resp_s = resp_s * keep[:, None]
            resp_s = resp_s / resp_s.sum(-1, keepdim=True).clamp_min(torch.finfo(resp.dtype).tiny)
        nk, mu, W = eng.mstep(sub(unit_of), w_s, resp_s, keep)
        new_p = _params(nk, mu, W, sub(wtot), keep, cfg)
        new_resp, L, new_cnt = eng.estep(sub(unit_of), w_s, new_p, skip_zero)
        dL = (L - sub(L_prev)).abs()
        done = (dL < cfg["tol"]) | (dL / (0.1 + L.abs()) < cfg["tol"])
        if idx is None:
            p, resp, cnt, active, L_prev = new_p, new_resp, new_cnt, keep, L
            running = ~done
        else:
            for key, v in new_p.items():
                if isinstance(v, torch.Tensor):
                    p[key][idx] = v
            resp[idx], cnt[idx], active[idx], L_prev[idx] = new_resp, new_cnt, keep, L
            running[idx] = ~done
        if not bool(running.any()):
            break
    return p, resp, L_prev


def _result(eng, w, p, stats):
    x = eng.x
    units = torch.arange(x.shape[0], device=x.device)
    _, L, _ = eng.estep(units, w, _compact(p))
    d = x.shape[2]
    act = p["active"]
    p = {k: (v.to(x.dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in p.items()}
    L = L.to(x.dtype)
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
def _slots(active):
    """(perm (B, K'), K'): each problem's active slots first, in slot order; K' = max #active."""
    B, K = active.shape
    Kc = max(1, int(active.sum(1).max()))
    return torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :Kc], Kc


def _take(v, perm):
    B, Kc = perm.shape
    return torch.gather(v, 1, perm.view(B, Kc, *([1] * (v.dim() - 2))).expand(B, Kc, *v.shape[2:]))


def _put(full, perm, v):
    B, Kc = perm.shape
    return full.scatter(1, perm.view(B, Kc, *([1] * (v.dim() - 2))).expand(B, Kc, *v.shape[2:]), v)


def _em_compact(eng, units, w, resp, active, cfg, stats):
    """_em on the active slots only (resp (U, n, K') instead of (U, n, K_max); components are
    independent slots, so the result is that of _em on the full layout), scattered back with the
    parameters an inactive slot gets from a zero M-step."""
    U, n, K = resp.shape
    perm, Kc = _slots(active)
    if Kc == K:
        return _em(eng, units, w, resp, active, cfg, stats)
    rc = torch.gather(resp, 2, perm[:, None].expand(U, n, Kc)).contiguous()
    pc, rc, L = _em(eng, units, w, rc, _take(active, perm), cfg, stats)
    d = eng.x.shape[2]
    z = torch.zeros(U, K, dtype=pc["mu"].dtype, device=resp.device)
    p = _params(z, torch.zeros(U, K, d, dtype=z.dtype, device=z.device),
                torch.zeros(U, K, d, d, dtype=z.dtype, device=z.device), torch.ones(U, dtype=z.dtype, device=z.device),
                torch.zeros(U, K, dtype=torch.bool, device=z.device), cfg)
    for key, v in pc.items():
        if isinstance(v, torch.Tensor) and key in p:
            p[key] = _put(p[key].to(v.dtype), perm, v)
    resp = torch.zeros_like(resp).scatter_(2, perm[:, None].expand(U, n, Kc), rc)
    return p, resp, L


def _compact(p):
    """p with each problem's active components moved, in slot order, to the first
    K' = max #active slots (the E-step skips inactive slots and sums the active ones in slot order,
    so L, and resp on the active slots, are unchanged; resp and the loops shrink to K')."""
    act = p["active"]
    B, K = act.shape
    Kc = max(1, int(act.sum(1).max()))
    if Kc == K:
        return p
    perm = torch.argsort((~act).to(torch.int8), dim=1, stable=True)[:, :Kc]
    out = {}
    for key, v in p.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 2 and tuple(v.shape[:2]) == (B, K):
            idx = perm.view(B, Kc, *([1] * (v.dim() - 2))).expand(B, Kc, *v.shape[2:])
            out[key] = torch.gather(v, 1, idx)
        else:
            out[key] = v
    return out


def _pick(p, rows, comps):
    """The components comps (B, m) of problems rows of p, as an m-component mixture (all active)."""
    out = {}
    for key, v in p.items():
        if isinstance(v, torch.Tensor) and key != "active" and v.dim() >= 2:
            out[key] = _take(v[rows], comps)
        else:
            out[key] = v
    out["active"] = torch.ones(comps.shape, dtype=torch.bool, device=comps.device)
    return out


def _rows(p, idx):
    return {k: (v[idx].clone() if isinstance(v, torch.Tensor) else v) for k, v in p.items()}


def _children(eng, w, p, resp, cands, phi, cfg):
    """Refit every candidate (unit u, component k)'s members as a K = 2 mixture, all candidates
    as one batch over the same x (weights w * member). Children start from the sign of the
    projection on the parent's leading eigenvector. Returns (kept candidates, child params)."""
    x = eng.x
    n = x.shape[1]
    us = torch.tensor([u for u, _ in cands], dtype=torch.int64, device=x.device)
    ks = torch.tensor([k for _, k in cands], dtype=torch.int64, device=x.device)
    member = (resp[us, :, ks] > phi) & (w[us] > 0)                      # (C, n)
    if p["model"] == "full":
        q1 = _eigh(p["cov"][us, ks])[1][..., -1]
    else:
        q1 = p["Q"][us, ks, :, 0]                                       # (C, d)
    mu = p["mu"][us, ks]
    side = torch.empty(len(cands), n, dtype=torch.bool, device=x.device)
    for u in us.unique().tolist():
        sel = (us == u).nonzero()[:, 0]
        side[sel] = ((x[u].to(q1.dtype) @ q1[sel].T) - (mu[sel] * q1[sel]).sum(-1) > 0).T
    ok = ((side & member).sum(1) >= 2) & ((~side & member).sum(1) >= 2)
    if not bool(ok.any()):
        return [], None
    keep = ok.nonzero()[:, 0]
    p2 = _refit_members(eng, us[keep], w[us[keep]], member[keep], side[keep], cfg)
    good = p2["active"].all(1)
    kept = [cands[i] for i, g in zip(keep.tolist(), good.tolist()) if g]
    rows = good.nonzero()[:, 0]
    return kept, _rows(p2, rows)


_GATHER_BYTES = 1 << 28   # member points gathered per chunk of split refits (x, w and resp copies)


def _refit_members(eng, us, w, member, side, cfg):
    """K = 2 EM of each candidate c over its members (the points i of unit us[c] with member[c, i]),
    children initialised by side. The members are gathered (in point order) into a compact buffer
    (C, m, d), padded with zero-weight points, so a refit costs O(members), not O(n); candidates
    run in chunks of similar member counts (each problem is independent of its batch)."""
    x = eng.x
    C, d = member.shape[0], x.shape[2]
    if not eng.native:  # the twin refits over the whole buffer (weights w * member)
        sd = side.to(x.dtype)
        act = torch.ones(C, 2, dtype=torch.bool, device=x.device)
        return _em(eng, us, (w * member).contiguous(), torch.stack([sd, 1 - sd], -1), act, cfg, skip_zero=True)[0]
    cnt = member.sum(1)
    order = torch.argsort(cnt, descending=True, stable=True)
    per_pt = (d + 3) * x.element_size() + 8
    out = None
    start = 0
    while start < C:
        m = max(1, int(cnt[order[start]]))
        stop = min(C, start + max(1, _GATHER_BYTES // (m * per_pt)))
        sel = order[start:stop]
        mem = member[sel]
        rows, cols = mem.nonzero(as_tuple=True)                          # row-major: members in point order
        first = torch.cumsum(cnt[sel], 0) - cnt[sel]
        pos = torch.arange(rows.numel(), device=x.device) - first[rows]
        idx = torch.zeros(len(sel), m, dtype=torch.int64, device=x.device)
        idx[rows, pos] = cols
        valid = torch.zeros(len(sel), m, dtype=torch.bool, device=x.device)
        valid[rows, pos] = True
        uc = us[sel]
        xc = x[uc[:, None], idx].contiguous()                               # (c, m, d)
        wc = torch.where(valid, torch.gather(w[sel], 1, idx), torch.zeros((), dtype=w.dtype, device=x.device))
        sd = (torch.gather(side[sel], 1, idx) & valid).to(x.dtype)
        r0 = torch.stack([sd, valid.to(x.dtype) - sd], -1)
        act = torch.ones(len(sel), 2, dtype=torch.bool, device=x.device)
        sub = _Engine(eng.backend, xc)
        p2, _, _ = _em(sub, torch.arange(len(sel), device=x.device), wc.contiguous(), r0, act, cfg, skip_zero=True)
        if out is None:
            out = {k: (v.new_empty((C,) + v.shape[1:]) if isinstance(v, torch.Tensor) else v) for k, v in p2.items()}
        for k, v in p2.items():
            if isinstance(v, torch.Tensor):
                out[k][sel] = v
        start = stop
    return out


def _split_pass(eng, w, p, resp, L, cfg, rule, phi, psi, p_arb, min_mass, Kmax, gen, stats):
    """One pass of DyGA's split rule over every unit; returns the updated state and #splits.

    Candidates (density > psi, or the coin) come from the densities at the start of the pass; all
    their K = 2 refits run as one batch. Then, unit by unit in descending density (rounds batched
    across units), a candidate takes the first free slot and is kept if the unit's BIC rises
    (``rule="bic"``) or always (``"dyga"``)."""
    x = eng.x
    U, n, d = x.shape
    units = torch.arange(U, device=x.device)
    cnt, _, dens = eng.density(units, w, resp, p["active"], phi)
    cnt, dens, act = cnt.cpu(), dens.cpu(), p["active"].cpu()
    cands = []
    for u in range(U):
        coin = torch.rand(Kmax, generator=gen) < p_arb
        order = torch.argsort(torch.nan_to_num(dens[u], nan=-math.inf), descending=True, stable=True)
        cands += [(u, k) for k in order.tolist() if bool(act[u, k]) and float(cnt[u, k]) >= 2 * max(min_mass, 1)
                  and (float(dens[u, k]) > psi or bool(coin[k]))]
    if not cands:
        return p, resp, L, 0
    kept, p2 = _children(eng, w, p, resp, cands, phi, cfg)
    queue = [[] for _ in range(U)]
    for c, (u, k) in enumerate(kept):
        queue[u].append((c, k))
    p = _rows(p, slice(None))
    if rule == "bic":  # per-point log-likelihood of the current mixtures, and its weighted sum
        lse = eng.point_lse(units, _compact(p))
        L_lse = torch.where(w > 0, w * lse, torch.zeros_like(lse)).sum(1)
    n_split = 0
    while True:
        batch = []                                                       # (unit, child row, parent k, free f)
        for u in range(U):
            if queue[u]:
                free = (~p["active"][u]).nonzero()
                if len(free) == 0:
                    queue[u] = []
                    continue
                c, k = queue[u].pop(0)
                batch.append((u, c, k, int(free[0])))
        if not batch:
            break
        bu = torch.tensor([b[0] for b in batch], device=x.device)
        bc = torch.tensor([b[1] for b in batch], device=x.device)
        bk = torch.tensor([b[2] for b in batch], device=x.device)
        bf = torch.tensor([b[3] for b in batch], device=x.device)
        j = torch.arange(len(batch), device=x.device)
        trial = _rows(p, bu)
        pik = trial["pi"][j, bk]
        for key, v in p2.items():
            if isinstance(v, torch.Tensor) and key in trial and key not in ("pi", "active", "nk"):
                trial[key][j, bk] = v[bc, 0].to(trial[key].dtype)
                trial[key][j, bf] = v[bc, 1].to(trial[key].dtype)
        trial["pi"][j, bk] = pik * p2["pi"][bc, 0].to(pik.dtype)
        trial["pi"][j, bf] = pik * p2["pi"][bc, 1].to(pik.dtype)
        trial["active"][j, bf] = True
        if "nk" in trial:
            trial["nk"][j, bf] = trial["nk"][j, bk] * p2["pi"][bc, 1].to(pik.dtype)
        if rule == "bic":
            # The trial differs from p in the parent's slot and the free one: its per-point
            # likelihood is lse - p_parent + p_children, so only those three components are
            # evaluated (not a K'-component E-step per trial).
            lpp = eng.point_lse(bu, _pick(p, bu, bk[:, None]))
            lpc = eng.point_lse(bu, _pick(trial, j, torch.stack([bk, bf], 1)))
            base = lse[bu]
            m = torch.maximum(base, lpc)
            rest = ((base - m).exp() - (lpp - m).exp()).clamp_min(0)
            lnew = (rest + (lpc - m).exp()).log() + m
            L_new = torch.where(w[bu] > 0, w[bu] * lnew, torch.zeros_like(lnew)).sum(1)
            n_eff = w[bu].sum(1)
            accept = ref.bic(L_new, trial, n_eff, d) > ref.bic(L_lse[bu], _rows(p, bu), n_eff, d)
        else:
            accept = torch.ones(len(batch), dtype=torch.bool, device=x.device)
        a = accept.nonzero()[:, 0]
        if len(a):
            for key, v in trial.items():
                if isinstance(v, torch.Tensor):
                    p[key][bu[a]] = v[a]
            if rule == "bic":
                lse[bu[a]], L_lse[bu[a]] = lnew[a], L_new[a]
            stats["splits"] += torch.bincount(bu[a].cpu(), minlength=U)
            n_split += len(a)
    if n_split:
        resp, L, _ = eng.estep(units, w, p)
    return p, resp, L, n_split


register("hddc.fit")(lambda *a, **k: _prep(*a, **k))
