"""Dynamic Gaussian Anchoring (DyGA; Jun et al., "Disentangling Disentangled Representations: Towards
Improved Latent Units via Diffusion Models", §3.2, Alg. 2-3, Eq. 3-6), as a self-contained module on
any (B, N, D) latent-unit features (docs/methods/dyga.md).

- :func:`align`: the feature alignment of Eq. 6 / Alg. 3 on a fitted mixture (differentiable in the
  features); Gumbel-softmax, straight-through argmax or hard argmax assignment.
- :class:`DyGAConfig` / :class:`DyGA`: anchor selection per unit (Alg. 2) with the batched HDDC of
  :func:`diffrep.cluster.fit` (fit, responsibilities, membership at phi, split by density above psi
  plus the optional random splits, filter small clusters, final EM), the normalisation stored with
  the fit, anchors as buffers (saved with the model, never EMA-averaged: the EMA averages parameters
  only), and ``compat="dis-dis"``, the authors' code (docs/methods/dyga.md#compat).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Annotated, Literal

import torch
from torch import nn

from ..cluster import HDDCResult
from ..cluster import fit as hddc_fit
from ..cluster.dyga_code import capacity, fit_code
from ..config import Config, ConfigError, Ge, Gt, Le
from ..nn.derived import DerivedValue
from ..ops import _validate as V
from ..ops._full_precision import autocast_off, full_precision
from ..ops.random import check_generator

__all__ = ["align", "DyGAConfig", "DyGA", "ASSIGNMENTS", "cluster_density"]

ASSIGNMENTS = ("gumbel", "argmax", "hard")
_EPS = 1e-6        # the guard of Eq. 6's denominator and of the min-max normalisation ([C] uses the same)


def draw_device(generator: torch.Generator | None) -> torch.device:
    """Where EncDiff and DyGA draw their random numbers before moving them to the data: on the CPU without a
    generator (the global CPU stream) or with a CPU one, so a seeded CPU generator gives the same numbers on
    every device; on a GPU generator's own GPU (torch refuses a CUDA generator for a CPU draw: the trainer's
    sample grids and the FID image source seed one on the model's device)."""
    return torch.device("cpu") if generator is None else generator.device


def _assign(logits, tau, assignment, generator):
    """y (..., K) from logits: Gumbel-softmax sample, straight-through argmax or hard one-hot argmax."""
    if assignment == "gumbel":
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype,
                       device=draw_device(generator)).to(logits.device)
        g = -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))
        return torch.softmax((logits + g) / tau, -1)
    hard = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    if assignment == "hard":
        return hard
    soft = torch.softmax(logits / tau, -1)
    return hard + soft - soft.detach()             # forward: argmax; backward: d softmax(l / tau)


