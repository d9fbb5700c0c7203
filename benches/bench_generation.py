"""Generation metrics, side by side in one run (docs/metrics.md, "Generation metrics";
docs/kernels/knn.md):

1. precision/recall/density/coverage at N = M (default 10,000) on d = 2048 float32 features:
   diffrep's tiled kNN kernel (native backend), its eager twin (``use_backend("reference")``:
   difference-form distance blocks + running ``topk``; at ``--twin-n``, beside the kernel at the
   same N, as it is ~65x slower), an eager GEMM-form baseline
   (|a|^2 - 2ab + |b|^2 blocks + ``kthvalue``, what most code does), and the clovaai ``prdc``
   package (full sklearn distance matrices), with the values each gives; all with one k = 3 for
   the four metrics (``dc_k=3``; the library's default density/coverage k is 5), so the work and
   the values compare;
2. the FID Inception's throughput (features/s) on 64 x 64 images, preprocessing included, and of
   the clean preprocessing alone;
3. the Frechet distance of two 2048-d feature sets and KID with torch-fidelity's defaults.

Each timing is one run (minutes at N = 10k on a CPU), after an untimed call of the same code on 64 points
(first-call overheads: lazy initialisation, the allocator's first blocks); ratios are taken within this run.
Targets (issue 24): the kNN kernel faster than its eager twin, with the same values (``# target`` lines).

    python3 benches/bench_generation.py [--n 10000] [--device cuda] [--skip twin,prdc,inception]

At large N the eager twin and the ``prdc`` package run at ``--twin-n`` / ``--prdc-n`` beside the kernel at
the same N, and their time at N is printed as an extrapolation (labelled; all three scan N x M pairs).
"""

from __future__ import annotations

import argparse
import time

import torch

from harness import banner, choice_list, load_average, parse_device, positive_int, shown, sync, target_line
from diffrep.metrics import generation as G
from diffrep.ops import explain, use_backend
from diffrep.ops import knn as knn_ops  # importing it registers knn.knn_scan for explain


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def gemm_prdc(real, fake, k=3, block=2048):
    """The usual eager baseline: GEMM-form squared distances in row blocks, kthvalue(k + 1), <=."""
    def d2(a, b):
        return (a.pow(2).sum(1, keepdim=True) - 2 * a @ b.T + b.pow(2).sum(1)[None]).clamp_min_(0)

    def radii(x):
        return torch.cat([d2(x[i:i + block], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), block)])

    rr, rf = radii(real), radii(fake)
    cnt = torch.cat([(d2(fake[i:i + block], real) <= rr[None]).sum(1) for i in range(0, len(fake), block)])
    rec, cov = [], []
    for i in range(0, len(real), block):
        dd = d2(real[i:i + block], fake)
        rec.append((dd <= rf[None]).any(1))
        cov.append(dd.min(1).values <= rr[i:i + block])
    m = len(fake)
    return {"precision": float((cnt > 0).double().mean()), "recall": float(torch.cat(rec).double().mean()),
            "density": float(cnt.double().sum() / (k * m)), "coverage": float(torch.cat(cov).double().mean())}


SECTIONS = ("strict", "twin", "gemm", "prdc", "inception", "fid")


def fmt(r):
    return " ".join(f"{k[0].upper()}={v:.4f}" for k, v in r.items())


