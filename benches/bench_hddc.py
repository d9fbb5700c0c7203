"""Batched HDDC-EM (fit with split/filter) vs scikit-learn GaussianMixture looped over units.

    python benches/bench_hddc.py --U 20 --n 100000 --models AkjBkQkDk --sklearn-units 2   # issue 5
    python benches/bench_hddc.py --U 4 --n 20000                                         # quick

Data: U units of a planted mixture of 12 Gaussians (centres N(0, 16 I), unit noise), d = 32.
Every run uses tol = 0 (no early stop), so iteration counts are fixed. Rows:

* ``fit+split/filter``: ``hddc.fit(x, K, Kmax, max_iter=iters)``: EM at K (iters), split passes
  (each candidate's members refitted as K = 2 for iters, trials scored by BIC), filter, final EM
  at the K found (iters).
* ``plain EM``: ``hddc.fit(x, K, K, max_iter=iters, split=False)``: EM at K for iters.
* ``sklearn plain``: GaussianMixture(K, full, max_iter=iters) per unit: the same K and iterations
  as ``plain EM`` (sklearn fits the full-covariance model; the HDDC model is AkjBkQkDk).
* ``sklearn schedule``: the work the diffrep fit does, in sklearn, per unit: GaussianMixture(K)
  for iters; for each split pass diffrep ran, a GaussianMixture(2) for iters on the members
  (MAP label) of every cluster with >= 20 members (on this data every cluster is a candidate:
  its density exceeds psi); then GaussianMixture(K found) for iters on all points. It leaves out
  diffrep's trial scoring and filter E-steps (cheap next to the EM).

Targets (issue 5): U = 20, n = 100k, d = 32, K = 8 -> <= 32, 30 iterations + split/filter:
<= 60 s on 2 CPU cores, <= 1 s on an H100/H200; >= 10x sklearn looped over units (the ``sklearn`` rows end
with sklearn's time over diffrep's: plain over plain EM, schedule over fit+split/filter). The ``# target`` lines
after the rows say met, missed, or not measured (another size).

Protocol: one untimed short fit per model first (the one-time costs: lazy initialisation, on CUDA kernel
loading and library handles), then one timed run of each row, in sequence: a row takes seconds to minutes at
the issue's size, so they are not repeated; each row gives process CPU seconds beside wall seconds, which
another job's load does not inflate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness import banner, parse_device, positive_int, shown, target_line
from diffrep.cluster import hddc
from diffrep.ops import explain


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--U", type=positive_int, default=4)
    ap.add_argument("--n", type=positive_int, default=10000)
    ap.add_argument("--d", type=positive_int, default=32)
    ap.add_argument("--K", type=positive_int, default=8)
    ap.add_argument("--Kmax", type=positive_int, default=32)
    ap.add_argument("--iters", type=positive_int, default=30)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--models", default="AkjBkQkDk,full", help="comma-separated hddc models to time")
    ap.add_argument("--sklearn-units", type=positive_int, default=None,
                    help="time sklearn on this many units only and scale the time by U / sklearn-units")
    args = ap.parse_args()
    if args.Kmax < args.K:
        ap.error(f"--Kmax {args.Kmax} is below --K {args.K}")
    models = args.models.split(",")
    if not models or any(m not in hddc.MODELS for m in models):
        ap.error(f"--models {args.models!r}: each must be one of {', '.join(hddc.MODELS)}")
    if 2 * args.K > args.n:
        ap.error(f"--n {args.n}: too few points per unit for K = {args.K} clusters")
    dev = parse_device(ap, args.device)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(args.U, 12, args.d, generator=g) * 4
    lab = torch.randint(0, 12, (args.U, args.n), generator=g)
    x = (torch.gather(centres, 1, lab[..., None].expand(-1, -1, args.d)) + torch.randn(args.U, args.n, args.d,
                                                                                         generator=g)).to(dev)
    print(banner(dev, f"{explain('hddc.fit', x).backend} backend"))
    print(f"# U={args.U} n={args.n} d={args.d} K={args.K}->{args.Kmax}, {args.iters} EM iterations per phase")
    print("# one untimed short fit per model first, then one timed run of each row (wall s, process CPU s)")
    found = labels = None
    # the first fit pays the one-time costs (lazy initialisation; on CUDA kernel loading, cuSOLVER and cuBLAS
    # handles, the caching allocator's first blocks): a short untimed fit, so the targets time the fit alone
    for model in models:
        hddc.fit(x[:, : min(args.n, 4096)], args.K, args.Kmax, model=model, max_iter=2, tol=0.0)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    passes = []
    split_pass = hddc.split_pass

    def counted(*a, **k):  # how many split passes the fit ran, for the sklearn schedule
        passes[-1] += 1
        return split_pass(*a, **k)

    hddc.split_pass = counted
    fit_s = {}
    for model in models:
        passes.append(0)
        t0, c0 = time.perf_counter(), time.process_time()
        r = hddc.fit(x, args.K, args.Kmax, model=model, max_iter=args.iters, tol=0.0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        hddc.fit(x, args.K, args.K, model=model, max_iter=args.iters, tol=0.0, split=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_em, c_em = time.perf_counter() - t0, time.process_time() - c0
        # process CPU seconds (all threads) alongside wall time: on a shared machine the wall time
        # includes waiting for other jobs, the CPU time does not
        print(f"{model:10s} fit+split/filter {t_fit:8.2f} s ({c_fit:.1f} CPU s)   plain EM ({args.iters} it) "
              f"{t_em:8.2f} s ({c_em:.1f} CPU s)   K found {r.n_components.tolist()}", flush=True)
        fit_s[model] = (t_fit, t_em)
        if found is None:
            found, labels, n_passes = r.n_components.tolist(), r.labels(x).cpu().numpy(), passes[0]
    if not args.skip_sklearn:
        from sklearn.mixture import GaussianMixture

        import warnings
        warnings.simplefilter("ignore")
        nu = min(args.U, args.sklearn_units or args.U)
        gm = lambda k, xs: GaussianMixture(k, covariance_type="full", max_iter=args.iters, tol=0.0,
                                           random_state=0).fit(xs)
        t0, c0 = time.perf_counter(), time.process_time()
        for u in range(nu):
            gm(args.K, x[u].cpu().numpy())
        t_sk, c_sk = ((time.perf_counter() - t0) * args.U / nu, (time.process_time() - c0) * args.U / nu)
        scaled = "" if nu == args.U else f" (measured on {nu} units, scaled by {args.U}/{nu})"
        first = models[0]
        print(f"sklearn plain    GaussianMixture({args.K}, full), {args.iters} it, looped over units: "
              f"{t_sk:8.2f} s ({c_sk:.1f} CPU s){scaled}   x{t_sk / fit_s[first][1]:.1f} {first} plain EM", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        for u in range(nu):
            xu = x[u].cpu().numpy()
            g = gm(args.K, xu)
            for pas in range(n_passes):  # later passes: the clusters of diffrep's K found mixture
                lab = g.predict(xu) if pas == 0 else labels[u]
                for k in np.unique(lab):
                    if (lab == k).sum() >= 20:
                        gm(2, xu[lab == k])
            gm(found[u], xu)
        t_sched, c_sched = ((time.perf_counter() - t0) * args.U / nu, (time.process_time() - c0) * args.U / nu)
        print(f"sklearn schedule (K={args.K} EM, {n_passes} passes of K=2 refits, K found EM; {args.iters} it each): "
              f"{t_sched:8.2f} s ({c_sched:.1f} CPU s){scaled}   x{t_sched / fit_s[first][0]:.1f} {first} fit+split/filter")
    at_size = (args.U, args.n, args.d, args.K, args.Kmax, args.iters) == (20, 100_000, 32, 8, 32, 30)
    size = "" if at_size else f"this run is at U={args.U} n={args.n} d={args.d} K={args.K}->{args.Kmax}, {args.iters} it"
    t = fit_s.get("AkjBkQkDk", (None,))[0]
    if dev.type == "cuda":
        print(target_line("(GPU) AkjBkQkDk fit+split/filter at U = 20, n = 100k, d = 32, K 8 -> 32 within 1 s",
                          size or (f"{shown(t, lambda x: x <= 1.0, 2)} s" if t is not None else "model not run"),
                          None if size or t is None else t <= 1.0))
    else:
        print(target_line("(CPU, 2 cores) AkjBkQkDk fit+split/filter at U = 20, n = 100k, d = 32, K 8 -> 32 within 60 s",
                          size or (f"{shown(t, lambda x: x <= 60.0, 2)} s on {torch.get_num_threads()} thread(s)" if t is not None else "model not run"),
                          None if size or t is None else t <= 60.0))
    if not args.skip_sklearn:
        print(target_line(">= 10x sklearn looped over units (schedule vs fit+split/filter)",
                          size or f"x{shown(t_sched / fit_s[first][0], lambda x: x >= 10)} ({first})",
                          None if size else t_sched / fit_s[first][0] >= 10))

if __name__ == "__main__":
    main()
