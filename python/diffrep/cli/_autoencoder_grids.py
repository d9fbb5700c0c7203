"""The grid verbs of the diffusion-autoencoder baselines, shared by ``diffrep diffae``, ``diffrep infodiffusion``
and ``diffrep disdiff`` (docs/methods/diffae.md, infodiffusion.md, disdiff.md, "Command line"):

    diffrep FAMILY recipes
    diffrep FAMILY train RECIPE [--out DIR] [--a.b VALUE ...]                   (as diffrep train)
    diffrep FAMILY reconstruct MODEL [--n 8] [--fresh-noise] [--steps N] [--out F.png]
    diffrep FAMILY swap MODEL [--n 4] [--dims K ...] [--steps N] [--out F.png]
    diffrep FAMILY traverse MODEL [--n 4] [--dim K] [--values V ...] [--steps N] [--out F.png]
    diffrep diffae interpolate MODEL [--n 4] [--alphas A ...] [--steps N] [--out F.png]
    diffrep diffae manipulate MODEL --factor K [--value V] [--scales S ...] [--fit-images N] [--n 4] [--out F.png]

Each verb calls the model's method of the same name (its docstring and the method's page say what it
decodes) on dataset images: the run's own dataset (its ``run.json``) unless ``--dataset`` / ``--option`` /
``--pool`` / ``--root`` say otherwise, else the CPU recipes' 16 px Shapes3D sub-grid. ``--dims`` / ``--dim`` index
the code's dimensions (DiffAE's z_sem, InfoDiffusion's z) or, for DisDiff, its units. Sampling and encoding
are the generic verbs: ``diffrep sample``, ``diffrep encode``, ``diffrep eval --model``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ._common import (IMAGE_SUFFIXES, add_device_flag, add_overwrite_flag, add_recipe_verbs, check_root, add_threads_flag,
                      add_weights_flag, apply_threads, numpy_seed,
                      parse_options, prepare_output, resolve_device, resolve_model_dir, resolve_weights)
from .._checks import a_or_an

# the data of a model whose run records none (a model saved outside 'diffrep train'): the CPU recipes' sub-grid
CPU_DATA = {"dataset": "shapes3d_subgrid", "options": {}, "pool": 4, "root": None}
POOLS = (1, 2, 4, 8)   # diffrep.recipes.encdiff.POOLS, written out: importing the recipes loads torch for --help
MAX_DEFAULT_DIMS = 8   # swap's default rows: the first dimensions (a 512-d z_sem gave 512 rows of DDIM chains)


@dataclass(frozen=True)
class Family:
    """One method's command: its name, model class, what its code is called and its verbs."""
    command: str        # diffrep COMMAND
    class_name: str     # the model class its folders hold
    module: str         # where the class lives
    help: str           # the line of `diffrep --help`
    code: str           # what --dims / --dim index, for the help
    verbs: tuple[str, ...]


VERB_HELP = {"reconstruct": "rows: the images, then their reconstructions (from the inverted x_T, or fresh noise)",
             "swap": "latent swap grid: sources, targets, then one row per swapped dimension (the target's x_T)",
             "traverse": "latent traversal: the images, then one row per value of the dimension (the image's x_T)",
             "interpolate": "interpolation of pairs: z_sem linearly, x_T by slerp (DiffAE Sec. 5.1), a row per alpha",
             "manipulate": "attribute manipulation (DiffAE Sec. 5.2): a linear classifier of 'factor K has value V' on "
                           "the standardised z_sem, then a row per step along its weight"}
N_HELP = {"reconstruct": "dataset images", "swap": "dataset images: the first half sources, the second half targets",
          "traverse": "dataset images, a column each", "manipulate": "dataset images, a column each",
          "interpolate": "dataset images: the first half x_a, the second "
          "half x_b (a column per pair)"}
PAIR_VERBS = ("swap", "interpolate")


