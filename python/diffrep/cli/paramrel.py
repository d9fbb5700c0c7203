"""``diffrep paramrel``: train ParamReL / SepDiff and run its tasks on a saved model.

    diffrep paramrel recipes
    diffrep paramrel train RECIPE [--out DIR] [--a.b VALUE ...]         (as diffrep train)
    diffrep paramrel sample MODEL [--n 16] [--steps N] [--z-source encoder|encoder_mean|prior_per_step|prior_fixed]
    diffrep paramrel reconstruct|traverse|time-varying|interpolate MODEL [--dataset NAME] [--pool K] [--n 8]
    diffrep paramrel attributes-encoding MODEL [--dataset NAME] [--n 8] [--subcodes 4]
    diffrep paramrel eval MODEL [--dataset NAME] [--pool K] [--eval quick|full] [--json OUT]

MODEL is a ``save_pretrained`` folder (a run's ``final/``, or the quickstart's ``model/``). The dataset,
its options (size ...), pooling and root default to the ones the model was trained with (the run's
``run.json``, docs/data.md); ``--dataset``/``--pool``/``--option``/``--root`` override them. Tasks write a
PNG (``--out``, default ``MODEL/samples.png`` / ``MODEL/<task>.png``; an existing output is refused before the work
unless ``--overwrite``, docs/architecture.md#outputs-never-mix); reconstructions use reverse-sampling with the exact inverse update; traversals span
[-3, 3]; time-varying rows fix z at t* = 0.9, 0.8, 0.7 (the papers' s* = 100/200/300 of T = 1000);
attributes encoding (SepDiff §4.3, ParamReL §5.2.1) keeps each image's latents {z_s} and draws
``--subcodes`` new subcodes: the first row holds the images, each further row one subcode.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .._checks import a_or_an

TASKS = ("reconstruct", "traverse", "time-varying", "interpolate", "attributes-encoding")
_TASK_HELP = {"attributes-encoding": "keep each image's latents, draw new subcodes (SepDiff §4.3, ParamReL §5.2.1)"}


def register(sub) -> None:
    from ._common import add_recipe_verbs, add_run_data_flags

    p = sub.add_parser("paramrel", help="ParamReL/SepDiff: train, sample, reverse-sample, traverse, evaluate",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="paramrel_command", metavar="VERB")
    add_recipe_verbs(verbs, "paramrel/", "train a paramrel/ recipe (same flags as diffrep train)")
    s = verbs.add_parser("sample", help="unconditional generation (SepDiff Alg. 1)")
    _model_flags(s)
    s.add_argument("--z-source", choices=("encoder", "encoder_mean", "prior_per_step", "prior_fixed"), default=None,
                   help="the z of each step: re-encoded and drawn from q (encoder) or its mean (encoder_mean), a prior "
                        "draw per step or one for all steps (default: the model config's z_source; "
                        "docs/methods/paramrel.md)")
    s.set_defaults(func=_sample)
    for name in TASKS:
        q = verbs.add_parser(name, help=_TASK_HELP.get(name, f"{name} images of a dataset"))
        _model_flags(q)
        add_run_data_flags(q, "dsprites, digits, shapes3d")
        if name == "attributes-encoding":
            q.add_argument("--subcodes", type=int, default=4, help="subcodes drawn per image (default 4, "
                           "ParamReL.attributes_encoding's)")
        q.set_defaults(func=_task, task=name)
    e = verbs.add_parser("eval", help="disentanglement metrics of the encoder mean on a ground-truth dataset")
    _model_flags(e, images=False)
    add_run_data_flags(e, "dsprites, digits, shapes3d")
    e.add_argument("--eval", choices=("quick", "full"), default="quick",
                   help="metric sample sizes: quick (default) or full (disentanglement_lib's)")
    e.add_argument("--json", help="write the Result JSON here")
    e.set_defaults(func=_eval)


def _model_flags(p, images: bool = True) -> None:
    """The model and device flags; ``images``: the verb draws images (--n, --steps, --out)."""
    from ._common import add_device_flag, add_overwrite_flag, add_weights_flag, numpy_seed

    p.add_argument("model", help="model, checkpoint or run folder of a ParamReL model")
    add_weights_flag(p)
    if images:
        p.add_argument("--n", type=int, default=8, help="number of images (default 8)")
        p.add_argument("--steps", type=int, default=None, help="BFN steps (default: the model's sample_steps)")
    p.add_argument("--seed", type=numpy_seed, default=0,
                   help="seed of the dataset images drawn and the sampling noise (default 0)" if images else
                   "RandomState seed of the metrics' factor draws (default 0)")
    add_device_flag(p)
    if images:
        p.add_argument("--out", help="output PNG (default: MODEL/samples.png, MODEL/<task>.png)")
    add_overwrite_flag(p, "output file (--out or --json)")


def _load(args):
    import torch

    from ..methods.paramrel import ParamReL
    from ..nn import load_pretrained

    if getattr(args, "n", 1) < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if getattr(args, "subcodes", 1) < 1:  # checked before the model and the dataset are read
        raise ValueError(f"--subcodes must be >= 1, got {args.subcodes}")
    from ._common import IMAGE_SUFFIXES, check_root, prepare_output, resolve_device, resolve_model_dir, resolve_weights

    # every output before the model loads: the flags first, the default name inside MODEL once MODEL is known to
    # be a model's folder (it replaced an earlier grid of the same task silently)
    if getattr(args, "out", None) is not None:  # the image verbs (eval writes --json)
        prepare_output(args.out, suffixes=IMAGE_SUFFIXES, overwrite=args.overwrite)
    prepare_output(getattr(args, "json", None), "--json", overwrite=args.overwrite)

    check_root(getattr(args, "root", None))
    device = torch.device(resolve_device(args.device))
    model_dir = resolve_model_dir(Path(args.model))
    if hasattr(args, "out") and args.out is None:
        prepare_output(_out(args), suffixes=IMAGE_SUFFIXES, overwrite=args.overwrite)
    model = load_pretrained(model_dir, weights=resolve_weights(model_dir, args.weights, "diffrep paramrel"),
                            map_location=device).eval()
    if not isinstance(model, ParamReL):
        raise ValueError(f"{args.model} holds {a_or_an(type(model).__name__)}, not a ParamReL model")
    return model, device


def _dataset(args, model=None):
    """``(dataset, settings)`` of a task: the run's saved data settings under the command line's flags."""
    from ..recipes.encode import check_image_size
    from ._common import run_dataset

    ds, settings = run_dataset(args)
    if model is not None and hasattr(ds, "sample_observations_from_factors"):
        check_image_size(model, ds, settings)
    elif model is not None:
        got, want = ds[0][0].shape[-1], model.config.bfn.image_size
        if got != want:
            raise ValueError(f"the model reads {want}x{want} images but {settings['dataset']} with options "
                             f"{settings['options']} and pool {settings['pool']} gives {got}x{got}")
    return ds, settings


def _out(args) -> Path:
    """An image verb's output: ``--out``, else ``samples.png`` (sample) or ``<task>.png`` inside MODEL."""
    return Path(args.out or Path(args.model) / f"{getattr(args, 'task', 'samples')}.png")


