"""SAMI training-step time (loss forward + double backward) with and without the fused guidance op.

"fused": ``diffrep.ops.guidance.log_posterior`` with its default dispatch (native CPU/CUDA kernel
when built); "reference": the same call forced to the pure-PyTorch twin
(``diffrep.ops.use_backend("reference")``), i.e. plain autograd of the Gaussian log-density. Both
run side by side in one process on the same model, batch, timesteps and noise; the ratio is
reference / fused. Also times one guided sampling step (no double backward). Prints a table and
one JSON line per configuration; ``--json`` appends them to a file.

Protocol (:func:`interleaved`): ``--warmup`` untimed rounds of both sides, then ``--reps`` timed rounds, each
timing both sides back to back, the order swapped every round (fused-reference, reference-fused, ...). The
table gives each side's median and the median of the per-round ratios reference / fused, with their range.
Before, each side ran its own warm-up and reps in turn, fused first: with ``--warmup 0`` the process's
first step (allocator growth, lazy initialisation: about twice a warm step on the CPU) landed on the fused
side alone and read as a 2x slowdown (benches/results/sami_step_cpu_1thread_2026-12-07.md).

    OMP_NUM_THREADS=2 python benches/bench_sami_step.py              # CPU
    python benches/bench_sami_step.py --device cuda --batch 64 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time

import torch

from diffrep.methods.sami import SAMI
from harness import load_average, parse_device, positive_int, writable_out
from diffrep.nn import HalfUNetConfig, UNetConfig
from diffrep.recipes.sami import disks_cpu_config


def _model(kind: str, device: str, samples: int) -> SAMI:
    cfg = dataclasses.replace(disks_cpu_config().model, train_samples=samples)
    if kind == "halfunet64":
        cfg = dataclasses.replace(cfg, **{
                           "denoiser": UNetConfig(image_size=64, in_channels=3, out_channels=3, model_channels=32,
                                                  channel_mult=(1, 1, 2, 2), num_res_blocks=1, attention_resolutions=(),
                                                  middle_attention=False, use_scale_shift_norm=False, num_groups=8),
                           "encoder": "half_unet",
                           "half_unet": HalfUNetConfig(image_size=64, in_channels=3, model_channels=32,
                                                       channel_mult=(1, 1, 1, 1), num_res_blocks=1, latent_dim=256,
                                                       num_groups=8)})
    torch.manual_seed(0)
    return SAMI(cfg).to(device)


def _timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def interleaved(fused, reference, device: str, reps: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds of ``fused`` and of ``reference`` in each of ``reps`` rounds, after ``warmup`` untimed rounds of
    both. Each round times both back to back, fused first in even rounds and reference first in odd ones: a
    load that drifts during a round, and whatever the first call leaves warm for the second, fall on each side
    equally often, and a round's ratio compares the two under the same load."""
    if warmup < 1:
        raise ValueError(f"warmup must be >= 1 (the first call of a process pays one-off costs), got {warmup}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    for _ in range(warmup):
        fused()
        reference()
    tf, tr = [], []
    for i in range(reps):
        pair = ((fused, tf), (reference, tr)) if i % 2 == 0 else ((reference, tr), (fused, tf))
        for fn, ts in pair:
            ts.append(_timed(fn, device))
    return tf, tr


def summary(tf: list[float], tr: list[float]) -> dict:
    """Medians (ms) of both sides, and the median and range of the per-round ratios reference / fused."""
    ratios = [r / f for f, r in zip(tf, tr)]
    return {"fused_ms": 1e3 * statistics.median(tf), "reference_ms": 1e3 * statistics.median(tr),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def bench(kind: str, batch: int, samples: int, device: str, reps: int, warmup: int) -> dict:
    from diffrep.ops import use_backend

    m = _model(kind, device, samples)
    g = torch.Generator().manual_seed(0)
    shape = (batch, *m.image_shape)
    x = (torch.rand(shape, generator=g) * 2 - 1).to(device)
    fixed = dict(t=torch.randint(0, m.schedule.num_timesteps, (batch,), generator=g).to(device),
                 noise=torch.randn(shape, generator=g).to(device),
                 z_noise=torch.randn((samples, batch, m.latent_dim), generator=g).to(device))
    z = torch.randn((batch, m.latent_dim), generator=g).to(device)

    def step():
        m.zero_grad(set_to_none=True)
        m.loss(x, **fixed)["loss"].backward()

    def guide():
        m.guidance(x, z)

    def reference(fn):
        def run():
            with use_backend("reference"):
                fn()
        return run

    m.eval()
    out = {"model": kind, "batch": batch, "train_samples": samples, "device": device, "reps": reps, "warmup": warmup}
    for name, fn in (("step", step), ("guidance", guide)):
        r = summary(*interleaved(fn, reference(fn), device, reps, warmup))
        out[f"{name}_fused_ms"], out[f"{name}_reference_ms"] = r["fused_ms"], r["reference_ms"]
        out[f"{name}_ratio_reference_over_fused"] = r["ratio"]
        out[f"{name}_ratio_range"] = [r["ratio_min"], r["ratio_max"]]
    return out


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=["disks-cpu", "halfunet64"], choices=["disks-cpu", "halfunet64"])
    p.add_argument("--batch", type=positive_int, nargs="+", default=[32])
    p.add_argument("--samples", type=positive_int, nargs="+", default=[1, 4])
    p.add_argument("--reps", type=int, default=5, help="timed rounds, each timing both sides (>= 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds of both sides first (>= 1)")
    p.add_argument("--json", default=None, help="append JSON lines here")
    a = p.parse_args()
    a.device = parse_device(p, a.device).type  # a clear usage error where no GPU is visible
    writable_out(p, "--json", a.json, append=True)  # before the minutes of timing, not after
    if a.reps < 1:
        p.error(f"--reps must be >= 1, got {a.reps}")
    if a.warmup < 1:
        p.error(f"--warmup must be >= 1, got {a.warmup}: the process's first step (allocator growth, lazy "
                "initialisation) costs about twice a warm one and would be timed on one side only")
    header = {"machine": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "load": load_average(), "reps": a.reps, "warmup": a.warmup,
              "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None}
    print(json.dumps(header))
    print(f"# medians of {a.reps} interleaved rounds after {a.warmup} warm-up rounds; ratio = median of the rounds' "
          "reference / fused [range]")
    print(f"{'model':11s} {'B':>4s} {'S':>2s} {'step fused':>11s} {'step ref':>10s} {'ratio':>6s} {'range':>11s} "
          f"{'g fused':>9s} {'g ref':>8s} {'g ratio':>7s}")
    rows = []
    for kind in a.models:
        for b in a.batch:
            for s in a.samples:
                r = bench(kind, b, s, a.device, a.reps, a.warmup)
                rows.append(r)
                lo, hi = r["step_ratio_range"]
                print(f"{kind:11s} {b:4d} {s:2d} {r['step_fused_ms']:9.1f}ms {r['step_reference_ms']:8.1f}ms "
                      f"{r['step_ratio_reference_over_fused']:6.2f} {f'[{lo:.2f},{hi:.2f}]':>11s} "
                      f"{r['guidance_fused_ms']:7.1f}ms {r['guidance_reference_ms']:6.1f}ms "
                      f"{r['guidance_ratio_reference_over_fused']:7.2f}")
                print(json.dumps(r))
    if a.json:
        with open(a.json, "a", encoding="utf-8") as fh:
            for r in [header] + rows:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