def register_family(sub, family: Family, doc: str) -> None:
    """Add ``diffrep <family.command>`` with its verbs to the top-level subparsers ``sub``."""
    p = sub.add_parser(family.command, help=family.help, description=doc.split("\n\n")[0])
    verbs = p.add_subparsers(dest=f"{family.command}_command", metavar="VERB")
    add_recipe_verbs(verbs, f"{family.command}/", f"train {a_or_an(family.command + '/')} recipe (same flags as diffrep train)")
    for name in family.verbs:
        # the verb's line of the group's list, as a sentence for the verb's own --help
        q = verbs.add_parser(name, help=VERB_HELP[name], description=VERB_HELP[name][0].upper() + VERB_HELP[name][1:] + ".")
        q.add_argument("model", help=f"{a_or_an(family.class_name)} model, checkpoint or run folder (a run: its newest "
                       "checkpoint, else final/)")
        add_weights_flag(q)
        q.add_argument("--dataset", default=None,
                       help="dataset name (default: the run's, from its run.json; else shapes3d_subgrid)")
        q.add_argument("--pool", type=int, default=None, choices=POOLS,
                       help="shapes3d_subgrid only: pooling of the 64 px renders (default: the run's, else 4)")
        q.add_argument("--root", default=None, help="folder of the dataset's files (default: the run's, else $DIFFREP_DATA)")
        q.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="dataset option over the run's (YAML value), e.g. --option size=32")
        q.add_argument("--n", type=int, default=8 if name == "reconstruct" else 4,
                       help=N_HELP[name] + " (default: %(default)s)")
        q.add_argument("--steps", type=int, default=None, help="DDIM steps of the inversion and the decoding "
                       "(default: the model's sample_steps)")
        q.add_argument("--seed", type=numpy_seed, default=0, help="which dataset images, and the fresh noise")
        add_device_flag(q)
        add_threads_flag(q)
        q.add_argument("--out", default=None, help=f"the image grid (default: {family.command}_{name}.png in the current "
                       "folder)")
        add_overwrite_flag(q)
        if name == "reconstruct":
            q.add_argument("--fresh-noise", action="store_true",
                           help="decode the code from x_T ~ N(0, I) instead of the inverted x_T (what the code alone keeps)")
        if name == "swap":
            q.add_argument("--dims", type=int, nargs="+", default=None,
                           help=f"{family.code} to swap, a row each (default: the first {MAX_DEFAULT_DIMS}, all when fewer)")
        if name == "traverse":
            noun, _, of = family.code.partition(" ")  # one of the code's dimensions (it said "the dimensions of z")
            q.add_argument("--dim", type=int, default=0, help=f"the {' '.join(filter(None, (noun.rstrip('s'), of)))} to "
                           "move (default 0)")
            q.add_argument("--values", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0, 2.0],
                           help=_traverse_values_help(family) + " (default: -2 -1 0 1 2)")
            if family.command == "disdiff":
                q.add_argument("--pca-images", type=int, default=512,
                               help="dataset images the per-unit PCA is fitted on when the folder has none "
                                    "(fit_code_pca; default %(default)s)")
        if name == "manipulate":
            q.add_argument("--factor", type=int, required=True, help="the dataset factor (or CelebA attribute) whose "
                           "value is the binary attribute")
            q.add_argument("--value", type=int, default=1, help="the attribute is 'factor == value' (default 1: a "
                           "CelebA attribute present)")
            q.add_argument("--scales", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0, 2.0],
                           help="steps along the unit classifier weight in standardised z_sem, a row each (the authors' "
                                "notebook's 0.3 is 0.3 sqrt(latent_dim) here; default: -2 -1 0 1 2)")
            q.add_argument("--fit-images", type=int, default=1000,
                           help="dataset images the classifier is fitted on (default %(default)s)")
        if name == "interpolate":
            q.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                           help="weights of x_b, a row each (default: 0 0.25 0.5 0.75 1)")
        q.set_defaults(func=lambda args, f=family: _run(f, args), verb=name)


def _traverse_values_help(family: Family) -> str:
    return {"diffae": "values of the standardised z_sem dimension (needs the stage-2 statistics)",
            "infodiffusion": "values of the z dimension (the prior's scale: N(0, 1) for the Gaussian prior)",
            "disdiff": "coordinates along the unit's first principal direction"}[family.command]


def _model_class(family: Family):
    import importlib

    return getattr(importlib.import_module(family.module), family.class_name)


def _load(family: Family, args):
    import torch

    from ..nn import load_pretrained
    from ..nn.pretrained import PretrainedMixin

    check_root(args.root)
    if not Path(args.model).exists():  # a file: resolve_model_dir names the folder holding it
        raise FileNotFoundError(f"{args.model}: no such model folder (a model, checkpoint or run folder)")
    model_dir = resolve_model_dir(args.model)
    name, _ = PretrainedMixin.read_config(model_dir)  # before the weights are read (and --weights auto speaks)
    if name != family.class_name:
        other = {"DiffAE": "diffae", "InfoDiffusion": "infodiffusion", "DisDiff": "disdiff",
                 "EncDiff": "encdiff", "MultiBeta": "multibeta"}.get(name)
        hint = f" (its verbs: diffrep {other} ...)" if other else ""
        raise ValueError(f"{model_dir} holds {a_or_an(name)}, not {a_or_an(family.class_name)} model{hint}")
    device = torch.device(resolve_device(args.device))
    weights = resolve_weights(model_dir, args.weights, f"diffrep {family.command} {args.verb}")
    model = load_pretrained(model_dir, weights=weights, map_location=device).eval()
    if not isinstance(model, _model_class(family)):  # a subclass registered under another name
        raise ValueError(f"{model_dir} holds {a_or_an(type(model).__name__)}, not {a_or_an(family.class_name)} model")
    return model, device


