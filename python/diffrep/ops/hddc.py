"""The HDDC kernels: the E-step, the M-step sums and DyGA's cluster density (Eq. 5) over a batch of
B problems that read units of one x (U, n, d), on the native backends or the pure-PyTorch twin
:mod:`diffrep.ops.reference.hddc` (cran/HDclassif 2.2.2, model AkjBkQkDk, and the full-covariance
GMM; specification in docs/kernels/hddc.md).

* :class:`Engine`: ``estep`` (responsibilities, log-likelihood, counts; per-point log-likelihood),
  ``mstep`` (n_k, mu_k, W_k), ``density`` (DyGA Eq. 5) and ``point_lse``;
* :func:`params`: the parameters from the M-step sums (the eigen step, shared with the twin's
  ``m_step`` through :func:`diffrep.ops.reference.hddc.params_from_stats`);
* :func:`prepare`: validation and the backend choice of a fit (``explain("hddc.fit", x)``).

The EM + split/filter algorithm built on these kernels is :mod:`diffrep.cluster.hddc`.
``fit``, ``HDDCResult`` and ``SPLIT_RULES`` here are thin lazy re-exports of it (the algorithm
sits above ``ops``); ``align`` is a deprecated alias of :func:`diffrep.methods.dyga.align`.
"""

from __future__ import annotations

import importlib

import torch

from .._deprecation import moved_names
from . import _validate as V
from . import _dispatch
from ._dispatch import register, select
from ._full_precision import autocast_off
from ._native_call import NON_FINITE, raise_flags, run_deferrable, run_unflagged
from .reference import hddc as ref

__all__ = ["Engine", "params", "eigh", "prepare", "MODELS", "MAX_DIM", "MAX_COMPONENTS"]

MODELS = ("AkjBkQkDk", "full")
MAX_DIM = 64
MAX_COMPONENTS = 64


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


def prepare(x, n_components=8, max_components=32, model="AkjBkQkDk", **kw):
    """Check x (U, n, d) and the mixture sizes against what the kernels support, and choose the
    backend of the HDDC fit (:func:`diffrep.ops.explain` ``("hddc.fit", x)`` reports it)."""
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
        notes.append(f"eigen step: torch.linalg.eigh on the (unit, component) {d}x{d} matrices (inactive ones as I), float64; "
                     + ("batched syevj path (d <= 32)" if d <= 32 else "d > 32: not the batched syevj path"))
    else:
        notes.append(f"eigen step: torch.linalg.eigh (LAPACK) on the (unit, component) {d}x{d} matrices (inactive ones as I)")
    notes.append("split candidates refitted as one batched K=2 problem over the same x (weights = membership); "
                 "converged problems frozen; only active components computed")
    return _HDDCChoice(choice, notes)


# --------------------------------------------------------------------------- kernels
def _estep_failed(flags: int) -> None:
    """The hddc_estep kernel's error, raised at once or when a :func:`diffrep.ops.deferred_checks` block ends."""
    raise_flags("hddc.fit", flags, {NON_FINITE: "x contains NaN or infinite values"})


