"""``diffrep train RECIPE [--config FILE.yaml] [--out DIR] [--resume latest|PATH] [--overwrite] [--threads N] [--report-to tensorboard,wandb] [--section.field VALUE ...]``.

The recipe's config dataclass gives the defaults; a YAML file is merged over them; dotted
overrides come last (``--train.steps 50 --model.unet.channel_mult 1,2``). Unknown fields, wrong
types and impossible shapes fail here, naming the field, before anything is built. Under torchrun
the same command trains with DistributedDataParallel:
``torchrun --standalone --nproc-per-node=2 -m diffrep.cli train demo/toy-ddpm``.

Run folders never mix (docs/architecture.md, "Run folders"): a folder that already holds a run is
refused unless ``--resume`` continues it or ``--overwrite`` replaces it (deleting only what diffrep
wrote); a resume keeps the run's config (only ``train.steps`` and the logging, checkpoint, sampling,
evaluation and device settings may change: RESUMABLE_FIELDS). ``--data.root PATH`` sets the dataset root of every recipe that reads files. Ctrl-C or
SIGTERM saves a checkpoint at the current step and prints the command that resumes it (exit code
130 or 143). ``diffrep train RECIPE --help`` lists every config field of the recipe with its type,
default and description (read from the dataclasses, diffrep.config.describe); ``--print-config``
prints the resolved config as YAML with the same as comments. ``--resume-inexact`` resumes a
checkpoint written by a different number of ranks (data order continues; random streams do not).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
from pathlib import Path

from ..train.config import RESUMABLE as _RESUMABLE, resume_changes
from ._common import DEFAULT_THREADS

EPILOG = ("Overrides: any --a.b value pair after the recipe sets that config field; 'diffrep train RECIPE --help' "
          "lists them with types, defaults and descriptions.")
REPORT_TO = ("jsonl", "tensorboard", "wandb")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a recipe (see --list)", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    p.add_argument("recipe", nargs="?", help="recipe name, e.g. demo/toy-ddpm")
    p.add_argument("--list", action="store_true", help="list the registered recipes and exit")
    _add_run_flags(p)
    p.add_argument("overrides", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=run, _parser=p)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file merged over the recipe's defaults")
    p.add_argument("--out", help="run directory (default: runs/<recipe>)")
    p.add_argument("--resume", help="'latest' (the newest valid checkpoint of --out; none: start fresh) or a "
                   "checkpoint directory; the config must match the run's config.yaml but for train.steps and the "
                   "logging, checkpoint, sampling, evaluation and device settings")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace the run in --out (deletes only the files diffrep wrote there)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML (with each "
                   "field's type and description as comments) and exit")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default 1, as quickstart; 0 "
                   "keeps torch's default)")
    p.add_argument("--report-to", default=None, help="comma-separated loggers besides the JSONL record "
                   f"(metrics.jsonl, always written): {', '.join(REPORT_TO[1:])}; sets train.tensorboard / train.wandb")
    p.add_argument("--resume-inexact", action="store_true", default=None,
                   help="allow --resume from a checkpoint written by a different number of ranks (inexact: the "
                        "data order continues, the random streams restart from the seed)")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve_config(recipe_name: str, config_file: str | None = None, overrides: list[str] | None = None):
    """Recipe defaults <- YAML file <- dotted overrides; returns (recipe, config)."""
    from ..config import apply_overrides, config_from_dict, config_to_dict
    from ..recipes import get_recipe
    from ..train import TrainConfig

    recipe = get_recipe(recipe_name)
    cfg = recipe.make_config()
    if config_file:
        cfg = config_from_dict(type(cfg), _deep_merge(config_to_dict(cfg), read_config_file(config_file)))
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    if not isinstance(getattr(cfg, "train", None), TrainConfig):
        raise TypeError(f"recipe {recipe_name!r}: its config has no 'train' field of type TrainConfig")
    return recipe, cfg


def read_config_file(path: str) -> dict:
    """The YAML mapping of ``--config``; a file that is not YAML is a message naming the line, not a traceback."""
    import yaml

    from ..config import load_yaml

    try:
        return load_yaml(path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"--config {path}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--config {path}: not a text (UTF-8) file") from None
    except IsADirectoryError:
        raise ValueError(f"--config {path} is a folder; give a YAML file") from None
    except FileNotFoundError:  # was "PATH: No such file or directory", naming no flag
        raise FileNotFoundError(f"--config {path}: no such file") from None


def recipe_help(recipe_name: str) -> str:
    """Every config field of a recipe, one per entry: ``--path (type, default value)`` and its description."""
    import textwrap

    from ..config.describe import _flow, describe_fields
    from ..config import config_to_dict
    from ..recipes import get_recipe

    recipe = get_recipe(recipe_name)
    cfg = recipe.make_config()
    lines = [f"config fields of {recipe.name} ({recipe.description}); set any with --FIELD VALUE:"]
    for path, label, value, doc in describe_fields(cfg):
        lines.append(f"  --{path}  ({label}; default {_flow(config_to_dict(value))})")
        if isinstance(value, dict):  # a dict field: its keys are not fields of their own (config.set_path)
            doc = (doc + "; " if doc else "") + (f"one key: --{path}.KEY VALUE (the other keys kept); the whole "
                                                 f"dict: --{path} '{{KEY: VALUE, ...}}'")
        if doc:
            lines += textwrap.wrap(doc, width=100, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def check_override_tokens(recipe_name: str, tokens: list[str], prog: str = "diffrep train") -> None:
    """Say what ``apply_overrides`` would take silently, and refuse what it would name confusingly: one field
    given two different values (the last one wins, as a wrapper script's defaults followed by the user's own
    need; said on stderr, it was silent: ``--train.steps 5 ... --train.steps 500``), and a field that is not a
    bool given no value (a bare ``--train.steps`` was read as ``true``: "expected int, got bool True")."""
    from ..config import parse_override_args
    from ..recipes import get_recipe

    seen: dict[str, str] = {}
    for key, raw in parse_override_args(tokens):  # a malformed token is named here
        name = key.replace("-", "_")  # set_path reads --train.log-every as train.log_every
        if name in seen and seen[name] != raw:
            why = " (--report-to sets it)" if name in ("train.tensorboard", "train.wandb") else ""
            print(f"{prog}: config field '{name}' is given twice, as {seen[name]!r} and then as {raw!r}{why}; "
                  f"the last one, {raw!r}, is used", file=sys.stderr)
        seen[name] = raw
    bare = [t[2:] for i, t in enumerate(tokens) if t.startswith("--") and "=" not in t
            and (i + 1 == len(tokens) or (tokens[i + 1].startswith("--") and len(tokens[i + 1]) > 2))]
    if not bare:
        return
    cfg = get_recipe(recipe_name).make_config()
    for key in bare:
        value = cfg
        for part in key.replace("-", "_").split("."):
            value = getattr(value, part, None)
        if value is None or isinstance(value, bool):  # an unknown field is apply_overrides' to name; a bool is true
            continue
        kind = "a config section" if dataclasses.is_dataclass(value) else f"a field of type {type(value).__name__}"
        raise ValueError(f"--{key} is given no value; it is {kind}, so give --{key} VALUE (only a true/false "
                         f"field may stand alone, meaning true)")


def later_steps_note(cfg, overrides: list[str], config_file: dict | None = None) -> str | None:
    """A note, when ``train.steps`` is given (on the command line, or in the ``--config`` file: the same
    smoke test written either way), naming the steps it does not set: a smoke test ``--train.steps 2`` of a
    multi-phase recipe (multibeta/...) trained phase 2 for the recipe's ``train_latent.steps`` (and phase 3
    for ``train_adv.steps``), and one of a DisDiff run that pre-trains for its first ``model.pretrain_steps``
    steps (disdiff/shapes3d-cpu-onerun) never reached the disentangling stage. None when the user set those
    steps too (command line or ``--config`` file)."""
    from ..config import flatten_dict, parse_override_args
    from ..train import TrainConfig

    if not isinstance(getattr(cfg, "train", None), TrainConfig):
        raise TypeError(f"later_steps_note: cfg must be a recipe config (a train field of type TrainConfig), "
                        f"got {type(cfg).__name__}")
    if config_file is not None and not isinstance(config_file, dict):
        raise TypeError(f"later_steps_note: config_file must be the --config file's mapping, got "
                        f"{type(config_file).__name__}")
    on_line = {key.replace("-", "_") for key, _ in parse_override_args(overrides)}
    in_file = set(flatten_dict(config_file)) if config_file else set()
    given = on_line | in_file
    if "train.steps" in on_line:  # the command line's value is the one trained
        steps_flag, steps_set = "--train.steps", f"--train.steps={cfg.train.steps}"
    elif "train.steps" in in_file:  # --config alone printed no note (the same smoke test written in a file)
        steps_flag = "train.steps in the --config file"
        steps_set = f"train.steps={cfg.train.steps} in the --config file"
    else:
        return None

    def unset(field: str) -> bool:  # a whole section given at once sets its steps too
        return field not in given and field.rsplit(".", 1)[0] not in given

    phases = getattr(cfg, "phases", None)
    if callable(getattr(cfg, "train_for", None)) and phases is not None:  # multibeta/*: one TrainConfig per phase
        later = [(p, f) for p, f in ((2, "train_latent.steps"), (3, "train_adv.steps")) if p in phases and unset(f)]
        if not later:
            return None
        what = " and ".join(f"phase {p} trains {f}={cfg.train_for(p).steps}" for p, f in later)
        add = " ".join(f"--{f} N" for _, f in later)
        return f"note: {steps_flag} sets phase 1 only; {what} (add {add})"
    model = getattr(cfg, "model", None)
    pre = getattr(model, "pretrain_steps", 0)
    if (getattr(model, "stage", None) == "disentangle" and isinstance(pre, int) and pre >= cfg.train.steps
            and unset("model.pretrain_steps")):  # DisDiff, both stages in one run
        return (f"note: {steps_set} ends the run within its first model.pretrain_steps={pre} "
                f"steps, which pre-train eps_theta: it never disentangles (add --model.pretrain_steps N, "
                f"N < train.steps)")
    return None


def _report_overrides(report_to: str | None) -> list[str]:
    if not report_to:
        return []
    names = [n.strip() for n in report_to.split(",") if n.strip()]
    bad = [n for n in names if n not in REPORT_TO]
    if bad:
        raise ValueError(f"--report-to: unknown {bad}; choose from {list(REPORT_TO)}")
    out = []
    for n in names:
        if n != "jsonl":
            out += [f"--train.{n}", "true"]
    return out


def check_flag_like_overrides(recipe_name: str, tokens: list[str], prog: str = "diffrep train") -> None:
    """Refuse a ``--name`` without a dot that is no field of the recipe's config, saying that it is not one of
    ``diffrep train``'s own flags either and naming the closest flag or field: the remainder after the recipe
    holds both kinds, and config's own "unknown field for DemoConfig" left a mistyped ``--outt`` looking like a
    config problem."""
    from ..config import config_to_dict, flatten_dict, parse_override_args
    from ..recipes import get_recipe

    cfg = get_recipe(recipe_name).make_config()
    top = [f.name for f in dataclasses.fields(cfg) if f.init]
    for key, _ in parse_override_args(tokens):
        if "." in key or key.replace("-", "_") in top:  # a dotted path is config's to name (with its own hint)
            continue
        own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        _add_run_flags(own)
        flags = [a.option_strings[0] for a in own._actions]
        paths = [*top, *flatten_dict(config_to_dict(cfg))]
        close = difflib.get_close_matches(f"--{key}", flags + [f"--{p}" for p in paths], n=1)
        if not close:  # a field's own name without its section: --steps for --train.steps
            leaf = {p.rsplit(".", 1)[-1]: p for p in reversed(paths)}  # the first field of a shared name wins
            close = [f"--{leaf[m]}" for m in difflib.get_close_matches(key.replace("-", "_"), list(leaf), n=1)]
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ValueError(f"config field '{key}': unknown field for {type(cfg).__name__} (known: {', '.join(top)}), "
                         f"and --{key} is not a flag of '{prog}' either ({', '.join(flags)}; see '{prog} --help', and "
                         f"'{prog} {recipe_name} --help' for the fields){hint}")


def run(args) -> int:
    from ..recipes import list_recipes

    if args.list:
        for r in list_recipes():
            print(f"{r.name:28s} {'[cpu] ' if r.cpu_friendly else ''}{r.description}")
        return 0
    for k in ("overwrite", "threads", "report_to", "resume_inexact"):  # callers building a Namespace by hand
        if not hasattr(args, k):
            setattr(args, k, None)
    rest = list(args.overrides or [])
    # our own flags may also follow the recipe name; pull them out of the remainder
    extra = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_run_flags(extra)
    extra.add_argument("-h", "--help", action="store_true")
    known, overrides = extra.parse_known_args(rest)
    for k in ("config", "out", "resume", "overwrite", "threads", "report_to", "resume_inexact"):
        if getattr(known, k) is not None:
            setattr(args, k, getattr(known, k))
    args.print_config = args.print_config or known.print_config
    if known.help:
        print(args._parser.format_help() if getattr(args, "_parser", None) else "")
        print(recipe_help(args.recipe) if args.recipe else "")
        return 0
    if not args.recipe:
        raise ValueError("no recipe given; run 'diffrep train --list' to see them")
    overrides = overrides + _report_overrides(args.report_to)
    check_override_tokens(args.recipe, overrides, getattr(args, "said_as", "diffrep train"))
    check_flag_like_overrides(args.recipe, overrides, getattr(args, "said_as", "diffrep train"))
    recipe, cfg = resolve_config(args.recipe, args.config, overrides)
    if args.print_config:
        from ..config.describe import annotated_yaml

        sys.stdout.write(annotated_yaml(cfg))
        return 0
    import os

    from ..recipes.runinfo import write_run_info
    from ..train import Trainer, TrainingInterrupted, check_launch, check_run_dir, seed_everything
    from ..train.distributed import get_rank

    from ..train.loggers import check_logger_packages
    from ._common import apply_threads

    check_logger_packages(cfg.train.tensorboard, cfg.train.wandb)  # before anything is built or written
    _check_eval_presets(cfg.train)
    check_launch()
    apply_threads(DEFAULT_THREADS if args.threads is None else args.threads)
    out = Path(args.out or Path("runs") / recipe.name.replace("/", "_"))
    overwrite = bool(getattr(args, "overwrite", False))
    main_rank = int(os.environ.get("RANK", "0")) == 0 and get_rank() == 0
    phased = getattr(cfg, "train_phases", None)  # a multi-phase recipe (multibeta/*): one Trainer run per phase
    if main_rank:
        note = later_steps_note(cfg, overrides, read_config_file(args.config) if args.config else None)
        if note:
            print(note, file=sys.stderr, flush=True)
        _check_not_another_kind_of_folder(out)
        removed = check_run_dir(out, resume=args.resume, overwrite=overwrite)  # before anything is written
        prepare = getattr(cfg, "prepare_phase_folders", None)  # a multi-phase recipe: its phase folders too
        if callable(phased) and callable(prepare):
            removed += prepare(out, resume=args.resume, overwrite=overwrite)
        if args.resume is not None:
            _check_resume_target(out, recipe.name, callable(phased))
            _check_resume_config(out, cfg)
            if not callable(phased):
                _check_resume_step(args.resume, out, cfg.train.steps)
        if removed:
            print(f"--overwrite: removed the earlier run's {len(removed)} files from {out}", file=sys.stderr)
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    # built before the folder is written: a recipe that cannot build (its dataset's files missing, a first stage
    # not given) left a folder holding config.yaml and run.json of a run that never started
    model, dataset = recipe.build(cfg)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
    record = _RunRecord(out, recipe.name, cfg) if main_rank else None
    if record is not None and (args.resume is None or callable(phased)):
        record()  # a fresh run: the folder holds no other run's record (check_run_dir)
    try:
        if callable(phased):
            history = phased(model, dataset, out, resume=args.resume, overwrite=overwrite)
        else:
            # resuming: the run's config.yaml / run.json are rewritten after the first step, once the trainer has
            # loaded the checkpoint; a refused resume (another model class, a corrupt checkpoint, ...) overwrote them
            callbacks = [record] if record is not None and not record.written else []
            history = Trainer(model, dataset, cfg.train, out, name=recipe.name, callbacks=callbacks).train(
                resume=args.resume, resume_inexact=bool(args.resume_inexact))
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
        last = next((r for r in reversed(history) if "loss" in r), {})  # not a periodic-evaluation record
        if not last and args.resume is not None:
            print(f"{recipe.name}: nothing to train, the run is already at train.steps={cfg.train.steps} (final/ rewritten "
                  f"from its checkpoint); raise --train.steps to continue; run directory {out}", file=sys.stderr)
            return 0
        print(f"trained {recipe.name} to step {last.get('step', cfg.train.steps)}: loss {last.get('loss', float('nan')):.4g}; "
              f"run directory {out}", file=sys.stderr)
    return 0


class _RunRecord:
    """Writes the run's ``config.yaml`` and ``run.json`` once: called directly, or as a trainer callback."""

    def __init__(self, out: Path, recipe_name: str, cfg):
        self.out, self.recipe_name, self.cfg, self.written = out, recipe_name, cfg, False

    def __call__(self, *_args) -> None:
        if not self.written:
            from ..config import dump_yaml
            from ..recipes.runinfo import write_run_info

            dump_yaml(self.cfg, self.out / "config.yaml")
            write_run_info(self.out, self.recipe_name, self.cfg)
            self.written = True