# mixture maths in float32 under the trainer's bf16 autocast: the HDDC cost (Eq. 3) in bf16 changed about one MAP
# anchor in six on ReLU-squashed 32-d token clusters
@autocast_off
def align(mixture, features, lam=0.1, tau=1e-4, *, generator=None, gumbel=True, gumbel_input="log",
          detach_assignment=False, assignment=None, normalise=None, anchors=None, stats=None):
    """DyGA feature alignment (Eq. 6, Alg. 3), differentiable w.r.t. ``features``.

    ``mixture``: the per-unit anchors, a :class:`diffrep.cluster.HDDCResult`; ``features`` (B, U, d).
    Responsibilities t (Eq. 4) are computed on ``(c - lo) / span`` when ``normalise=(lo, span)``
    ((U,) each, the normalisation stored with the fit), else on c itself. Logits l = log t
    (``gumbel_input="log"``, the standard Gumbel-softmax input) or Alg. 3's literal t
    (``"responsibility"``). Assignment y: ``"gumbel"`` y = softmax((l + g)/tau), g ~ Gumbel(0, 1);
    ``"argmax"`` the straight-through argmax (forward one-hot of argmax t, gradient of
    softmax(l/tau)); ``"hard"`` the one-hot argmax without gradient (evaluation). Default:
    "gumbel" if ``gumbel`` else "hard". Anchor mu_hat = sum_k y_k mu_k with mu = ``anchors``
    (U, K, d) (default the mixture's means), delta = lam exp(-mean_j |(c_j - mu_hat_j)/(|c_j| + 1e-6)|)
    per (sample, unit), c_tilde = c + delta (mu_hat - c). ``detach_assignment`` stops the gradient
    through y. ``stats``: a dict that receives delta's mean and the fraction of delta < 1e-3 lam
    (the health metric of docs/methods/dyga.md) as detached 0-d tensors, read by the trainer at its
    logging interval (a float() here was a host-device sync per training step on CUDA). Returns c_tilde
    (B, U, d).
    """
    if not callable(getattr(mixture, "log_prob", None)):  # None read "'NoneType' object has no attribute 'log_prob'"
        raise TypeError(f"align: mixture must be the fitted per-unit anchors, a diffrep.cluster.HDDCResult "
                        f"(DyGA.mixture after DyGA.fit), got {type(mixture).__name__}")
    V.tensor("features", features)
    if features.dim() != 3:
        raise ValueError(f"features must have shape (B, U, d), got {tuple(features.shape)}")
    # half-precision features in float32, as the ops compute them: the responsibilities and the anchor pull in
    # bf16 rounded the normalised features and moved c_tilde
    features = features.to(V.float_dtype(features=features))
    lam = V.positive_scalar("lam", lam)
    tau = V.positive_scalar("tau", tau)
    if gumbel_input not in ("log", "responsibility"):
        raise ValueError(f"gumbel_input must be 'log' or 'responsibility', got {gumbel_input!r}")
    if assignment is None:
        assignment = "gumbel" if gumbel else "hard"
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
    mu = mixture.means if anchors is None else anchors
    if tuple(mu.shape) != tuple(mixture.means.shape):
        raise ValueError(f"anchors must have shape {tuple(mixture.means.shape)}, got {tuple(mu.shape)}")
    return _pull(mixture, mixture.log_prob, features, lam, tau, generator, gumbel_input, detach_assignment,
                 assignment, normalise, mu, stats)


@autocast_off  # align's reason: DyGA's forward calls this directly
def _pull(mixture, log_prob, features, lam, tau, generator, gumbel_input, detach_assignment, assignment, normalise,
          mu, stats):
    """Eq. 6 on checked arguments (:func:`align`'s body): ``log_prob`` is the mixture's checked
    ``log_prob`` (the public paths) or its unchecked twin (the training loss, on the library's own tokens)."""
    c = features.transpose(0, 1)                                   # (U, B, d)
    x = c
    if normalise is not None:
        lo, span = normalise
        x = (c - lo.to(c)[:, None, None]) / span.to(c)[:, None, None]
    lp = log_prob(x)
    logt = lp - torch.logsumexp(lp, -1, keepdim=True)
    logits = logt if gumbel_input == "log" else logt.exp()
    logits = torch.where(mixture.active[:, None], logits, torch.full_like(logits, -math.inf))
    y = _assign(logits, tau, assignment, generator)
    if detach_assignment:
        y = y.detach()
    mu_hat = y.to(c.dtype) @ mu.to(c.dtype)                         # (U, B, d)
    delta = lam * torch.exp(-((c - mu_hat) / (c.abs() + _EPS)).abs().mean(-1, keepdim=True))
    if stats is not None:
        stats["delta_mean"] = delta.detach().mean()
        stats["delta_small_frac"] = (delta.detach() < 1e-3 * lam).float().mean()
    return (c + delta * (mu_hat - c)).transpose(0, 1)


