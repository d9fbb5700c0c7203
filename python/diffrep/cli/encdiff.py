"""``diffrep encdiff``: EncDiff + DyGA + Skip Dropout (docs/methods/encdiff.md).

    diffrep encdiff recipes
    diffrep encdiff train RECIPE [--out DIR] [--a.b VALUE ...]             (as diffrep train)
    diffrep encdiff encode MODEL [--dataset NAME] [--n N] --out codes.npz
    diffrep encdiff sample MODEL [--n 16] [--steps N] [--out samples.png]
    diffrep encdiff interchange MODEL [--dataset NAME] [--n 4] [--units 0 1 ...] [--steps N] [--out swap.png]
    diffrep encdiff attention MODEL [--dataset NAME] [--n 4] [--steps N] [--out attention.png]
    diffrep encdiff anchors MODEL [--dataset NAME] [--n 2000] [--factor K] [--out anchors.png]
    diffrep encdiff eval MODEL [--dataset NAME] [--n 2000] [--eval quick|full] [--downstream] [--out metrics.json]

MODEL is a ``save_pretrained`` folder (a run's ``final/``). ``--dataset``: ``shapes3d_subgrid`` (the CPU
recipe's data, pooled by ``--pool``) or any ``diffrep.data`` name (``--root``, ``--option KEY=VALUE``);
default: the dataset the model's run trained on (its ``run.json``), else ``shapes3d_subgrid``.
``encode`` writes the N scalars, the (aligned) tokens, the PCA-per-unit codes (as ``pca_codes`` and as ``codes``, the
array ``diffrep eval --codes`` reads) and the factors of ``--n`` images drawn without replacement (``--seed``); ``sample`` conditions on tokens drawn with replacement from
those of at least 64 dataset images (the FID protocol); ``interchange`` rows: source, target, then one row per swapped unit (one x_T per column);
``attention``: per image, the image and one averaged cross-attention map per token; ``anchors``: per
unit the histogram of the PCA-1 projection of its tokens with its Gaussians, and a PCA view of the
unit that best separates factor ``--factor``, coloured by that factor (Fig. 1); ``eval``: MIG, DCI,
FactorVAE, SAP, modularity and InfoMEC (Tables 1, 10) on the PCA-per-unit codes (PCA fitted on ``--n``
images), plus with ``--downstream`` the GBT sample efficiency (Table 5).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ._common import (IMAGE_SUFFIXES, add_device_flag, add_overwrite_flag, add_recipe_verbs, check_root, add_weights_flag, output_path, prepare_output,
                      resolve_device, resolve_model_dir,
                      numpy_seed, resolve_weights, run_data_settings)
from .._checks import a_or_an

VERBS = ("encode", "sample", "interchange", "attention", "anchors", "eval")
SAMPLING_VERBS = ("sample", "interchange", "attention")   # the verbs that run DDIM: the others take no --steps
OUT_EXT = {"encode": "npz", "eval": "json"}   # the default output's suffix (encdiff_<verb>.<ext>); the grids are .png
# what --n counts in each verb (its help said nothing: in interchange it is sources and targets together)
N_HELP = {"encode": "dataset images to encode", "sample": "images to generate",
          "interchange": "dataset images: the first half are the sources, the second half the targets (a column per pair)",
          "attention": "dataset images, one row of maps each", "anchors": "dataset images whose tokens are drawn",
          "eval": "images the PCA-per-unit codes are fitted on (CelebA: the images TAD scores)"}
POOLS = (1, 2, 4, 8)   # diffrep.recipes.encdiff.POOLS, written out: importing the recipes loads torch for --help
# the data of a model whose run records none (a model saved outside 'diffrep train'): the CPU recipe's sub-grid
CPU_DATA = {"dataset": "shapes3d_subgrid", "options": {}, "pool": 4, "root": None}


def register(sub) -> None:
    p = sub.add_parser("encdiff", help="EncDiff + DyGA + Skip Dropout: train, encode, sample, interchange, attention, "
                       "anchors, eval", description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="encdiff_command", metavar="VERB")
    add_recipe_verbs(verbs, "encdiff/", "train an encdiff/ recipe (same flags as diffrep train)")
    helps = {"encode": "N scalars, tokens and PCA-per-unit codes of dataset images (.npz)",
             "sample": "images conditioned on tokens drawn from the dataset (DDIM)",
             "interchange": "latent interchange grid (DyGA Figs. 3, 8)",
             "attention": "per-token cross-attention maps (DyGA Figs. 4, 9, 10)",
             "anchors": "each unit's feature histogram with its Gaussians, and a factor-coloured view (Fig. 1)",
             "eval": "disentanglement metrics on the PCA-per-unit codes (Tables 1, 5, 10)"}
    for name in VERBS:
        q = verbs.add_parser(name, help=helps[name])
        q.add_argument("model", help="an EncDiff model, checkpoint or run folder (a run: its newest checkpoint, else final/)")
        add_weights_flag(q)
        q.add_argument("--dataset", default=None,
                       help="dataset name (default: the run's, from its run.json; else shapes3d_subgrid)")
        q.add_argument("--pool", type=int, default=None, choices=POOLS,  # --pool 0 read 64 px images without a word
                       help="shapes3d_subgrid only: pooling of the 64 px renders (default: the run's, else 4)")
        q.add_argument("--root", default=None, help="folder of the dataset's files (default: the run's, else "
                       "$DIFFREP_DATA)")
        q.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="dataset option over the run's (YAML value), e.g. --option size=32 (shapes3d_subgrid: "
                            "its image size)")
        q.add_argument("--n", type=int, default={"encode": 1000, "sample": 16, "anchors": 2000, "eval": 2000}.get(name, 4),
                       help=N_HELP[name] + " (default: %(default)s)")
        if name in SAMPLING_VERBS:   # encode, anchors and eval accepted --steps and ignored it
            q.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's sample_steps)")
        q.add_argument("--seed", type=numpy_seed, default=0, help="seed of every draw: dataset images, noise, metric "
                       "samples (default 0)")
        add_device_flag(q)
        q.add_argument("--out", default=None, help="output file (.npz for encode, .json for eval, else .png; default "
                       f"encdiff_{name}.{OUT_EXT.get(name, 'png')} in the current folder)")
        add_overwrite_flag(q)
        if name == "interchange":
            q.add_argument("--units", type=int, nargs="+", default=None,
                           help="the units swapped, one row each (default: all N units)")
        if name == "anchors":
            q.add_argument("--factor", type=int, default=0,
                           help="ground-truth factor index that colours the PCA view (default: 0)")
        if name == "eval":
            q.add_argument("--eval", choices=("quick", "full"), default="quick",
                           help="metric sample sizes: quick or full (disentanglement_lib's; default: quick)")
            q.add_argument("--downstream", action="store_true", help="also the GBT sample efficiency (Table 5)")
            q.add_argument("--raw", action="store_true", help="codes from the raw tokens c instead of the aligned c~")
        q.set_defaults(func=_run, verb=name)


def _load(args):
    import torch

    from ..methods.encdiff import EncDiff
    from ..nn import load_pretrained

    check_root(args.root)
    if not Path(args.model).exists():  # a file: resolve_model_dir names the folder holding it
        raise FileNotFoundError(f"{args.model}: no such model folder (a model, checkpoint or run folder)")
    device = torch.device(resolve_device(args.device))  # --device cuda on a CPU machine blamed model.safetensors
    model_dir = resolve_model_dir(args.model)
    weights = resolve_weights(model_dir, args.weights, f"diffrep encdiff {args.verb}")
    model = load_pretrained(model_dir, weights=weights, map_location=device).eval()
    if not isinstance(model, EncDiff):
        raise ValueError(f"{model_dir} holds {a_or_an(type(model).__name__)}, not an EncDiff model")
    return model, device


def _dataset(args):
    """The dataset of a verb, by the data settings every model verb resolves (:func:`._common.run_data_settings`): the
    model's run's (its run.json: a paper recipe's 64 px Shapes3D or CelebA was refused as "not the 16 px
    sub-grid") under ``--dataset``/``--option``/``--pool``/``--root``, else the CPU recipe's sub-grid at pool 4.
    ``--pool`` pools the sub-grid only, as the EncDiff recipes' ``pool``."""
    from ..recipes.runinfo import SUBGRID, dataset_from_settings

    settings = run_data_settings(args, fallback=CPU_DATA)
    if args.pool is not None and settings["dataset"] != SUBGRID:   # it was ignored
        raise ValueError(f"--pool applies to the shapes3d_subgrid only; {settings['dataset']} is read at its own "
                         "size (--option size=... where the dataset takes one)")
    return dataset_from_settings(settings)


def _images(ds, idx, model, device):
    from ..nn.images import dataset_images

    x = dataset_images(ds, idx).to(device)
    c, s = model.config.image_channels, model.config.image_size
    if tuple(x.shape[1:]) != (c, s, s):
        raise ValueError(f"the dataset's images are {tuple(x.shape[1:])}, the model reads ({c}, {s}, {s}); "
                         "pick the dataset (and --pool / --option size=) the model was trained on")
    return x


def _run(args) -> int:
    import numpy as np
    import torch

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if getattr(args, "steps", None) is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    ext = OUT_EXT.get(args.verb, "png")
    out = prepare_output(Path(args.out or f"encdiff_{args.verb}.{ext}"),
                         suffixes={"png": IMAGE_SUFFIXES, "npz": (".npz",)}.get(ext),  # any name for the JSON
                         overwrite=args.overwrite)
    model, device = _load(args)
    ds = _dataset(args)
    if args.verb == "anchors" and hasattr(ds, "factor_sizes") and not 0 <= args.factor < len(ds.factor_sizes):
        # before the tokens of --n images are computed (it was checked after them)
        raise ValueError(f"--factor must be in [0, {len(ds.factor_sizes)}), got {args.factor}")
    n = min(args.n, len(ds))
    if n < args.n:   # it was cut to the dataset's size without a word
        print(f"diffrep encdiff {args.verb}: --n {args.n}: the dataset has {len(ds)} images; using {n}", file=sys.stderr)
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(ds), generator=g)
    idx = perm[:n].tolist()
    # grids enlarged to at least 128 px per image (nearest neighbour, as 'diffrep sample'): twice the CPU recipe's
    # 16 px images left 32 px tiles
    from ..viz.grids import legible_scale, save_image

    if args.verb == "encode":
        x = _images(ds, idx, model, device)
        tokens = model.tokens(x)
        pca = model.pca_codes(x).cpu().numpy()
        # "codes" (the paper's metric codes, as pca_codes) makes the file one that 'diffrep eval --codes' reads: it
        # was refused there for having no 'codes' array
        arrays = {"codes": pca, "scalars": model.encode(x).cpu().numpy(), "tokens": tokens.cpu().numpy(),
                  "pca_codes": pca, "indices": np.asarray(idx)}
        f = ds[np.asarray(idx)][1] if hasattr(ds, "factor_sizes") else None
        if f is not None:
            arrays["factors"] = np.asarray(f)
        np.savez(output_path(out), **arrays)
    elif args.verb == "sample":
        # tokens of at least 64 images to draw from (idx[:max(n, 64)] was idx itself: n draws from n images)
        pool = _images(ds, perm[: max(n, 64)].tolist(), model, device)
        bank = model.tokens(pool, aligned=False)
        imgs = model.sample(n, generator=g, tokens=bank, steps=args.steps)
        save_image(imgs.clamp(-1, 1).cpu(), out, value_range=(-1, 1), nrow=int(n ** 0.5 + 0.999), scale=legible_scale(model.config.image_size, min_scale=1))
    elif args.verb == "interchange":
        bad = [u for u in args.units or () if not 0 <= u < model.config.num_units]  # named "units[0]" after the encoding
        if bad:
            raise ValueError(f"--units must be unit indices in 0..{model.config.num_units - 1}, got {bad}")
        half = max(1, n // 2) if n > 1 else 1
        src = _images(ds, idx[:half], model, device)
        tgt = _images(ds, (idx[half:2 * half] if n > 1 else idx[:1]), model, device)
        rows = model.interchange(src, tgt, units=args.units, generator=g, steps=args.steps)
        grid = torch.cat([src[None], tgt[None], rows]).flatten(0, 1)
        save_image(grid.clamp(-1, 1).cpu(), out, value_range=(-1, 1), nrow=src.shape[0], scale=legible_scale(model.config.image_size, min_scale=1))
    elif args.verb == "attention":
        x = _images(ds, idx, model, device)
        maps = model.attention_maps(x, generator=g, steps=args.steps)                      # (B, N, S, S)
        lo = maps.amin(dim=(2, 3), keepdim=True)
        hi = maps.amax(dim=(2, 3), keepdim=True)
        m = ((maps - lo) / (hi - lo).clamp_min(1e-12))[:, :, None].expand(-1, -1, 3, -1, -1) * 2 - 1
        grid = torch.cat([x[:, None], m], 1).flatten(0, 1)
        save_image(grid.cpu(), out, value_range=(-1, 1), nrow=1 + maps.shape[1], scale=legible_scale(model.config.image_size, min_scale=1))
    elif args.verb == "eval":
        _evaluate(model, ds, idx, args, out)
    else:
        _anchors_figure(model, ds, idx, device, args.factor, out)
    print(out)
    return 0


def _evaluate(model, ds, idx, args, out):
    import json

    import numpy as np

    from ..metrics import downstream_task_score, evaluate
    from .quickstart import EVAL_SIZES, METRICS

    if not hasattr(ds, "sample_observations_from_factors"):
        if hasattr(ds, "attributes"):        # CelebA: TAD, the DisDiff variant (Table 2; spec 6.2)
            return _evaluate_tad(model, ds, idx, args, out)
        raise ValueError(f"the dataset ({args.dataset or type(ds).__name__}) has neither ground-truth factors nor "
                         "binary attributes")
    fit_obs = ds.sample_observations_from_factors(ds.sample_factors(len(idx), np.random.RandomState(args.seed)))
    fn = model.representation_fn(fit_obs, aligned=not args.raw)
    s = EVAL_SIZES[args.eval]
    res = evaluate(ds, fn, metrics=METRICS, seed=args.seed, num_train=s["num_train"], num_test=s["num_test"],
                   factor_vae_kwargs=s["factor_vae"])
    record = {"scores": dict(res), "meta": res.meta, "codes": "raw" if args.raw else "aligned", "pca_fit_points": len(idx)}
    if args.downstream:
        sizes = (100, 1000, 10000) if args.eval == "full" else (100, 1000)
        d = downstream_task_score(ds, fn, seed=args.seed, sizes=sizes, num_test=5000 if args.eval == "full" else 1000)
        record["downstream"] = dict(d)
    output_path(out).write_text(json.dumps(record, indent=1, default=str))
    for k in ("factor_vae_eval", "dci_disentanglement", "mig", "sap", "modularity", "infom"):
        if k in res:
            print(f"{k:22s} {res[k]:.4f}")
    if args.downstream:
        _print_downstream(record["downstream"])


def _print_downstream(scores) -> None:
    """Table 5's numbers of ``downstream_task_score``: the mean GBT test accuracy at each training size and
    the sample efficiency (--downstream wrote them to the JSON only)."""
    for k, v in scores.items():
        size, _, what = k.partition(":")
        if what == "mean_test_accuracy":
            print(f"{'gbt_test_acc@' + size:22s} {v:.4f}")
        elif k.startswith("efficiency"):
            print(f"{k:22s} {v:.4f}")


def _evaluate_tad(model, ds, idx, args, out):
    """TAD (``variant="disdiff"``) of the PCA-per-unit codes of ``--n`` shuffled images, the PCA fitted on
    those images (spec 6.2: 10,000 images, seed 42)."""
    import json

    import numpy as np
    import torch

    from ..metrics import tad

    device = model.token_bank.device
    aligned = not args.raw   # --raw was ignored here: TAD always read the aligned tokens
    toks = torch.cat([model.tokens(_images(ds, idx[i:i + 256], model, device), aligned=aligned).cpu()
                      for i in range(0, len(idx), 256)])
    from ..metrics.pca import pca1_units

    codes = pca1_units(toks)
    attrs = torch.as_tensor(np.asarray(ds.attributes)[np.asarray(idx)])
    res = tad(codes, attrs, variant="disdiff")
    output_path(out).write_text(json.dumps({"scores": dict(res), "meta": res.meta, "images": len(idx),
                               "codes": "aligned" if aligned else "raw"}, indent=1, default=str))
    print(f"TAD (disdiff) {res['tad']:.4f}, attributes captured {res.get('tad_attributes_captured')}")


def _anchors_figure(model, ds, idx, device, factor, out):
    import numpy as np
    import torch

    from ..metrics.pca import pca1_units

    if model.dyga is None:
        raise ValueError(f"this model has no DyGA anchors: its conditioning is {model.config.conditioning!r}, not 'dyga'")
    if not bool(model.dyga.fitted):
        raise ValueError("this model's DyGA anchors were never fitted: its training ended before the first refresh "
                         "(the first step of epoch dyga.refresh_every + 1)")
    try:  # a Figure of its own, not pyplot: the process's backend (a notebook's) is never switched
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ValueError("the anchors figure needs matplotlib (an optional dependency): pip install matplotlib") from exc
    x = _images(ds, idx, model, device)
    c = model.tokens(x, aligned=False).double()
    proj, mean, comp = pca1_units(c, return_components=True)                         # (n, N), (N, D), (N, D)
    dy = model.dyga
    cov = dy.covariances_raw().double()
    mu = ((dy.anchors.double() - mean[:, None]) * comp[:, None]).sum(-1)              # (N, K)
    var = torch.einsum("ud,ukde,ue->uk", comp, cov, comp)
    N = c.shape[1]
    cols = min(5, N)
    rows = (N + cols - 1) // cols
    fig = Figure(figsize=(3 * cols, 2.4 * (rows + 1)))
    axes = fig.subplots(rows + 1, cols, squeeze=False)
    for u in range(N):
        ax = axes[u // cols][u % cols]
        v = proj[:, u].cpu().numpy()  # the tokens are on the model's device
        ax.hist(v, bins=60, density=True, color="0.7")
        grid = np.linspace(v.min() - 0.1 * np.ptp(v), v.max() + 0.1 * np.ptp(v), 400)
        for k in torch.nonzero(dy.active[u]).flatten().tolist():
            s2 = max(float(var[u, k]), 1e-12)
            w = float(dy.weights[u, k])
            ax.plot(grid, w * np.exp(-(grid - float(mu[u, k])) ** 2 / (2 * s2)) / np.sqrt(2 * np.pi * s2), lw=1)
        ax.set_title(f"unit {u}: {int(dy.n_anchors[u])} anchors", fontsize=8)
    for j in range(N, rows * cols):
        axes[j // cols][j % cols].axis("off")
    labels = None
    if hasattr(ds, "factor_sizes"):
        labels = np.asarray(ds[np.asarray(idx)][1])[:, factor]
    from sklearn.metrics import normalized_mutual_info_score

    k = dy.assign(c.float()).cpu().numpy()
    best = int(np.argmax([normalized_mutual_info_score(labels, k[:, u]) for u in range(N)])) if labels is not None else 0
    cu = c[:, best] - c[:, best].mean(0)
    _, _, vh = torch.linalg.svd(cu, full_matrices=False)
    xy = (cu @ vh[:2].T).cpu().numpy()
    ax = axes[rows][0]
    ax.scatter(xy[:, 0], xy[:, 1], c=labels if labels is not None else "k", s=3, cmap="tab10")
    ax.set_title(f"unit {best} (PCA), coloured by factor {factor}", fontsize=8)
    for j in range(1, cols):
        axes[rows][j].axis("off")
    fig.tight_layout()
    fig.savefig(output_path(out), dpi=100)