def _check_not_another_kind_of_folder(out: Path) -> None:
    """Refuse a quickstart folder or a study folder as ``--out``: check_run_dir looks for a training run's own
    files, found none there, and the run's checkpoints/, final/ and metrics.jsonl went in beside the quickstart's
    figures (or the study's cells); --overwrite would not clear them either (it deletes only a run's files)."""
    from ..train.rundir import run_contents

    if (out / "quickstart.json").is_file() or ((out / "model" / "config.json").is_file() and run_contents(out / "run")):
        raise ValueError(f"{out} holds a 'diffrep quickstart' run (its run/ and model/); a training run there would "
                         f"mix with it: choose another --out")
    if (out / "study.json").is_file():
        raise ValueError(f"{out} holds a study (its study.json); a training run there would mix with its cells: "
                         f"choose another --out")


def _check_eval_presets(train_cfg) -> None:
    """An unknown ``train.eval_metrics`` preset, named before the run folder is written (the trainer found it
    only after config.yaml and run.json were)."""
    from ..train.evaluation import METRIC_PRESETS

    if getattr(train_cfg, "eval_every", 0):
        unknown = [m for m in train_cfg.eval_metrics if m not in METRIC_PRESETS]
        if unknown:
            raise ValueError(f"train.eval_metrics: unknown preset {unknown[0]!r}; known: {sorted(METRIC_PRESETS)}")


