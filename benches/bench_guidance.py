"""SAMI guidance score: the fused op vs autograd through the eager twin, forward + double backward.

One step as training runs it (docs/methods/sami.md#double-backward): ell = log q(z | x_t) averaged over S samples; its
gradient w.r.t. (z, mu, logvar) with create_graph=True (what the encoder VJP consumes); then a
scalar of those gradients differentiated again to (z, mu, logvar).

    python benches/bench_guidance.py                  # CPU, B = 512, D = 256, S in {1, 8}
    python benches/bench_guidance.py --device cuda

Both sides are timed in interleaved rounds after one warm-up each (harness.interleaved_times: the same machine
load for both), medians; speedup = eager / fused. Target (issue 24): the fused op not slower than autograd at
B = 512, D = 256, S = 1 and 8 (the ``# target`` line after the table; not measured at other sizes).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from harness import banner, interleaved_times, parse_device, positive_int, shown, target_line
from diffrep.ops import explain, guidance
from diffrep.ops.reference import guidance as ref


def step(fn, z, mu, lv):
    out = fn(z, mu, lv)
    g = torch.autograd.grad(out.sum(), (z, mu, lv), create_graph=True)
    torch.autograd.grad(sum((gi * gi).sum() for gi in g), (z, mu, lv))


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--B", type=positive_int, default=512)
    ap.add_argument("--D", type=positive_int, default=256)
    ap.add_argument("--repeat", type=positive_int, default=50, help="interleaved rounds (at least 3; fewer when "
                    "the rounds pass 3 s)")
    args = ap.parse_args()
    device = parse_device(ap, args.device)
    print(banner(device, f"median of up to {max(3, args.repeat)} interleaved rounds (fused, eager) after one warm-up"))
    print(f"{'S':>3s} {'B':>5s} {'D':>5s} {'dtype':>8s} {'backend':>8s} {'fused ms':>9s} {'eager ms':>9s} {'speedup':>8s}")
    speedups = []
    for S in (1, 8):
        for dtype in (torch.float32, torch.float64):
            g = torch.Generator().manual_seed(0)
            z = torch.randn(S, args.B, args.D, generator=g, dtype=dtype).to(device).requires_grad_()
            mu = torch.randn(args.B, args.D, generator=g, dtype=dtype).to(device).requires_grad_()
            lv = (0.3 * torch.randn(args.B, args.D, generator=g, dtype=dtype)).to(device).requires_grad_()
            backend = explain("guidance.log_posterior", z, mu, lv).backend
            runs = interleaved_times([lambda: step(guidance.log_posterior, z, mu, lv),
                                      lambda: step(ref.log_posterior, z, mu, lv)], device, args.repeat)
            tf, te = (statistics.median(r) for r in runs)
            speedups.append((te / tf, f"S={S} {str(dtype)[6:]}"))
            print(f"{S:3d} {args.B:5d} {args.D:5d} {str(dtype)[6:]:>8s} {backend:>8s} {tf * 1e3:9.3f} {te * 1e3:9.3f} "
                  f"{te / tf:7.1f}x")
    if (args.B, args.D) == (512, 256):
        low, where = min(speedups)
        print(target_line("fused not slower than autograd at B = 512, D = 256, S = 1 and 8",
                          f"lowest {shown(low, lambda x: x >= 1)}x ({where})", low >= 1))
    else:
        print(target_line("fused not slower than autograd at B = 512, D = 256, S = 1 and 8",
                          f"this run is at B = {args.B}, D = {args.D}", None))


if __name__ == "__main__":
    main()