def cluster_density(x, resp, active, phi=0.5):
    """Eq. 5 per cluster: members C_k = {i: t_ik > phi}; density = mean_i in C_k ||x_i - mean(C_k)||.
    ``x`` (n, d), ``resp`` (n, K), ``active`` (K,). Returns (density (K,), NaN for empty or inactive,
    member counts (K,))."""
    m = (resp > phi) & active[None]
    cnt = m.sum(0)
    mf = m.to(x.dtype)
    xbar = (mf.T @ x) / cnt.clamp_min(1)[:, None].to(x.dtype)       # (K, d) plain member means
    dist = torch.cdist(x, xbar)                                       # (n, K)
    dens = (dist * mf).sum(0) / cnt.clamp_min(1).to(x.dtype)
    return torch.where(cnt > 0, dens, torch.full_like(dens, math.nan)), cnt


@dataclasses.dataclass
class DyGAConfig(Config):
    """Anchor selection (Alg. 2, §3.2.1) and alignment (Eq. 6, Alg. 3); defaults follow the paper with
    the values it leaves open taken from the authors' code (docs/methods/dyga.md#configuration).

    ``assignment`` (training): ``"gumbel"`` (Alg. 3, the default) or ``"argmax"`` (straight-through
    argmax of the responsibility: "the Gaussian with the highest responsibility", §3.2.2); in
    evaluation the assignment is always the hard argmax. ``compat="dis-dis"`` reproduces the
    authors' code where the spec lists differences (docs/methods/dyga.md#compat).
    """

    num_units: Annotated[int, Ge(1)] = 20  # N, the number of feature units (one Gaussian mixture each)
    token_dim: Annotated[int, Ge(1)] = 32  # d, the dimension of each unit's token (at most 64 for the HDDC kernels)
    compat: Literal["paper", "dis-dis"] = "paper"  # paper: the paper's procedure; dis-dis: the authors' code (docs/methods/dyga.md#compat)
    n_components: Annotated[int, Ge(1)] = 8                 # K0
    max_components: Annotated[int, Ge(1)] = 32              # K_max
    max_iter: Annotated[int, Ge(1)] = 30                    # EM iterations per phase
    tol: Annotated[float, Ge(0)] = 1e-3  # EM stops when the log-likelihood changes by less than tol (absolute or relative)
    phi: Annotated[float, Gt(0), Le(1)] = 0.5               # membership (Eq. 4)
    psi: Annotated[float, Ge(0)] = 0.5                      # density threshold (Eq. 5), an absolute distance
    p_arbitrary: Annotated[float, Ge(0), Le(1)] = 0.5       # the "arbitrary" splits' probability
    max_split_passes: Annotated[int, Ge(0)] = 3  # at most this many split passes of Alg. 2 (Eq. 4-5 split rule)
    min_mass: Annotated[float, Ge(0)] = 10.0                # filter: soft size below this is dropped
    threshold: Annotated[float, Gt(0), Le(1)] = 0.2         # Cattell scree threshold (HDDC d_k)
    fit_max_points: Annotated[int, Ge(2)] = 100_000         # per unit, subsampled without replacement
    lam: Annotated[float, Gt(0)] = 0.1                      # lambda of Eq. 6
    tau: Annotated[float, Gt(0)] = 1e-4                     # Gumbel-softmax temperature (Alg. 3)
    assignment: Literal["gumbel", "argmax"] = "gumbel"
    gumbel_input: Literal["log", "responsibility"] = "log"  # Gumbel-softmax logits: log responsibilities (standard) or Alg. 3's literal t
    detach_assignment: bool = False  # stop the gradient through the anchor assignment (Eq. 6)
    refresh_every: Annotated[int, Ge(1)] = 1                # r epochs (5 on Cars3D)
    align_at_eval: bool = True  # also align tokens to their anchors in evaluation (hard argmax)
    seed: Annotated[int, Ge(0)] = 0  # seed of the anchor fits (EM initialisation and subsampling)
    code_retries: Annotated[int, Ge(1)] = 20  # compat dis-dis: attempts on new 10% subsets when a unit's fit fails and n > fit_max_points
    sanity_check_points: Annotated[int, Ge(0)] = 1024  # compat dis-dis: points of the fit before training (Lightning's 2 sanity batches of 512); 0 = none

    def validate(self) -> None:
        if self.max_components < self.n_components:
            raise ConfigError("max_components", f"{self.max_components} < n_components={self.n_components}")
        if self.token_dim > 64:
            raise ConfigError("token_dim", f"the HDDC kernels take d <= 64, got {self.token_dim}")
        if self.compat == "dis-dis":
            if self.max_components > 33:
                raise ConfigError("max_components", f"compat='dis-dis' can reach 2 (max_components - 1) Gaussians "
                                                    f"in one split pass, at most 64 for the kernels: max_components "
                                                    f"<= 33, got {self.max_components}")
            if self.refresh_every != 1:
                raise ConfigError("refresh_every", f"compat='dis-dis' refits after every epoch (the authors' code has "
                                                   f"no r), got refresh_every={self.refresh_every}")

    @property
    def slots(self) -> int:
        """Gaussians a unit can hold: ``max_components``, or under compat the 2 (K_max - 1) that one
        split pass of the authors' code can reach."""
        return self.max_components if self.compat == "paper" else capacity(self.max_components)

    @property
    def model(self) -> str:
        return "full" if self.compat == "dis-dis" else "AkjBkQkDk"


