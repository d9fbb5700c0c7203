"""BFN kernels vs their eager PyTorch twins, measured side by side in one run.

For each op and size it prints the backend, the median time of interleaved rounds (native, eager
twin, copy: the three see the same machine load, which matters on a shared machine), the speed-up
over the eager twin (the nnaisense reference semantics in eager PyTorch, noise from torch.randn as
the reference draws it), and the time of a float32 copy moving the op's bytes as a fraction of the
op's time ("% copy"). The copy floors in and out of cache are printed per thread count. On the CPU
it runs with 1 thread and with all threads; ``--device cuda`` runs on a GPU.

    python benches/bench_bfn.py                      # CPU, sizes 1e5 .. 1.6e7
    python benches/bench_bfn.py --full               # adds 6.4e7 elements
    python benches/bench_bfn.py --device cuda --full

Targets (issue 2, issue 24): CPU: flow and update >= 3x the eager twin at >= 1e5 elements, no native op
slower than its twin there, the discretised loss at K = 256 >= 5x with O(B x D) memory (its peak below one
B x D x K float32 tensor, what the eager twin allocates several of); H100/H200: elementwise ops >= 70% of copy
bandwidth at >= 16M elements, discretised loss >= 10x the eager twin. Each table ends with one ``# target``
line per target: met, missed, or not measured (no row of the run at the target's size).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from harness import (banner, copy_floors, copy_fn, interleaved_times, load_average, parse_device, peak_extra_bytes,
                     positive_int, shown, target_line)
from diffrep.ops import bfn, explain
from diffrep.ops.reference import bfn as ref

SIGMA1 = 1e-3
BETA1 = 9.0
#: the ops issue 2 calls flows and updates (>= 3x their twins on the CPU)
FLOWS_AND_UPDATES = ("continuous_flow", "continuous_update", "continuous_update_inverse", "continuous_sender_update",
                     "discrete_flow", "discrete_update", "discrete_update log")
TRAINING_SIZE = 100_000  # issue 24: "at training sizes (>= 1e5 elements)"
GPU_LARGE = 16_000_000


def worst(rows, key, bound):
    """The row with the lowest ``key``, described as '<value> (<op>, K=<K>, <n> elements)', the value printed on the
    same side of the target's ``bound`` as it is."""
    r = min(rows, key=lambda r: r[key])
    value = shown(r[key], lambda x: x >= bound)
    return r, f"lowest {value}{'x' if key == 'speedup' else '%'} ({r['op']}, K={r['K']}, {r['n']:.1e} elements)"


def targets(rows, device) -> list[str]:
    """The ``# target`` lines of one table (``rows``: op, K, n, speedup, copy %, peak native bytes)."""
    out = []
    loss = [r for r in rows if r["op"].startswith("discretised_cts_loss")]
    if device.type == "cpu":
        big = [r for r in rows if r["n"] >= TRAINING_SIZE]
        fu = [r for r in big if r["op"] in FLOWS_AND_UPDATES]
        r, said = worst(fu, "speedup", 3) if fu else (None, "no flow or update at >= 1e5 elements in this run")
        out.append(target_line("(CPU) flows and updates >= 3x the eager twin at >= 1e5 elements", said,
                               None if r is None else r["speedup"] >= 3))
        r, said = worst(big, "speedup", 1) if big else (None, "no op at >= 1e5 elements in this run")
        out.append(target_line("(CPU) no native op slower than its eager twin at >= 1e5 elements", said,
                               None if r is None else r["speedup"] >= 1))
        l256 = [r for r in loss if r["K"] == 256]
        r, said = worst(l256, "speedup", 5) if l256 else (None, "no discretised loss at K = 256 in this run")
        out.append(target_line("(CPU) discretised loss at K = 256 >= 5x the eager twin", said,
                               None if r is None else r["speedup"] >= 5))
        if l256:
            r = max(l256, key=lambda r: r["peak"] / (4 * r["n"] * 256))
            bound = 4 * r["n"] * 256 / 1e6
            out.append(target_line("(CPU) discretised loss at K = 256 in O(B x D) memory",
                                   f"peak {shown(r['peak'] / 1e6, lambda x: x < bound)} MB vs {bound:.1f} MB for one "
                                   f"B x D x K float32 tensor ({r['n']:.1e} elements)", r["peak"] < 4 * r["n"] * 256))
        else:
            out.append(target_line("(CPU) discretised loss at K = 256 in O(B x D) memory",
                                   "no discretised loss at K = 256 in this run", None))
    else:
        big = [r for r in rows if r["n"] >= GPU_LARGE and "loss" not in r["op"] and r["K"] in ("-", 2)]
        r, said = worst(big, "copy", 70) if big else (None, "no elementwise op at >= 16M elements in this run")
        out.append(target_line("(GPU) elementwise ops >= 70% of copy bandwidth at >= 16M elements", said,
                               None if r is None else r["copy"] >= 70))
        lb = [r for r in loss if r["n"] >= 1_000_000]
        r, said = worst(lb, "speedup", 10) if lb else (None, "no discretised loss at >= 1e6 elements in this run")
        out.append(target_line("(GPU) discretised loss >= 10x the eager twin", said,
                               None if r is None else r["speedup"] >= 10))
    return out


