"""Batched HDDC-EM (fit with split/filter) vs scikit-learn GaussianMixture looped over units.

Both run the same number of EM iterations without early stopping on each unit (U, n, d) of a
planted mixture; diffrep also runs its split/filter passes (which the sklearn loop does not).

    python benches/bench_hddc.py --U 20 --n 100000          # the issue's target workload
    python benches/bench_hddc.py --U 4 --n 10000            # what fits a shared 2-core machine

Targets (issue 5): U = 20, n = 100k, d = 32, K = 8 -> <= 32, 30 iterations + split/filter:
<= 60 s on 2 CPU cores, <= 1 s on an H100/H200; >= 10x sklearn looped over units.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import diffrep
from diffrep.ops import explain, hddc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--U", type=int, default=4)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--Kmax", type=int, default=32)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--models", default="AkjBkQkDk,full", help="comma-separated hddc models to time")
    ap.add_argument("--sklearn-units", type=int, default=None,
                    help="time sklearn on this many units only and scale the time by U / sklearn-units")
    args = ap.parse_args()
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(args.U, 12, args.d, generator=g) * 4
    lab = torch.randint(0, 12, (args.U, args.n), generator=g)
    x = (torch.gather(centres, 1, lab[..., None].expand(-1, -1, args.d)) + torch.randn(args.U, args.n, args.d,
                                                                                         generator=g)).to(dev)
    print(f"# diffrep {diffrep.__version__}, torch {torch.__version__}, {platform.machine()}, "
          f"threads={torch.get_num_threads()}, device={dev}; {explain('hddc.fit', x).backend} backend")
    print(f"# U={args.U} n={args.n} d={args.d} K={args.K}->{args.Kmax}, {args.iters} EM iterations per phase")
    for model in args.models.split(","):
        t0 = time.perf_counter()
        r = hddc.fit(x, args.K, args.Kmax, model=model, max_iter=args.iters, tol=0.0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        hddc.fit(x, args.K, args.K, model=model, max_iter=args.iters, tol=0.0, split=False)
        t_em = time.perf_counter() - t0
        print(f"{model:10s} fit+split/filter {t_fit:8.2f} s   plain EM ({args.iters} it) {t_em:8.2f} s   "
              f"K found {r.n_components.tolist()}")
    if not args.skip_sklearn:
        from sklearn.mixture import GaussianMixture

        import warnings
        warnings.simplefilter("ignore")
        nu = min(args.U, args.sklearn_units or args.U)
        t0 = time.perf_counter()
        for u in range(nu):
            GaussianMixture(args.K, covariance_type="full", max_iter=args.iters, tol=0.0, random_state=0).fit(
                x[u].cpu().numpy())
        t_sk = time.perf_counter() - t0
        scaled = "" if nu == args.U else f" (measured {t_sk:.2f} s on {nu} units, scaled by {args.U}/{nu})"
        print(f"sklearn GaussianMixture(full) looped over units, {args.iters} it: {t_sk * args.U / nu:8.2f} s"
              f"{scaled}")


if __name__ == "__main__":
    main()