class Engine:
    """The three HDDC primitives over a batch of B problems on one x buffer (problem b reads unit
    unit_of[b]): on the native backend the hddc_estep / hddc_mstep / cluster_density kernels,
    on the reference backend the twin (which gathers x[unit_of])."""

    def __init__(self, backend, x):
        self.backend, self.x = backend, x
        self.native = backend != "reference"
        # parameters are kept in float64 on the native path (its M-step sums are float64)
        self.pdtype = torch.float64 if self.native else x.dtype
        # x's version counter when x was last found all finite on CUDA (None: not known): see estep
        self._finite_at = None

    def _units(self, unit_of, **tensors):
        """unit_of (B,) int64 on x's device with every value in [0, U), and ``tensors`` on x's device
        (:meth:`_on_device`, then :meth:`_read_units`)."""
        self._on_device(unit_of, **tensors)
        return self._read_units(unit_of)[0]

    def _on_device(self, unit_of, **tensors):
        """unit_of a 1-D int64 tensor, and it and ``tensors`` on x's device (a tensor on another GPU would be
        read by a kernel launched on x's device)."""
        if not isinstance(unit_of, torch.Tensor) or unit_of.dtype != torch.int64 or unit_of.dim() != 1:
            raise TypeError("unit_of must be a 1-D int64 tensor")
        for name, t in {"unit_of": unit_of, **tensors}.items():
            if isinstance(t, torch.Tensor) and t.device != self.x.device:
                raise ValueError(f"{name} is on {t.device} but x is on {self.x.device}")

    def _read_units(self, unit_of, *sizes):
        """Check every value of unit_of in [0, U) and return (unit_of contiguous, the ints of the 0-d tensors
        ``sizes``), all read in one host read (one synchronisation on CUDA; before, one per value). The CUDA
        binding cannot read device memory to check unit_of (the CPU binding does) and the kernels index x with
        it; the twin's x[unit_of] would wrap a negative unit around. ``sizes``: what a launch needs on the
        host (the E-step's column count)."""
        if unit_of.numel() == 0:  # the native bindings reject an empty batch themselves
            return unit_of, [int(v) for v in sizes]
        *sizes, lo, hi = torch.stack([*(v.to(torch.int64) for v in sizes), *torch.aminmax(unit_of)]).tolist()
        if lo < 0 or hi >= self.x.shape[0]:
            raise ValueError(f"unit_of must lie in [0, {self.x.shape[0]}) (the units of x), got values in [{lo}, {hi}]")
        return unit_of.contiguous(), sizes

    def _xs(self, unit_of):
        return self.x[unit_of]

    @autocast_off  # the twin's cost form and the native path's Q, a, b preparation: float32/64 under any autocast
    def estep(self, unit_of, w, p, skip_zero=False, point_ll=False):
        """(resp (B, n, K), L (B,), counts (B, K) of t_ik > 1/K_active with w_i > 0), plus the
        per-point log-likelihood (B, n) float64 when ``point_ll`` (native path only).

        Host reads on CUDA: one before the launch (unit_of's range with the column count D of the subspace
        form). The kernel flags only a non-finite x at a point it reads, so its flags word is read (or deferred
        by a :func:`diffrep.ops.deferred_checks` block) only while x is not known to be all finite: the first
        E-step of an Engine checks x in that same read, and again after x changes in place
        (docs/kernels/hddc.md#host-reads-on-cuda)."""
        self._on_device(unit_of, w=w, mu=p["mu"])
        act = p["active"]
        thr = 1.0 / act.sum(1).clamp_min(1).to(self.x.dtype)
        if not self.native:
            unit_of = self._read_units(unit_of)[0]
            resp, L = ref.e_step(self._xs(unit_of), w, p)
            cnt = ((resp > thr[:, None, None]) & (w[..., None] > 0)).sum(1)
            return resp, L.to(self.pdtype), cnt
        x = self.x
        T, (B, K), d, n = x.dtype, act.shape, x.shape[2], x.shape[1]
        f64 = dict(dtype=torch.float64, device=x.device)
        logpi = torch.where(act, p["pi"].clamp_min(1e-300).log(), torch.zeros_like(p["pi"]))
        # on CUDA, x all finite (in the pre-launch read) unless known from an earlier call
        check_x = (torch.isfinite(x).all(),) if self.backend == "cuda" and self._finite_at != x._version else ()
        if p["model"] == "full":
            unit_of, vals = self._read_units(unit_of, *check_x)
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
            unit_of, (any_low, max_dk, *vals) = self._read_units(unit_of, low.any(), dkl.max(), *check_x)
            D = d if any_low else max(1, max_dk)
            qt = p["Q"][..., :D].transpose(-1, -2).clone()
            sig = torch.arange(D, device=x.device) < dkl[..., None]
            a = a_d[..., :D]
            ia = torch.where(sig, 1.0 / a, torch.zeros_like(a))
            ib = 1.0 / b
            dk = dkl.to(torch.int32)
            tri = low.to(torch.int32)
            if any_low:
                qt[low] = _lower_root(p["Q"][low], torch.where(sig_d, a_d, b[..., None])[low])
                ia[low], ib[low], dk[low] = 1.0, 0.0, d
        c = lambda t: t.to(T).contiguous()
        resp = torch.empty(B, n, K, dtype=T, device=x.device)
        llp = torch.empty(B, n, **f64)
        L = torch.empty(B, **f64)
        cnt = torch.empty(B, K, dtype=torch.int64, device=x.device)
        if check_x and vals[0]:
            self._finite_at = x._version
        args = dict(x=x, unit_of=unit_of, w=c(w), mu=c(p["mu"]), qt=c(qt), ia=c(ia), dk=dk.contiguous(),
                    tri=tri.contiguous(), ib=c(ib), cst=c(cst), act=act.to(torch.int32).contiguous(), thr=c(thr),
                    skip_zero=bool(skip_zero), resp=resp, llp=llp, L=L, cnt=cnt)
        if self.backend == "cuda" and self._finite_at == x._version:  # nothing the kernel can flag
            run_unflagged(self.backend, "hddc_estep", x.device, **args)
            return (resp, L, cnt, llp) if point_ll else (resp, L, cnt)
        flags = run_deferrable(self.backend, "hddc_estep", x.device, _estep_failed, **args)
        if flags:
            _estep_failed(flags)
        return (resp, L, cnt, llp) if point_ll else (resp, L, cnt)

    @autocast_off
    def point_lse(self, unit_of, p):
        """log sum_k pi_k N_k(x_i) (B, n) float64 over p's active components, for every point
        (the E-step's per-point log-likelihood at unit weights)."""
        if not self.native:
            return ref.log_prob(self._xs(self._units(unit_of)), p).logsumexp(-1).to(torch.float64)
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
        # the M-step and density kernels write no flags: nothing is read back on CUDA (before: one read per call)
        run_unflagged(self.backend, "hddc_stats", x.device, x=x, unit_of=unit_of, w=w.contiguous(),
                      resp=resp.contiguous(), act=act.to(torch.int32).contiguous(), mode=mode, phi=float(phi),
                      part=part, mass=mass, mean=mean, second=second)
        return mass, mean, second

    @autocast_off
    def mstep(self, unit_of, w, resp, act):
        """(n_k, mu, W) of the M-step (twin: ref.mstep_stats)."""
        unit_of = self._units(unit_of, w=w, resp=resp, act=act)
        if not self.native:
            return ref.mstep_stats(self._xs(unit_of), w, resp * act[:, None])
        return self._stats(unit_of, w, resp, act, 0, 0.0)

    @autocast_off
    def density(self, unit_of, w, resp, act, phi):
        """(count, centroid, density) of DyGA Eq. 5 (twin: ref.cluster_density)."""
        unit_of = self._units(unit_of, w=w, resp=resp, act=act)
        if not self.native:
            return ref.cluster_density(self._xs(unit_of), w, resp, act, phi)
        return self._stats(unit_of, w, resp, act, 1, phi)


