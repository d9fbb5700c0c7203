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
  images are drawn at the size and pooling the model was trained on (docs/data.md). ``--model``
  takes a model folder, a checkpoint folder or a run folder; ``--weights auto`` (default) takes the
  EMA weights when present (diffrep.cli._common). ``diffrep encode`` writes the same arrays to a file.

``--format`` prints the scores as a text table (default), markdown, CSV or the result JSON. A file
that is not an .npz archive (or is truncated) is an error naming it; the ``--out`` folder is created
before anything is computed; a metric given fewer rows than :data:`MIN_ROWS` asks for is computed,
with a warning (stderr and the result's flags) stating both numbers.
"""

from __future__ import annotations

import json
import math
import sys

from ._common import (add_device_flag, add_threads_flag, add_weights_flag, apply_threads, prepare_output, resolve_device,
                      resolve_model_dir, resolve_weights)

from . import eval_generation

ARRAY_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "infomec", "tad", "latent_auroc", "downstream")
DEFAULT = ("mig", "dci", "sap", "modularity_explicitness", "infomec")
FORMATS = ("text", "md", "csv", "json")
# The rows a metric needs before its estimate means much (K = values of the factor with the most values):
# the MI metrics fill a 20-bin x K table (MIG's histogram; 5 rows per cell on average); the classifier
# metrics need every class in the train and the test split (10 rows per class each); the attribute
# metrics need 100 rows. Fewer rows: computed, with a warning.
MIN_ROWS = {"mig": lambda k: 100 * k, "infomec": lambda k: 100 * k, "dci": lambda k: 10 * k, "sap": lambda k: 10 * k,
            "modularity_explicitness": lambda k: 10 * k, "downstream": lambda k: 10 * k,
            "tad": lambda k: 100, "latent_auroc": lambda k: 100}


def register(sub) -> None:
    p = sub.add_parser("eval", help="compute disentanglement/representation metrics from saved codes or a model")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--codes", help=".npz with arrays 'codes' (N, d) and 'factors' (N, F)")
    src.add_argument("--model", help="save_pretrained model folder whose encode(x) gives the codes (needs --dataset)")
    src.add_argument("--generation", action="store_true",
                     help="generation metrics (FID, KID, PRDC) of --fake against --real (diffrep.cli.eval_generation)")
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
    add_weights_flag(p)
    p.add_argument("--item-format", default="pm1", help="--model: image format the encoder takes (default pm1)")
    add_device_flag(p)
    add_threads_flag(p)
    p.add_argument("--metrics", default=",".join(DEFAULT),
                   help=f"comma-separated subset of {','.join(ARRAY_METRICS)} (default: %(default)s)")
    p.add_argument("--mode", default="robust", choices=("robust", "parity"))
    p.add_argument("--estimator", default="fast", choices=("fast", "sklearn"), help="DCI/downstream GBT")
    p.add_argument("--tad-variant", default="infodiffusion", choices=("infodiffusion", "disdiff", "nashae", "exact"))
    p.add_argument("--test-fraction", type=float, default=1 / 3)
    p.add_argument("--out", help="write the result JSON here (its folder is created first)")
    p.add_argument("--format", choices=FORMATS, default="text", help="how to print the scores (default text)")
    eval_generation.add_arguments(p)
    p.set_defaults(func=run)


def _split(z, name_train, name_test, frac):
    import numpy as np

    if name_test in z.files:
        return z[name_train], z[name_test]
    a = z[name_train]
    k = int(math.ceil(len(a) * (1 - frac)))
    return np.asarray(a[:k]), np.asarray(a[k:])


def encode_dataset(model_dir: str, dataset: str | None, num_train: int = 10000, num_test: int = 5000, seed: int = 0,
                   batch_size: int = 256, weights: str = "auto", item_format: str = "pm1", root=None,
                   source: str = "auto", device: str = "auto", pool: int | None = None) -> dict:
    """Codes of a saved model on freshly drawn factor rows of ``dataset``: the arrays ``compute``
    reads (``codes``/``factors`` = train, ``codes_test``/``factors_test``).

    The dataset is read with the run's saved data settings (:mod:`diffrep.recipes.runinfo`) under
    the arguments given here; the images are the dataset's ``sample_observations_from_factors``
    (what every metric reads, pooled like the training items) in ``item_format``."""
    import numpy as np

    from .._progress import progress
    from ..data.base import check_item_format, format_images
    from ..nn import load_pretrained
    from ..recipes.runinfo import dataset_from_settings, resolve_data_settings

    for name, v in (("--num-train", num_train), ("--num-test", num_test), ("--batch-size", batch_size)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if pool is not None and pool < 1:
        raise ValueError(f"--pool must be >= 1, got {pool}")
    check_item_format(item_format)
    dev = resolve_device(device)
    settings = resolve_data_settings(model_dir, dataset, pool=pool, root=root)  # run.json of the folder given
    model_dir = resolve_model_dir(model_dir)
    weights = resolve_weights(model_dir, weights, "diffrep eval")
    settings["root_flag"] = "--root" if root is not None else "the run's data.root"
    extra = {"source": source} if settings["dataset"] != "toy_shapes" else {}
    ds = dataset_from_settings(settings, **extra)
    if not hasattr(ds, "factor_sizes") or not hasattr(ds, "sample_observations_from_factors"):
        raise ValueError(f"--dataset {settings['dataset']}: has no ground-truth factors")
    import torch

    model = load_pretrained(model_dir, weights=weights, map_location=dev).eval()
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"{type(model).__name__} has no encode() method")
    check_image_size(model, ds, settings)
    rng = np.random.RandomState(seed)
    out = {}
    for key, n in (("", num_train), ("_test", num_test)):
        factors = ds.sample_factors(n, rng)
        codes = []
        with torch.no_grad():
            for b0 in progress(range(0, n, batch_size), total=-(-n // batch_size), unit="batch",
                               desc=f"encoding {'test' if key else 'train'} rows"):
                obs = ds.sample_observations_from_factors(factors[b0:b0 + batch_size], rng)
                x = format_images(np.asarray(obs), item_format)
                codes.append(model.encode(x.to(dev)).reshape(len(x), -1).double().cpu().numpy())
        out["codes" + key], out["factors" + key] = np.concatenate(codes), np.asarray(factors)
    if all(s == 2 for s in ds.factor_sizes):
        out["attributes"] = np.concatenate([out["factors"], out["factors_test"]])
        out["attribute_codes"] = np.concatenate([out["codes"], out["codes_test"]])
    out["_settings"] = settings
    out["_weights"] = weights
    out["_model_dir"] = str(model_dir)
    return out


def _model_image_size(model) -> int | None:
    cfg = getattr(model, "config", None)
    for path in (("image_size",), ("bfn", "image_size"), ("unet", "image_size"), ("denoiser", "image_size"),
                 ("vae", "image_size")):
        v = cfg
        for p in path:
            v = getattr(v, p, None)
        if isinstance(v, int):
            return v
    return None


def check_image_size(model, ds, settings: dict) -> None:
    """A clear error when the dataset's images are not the size the model was trained on."""
    import numpy as np

    want = _model_image_size(model)
    if want is None:
        return
    obs = np.asarray(ds.sample_observations_from_factors(ds.sample_factors(1, np.random.RandomState(0)),
                                                         np.random.RandomState(0)))
    got = obs.shape[1]
    if got != want:
        hint = (f"; pool by {got // want} (--pool {got // want})" if got % want == 0 and got > want else "")
        raise ValueError(f"the model reads {want}x{want} images but {settings['dataset']} with options "
                         f"{settings['options']} and pool {settings['pool']} gives {got}x{got}{hint}")


class _Arrays(dict):
    """The arrays of a --codes file or of encode_dataset, with the ``files`` listing of np.load."""

    @property
    def files(self):
        return list(self)


def load_codes(path) -> "_Arrays":
    """The arrays of a ``--codes`` file, read at once; a missing, truncated or non-.npz file is a
    ValueError / FileNotFoundError naming it."""
    import zipfile

    import numpy as np

    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):
            raise ValueError(f"--codes {path}: a single .npy array, not an .npz archive of named arrays "
                             "('codes', 'factors', ...)")
        with z:
            return _Arrays({k: z[k] for k in z.files})
    except FileNotFoundError:
        raise FileNotFoundError(f"--codes {path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"--codes {path} is a folder; give an .npz file") from None
    except ValueError as exc:
        if str(exc).startswith("--codes"):
            raise
        why = "numpy would read it as a pickle, which is never loaded" if "pickle" in str(exc) else str(exc)[:160]
        raise ValueError(f"--codes {path}: not an .npz archive of arrays ({why})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"--codes {path}: not a readable .npz archive (truncated or another format?): "
                         f"{exc}") from None


def sample_warnings(metrics, n_train: int, n_test: int, factor_sizes, n_attr: int | None = None) -> list[str]:
    """One message per metric given fewer rows than :data:`MIN_ROWS` asks for."""
    k = max([int(s) for s in factor_sizes] or [2])
    out = []
    for m in metrics:
        need = MIN_ROWS[m](k)
        if m in ("tad", "latent_auroc"):
            have, what = (n_attr or 0), "rows"
        elif m in ("mig", "infomec"):  # computed on all rows
            have, what = n_train + n_test, "rows"
        else:
            have, what = min(n_train, n_test), f"rows in the smaller split ({n_train} train, {n_test} test)"
        if have < need:
            out.append(f"{m}: {have} {what}, fewer than the {need} it needs for a stable estimate "
                       f"(largest factor has {k} values; see diffrep eval MIN_ROWS)")
    return out


def compute(path, metrics, mode="robust", estimator="fast", tad_variant="infodiffusion", test_fraction=1 / 3):
    """Metrics of the arrays in ``path`` (an .npz file, or a dict from :func:`encode_dataset`)."""
    import numpy as np

    from .._progress import progress

    from ..metrics.auroc import latent_auroc
    from ..metrics.dci import dci
    from ..metrics.downstream import downstream_efficiency
    from ..metrics.infomec import infomec
    from ..metrics.mig import mig
    from ..metrics.modularity import modularity_explicitness
    from ..metrics.results import merge
    from ..metrics.sap import sap
    from ..metrics.tad import tad

    unknown = [m for m in metrics if m not in ARRAY_METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {list(ARRAY_METRICS)}")
    z = _Arrays(path) if isinstance(path, dict) else load_codes(path)
    source = "model" if isinstance(path, dict) else str(path)
    for key in ("codes", "factors"):
        if key not in z.files and not (key == "factors" and set(metrics) <= {"tad", "latent_auroc"}):
            raise ValueError(f"--codes: {source} has no array {key!r} (found {z.files})")
    res = []
    notes = []
    if any(m not in ("tad", "latent_auroc") for m in metrics):
        ctr, cte = _split(z, "codes", "codes_test", test_fraction)
        ftr, fte = _split(z, "factors", "factors_test", test_fraction)
        if len(ctr) == 0 or len(cte) == 0:
            raise ValueError(f"{source}: {len(ctr)} train and {len(cte)} test rows; every metric needs both splits "
                             f"non-empty (--test-fraction {test_fraction:g} of {len(ctr) + len(cte)} rows)")
        f_all = np.concatenate([np.asarray(ftr), np.asarray(fte)])
        sizes = [len(np.unique(f_all[:, j])) for j in range(f_all.shape[1])] if f_all.ndim == 2 else []
        notes = sample_warnings([m for m in metrics if m not in ("tad", "latent_auroc")], len(ctr), len(cte), sizes)
    if any(m in ("tad", "latent_auroc") for m in metrics) and "attributes" in z.files:
        notes += sample_warnings([m for m in metrics if m in ("tad", "latent_auroc")], 0, 0, [2],
                                 n_attr=len(z["attributes"]))
    for note in notes:
        print(f"diffrep eval: warning: {note}", file=sys.stderr)
    for m in progress(metrics, desc="metrics", unit="metric"):
        if m == "mig":
            res.append(mig(z["codes"], z["factors"], mode=mode))
        elif m == "infomec":
            res.append(infomec(z["codes"], z["factors"], mode=mode))
        elif m == "dci":
            res.append(dci(ctr, ftr, cte, fte, estimator=estimator, mode=mode))
        elif m == "sap":
            res.append(sap(ctr, ftr, cte, fte, mode=mode))
        elif m == "modularity_explicitness":
            res.append(modularity_explicitness(ctr, ftr, cte, fte, mode=mode))
        elif m == "downstream":
            sizes = tuple(s for s in (10, 100, 1000, 10000) if s <= len(ctr))
            res.append(downstream_efficiency(ctr, ftr, cte, fte, sizes=sizes, predictor=estimator))
        elif m in ("tad", "latent_auroc"):
            if "attributes" not in z.files:
                raise ValueError(f"--metrics {m}: {source} has no binary 'attributes' array")
            za = z["attribute_codes"] if "attribute_codes" in z.files else z["codes"]
            res.append(tad(za, z["attributes"], variant=tad_variant, mode=mode) if m == "tad"
                       else latent_auroc(za, z["attributes"], mode=mode))
    result = merge(res, source=source)
    result.meta["flags"] += [f"too few samples: {n}" for n in notes]
    return result


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


def run(args) -> int:
    if getattr(args, "generation", False):
        return eval_generation.run(args)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in ARRAY_METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {list(ARRAY_METRICS)}")
    fmt = getattr(args, "format", "text")
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    out_path = prepare_output(args.out)  # before any computing
    apply_threads(getattr(args, "threads", None))
    settings = None
    if args.model is not None:
        src = encode_dataset(args.model, args.dataset, args.num_train, args.num_test, args.seed, args.batch_size,
                             args.weights, args.item_format, args.root, args.source, args.device, args.pool)
        settings = src.pop("_settings")
        args.weights = src.pop("_weights")
        src.pop("_model_dir")
    else:
        src = args.codes
    result = compute(src, metrics, args.mode, args.estimator, args.tad_variant, args.test_fraction)
    if args.model is not None:
        result.meta.update(model=args.model, dataset=settings["dataset"], dataset_options=settings["options"],
                           pool=settings["pool"], seed=args.seed, num_train=args.num_train, num_test=args.num_test,
                           weights=args.weights)
    print(format_result(result, fmt))
    if out_path is not None:
        with open(out_path, "w") as fh:
            json.dump(result.to_json(), fh, indent=2)
    return 0