def cases(n, device, ks=(2, 16, 256)):
    """(name, K, native fn, eager twin fn, bytes moved by the fused op) for n elements."""
    B = max(1, n // 4096)
    D = n // B
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(B, D, generator=g) * 2 - 1).to(device)
    t = torch.rand(B, generator=g).to(device)
    y = torch.randn(B, D, generator=g).to(device)
    alpha = torch.rand(B, generator=g).to(device) + 0.1
    rho = torch.rand(B, generator=g).to(device) + 1
    f4 = 4  # float32 bytes
    out = []

    def randn_like(v):
        return torch.randn(v.shape, device=device)

    out.append(("continuous_flow", "-", lambda: bfn.continuous_flow(x, t, SIGMA1),
                lambda: ref.continuous_flow(x, t, SIGMA1, randn_like(x)), 2 * f4 * n))
    out.append(("continuous_update", "-", lambda: bfn.continuous_update(x, rho, y, alpha),
                lambda: ref.continuous_update(x, rho, y, alpha), 3 * f4 * n))
    out.append(("continuous_update_inverse", "-", lambda: bfn.continuous_update_inverse(x, rho + alpha, y, alpha),
                lambda: ref.continuous_update_inverse(x, rho + alpha, y, alpha), 3 * f4 * n))
    out.append(("continuous_sender_update", "-", lambda: bfn.continuous_sender_update(x, rho, y, alpha),
                lambda: ref.continuous_update(x, rho, ref.continuous_sender_sample(y, alpha, randn_like(y)), alpha),
                4 * f4 * n))
    for K in ks:
        if n * K > 2**27:  # keep the K-wide tensors within memory (<= 512 MB each)
            continue
        Bk, Dk = max(1, (n // K) // 256), 256
        nk = Bk * Dk
        xi = torch.randint(0, K, (Bk, Dk), generator=g).to(device)
        tk = torch.rand(Bk, generator=g).to(device)
        theta = torch.softmax(torch.randn(Bk, Dk, K, generator=g), -1).to(device)
        yk = torch.randn(Bk, Dk, K, generator=g).to(device)
        out.append(("discrete_flow", K, lambda xi=xi, tk=tk, K=K: bfn.discrete_flow(xi, tk, BETA1, K),
                    lambda xi=xi, tk=tk, K=K: ref.discrete_flow(xi, tk, BETA1, K, torch.randn(*xi.shape, K,
                                                                                              device=device)),
                    (8 + K * f4) * nk))
        out.append(("discrete_update", K, lambda th=theta, yk=yk: bfn.discrete_update(th, yk),
                    lambda th=theta, yk=yk: ref.discrete_update(th, yk), 3 * K * f4 * nk))
        lth = theta.log()  # log space: what the samplers run (diffrep.bfn.flows)
        out.append(("discrete_update log", K, lambda th=lth, yk=yk: bfn.discrete_update(th, yk, log=True),
                    lambda th=lth, yk=yk: ref.discrete_update(th, yk, log=True), 3 * K * f4 * nk))
        mu_x = (torch.randn(B, D, generator=g) * 0.5).to(device)
        sig = (torch.rand(B, D, generator=g) * 0.3 + 0.01).to(device)
        if n * K <= 2**26:
            out.append(("discretised_probs", K, lambda m=mu_x, s=sig, K=K: bfn.discretised_probs(m, s, K),
                        lambda m=mu_x, s=sig, K=K: ref.discretised_probs(m, s, K), (2 * f4 + K * f4) * n))
        eps = torch.randn(B, D, generator=g).to(device).requires_grad_()
        ls = (torch.randn(B, D, generator=g) - 2).to(device).requires_grad_()
        xq = ref.quantize(x, K)
        mu = bfn.continuous_flow(xq, t, SIGMA1)

        def fused(eps=eps, ls=ls, xq=xq, mu=mu, K=K):
            bfn.discretised_continuous_time_loss(eps, ls, mu, t, xq, SIGMA1, K).mean().backward()

        def eager(eps=eps, ls=ls, xq=xq, mu=mu, K=K):
            ref.discretised_continuous_time_loss(eps, ls, mu, t, xq, SIGMA1, K).mean().backward()

        if n * K <= 2**26:
            out.append(("discretised_cts_loss fwd+bwd", K, fused, eager, 7 * f4 * n))
        logits = torch.randn(Bk, Dk, K, generator=g).to(device).requires_grad_()
        out.append(("discrete_cts_loss fwd+bwd", K,
                    lambda lg=logits, xi=xi, tk=tk: bfn.discrete_continuous_time_loss(lg, xi, tk, BETA1).mean()
                    .backward(),
                    lambda lg=logits, xi=xi, tk=tk: ref.discrete_continuous_time_loss(lg, xi, tk, BETA1).mean()
                    .backward(),
                    (3 * K * f4 + 8) * nk))
    return out


def run(device, sizes, repeat, threads_list, only=None, ks=(2, 16, 256), warm=True):
    print(banner(device, f"load average at start {load_average()}"))
    print("# " + ("warm: each timed call follows an untimed call of the same function (its inputs in cache)" if warm
                  else "cold order: native right after the previous round's copy and eager twin (--no-warm)"))
    print("# times: median of up to --repeat interleaved rounds (native, eager twin, copy of the same bytes);")
    print("#        speed-up = eager / native (medians); (best) = the same from each one's fastest round, the")
    print("#        estimate least disturbed by other jobs; % copy = median time of a float32 copy moving the")
    print("#        op's bytes / median native time")
    for threads in threads_list:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        in_cache, out_cache, in_bytes, out_bytes = copy_floors(device)
        print(f"\n## {device.type}, threads={threads if device.type == 'cpu' else '-'}; copy floor (read+write, "
              f"median of 15 interleaved rounds): {in_cache / 1e9:.1f} GB/s in cache ({in_bytes >> 10} KiB moved, "
              f"warm: mean of 8 back-to-back copies), {out_cache / 1e9:.1f} GB/s out of cache ({out_bytes >> 20} MiB "
              f"moved); load {load_average()}")
        print(f"{'op':30s} {'K':>4s} {'elements':>10s} {'backend':>8s} {'native ms':>10s} {'eager ms':>10s} "
              f"{'speed-up':>9s} {'(best)':>8s} {'GB/s':>7s} {'% copy':>7s} {'peak native':>13s} {'peak eager':>12s}")
        rows = []
        for n in sizes:
            for name, K, native, eager, nbytes in cases(n, device, ks):
                if only and not any(o in name for o in only.split(",")):
                    continue
                runs = interleaved_times([native, eager, copy_fn(nbytes, device)], device, repeat, warm=warm)
                t_native, t_eager, t_copy = (statistics.median(r) for r in runs)
                best = min(runs[1]) / min(runs[0])
                mem, peak = "", None
                if "loss" in name:
                    peak = peak_extra_bytes(native, device)
                    mem = f"{peak / 1e6:11.1f}MB {peak_extra_bytes(eager, device) / 1e6:10.1f}MB"
                rows.append({"op": name, "K": K, "n": n, "speedup": t_eager / t_native,
                             "copy": round(100 * t_copy / t_native), "peak": peak})
                bw = nbytes / t_native
                print(f"{name:30s} {K!s:>4s} {n:10.1e} {device.type:>8s} {t_native * 1e3:10.3f} {t_eager * 1e3:10.3f} "
                      f"{t_eager / t_native:8.1f}x {best:7.1f}x {bw / 1e9:7.1f} {100 * t_copy / t_native:6.0f}% {mem}", flush=True)
        for line in targets(rows, device):
            print(line)
        print(f"# load at the end of threads={threads}: {load_average()}")


def main():
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--full", action="store_true", help="include 6.4e7 elements")
    p.add_argument("--sizes", type=positive_int, nargs="*", help="element counts (overrides the defaults; 1e6 reads "
                   "as 1000000)")
    p.add_argument("--repeat", type=positive_int, default=15, help="interleaved rounds (at least 3 are run)")
    p.add_argument("--only", help="run only the ops whose name contains this text (comma-separated: any of them)")
    p.add_argument("--K", type=positive_int, nargs="*", default=[2, 16, 256],
                   help="class counts of the K-wide ops (>= 2)")
    p.add_argument("--threads", type=positive_int, nargs="*", help="thread counts (CPU; default 1 and all)")
    p.add_argument("--no-warm", action="store_true",
                   help="time each call right after the other functions of the round (order-biased where the "
                        "working set fits in cache: harness.interleaved_times)")
    args = p.parse_args()
    if any(k < 2 for k in args.K):
        p.error(f"--K: class counts must be >= 2, got {args.K}")
    if args.sizes is not None and not args.sizes or args.K is not None and not args.K:
        p.error("--sizes and --K need at least one value")
    device = parse_device(p, args.device, native=True)
    sizes = list(args.sizes) if args.sizes else [100_000, 1_000_000, 16_000_000] + (
        [64_000_000] if args.full else [])
    if args.only:
        ops = sorted({c[0] for c in cases(4096, torch.device("cpu"), tuple(args.K))})
        if not any(o in name for o in args.only.split(",") for name in ops):
            p.error(f"--only {args.only!r}: no op matches; the ops: {', '.join(ops)}")
    probe = torch.zeros(2, 2, device=device)
    choice = explain("bfn.continuous_flow", probe, torch.zeros(2, device=device), SIGMA1)
    if choice.backend == "reference":
        raise SystemExit(f"native kernels unusable here:\n{choice}")
    threads = [1, torch.get_num_threads()] if device.type == "cpu" and torch.get_num_threads() > 1 else [1]
    if args.threads:
        threads = args.threads
    run(device, sizes, args.repeat, threads if device.type == "cpu" else [0], args.only, tuple(args.K),
        warm=not args.no_warm)


if __name__ == "__main__":
    main()