def _image_shape(model) -> tuple[int, int, int]:
    """(C, H, W) of the images ``model`` reads (DisDiff's encoder reads images in the LDM setting too)."""
    c = model.config.encoder
    return c.in_channels, c.image_size, c.image_size


def _dataset(args):
    from ..recipes.runinfo import SUBGRID, dataset_from_settings, resolve_data_settings

    settings = resolve_data_settings(args.model, args.dataset, pool=args.pool, options=parse_options(args.option),
                                     root=args.root, fallback=CPU_DATA)
    if args.pool is not None and settings["dataset"] != SUBGRID:   # it would be ignored
        raise ValueError(f"--pool applies to the shapes3d_subgrid only; {settings['dataset']} is read at its own "
                         "size (--option size=... where the dataset takes one)")
    return dataset_from_settings({**settings, "source_flag": "--option source="})


def _images(ds, idx, model, device):
    from ..nn.images import dataset_images

    x = dataset_images(ds, idx).to(device)
    want = _image_shape(model)
    if tuple(x.shape[1:]) != want:
        raise ValueError(f"the dataset's images are {tuple(x.shape[1:])}, the model reads {want}; pick the dataset "
                         "(and --pool / --option size=) the model was trained on")
    return x


def _check_flags(family: Family, model, args) -> None:
    """The flags that depend on the model, checked before any image is encoded."""
    size = model.config.num_units if family.command == "disdiff" else model.config.latent_dim
    what = "unit indices" if family.command == "disdiff" else "dimensions of the code"
    if args.verb == "swap" and args.dims is not None:
        bad = [d for d in args.dims if not 0 <= d < size]
        if bad:
            raise ValueError(f"--dims must be {what} in 0..{size - 1}, got {bad}")
    if args.verb == "traverse" and not 0 <= args.dim < size:
        raise ValueError(f"--dim must be one of the {what} in 0..{size - 1}, got {args.dim}")
    T = model.schedule.num_timesteps
    if args.steps is not None and not 1 <= args.steps <= T:
        raise ValueError(f"--steps must be in [1, {T}] (DDIM steps of the model's {T}-step schedule), got {args.steps}")
    if family.command == "disdiff" and model.config.stage == "pretrain" and model.config.pretrain_steps == 0:
        # its units and shift decoder never trained: the grids drew noise without a word
        raise ValueError(f"{args.model}: a DisDiff pre-training folder (stage pretrain: eps_theta alone trained, the encoder "
                         "and the shift decoder untouched); give the disentangling run's folder (docs/methods/disdiff.md, "
                         "\"Command line\"); its unconditional samples: diffrep sample")
    if family.command == "diffae" and args.verb in ("traverse", "manipulate") and not bool(model.z_stats_fitted):
        raise ValueError(f"{args.model}: {args.verb} moves the standardised z_sem, and this DiffAE has no z_sem statistics "
                         "(a stage-1 folder): train stage 2, which fits them (docs/methods/diffae.md, \"Command line\"), "
                         "and give its folder")


