"""SAMI guidance score: the fused op vs autograd through the eager twin, forward + double backward.

One step as training runs it (docs/methods/sami.md#double-backward): ell = log q(z | x_t) averaged over S samples; its
gradient w.r.t. (z, mu, logvar) with create_graph=True (what the encoder VJP consumes); then a
scalar of those gradients differentiated again to (z, mu, logvar).

    python benches/bench_guidance.py                  # CPU, B = 512, D = 256, S in {1, 8}
    python benches/bench_guidance.py --device cuda
"""

from __future__ import annotations

import argparse

import torch

from harness import banner, best_time, parse_device
from diffrep.ops import explain, guidance
from diffrep.ops.reference import guidance as ref


def step(fn, z, mu, lv):
    out = fn(z, mu, lv)
    g = torch.autograd.grad(out.sum(), (z, mu, lv), create_graph=True)
    torch.autograd.grad(sum((gi * gi).sum() for gi in g), (z, mu, lv))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--B", type=int, default=512)
    ap.add_argument("--D", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    device = parse_device(ap, args.device)
    print(banner(device))
    print(f"{'S':>3s} {'B':>5s} {'D':>5s} {'dtype':>8s} {'backend':>8s} {'fused ms':>9s} {'eager ms':>9s} {'speedup':>8s}")
    for S in (1, 8):
        for dtype in (torch.float32, torch.float64):
            g = torch.Generator().manual_seed(0)
            z = torch.randn(S, args.B, args.D, generator=g, dtype=dtype).to(device).requires_grad_()
            mu = torch.randn(args.B, args.D, generator=g, dtype=dtype).to(device).requires_grad_()
            lv = (0.3 * torch.randn(args.B, args.D, generator=g, dtype=dtype)).to(device).requires_grad_()
            backend = explain("guidance.log_posterior", z, mu, lv).backend
            tf = best_time(lambda: step(guidance.log_posterior, z, mu, lv), device, args.repeat)
            te = best_time(lambda: step(ref.log_posterior, z, mu, lv), device, args.repeat)
            print(f"{S:3d} {args.B:5d} {args.D:5d} {str(dtype)[6:]:>8s} {backend:>8s} {tf * 1e3:9.3f} {te * 1e3:9.3f} "
                  f"{te / tf:7.1f}x")


if __name__ == "__main__":
    main()
