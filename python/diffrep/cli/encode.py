"""``diffrep encode MODEL [--dataset NAME] --out codes.npz``: a model's codes on a dataset with
ground-truth factors, written in the format ``diffrep eval --codes`` reads.

MODEL is a model folder, a checkpoint folder or a run folder (diffrep.cli._common); ``--weights auto``
(default) takes the EMA weights when present. The rows are drawn exactly as ``diffrep eval --model``
draws them (``--num-train`` then ``--num-test`` factor rows from ``RandomState(--seed)``, the run's
data settings from its ``run.json``), so ``diffrep eval --codes codes.npz`` gives the same scores as
``diffrep eval --model MODEL`` with the same flags. The file holds ``codes``/``factors`` (train),
``codes_test``/``factors_test``, ``attributes``/``attribute_codes`` when every factor is binary, and
``meta`` (a JSON string: model, weights, dataset, options, pool, seed, sizes).
"""

from __future__ import annotations

import json
import sys

from ._common import (add_device_flag, add_overwrite_flag, add_option_flag, add_threads_flag, add_weights_flag, apply_threads, check_root,
                      numpy_seed,
                      output_path, parse_options, prepare_output)
from ..data.base import ITEM_FORMATS  # checked at parsing: the API check names item_format, not the flag
from .eval import add_calibrate_flags


def register(sub) -> None:
    p = sub.add_parser("encode", help="write a model's codes + factors on a dataset to an .npz (for eval --codes)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="model, checkpoint or run folder whose encode(x) gives the codes")
    p.add_argument("--dataset", help="dataset name (default: the run's, from its run.json)")
    p.add_argument("--out", required=True, help="output .npz file (its folder is made when it is written; an existing "
                   "file is refused unless --overwrite)")
    add_overwrite_flag(p)
    p.add_argument("--root", default=None, help="folder of the dataset's original files (default: the run's, "
                   "else $DIFFREP_DATA)")
    p.add_argument("--pool", type=int, default=None, help="max-pool factor (default: the run's, else 1)")
    add_option_flag(p)
    p.add_argument("--source", default="auto", choices=("auto", "file", "procedural"),
                   help="where the dataset's images come from (default auto: its files when a root is set, else its "
                        "generator)")
    p.add_argument("--num-train", type=int, default=10000, help="train rows (default 10000)")
    p.add_argument("--num-test", type=int, default=5000, help="test rows (default 5000)")
    p.add_argument("--seed", type=numpy_seed, default=0, help="RandomState seed of the factor draws (default 0)")
    p.add_argument("--batch-size", type=int, default=256, help="encoder batch size (default 256)")
    p.add_argument("--item-format", default="pm1", choices=ITEM_FORMATS, help="image format the encoder takes (default pm1)")
    add_calibrate_flags(p, scope="")
    add_weights_flag(p)
    add_device_flag(p)
    add_threads_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from .eval import MODEL_ONLY, check_calibrate_flags, encode_dataset

    check_calibrate_flags(args)
    calibrate = args.calibrate or ""
    calibrate_images = MODEL_ONLY["calibrate_images"] if args.calibrate_images is None else args.calibrate_images
    out = str(args.out)
    if not out.endswith(".npz"):
        raise ValueError(f"--out {out}: give a file name ending in .npz (numpy would append it otherwise)")
    check_root(args.root)  # before the model loads
    path = prepare_output(out, overwrite=args.overwrite)
    apply_threads(args.threads)
    arrays = encode_dataset(args.model, args.dataset, args.num_train, args.num_test, args.seed, args.batch_size,
                            args.weights, args.item_format, args.root, args.source, args.device, args.pool,
                            verb="diffrep encode", calibrate=calibrate, calibrate_images=calibrate_images,
                            options=parse_options(getattr(args, "option", None)))
    settings, weights, model_dir = arrays.pop("_settings"), arrays.pop("_weights"), arrays.pop("_model_dir")
    meta = {"model": model_dir, "weights": weights, "dataset": settings["dataset"],
            "dataset_options": settings["options"], "pool": settings["pool"], "seed": args.seed,
            "num_train": args.num_train, "num_test": args.num_test, "item_format": args.item_format}
    if calibrate:
        meta.update(calibrate=calibrate, calibrate_images=calibrate_images)
    np.savez(output_path(path), **arrays, meta=np.array(json.dumps(meta, default=str)))
    print(f"wrote {len(arrays['codes'])} + {len(arrays['codes_test'])} codes of width {arrays['codes'].shape[1]} "
          f"({weights} weights of {model_dir}) on {settings['dataset']} to {path}", file=sys.stderr)
    return 0
