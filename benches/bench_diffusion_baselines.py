"""Training steps/s of DiffAE, InfoDiffusion and DisDiff at the paper configurations, beside a plain
epsilon-prediction step of the same U-Net (the cost of each method's extra parts, as a ratio).

Each row times, interleaved round by round (benches/harness.py ``interleaved_medians``, so both see the
same machine load), one optimiser step (loss, backward, Adam) of the method and one of a bare DDPM step
(L_simple) of the method's own U-Net without its conditioning. Batches are uniform random images of the
recipe's shape (no dataset files; the losses are not meaningful, the timings are). On a GPU: the
recipes' batch sizes in bf16 autocast; on the CPU: ``--batch`` (default 2) in float32, the same
architectures ("CPU scaled").

    python benches/bench_diffusion_baselines.py [--device cpu|cuda] [--batch 2] [--rounds 5] [--budget 60]
        [--recipes diffae/celeba64 infodiffusion/celeba64 disdiff/shapes3d disdiff/shapes3d-dyga] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch
import torch.nn.functional as F

from harness import banner, interleaved_medians, parse_device, positive_float, positive_int, writable_out

RECIPES = ("diffae/celeba64", "infodiffusion/celeba64", "disdiff/shapes3d", "disdiff/shapes3d-dyga",
           "diffae/shapes3d-cpu", "infodiffusion/shapes3d-cpu", "disdiff/shapes3d-cpu")


def _method(name: str):
    from diffrep.methods.diffae import DiffAE
    from diffrep.methods.disdiff import DisDiff
    from diffrep.methods.infodiffusion import InfoDiffusion
    from diffrep.recipes import get_recipe

    cfg = get_recipe(name).make_config()
    fam = name.split("/")[0]
    m = cfg.model
    if fam == "disdiff":
        m = dataclasses.replace(m, stage="disentangle")
    cls = {"diffae": DiffAE, "infodiffusion": InfoDiffusion, "disdiff": DisDiff}[fam]
    model = cls(m)
    if fam == "disdiff":  # timing: a step costs the same whatever the frozen eps_theta's (and VQ's) weights
        model.use_untrained_frozen_parts()
    return model, cfg


def _bare_unet(model):
    from diffrep.nn.unet import UNet

    c = dataclasses.replace(model.config.unet, latent_dim=0, latent_cond="adagn_eq12")
    return UNet(c)


def _step_fn(loss_fn, params, device, dtype_ctx):
    opt = torch.optim.Adam(params, lr=1e-4)

    def step():
        with dtype_ctx():
            loss = loss_fn()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench(name: str, device: torch.device, batch: int | None, rounds: int, budget: float) -> dict:
    torch.manual_seed(0)
    model, cfg = _method(name)
    model = model.to(device).train()
    B = batch or cfg.train.batch_size
    enc = model.config.encoder
    x = torch.rand(B, enc.in_channels, enc.image_size, enc.image_size, device=device) * 2 - 1
    bare = _bare_unet(model).to(device).train()
    u = bare.config
    xb = torch.rand(B, u.in_channels, u.image_size, u.image_size, device=device) * 2 - 1
    T = model.schedule.num_timesteps

    def ctx():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def bare_loss():
        t = torch.randint(0, T, (B,), device=device)
        noise = torch.randn_like(xb)
        return F.mse_loss(bare(model.schedule.q_sample(xb, t, noise), t), noise)

    if getattr(model, "dyga", None) is not None:  # anchors from the untrained encoder, as after a first refresh
        with torch.no_grad():
            model.refresh_anchors(torch.rand(max(64, 2 * B), enc.in_channels, enc.image_size, enc.image_size,
                                             device=device) * 2 - 1)
    fns = [_step_fn(lambda: model.loss(x, step=0)["loss"], [p for p in model.parameters() if p.requires_grad], device, ctx),
           _step_fn(bare_loss, list(bare.parameters()), device, ctx)]
    t_method, t_bare = interleaved_medians(fns, device, rounds, budget)
    return {"recipe": name, "batch": B, "device": device.type, "method_ms": 1e3 * t_method, "bare_unet_ms": 1e3 * t_bare,
            "steps_per_s": 1 / t_method, "ratio_method_over_bare": t_method / t_bare,
            "trainable_params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
            "dtype": "bf16 autocast" if device.type == "cuda" else "float32"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=positive_int, default=None,
                   help="default: 2 on the CPU, the recipe's batch on a GPU")
    p.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds (at least 3 are run)")
    p.add_argument("--budget", type=positive_float, default=60.0, help="seconds per row")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES, metavar="RECIPE",
                   help="any of: " + ", ".join(RECIPES))
    p.add_argument("--json", default=None, help="write the rows here (refused when the file exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json")
    a = p.parse_args(argv)
    device = parse_device(p, a.device)
    writable_out(p, "--json", a.json, overwrite=a.overwrite)
    torch.set_num_threads(1) if device.type == "cpu" else None
    batch = a.batch if a.batch is not None else (2 if device.type == "cpu" else None)
    print(banner(device))
    rows = []
    print(f"{'recipe':28s} {'batch':>5s} {'method ms':>10s} {'bare U-Net ms':>14s} {'ratio':>6s} {'steps/s':>8s}")
    for name in a.recipes:
        r = bench(name, device, batch, a.rounds, a.budget)
        rows.append(r)
        print(f"{name:28s} {r['batch']:5d} {r['method_ms']:10.1f} {r['bare_unet_ms']:14.1f} "
              f"{r['ratio_method_over_bare']:6.2f} {r['steps_per_s']:8.2f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"banner": banner(device), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