class DyGA(nn.Module):
    """Per-unit Gaussian anchors and the Eq. 6 alignment, for (B, N, D) features.

    ``fit(features, epoch=...)`` runs anchor selection on (n, N, D) features (call it with the
    extractor in eval mode, over the training set: :meth:`EncDiff.refresh_anchors` does); ``forward(c)``
    aligns (identity before the first fit). State (buffers, in the state dict): the mixture in the
    normalised space, the anchors in raw space, the normalisation (lo, hi), ``n_anchors`` per unit.
    """

    def __init__(self, config: DyGAConfig | None = None):
        super().__init__()
        cfg = config if config is not None else DyGAConfig()
        if not isinstance(cfg, DyGAConfig):
            raise TypeError(f"DyGA: config must be a DyGAConfig, got {type(cfg).__name__}")
        self.config = cfg
        U, K, d = cfg.num_units, cfg.slots, cfg.token_dim
        eye = torch.eye(d).expand(U, K, d, d).clone()
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("num_fits", torch.zeros((), dtype=torch.int64))
        self.register_buffer("active", torch.zeros(U, K, dtype=torch.bool))
        self.register_buffer("weights", torch.zeros(U, K))
        self.register_buffer("means", torch.zeros(U, K, d))        # in the fit's normalised space
        self.register_buffer("anchors", torch.zeros(U, K, d))      # the means aligned to (raw space; compat: normalised)
        self.register_buffer("norm_lo", torch.zeros(U))
        self.register_buffer("norm_hi", torch.ones(U))
        self.register_buffer("n_anchors", torch.zeros(U, dtype=torch.int64))
        if cfg.model == "full":
            self.register_buffer("covariances", eye)
        else:
            self.register_buffer("subspaces", eye)
            self.register_buffer("a", torch.ones(U, K, d))
            self.register_buffer("b", torch.ones(U, K))
            self.register_buffer("dims", torch.ones(U, K, dtype=torch.int64))
        self.last_fit: dict = {}
        self.last_align: dict = {}
        self._host = DerivedValue()
        self._host_state()   # the CPU buffers as built: read here, not at the first training step

    # -- host copies of the buffers ----------------------------------------------------------------
    def _host_sources(self) -> tuple[torch.Tensor, ...]:
        return (self.fitted, self.n_anchors) + ((self.dims,) if self.config.model != "full" else ())

    def _read_host(self) -> tuple:
        """The host copies in one read: float64 holds the flag, max d_k and the float32 counts exactly."""
        n = self.n_anchors
        full = self.config.model == "full"
        parts = [self.fitted, self.fitted if full else self.dims.max(),
                 n.float().mean(), n.min().float(), n.max().float()]
        fitted, max_dim, *counts = torch.stack([p.to(torch.float64) for p in parts]).tolist()
        return bool(fitted), (None if full else int(max_dim)), tuple(counts)

    def _host_state(self) -> tuple:
        """(fitted flag, largest signal dimension d_k, anchor counts' (mean, min, max)): host copies of what the
        buffers fix until the next fit, read once after each change of ``fitted``, ``dims`` or ``n_anchors`` (a fit,
        a state-dict load, a write by hand, a move to another device: :class:`diffrep.nn.derived.DerivedValue`)
        instead of once per training step (a host-device sync each on CUDA)."""
        return self._host.get(self._host_sources(), self._read_host)

    def sync_host(self) -> None:
        """Read the host copies of the buffers again now. Needed only after a write that bypasses autograd's
        version counter (``dyga.fitted.data.fill_(...)``, a NumPy view, DistributedDataParallel's buffer broadcast
        of buffers that differ between ranks); every other write is seen (docs/methods/dyga.md#host-copies)."""
        self._host.invalidate()
        self._host_state()

    @property
    def is_fitted(self) -> bool:
        """Whether the buffers hold a fit (the ``fitted`` buffer, through its host copy)."""
        return self._host_state()[0]

    @property
    def _max_dim(self) -> int | None:
        """The largest signal dimension d_k over units and Gaussians (the E-step's projection width); None for
        compat's full covariances."""
        return self._host_state()[1]

    @property
    def anchor_counts(self) -> tuple[float, float, float]:
        """The anchors per unit's (mean, min, max), from ``n_anchors`` (EncDiff logs them at every step)."""
        return self._host_state()[2]

    def extra_repr(self) -> str:
        c = self.config
        return f"units={c.num_units}, dim={c.token_dim}, compat={c.compat!r}, fitted={self.is_fitted}"

    # -- the mixture -----------------------------------------------------------------------------
    @property
    def mixture(self) -> HDDCResult:
        """The fitted per-unit mixture (normalised space) as a :class:`diffrep.cluster.HDDCResult`."""
        U = self.config.num_units
        z = torch.zeros(U, device=self.means.device)
        r = HDDCResult(weights=self.weights, means=self.means, n_components=self.active.sum(1), log_likelihood=z,
                       bic=z, active=self.active, model=self.config.model)
        if self.config.model == "full":
            r.covariances = self.covariances
        else:
            r.subspaces, r.a, r.b, r.dims = self.subspaces, self.a, self.b, self.dims
        return r

    @property
    def span(self) -> torch.Tensor:
        return self.norm_hi - self.norm_lo + _EPS

    def normalise(self, c: torch.Tensor) -> torch.Tensor:
        """(B, N, D) features in the fit's normalised space: (c - lo)/(hi - lo + 1e-6) (paper mode),
        (c - hi)/(hi - lo + 1e-6) with the fit's statistics (the code's formula, compat)."""
        c = self._check(c, "c", finite=True)
        ref = self.norm_lo if self.config.compat == "paper" else self.norm_hi
        return (c - ref.to(c)[None, :, None]) / self.span.to(c)[None, :, None]

    def _check(self, c, name="features", leading=None, finite=False) -> torch.Tensor:
        """``c`` (B, N, D) of this model's units, returned in its compute dtype (float16/bfloat16 in float32, as
        the ops: normalise and assign on bf16 tokens rounded (c - lo) / span in bf16); ``finite``: also
        non-empty and free of NaN (one host sync, kept off the training path)."""
        V.tensor(name, c)
        cfg = self.config
        if c.dim() != 3 or c.shape[1] != cfg.num_units or c.shape[2] != cfg.token_dim:
            raise ValueError(f"{name} must have shape ({leading or 'B'}, {cfg.num_units}, {cfg.token_dim}), "
                             f"got {tuple(c.shape)}")
        if not c.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {c.dtype}")
        if finite:
            V.nonempty(name, c)
            V.finite(name, c)
        return c.to(V.float_dtype(c=c))

    # -- anchor selection (Alg. 2) -----------------------------------------------------------------
    @torch.no_grad()
    @autocast_off  # the mixture fit in float32 under the trainer's bf16 autocast (align's reason)
    def fit(self, features: torch.Tensor, *, epoch: int = 0) -> dict:
        """Anchor selection on ``features`` (n, N, D): the raw extractor outputs over the training set
        (paper mode) or the already-aligned tokens ([C], compat). Returns (and stores in
        ``last_fit``) the per-unit anchor counts and diagnostics."""
        self._check(features, "features", "n", finite=True)
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        cfg = self.config
        t0 = time.perf_counter()
        feats = features.detach().to(torch.float32)
        n, U, d = feats.shape
        if n < max(cfg.n_components, 2):
            raise ValueError(f"anchor selection needs at least {max(cfg.n_components, 2)} points, got {n}")
        lo = feats.amin(dim=(0, 2))
        hi = feats.amax(dim=(0, 2))
        span = hi - lo + _EPS
        x = feats.permute(1, 0, 2)                                      # (U, n, d)
        if cfg.compat == "paper":
            x = (x - lo[:, None, None]) / span[:, None, None]
            m = min(n, cfg.fit_max_points)
            if m < n:                                                    # per-unit subsample, seeded by (seed, epoch, unit)
                idx = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(
                    cfg.seed * 1_000_003 + epoch * 1009 + u))[:m] for u in range(U)]).to(x.device)
                x = torch.gather(x, 1, idx[..., None].expand(U, m, d))
            res = hddc_fit(x.contiguous(), cfg.n_components, cfg.max_components, "AkjBkQkDk", cfg.max_iter, cfg.tol,
                           True, cfg.min_mass, cfg.seed + epoch, split_rule="dyga", phi=cfg.phi, psi=cfg.psi,
                           p_arbitrary=cfg.p_arbitrary, max_split_passes=cfg.max_split_passes,
                           threshold=cfg.threshold).padded(self.means.shape[1])   # the fit's largest K -> every slot
            anchors = lo[:, None, None] + res.means * span[:, None, None]
        else:
            x, res = self._fit_code(x, n, epoch)
            anchors = res.means
        self._store(res, anchors, lo, hi)
        # Eq. 5 densities at the final fit: what drives the number of anchors (docs/methods/dyga.md#psi)
        resp = res.responsibilities(x.to(res.means.dtype))
        dens_max, dense = [], []
        for u in range(U):
            dens, _ = cluster_density(x[u].to(res.means.dtype), resp[u], res.active[u], cfg.phi)
            dens = dens[res.active[u]]
            dens_max.append(float(torch.nan_to_num(dens, nan=0.0).max()))
            dense.append(int((dens > cfg.psi).sum()))
        ev = {k: v.tolist() for k, v in res.events.items()}
        # the normalisation is affine with one scale per unit, so raw-space distances are span times
        # the normalised ones: the densities psi would meet on the raw features
        dens_raw = [dm * float(sp) for dm, sp in zip(dens_max, span.tolist())]
        self.last_fit = {"epoch": epoch, "n_points": int(x.shape[1]), "n_anchors": self.n_anchors.tolist(),
                         "anchors_mean": float(self.n_anchors.float().mean()), "splits": ev.get("splits"),
                         "filtered": ev.get("filtered"), "deactivated": ev.get("deactivated"),
                         "density_max": dens_max, "density_max_raw": dens_raw, "clusters_above_psi": dense,
                         "attempts": ev.get("attempts"),
                         "seconds": time.perf_counter() - t0}
        return self.last_fit

    def _fit_code(self, x, n, epoch):
        """[C] ``process_split_cond_cat`` + ``DyGA.fit`` (compat; docs/methods/dyga.md#compat): x -> (x - max)/
        (max - min + 1e-6); when n > ``fit_max_points`` each unit fits a random 10% subset, and a unit
        whose fit fails gets a new subset, up to ``code_retries`` attempts; with n <= ``fit_max_points``
        a failure raises (the code's ValueError propagates)."""
        cfg = self.config
        U, _, d = x.shape
        lo, hi = x.amin(dim=(1, 2)), x.amax(dim=(1, 2))
        x = (x - hi[:, None, None]) / (hi - lo + _EPS)[:, None, None]
        big = n > cfg.fit_max_points
        m = max(cfg.n_components, n // 10) if big else n
        gens = [torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 1009 + u) for u in range(U)]
        todo = list(range(U))
        res, xs = None, torch.empty(U, m, d, dtype=x.dtype, device=x.device)
        attempts = [0] * U
        while todo:
            for u in todo:
                attempts[u] += 1
                xs[u] = x[u, torch.randperm(n, generator=gens[u])[:m].to(x.device)] if big else x[u]
            seeds = [int(torch.randint(0, 2**62, (1,), generator=gens[u])) for u in todo]
            r, failed = fit_code(xs[todo], cfg.n_components, cfg.max_components, cfg.max_iter, cfg.min_mass,
                                 phi=cfg.phi, psi=cfg.psi, p_arbitrary=cfg.p_arbitrary,
                                 max_split_iter=cfg.max_split_passes, seeds=seeds)
            if res is None:
                res = r
            else:
                idx = torch.tensor(todo, device=x.device)
                for key in ("weights", "means", "n_components", "log_likelihood", "bic", "active", "covariances"):
                    getattr(res, key)[idx] = getattr(r, key)
                for key, v in r.events.items():      # the events of the attempt that is kept
                    res.events[key][idx.cpu()] = v
            bad = [u for u, f in zip(todo, failed.tolist()) if f]
            if bad and not big:
                raise ValueError(f"DyGA (compat='dis-dis'): the anchor fit failed on unit(s) {bad} (a Gaussian "
                                 f"lost all its points or its covariance is not positive definite; the authors' "
                                 f"code raises ValueError here and retries only when n > {cfg.fit_max_points})")
            give_up = [u for u in bad if attempts[u] >= cfg.code_retries]
            if give_up:
                raise ValueError(f"DyGA (compat='dis-dis'): the anchor fit failed on unit(s) {give_up} on "
                                 f"{cfg.code_retries} random 10% subsets")
            todo = bad
        res.events["attempts"] = torch.tensor(attempts)
        return xs, res

    def _store(self, res: HDDCResult, anchors, lo, hi):
        dev = self.means.device
        self.active.copy_(res.active.to(dev))
        self.weights.copy_(res.weights.to(dev, torch.float32))
        self.means.copy_(res.means.to(dev, torch.float32))
        self.anchors.copy_(anchors.to(dev, torch.float32))
        self.norm_lo.copy_(lo.to(dev))
        self.norm_hi.copy_(hi.to(dev))
        self.n_anchors.copy_(res.active.sum(1).to(dev))
        if self.config.model == "full":
            self.covariances.copy_(res.covariances.to(dev, torch.float32))
        else:
            self.subspaces.copy_(res.subspaces.to(dev, torch.float32))
            self.a.copy_(res.a.to(dev, torch.float32))
            self.b.copy_(res.b.to(dev, torch.float32))
            self.dims.copy_(res.dims.to(dev, torch.int64))
        self.fitted.fill_(True)
        self.num_fits += 1
        self._host_state()   # read once here, at the fit, not at the next training step

    def covariances_raw(self) -> torch.Tensor:
        """Each Gaussian's covariance (N, K, D, D) in the space of ``anchors``: HDDC's
        Q diag(a_1..a_d) Q^T + b (I - Q_d Q_d^T) (Eq. 3) or the full one, times span^2 (paper mode)."""
        if not self.is_fitted:
            raise ValueError("DyGA has no anchors yet: call fit(features) first")
        d = self.config.token_dim
        if self.config.model == "full":
            cov = self.covariances
        else:
            sig = (torch.arange(d, device=self.a.device) < self.dims[..., None]).to(self.a.dtype)   # (U, K, d)
            lam = torch.where(sig > 0, self.a, self.b[..., None].expand_as(self.a))
            cov = (self.subspaces * lam[..., None, :]) @ self.subspaces.transpose(-1, -2)
        if self.config.compat == "paper":
            cov = cov * self.span[:, None, None, None] ** 2
        return cov

    # -- alignment (Eq. 6, Alg. 3) --------------------------------------------------------------
    def assign(self, c: torch.Tensor) -> torch.Tensor:
        """The MAP Gaussian (B, N) of each unit's feature (the anchor index used in evaluation)."""
        c = self._check(c, "c", finite=True)
        if not self.is_fitted:
            raise ValueError("DyGA has no anchors yet: call fit(features) first")
        with full_precision(c):
            x = self.normalise(c) if self.config.compat == "paper" else self._batch_normalise(c)
            return self.mixture.labels(x.transpose(0, 1).to(self.means.dtype)).T

    def _batch_normalise(self, c):
        lo = c.detach().amin(dim=(0, 2))
        hi = c.detach().amax(dim=(0, 2))
        return (c - hi[None, :, None]) / (hi - lo + _EPS)[None, :, None]

    def forward(self, c: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Aligned features c~ (B, N, D); c itself before the first fit (and in eval mode when
        ``align_at_eval`` is off). Training: the configured assignment; eval: hard argmax."""
        self._check(c, "c")  # the result keeps c's dtype: a layer of the training forward (bf16 under autocast)
        check_generator(generator)
        return self._align_tokens(c, generator, checked=True)

    def _align_tokens(self, c, generator, *, checked=False):
        """:meth:`forward` on a checked shape and generator. ``checked``: also refuse empty or non-finite tokens
        and check the normalised ones where the mixture is evaluated (two host reads); the training loss passes
        the extractor's own tokens unchecked and leaves a NaN to the trainer's non-finite-loss check
        (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
        cfg = self.config
        fitted, max_dim, _ = self._host_state()   # one check of the host copies per call
        if not fitted or (not self.training and not cfg.align_at_eval):
            return c
        if checked:
            V.nonempty("c", c)
            V.finite("c", c)  # the alignment's kernels would refuse it as "x"
        if cfg.compat == "dis-dis":
            return self._align_code(c, checked)    # no matmul for autocast to lower: labels from a Cholesky solve
        assignment = cfg.assignment if self.training else "hard"
        self.last_align = {}
        mixture, features = self.mixture, c.to(self.means.dtype)
        if checked:  # the public path: align itself, with its checks
            out = align(mixture, features, cfg.lam, cfg.tau, generator=generator, gumbel_input=cfg.gumbel_input,
                        detach_assignment=cfg.detach_assignment, assignment=assignment,
                        normalise=(self.norm_lo, self.span), anchors=self.anchors, stats=self.last_align)
        else:  # align's body: the host copy of max d_k, no finiteness read of the normalised tokens
            out = _pull(mixture, lambda x: mixture._log_prob_trusted(x, max_dim), features, cfg.lam, cfg.tau,
                        generator, cfg.gumbel_input, cfg.detach_assignment, assignment, (self.norm_lo, self.span),
                        self.anchors, self.last_align)
        return out.to(c.dtype)

    def _align_code(self, c, checked):
        """[C] ``ddpm_dyga.py``: batch min-max (max used twice), hard argmax (``predict0``), anchor in the
        normalised space, one lambda = lam exp(-mean |(c - c_q)/(c + 1e-6)|) over the batch, then
        c <- lambda c_q + (1 - lambda) c. lambda is logged as a detached 0-d tensor (:func:`align`'s stats)."""
        cfg = self.config
        xn = self._batch_normalise(c).transpose(0, 1).to(self.means.dtype)
        mixture = self.mixture
        k = (mixture.labels(xn) if checked else mixture._log_prob_trusted(xn, None).argmax(-1))   # (U, B)
        cq = torch.gather(self.anchors, 1, k[..., None].expand(-1, -1, cfg.token_dim)).transpose(0, 1).to(c.dtype)
        lam = cfg.lam * torch.exp(-((c - cq) / (c + _EPS)).abs().mean())
        self.last_align = {"lambda": lam.detach()}
        return lam * cq + (1 - lam) * c
