"""Diagnose phase 2 of a trained denoising multi-beta VAE (the latent diffusion of Eq. 13-19 and Algorithm 2) on
the models that ``scripts/validate_multibeta.py --save-dir DIR`` saved (docs/methods/multibeta.md#validation).
A report: it gates nothing.

    python scripts/diagnose_multibeta_phase2.py --load-dir DIR [--recipe multibeta/dsprites-cpu]
        [--betas 0.5,0.7,0.9,0.96] [--num-fit 4096] [--num-eval 2048] [--out record.json]

Three questions, on held-out images (outside the recipe's training subset) and, where a regression is fitted,
on training images:

1. ``information``: how much the code at beta says about the beta = 0 code f(x, 0). Per beta: the mean KL
   (rate, nats; an upper bound on I(x; z_beta) for the noisy code); the held-out R^2 of a ridge regression
   (:func:`ridge_r2`, fitted on the training images) from the MEAN code f(x, beta) to f(x, 0) and from the
   NOISY code f(x, beta) + sigma_beta xi (what denoise-then-decode starts from) to f(x, 0); the same for a
   k-nearest-neighbour regression (:func:`knn_r2`, non-linear); and ``ideal_sq_dist_to_f0``: 2 x the noisy
   ridge's held-out mean squared error / mean ||f(x, 0)||^2, an upper bound on the mean ||c - f(x, 0)||^2 /
   mean ||f(x, 0)||^2 of a sampler that draws c from the exact posterior p(f(x, 0) | z_beta) (that sampler's
   value is 2 x the minimum mean squared error, which the ridge's error bounds from above).
2. ``heads``: how well the trained denoiser predicts the Eq. 19 targets at grid indices i (t = i tau), with
   z_t = f(x, t) + sigma_t eps: relative errors mean ||eps_hat - eps||^2 / mean ||eps||^2 and
   mean ||Delta_hat - Delta||^2 / mean ||Delta||^2 (Delta = f(x, t - tau) - f(x, t), the exact target from
   the frozen encoder), next to the same relative errors of ridge regressions from z_t (fitted on training
   images): a reference a trained network should match or beat (:func:`head_errors`).
3. ``chains``: where each sampler loses the input. From z at each start beta (noisy and mean code), the chain
   runs to 0 (``sampler`` x sign); at every ``trace_every``-th grid index the held-out R^2 of a ridge from
   the chain's state to f(x, 0) (two-fold on the held-out images, :func:`chain_trace`), and at the end
   mean ||c - f(x, 0)||^2 / mean ||f(x, 0)||^2 (compare with ``ideal_sq_dist_to_f0``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch


def _ridge_fit(x: torch.Tensor, y: torch.Tensor, lam: float):
    """Ridge regression of y [n, q] on x [n, p] with an intercept (float64): (weights [p, q], x mean, y mean);
    the penalty is ``lam`` x trace(Xc^T Xc) / p on every weight (scale-free)."""
    xm, ym = x.mean(0), y.mean(0)
    xc, yc = x - xm, y - ym
    g = xc.T @ xc
    pen = lam * float(torch.diagonal(g).sum()) / x.shape[1]
    w = torch.linalg.solve(g + pen * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ yc)
    return w, xm, ym


def ridge_r2(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor,
             lam: float = 1e-4) -> dict:
    """Held-out R^2 of a ridge regression fitted on (x_fit, y_fit) and evaluated on (x_eval, y_eval), over all
    output dimensions together: 1 - sum ||y - y_hat||^2 / sum ||y - mean(y_eval)||^2; ``mse`` the mean over the
    eval rows of ||y - y_hat||^2. Inputs [n, ...] (flattened to rows, computed in float64)."""
    for name, t in (("x_fit", x_fit), ("y_fit", y_fit), ("x_eval", x_eval), ("y_eval", y_eval)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2 or t.shape[0] < 2:
            raise ValueError(f"ridge_r2: {name} must be a tensor [n >= 2, ...]")
    if x_fit.shape[0] != y_fit.shape[0] or x_eval.shape[0] != y_eval.shape[0]:
        raise ValueError("ridge_r2: x and y must have the same number of rows")
    if not lam >= 0:
        raise ValueError(f"ridge_r2: lam must be >= 0, got {lam!r}")
    xf, yf = x_fit.flatten(1).double(), y_fit.flatten(1).double()
    xe, ye = x_eval.flatten(1).double(), y_eval.flatten(1).double()
    w, xm, ym = _ridge_fit(xf, yf, lam)
    pred = (xe - xm) @ w + ym
    sse = float((ye - pred).pow(2).sum())
    sst = float((ye - ye.mean(0)).pow(2).sum())
    return {"r2": 1.0 - sse / sst, "mse": sse / ye.shape[0]}


def knn_r2(x_fit: torch.Tensor, y_fit: torch.Tensor, x_eval: torch.Tensor, y_eval: torch.Tensor, k: int = 16) -> dict:
    """Held-out R^2 (as :func:`ridge_r2`) of a k-nearest-neighbour regression: y_hat = mean of the y_fit rows
    of the k x_fit rows nearest (Euclidean) to each x_eval row."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= x_fit.shape[0]:
        raise ValueError(f"knn_r2: k must be an int in 1..{x_fit.shape[0]}, got {k!r}")
    xf, yf = x_fit.flatten(1).double(), y_fit.flatten(1).double()
    xe, ye = x_eval.flatten(1).double(), y_eval.flatten(1).double()
    preds = []
    for i in range(0, xe.shape[0], 512):
        d = torch.cdist(xe[i:i + 512], xf)
        idx = d.topk(k, dim=1, largest=False).indices
        preds.append(yf[idx].mean(1))
    pred = torch.cat(preds)
    sse = float((ye - pred).pow(2).sum())
    sst = float((ye - ye.mean(0)).pow(2).sum())
    return {"r2": 1.0 - sse / sst, "mse": sse / ye.shape[0]}