def _check_resume_target(out: Path, recipe_name: str, phased: bool) -> None:
    """Refuse ``--resume`` into a folder holding another recipe's run (its ``run.json``) or, for a multi-phase
    recipe, a single-phase run: the phases found no checkpoint of theirs, started afresh and wrote their
    phase folders, final/, config.yaml and run.json into the other run's folder."""
    import json

    from ..recipes.runinfo import RUN_INFO_NAME
    from ..train.rundir import run_contents

    info = out / RUN_INFO_NAME
    if info.is_file():
        try:
            saved = json.loads(info.read_text(encoding="utf-8")).get("recipe")
        except (OSError, ValueError, AttributeError):
            saved = None
        if isinstance(saved, str) and saved != recipe_name:
            raise ValueError(f"--resume: {out} holds a run of recipe {saved!r} (its {RUN_INFO_NAME}), not {recipe_name!r}; "
                             f"resume it with 'diffrep train {saved} --out {out} --resume ...', or choose another --out")
    if phased:
        other = [c for c in run_contents(out) if c != "final/"]
        if other:
            raise ValueError(f"--resume: {out} holds a single-phase run ({', '.join(other[:3])}); {recipe_name} trains "
                             f"in phase folders and would mix with it: choose another --out")


# What a resume may change (diffrep.train.config.RESUMABLE): anything else (the model, the data, the optimiser,
# the seed, ...) would make one run of two configurations that its config.yaml cannot describe.
RESUMABLE_FIELDS = frozenset(f"train.{k}" for k in _RESUMABLE)


