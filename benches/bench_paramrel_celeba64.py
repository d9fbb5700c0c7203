"""ParamReL CelebA-64 (ParamReL Table 5 recipe) for a fixed number of steps: step time, peak memory,
loss trend. Meant for one H100/H200; also runs (slowly) on a CPU.

    python benches/bench_paramrel_celeba64.py [--steps 300] [--data real|synthetic] [--out benches/results/...]

``--data synthetic`` feeds uniform random 64 x 64 images (no dataset files needed; the timings are
the same, the loss trend is not meaningful). bf16 autocast on CUDA as in the trainer. Writes a JSON
with the machine, median step time (of the steps after ``--warmup``, default 10), images/s, peak CUDA memory
and the loss every 10 steps. An existing ``--out`` is refused unless ``--overwrite`` (the default path is a new
file; a committed result is never replaced without a word).

    python benches/bench_paramrel_celeba64.py --steps 3 --warmup 1 --batch 1 --out /tmp/paramrel.json   # a quick check

(On one CPU thread a step at the recipe's batch of 64 takes over a minute; ``--batch 1`` about a second.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # harness.py, for a test that loads this file by path
from harness import nonnegative_int, positive_int, writable_out  # noqa: E402


def main(argv=None) -> int:
    import torch

    from diffrep.recipes import get_recipe
    from diffrep.methods.paramrel import ParamReL

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=positive_int, default=300, help="steps in all, the warm-up ones included")
    ap.add_argument("--warmup", type=nonnegative_int, default=10, help="first steps left out of the median "
                    "(fewer than --steps)")
    ap.add_argument("--batch", type=positive_int, default=None, help="batch size (default: the recipe's)")
    ap.add_argument("--data", choices=("real", "synthetic"), default="synthetic")
    ap.add_argument("--out", default="benches/results/paramrel_celeba64_steps.json")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = ap.parse_args(argv)
    if args.warmup >= args.steps:
        ap.error(f"--warmup {args.warmup} leaves no timed step of --steps {args.steps}")
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        ap.error(f"--out {args.out}: {exc.strerror or exc}")
    writable_out(ap, "--out", args.out, overwrite=args.overwrite)
    cfg = get_recipe("paramrel/celeba64").make_config()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = ParamReL(cfg.model).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, betas=cfg.train.betas,
                            weight_decay=cfg.train.weight_decay)
    B = args.batch or cfg.train.batch_size
    if args.data == "real":
        from diffrep.recipes.paramrel import build_dataset

        ds = build_dataset(cfg)
        loader = torch.utils.data.DataLoader(ds, batch_size=B, shuffle=True, num_workers=8, drop_last=True)
        batches = (b[0] for _ in range(10**9) for b in loader)
    else:
        batches = ((torch.rand(B, 3, 64, 64) * 2 - 1) for _ in range(10**9))
    times, losses = [], []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.steps):
        x = next(batches).to(dev, non_blocking=True)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            out = model.loss((x, None))
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if step % 10 == 0:
            losses.append({"step": step, "loss": float(out["loss"].detach()),
                           "bfn_loss_per_dim": float(out["bfn_loss_per_dim"].detach())})
    med = statistics.median(times[args.warmup:])
    rec = {"recipe": "paramrel/celeba64", "data": args.data, "steps": args.steps, "warmup_steps": args.warmup,
           "batch_size": B, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "parameters": sum(p.numel() for p in model.parameters()), "device": str(dev),
           "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None, "platform": platform.platform(),
           "median_step_s": med, "images_per_s": B / med,
           "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None,
           "loss_every_10_steps": losses}
    Path(args.out).write_text(json.dumps(rec, indent=2))
    print(json.dumps({k: v for k, v in rec.items() if k != "loss_every_10_steps"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