def _encode(vae, x: torch.Tensor, beta: float, chunk: int = 512) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([vae.encode(x[i:i + chunk], beta) for i in range(0, x.shape[0], chunk)])


def head_errors(denoiser, f_t: torch.Tensor, f_prev: torch.Tensor, i: int, noise: torch.Tensor) -> dict:
    """The trained heads against the exact Eq. 19 targets at grid index i: z_t = f_t + sigma_t noise,
    ``eps_rel`` = mean ||eps_hat - noise||^2 / mean ||noise||^2, ``delta_rel`` = mean ||Delta_hat - Delta||^2 /
    mean ||Delta||^2 with Delta = f_prev - f_t, ``delta_sq`` = mean ||Delta||^2. Returns also z_t and the targets."""
    n = f_t.shape[0]
    idx = torch.full((n,), i, dtype=torch.long)
    with torch.no_grad():
        terms = denoiser.eq19_terms(f_t, f_prev, idx, noise)
        eps_hat, delta_hat = denoiser.predict(terms["z_t"], idx)
    e, d = terms["eps"].flatten(1).double(), terms["delta"].flatten(1).double()
    eh, dh = eps_hat.flatten(1).double(), delta_hat.flatten(1).double()
    dsq = float(d.pow(2).sum(1).mean())
    return {"eps_rel": float((eh - e).pow(2).sum(1).mean()) / float(e.pow(2).sum(1).mean()),
            "delta_rel": float((dh - d).pow(2).sum(1).mean()) / max(dsq, 1e-300), "delta_sq": dsq,
            "z_t": terms["z_t"], "eps": terms["eps"], "delta": terms["delta"]}