def _check_resume_config(out: Path, cfg) -> None:
    """Refuse ``--resume`` with a config that differs from the run's ``config.yaml`` outside RESUMABLE_FIELDS,
    before anything is written (it was silently accepted, and config.yaml then described only the later steps)."""
    import yaml

    from ..config import flatten_dict, load_yaml
    from ..config.core import config_to_dict

    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        return
    saved = flatten_dict(load_yaml(saved_path))
    now = flatten_dict(yaml.safe_load(yaml.safe_dump(config_to_dict(cfg), sort_keys=False)))  # as config.yaml holds it
    shown = resume_changes(saved, now, RESUMABLE_FIELDS)
    if shown:
        raise ValueError(f"--resume: the config differs from the run's {saved_path} in {shown}; a resumed run "
                         f"keeps its config (only train.steps and the logging, checkpoint, sampling, evaluation and "
                         f"device settings may change): resume with the run's values, or start a new run "
                         f"(another --out, or --overwrite)")


def _check_resume_step(resume, out: Path, steps: int) -> None:
    """Refuse, before config.yaml is rewritten, a resume from a checkpoint past ``train.steps`` (the step is read
    from the checkpoint's folder name; the trainer verifies the checkpoint itself)."""
    from ..train.checkpoint import _STEP_RE, list_checkpoints

    if str(resume) == "latest":
        found = list_checkpoints(out / "checkpoints")
        if not found:
            return
        step, path = found[-1]
    else:
        path = Path(resume)
        m = _STEP_RE.match(path.name)
        if m is None:
            return
        step = int(m.group(1))
    if step > steps:
        raise ValueError(f"--resume: checkpoint {path} is at step {step}, past train.steps={steps}; "
                         f"pass --train.steps N with N > {step} to train further")


def resume_command(args, out: Path) -> str:
    """The ``diffrep train`` command line that continues this run from its latest checkpoint."""
    import shlex

    parts = ["diffrep", "train", args.recipe, "--out", str(out), "--resume", "latest"]
    if args.config:
        parts += ["--config", args.config]
    if getattr(args, "threads", None) is not None:
        parts += ["--threads", str(args.threads)]
    if getattr(args, "report_to", None):
        parts += ["--report-to", args.report_to]
    rest = list(args.overrides or [])
    extra = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_run_flags(extra)
    _, overrides = extra.parse_known_args(rest)
    return shlex.join(parts + overrides)
