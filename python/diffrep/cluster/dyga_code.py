"""The anchor selection of the DyGA authors' code (dis-dis ``ldm/modules/gaussian/DyGA.py``,
``DyGA.fit``), for DyGA's ``compat="dis-dis"`` (docs/methods/dyga.md#compat, the spec's rows 1-6):
the algorithm of the code, on the HDDC kernels (full-covariance mode), for U units at once.

Per unit:

1. init: ``n_components`` random points as means, identity covariances, uniform weights;
2. exactly ``max_iter`` EM iterations (E then M; no tolerance, no safeguard);
3. the split loop of ``split_large_density_clusters`` (rows 5-6), reproduced with its bookkeeping:

   - a pass starts only while fewer than ``max_components`` clusters exist (checked per pass, so a
     pass can exceed it) and the split counter is below ``max_split_iter``;
   - the candidates are the positions i with density_i > psi, or else a coin with probability
     ``p_arbitrary`` (drawn only when the density test fails, as Python's ``or`` does; an empty
     cluster has density NaN, so only the coin can pick it); the list is built once per pass;
   - for each candidate position i in turn (positions, not identities: after a split the parent is
     deleted and the children appended, so later positions shift), the members t_i > ``phi`` are
     refitted as a 2-component mixture started at 2 random members with identity covariances and
     weights 1/2, run ``max_iter`` iterations; a cluster with fewer than 2 members is skipped
     without counting; the children get weights sub_pi / 2, are appended, the parent is deleted and
     all weights renormalised;
   - after each split: if every density is <= psi (a NaN density is not) the pass ends without
     counting the split; otherwise the split counter rises by one (so with all densities below psi
     the loop runs until ``max_components`` is reached or a pass draws no candidate);
   - one addition: the loop also ends when no cluster has 2 members (nothing can change; the code
     would redraw its coins until all fail, forever when ``p_arbitrary`` = 1);

4. filter: one E-step, clusters with soft size < ``min_mass`` dropped, weights renormalised;
5. exactly ``max_iter`` EM iterations.

Failure (the code's ``ValueError``): the code builds a ``MultivariateNormal`` per component at every
E-step, whose argument check raises on a non-finite mean (an empty component's 0/0 mean) or a
covariance + 1e-6 I that is not positive definite. Here a unit fails when an M-step (main or split
mixture) gives an active component with n_k = 0 or a covariance whose Cholesky fails, or when the
filter would drop every cluster; its result is then meaningless and ``failed`` says so (the caller
retries on another subset or raises, row 11). One difference: the code would raise only at the next
E-step, which for the last M-step of step 5 is the first alignment after the fit.

Not reproduced: the order of random draws of the code (torch's global RNG inside threads); each
unit here draws from its own generator, in the code's order within the unit.
"""

from __future__ import annotations

import math

import torch

from .._checks import non_negative_int, positive_int
from ..ops import _validate as V
from ..ops._full_precision import autocast_off
from ..ops import hddc as ops
from .em import subset
from .hddc import HDDCResult

__all__ = ["fit_code", "capacity"]


def capacity(max_components: int) -> int:
    """Slots a unit may need: a pass starts below ``max_components`` and can split each of its
    clusters once, so up to 2 (max_components - 1) clusters (at most the kernels' 64)."""
    max_components = positive_int(max_components, "max_components")
    return max(max_components, min(ops.MAX_COMPONENTS, 2 * (max_components - 1)))


def _invalid(p):
    """Problems whose mixture the code could not evaluate: an active component with n_k = 0 (its
    mean is 0/0) or a covariance without a Cholesky factor."""
    act = p["active"]
    bad = (act & ~(p["nk"] > 0)).any(1)
    bad |= (act & ~torch.isfinite(p["mu"]).all(-1)).any(1)
    info = torch.linalg.cholesky_ex(torch.where(act[..., None, None], p["cov"], torch.eye(
        p["cov"].shape[-1], dtype=p["cov"].dtype, device=p["cov"].device)))[1]
    return bad | (act & (info != 0)).any(1)


def _safe(p, failed):
    """p with failed problems' components replaced by unit Gaussians (so the next E-step runs)."""
    if not bool(failed.any()):
        return p
    q = subset(p, slice(None))
    eye = torch.eye(q["cov"].shape[-1], dtype=q["cov"].dtype, device=q["cov"].device)
    q["cov"][failed] = eye
    q["mu"][failed] = 0
    act = q["active"][failed]
    q["pi"][failed] = act.to(q["pi"].dtype) / act.sum(1, keepdim=True).clamp_min(1)
    return q