def chain_trace(denoiser, z: torch.Tensor, i_from: int, f0: torch.Tensor, *, trace_every: int = 5,
                generator: torch.Generator | None = None) -> dict:
    """Run the denoiser's configured sampler from z at grid index ``i_from`` to 0 (one :meth:`step` per grid
    index, as ``denoise`` does), and at the start, every ``trace_every``-th index and the end record the two-fold
    held-out ridge R^2 (:func:`ridge_r2`) from the chain's state to f0 (rows split in halves, each half fitted and
    evaluated on the other; the mean of the two). Returns {"trace": [(i, r2)], "final": code,
    "sq_dist_to_f0": mean ||c - f0||^2 / mean ||f0||^2}."""
    n = z.shape[0]
    h = n // 2

    def r2(c):
        a = ridge_r2(c[:h], f0[:h], c[h:], f0[h:])["r2"]
        b = ridge_r2(c[h:], f0[h:], c[:h], f0[:h])["r2"]
        return 0.5 * (a + b)

    trace = [(i_from, r2(z))]
    with torch.no_grad():
        for i in range(i_from, 0, -1):
            z = denoiser.step(z, i, generator=generator)
            if (i - 1) % trace_every == 0:  # always at the end (i = 1)
                trace.append((i - 1, r2(z)))
    c, f = z.flatten(1).double(), f0.flatten(1).double()
    return {"trace": trace, "final": z,
            "sq_dist_to_f0": float((c - f).pow(2).sum(1).mean()) / float(f.pow(2).sum(1).mean())}


