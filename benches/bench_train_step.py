"""Step-time breakdown of the trainer (data, forward, backward, optimizer) for a small U-Net DDPM.

Runs the real ``Trainer`` loop with ``profile=True`` (CUDA synchronised around each phase) on the
procedural toy-shapes dataset, after ``--warmup`` untimed steps. "Data" is the time the loop waits
for the next batch (including the host-to-device copy); a value near zero means loading never
starves the step. Prints a table and one JSON line per configuration.

    python benches/bench_train_step.py                 # CPU (and GPU if available)
    python benches/bench_train_step.py --device cuda --workers 0 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import torch
from torch.utils.data import Dataset

from diffrep.data.toy_shapes import ToyShapes, ToyShapesConfig
from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
from diffrep.nn import UNetConfig
from diffrep.train import TrainConfig, Trainer, seed_everything
from harness import nonnegative_int, parse_device, positive_int


class DecodedShapes(Dataset):
    """ToyShapes plus a per-item CPU cost (a flip and a float conversion round trip), like image decoding."""

    def __init__(self, base: ToyShapes):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x = self.base[i]
        return ((x.flip(-1) * 127.5 + 127.5).round().to(torch.uint8).float() / 127.5 - 1).contiguous()


def bench(device: str, workers: int, steps: int, warmup: int, batch: int, image: int, channels: int) -> dict:
    seed_everything(0)
    unet = UNetConfig(image_size=image, model_channels=channels, channel_mult=(1, 2, 2), num_res_blocks=2,
                      attention_resolutions=(image // 4,), num_heads=4)
    model = ToyDDPM(ToyDDPMConfig(unet=unet))
    data = DecodedShapes(ToyShapes(ToyShapesConfig(num_images=4096, image_size=image)))
    cfg = TrainConfig(steps=warmup + steps, batch_size=batch, lr=1e-4, ema_decay=0.999, log_every=10**6,
                      ckpt_every=0, keep_checkpoints=1, device=device, num_workers=workers)
    marks = {}

    def reset(tr, step, _):
        if step == warmup:
            for k in tr.timings:
                tr.timings[k] = 0.0
            marks["t0"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(model, data, cfg, d, callbacks=[reset])
        tr.train(profile=True)
        wall = time.perf_counter() - marks["t0"]
    per = {k: 1e3 * v / steps for k, v in tr.timings.items()}
    n_params = sum(p.numel() for p in model.parameters())
    return {"device": device, "workers": workers, "batch": batch, "image": image, "params": n_params,
            "ms_per_step": {k: round(v, 2) for k, v in per.items()}, "ms_total": round(sum(per.values()), 2),
            "ms_wall_per_step": round(1e3 * wall / steps, 2), "data_share": round(per["data"] / sum(per.values()), 4),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", nargs="*", default=None, help="cpu and/or cuda (default: cpu, plus cuda if available)")
    p.add_argument("--workers", nargs="+", type=nonnegative_int, default=[0, 2])
    p.add_argument("--steps", type=positive_int, default=20, help="timed steps")
    p.add_argument("--warmup", type=positive_int, default=5,
                   help="untimed steps first (>= 1: the first step pays the one-time costs)")
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--image", type=positive_int, default=32, help="image size (a multiple of 4, >= 8)")
    p.add_argument("--channels", type=positive_int, default=32, help="U-Net base channels (a multiple of 32)")
    a = p.parse_args()
    if a.image < 8 or a.image % 4:
        p.error(f"--image {a.image}: the U-Net halves it twice and attends at image / 4: a multiple of 4, >= 8")
    if a.channels % 32:
        p.error(f"--channels {a.channels}: GroupNorm's 32 groups need a multiple of 32")
    devices = a.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    devices = [parse_device(p, d).type for d in devices]  # a clear usage error where no GPU is visible
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, torch threads "
          f"{torch.get_num_threads()}; {a.warmup} untimed steps, then the mean of {a.steps} timed ones")
    print(f"{'device':6s} {'workers':>7s} {'data':>8s} {'forward':>8s} {'backward':>9s} {'optim':>8s} {'total':>8s} {'wall':>8s} {'data%':>6s}  (ms/step)")
    rows = []
    for dev in devices:
        for w in a.workers:
            r = bench(dev, w, a.steps, a.warmup, a.batch, a.image, a.channels)
            m = r["ms_per_step"]
            print(f"{dev:6s} {w:7d} {m['data']:8.2f} {m['forward']:8.2f} {m['backward']:9.2f} {m['optimizer']:8.2f} "
                  f"{r['ms_total']:8.2f} {r['ms_wall_per_step']:8.2f} {100 * r['data_share']:5.1f}%")
            rows.append(r)
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
