#!/usr/bin/env python3
"""Validation of the VAE-family objectives on procedural dSprites (docs/methods/vae.md#validation; slow).

Trains the CPU recipes (``vae/beta-vae-cpu``, ``vae/beta-tcvae-cpu``: dSprites max-pooled to 32 x 32, the
32 x 32 dlib networks, batch 64, Adam) at several weights, with the same seed and data order, on a pool of
``--pool`` training images rendered once (rendering costs more than a step), and measures
on a fixed held-out set of ``--eval`` images:

- beta-VAE: the KL(q(z|x) || p(z)) (closed form, averaged over the set), which must fall as beta rises;
- beta-TCVAE: the total correlation of the aggregate posterior of the set, q(z) = (1/M) sum_j q(z|x_j),
  estimated at one z_i ~ q(z|x_i) per image: mean_i [log q(z_i) - sum_k log q(z_ik)] with the exact
  mixture densities over the M images (``total_correlation(..., estimator="dlib") + (d - 1) log M``),
  which must fall as beta rises; and, as a second reading, the Gaussian TC of the z samples,
  0.5 (sum_k log Sigma_kk - log det Sigma).

Prints a table and writes JSON (``--out``, default benches/results/validate_vae_cpu_<steps>steps.json),
``"passed"`` true when both sequences fall strictly. It is slow: run it on an otherwise idle machine, one thread.

    python3 scripts/validate_vae.py --steps 1500 --betas-vae 1 4 16 --betas-tc 1 4 10
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from diffrep.methods.vae import METHOD_CLASSES, total_correlation  # noqa: E402
from diffrep.recipes.vae import build_dataset, cpu_config  # noqa: E402


def eval_set(ds, n: int, seed: int) -> torch.Tensor:
    rng = np.random.RandomState(seed)
    obs = ds.sample_observations_from_factors(ds.sample_factors(n, rng), rng)  # (n, H, W, C) in [0, 1]
    return torch.from_numpy(obs).permute(0, 3, 1, 2).contiguous() * 2 - 1


def training_pool(ds, n: int, seed: int) -> torch.Tensor:
    """n training images rendered once (rendering a batch costs more than a 32 x 32 step on a CPU)."""
    idx = np.random.RandomState(seed).randint(0, len(ds), size=n)
    return torch.cat([torch.stack([it[0] for it in ds.__getitems__(idx[i:i + 1024])]) for i in range(0, n, 1024)])


def train(method: str, field: str, value: float, steps: int, seed: int, lr: float | None, pool: torch.Tensor):
    cfg = cpu_config(method)
    setattr(cfg.model, field, value)
    cfg.model.validate()
    torch.manual_seed(seed)
    model = METHOD_CLASSES[method](cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=lr or cfg.train.lr)
    rng = np.random.RandomState(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        x = pool[torch.from_numpy(rng.randint(0, len(pool), size=cfg.train.batch_size))]
        out = model.loss(x, step=step, generator=gen)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
    return model, time.time() - t0, {k: float(v.detach()) if torch.is_tensor(v) else v for k, v in out.items()}


@torch.no_grad()
def measure(model, x: torch.Tensor, seed: int) -> dict:
    model.eval()
    mu, logvar = model.posterior(x)
    g = torch.Generator().manual_seed(seed)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
    m, d = z.shape
    kl = float((0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).sum(1).mean())
    tc = float(total_correlation(z.double(), mu.double(), logvar.double(), estimator="dlib")) + (d - 1) * math.log(m)
    cov = torch.cov(z.double().T)
    tc_gauss = float(0.5 * (torch.log(torch.diagonal(cov)).sum() - torch.logdet(cov)))
    x01 = (x + 1) / 2
    recon = float(torch.nn.functional.binary_cross_entropy_with_logits(model.decode_logits(mu), x01,
                                                                       reduction="sum") / m)
    active = int((logvar.exp().mean(0) < 0.8).sum())  # latents whose posterior is narrower than the prior
    return {"kl": kl, "tc_aggregate": tc, "tc_gaussian": tc_gauss, "recon_at_mean": recon, "active_latents": active}


def main(argv=None):
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--betas-vae", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    ap.add_argument("--betas-tc", type=float, nargs="+", default=[1.0, 4.0, 10.0])
    ap.add_argument("--eval", type=int, default=2000)
    ap.add_argument("--pool", type=int, default=20000, help="training images rendered once and sampled from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=None, help="default: the CPU recipe's")
    ap.add_argument("--out", default=None, help="the JSON record (default benches/results/validate_vae_cpu_<steps>"
                    "steps.json); an existing file is refused unless --overwrite")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out record")
    args = ap.parse_args(argv)
    out = Path(args.out or ROOT / "benches" / "results" / f"validate_vae_cpu_{args.steps}steps.json")
    if out.exists() and not args.overwrite:  # before training: the default named the record the docs cite
        ap.error(f"--out {out} exists (an earlier record); choose another --out or add --overwrite")
    torch.set_num_threads(1)
    rows = []
    ds = build_dataset(cpu_config("vae"))
    pool = training_pool(ds, args.pool, args.seed)
    held_out = eval_set(ds, args.eval, 1234)
    for method, betas in (("beta-vae", args.betas_vae), ("beta-tcvae", args.betas_tc)):
        for beta in betas:
            model, secs, last = train(method, "beta", beta, args.steps, args.seed, args.lr, pool)
            res = measure(model, held_out, 99)
            row = {"method": method, "beta": beta, "steps": args.steps, "seconds": round(secs, 1),
                   "last_batch": last, **res}
            rows.append(row)
            print(f"{method:<11} beta={beta:<5g} KL={res['kl']:8.3f} TC_agg={res['tc_aggregate']:8.3f} "
                  f"TC_gauss={res['tc_gaussian']:7.3f} recon={res['recon_at_mean']:8.2f} "
                  f"active={res['active_latents']} ({secs:.0f} s)", flush=True)

    def falls(method, key):
        vals = [r[key] for r in rows if r["method"] == method]
        return all(a > b for a, b in zip(vals, vals[1:])), vals

    kl_ok, kls = falls("beta-vae", "kl")
    tc_ok, tcs = falls("beta-tcvae", "tc_aggregate")
    summary = {"kl_falls_with_beta": kl_ok, "kl": kls, "tc_falls_with_beta": tc_ok, "tc_aggregate": tcs,
               "passed": bool(kl_ok and tc_ok)}
    print(json.dumps(summary))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "torch": torch.__version__, "rows": rows, **summary}, indent=1))
    print(f"wrote {out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
