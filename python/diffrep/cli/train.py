"""``diffrep train RECIPE [--config FILE.yaml] [--out DIR] [--resume latest|PATH] [--overwrite] [--section.field VALUE ...]``.

The recipe's config dataclass gives the defaults; a YAML file is merged over them; dotted
overrides come last (``--train.steps 50 --model.unet.channel_mult 1,2``). Unknown fields, wrong
types and impossible shapes fail here, naming the field, before anything is built. Under torchrun
the same command trains with DistributedDataParallel:
``torchrun --standalone --nproc-per-node=2 -m diffrep.cli train demo/toy-ddpm``.

Run folders never mix (docs/architecture.md, "Run folders"): a folder that already holds a run is
refused unless ``--resume`` continues it or ``--overwrite`` replaces it (deleting only what diffrep
wrote). ``--data.root PATH`` sets the dataset root of every recipe that reads files. Ctrl-C or
SIGTERM saves a checkpoint at the current step and prints the command that resumes it (exit code
130 or 143).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = "Overrides: any --a.b value pair after the recipe sets that config field (see --print-config)."


def register(sub) -> None:
    p = sub.add_parser("train", help="train a recipe (see --list)", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    p.add_argument("recipe", nargs="?", help="recipe name, e.g. demo/toy-ddpm")
    p.add_argument("--list", action="store_true", help="list the registered recipes and exit")
    _add_run_flags(p)
    p.add_argument("overrides", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file merged over the recipe's defaults")
    p.add_argument("--out", help="run directory (default: runs/<recipe>)")
    p.add_argument("--resume", help="'latest' (the newest valid checkpoint of --out; none: start fresh) or a "
                   "checkpoint directory")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace the run in --out (deletes only the files diffrep wrote there)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_config(recipe_name: str, config_file: str | None = None, overrides: list[str] | None = None):
    """Recipe defaults <- YAML file <- dotted overrides; returns (recipe, config)."""
    from ..config import apply_overrides, config_from_dict, config_to_dict, load_yaml
    from ..recipes import get_recipe
    from ..train import TrainConfig

    recipe = get_recipe(recipe_name)
    cfg = recipe.make_config()
    if config_file:
        cfg = config_from_dict(type(cfg), _deep_merge(config_to_dict(cfg), load_yaml(config_file)))
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    if not isinstance(getattr(cfg, "train", None), TrainConfig):
        raise TypeError(f"recipe {recipe_name!r}: its config has no 'train' field of type TrainConfig")
    return recipe, cfg


def run(args) -> int:
    from ..config import dump_yaml
    from ..recipes import list_recipes

    if args.list:
        for r in list_recipes():
            print(f"{r.name:28s} {'[cpu] ' if r.cpu_friendly else ''}{r.description}")
        return 0
    rest = list(args.overrides or [])
    # our own flags may also follow the recipe name; pull them out of the remainder
    extra = argparse.ArgumentParser(add_help=False)
    _add_run_flags(extra)
    known, overrides = extra.parse_known_args(rest)
    for k in ("config", "out", "resume", "overwrite"):
        if getattr(known, k) is not None:
            setattr(args, k, getattr(known, k))
    args.print_config = args.print_config or known.print_config
    if not args.recipe:
        raise ValueError("no recipe given; run 'diffrep train --list' to see them")
    recipe, cfg = resolve_config(args.recipe, args.config, overrides)
    if args.print_config:
        import yaml

        from ..config import config_to_dict

        yaml.safe_dump(config_to_dict(cfg), sys.stdout, sort_keys=False)
        return 0
    import os

    from ..recipes.runinfo import write_run_info
    from ..train import Trainer, TrainingInterrupted, check_launch, check_run_dir, seed_everything
    from ..train.distributed import get_rank

    check_launch()
    out = Path(args.out or Path("runs") / recipe.name.replace("/", "_"))
    overwrite = bool(getattr(args, "overwrite", False))
    main_rank = int(os.environ.get("RANK", "0")) == 0 and get_rank() == 0
    if main_rank:
        removed = check_run_dir(out, resume=args.resume, overwrite=overwrite)  # before anything is written
        if removed:
            print(f"--overwrite: removed the earlier run's {len(removed)} files from {out}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        dump_yaml(cfg, out / "config.yaml")
        write_run_info(out, recipe.name, cfg)
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    model, dataset = recipe.build(cfg)
    phased = getattr(cfg, "train_phases", None)  # a multi-phase recipe (multibeta/*): one Trainer run per phase
    try:
        if callable(phased):
            history = phased(model, dataset, out, resume=args.resume, overwrite=overwrite)
        else:
            history = Trainer(model, dataset, cfg.train, out).train(resume=args.resume)
    except TrainingInterrupted as exc:
        if main_rank:
            how = resume_command(args, out)
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                how += " (under the same torchrun launcher)"
            print(f"interrupted at step {exc.step}; resume with: {how}", file=sys.stderr, flush=True)
        return 128 + exc.signum
    if main_rank:
        if (out / "final").is_dir():
            write_run_info(out / "final", recipe.name, cfg)
        last = history[-1] if history else {}
        print(f"trained {recipe.name} to step {last.get('step', cfg.train.steps)}: loss {last.get('loss', float('nan')):.4g}; "
              f"run directory {out}", file=sys.stderr)
    return 0


def resume_command(args, out: Path) -> str:
    """The ``diffrep train`` command line that continues this run from its latest checkpoint."""
    import shlex

    parts = ["diffrep", "train", args.recipe, "--out", str(out), "--resume", "latest"]
    if args.config:
        parts += ["--config", args.config]
    rest = list(args.overrides or [])
    extra = argparse.ArgumentParser(add_help=False)
    _add_run_flags(extra)
    _, overrides = extra.parse_known_args(rest)
    return shlex.join(parts + overrides)
