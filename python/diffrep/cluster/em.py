"""The EM of the HDDC fits (``hddc_main``) on the kernels of :mod:`diffrep.ops.hddc`, over a batch
of B independent problems (a problem reads unit ``unit_of[b]`` of the engine's x), and the helpers
that move parameter dicts between layouts (active components compacted, picked or scattered back).

Parameters are dicts of batched tensors (``pi``, ``mu``, ``nk``, ``active``, ``model`` and either
``Q``, ``lam``, ``dk``, ``a``, ``b`` or ``cov``), as :func:`diffrep.ops.hddc.params` makes them.
"""

from __future__ import annotations

import math

import torch

from ..ops import hddc as ops

__all__ = ["MIN_COUNT", "ALTERNATION_AFTER", "em", "em_compact", "deactivate", "bic", "n_free_params", "slots", "take", "put",
           "compact", "pick", "subset"]

MIN_COUNT = 2       # a component with fewer points of t_ik > 1/K is deactivated (HDclassif min.individuals)
ALTERNATION_AFTER = 20  # HDclassif hddc_main looks for a two-state cycle only at iterations t > 20


def n_free_params(p, d):
    """Model complexity m of ``hdc_getComplexity`` (AkjBkQkDk) or of the full GMM, per unit."""
    K = p["active"].sum(1).to(p["mu"].dtype)
    if p["model"] == "full":
        return K * d + K * d * (d + 1) / 2 + K - 1
    dk = torch.where(p["active"], p["dk"], torch.zeros_like(p["dk"])).to(p["mu"].dtype)
    return (K * d + K - 1) + (dk * (d - (dk + 1) / 2)).sum(1) + dk.sum(1) + 2 * K


def bic(L, p, n_eff, d):
    """BIC = 2 L - m log n (maximised; HDclassif convention)."""
    return 2 * L - n_free_params(p, d) * n_eff.clamp_min(1).log()


def deactivate(active, cnt, resp, w):
    """Components with fewer than MIN_COUNT points of t_ik > 1/K (``cnt``, counted by the E-step)
    become inactive (HDclassif would abort); a problem that would lose all keeps its largest.
    Returns (active, number deactivated per problem)."""
    keep = active & (cnt >= MIN_COUNT)
    none = ~keep.any(1, keepdim=True)
    # every problem's largest, selected where it would lose all: no read of ``none`` and no boolean-mask rows
    # (each a host synchronisation per EM iteration on CUDA); a row's mass and argmax do not depend on the others
    big = torch.where(active, (resp * w[..., None]).sum(1), torch.full_like(active, -1, dtype=resp.dtype))
    keep = torch.where(none, torch.nn.functional.one_hot(big.argmax(1), active.shape[1]).bool(), keep)
    return keep, (active & ~keep).sum(1)


def _converged(L, L_ref, tol):
    """HDclassif's test of two log-likelihoods: |L - L_ref| < tol or |L - L_ref| / (0.1 + |L|) < tol
    (strict; L_ref = -inf never passes)."""
    dL = (L - L_ref).abs()
    return (dL < tol) | (dL / (0.1 + L.abs()) < tol)


def _alternation(L, L1, L2, L3, tol):
    """The two-cycle detector of HDclassif 2.2.2 (``hddc_main``, "ALTERNATION CATCHING"), in the form
    the specification fixes (docs/kernels/hddc.md, step 2): at an iteration t > ALTERNATION_AFTER whose
    L_t = L is not converged against L_{t-1} = L1, the EM alternates between two states if L_t passes
    :func:`_converged` against L_{t-2} = L2 and L_{t-1} against L_{t-3} = L3. R's second comparison
    reads ``abs(L_m1 == likely[iter - 3])``, a 0/1 value: it passes whenever the two differ at all and,
    when they are bit-identical, only if |L_{t-1}| > 1/tol - 0.1 (999.9 at tol = 1e-3). diffrep compares
    the values, as intended.

    Returns (stop, one_more): stop now where L_t >= L_{t-1} (the better state is the current one); run
    one more iteration and stop where L_t < L_{t-1} (the next iterate is the better state again)."""
    cycle = ~_converged(L, L1, tol) & _converged(L, L2, tol) & _converged(L1, L3, tol)
    return cycle & (L >= L1), cycle & (L < L1)


