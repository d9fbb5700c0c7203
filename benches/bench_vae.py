"""Training steps/s of every VAE-family baseline at 64 x 64, batch 64 (the dSprites paper recipes,
``vae/<method>-dsprites``), side by side in one run: the steps are timed in interleaved rounds
(harness.interleaved_medians), so the ratios to the plain VAE hold under a shared machine's load.

One step = loss (+ FactorVAE's discriminator loss), one backward, the optimiser step(s) (Adam; FactorVAE
also its discriminator's). Inputs: random binary 64 x 64 images (timing only).

    OMP_NUM_THREADS=1 python benches/bench_vae.py [--device cpu|cuda] [--batch 64] [--rounds 10] [--budget 60]
"""

from __future__ import annotations

import argparse
import json

import torch

from harness import banner, interleaved_medians, parse_device, positive_float, positive_int, writable_out

METHODS = ("ae", "vae", "beta-vae", "annealed-vae", "beta-tcvae", "factor-vae", "info-vae", "dip-vae-i",
           "dip-vae-ii", "fsq-ae")


def make_step(method: str, device: torch.device, batch: int):
    from diffrep.methods.vae import METHOD_CLASSES
    from diffrep.recipes.vae import paper_config

    cfg = paper_config(method, "dsprites")
    torch.manual_seed(0)
    model = METHOD_CLASSES[method](cfg.model).to(device).train()
    disc = set(map(id, model.discriminator_parameters())) if hasattr(model, "discriminator_parameters") else set()
    opts = [torch.optim.Adam([p for p in model.parameters() if id(p) not in disc], lr=cfg.train.lr)]
    if disc:
        opts.append(torch.optim.Adam(model.discriminator_parameters(), **model.discriminator_optimizer_settings()))
    g = torch.Generator().manual_seed(0)
    x = ((torch.rand(batch, 1, 64, 64, generator=g) > 0.9).float() * 2 - 1).to(device)
    step = [0]

    def run():
        out = model.loss(x, step=step[0])
        loss = out["loss"] + out["disc_loss"] if "disc_loss" in out else out["loss"]
        loss.backward()
        for o in opts:
            o.step()
            o.zero_grad(set_to_none=True)
        step[0] += 1

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=positive_int, default=64)
    ap.add_argument("--rounds", type=positive_int, default=10, help="interleaved rounds (at least 3 are run)")
    ap.add_argument("--budget", type=positive_float, default=60.0, help="seconds before stopping the rounds")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                    help="any of: " + ", ".join(METHODS))
    ap.add_argument("--json", default=None, help="write the rows here (refused when the file exists, unless --overwrite)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --json")
    args = ap.parse_args(argv)
    device = parse_device(ap, args.device)
    writable_out(ap, "--json", args.json, overwrite=args.overwrite)
    print(banner(device, f"VAE baselines, 64x64x1, batch {args.batch}, interleaved medians"))
    fns = [make_step(m, device, args.batch) for m in args.methods]
    meds = interleaved_medians(fns, device, args.rounds, args.budget)
    base = dict(zip(args.methods, meds)).get("vae", meds[0])
    print(f"{'method':<14} {'ms/step':>9} {'steps/s':>8} {'time / VAE':>10}")
    rows = []
    for m, t in zip(args.methods, meds):
        rows.append({"method": m, "ms_per_step": 1e3 * t, "steps_per_s": 1 / t, "ratio_to_vae": t / base})
        print(f"{m:<14} {1e3 * t:9.1f} {1 / t:8.2f} {t / base:10.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "batch": args.batch, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
