"""``diffrep eval``: compute chosen metrics for codes aligned to a dataset, write JSON, print a table.

Three inputs:
* ``--codes F.npz`` holding ``codes`` (N, d) and ``factors`` (N, F) (optionally
  ``codes_test``/``factors_test``; otherwise the last ``--test-fraction`` of the rows is the test
  split, disentanglement_lib ``split_train_test`` style: the first ceil(N p) rows train). Binary
  ``attributes`` (N, A) enable ``tad`` and ``latent_auroc``.
* ``--codes F.npz --dataset NAME``: codes aligned to dataset indices (row i = item i, or an
  ``indices`` array giving each row's item; ``codes_test`` with ``indices_test``), scored against
  the items' targets read from the dataset (:func:`diffrep.metrics.suite.align_to_dataset`):
  factor classes, labels, or binary attributes, which also enable ``tad``/``latent_auroc``
  (CelebA). ``--root`` and ``--source`` pick the dataset's files as for ``--model``.
* ``--model DIR --dataset NAME``: a ``save_pretrained`` folder (any registered diffrep model; its
  ``encode(x)`` gives the codes) and a dataset of :func:`diffrep.data.load`. ``--num-train`` then
  ``--num-test`` factor rows are drawn from ``RandomState(--seed)`` (train first, one ``randint``
  per factor, as disentanglement_lib), their images encoded in batches of ``--batch-size``.
  A dataset whose factors are all binary also serves as ``attributes`` for ``tad``/``latent_auroc``.
  A model trained by ``diffrep train`` carries its run's data settings (``run.json``: dataset,
  options such as ``size``, pooling, root): ``--dataset`` defaults to the run's dataset and the
  images are drawn at the size and pooling the model was trained on; ``--dataset``, ``--option KEY=VALUE``,
  ``--pool`` and ``--root`` given win over the run's, as in every model verb (docs/data.md). ``--model``
  takes a model folder, a checkpoint folder or a run folder; ``--weights auto`` (default) takes the
  EMA weights when present (diffrep.cli._common). ``diffrep encode`` writes the same arrays to a file.

``--format`` prints the scores as a text table (default), markdown, CSV or the result JSON. A file
that is not an .npz archive (or is truncated) is an error naming it; ``--out`` is checked (its folder is made
only when the result is written) before anything is computed; a metric given fewer rows than
:data:`diffrep.metrics.suite.MIN_ROWS` asks for is computed,
with a warning (stderr and the result's flags) stating both numbers. A flag the chosen input does not
read (a ``--generation`` flag with ``--codes``, ``--metrics`` with ``--generation``, ``--num-train`` with
``--codes``, ...) is refused rather than ignored (docs/metrics.md, "Results").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ._common import (add_device_flag, add_overwrite_flag, add_option_flag, add_threads_flag, add_weights_flag, apply_threads, check_root,
                      numpy_seed,
                      output_path, parse_options, prepare_output, resolve_device, resolve_model_dir, resolve_weights)

from . import eval_generation

from ..data.base import ITEM_FORMATS  # checked at parsing: the API check names item_format, not the flag
from ..metrics.suite import ARRAY_METRICS, DEFAULT
from ..metrics.suite import compute as _compute

FORMATS = ("text", "md", "csv", "json")


def register(sub) -> None:
    p = sub.add_parser("eval", help="compute disentanglement/representation metrics from saved codes or a model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--codes", help=".npz with arrays 'codes' (N, d) and 'factors' (N, F); with --dataset, "
                     "codes aligned to dataset indices (row i = item i, or an 'indices' array)")
    src.add_argument("--model", help="model, checkpoint or run folder whose encode(x) gives the codes, on --dataset "
                     "(default: the run's, from its run.json; a folder without one needs --dataset)")
    src.add_argument("--generation", action="store_true",
                     help="generation metrics (FID, KID, PRDC) of --fake against --real (diffrep.cli.eval_generation)")
    p.add_argument("--dataset", help="dataset name (diffrep.data.load: dsprites, shapes3d, celeba, ...): for --model "
                   "(default: the run's, from its run.json), or the targets of index-aligned --codes")
    p.add_argument("--root", default=None, help="folder of the dataset's original files (default: the run's, "
                   "else $DIFFREP_DATA)")
    p.add_argument("--pool", type=int, default=None, help="--model: max-pool factor (default: the run's, else 1)")
    add_option_flag(p, "--model: ")
    p.add_argument("--source", default=None, choices=("auto", "file", "procedural"),
                   help="where --dataset's images come from (default auto: its files when a root is set, else its "
                        "generator)")
    p.add_argument("--num-train", type=int, default=None, help="--model: train points (default 10000)")
    p.add_argument("--num-test", type=int, default=None, help="--model: test points (default 5000)")
    p.add_argument("--seed", type=numpy_seed, default=None, help="--model: RandomState seed of the factor draws (default 0)")
    p.add_argument("--batch-size", type=int, default=None, help="--model: encoder batch size (default 256)")
    add_weights_flag(p)
    p.add_argument("--item-format", default=None, choices=ITEM_FORMATS, help="--model: image format the encoder takes (default pm1)")
    add_calibrate_flags(p)
    add_device_flag(p)
    add_threads_flag(p)
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated subset of {','.join(ARRAY_METRICS)} (default: {','.join(DEFAULT)})")
    p.add_argument("--mode", default=None, choices=("robust", "parity"),
                   help="robust (default): guarded, every guard named; parity: the reference's algorithm and quirks "
                        "(docs/metrics.md)")
    p.add_argument("--estimator", default=None, choices=("fast", "sklearn"), help="DCI/downstream GBT (default fast)")
    p.add_argument("--tad-variant", default=None, choices=("infodiffusion", "disdiff", "nashae", "exact"),
                   help="TAD implementation (default infodiffusion; the variants are never comparable)")
    p.add_argument("--test-fraction", type=float, default=None,
                   help="--codes without codes_test: the last fraction of the rows is the test split (default 1/3)")
    p.add_argument("--out", help="write the result JSON here (its folder is made when it is written; an existing "
                   "file is refused unless --overwrite)")
    add_overwrite_flag(p)
    p.add_argument("--format", choices=FORMATS, default="text", help="how to print the scores (default text)")
    eval_generation.add_arguments(p)
    p.set_defaults(func=run)


def encode_dataset(model_dir: str, dataset: str | None, num_train: int = 10000, num_test: int = 5000, seed: int = 0,
                   batch_size: int = 256, weights: str = "auto", item_format: str = "pm1", root=None,
                   source: str = "auto", device: str = "auto", pool: int | None = None, *,
                   verb: str = "diffrep eval", calibrate: str = "", calibrate_images: int = 1000,
                   options: dict | None = None) -> dict:
    """:func:`diffrep.recipes.encode.encode_dataset` under the CLI's conventions: ``model_dir`` a run,
    checkpoint or model folder; ``weights`` auto (EMA when present), ema or model; ``device`` checked;
    ``verb`` the command that names itself in the fallback note (``diffrep encode`` calls this too)."""
    from ..recipes.encode import encode_dataset as encode

    def locate(path, w):
        found = resolve_model_dir(path)
        return found, resolve_weights(found, w, verb)

    return encode(model_dir, dataset, num_train, num_test, seed, batch_size, weights, item_format, root, source,
                  resolve_device(device), pool, locate=locate, calibrate=calibrate, calibrate_images=calibrate_images,
                  options=options)


def compute(path, metrics, *args, **kwargs):
    """:func:`diffrep.metrics.suite.compute`, each too-few-samples note printed to stderr as a warning."""
    return _compute(path, metrics, *args, warn=lambda note: print(f"diffrep eval: warning: {note}", file=sys.stderr),
                    **kwargs)


def format_table(result) -> str:
    rows = [(k, v) for k, v in result.items() if isinstance(v, (int, float))]
    w = max([len(k) for k, _ in rows] + [5])
    lines = [f"{'score':<{w}}  value", f"{'-' * w}  ---------"]
    lines += [f"{k:<{w}}  {v:.6g}" for k, v in rows]
    for part in result.meta.get("parts", []):
        lines.append(f"# {part['metric']}: {part['variant']}")
    for f in result.flags:
        lines.append(f"! {f}")
    return "\n".join(lines)


def format_result(result, fmt: str) -> str:
    """The scores as ``text`` (:func:`format_table`), ``md``, ``csv`` or ``json``."""
    if fmt == "text":
        return format_table(result)
    if fmt == "md":
        return result.to_markdown().rstrip("\n")
    if fmt == "csv":
        return result.to_csv().rstrip("\n")
    if fmt == "json":
        return json.dumps(result.to_json(), indent=2)
    raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")


# flags that only --model reads (their defaults), refused with --codes: the codes are computed already, and
# they were ignored without a word
MODEL_ONLY = {"pool": None, "option": None, "num_train": 10000, "num_test": 5000, "seed": 0, "batch_size": 256, "item_format": "pm1",
              "calibrate": "", "calibrate_images": 1000}


def add_calibrate_flags(p, scope: str = "--model: ") -> None:
    """``--calibrate NAME`` and ``--calibrate-images N`` of ``diffrep eval --model`` and ``diffrep encode``: what a
    study's ``eval.calibrate`` does (docs/study.md, "Calibration"), for a model whose ``encode`` needs statistics
    of the data first (DisDiff: ``--calibrate fit_code_pca``). ``scope`` heads the help (``diffrep encode``,
    whose model is its positional argument, passes "")."""
    p.add_argument("--calibrate", default=None, metavar="METHOD",
                   help=f"{scope}call the model's METHOD(images) on --calibrate-images images of the dataset before "
                        "encoding, as a study's eval.calibrate (DisDiff: fit_code_pca, its per-unit PCA codes)")
    p.add_argument("--calibrate-images", type=int, default=None, metavar="N",
                   help=f"{scope}images for --calibrate, factor rows from RandomState(--seed + 1) (default 1000)")


def check_calibrate_flags(args) -> None:
    """``--calibrate-images`` alone did nothing; say so."""
    if args.calibrate_images is not None and not args.calibrate:
        raise ValueError("--calibrate-images applies with --calibrate METHOD (e.g. --calibrate fit_code_pca)")


def codes_source(args):
    """What ``--codes`` scores: the file's own arrays, or (with ``--dataset``) its index-aligned
    codes with the dataset's targets."""
    if args.dataset is None:  # --root and --source without --dataset were refused by run()
        return args.codes
    from ..data import load
    from ..metrics.suite import align_to_dataset, load_codes

    arrays = load_codes(args.codes)  # a bad file fails before the dataset is read
    return align_to_dataset(arrays, load(args.dataset, root=args.root, source=args.source), args.dataset)


