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

__all__ = ["MIN_COUNT", "em", "em_compact", "deactivate", "bic", "n_free_params", "slots", "take", "put",
           "compact", "pick", "subset"]

MIN_COUNT = 2       # a component with fewer points of t_ik > 1/K is deactivated (HDclassif min.individuals)


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
    none = ~keep.any(1)
    if bool(none.any()):
        big = torch.where(active[none], (resp[none] * w[none][..., None]).sum(1), torch.full_like(
            active[none], -1, dtype=resp.dtype))
        keep[none] = torch.nn.functional.one_hot(big.argmax(1), active.shape[1]).bool()
    return keep, (active & ~keep).sum(1)


def em(eng, unit_of, w, resp, active, cfg, stats=None, skip_zero=False):
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
        keep, dead = deactivate(sub(active), sub(cnt), resp_s, w_s)
        if bool(dead.any()):
            if stats is not None:
                stats["deactivated"].index_add_(0, sub(unit_of).cpu(), dead.cpu())
            resp_s = resp_s * keep[:, None]
            resp_s = resp_s / resp_s.sum(-1, keepdim=True).clamp_min(torch.finfo(resp.dtype).tiny)
        nk, mu, W = eng.mstep(sub(unit_of), w_s, resp_s, keep)
        new_p = ops.params(nk, mu, W, sub(wtot), keep, cfg)
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
