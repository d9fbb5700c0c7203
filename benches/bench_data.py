"""Data-loading throughput: images/s delivered for 64x64 uint8 data, measured in one run.

Usage: python benches/bench_data.py [--n 50000] [--batch 256] [--full-grid]

Prints, side by side in one run:
* batched loading from memory (``make_loader``: whole batches through ``get_batch``), uint8 and float [-1,1]
  outputs, in-process and with 2 DataLoader workers;
* the stock per-item DataLoader path (``batch_size=``, default collate) for comparison;
* procedural dSprites: random batches rendered on demand (no cache) and from the packed-bit cache;
* with ``--full-grid``: the time to render the whole dSprites grid (737,280 images) on 2 threads.
Target (issue 3): >= 20k images/s from memory on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from diffrep.data.base import ArrayGroundTruthData
from diffrep.data.dsprites import DSprites
from diffrep.data.sampling import make_loader


def rate(fn, n_images: int, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_images / best


def drain(loader) -> int:
    n = 0
    for x, _ in loader:
        n += x.shape[0]
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--full-grid", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch threads 2, "
          f"torch {torch.__version__}, numpy {np.__version__}")
    n, b = args.n, args.batch
    imgs = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    sizes = (n // 100, 100) if n % 100 == 0 else (n, 1)
    for fmt in ("uint8", "pm1"):
        ds = ArrayGroundTruthData(imgs, ("a", "b"), sizes, item_format=fmt)
        for workers in (0, 2):
            r = rate(lambda: drain(make_loader(ds, b, seed=0, epoch=1, num_workers=workers)), n)
            print(f"memory 64x64x3 {fmt:5s} batched loader, workers={workers}: {r:12,.0f} images/s")
    ds = ArrayGroundTruthData(imgs[: n // 5], ("a",), (n // 5,), item_format="uint8")
    std = torch.utils.data.DataLoader(ds, batch_size=b, shuffle=True, generator=torch.Generator().manual_seed(0))
    print(f"memory 64x64x3 uint8 stock DataLoader (per-item collate): {rate(lambda: drain(std), n // 5, 1):12,.0f} images/s")

    rng = np.random.default_rng(1)
    idx = [rng.integers(0, 737280, b) for _ in range(40)]
    d = DSprites(cache=False, item_format="uint8")
    print(f"dSprites procedural, random batches, no cache: {rate(lambda: [d.get_batch(i) for i in idx], 40 * b):12,.0f} images/s")
    if args.full_grid:
        dc = DSprites(item_format="uint8")
        t = time.perf_counter()
        dc.render_all(workers=2)
        print(f"dSprites full grid (737,280 images) render on 2 threads: {time.perf_counter() - t:.2f} s")
        print(f"dSprites cached, random batches: {rate(lambda: [dc.get_batch(i) for i in idx], 40 * b):12,.0f} images/s")


if __name__ == "__main__":
    main()