def _run(family: Family, args) -> int:
    import math

    import torch

    if args.n < (2 if args.verb in PAIR_VERBS else 1):
        need = "2 (a pair)" if args.verb in PAIR_VERBS else "1"
        raise ValueError(f"--n must be >= {need}, got {args.n}")
    for flag in ("values", "alphas", "scales"):
        bad = [v for v in getattr(args, flag, None) or () if not math.isfinite(v)]
        if bad:
            raise ValueError(f"--{flag} must be finite numbers, got {bad}")
    if getattr(args, "pca_images", 2) < 2:
        raise ValueError(f"--pca-images must be >= 2, got {args.pca_images}")
    if getattr(args, "fit_images", 2) < 2:
        raise ValueError(f"--fit-images must be >= 2, got {args.fit_images}")
    out = prepare_output(Path(args.out or f"{family.command}_{args.verb}.png"), suffixes=IMAGE_SUFFIXES,
                         overwrite=args.overwrite)
    apply_threads(args.threads)
    model, device = _load(family, args)
    _check_flags(family, model, args)
    ds = _dataset(args)
    n = min(args.n, len(ds))
    if n < args.n:
        print(f"diffrep {family.command} {args.verb}: --n {args.n}: the dataset has {len(ds)} images; using {n}",
              file=sys.stderr)
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(ds), generator=g)
    idx = perm[:n].tolist()
    steps = args.steps
    if args.verb == "reconstruct":
        x = _images(ds, idx, model, device)
        gen = torch.Generator(device=device).manual_seed(args.seed)
        rows = [x, model.reconstruct(x, num_steps=steps, stochastic=not args.fresh_noise, generator=gen)]
        ncol = n
    elif args.verb in PAIR_VERBS:
        half = n // 2
        a, b = _images(ds, idx[:half], model, device), _images(ds, idx[half:2 * half], model, device)
        if args.verb == "swap":   # the target (b) keeps its x_T and takes the source's (a) dimensions
            size = model.config.num_units if family.command == "disdiff" else model.config.latent_dim
            dims = args.dims if args.dims is not None else list(range(min(size, MAX_DEFAULT_DIMS)))
            one = (lambda d: model.swap(b, a, d, num_steps=steps)) if family.command == "disdiff" else \
                (lambda d: model.swap(b, a, [d], num_steps=steps))
            rows = [a, b, *[one(d) for d in dims]]
        else:
            rows = [a, *model.interpolate(a, b, args.alphas, num_steps=steps), b]
        ncol = half
    elif args.verb == "manipulate":
        x = _images(ds, idx, model, device)
        w = _attribute_direction(model, ds, perm, args, device)
        rows = [x, *[model.manipulate(x, w, s, num_steps=steps) for s in args.scales]]
        ncol = n
    else:   # traverse
        x = _images(ds, idx, model, device)
        if family.command == "disdiff" and not bool(model.pca_fitted):
            fit = perm[: max(n, min(args.pca_images, len(ds)))].tolist()
            print(f"diffrep disdiff traverse: fitting the per-unit PCA on {len(fit)} dataset images (fit_code_pca)",
                  file=sys.stderr)
            model.fit_code_pca(torch.cat([_images(ds, fit[i:i + 256], model, device) for i in range(0, len(fit), 256)]))
        rows = [x, *model.traverse(x, args.dim, args.values, num_steps=steps)]
        ncol = n
    from ..viz.grids import save_image

    grid = torch.cat([r.clamp(-1, 1).cpu() for r in rows])
    save_image(grid, out, value_range=(-1, 1), nrow=ncol, scale=2)
    print(out)
    return 0


def _attribute_direction(model, ds, perm, args, device):
    """The classifier weight of 'factor ``--factor`` == ``--value``' fitted on ``--fit-images`` dataset images
    (DiffAE Sec. 5.2: logistic regression on the standardised z_sem, :meth:`DiffAE.fit_attribute`)."""
    import numpy as np
    import torch

    sizes = getattr(ds, "factor_sizes", None)
    if sizes is not None and not 0 <= args.factor < len(sizes):
        raise ValueError(f"--factor must be in [0, {len(sizes)}), got {args.factor}")
    fit = perm[: min(args.fit_images, len(ds))].tolist()
    item = ds[np.asarray(fit)]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ValueError("manipulate needs a dataset with factors or attributes (its items are images only)")
    factors = np.asarray(item[1])
    if factors.ndim != 2 or not 0 <= args.factor < factors.shape[1]:
        raise ValueError(f"--factor must be in [0, {factors.shape[1] if factors.ndim == 2 else 0}), got {args.factor}")
    labels = torch.as_tensor(factors[:, args.factor] == args.value, dtype=torch.float32)
    if labels.min() == labels.max():   # before the codes of --fit-images images are computed
        present = "every one" if bool(labels[0]) else "none"
        raise ValueError(f"--factor {args.factor} --value {args.value}: {present} of the {len(fit)} fitting images has it; "
                         f"the classifier needs both (values of that factor there: {sorted(set(factors[:, args.factor].tolist()))[:10]})")
    x = torch.cat([_images(ds, fit[i:i + 256], model, device) for i in range(0, len(fit), 256)])
    with torch.no_grad():
        z = model.encode(x)
    return model.fit_attribute(z, labels.to(device))
