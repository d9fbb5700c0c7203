"""DyGA's split passes (Eq. 4-5, Alg. 2) on the HDDC kernels: candidates by cluster density, their
members refitted as K = 2 mixtures in one batch (children started at mu +- sqrt(lambda_1) q_1 with
the parent's covariance), children accepted by the BIC or always."""

from __future__ import annotations

import math

import torch

from ..ops import hddc as ops
from .em import bic, compact, em, pick, subset

__all__ = ["split_pass", "child_starts"]


def child_starts(p, us, ks):
    """The starting mixtures of the split children of components ks of problems us (spec
    docs/kernels/hddc.md, step 3; DyGA Alg. 2): two components at mu_k +- sqrt(lambda_1) q_1, with
    q_1 the parent's leading eigenvector and lambda_1 its eigenvalue (AkjBkQkDk: the first column of
    Q_k and a_k1; full: the top eigenpair of Sigma_k), each with the parent's covariance model and
    weight 1/2 (the children's weights within the parent). Returns a C x 2 parameter dict.

    Started there, the first E-step on a member x with s = q_1^T (x - mu_k) gives the "+" child
    t = sigmoid(2 s / sqrt(lambda_1)) (the children share Sigma_k, and Sigma_k^-1 q_1 = q_1 / lambda_1),
    so t > 1/2 exactly on the side s > 0."""
    C = len(us)
    mu = p["mu"][us, ks]                                                   # (C, d)
    if p["model"] == "full":
        lam, vec = ops.eigh(p["cov"][us, ks])
        lam1, q1 = lam[..., -1], vec[..., -1]
    else:
        lam1, q1 = p["a"][us, ks, 0], p["Q"][us, ks, :, 0]
    step = lam1.clamp_min(0).sqrt()[:, None].to(mu.dtype) * q1.to(mu.dtype)
    p0 = {"model": p["model"], "mu": torch.stack([mu + step, mu - step], 1),
          "pi": torch.full((C, 2), 0.5, dtype=mu.dtype, device=mu.device),
          "active": torch.ones(C, 2, dtype=torch.bool, device=mu.device)}
    for key in ("cov", "Q", "a", "b", "dk", "lam"):
        if key in p:
            v = p[key][us, ks]
            p0[key] = v[:, None].expand(C, 2, *v.shape[1:]).clone()
    return p0


def _children(eng, w, p, resp, cands, phi, cfg):
    """Refit every candidate (unit u, component k)'s members as a K = 2 mixture, all candidates
    as one batch. The children start at mu_k +- sqrt(lambda_1) q_1 with the parent's covariance
    (:func:`child_starts`): EM from those parameters, i.e. its first E-step on the members, then
    M/E iterations. A candidate whose children end with fewer than 2 points of t > 1/2 each
    (deactivated by the EM) is dropped. Returns (kept candidates, child params)."""
    x = eng.x
    us = torch.tensor([u for u, _ in cands], dtype=torch.int64, device=x.device)
    ks = torch.tensor([k for _, k in cands], dtype=torch.int64, device=x.device)
    member = (resp[us, :, ks] > phi) & (w[us] > 0)                      # (C, n)
    p0 = child_starts(p, us, ks)
    p2 = _refit_members(eng, us, w[us], member, p0, cfg)
    good = p2["active"].all(1)
    kept = [cands[i] for i, g in enumerate(good.tolist()) if g]
    if not kept:
        return [], None
    return kept, subset(p2, good.nonzero()[:, 0])


_GATHER_BYTES = 1 << 28   # member points gathered per chunk of split refits (x, w and resp copies)


def _refit_members(eng, us, w, member, p0, cfg):
    """K = 2 EM of each candidate c over its members (the points i of unit us[c] with member[c, i]),
    started from the parameters p0 (:func:`child_starts`): one E-step at p0 on the members gives
    the responsibilities the EM starts from. On the native path the members are gathered (in point
    order) into a compact buffer (C, m, d), padded with zero-weight points, so a refit costs
    O(members), not O(n); candidates run in chunks of similar member counts (each problem is
    independent of its batch). The twin refits over the whole buffer (weights w * member)."""
    x = eng.x
    C, d = member.shape[0], x.shape[2]
    if not eng.native:
        wm = (w * member).contiguous()
        r0 = eng.estep(us, wm, p0, True)[0]
        act = torch.ones(C, 2, dtype=torch.bool, device=x.device)
        return em(eng, us, wm, r0, act, cfg, skip_zero=True)[0]
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
        wc = wc.contiguous()
        sub = ops.Engine(eng.backend, xc)
        local = torch.arange(len(sel), device=x.device)
        r0 = sub.estep(local, wc, subset(p0, sel), True)[0] * valid[..., None]
        act = torch.ones(len(sel), 2, dtype=torch.bool, device=x.device)
        p2, _, _ = em(sub, local, wc, r0, act, cfg, skip_zero=True)
        if out is None:
            out = {k: (v.new_empty((C,) + v.shape[1:]) if isinstance(v, torch.Tensor) else v) for k, v in p2.items()}
        for k, v in p2.items():
            if isinstance(v, torch.Tensor):
                out[k][sel] = v
        start = stop
    return out


def split_pass(eng, w, p, resp, L, cfg, rule, phi, psi, p_arb, min_mass, Kmax, gen, stats):
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
    p = subset(p, slice(None))
    if rule == "bic":  # per-point log-likelihood of the current mixtures, and its weighted sum
        lse = eng.point_lse(units, compact(p))
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
        trial = subset(p, bu)
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
            lpp = eng.point_lse(bu, pick(p, bu, bk[:, None]))
            lpc = eng.point_lse(bu, pick(trial, j, torch.stack([bk, bf], 1)))
            base = lse[bu]
            m = torch.maximum(base, lpc)
            rest = ((base - m).exp() - (lpp - m).exp()).clamp_min(0)
            lnew = (rest + (lpc - m).exp()).log() + m
            L_new = torch.where(w[bu] > 0, w[bu] * lnew, torch.zeros_like(lnew)).sum(1)
            n_eff = w[bu].sum(1)
            accept = bic(L_new, trial, n_eff, d) > bic(L_lse[bu], subset(p, bu), n_eff, d)
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