# the disentanglement-metric flags (--codes and --model) and their defaults, refused with --generation
ARRAY_ONLY = {"metrics": ",".join(DEFAULT), "mode": "robust", "estimator": "fast", "tad_variant": "infodiffusion",
              "test_fraction": 1 / 3}
# what --generation reads none of: the dataset of --codes/--model (its --real names its own source)
DATASET_FLAGS = {"dataset": None, "root": None, "source": "auto"}


def _given(args, names) -> list[str]:
    """The flags among ``names`` (namespace keys) given on the command line: their parser default is None
    (store_true: False)."""
    return [f"--{k.replace('_', '-')}" for k in names if getattr(args, k, None) is not None
            and getattr(args, k, None) is not False]  # not `in (None, False)`: 0 == False, and --num-train 0 is given


def _refuse(given: list[str], why: str) -> None:
    if given:
        raise ValueError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} {why}")


def run(args) -> int:
    generation = getattr(args, "generation", False)
    if getattr(args, "codes", None) is not None:
        _refuse(_given(args, MODEL_ONLY), "to --model only; --codes reads codes already computed")
        if getattr(args, "dataset", None) is None:
            _refuse(_given(args, ["root", "source"]), "to --model, or to --codes with --dataset (index-aligned codes)")
    if generation:  # each was ignored without a word: --generation scores images, not codes
        _refuse(_given(args, [*ARRAY_ONLY, *DATASET_FLAGS, *(k for k in MODEL_ONLY if k != "seed")]),
                "to --codes/--model (the disentanglement metrics), not --generation")
    else:
        _refuse(_given(args, eval_generation.DEFAULTS), "to --generation only (FID, KID, PRDC of --real and --fake)")
        if getattr(args, "model", None) is not None:
            _refuse(_given(args, ["test_fraction"]), "to --codes only; --model draws --num-train and --num-test rows")
    if getattr(args, "calibrate_images", None) is not None:
        check_calibrate_flags(args)
    for k, default in {**MODEL_ONLY, **ARRAY_ONLY, **DATASET_FLAGS}.items():
        if getattr(args, k, None) is None:
            setattr(args, k, default)
    if generation:
        return eval_generation.run(args)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in ARRAY_METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {list(ARRAY_METRICS)}")
    if not metrics:  # "" or ",": an empty table and exit 0, after encoding 15000 rows with --model
        raise ValueError(f"--metrics names no metric; choose from {list(ARRAY_METRICS)} (or leave it out: "
                         f"{','.join(DEFAULT)})")
    fmt = getattr(args, "format", "text")
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    check_root(args.root)  # before the model loads and any output folder is made
    if args.model is not None and not Path(args.model).is_dir():  # missing or a file: named with its flag, at once
        resolve_model_dir(args.model, "--model")
    out_path = prepare_output(args.out, overwrite=args.overwrite)  # before any computing
    apply_threads(getattr(args, "threads", None))
    settings = None
    if args.model is not None:
        src = encode_dataset(args.model, args.dataset, args.num_train, args.num_test, args.seed, args.batch_size,
                             args.weights, args.item_format, args.root, args.source, args.device, args.pool,
                             calibrate=args.calibrate, calibrate_images=args.calibrate_images,
                             options=parse_options(getattr(args, "option", None)))
        settings = src.pop("_settings")
        args.weights = src.pop("_weights")
        src.pop("_model_dir")
    else:
        src = codes_source(args)
    result = compute(src, metrics, args.mode, args.estimator, args.tad_variant, args.test_fraction,
                     source=args.codes)
    if args.codes is not None and args.dataset is not None:
        result.meta.update(dataset=args.dataset, codes_aligned_to="dataset indices")
    if args.model is not None:
        result.meta.update(model=args.model, dataset=settings["dataset"], dataset_options=settings["options"],
                           pool=settings["pool"], seed=args.seed, num_train=args.num_train, num_test=args.num_test,
                           weights=args.weights)
        if args.calibrate:
            result.meta.update(calibrate=args.calibrate, calibrate_images=args.calibrate_images)
    print(format_result(result, fmt))
    if out_path is not None:
        with open(output_path(out_path), "w") as fh:
            json.dump(result.to_json(), fh, indent=2)
    return 0
