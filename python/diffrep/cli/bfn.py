"""``diffrep bfn``: plain Bayesian Flow Networks from the command line.

``diffrep bfn train RECIPE [--out DIR] [--a.b VALUE ...]`` trains a ``bfn/...`` recipe (``diffrep bfn
recipes`` lists them; ``bfn/digits`` runs on a CPU in minutes); ``diffrep bfn sample PATH [--n 16]
[--steps N] [--weights auto|ema|model]`` draws a grid with the fixed n-step sampler
(docs/kernels/bfn.md#sampler). The generic ``diffrep train`` /
``diffrep sample`` accept the same recipes and models.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("bfn", help="train and sample plain Bayesian Flow Networks", description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="bfn_command", metavar="VERB")
    r = verbs.add_parser("recipes", help="list the bfn/ recipes")
    r.set_defaults(func=_recipes)
    t = verbs.add_parser("train", help="train a bfn/ recipe (same flags as diffrep train)")
    t.add_argument("recipe")
    t.add_argument("overrides", nargs=argparse.REMAINDER)
    t.set_defaults(func=_train)
    s = verbs.add_parser("sample", help="sample a grid from a trained BFN (same flags as diffrep sample)")
    from .sample import add_sample_arguments, run as _sample

    add_sample_arguments(s)  # --weights auto|ema|model as everywhere (diffrep.cli._common.add_weights_flag)
    s.set_defaults(func=_sample, model_class="BFN")  # 'bfn sample' of a ToyDDPM sampled it silently
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def list_prefixed(prefix: str) -> int:
    """Print the registered recipes whose name starts with ``prefix`` (shared with ``diffrep paramrel``)."""
    from ..recipes import list_recipes

    for r in list_recipes():
        if r.name.startswith(prefix):
            print(f"{r.name:28s} {'[cpu] ' if r.cpu_friendly else ''}{r.description}")
    return 0


def train_prefixed(prefix: str, recipe: str, overrides: list) -> int:
    """``diffrep train RECIPE ...`` for a recipe of the family ``prefix``."""
    from . import main

    if not recipe.startswith(prefix):
        raise ValueError(f"this command takes a {prefix} recipe, got {recipe!r} (list them with the 'recipes' verb)")
    return main(["train", recipe, *overrides])


def _recipes(args) -> int:
    return list_prefixed("bfn/")


def _train(args) -> int:
    return train_prefixed("bfn/", args.recipe, args.overrides)