def _save(images, path, nrow) -> None:
    from ..viz import save_image

    save_image(images.float().cpu(), path, nrow=nrow, value_range=(-1, 1))
    print(f"wrote {path}", file=sys.stderr)


def _sample(args) -> int:
    import torch

    model, device = _load(args)
    g = torch.Generator(device=device).manual_seed(args.seed)
    x = model.sample(args.n, generator=g, num_steps=args.steps, z_source=args.z_source)
    _save(x, _out(args), max(1, int(args.n**0.5)))
    return 0


def _task(args) -> int:
    import torch

    model, device = _load(args)
    ds = _dataset(args, model)[0]
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randint(0, len(ds), (args.n,), generator=g).tolist()
    x = torch.stack([ds[i][0] for i in idx]).to(device)
    out = _out(args)
    if args.task == "reconstruct":
        _save(torch.cat([x, model.reconstruct(x, args.steps)]), out, args.n)
    elif args.task == "traverse":
        grid = model.traverse(x[:1], num_steps=args.steps)
        _save(grid.reshape(-1, *grid.shape[2:]), out, grid.shape[1])
    elif args.task == "time-varying":
        tv = model.time_varying(x, (0.9, 0.8, 0.7), args.steps)
        _save(torch.cat([x[None], tv]).reshape(-1, *x.shape[1:]), out, args.n)
    elif args.task == "attributes-encoding":
        gen = torch.Generator(device=device).manual_seed(args.seed)
        enc = model.attributes_encoding(x, args.subcodes, generator=gen, num_steps=args.steps)
        _save(torch.cat([x[None], enc]).reshape(-1, *x.shape[1:]), out, args.n)
    else:
        half = max(1, args.n // 2)
        path = model.interpolate(x[:half], x[half:2 * half] if args.n > 1 else x[:1], 6, num_steps=args.steps)
        _save(path.transpose(0, 1).reshape(-1, *x.shape[1:]), out, 6)
    return 0


def _eval(args) -> int:
    from ._common import output_path
    from .quickstart import SUMMARY, evaluate_representation, format_table

    model, device = _load(args)
    ds, settings = _dataset(args, model)  # resolved once: an old record's pool note was printed twice
    if not hasattr(ds, "sample_observations_from_factors"):  # as diffrep eval --model and multibeta eval say it
        name = settings["dataset"]
        given = f"--dataset {name}" if args.dataset else f"the run's dataset {name}"  # the user may not have named it
        raise ValueError(f"{given}: has no ground-truth factors (the metrics need them); pass --dataset NAME of "
                         "one that has (dsprites, shapes3d, mpi3d_toy, cars3d, ...)")
    res = evaluate_representation(model, ds, device, args.eval, args.seed)
    if args.json:
        output_path(args.json).write_text(json.dumps(res.to_json(), indent=2), encoding="utf-8")
    print(format_table([(name, f"{res[key]:.3f}") for name, key in SUMMARY if key in res]))
    return 0