def _em_fixed(eng, unit_of, w, resp, active, cfg, iters, failed):
    """Exactly ``iters`` M -> E iterations from resp (the code's loop after its first E-step).
    Returns (params, resp at them, failed)."""
    wtot = w.sum(1).to(eng.pdtype)
    p = None
    for _ in range(iters):
        nk, mu, W = eng.mstep(unit_of, w, resp, active)
        p = ops.params(nk, mu, W, wtot, active, cfg)
        failed = failed | _invalid(p)
        resp = eng.estep(unit_of, w, _safe(p, failed))[0]
    return p, resp, failed


def _start(means, active, pdtype, reg_covar):
    """Components at ``means`` (B, K, d) with identity covariances (plus the E-step's jitter, as the
    code adds 1e-6 I to its stored covariances) and uniform weights over ``active``."""
    B, K, d = means.shape
    act = active.to(pdtype)
    return {"model": "full", "mu": means.to(pdtype).clone(), "active": active.clone(),
            "cov": (1 + reg_covar) * torch.eye(d, dtype=pdtype, device=means.device).expand(B, K, d, d).clone(),
            "pi": act / act.sum(1, keepdim=True).clamp_min(1), "nk": act.clone()}


def _split_unit(eng, u, p, resp, cfg, opts, gen, stats):
    """The code's split loop on unit u (rows 5-6); p's row u and resp's row u are updated in place.
    Returns False when a split's mixture fails."""
    x = eng.x
    uo = torch.tensor([u], device=x.device)
    pu = subset(p, uo)
    ru = resp[u:u + 1]
    w1 = torch.ones(1, x.shape[1], dtype=x.dtype, device=x.device)
    pos = pu["active"][0].nonzero()[:, 0].tolist()
    split_iter = 0
    while split_iter < opts["max_split_iter"]:
        if len(pos) >= opts["max_components"]:
            break
        cnt, _, dens = eng.density(uo, w1, ru, pu["active"], opts["phi"])
        if not any(float(cnt[0, k]) >= 2 for k in pos):
            # no cluster can be split: the state cannot change any more, and the code would redraw
            # its coins until they all fail (forever with p_arbitrary = 1); the outcome is the same
            break
        dens = dens[0].tolist()
        cands = [i for i, k in enumerate(pos)
                 if dens[k] > opts["psi"] or float(torch.rand(1, generator=gen)) < opts["p_arbitrary"]]
        if not cands:
            break
        for i in cands:
            k = pos[i]
            member = ru[0, :, k] > opts["phi"]
            m = int(member.sum())
            if m < 2:
                continue
            xs = x[u][member][None].contiguous()                            # (1, m, d), point order
            pick = torch.randperm(m, generator=gen)[:2].to(x.device)
            sub = ops.Engine(eng.backend, xs)
            zero = torch.zeros(1, dtype=torch.int64, device=x.device)
            wm = torch.ones(1, m, dtype=x.dtype, device=x.device)
            p0 = _start(xs[:, pick], torch.ones(1, 2, dtype=torch.bool, device=x.device), eng.pdtype,
                        cfg["reg_covar"])
            r0 = sub.estep(zero, wm, p0)[0]
            p2, _, bad = _em_fixed(sub, zero, wm, r0, p0["active"], cfg, opts["max_iter"],
                                   torch.zeros(1, dtype=torch.bool, device=x.device))
            if bool(bad.any()):
                return False
            free = (~pu["active"][0]).nonzero()[:, 0].tolist()
            f = free[0]                                                      # the parent's slot k is reused
            for key in ("mu", "cov", "nk"):
                pu[key][0, k] = p2[key][0, 0].to(pu[key].dtype)
                pu[key][0, f] = p2[key][0, 1].to(pu[key].dtype)
            pu["pi"][0, k] = p2["pi"][0, 0] / 2
            pu["pi"][0, f] = p2["pi"][0, 1] / 2
            pu["active"][0, f] = True
            pu["pi"][0] = torch.where(pu["active"][0], pu["pi"][0], torch.zeros_like(pu["pi"][0]))
            pu["pi"][0] = pu["pi"][0] / pu["pi"][0].sum()
            pos = pos[:i] + pos[i + 1:] + [k, f]                             # children appended, parent deleted
            stats["splits"][u] += 1
            ru = eng.estep(uo, w1, pu)[0]
            dens = eng.density(uo, w1, ru, pu["active"], opts["phi"])[2][0].tolist()
            if all(dens[j] <= opts["psi"] for j in pos):                     # NaN <= psi is False
                break
            split_iter += 1
    for key, v in pu.items():
        if isinstance(v, torch.Tensor):
            p[key][u] = v[0]
    resp[u] = ru[0]
    return True


