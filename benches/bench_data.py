"""Data-loading throughput: images/s delivered for 64x64 uint8 data, measured in one run.

Usage: python benches/bench_data.py [--n 50000] [--batch 256] [--threads 2] [--full-grid] [--baseline REV ...]

Prints, side by side in one run:
* batched loading from memory (``make_loader``: whole batches through ``get_batch``), uint8 and float [-1,1]
  outputs, in-process and with 2 DataLoader workers;
* the stock per-item DataLoader path (``batch_size=``, default collate) for comparison;
* procedural dSprites: random batches rendered on demand (no cache), the first render of every sprite in a
  fresh process, the first random batches of a fresh dataset (rendered into its cache), the training batches of ``multibeta/dsprites-cpu`` (its 30,000-image subset, max-pooled to
  32 x 32, through the trainer's DataLoader: a first pass renders into the cache, a second reads it) and
  random batches from the packed-bit cache;
* procedural Shapes3D: random batches rendered on demand (no cache), the images of ``multibeta/shapes3d-cpu``;
* with ``--full-grid``: the time to render the whole dSprites grid (737,280 images) on ``--threads`` threads,
  whether every pixel equals each baseline's render, and random batches read from the filled cache.

``--threads``: torch threads and ``render_all`` workers (default 2). ``--baseline REV ...``: also time the
renderers of ``python/diffrep/data/dsprites.py`` and ``shapes3d.py`` as they were at each git revision REV,
interleaved round by round with the working tree's on the same batches (so all columns see the same
load on a shared machine); each cell is the best of ``--rounds`` rounds.
Target (issue 3): >= 20k images/s from memory on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from diffrep.data import dsprites as dsprites_now
from diffrep.data import shapes3d as shapes3d_now
from diffrep.data.base import ArrayGroundTruthData
from diffrep.data.pooled import Pooled
from diffrep.data.sampling import EpochBatchSampler, make_loader
from diffrep.recipes import multibeta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # harness.py, for a test that loads this file by path
from harness import positive_int, shown, target_line  # noqa: E402

TARGET_IMAGES_PER_S = 20_000  # issue 3: from memory on 2 cores

ROOT = Path(__file__).resolve().parents[1]


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


def side_by_side(fns, repeat: int) -> list[float]:
    """Best seconds of each of ``fns`` over ``repeat`` interleaved rounds (fn0, fn1, fn0, fn1, ...)."""
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def baseline_module(rev: str, name: str):
    """``diffrep.data.<name>`` as it was at git revision ``rev`` (its relative imports resolve against the
    working tree's package)."""
    try:
        src = subprocess.run(["git", "show", f"{rev}:python/diffrep/data/{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"--baseline {rev}: cannot read python/diffrep/data/{name}.py at that revision: "
                 f"{getattr(exc, 'stderr', '') or exc}")
    path = Path(tempfile.mkdtemp()) / f"{name}_baseline.py"
    path.write_text(src)
    tag = "".join(c if c.isalnum() else "_" for c in rev)
    spec = importlib.util.spec_from_file_location(f"diffrep.data._{name}_at_{tag}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def row(label: str, values, unit: str) -> None:
    cells = "".join(f"{v:14,.2f} {unit}" if unit == "s" else f"{v:14,.0f} {unit}" for v in values)
    # how many times faster the working tree is than each baseline
    speed = [values[k] / values[0] if unit == "s" else values[0] / values[k] for k in range(1, len(values))]
    extra = f"   (now {' / '.join(f'{x:.1f}x' for x in speed)} as fast)" if speed else ""
    print(f"{label:58s}{cells}{extra}")


def memory_target(memory: list[tuple[float, str]], threads: int) -> str:
    """The ``# target`` line of the from-memory rows ((images/s, 'format, workers') each): the best one counts."""
    best, where = max(memory)
    return target_line(f">= {TARGET_IMAGES_PER_S:,} images/s from memory on 2 cores", f"best {shown(best, lambda x: x >= TARGET_IMAGES_PER_S, 0, thousands=True)} images/s "
                       f"({where}; {threads} torch thread(s), {os.cpu_count()} CPUs visible)", best >= TARGET_IMAGES_PER_S)


def trainer_batches(ds, n_batches: int) -> int:
    """Images of the first ``n_batches`` batches of 64 of the trainer's epoch-0 order (its DataLoader:
    a batch sampler, the dataset's ``__getitems__``, default collate)."""
    sampler = EpochBatchSampler(len(ds), 64, seed=0, drop_last=True)
    n = 0
    for k, (x, _) in enumerate(DataLoader(ds, batch_sampler=sampler, num_workers=0)):
        n += x.shape[0]
        if k + 1 == n_batches:
            break
    return n


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=positive_int, default=50000, help="images in memory (>= 5)")
    ap.add_argument("--batch", type=positive_int, default=256)
    ap.add_argument("--threads", type=positive_int, default=2, help="torch threads and render_all workers (default 2)")
    ap.add_argument("--full-grid", action="store_true")
    ap.add_argument("--baseline", nargs="*", default=[], metavar="REV",
                    help="also time the dSprites / Shapes3D renderers of these git revisions, side by side")
    ap.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds of the renderer rows (best of)")
    args = ap.parse_args()
    if args.n < 5:
        ap.error(f"--n {args.n}: the stock DataLoader row loads n / 5 images, at least 1")
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, torch threads "
          f"{args.threads}, torch {torch.__version__}, numpy {np.__version__}")
    versions = [("now", dsprites_now, shapes3d_now)]
    for rev in args.baseline:
        versions.append((rev, baseline_module(rev, "dsprites"), baseline_module(rev, "shapes3d")))
    names = [v[0] for v in versions]
    if args.baseline:
        print(f"renderer rows: columns {' | '.join(names)} (the working tree, then revision(s) {' '.join(args.baseline)})")

    # in a fresh process: the first render of each of the 3 x 6 x 40 sprites (one image each)
    one_each = np.stack(np.unravel_index(np.arange(720) * 1024, dsprites_now.FILE_SIZES[1:]), axis=1)
    first = []
    for _, ds_mod, _ in versions:
        t = time.perf_counter()
        ds_mod.render_dsprites(one_each)
        first.append(720 / (time.perf_counter() - t))
    row("dSprites first render of each of the 720 sprites:", first, "images/s")

    n, b = args.n, args.batch
    imgs = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    sizes = (n // 100, 100) if n % 100 == 0 else (n, 1)
    memory = []
    for fmt in ("uint8", "pm1"):
        ds = ArrayGroundTruthData(imgs, ("a", "b"), sizes, item_format=fmt)
        for workers in (0, 2):
            r = rate(lambda: drain(make_loader(ds, b, seed=0, epoch=1, num_workers=workers)), n)
            memory.append((r, f"{fmt}, workers={workers}"))
            print(f"memory 64x64x3 {fmt:5s} batched loader, workers={workers}: {r:12,.0f} images/s")
    print(memory_target(memory, args.threads))
    ds = ArrayGroundTruthData(imgs[: n // 5], ("a",), (n // 5,), item_format="uint8")
    std = torch.utils.data.DataLoader(ds, batch_size=b, shuffle=True, generator=torch.Generator().manual_seed(0))
    print(f"memory 64x64x3 uint8 stock DataLoader (per-item collate): {rate(lambda: drain(std), n // 5):12,.0f} images/s")

    rng = np.random.default_rng(1)
    for bs in (b, 64):
        idx = [rng.integers(0, 737280, bs) for _ in range(40)]
        ds = [v[1].DSprites(cache=False, item_format="uint8") for v in versions]
        t = side_by_side([lambda d=d: [d.get_batch(i) for i in idx] for d in ds], args.rounds)
        row(f"dSprites procedural, random batches of {bs}, no cache:", [40 * bs / s for s in t], "images/s")

    idx = [rng.integers(0, 737280, 64) for _ in range(10)]
    t = side_by_side([lambda m=v[1]: [d.get_batch(i) for d in [m.DSprites(item_format="uint8")] for i in idx]
                      for v in versions], args.rounds)
    row("dSprites fresh dataset (cache on), its first 10 batches of 64:", [640 / s for s in t], "images/s")

    cfg = multibeta.dsprites_cpu()
    subset = multibeta.build_dataset(cfg).indices  # the recipe's fixed 30,000-image training subset

    def recipe_ds(mod):
        return multibeta.TrainSubset(Pooled(mod.DSprites(), cfg.pool), subset)

    cached = [recipe_ds(v[1]) for v in versions]
    for d in cached:
        trainer_batches(d, 100)
    t = side_by_side([lambda m=v[1]: trainer_batches(recipe_ds(m), 100) for v in versions], args.rounds)
    row("multibeta/dsprites-cpu batches, first pass (render+cache):", [6400 / s for s in t], "images/s")
    t = side_by_side([lambda d=d: trainer_batches(d, 100) for d in cached], args.rounds)
    row("multibeta/dsprites-cpu batches, second pass (cached):", [6400 / s for s in t], "images/s")

    idx = [rng.integers(0, 480000, 64) for _ in range(8)]
    ds = [v[2].Shapes3D(item_format="uint8", cache_size=0) for v in versions]
    t = side_by_side([lambda d=d: [d.get_batch(i) for i in idx] for d in ds], args.rounds)
    row("Shapes3D procedural, random batches of 64, no cache:", [8 * 64 / s for s in t], "images/s")

    if args.full_grid:
        secs, grids, full = [], [], []
        for _, ds_mod, _ in versions:
            dc = ds_mod.DSprites(item_format="uint8")
            t0 = time.perf_counter()
            grids.append(dc.render_all(workers=args.threads))
            secs.append(time.perf_counter() - t0)
            full.append(dc)
        row(f"dSprites full grid (737,280 images) render on {args.threads} thread(s):", secs, "s")
        for name, grid in zip(names[1:], grids[1:]):
            same = np.array_equal(grids[0], grid)
            print(f"dSprites full grid, every pixel of the working tree's render equal to {name}'s: {same}")
        idx = [rng.integers(0, 737280, b) for _ in range(40)]
        t = side_by_side([lambda d=d: [d.get_batch(i) for i in idx] for d in full], args.rounds)
        row(f"dSprites cached (after render_all), random batches of {b}:", [40 * b / s for s in t], "images/s")

if __name__ == "__main__":
    main()
