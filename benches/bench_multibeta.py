"""Training step time of each phase of the denoising multi-beta VAE (docs/methods/multibeta.md#recipes), side by side.

For each recipe (its model config, batches of uniform random images of its shape: the timing is the real one,
the loss is not meaningful) one optimiser step (loss, backward, AdamW) of

- ``phase1``: the multi-beta VAE, Eq. 4 with beta drawn per example (Algorithm 1);
- ``beta_vae``: the same VAE with beta fixed (the baseline of scripts/validate_multibeta.py): the same cost up to
  the beta draw, a check that phase 1 adds nothing to a beta-VAE step;
- ``phase2``: the latent diffusion, Eq. 19, on the frozen encoder (spec section 12: two encoder passes under
  no_grad, batched as one call of 2B, plus the latent network's forward and backward);
- ``enc2B``: that encoder pass alone (no_grad, 2B images), the part of ``phase2`` the latent network does not pay

is timed in interleaved rounds (benches/harness.py: the same load for all), median ms per step, with the ratios
phase2 / phase1, beta_vae / phase1 and enc2B / phase2. bf16 autocast on CUDA (as the trainer), float32 on the CPU.

    OMP_NUM_THREADS=1 python benches/bench_multibeta.py                        # the CPU recipe
    python benches/bench_multibeta.py --device cuda --recipes multibeta/shapes3d multibeta/celebahq256 --batch 16
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from harness import banner, interleaved_times, load_average, parse_device, recipe_rows, writable_out


def _step_fn(model, opt, x, device, beta=None):
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out = model.loss(x, step=0, beta=beta) if beta is not None else model.loss(x, step=0)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def time_recipe(name: str, device: torch.device, batch: int | None, repeat: int, budget: float) -> dict:
    from diffrep.methods.multibeta import MultiBeta
    from diffrep.recipes import get_recipe

    cfg = get_recipe(name).make_config()
    v = cfg.model.vae
    torch.manual_seed(0)
    p1 = MultiBeta(cfg.model).to(device).train()
    torch.manual_seed(0)
    p2 = MultiBeta(cfg.model).to(device)
    p2.use_untrained_frozen_parts()  # timing: a phase-2 step costs the same whatever the VAE's weights
    p2.set_phase(2)
    p2.train()
    b1 = batch or cfg.train.batch_size
    b2 = batch or cfg.train_latent.batch_size
    x1 = torch.rand(b1, v.in_channels, v.image_size, v.image_size, device=device) * 2 - 1
    x2 = torch.rand(b2, v.in_channels, v.image_size, v.image_size, device=device) * 2 - 1
    opt1 = torch.optim.AdamW([p for p in p1.parameters() if p.requires_grad], lr=1e-4)
    opt2 = torch.optim.AdamW([p for p in p2.parameters() if p.requires_grad], lr=1e-4)
    fixed = torch.full((b1,), 0.5, device=device)
    t2 = torch.rand(2 * b2, device=device)

    def enc():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            p2.vae.encoder(torch.cat([x2, x2]), t2)

    names = ("phase1", "beta_vae", "phase2", "enc2B")
    fns = (_step_fn(p1, opt1, x1, device), _step_fn(p1, opt1, x1, device, beta=fixed), _step_fn(p2, opt2, x2, device), enc)
    times = interleaved_times(fns, device, repeat, budget)
    ms = {k: 1e3 * statistics.median(t) for k, t in zip(names, times)}
    return {"recipe": name, "batch_phase1": b1, "batch_phase2": b2, "image": [v.in_channels, v.image_size, v.image_size],
            "latent": list(v.latent_shape), "ms": ms, "rounds": len(times[0]),
            "ratio_phase2_over_phase1": ms["phase2"] / ms["phase1"], "ratio_beta_vae_over_phase1": ms["beta_vae"] / ms["phase1"],
            "share_enc2B_in_phase2": ms["enc2B"] / ms["phase2"],
            "params_m": {"vae": sum(p.numel() for p in p1.vae.parameters()) / 1e6,
                         "denoiser": sum(p.numel() for p in p1.denoiser.parameters()) / 1e6},
            "dtype": "bf16 autocast" if device.type == "cuda" else "float32"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--recipes", nargs="+", default=["multibeta/dsprites-cpu"])
    ap.add_argument("--batch", type=int, default=None, help="batch of both phases (default: the recipe's)")
    ap.add_argument("--repeat", type=int, default=10, help="interleaved rounds (at least 3)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per recipe before stopping the rounds")
    ap.add_argument("--json", default=None, help="append one JSON line per recipe here")
    args = ap.parse_args(argv)
    if args.repeat < 1 or (args.batch is not None and args.batch < 1) or args.budget <= 0:
        ap.error("--repeat and --batch must be >= 1, --budget > 0")
    device = parse_device(ap, args.device)
    writable_out(ap, "--json", args.json, append=True)
    print(banner(device, f"load {load_average()}"))
    print(f"{'recipe':28s} {'B1':>4s} {'B2':>4s} {'phase1':>9s} {'beta_vae':>9s} {'phase2':>9s} {'enc2B':>9s} "
          f"{'p2/p1':>6s} {'bv/p1':>6s} {'enc/p2':>6s}  (ms/step, median of interleaved rounds)")

    def row(name, r):
        m = r["ms"]
        print(f"{name:28s} {r['batch_phase1']:4d} {r['batch_phase2']:4d} {m['phase1']:9.1f} {m['beta_vae']:9.1f} "
              f"{m['phase2']:9.1f} {m['enc2B']:9.1f} {r['ratio_phase2_over_phase1']:6.2f} "
              f"{r['ratio_beta_vae_over_phase1']:6.2f} {r['share_enc2B_in_phase2']:6.2f}  ({r['rounds']} rounds)")
        if args.json:
            with open(args.json, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(r) + "\n")

    return recipe_rows(args.recipes, lambda name: time_recipe(name, device, args.batch, args.repeat, args.budget),
                       row, 28)


if __name__ == "__main__":
    raise SystemExit(main())