def targets(m: int, t_kernel: float, r_kernel: dict, t_twin: float, r_twin: dict) -> list[str]:
    """The ``# target`` lines of the kernel and its eager twin at N = M = ``m`` (seconds, PRDC values): faster,
    and the same values to the printed 4 decimals."""
    return [target_line("kNN kernel (PRDC) faster than its eager twin",
                        f"twin x{shown(t_twin / t_kernel, lambda x: x > 1, 2)} the kernel's time at N = M = {m}", t_twin > t_kernel),
            target_line("kNN kernel (PRDC) values equal to its eager twin's",
                        f"kernel {fmt(r_kernel)}; twin {fmt(r_twin)}", fmt(r_kernel) == fmt(r_twin))]


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=positive_int, default=10000, help="N = M (>= 4: k + 1 neighbours)")
    ap.add_argument("--d", type=positive_int, default=2048)
    ap.add_argument("--skip", default="", help="comma-separated: " + ", ".join(SECTIONS))
    ap.add_argument("--images", type=positive_int, default=100, help="images for the Inception throughput")
    ap.add_argument("--twin-n", type=positive_int, default=2000,
                    help="the eager twin runs at this N (with the kernel again beside it): it is ~65x slower")
    ap.add_argument("--prdc-n", type=positive_int, default=20000,
                    help="the prdc package runs at min(N, this) (with the kernel again beside it when smaller): it "
                         "holds N x N float32 distances and int64 argpartition indices, ~12 N^2 bytes")
    args = ap.parse_args()
    skip = choice_list(ap, "--skip", args.skip, SECTIONS)
    for flag, v in (("--n", args.n), ("--twin-n", args.twin_n), ("--prdc-n", args.prdc_n)):
        if v < 4:
            ap.error(f"{flag} {v}: PRDC with k = 3 needs at least k + 1 = 4 points")
    device = parse_device(ap, args.device)
    print(banner(device, f"load {load_average()}"))
    g = torch.Generator().manual_seed(0)
    n, d = args.n, args.d
    real = torch.randn(n, d, generator=g)
    fake = torch.randn(n, d, generator=g) * 1.05 + 0.05
    rd, fd = real.to(device), fake.to(device)
    backend = explain("knn.knn_scan", rd, fd, kk=knn_ops.MAX_K).backend
    print(f"\n## PRDC, N = M = {n}, d = {d}, float32, k = 3")
    print(f"{'implementation':34s} {'seconds':>9s} {'vs native':>9s}  values")
    G.prdc(rd[:64], fd[:64], k=3, dc_k=3, device=device)  # warm-up (first-call overheads)
    t_nat, r_nat = timed(lambda: G.prdc(rd, fd, k=3, dc_k=3, device=device), device)
    print(f"{'diffrep kNN kernel (' + backend + ')':34s} {t_nat:9.4f} {1.0:8.2f}x  {fmt(r_nat)}")
    if "strict" not in skip:
        t_s, r_s = timed(lambda: G.prdc(rd, fd, k=3, dc_k=3, strict=True, device=device), device)
        print(f"{'diffrep kNN kernel, strict <':34s} {t_s:9.4f} {t_s / t_nat:8.2f}x  {fmt(r_s)}")
    if "twin" not in skip:
        m = min(n, args.twin_n)
        t_k, r_k = timed(lambda: G.prdc(rd[:m], fd[:m], k=3, dc_k=3, device=device), device)
        with use_backend("reference"):
            G.prdc(rd[:64], fd[:64], k=3, dc_k=3, device=device)  # warm-up, as the kernel's
            t, r = timed(lambda: G.prdc(rd[:m], fd[:m], k=3, dc_k=3, device=device), device)
        print(f"{f'(N = M = {m}) diffrep kNN kernel':34s} {t_k:9.4f} {1.0:8.2f}x  {fmt(r_k)}")
        print(f"{f'(N = M = {m}) eager twin':34s} {t:9.4f} {t / t_k:8.2f}x  {fmt(r)}")
        twin_targets = targets(m, t_k, r_k, t, r)
        if m < n:  # both scan N x M pairs in tiles: time ~ N^2 d, so the twin's time at N is extrapolated
            t_x = t * (n / m) ** 2
            print(f"{'eager twin at N, extrapolated':34s} {t_x:9.1f} {t_x / t_nat:8.2f}x  "
                  f"(not run: {t:.2f} s x (N/{m})^2; its memory is bounded by its blocks)")
    if "gemm" not in skip:
        gemm_prdc(rd[:64], fd[:64])  # warm-up
        t, r = timed(lambda: gemm_prdc(rd, fd), device)
        print(f"{'eager GEMM form + kthvalue':34s} {t:9.4f} {t / t_nat:8.2f}x  {fmt(r)}")
    if "prdc" not in skip:
        try:
            import prdc as prdc_pkg
        except ImportError:
            print("prdc package not installed (pip install prdc)")
        else:
            m = min(n, args.prdc_n)
            rn, fn = real[:m].numpy(), fake[:m].numpy()
            t_k = t_nat
            if m < n:
                t_k, r_k = timed(lambda: G.prdc(rd[:m], fd[:m], k=3, dc_k=3, device=device), device)
                print(f"{f'(N = M = {m}) diffrep kNN kernel':34s} {t_k:9.4f} {1.0:8.2f}x  {fmt(r_k)}")
            t, r = timed(lambda: prdc_pkg.compute_prdc(real_features=rn, fake_features=fn, nearest_k=3), device)
            label = "prdc package 0.2 (strict <)" if m == n else f"(N = M = {m}) prdc package 0.2"
            print(f"{label:34s} {t:9.4f} {t / t_k:8.2f}x  {fmt({k: float(v) for k, v in r.items()})}")
            if m < n:
                t_x = t * (n / m) ** 2
                print(f"{'prdc package at N, extrapolated':34s} {t_x:9.1f} {t_x / t_nat:8.2f}x  "
                      f"(not run: needs ~{12 * n * n / 2**30:.0f} GiB, 12 N^2 bytes; time {t:.1f} s x (N/{m})^2)")
    for line in (twin_targets if "twin" not in skip else
                 [target_line("kNN kernel (PRDC) faster than its eager twin, with the same values", "--skip twin", None)]):
        print(line)
    if "fid" not in skip:
        print("\n## FID / KID on the same features (float64 statistics)")
        t, v = timed(lambda: G.fid_from_features(real.numpy(), fake.numpy(), allow_singular=True), device)
        print(f"fid_from_features (2 eigendecompositions of {d} x {d}) {t:8.2f} s  FID={v:.4f}")
        ss = min(1000, n)
        t, v = timed(lambda: G.kid_from_features(real.numpy(), fake.numpy(), subset_size=ss, device=device), device)
        print(f"kid_from_features (100 subsets of {ss})              {t:8.2f} s  KID={v[0]:.6f} +- {v[1]:.6f}")
    if "inception" not in skip:
        from diffrep.metrics import fid_preprocess as P

        print(f"\n## FID Inception throughput ({args.images} images, 64 x 64 uint8, batch 50, float32, TF32 off)")
        imgs = torch.randint(0, 256, (args.images, 3, 64, 64), dtype=torch.uint8, generator=g)
        try:
            G.inception_features(imgs[:50], device=device, progress=False)  # load + warm up
        except FileNotFoundError as exc:  # no local weights on this machine: say so, time the rest
            print(f"FID Inception not timed: {exc}")
            return
        t, _ = timed(lambda: G.inception_features(imgs, device=device, progress=False, batch_size=50), device)
        print(f"clean preprocessing + Inception: {args.images / t:8.1f} images/s")
        x = imgs.to(device)
        t, _ = timed(lambda: [P.preprocess(x[i:i + 50], "clean") for i in range(0, len(x), 50)], device)
        print(f"clean preprocessing alone:       {args.images / t:8.1f} images/s")


if __name__ == "__main__":
    main()
