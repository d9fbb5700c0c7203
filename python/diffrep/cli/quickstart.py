"""``diffrep quickstart``: train ParamReL_d on procedural dSprites, then write its figures and metrics.

One command from a fresh install (no downloads): trains the ``paramrel/dsprites`` recipe (a discrete
BFN, K = 2, on dSprites max-pooled to 32 x 32, 10 latent dimensions) with a progress bar, then writes
into ``--out``:

- ``reconstructions.png``: inputs (top row) and their reconstructions by reverse-sampling with the
  exact inverse update followed by deterministic decoding (bottom row);
- ``samples.png``: unconditional samples (z re-encoded at every step, SepDiff Alg. 1);
- ``traversals.png``: every latent dimension of one image traversed over [-3, 3] (one row each);
- ``time_varying.png``: rows = inputs, then regenerations with z fixed at t* = 0.9, 0.8, 0.7;
- ``metrics.json``: MIG, DCI, FactorVAE, SAP, modularity/explicitness and InfoMEC of the encoder mean
  z_0, with sample sizes, seeds, timings and the machine; ``model/`` (save_pretrained); a summary table.

``--recipe`` runs any ParamReL recipe the same way (``paramrel/celeba64`` on a GPU: ``--device auto``
picks CUDA when present); metrics need a dataset with ground-truth factors and are skipped otherwise.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

# evaluation sample sizes: "quick" fits the 15-minute CPU budget, "full" is disentanglement_lib's
EVAL_SIZES = {
    "quick": dict(num_train=2000, num_test=1000, factor_vae=dict(num_train=300, num_eval=150,
                                                                   num_variance_estimate=2000, batch_size=64)),
    "full": dict(num_train=10000, num_test=5000, factor_vae=dict(num_train=10000, num_eval=5000,
                                                                  num_variance_estimate=10000, batch_size=64)),
}
METRICS = ("mig", "dci", "factor_vae", "sap", "modularity_explicitness", "infomec")
SUMMARY = (("MIG", "mig"), ("DCI disentanglement", "dci_disentanglement"), ("DCI completeness", "dci_completeness"),
           ("DCI informativeness", "dci_informativeness_test"), ("FactorVAE", "factor_vae_eval"), ("SAP", "sap"),
           ("modularity", "modularity"), ("explicitness", "explicitness_test"), ("InfoM", "infom"),
           ("InfoE", "infoe"), ("InfoC", "infoc"))


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="train ParamReL on dSprites (CPU, minutes) and write figures + metrics",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.add_argument("--recipe", default="paramrel/dsprites", help="a ParamReL recipe (default paramrel/dsprites)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--sample-steps", type=int, default=None, help="BFN steps n for the figures (default: recipe's)")
    p.add_argument("--eval", choices=tuple(EVAL_SIZES) + ("none",), default="quick",
                   help="metric sample sizes: quick (default), full (disentanglement_lib's) or none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart run in --out")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: these small convolutions gain little from more, and "
                        "2 threads on a busy 2-core machine measured 30x slower); 0 keeps torch's default")
    p.set_defaults(func=run)


def representation_fn(model, device, batch: int = 256):
    """observations (n, H, W, C) float in [0, 1] -> encoder means (n, L) as numpy (for diffrep.metrics)."""
    import numpy as np
    import torch

    def fn(obs):
        x = torch.from_numpy(np.ascontiguousarray(obs)).permute(0, 3, 1, 2).float() * 2 - 1
        with torch.no_grad():
            return torch.cat([model.encode(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)]).numpy()

    return fn


def evaluate_representation(model, dataset, device, sizes: str = "quick", seed: int = 0):
    """The disentanglement suite of ``METRICS`` on ``model.encode`` (eval mode) -> diffrep Result."""
    from ..metrics import evaluate

    if sizes not in EVAL_SIZES:
        raise ValueError(f"sizes must be one of {tuple(EVAL_SIZES)}, got {sizes!r}")
    s = EVAL_SIZES[sizes]
    was = model.training
    model.eval()
    try:
        return evaluate(dataset, representation_fn(model, device), metrics=METRICS, seed=seed,
                        num_train=s["num_train"], num_test=s["num_test"], factor_vae_kwargs=s["factor_vae"])
    finally:
        model.train(was)


def format_table(rows: list[tuple[str, str]]) -> str:
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"  {a:<{w}}  {b}" for a, b in rows)


def write_figures(model, dataset, out: Path, device, steps: int | None, seed: int) -> dict:
    """reconstructions / samples / traversals / time-varying PNGs; returns {name: seconds}."""
    import torch

    from ..viz import save_image

    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(dataset), (8,), generator=gen).tolist()
    x = torch.stack([dataset[i][0] for i in idx]).to(device)
    model.eval()
    times = {}
    t0 = time.perf_counter()
    rec = model.reconstruct(x, steps)
    save_image(torch.cat([x, rec]).cpu(), out / "reconstructions.png", nrow=8, value_range=(-1, 1))
    times["reconstructions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = torch.Generator(device=device).manual_seed(seed)
    save_image(model.sample(16, generator=g, num_steps=steps).cpu(), out / "samples.png", nrow=8, value_range=(-1, 1))
    times["samples"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trav = model.traverse(x[:1], num_values=7, num_steps=steps)  # [L, 7, C, H, W]
    save_image(trav.reshape(-1, *trav.shape[2:]).cpu(), out / "traversals.png", nrow=trav.shape[1],
               value_range=(-1, 1))
    times["traversals"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tv = model.time_varying(x, (0.9, 0.8, 0.7), steps)
    save_image(torch.cat([x[None], tv]).reshape(-1, *x.shape[1:]).cpu(), out / "time_varying.png", nrow=8,
               value_range=(-1, 1))
    times["time_varying"] = time.perf_counter() - t0
    return times


def run(args) -> int:
    import torch

    from ..config import apply_overrides
    from ..recipes import get_recipe
    from ..recipes.runinfo import write_run_info
    from ..train import Trainer, seed_everything
    from ..train.config import TrainConfig

    t_start = time.perf_counter()
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = get_recipe(args.recipe)
    cfg = recipe.make_config()
    if not hasattr(cfg, "model") or type(cfg.model).__name__ != "ParamReLConfig":
        raise ValueError(f"--recipe must be a ParamReL recipe (paramrel/...), got {args.recipe!r}")
    overrides = ["--train.device", args.device, "--train.seed", str(args.seed)]
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        overrides += ["--train.steps", str(args.steps)]
    if args.sample_steps is not None and args.sample_steps < 1:
        raise ValueError(f"--sample-steps must be >= 1, got {args.sample_steps}")
    cfg = apply_overrides(cfg, overrides)
    assert isinstance(cfg.train, TrainConfig)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed)
    model, dataset = recipe.build(cfg)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"diffrep quickstart: {recipe.name} ({n_params / 1e6:.2f}M parameters) for {cfg.train.steps} steps on "
          f"{device}; writing to {out}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    history = Trainer(model, dataset, cfg.train, out / "run").train(overwrite=args.overwrite)
    t_train = time.perf_counter() - t0
    model.to(device)
    model.save_pretrained(out / "model")
    write_run_info(out / "model", recipe.name, cfg)  # the data settings the model verbs read
    print("writing figures ...", file=sys.stderr, flush=True)
    fig_times = write_figures(model, dataset, out, device, args.sample_steps, args.seed)
    result, t_eval = None, 0.0
    if args.eval != "none" and hasattr(dataset, "sample_observations_from_factors"):
        print(f"evaluating the representation ({args.eval} sample sizes) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        result = evaluate_representation(model, dataset, device, args.eval, args.seed)
        t_eval = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    last = history[-1] if history else {}
    record = {"recipe": recipe.name, "steps": cfg.train.steps, "device": str(device),
              "final_train_loss": last.get("loss"), "bfn_loss_per_dim": last.get("bfn_loss_per_dim"),
              "seconds": {"train": t_train, "figures": fig_times, "metrics": t_eval, "total": wall},
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "torch_threads": torch.get_num_threads(),
                          "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
              "eval_sizes": args.eval, "metrics": result.to_json() if result is not None else None}
    (out / "metrics.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    rows = [("training", f"{cfg.train.steps} steps in {t_train:.0f} s, final loss {last.get('loss', float('nan')):.4g} "
                         f"({last.get('bfn_loss_per_dim', float('nan')):.4f} nats/dim)")]
    if result is not None:
        rows += [(name, f"{result[key]:.3f}") for name, key in SUMMARY if key in result]
    rows += [("wall time", f"{wall / 60:.1f} min"), ("output", str(out))]
    print("\nParamReL quickstart summary\n" + format_table(rows))
    return 0