def em(eng, unit_of, w, resp, active, cfg, stats=None, skip_zero=False):
    """M -> E iterations (``hddc_main``) over B problems until |dL| < tol or
    |dL|/(0.1 + |L|) < tol (:func:`_converged`), or a two-state cycle after ALTERNATION_AFTER iterations
    (:func:`_alternation`: the EM ends on the better of the two states), or max_iter; a stopped problem
    is frozen and no longer computed. Returns (params, resp, L).

    Host synchronisations on CUDA per iteration: the count of running problems (one read: the stopping test,
    and whether the running ones must be picked out), the ``nonzero`` that picks them out once some have
    stopped (a data-dependent size: the stopped problems are not computed), and those of the E- and M-steps
    (their input checks, the M-step's eigh). The deactivation's counts reach ``stats`` after the loop."""
    B = unit_of.shape[0]
    dev = resp.device
    K = active.sum(1, keepdim=True).clamp_min(1).to(resp.dtype)
    cnt = ((resp > 1.0 / K[:, None]) & (w[..., None] > 0)).sum(1)
    wtot = w.sum(1).to(eng.pdtype)
    running = torch.ones(B, dtype=torch.bool, device=dev)
    # L_{t-1}, L_{t-2}, L_{t-3} per problem, and the flag "the two-cycle detector asked for one more"
    hist = torch.full((B, 3), -math.inf, dtype=eng.pdtype, device=dev)
    last = torch.zeros(B, dtype=torch.bool, device=dev)
    active = active.clone()
    deactivated = torch.zeros(B, dtype=torch.int64, device=dev)  # per problem, added to stats after the loop
    n_running = B
    p = None
    for it in range(1, max(1, cfg["max_iter"]) + 1):
        idx = None if n_running == B else running.nonzero()[:, 0]
        sub = (lambda t: t) if idx is None else (lambda t: t[idx])
        w_s, resp_s = sub(w), sub(resp)
        keep, dead = deactivate(sub(active), sub(cnt), resp_s, w_s)
        # the responsibilities renormalised over the kept components when any problem lost one, selected on
        # the device rather than after a read of dead.any() (the same numbers: the whole batch either way)
        kept = resp_s * keep[:, None]
        kept = kept / kept.sum(-1, keepdim=True).clamp_min(torch.finfo(resp.dtype).tiny)
        resp_s = torch.where(dead.any(), kept, resp_s)
        if idx is None:
            deactivated += dead
        else:
            deactivated.index_add_(0, idx, dead)
        nk, mu, W = eng.mstep(sub(unit_of), w_s, resp_s, keep)
        new_p = ops.params(nk, mu, W, sub(wtot), keep, cfg)
        new_resp, L, new_cnt = eng.estep(sub(unit_of), w_s, new_p, skip_zero)
        h = sub(hist)
        done = _converged(L, h[:, 0], cfg["tol"]) | sub(last)
        more = torch.zeros_like(done)
        if it > ALTERNATION_AFTER:
            stop, more = _alternation(L, h[:, 0], h[:, 1], h[:, 2], cfg["tol"])
            done = done | stop
        h = torch.cat([L[:, None], h[:, :2]], 1)
        if idx is None:
            p, resp, cnt, active, hist, last = new_p, new_resp, new_cnt, keep, h, more
            running = ~done
        else:
            for key, v in new_p.items():
                if isinstance(v, torch.Tensor):
                    p[key][idx] = v
            resp[idx], cnt[idx], active[idx], hist[idx], last[idx] = new_resp, new_cnt, keep, h, more
            running[idx] = ~done
        n_running = int(running.sum())
        if n_running == 0:
            break
    if stats is not None:
        units, counts = torch.stack([unit_of.long(), deactivated]).cpu()  # one copy to the host per EM
        stats["deactivated"].index_add_(0, units, counts)
    return p, resp, hist[:, 0]


def slots(active):
    """(perm (B, K'), K'): each problem's active slots first, in slot order; K' = max #active."""
    B, K = active.shape
    Kc = max(1, int(active.sum(1).max()))
    return torch.argsort((~active).to(torch.int8), dim=1, stable=True)[:, :Kc], Kc


def take(v, perm):
    """v's (B, K, ...) slots perm (B, K') per problem, as (B, K', ...)."""
    B, Kc = perm.shape
    return torch.gather(v, 1, perm.view(B, Kc, *([1] * (v.dim() - 2))).expand(B, Kc, *v.shape[2:]))


def put(full, perm, v):
    """``full`` with v (B, K', ...) scattered into the slots perm (B, K') (the inverse of :func:`take`)."""
    B, Kc = perm.shape
    return full.scatter(1, perm.view(B, Kc, *([1] * (v.dim() - 2))).expand(B, Kc, *v.shape[2:]), v)


def em_compact(eng, units, w, resp, active, cfg, stats):
    """:func:`em` on the active slots only (resp (U, n, K') instead of (U, n, K_max); components are
    independent slots, so the result is that of em on the full layout), scattered back with the
    parameters an inactive slot gets from a zero M-step."""
    U, n, K = resp.shape
    perm, Kc = slots(active)
    if Kc == K:
        return em(eng, units, w, resp, active, cfg, stats)
    rc = torch.gather(resp, 2, perm[:, None].expand(U, n, Kc)).contiguous()
    pc, rc, L = em(eng, units, w, rc, take(active, perm), cfg, stats)
    d = eng.x.shape[2]
    z = torch.zeros(U, K, dtype=pc["mu"].dtype, device=resp.device)
    p = ops.params(z, torch.zeros(U, K, d, dtype=z.dtype, device=z.device),
                   torch.zeros(U, K, d, d, dtype=z.dtype, device=z.device),
                   torch.ones(U, dtype=z.dtype, device=z.device), torch.zeros(U, K, dtype=torch.bool, device=z.device),
                   cfg)
    for key, v in pc.items():
        if isinstance(v, torch.Tensor) and key in p:
            p[key] = put(p[key].to(v.dtype), perm, v)
    resp = torch.zeros_like(resp).scatter_(2, perm[:, None].expand(U, n, Kc), rc)
    return p, resp, L


def compact(p):
    """p with each problem's active components moved, in slot order, to the first
    K' = max #active slots (the E-step skips inactive slots and sums the active ones in slot order,
    so L, and resp on the active slots, are unchanged; resp and the loops shrink to K')."""
    B, K = p["active"].shape
    perm, Kc = slots(p["active"])
    if Kc == K:
        return p
    return {key: take(v, perm) if isinstance(v, torch.Tensor) and v.dim() >= 2 and tuple(v.shape[:2]) == (B, K) else v
            for key, v in p.items()}


def pick(p, rows, comps):
    """The components comps (B, m) of problems rows of p, as an m-component mixture (all active)."""
    out = {}
    for key, v in p.items():
        if isinstance(v, torch.Tensor) and key != "active" and v.dim() >= 2:
            out[key] = take(v[rows], comps)
        else:
            out[key] = v
    out["active"] = torch.ones(comps.shape, dtype=torch.bool, device=comps.device)
    return out


def subset(p, idx):
    """Copies of the problems idx of p."""
    return {k: (v[idx].clone() if isinstance(v, torch.Tensor) else v) for k, v in p.items()}