def main(argv=None) -> int:
    from diffrep.config import apply_overrides
    from diffrep.methods.multibeta import MultiBeta
    from diffrep.recipes import get_recipe
    from diffrep.recipes.multibeta import TrainSubset

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--load-dir", required=True, help="a validate_multibeta.py --save-dir folder")
    ap.add_argument("--recipe", default="multibeta/dsprites-cpu", help="the recipe of the --save-dir run (default "
                    "%(default)s; --a.b VALUE overrides as there): its dataset and training subset")
    ap.add_argument("--betas", default="0.5,0.7,0.8,0.9,0.94,0.96,0.98", help="betas of the information table")
    ap.add_argument("--start-betas", default="0.5,0.7,0.9,0.96", help="betas the chains start from")
    ap.add_argument("--head-indices", default="1,2,5,10,20,30,40,45,48,49,50", help="grid indices of the head check")
    ap.add_argument("--num-fit", type=int, default=4096, help="training images the regressions are fitted on")
    ap.add_argument("--num-eval", type=int, default=2048, help="held-out images")
    ap.add_argument("--seed", type=int, default=0, help="seed of the image draws and the noise (default 0)")
    ap.add_argument("--out", default="", help="also write the report (JSON) here; an existing file is refused "
                    "unless --overwrite")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out record")
    args, rest = ap.parse_known_args(argv)
    if args.out and Path(args.out).exists() and not args.overwrite:  # before the work: records are committed
        ap.error(f"--out {args.out} exists (an earlier record); choose another --out or add --overwrite")
    try:
        betas = [float(b) for b in args.betas.split(",") if b.strip()]
        starts = [float(b) for b in args.start_betas.split(",") if b.strip()]
        heads_i = [int(i) for i in args.head_indices.split(",") if i.strip()]
    except ValueError:
        ap.error("--betas / --start-betas / --head-indices: numbers separated by commas")
    if args.num_fit < 16 or args.num_eval < 16:
        ap.error("--num-fit and --num-eval must be >= 16")
    torch.manual_seed(args.seed)
    t_start = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from validate_multibeta import _git_commit  # the script that saved the models records its commit the same way

    commit = _git_commit()  # the code this run started with (HEAD may move while it runs)
    where = Path(args.load_dir)
    if not (where / "multibeta" / "config.json").is_file():
        ap.error(f"--load-dir {where}: no multibeta/config.json there (a validate_multibeta.py --save-dir folder)")
    model = MultiBeta.from_pretrained(where / "multibeta").eval()
    if model.phase != 2:
        ap.error(f"{where}/multibeta is in phase {model.phase}, not after phase 2")
    # checked before the work: a beta out of range was a traceback from the encoder, a head index one after the
    # whole information table had been computed
    bmax, n_steps = model.config.vae.beta_max, model.config.vae.num_steps
    for flag, vals in (("--betas", betas), ("--start-betas", starts)):
        if any(not 0 <= b <= bmax for b in vals):
            ap.error(f"{flag} must be betas in [0, B={bmax:g}], got {vals}")
    if any(not 1 <= i <= n_steps for i in heads_i):
        ap.error(f"--head-indices must be grid indices in 1..N={n_steps}, got {heads_i}")
    try:
        recipe = get_recipe(args.recipe)
        cfg = apply_overrides(recipe.make_config(), list(rest))
    except ValueError as exc:  # an unknown recipe or config override: a message, not a traceback
        ap.error(str(exc))
    dataset = recipe.build(cfg)[1]
    full = dataset.base if isinstance(dataset, TrainSubset) else dataset
    train_idx = list(dataset.indices) if isinstance(dataset, TrainSubset) else list(range(len(dataset)))
    g = torch.Generator().manual_seed(args.seed + 2000)
    fit_idx = [train_idx[j] for j in torch.randperm(len(train_idx), generator=g)[: args.num_fit].tolist()]
    held = set(train_idx)
    pool = [i for i in torch.randperm(len(full), generator=g)[: args.num_eval + len(held)].tolist() if i not in held]
    eval_idx = pool[: args.num_eval]

    def images(idx):
        return torch.stack([full[i][0] for i in idx]).float()

    x_fit, x_ev = images(fit_idx), images(eval_idx)
    vae, den = model.vae, model.denoiser
    tau = den.config.tau
    bstar = float(model.config.representation_beta)
    gen = torch.Generator().manual_seed(args.seed)
    f0_fit, f0_ev = _encode(vae, x_fit, 0.0), _encode(vae, x_ev, 0.0)
    f0_sq = float(f0_ev.flatten(1).double().pow(2).sum(1).mean())
    print(f"loaded {where} (beta* = {bstar:g}); {len(fit_idx)} fit / {len(eval_idx)} held-out images", file=sys.stderr,
          flush=True)

    # -- 1. information about f(x, 0) carried by the code at beta -----------------------------------
    info = []
    for b in sorted(set(betas + starts + [bstar])):
        fb_fit, fb_ev = _encode(vae, x_fit, b), _encode(vae, x_ev, b)
        sig = vae.sigma_latent(b).detach().to(fb_fit.dtype)
        zb_fit = fb_fit + sig * torch.randn(fb_fit.shape, generator=gen)
        zb_ev = fb_ev + sig * torch.randn(fb_ev.shape, generator=gen)
        s2 = vae.sigma(b).double().reshape(-1).pow(2)
        rate = float(0.5 * (fb_ev.double().pow(2).flatten(1).sum(1).mean()
                            + fb_ev[0].numel() * float((s2 - s2.log() - 1).mean())))
        noisy = ridge_r2(zb_fit, f0_fit, zb_ev, f0_ev)
        info.append({"beta": b, "sigma_rms": float(s2.mean().sqrt()), "rate_nats": rate,
                     "ridge_r2_mean_code": ridge_r2(fb_fit, f0_fit, fb_ev, f0_ev)["r2"],
                     "ridge_r2_noisy_code": noisy["r2"],
                     "knn_r2_mean_code": knn_r2(fb_fit, f0_fit, fb_ev, f0_ev)["r2"],
                     "knn_r2_noisy_code": knn_r2(zb_fit, f0_fit, zb_ev, f0_ev)["r2"],
                     "ideal_sq_dist_to_f0": 2 * noisy["mse"] / f0_sq})
        print(json.dumps({k: round(v, 4) for k, v in info[-1].items()}), file=sys.stderr, flush=True)

    # -- 2. the heads against the exact Eq. 19 targets ---------------------------------------------
    heads = []
    for i in heads_i:
        t, tp = i * tau, (i - 1) * tau
        ft_fit, fp_fit = _encode(vae, x_fit, t), _encode(vae, x_fit, tp)
        ft_ev, fp_ev = _encode(vae, x_ev, t), _encode(vae, x_ev, tp)
        fit = head_errors(den, ft_fit, fp_fit, i, torch.randn(ft_fit.shape, generator=gen))
        ev = head_errors(den, ft_ev, fp_ev, i, torch.randn(ft_ev.shape, generator=gen))
        r_eps = ridge_r2(fit["z_t"], fit["eps"], ev["z_t"], ev["eps"])
        r_del = ridge_r2(fit["z_t"], fit["delta"], ev["z_t"], ev["delta"])
        e_sq = float(ev["eps"].flatten(1).double().pow(2).sum(1).mean())
        heads.append({"i": i, "t": t, "sigma_t": float(den.sigma_table[i].double().pow(2).mean().sqrt()),
                      "eps_rel_err": ev["eps_rel"], "delta_rel_err": ev["delta_rel"], "delta_mean_sq": ev["delta_sq"],
                      "ridge_eps_rel_err": r_eps["mse"] / e_sq, "ridge_delta_rel_err": r_del["mse"] / ev["delta_sq"],
                      "delta_rel_err_train_images": fit["delta_rel"], "eps_rel_err_train_images": fit["eps_rel"]})
        print(json.dumps({k: round(v, 4) for k, v in heads[-1].items()}), file=sys.stderr, flush=True)

    # -- 3. chains ---------------------------------------------------------------------------------
    gate_cfg = den.config
    samplers = {"alg2": dict(sampler="alg2"), "ancestral": dict(sampler="ancestral"),
                "deterministic_eps_hat": dict(sampler="deterministic", deterministic_noise="eps_hat"),
                "deterministic_zero": dict(sampler="deterministic", deterministic_noise="zero")}
    chains = []
    try:
        for b in starts:
            i_from = den.grid_index(b)
            fb = _encode(vae, x_ev, b)
            sig = vae.sigma_latent(b).detach().to(fb.dtype)
            z_noisy = fb + sig * torch.randn(fb.shape, generator=torch.Generator().manual_seed(args.seed + 7))
            for start, z0 in (("noisy", z_noisy), ("mean", fb)):
                for name, kw in samplers.items():
                    for sign in (False, True):
                        den.config = dataclasses.replace(gate_cfg, printed_sign=sign, **kw)
                        out = chain_trace(den, z0.clone(), i_from, f0_ev,
                                          generator=torch.Generator().manual_seed(args.seed + 11))
                        chains.append({"start_beta": b, "start": start, "sampler": name, "printed_sign": sign,
                                       "trace_r2": out["trace"], "final_r2": out["trace"][-1][1],
                                       "start_r2": out["trace"][0][1], "sq_dist_to_f0": out["sq_dist_to_f0"]})
                        print(json.dumps({k: v for k, v in chains[-1].items() if k != "trace_r2"}), file=sys.stderr,
                              flush=True)
    finally:
        den.config = gate_cfg

    record = {"script": "scripts/diagnose_multibeta_phase2.py", "argv": sys.argv[1:] if argv is None else list(argv),
              "git_commit": commit, "load_dir": str(where), "recipe": args.recipe, "beta_star": bstar,
              "num_fit": len(fit_idx), "num_eval": len(eval_idx), "f0_mean_sq_norm": f0_sq,
              "information": info, "heads": heads, "chains": chains, "not_a_gate": "a diagnosis report",
              "seconds": time.perf_counter() - t_start, "torch_threads": torch.get_num_threads(),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "load_avg_at_end": [round(v, 2) for v in os.getloadavg()]},
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
