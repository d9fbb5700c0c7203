"""``diffrep bfn``: plain Bayesian Flow Networks from the command line.

``diffrep bfn train RECIPE [--out DIR] [--a.b VALUE ...]`` trains a ``bfn/...`` recipe (``diffrep bfn
recipes`` lists them; ``bfn/digits`` runs on a CPU in minutes); ``diffrep bfn sample PATH [--n 16]
[--steps N] [--weights auto|ema|model]`` draws a grid with the fixed n-step sampler
(docs/kernels/bfn.md#sampler). The generic ``diffrep train`` /
``diffrep sample`` accept the same recipes and models.
"""

from __future__ import annotations

from ._common import add_recipe_verbs


def register(sub) -> None:
    p = sub.add_parser("bfn", help="train and sample plain Bayesian Flow Networks", description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="bfn_command", metavar="VERB")
    add_recipe_verbs(verbs, "bfn/", "train a bfn/ recipe (same flags as diffrep train)")
    s = verbs.add_parser("sample", help="sample a grid from a trained BFN (same flags as diffrep sample)")
    from .sample import add_sample_arguments, run as _sample

    add_sample_arguments(s)  # --weights auto|ema|model as everywhere (diffrep.cli._common.add_weights_flag)
    s.set_defaults(func=_sample, model_class="BFN")  # 'bfn sample' of a ToyDDPM sampled it silently
