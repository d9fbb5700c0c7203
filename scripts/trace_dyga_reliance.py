"""Trace the condition reliance of the ``validate_dyga.py`` arms over training (a diagnostic; gates nothing).

    python scripts/trace_dyga_reliance.py [--seed 0] [--steps 700] [--every 100]
                                          [--arms baseline sd] [--device cpu] --out record.json

Each arm is trained exactly as ``scripts/validate_dyga.py`` trains it (same seed, data order, noise; the
last checkpoint's eval numbers equal that script's ``reliance`` record for the same seed, steps and
``--device``; cuda trains on a GPU with the same seeded CPU generators).
Every ``--every`` steps, on the script's 256 reliance images with its generator seed (the same t and
noise draws at every checkpoint), it records the Eq. 2 loss with the true and with shuffled tokens, their
ratio (the reliance) and their gap (shuffled - true):

- ``eval``: evaluation mode, t in [200, 800), 4 draws (what the validation records);
- ``sd_on``: the same draws with only the Skip Dropout layers in training mode (the network as trained),
  for arms that have them;
- ``eval_low_t`` / ``eval_high_t``: evaluation mode, t in [0, 200) and [800, 1000), 1 draw.

It asks why Skip Dropout lowers the reliance (docs/methods/encdiff.md#validation): if the ratio follows
the true-token loss (a denoiser that is behind), an SD arm at the baseline's true-token loss relies on the
condition at least as much as the baseline does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import validate_dyga  # noqa: E402  (the sibling script: one training loop for both)


def reliance_parts(model, x, *, t_range=(200, 800), seed: int = 0, repeats: int = 4,
                   skip_dropout_on: bool = False) -> dict:
    """``EncDiff.condition_reliance`` (the same draws from ``Generator().manual_seed(seed)``, in the same
    order), optionally with the Skip Dropout layers in training mode; the global RNG (which the masks use)
    is restored afterwards so a traced run trains as an untraced one."""
    import torch

    from diffrep.nn.unet import SkipDropout

    T = model.schedule.num_timesteps
    if not (isinstance(t_range, tuple) and len(t_range) == 2 and all(isinstance(v, int) for v in t_range)
            and 0 <= t_range[0] < t_range[1] <= T):
        raise ValueError(f"t_range must be a (lo, hi) tuple of ints with 0 <= lo < hi <= {T}, got {t_range!r}")
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] < 2:
        raise ValueError(f"x must be a batch of at least 2 images (B, C, H, W), got {getattr(x, 'shape', type(x))}")
    if not skip_dropout_on:
        return model.condition_reliance(x, t_range=t_range, generator=torch.Generator().manual_seed(seed),
                                        repeats=repeats)
    g = torch.Generator().manual_seed(seed)  # drawn on the CPU and moved, as condition_reliance does
    state, was = validate_dyga.rng_state(x.device), model.training
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, SkipDropout)]
    try:
        with torch.no_grad():
            tok = model.tokens(x)
            z0 = model.to_latent(x)
            for m in drops:
                m.train()
            f = (lambda e: e.abs().mean()) if model.config.loss_type == "l1" else (lambda e: e.pow(2).mean())
            true = shuf = 0.0
            B = x.shape[0]
            for _ in range(repeats):
                t = torch.randint(t_range[0], t_range[1], (B,), generator=g).to(x.device)
                noise = torch.randn(z0.shape, generator=g).to(x.device)
                z_t = model.schedule.q_sample(z0, t, noise)
                perm = ((torch.arange(B) + 1 + int(torch.randint(0, B - 1, (1,), generator=g))) % B).to(x.device)
                true += float(f(model.eps(z_t, t, tok) - noise))
                shuf += float(f(model.eps(z_t, t, tok[perm]) - noise))
    finally:
        validate_dyga.set_rng_state(state, x.device)
        model.train(was)
    return {"loss_true": true / repeats, "loss_shuffled": shuf / repeats, "reliance": shuf / max(true, 1e-12)}


def _with_gap(r: dict) -> dict:
    return dict(r, loss_gap=r["loss_shuffled"] - r["loss_true"])


def trace_arm(arm: str, seed: int, steps: int, every: int, ds, device="cpu") -> dict:
    import numpy as np
    import torch

    from diffrep.nn.unet import SkipDropout

    order = np.random.RandomState(seed).permutation(len(ds))  # validate_dyga.run_arm's reliance images
    xb = (ds.images01[torch.from_numpy(order[:256])] * 2 - 1).to(device)
    points = []

    def on_step(model, n):
        if n % every and n != steps:
            return
        state = validate_dyga.rng_state(device)
        p = {"step": n, "eval": _with_gap(reliance_parts(model, xb, seed=seed)),
             "eval_low_t": _with_gap(reliance_parts(model, xb, t_range=(0, 200), seed=seed, repeats=1)),
             "eval_high_t": _with_gap(reliance_parts(model, xb, t_range=(800, 1000), seed=seed, repeats=1))}
        if any(isinstance(m, SkipDropout) for m in model.modules()):
            p["sd_on"] = _with_gap(reliance_parts(model, xb, seed=seed, skip_dropout_on=True))
        validate_dyga.set_rng_state(state, device)
        points.append(p)
        print(json.dumps({"arm": arm, "step": n} | {k: round(v["reliance"], 3) for k, v in p.items() if k != "step"}
                         | {"loss_true": round(p["eval"]["loss_true"], 4)}), flush=True)

    _, losses, seconds = validate_dyga.train_arm(arm, seed, steps, ds, on_step=on_step, device=device)
    for p in points:
        p["train_loss_last50"] = float(np.mean(losses[max(0, p["step"] - 50):p["step"]]))
    return {"arm": arm, "seed": seed, "steps": steps, "seconds": round(seconds, 1), "points": points}


def main(argv=None) -> int:
    import torch

    from diffrep.recipes.encdiff import Shapes3DSubgrid

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--arms", nargs="+", default=["baseline", "sd"], choices=sorted(validate_dyga.ARMS))
    ap.add_argument("--device", default="cpu", choices=validate_dyga.DEVICES,
                    help="where the arms train and are traced (cuda: refused at once where torch sees no GPU)")
    ap.add_argument("--out", required=True, help="the JSON record (an existing file is refused)")
    args = ap.parse_args(argv)
    device = validate_dyga.parse_device(ap, args.device)
    if args.steps < 1 or args.every < 1:
        ap.error(f"--steps and --every must be positive, got {args.steps} and {args.every}")
    if Path(args.out).exists():
        ap.error(f"--out {args.out} exists (an earlier record); choose another --out")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ds = Shapes3DSubgrid(pool=4)
    arms = [trace_arm(arm, args.seed, args.steps, args.every, ds, device=device) for arm in args.arms]
    out = {"what": "scripts/trace_dyga_reliance.py: condition reliance (eval, SD on, low/high t) over training "
                   "of validate_dyga.py's arms", "seed": args.seed, "steps": args.steps, "every": args.every,
           "arms": arms, "seconds": round(time.perf_counter() - t0, 1),
           "command": "python scripts/trace_dyga_reliance.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": validate_dyga.machine(device)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