@autocast_off  # the mixture maths in float32/64 whatever the caller's autocast
def fit_code(x, n_components=8, max_components=32, max_iter=30, min_mass=10.0, *, phi=0.5, psi=0.5,
             p_arbitrary=0.5, max_split_iter=3, reg_covar=1e-6, seeds=None):
    """The code's ``DyGA.fit`` on each of the U units of ``x`` (U, n, d) (module doc). ``seeds``
    (U ints): each unit's generator (initial points, coins, split starts); default 0..U-1.
    Returns (:class:`diffrep.cluster.HDDCResult` with ``capacity(max_components)`` slots, model
    "full", events ``splits``/``filtered``; failed (U,) bool)."""
    S = capacity(positive_int(max_components, "max_components"))
    choice = ops.prepare(x, n_components, S, "full")  # x: a floating (units, n, d) tensor or a TypeError
    V.finite("x", x)
    positive_int(max_iter, "max_iter")
    non_negative_int(max_split_iter, "max_split_iter")
    min_mass = V.positive_scalar("min_mass", min_mass, allow_zero=True)
    phi = V.positive_scalar("phi", phi, upper=1.0)
    psi = V.positive_scalar("psi", psi, allow_zero=True)
    if isinstance(p_arbitrary, bool) or not isinstance(p_arbitrary, (int, float)):
        raise TypeError(f"p_arbitrary must be a number in [0, 1], got {type(p_arbitrary).__name__} {p_arbitrary!r}")
    p_arbitrary = float(p_arbitrary)
    if not 0.0 <= p_arbitrary <= 1.0:
        raise ValueError(f"p_arbitrary must be in [0, 1], got {p_arbitrary}")
    reg_covar = V.positive_scalar("reg_covar", reg_covar, allow_zero=True)
    x = x.to(V.float_dtype(x=x)).detach().contiguous()
    U, n, d = x.shape
    if n < n_components:
        raise ValueError(f"the code's init draws {n_components} distinct points, got n={n}")
    if seeds is not None and (isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__")):
        raise TypeError(f"seeds must be a sequence of U ints, got {type(seeds).__name__}")
    seeds = list(range(U)) if seeds is None else [non_negative_int(s, "seeds") for s in seeds]
    if len(seeds) != U:
        raise ValueError(f"seeds must give one seed per unit ({U}), got {len(seeds)}")
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    eng = ops.Engine(choice.backend, x)
    cfg = dict(model="full", threshold=0.2, dim_rule="cattell", reg_covar=reg_covar)
    opts = dict(phi=phi, psi=psi, p_arbitrary=p_arbitrary, max_split_iter=max_split_iter,
                max_components=max_components, max_iter=max_iter)
    stats = {k: torch.zeros(U, dtype=torch.int64) for k in ("splits", "filtered")}
    units = torch.arange(U, device=x.device)
    w = torch.ones(U, n, dtype=x.dtype, device=x.device)
    starts = torch.stack([torch.randperm(n, generator=g)[:n_components] for g in gens]).to(x.device)
    means = torch.zeros(U, S, d, dtype=x.dtype, device=x.device)
    means[:, :n_components] = torch.gather(x, 1, starts[..., None].expand(U, n_components, d))
    active = torch.zeros(U, S, dtype=torch.bool, device=x.device)
    active[:, :n_components] = True
    failed = torch.zeros(U, dtype=torch.bool, device=x.device)
    resp = eng.estep(units, w, _start(means, active, eng.pdtype, reg_covar))[0]
    p, resp, failed = _em_fixed(eng, units, w, resp, active, cfg, max_iter, failed)
    p = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
    resp = resp.clone()
    for u in range(U):
        if not bool(failed[u]) and not _split_unit(eng, u, p, resp, cfg, opts, gens[u], stats):
            failed[u] = True
    # filter at the current parameters, then the final EM from the filtered mixture's E-step
    resp = eng.estep(units, w, _safe(p, failed))[0]
    keep = p["active"] & ((resp * w[..., None]).sum(1) >= min_mass)
    failed |= ~keep.any(1)
    stats["filtered"] += (p["active"] & ~keep).sum(1).cpu()
    p["active"] = keep | (failed[:, None] & p["active"])
    pi = torch.where(p["active"], p["pi"], torch.zeros_like(p["pi"]))
    p["pi"] = pi / pi.sum(1, keepdim=True).clamp_min(torch.finfo(pi.dtype).tiny)
    resp = eng.estep(units, w, _safe(p, failed))[0]
    p, resp, failed = _em_fixed(eng, units, w, resp, p["active"], cfg, max_iter, failed)
    p = _safe(p, failed)
    _, L, _ = eng.estep(units, w, p)
    act = p["active"]
    L = L.to(x.dtype)
    K = act.sum(1).to(x.dtype)
    m = K * d + K * d * (d + 1) / 2 + K - 1
    res = HDDCResult(weights=(p["pi"] * act).to(x.dtype), means=p["mu"].to(x.dtype), n_components=act.sum(1),
                     log_likelihood=L, bic=2 * L - m * math.log(n), active=act, model="full",
                     covariances=p["cov"].to(x.dtype), events=stats)
    return res, failed.cpu()
