"""Fused MMD^2 (forward + gradients w.r.t. x and y) vs the eager cdist twin, side by side.

The eager twin builds the three Gram matrices (N x N, M x M, N x M) and differentiates them
with autograd; the fused kernel keeps per row a kernel sum and a gradient row, O((N + M) d)
memory. Reports min-of-N times, the speed-up, and the peak extra memory of each (CPU: measured
with the torch profiler's allocator counters).

    python benches/bench_mmd.py                    # CPU, N = M in {1024, 4096}, d = 32
    python benches/bench_mmd.py --device cuda

Targets (issue 5): N = M = 4096, d = 32: >= 3x the eager twin on CPU with O(N d) memory;
>= 5x on a GPU.
"""

from __future__ import annotations

import argparse

import torch

from harness import banner, best_time, parse_device, peak_extra_bytes
from diffrep.ops import explain, mmd
from diffrep.ops.reference import mmd as ref


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    device = parse_device(ap, args.device)
    print(banner(device))
    print(f"{'kernel':6s} {'estimator':9s} {'N=M':>6s} {'d':>3s} {'backend':>8s} {'fused ms':>9s} {'eager ms':>9s} "
          f"{'speedup':>8s} {'fused MB':>9s} {'eager MB':>9s}")
    for n in [int(s) for s in args.sizes.split(",")]:
        for kernel, estimator in (("rbf", "biased"), ("imq", "unbiased")):
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, args.d, generator=g).to(device).requires_grad_()
            y = (torch.randn(n, args.d, generator=g) + 0.3).to(device).requires_grad_()
            scales = [args.d**2] if kernel == "rbf" else mmd.wae_imq_scales(args.d)

            def fused():
                torch.autograd.grad(mmd.mmd2(x, y, kernel, scales=scales, estimator=estimator), (x, y))

            def eager():
                torch.autograd.grad(ref.mmd2(x, y, kernel, scales, None, estimator), (x, y))

            backend = explain("mmd.mmd2", x, y, kernel, scales=scales, estimator=estimator).backend
            tf, te = best_time(fused, device, args.repeat), best_time(eager, device, args.repeat)
            mf, me = peak_extra_bytes(fused, device), peak_extra_bytes(eager, device)
            print(f"{kernel:6s} {estimator:9s} {n:6d} {args.d:3d} {backend:>8s} {tf * 1e3:9.2f} {te * 1e3:9.2f} "
                  f"{te / tf:7.1f}x {mf / 2**20:9.2f} {me / 2**20:9.1f}")


if __name__ == "__main__":
    main()
