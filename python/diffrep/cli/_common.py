"""Pieces every model verb of the command line shares: the device, the thread count, the weights
(``--weights``), model/run folders and output paths (docs/architecture.md#configuration-and-command-line).

One convention for ``--weights`` across ``sample``, ``eval``, ``encode`` and the method verbs:
``auto`` (the default) takes the EMA weights when the folder has them and otherwise the raw weights,
saying so on stderr (:func:`diffrep.nn.pretrained.resolve_weights`, which ``diffrep study`` uses too);
``ema`` insists on the EMA copy (an error when there is none); ``model`` takes the
raw weights. Every model verb accepts a model folder (``config.json``), a checkpoint folder or a run
folder (its newest complete checkpoint, else its ``final/``: :func:`resolve_model_dir`).
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

# one resolution of --weights auto for every verb and the study runner (which sits below the CLI)
from ..nn.pretrained import WEIGHTS_CHOICES, resolve_weights
from .._checks import a_or_an

__all__ = ["add_device_flag", "add_threads_flag", "add_weights_flag", "torch_seed", "numpy_seed", "resolve_device", "apply_threads",
           "resolve_model_dir", "resolve_weights", "prepare_output", "output_path", "add_overwrite_flag", "input_file",
           "check_root",
           "DEFAULT_THREADS",
           "IMAGE_SUFFIXES", "add_recipe_verbs", "list_prefixed", "train_prefixed", "add_option_flag", "parse_options",
           "add_run_data_flags", "run_data_settings", "run_dataset"]

# the same default as ``diffrep quickstart --threads`` (measured there: 2 threads on a busy 2-core machine
# ran 30x slower than 1 for these small convolutions); 0 keeps torch's own default
DEFAULT_THREADS = 1


def add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (default): CUDA when available, else CPU")


def add_threads_flag(p: argparse.ArgumentParser, default: int | None = DEFAULT_THREADS) -> None:
    p.add_argument("--threads", type=int, default=default,
                   help=f"CPU threads for torch (default {default}, as quickstart; 0 keeps torch's default)")


def add_weights_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", choices=WEIGHTS_CHOICES, default="auto",
                   help="auto (default): the EMA weights when the folder has them, else the raw weights (said on "
                        "stderr); ema: the EMA weights or an error; model: the raw weights")


def _seed(text: str, bits: int) -> int:
    """``text`` as an integer in [0, 2^bits), else an argparse error naming the range (argparse adds the flag)."""
    try:
        value = int(text)
    except ValueError:  # argparse's own "invalid int value" did not say which integers
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^{bits}), got {text!r}") from None
    if not 0 <= value < 2**bits:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2^{bits}), got {text}")
    return value


def torch_seed(text: str) -> int:
    """An argparse ``type`` for a ``--seed`` that seeds only torch generators: an integer in [0, 2^64) (the
    range torch takes), refused at parsing with the flag named; torch's own error for a larger value,
    "Overflow when unpacking long long", named neither the flag nor the range."""
    return _seed(text, 64)


def numpy_seed(text: str) -> int:
    """An argparse ``type`` for a ``--seed`` that also seeds a numpy ``RandomState`` (the metrics' factor draws):
    an integer in [0, 2^32), the range both numpy and torch take. Refused at parsing with the flag named: the
    method verbs' plain ``type=int`` refused ``1e20`` as an "invalid int value" without the range, and let a
    value outside it through to numpy's "Seed must be between 0 and 2**32 - 1", torch's "Overflow when
    unpacking long long" or the metrics' "seed must be < 2**32", after the model had loaded, none naming the flag."""
    return _seed(text, 32)


def resolve_device(name: str, flag: str = "--device") -> str:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a usable GPU -> ValueError naming why."""
    import torch

    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"{flag} must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        why = ("this torch is a CPU-only build" if torch.version.cuda is None
               else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
        raise ValueError(f"{flag} cuda: no CUDA device is usable here ({why}); use {flag} cpu or auto")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def apply_threads(n: int | None, flag: str = "--threads") -> int:
    """Set torch's intra-op thread count (``0``/None: keep torch's); returns the count in use."""
    import torch

    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{flag} must be an integer >= 0, got {n!r}")
        if n > 0:
            torch.set_num_threads(n)
    return torch.get_num_threads()


def resolve_model_dir(path: str | Path, flag: str = "") -> Path:
    """A directory holding config.json: ``path`` itself (a model or checkpoint folder), a run folder's
    ``final/``, or its newest complete checkpoint. ``flag``: the option that gave ``path`` (``--model``),
    named in the messages (a positional MODEL needs no name)."""
    from ..train.checkpoint import list_checkpoints

    path = Path(path)
    given = f"{flag} {path}" if flag else str(path)
    if not path.exists():
        raise FileNotFoundError(f"{given} does not exist (expected a model folder, a checkpoint folder or a run folder)")
    if not path.is_dir():  # e.g. final/config.json or model.safetensors: the folder holding it is the one to give
        raise FileNotFoundError(f"{given} is a file; give the model folder that holds it ({path.parent}) (a model, "
                                "checkpoint or run folder)")
    if (path / "config.json").is_file():
        return path
    found = list_checkpoints(path / "checkpoints")
    if found:
        return found[-1][1]
    if (path / "final" / "config.json").is_file():
        return path / "final"
    raise FileNotFoundError(f"{given}: no config.json, no complete checkpoint under checkpoints/, no final/")


# image formats the grids are written in (Pillow picks the format from the suffix)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def add_overwrite_flag(p: argparse.ArgumentParser, what: str = "output file") -> None:
    """``--overwrite``: the one way a verb replaces an existing output (:func:`prepare_output` refuses it
    otherwise), as ``diffrep train``, ``quickstart`` and the benches do."""
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace an existing {what} (without it an existing one is refused before any work)")


def prepare_output(path: str | Path | None, flag: str = "--out", suffixes: tuple[str, ...] | None = None, *,
                   overwrite: bool) -> Path | None:
    """Check an output file before any computing, so a typo fails at once rather than after the work
    (docs/architecture.md#outputs-never-mix). Refused: an existing folder given as a file path; a name not
    ending in one of ``suffixes`` (e.g. :data:`IMAGE_SUFFIXES`; numpy would append ``.npz``, Pillow would fail
    after the work); a folder that could not be made or written (a file in its way, no permission); and an
    existing file unless ``overwrite`` (the verb's ``--overwrite``): a second run silently replaced the first
    one's grid, and a default name inside a model folder made that the usual case.

    Nothing is created here: a command refused later for one of its inputs (a missing ``--real``, a model
    folder that does not exist) made the output's new folder before refusing. The writer makes it with
    :func:`output_path` when it writes."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"prepare_output: overwrite must be a bool, got {type(overwrite).__name__}")
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; give a file path")
    if suffixes and p.suffix.lower() not in suffixes:
        raise ValueError(f"{flag} {p}: give a file name ending in {' or '.join(suffixes)}")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise ValueError(f"{flag} {p} exists (an earlier output); choose another {flag} or add --overwrite to "
                         "replace it")
    made = p.parent  # the nearest folder that exists: the one the new folders would be made in
    while not made.exists() and made != made.parent:
        made = made.parent
    if not made.is_dir():  # what mkdir would say: EEXIST for a file as the folder itself, ENOTDIR above it
        why = errno.EEXIST if made == p.parent else errno.ENOTDIR
        raise ValueError(f"{flag} {p}: cannot create its folder ({os.strerror(why)})")
    if not os.access(made, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"{flag} {p}: not writable (check the permissions of {p if p.exists() else made})")
    return p


def output_path(path: str | Path) -> Path:
    """``path`` with its folder made: called by the writer of an output that :func:`prepare_output` checked, so
    that the folder appears only when the work is done and its file is written."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # changed since the check (a file put in its way)
        raise ValueError(f"{path}: cannot create its folder ({exc.strerror or exc})") from None
    return path


def input_file(path: str | Path, flag: str, what: str = "a file") -> Path:
    """An input file of a flag (``--videos``, ``--config``, ``--codes``, ...), checked before the verb loads a
    model or writes anything: a missing path or a folder is refused naming the flag (the readers' own errors
    came after the work, or named no flag); ``what`` says which file the flag wants."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a folder; give {what}")
    if not p.is_file():
        raise FileNotFoundError(f"{flag} {p}: no such file")
    return p


def check_root(root: str | Path | None, flag: str = "--root") -> None:
    """A dataset root given on the command line that does not exist, refused before the model loads (the
    loader, :func:`diffrep.data.load`, reads it after and says the same: a typo cost the model's loading)."""
    if root is not None and str(root) != "" and not Path(root).exists():
        raise FileNotFoundError(f"dataset root {root} does not exist (set by {flag})")


def add_option_flag(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--option KEY=VALUE`` (repeatable): a dataset option over the run's saved ones (:func:`parse_options`)."""
    p.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                   help=f"{prefix}dataset option of diffrep.data.load, over the run's (YAML value, repeatable), "
                        "e.g. --option size=32")


def add_run_data_flags(p: argparse.ArgumentParser, datasets: str = "") -> None:
    """The data flags of a model verb, over the run's saved settings as :func:`run_data_settings` reads them:
    ``--dataset`` (``datasets``: example names for its help), ``--pool``, ``--root`` and ``--option``."""
    examples = f", e.g. {datasets}" if datasets else ""
    p.add_argument("--dataset", default=None, help=f"a diffrep.data name{examples} (default: the one the model was "
                                                   "trained on, from its run.json)")
    p.add_argument("--pool", type=int, default=None, help="max-pool factor (default: the run's, else 1)")
    p.add_argument("--root", default=None, help="folder of the dataset's files (default: the run's, else $DIFFREP_DATA)")
    add_option_flag(p)


def parse_options(items) -> dict:
    """``--option KEY=VALUE`` items as a dict, each value read as YAML as config files are
    (:func:`diffrep.config.parse_yaml`: ``size=64`` -> 64, ``sigma=1e-3`` -> 0.001)."""
    from ..config import parse_yaml

    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option must be KEY=VALUE, got {item!r}")
        options[key] = parse_yaml(value)
    return options


def run_data_settings(args, fallback: dict | None = None) -> dict:
    """The data settings of a model verb: the run's saved ones (run.json of ``args.model``) under the
    command line's ``--dataset``, ``--option``, ``--pool`` and ``--root``, by the one rule of
    :func:`diffrep.recipes.runinfo.resolve_data_settings` (``fallback``: the verb's settings where the run
    records none, e.g. ``diffrep encdiff``'s sub-grid)."""
    from ..recipes.runinfo import resolve_data_settings

    settings = resolve_data_settings(args.model, args.dataset, pool=args.pool, options=parse_options(args.option),
                                     root=args.root, fallback=fallback)
    # these verbs have no --source: the loader's source argument is one of the --option settings
    return {**settings, "source_flag": "--option source="}


def run_dataset(args, fallback: dict | None = None, **extra):
    """``(dataset, settings)`` of a model verb: :func:`run_data_settings` and the dataset they describe
    (:func:`diffrep.recipes.runinfo.dataset_from_settings`, ``extra`` options over the settings' own)."""
    from ..recipes.runinfo import dataset_from_settings

    settings = run_data_settings(args, fallback)
    return dataset_from_settings(settings, **extra), settings


def add_recipe_verbs(verbs, prefix: str, train_help: str) -> None:
    """The ``recipes`` and ``train RECIPE [--a.b VALUE ...]`` verbs of a method family whose recipes are
    named ``prefix...`` (``diffrep bfn``, ``encdiff``, ``multibeta``, ``paramrel``)."""
    verbs.add_parser("recipes", help=f"list the {prefix} recipes").set_defaults(func=lambda args: list_prefixed(prefix))
    t = verbs.add_parser("train", help=train_help)
    t.add_argument("recipe", help=f"{a_or_an(prefix)} recipe (listed by the 'recipes' verb)")
    # argparse counts a REMAINDER positional as required: "required: recipe, overrides" when both are missing
    t.add_argument("overrides", nargs=argparse.REMAINDER,
                   help="the flags of 'diffrep train' and --section.field VALUE overrides (listed by "
                        "'diffrep train RECIPE --help')").required = False
    t.set_defaults(func=lambda args: train_prefixed(prefix, args.recipe, args.overrides, prog=t.prog))


def list_prefixed(prefix: str) -> int:
    """Print the registered recipes whose name starts with ``prefix``."""
    from ..recipes import list_recipes

    for r in list_recipes():
        if r.name.startswith(prefix):
            print(f"{r.name:28s} {'[cpu] ' if r.cpu_friendly else ''}{r.description}")
    return 0


def train_prefixed(prefix: str, recipe: str, overrides: list, prog: str = "diffrep train") -> int:
    """``diffrep train RECIPE ...`` for a recipe of the family ``prefix``. Its errors propagate to the ``main``
    that parsed the group's verb, so that they start with ``diffrep GROUP train`` (``prog``) as its usage errors
    do (a second ``main`` printed them as ``diffrep train``); its warnings say ``prog`` too."""
    from . import build_parser

    if not recipe.startswith(prefix):
        raise ValueError(f"this command takes {a_or_an(prefix)} recipe, got {recipe!r} (list them with the 'recipes' verb)")
    args = build_parser().parse_args(["train", recipe, *overrides])  # REMAINDER: no token is left unparsed
    args.said_as = prog
    return args.func(args)
