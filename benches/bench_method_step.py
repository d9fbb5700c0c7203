"""Training step time of each method at a recipe's configuration (the paper's, on a GPU), in bf16.

Builds the recipe's model (no dataset files needed: batches are uniform random images of the
recipe's shape, so the timing is the real one and the loss is not meaningful), runs ``--warmup``
untimed steps, then ``--steps`` timed ones (loss, backward, AdamW step) and prints one row per recipe:
median ms/step, images/s and peak CUDA memory. bf16 autocast on CUDA, as the trainer does; float32 on
the CPU. For the VQ-GAN the autoencoder step is timed (its discriminator has its own optimiser); without a local
LPIPS weight file its perceptual network runs with random weights (the same cost; the row says so).

    python benches/bench_method_step.py --device cuda                       # the paper recipes
    python benches/bench_method_step.py --recipes paramrel/digits sami/disks-cpu --batch 2 --steps 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from harness import banner, parse_device, recipe_rows, sync

# one paper configuration of each method family (the multi-beta VAE's phases: bench_multibeta.py)
PAPER_RECIPES = ("paramrel/celeba64", "paramrel/cifar10", "sami/disks", "sami/celeba64", "bfn/cifar10-discretised",
                 "vq/celeba64", "vae/beta-vae-dsprites", "diffae/celeba64", "infodiffusion/celeba64", "disdiff/shapes3d",
                 "encdiff/shapes3d")


def image_shape(model_cfg) -> tuple[int, int]:
    """(channels, size) of the images a model config trains on: a latent model's first stage takes them (its U-Net
    sees the latent), a multi-beta pipeline's VAE."""
    for owner in ("first_stage", "vae", "bfn", "denoiser", "unet", None):
        c = getattr(model_cfg, owner, None) if owner else model_cfg
        if c is None:
            continue
        channels = getattr(c, "channels", None) or getattr(c, "in_channels", None)
        size = getattr(c, "image_size", None)
        if channels and size:
            return int(channels), int(size)
    raise ValueError(f"cannot tell the image shape of {type(model_cfg).__name__}")


def build_model(model_cfg) -> torch.nn.Module:
    from diffrep._checks import a_or_an
    from diffrep.nn.pretrained import MODEL_CLASSES, model_class

    for name in MODEL_CLASSES:
        cls = model_class(name)
        if getattr(cls, "config_class", None) is type(model_cfg):
            return cls(model_cfg)
    raise ValueError(f"no model class takes {a_or_an(type(model_cfg).__name__)}")


def lpips_stand_in(model) -> bool:
    """A VQ-GAN whose LPIPS term has no weight file given (neither ``perceptual_weights`` nor
    ``$DIFFREP_LPIPS_WEIGHTS``; a lent GPU machine without network has none): its perceptual network gets random
    weights instead, the same VGG16 and linear layers (diffrep.nn.lpips), so the step costs the same; the loss is
    not meaningful here anyway. A file that was named is still loaded (a wrong path stays an error). True when
    the stand-in was used."""
    import os

    from diffrep.nn.lpips import LPIPS, LPIPS_ENV

    cfg = getattr(model, "config", None)
    if getattr(cfg, "perceptual_weight", 0) <= 0 or getattr(model, "_lpips", None) != []:
        return False
    if cfg.perceptual_weights or os.environ.get(LPIPS_ENV):
        return False
    model._lpips.append(LPIPS())  # VQAutoencoder.perceptual uses the network in this list (loaded on first use)
    return True


def time_recipe(name: str, device: torch.device, batch: int | None, steps: int, warmup: int) -> dict:
    from diffrep.recipes import get_recipe

    cfg = get_recipe(name).make_config()
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).train()
    if hasattr(model, "use_untrained_frozen_parts"):  # a step's cost does not depend on the frozen parts' weights
        model.use_untrained_frozen_parts()
    random_lpips = lpips_stand_in(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr)
    B = batch or cfg.train.batch_size
    C, S = image_shape(cfg.model)
    x = torch.rand(B, C, S, S, device=device) * 2 - 1
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model.loss((x, None), step=step)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    ms = 1e3 * statistics.median(times)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"recipe": name, "batch": B, "image": [C, S, S], "ms_per_step": ms, "images_per_s": B / ms * 1e3,
            "peak_gib": peak, "params_m": sum(p.numel() for p in params) / 1e6,
            "dtype": ("bf16 autocast" if device.type == "cuda" else "float32")
            + (", LPIPS with random weights (no weight file here)" if random_lpips else "")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--recipes", nargs="+", default=list(PAPER_RECIPES))
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the recipe's)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or (args.batch is not None and args.batch < 1):
        ap.error("--steps and --batch must be >= 1, --warmup >= 0")
    device = parse_device(ap, args.device)
    print(banner(device, f"{args.warmup} untimed steps, then the median of {args.steps} timed ones"
                 + (" (--warmup 0: the first timed step pays the one-time costs)" if args.warmup == 0 else "")))
    print(f"{'recipe':26s} {'batch':>5s} {'params M':>9s} {'ms/step':>9s} {'img/s':>8s} {'peak GiB':>9s}  dtype")

    def row(name, r):
        print(f"{name:26s} {r['batch']:5d} {r['params_m']:9.1f} {r['ms_per_step']:9.1f} {r['images_per_s']:8.1f} "
              f"{r['peak_gib']:9.2f}  {r['dtype']}")
        print(json.dumps(r))

    return recipe_rows(args.recipes, lambda name: time_recipe(name, device, args.batch, args.steps, args.warmup),
                       row, 26)


if __name__ == "__main__":
    raise SystemExit(main())
