"""``diffrep eval``: compute chosen metrics for codes aligned to a dataset, write JSON, print a table.

Two inputs:
* ``--codes F.npz`` holding ``codes`` (N, d) and ``factors`` (N, F) (optionally
  ``codes_test``/``factors_test``; otherwise the last ``--test-fraction`` of the rows is the test
  split, disentanglement_lib ``split_train_test`` style: the first ceil(N p) rows train). Binary
  ``attributes`` (N, A) enable ``tad`` and ``latent_auroc``.
* ``--model DIR --dataset NAME``: a ``save_pretrained`` folder (any registered diffrep model; its
  ``encode(x)`` gives the codes) and a dataset of :func:`diffrep.data.load`. ``--num-train`` then
  ``--num-test`` factor rows are drawn from ``RandomState(--seed)`` (train first, one ``randint``
  per factor, as disentanglement_lib), their images encoded in batches of ``--batch-size``.
  A dataset whose factors are all binary also serves as ``attributes`` for ``tad``/``latent_auroc``.
  A model trained by ``diffrep train`` carries its run's data settings (``run.json``: dataset,
  options such as ``size``, pooling, root): ``--dataset`` defaults to the run's dataset and the
  images are drawn at the size and pooling the model was trained on (docs/data.md).
"""

from __future__ import annotations

import json

from ..metrics.suite import ARRAY_METRICS, DEFAULT, compute  # noqa: F401  (compute: importable from here too)


def __getattr__(name):  # encode_dataset and check_image_size moved to diffrep.recipes.encode (imported on use)
    if name in ("encode_dataset", "check_image_size"):
        from ..recipes import encode

        return getattr(encode, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(sub) -> None:
    p = sub.add_parser("eval", help="compute disentanglement/representation metrics from saved codes or a model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--codes", help=".npz with arrays 'codes' (N, d) and 'factors' (N, F)")
    src.add_argument("--model", help="save_pretrained model folder whose encode(x) gives the codes (needs --dataset)")
    p.add_argument("--dataset", help="dataset name for --model (diffrep.data.load: dsprites, shapes3d, ...; "
                   "default: the run's, from its run.json)")
    p.add_argument("--root", default=None, help="folder of the dataset's original files (default: the run's, "
                   "else $DIFFREP_DATA)")
    p.add_argument("--pool", type=int, default=None, help="--model: max-pool factor (default: the run's, else 1)")
    p.add_argument("--source", default="auto", choices=("auto", "file", "procedural"))
    p.add_argument("--num-train", type=int, default=10000, help="--model: train points (default 10000)")
    p.add_argument("--num-test", type=int, default=5000, help="--model: test points (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="--model: RandomState seed of the factor draws")
    p.add_argument("--batch-size", type=int, default=256, help="--model: encoder batch size")
    p.add_argument("--weights", choices=("model", "ema"), default="model", help="--model: raw or EMA weights")
    p.add_argument("--item-format", default="pm1", help="--model: image format the encoder takes (default pm1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--metrics", default=",".join(DEFAULT),
                   help=f"comma-separated subset of {','.join(ARRAY_METRICS)} (default: %(default)s)")
    p.add_argument("--mode", default="robust", choices=("robust", "parity"))
    p.add_argument("--estimator", default="fast", choices=("fast", "sklearn"), help="DCI/downstream GBT")
    p.add_argument("--tad-variant", default="infodiffusion", choices=("infodiffusion", "disdiff", "nashae", "exact"))
    p.add_argument("--test-fraction", type=float, default=1 / 3)
    p.add_argument("--out", help="write the result JSON here")
    p.set_defaults(func=run)


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


def run(args) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    settings = None
    if args.model is not None:
        from ..recipes.encode import encode_dataset

        src = encode_dataset(args.model, args.dataset, args.num_train, args.num_test, args.seed, args.batch_size,
                             args.weights, args.item_format, args.root, args.source, args.device, args.pool)
        settings = src.pop("_settings")
    else:
        src = args.codes
    result = compute(src, metrics, args.mode, args.estimator, args.tad_variant, args.test_fraction)
    if args.model is not None:
        result.meta.update(model=args.model, dataset=settings["dataset"], dataset_options=settings["options"],
                           pool=settings["pool"], seed=args.seed, num_train=args.num_train, num_test=args.num_test,
                           weights=args.weights)
    print(format_table(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result.to_json(), fh, indent=2)
    return 0