# --------------------------------------------------------------------------- the M-step's eigen step
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


def eigh(W):
    """torch.linalg.eigh of a batch of small symmetric matrices (one thread on the CPU)."""
    V.tensor("W", W)
    if W.dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"W must be a float32 or float64 tensor, got {W.dtype}")
    if W.dim() < 2 or W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W must be a batch of square matrices (..., d, d), got shape {tuple(W.shape)}")
    V.finite("W", W)  # LAPACK would return NaN eigenpairs for them
    return _lapack(torch.linalg.eigh, W)


def params(nk, mu, W, wtot, active, cfg):
    """HDDC (or full-covariance) parameters from the M-step sums (n_k, mu, W) and the total weights
    wtot (B,); ``cfg`` names ``model``, ``threshold``, ``dim_rule`` and ``reg_covar``. The eigen
    step runs on every (problem, component) matrix, an inactive one as I (no data-dependent shape)."""
    return ref.params_from_stats(nk, mu, W, wtot, active, model=cfg["model"], threshold=cfg["threshold"],
                                 dim_rule=cfg["dim_rule"], reg_covar=cfg["reg_covar"], eigh=eigh)


register("hddc.fit")(lambda *a, **k: prepare(*a, **k))

_ALGORITHM = ("fit", "HDDCResult", "SPLIT_RULES")  # re-exported from diffrep.cluster.hddc
_moved = moved_names(__name__, {"align": "diffrep.methods.dyga:align"})


def __getattr__(name: str):
    if name in _ALGORITHM:
        return getattr(importlib.import_module("diffrep.cluster.hddc"), name)
    return _moved(name)
