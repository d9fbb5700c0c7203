"""Fused MMD^2 (forward + gradients w.r.t. x and y) vs the eager cdist twin, side by side.

The eager twin builds the three Gram matrices (N x N, M x M, N x M) and differentiates them
with autograd; the fused kernel keeps per row a kernel sum and a gradient row, O((N + M) d)
memory. Reports the median times of interleaved rounds after one warm-up each (harness.interleaved_times: both
sides under the same machine load), the speed-up eager / fused, and the peak extra memory of each in MiB (CPU:
measured with the torch profiler's allocator counters).

    python benches/bench_mmd.py                    # CPU, N = M in {1024, 4096}, d = 32
    python benches/bench_mmd.py --device cuda

Targets (issue 5, issue 24): N = M = 4096, d = 32: >= 3x the eager twin on CPU with O(N d) memory (the fused
peak below one N x M float32 Gram matrix, of which the twin holds three); >= 5x on a GPU. The ``# target``
lines after the table say met, missed, or not measured (no row at N = M = 4096, d = 32).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from harness import (banner, int_list, interleaved_times, parse_device, peak_extra_bytes, positive_int, shown,
                     target_line)
from diffrep.ops import explain, mmd
from diffrep.ops.reference import mmd as ref


GRAM_BYTES = 4 * 4096 * 4096  # one N x M float32 Gram matrix at the target's N = M = 4096


def targets(at_target, device) -> list[str]:
    """The ``# target`` lines from the rows at N = M = 4096, d = 32: (speed-up, fused peak bytes, 'kernel
    estimator') each."""
    need = 5 if device.type == "cuda" else 3
    what = f"({'GPU' if device.type == 'cuda' else 'CPU'}) >= {need}x the eager twin at N = M = 4096, d = 32"
    if not at_target:
        return [target_line(what, "no row at N = M = 4096, d = 32 in this run", None)]
    low, _, where = min(at_target)
    high = max(at_target, key=lambda r: r[1])
    return [target_line(what, f"lowest {shown(low, lambda x: x >= need)}x ({where})", low >= need),
            target_line("O(N d) memory at N = M = 4096 (fused peak below one N x M float32 Gram matrix)",
                        f"highest {shown(high[1] / 2**20, lambda x: x < GRAM_BYTES / 2**20, 2)} MiB ({high[2]}) vs "
                        f"{GRAM_BYTES / 2**20:.0f} MiB", high[1] < GRAM_BYTES)]


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", type=int_list(2), default=[1024, 4096], help="N = M, comma-separated (>= 2)")
    ap.add_argument("--d", type=positive_int, default=32)
    ap.add_argument("--repeat", type=positive_int, default=5, help="interleaved rounds (at least 3)")
    args = ap.parse_args()
    device = parse_device(ap, args.device)
    print(banner(device, f"median of up to {max(3, args.repeat)} interleaved rounds (fused, eager) after one warm-up"))
    print(f"{'kernel':6s} {'estimator':9s} {'N=M':>6s} {'d':>3s} {'backend':>8s} {'fused ms':>9s} {'eager ms':>9s} "
          f"{'speedup':>8s} {'fused MB':>9s} {'eager MB':>9s}")
    at_target = []
    for n in args.sizes:
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
            tf, te = (statistics.median(r) for r in interleaved_times([fused, eager], device, args.repeat))
            mf, me = peak_extra_bytes(fused, device), peak_extra_bytes(eager, device)
            if (n, args.d) == (4096, 32):
                at_target.append((te / tf, mf, f"{kernel} {estimator}"))
            print(f"{kernel:6s} {estimator:9s} {n:6d} {args.d:3d} {backend:>8s} {tf * 1e3:9.2f} {te * 1e3:9.2f} "
                  f"{te / tf:7.1f}x {mf / 2**20:9.2f} {me / 2**20:9.1f}")
    for line in targets(at_target, device):
        print(line)

if __name__ == "__main__":
    main()
