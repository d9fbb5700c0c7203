"""SAMI training-step time (loss forward + double backward) with and without the fused guidance op.

"fused": ``diffrep.ops.guidance.log_posterior`` with its default dispatch (native CPU/CUDA kernel
when built); "reference": the same call forced to the pure-PyTorch twin
(``diffrep.ops.use_backend("reference")``), i.e. plain autograd of the Gaussian log-density. Both
run side by side in one process on the same model, batch, timesteps and noise; the ratio is
reference / fused. Also times one guided sampling step (no double backward). Prints a table and
one JSON line per configuration; ``--json`` appends them to a file.

    OMP_NUM_THREADS=2 python benches/bench_sami_step.py              # CPU
    python benches/bench_sami_step.py --device cuda --batch 64 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import torch

from diffrep.methods.sami import SAMI
from harness import parse_device
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


def _time(fn, device: str, reps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


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

    m.eval()
    out = {"model": kind, "batch": batch, "train_samples": samples, "device": device}
    for name, ctx in (("fused", None), ("reference", "reference")):
        if ctx is None:
            out[f"step_{name}_ms"] = 1e3 * _time(step, device, reps, warmup)
            out[f"guidance_{name}_ms"] = 1e3 * _time(guide, device, reps, warmup)
        else:
            with use_backend(ctx):
                out[f"step_{name}_ms"] = 1e3 * _time(step, device, reps, warmup)
                out[f"guidance_{name}_ms"] = 1e3 * _time(guide, device, reps, warmup)
    out["step_ratio_reference_over_fused"] = out["step_reference_ms"] / out["step_fused_ms"]
    out["guidance_ratio_reference_over_fused"] = out["guidance_reference_ms"] / out["guidance_fused_ms"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=["disks-cpu", "halfunet64"], choices=["disks-cpu", "halfunet64"])
    p.add_argument("--batch", type=int, nargs="+", default=[32])
    p.add_argument("--samples", type=int, nargs="+", default=[1, 4])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", default=None, help="append JSON lines here")
    a = p.parse_args()
    a.device = parse_device(p, a.device).type  # a clear usage error where no GPU is visible
    header = {"machine": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
              "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None}
    print(json.dumps(header))
    print(f"{'model':11s} {'B':>4s} {'S':>2s} {'step fused':>11s} {'step ref':>10s} {'ratio':>6s} {'g fused':>9s} {'g ref':>8s}")
    rows = []
    for kind in a.models:
        for b in a.batch:
            for s in a.samples:
                r = bench(kind, b, s, a.device, a.reps, a.warmup)
                rows.append(r)
                print(f"{kind:11s} {b:4d} {s:2d} {r['step_fused_ms']:9.1f}ms {r['step_reference_ms']:8.1f}ms "
                      f"{r['step_ratio_reference_over_fused']:6.2f} {r['guidance_fused_ms']:7.1f}ms {r['guidance_reference_ms']:6.1f}ms")
                print(json.dumps(r))
    if a.json:
        with open(a.json, "a", encoding="utf-8") as fh:
            for r in [header] + rows:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
