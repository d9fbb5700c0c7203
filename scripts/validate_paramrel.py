"""Validate ParamReL end to end: train the CPU recipe, then compare the learned representation with
that of the same network with an untrained encoder (slow; not part of the test suite).

    python scripts/validate_paramrel.py [--recipe paramrel/dsprites] [--steps N] [--eval quick|full]
                                        [--out benches/results/paramrel_validation_cpu.json] [--overwrite]

Both models are built from the same recipe and seed; "untrained" is the freshly initialised network
(same architecture and initialisation as the trained model at step 0). Both are scored with the
quickstart's metric suite (MIG, DCI, FactorVAE, SAP, modularity/explicitness, InfoMEC) on the
encoder mean z_0. The script also reports the reconstruction error of reverse-sampling + decoding
against unconditional samples. It exits with status 1 unless the trained representation beats the
untrained one on MIG and on DCI disentanglement by the margins given (defaults 0.05 and 0.05). An existing
``--out`` (the default is the committed record) is refused before training unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    import torch

    from diffrep.cli.quickstart import SUMMARY, evaluate_representation
    from diffrep.config import apply_overrides
    from diffrep.recipes import get_recipe
    from diffrep.recipes.paramrel import ParamReLRecipeConfig
    from diffrep.train import Trainer, seed_everything
    from diffrep.train.rundir import check_run_dir

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="paramrel/dsprites")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--eval", choices=("quick", "full"), default="quick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin-mig", type=float, default=0.05)
    ap.add_argument("--margin-dci", type=float, default=0.05)
    ap.add_argument("--out", default="benches/results/paramrel_validation_cpu.json",
                    help="the JSON record (default %(default)s); an existing file is refused unless --overwrite")
    ap.add_argument("--run-dir", default="runs/validate_paramrel")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier run in --run-dir and an existing --out")
    args, rest = ap.parse_known_args(argv)  # the rest: dotted config overrides, e.g. --model.gamma_mi 0.5
    args.overrides = rest
    if Path(args.out).exists() and not args.overwrite:  # before training: it was replaced after the whole run
        ap.error(f"--out {args.out} exists (an earlier record); choose another --out or add --overwrite")

    over = ["--train.seed", str(args.seed)] + (["--train.steps", str(args.steps)] if args.steps else [])
    over += list(args.overrides or [])
    try:
        recipe = get_recipe(args.recipe)
        cfg = apply_overrides(recipe.make_config(), over)
        if not isinstance(cfg, ParamReLRecipeConfig):
            ap.error(f"{args.recipe} is not a paramrel recipe")
        if not args.overwrite:
            check_run_dir(args.run_dir)  # a finished run there would be refused only after the models are built
        seed_everything(cfg.train.seed)
        model, dataset = recipe.build(cfg)  # a missing --data.root: FileNotFoundError before any data is read
    except (ValueError, OSError) as exc:  # an unknown recipe, override or data folder: a message, not a traceback
        ap.error(str(exc))
    seed_everything(cfg.train.seed)
    untrained, _ = recipe.build(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    t0 = time.perf_counter()
    Trainer(model, dataset, cfg.train, args.run_dir).train(overwrite=args.overwrite)
    t_train = time.perf_counter() - t0
    model.to(device)
    untrained.to(device)

    scores = {}
    for name, m in (("trained", model), ("untrained", untrained)):
        t0 = time.perf_counter()
        res = evaluate_representation(m, dataset, device, args.eval, args.seed)
        scores[name] = {"scores": dict(res), "seconds": time.perf_counter() - t0}

    # reverse-sampling + decoding vs unconditional samples, on 64 training images
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randint(0, len(dataset), (64,), generator=g).tolist()
    x = torch.stack([dataset[i][0] for i in idx]).to(device)
    model.eval()
    with torch.no_grad():
        rec = model.reconstruct(x)
        smp = model.sample(64, generator=torch.Generator(device=device).manual_seed(args.seed))
    err = {"reconstruction_l1": float((rec - x).abs().mean()), "unconditional_sample_l1": float((smp - x).abs().mean())}

    tr, un = scores["trained"]["scores"], scores["untrained"]["scores"]
    ok = (tr["mig"] >= un["mig"] + args.margin_mig
          and tr["dci_disentanglement"] >= un["dci_disentanglement"] + args.margin_dci)
    record = {"recipe": recipe.name, "overrides": list(args.overrides or []), "steps": cfg.train.steps, "eval_sizes": args.eval, "seed": args.seed,
              "train_seconds": t_train, "device": str(device),
              "machine": {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
                          "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
              "scores": scores, "reconstruction": err, "margins": {"mig": args.margin_mig, "dci": args.margin_dci},
              "passed": ok}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    w = max(len(n) for n, _ in SUMMARY)
    print(f"{'metric':<{w}}  trained  untrained")
    for name, key in SUMMARY:
        if key in tr:
            print(f"{name:<{w}}  {tr[key]:7.3f}  {un[key]:9.3f}")
    print(f"reconstruction L1 {err['reconstruction_l1']:.3f} vs unconditional samples {err['unconditional_sample_l1']:.3f}")
    print(f"{'PASSED' if ok else 'FAILED'}; wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
