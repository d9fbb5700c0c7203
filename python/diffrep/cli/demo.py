"""``diffrep demo``: a short tour of the BFN kernels on the embedded procedural data.

It runs the Bayesian-flow machinery of Graves et al. with an oracle in place of the network (the
output distribution is the data itself), which isolates what the kernels compute:

1. continuous data (dSprites images in [-1, 1]): n sender/update steps from the prior reach
   precision sigma1^-2 exactly and a mean close to the data; undoing them with the exact inverse
   update (ParamReL's reverse-sampling) returns to the prior;
2. discrete data (binarised digits, K = 2): the same in log-probability space;
3. one-shot flow samples at t = 0.5 match the flow distribution's mean;
4. native vs reference timing of the fused flow.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch

from ._common import torch_seed


def register(sub) -> None:
    p = sub.add_parser("demo", help="sample with the BFN kernels and round-trip the Bayesian update")
    p.add_argument("--steps", type=int, default=50, help="number of sampling steps n")
    p.add_argument("--batch", type=int, default=16, help="images per dataset")
    p.add_argument("--seed", type=torch_seed, default=0, help="seed of the images drawn and the sender samples "
                   "(default 0)")
    p.set_defaults(func=run)


def _continuous(x: torch.Tensor, n: int, sigma1: float, gen: torch.Generator) -> dict:
    from ..bfn.schedules import continuous_alpha
    from ..ops import bfn

    mu, rho, steps = torch.zeros_like(x), 1.0, []
    for i in range(1, n + 1):
        alpha = float(continuous_alpha(i, n, sigma1))
        mu, rho, y = bfn.continuous_sender_update(mu, rho, x, alpha, gen, return_y=True)
        steps.append((y, alpha))
    final_rho, final_mse = rho, (mu - x).square().mean().item()
    for y, alpha in reversed(steps):
        mu, rho = bfn.continuous_update_inverse(mu, rho, y, alpha)
    return {"final_precision": final_rho, "expected_precision": sigma1**-2, "mse_to_data": final_mse,
            "reverse_max_abs_mu": mu.abs().max().item(), "reverse_precision": rho}


def _discrete(x: torch.Tensor, n: int, beta1: float, gen: torch.Generator) -> dict:
    from ..bfn.schedules import discrete_alpha
    from ..ops import bfn

    K = 2
    log_theta = torch.full((*x.shape, K), -math.log(K), dtype=torch.float64)
    steps = []
    for i in range(1, n + 1):
        alpha = discrete_alpha(i, n, beta1)
        log_theta, y = bfn.discrete_sender_update(log_theta, x, alpha, gen, log=True, return_y=True)
        steps.append(y)
    accuracy = (log_theta.argmax(-1) == x).double().mean().item()
    for y in reversed(steps):
        log_theta = bfn.discrete_update_inverse(log_theta, y, log=True)
    return {"argmax_accuracy": accuracy, "reverse_max_abs_dev_from_uniform": (log_theta.exp() - 1 / K).abs().max().item()}


def run(args) -> int:
    from .. import data, info
    from ..bfn.schedules import gamma as flow_gamma
    from ..ops import bfn, explain, use_backend

    for flag, value in (("--steps", args.steps), ("--batch", args.batch)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    report = info()
    print(f"diffrep {report['diffrep']} | torch {report['torch']} | native CPU: "
          f"{'yes' if report['modules']['_cpu']['usable'] else 'no'} | CUDA: "
          f"{'yes' if report['modules']['_cuda']['usable'] else 'no'}")

    sprites = data.load("dsprites", source="procedural")
    idx = torch.randint(0, len(sprites), (args.batch,), generator=gen).tolist()
    x = torch.stack([sprites[i][0] for i in idx]).double()  # (B, 1, 64, 64) in [-1, 1]
    sigma1 = 1e-3
    print(f"\n[1] continuous BFN on {args.batch} dSprites images {tuple(x.shape[1:])}, sigma1={sigma1}, "
          f"n={args.steps} ({explain('bfn.continuous_sender_update', x, 1.0, x, 1.0).backend} backend)")
    c = _continuous(x, args.steps, sigma1, gen)
    print(f"    precision after n updates : {c['final_precision']:.6g}  (sigma1^-2 = {c['expected_precision']:.6g})")
    print(f"    MSE(mu, x) after n updates : {c['mse_to_data']:.3e}")
    print(f"    after n inverse updates    : precision {c['reverse_precision']:.6g}, max|mu| "
          f"{c['reverse_max_abs_mu']:.2e}  (prior: 1, 0)")

    digits = data.load("digits", source="procedural")
    xd = torch.stack([(digits[i][0] > 0).long() for i in range(args.batch)])  # (B, 1, 32, 32) classes
    beta1 = 9.0
    print(f"\n[2] discrete BFN on {args.batch} binarised digits, K=2, beta(1)={beta1}, n={args.steps}")
    d = _discrete(xd, args.steps, beta1, gen)
    print(f"    argmax(theta) == x         : {100 * d['argmax_accuracy']:.2f}% of pixels")
    print(f"    after n inverse updates    : max|theta - 1/K| {d['reverse_max_abs_dev_from_uniform']:.2e}")

    t = torch.full((x.shape[0],), 0.5, dtype=torch.float64)
    mus = torch.stack([bfn.continuous_flow(x, t, sigma1, gen) for _ in range(64)])
    gamma = float(flow_gamma(0.5, sigma1))
    print(f"\n[3] flow samples at t=0.5: gamma={gamma:.6f}; max|E[mu] - gamma x| over 64 draws = "
          f"{(mus.mean(0) - gamma * x).abs().max().item():.3f}  (sd of the mean "
          f"{math.sqrt(gamma * (1 - gamma) / 64):.3f})")

    big = torch.rand(64, 256 * 256) * 2 - 1
    tb = torch.rand(64)
    timings = {}
    for backend in ("native", "reference"):
        ctx = use_backend("reference") if backend == "reference" else contextlib.nullcontext()
        with ctx:
            bfn.continuous_flow(big, tb, sigma1)
            t0 = time.perf_counter()
            for _ in range(3):
                bfn.continuous_flow(big, tb, sigma1)
            timings[backend] = (time.perf_counter() - t0) / 3
    print(f"\n[4] continuous_flow on {big.numel():.1e} floats: native {timings['native'] * 1e3:.1f} ms, "
          f"reference {timings['reference'] * 1e3:.1f} ms ({explain('bfn.continuous_flow', big, tb, sigma1).backend}"
          f" chosen here; see benches/bench_bfn.py for the full comparison)")
    ok = (abs(c["final_precision"] / c["expected_precision"] - 1) < 1e-9 and c["reverse_max_abs_mu"] < 1e-6
          and d["reverse_max_abs_dev_from_uniform"] < 1e-9)
    print(f"\nround trips {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1

