"""Codes of a saved model on freshly drawn factor rows of a ground-truth dataset, read with the
run's data settings (``run.json``, :mod:`diffrep.recipes.runinfo`): what ``diffrep eval --model`` and
``diffrep study`` hand to :func:`diffrep.metrics.suite.compute` (docs/metrics.md, docs/data.md).
"""

from __future__ import annotations

import numbers
import os

__all__ = ["encode_dataset", "calibrate_model", "check_image_size"]


def encode_dataset(model_dir: str, dataset: str | None, num_train: int = 10000, num_test: int = 5000, seed: int = 0,
                   batch_size: int = 256, weights: str = "model", item_format: str = "pm1", root=None,
                   source: str = "auto", device: str = "auto", pool: int | None = None, *, locate=None,
                   calibrate: str = "", calibrate_images: int = 1000, options: dict | None = None) -> dict:
    """Codes of a saved model on freshly drawn factor rows of ``dataset``: the arrays ``compute``
    reads (``codes``/``factors`` = train, ``codes_test``/``factors_test``).

    The dataset is read with the run's saved data settings under the arguments given here (``dataset``,
    ``pool``, ``root`` and the dataset ``options``: :func:`diffrep.recipes.runinfo.resolve_data_settings`,
    the rule of every model verb); the images are the dataset's ``sample_observations_from_factors``
    (what every metric reads, pooled like the training items) in ``item_format``. ``locate(path,
    weights) -> (model_dir, weights)``: how the folder given (a run, checkpoint or model folder) and
    the weights choice become the model folder and weights read (the CLI's conventions); the
    data settings are those of the folder given. ``calibrate``: the name of a model method fitting
    statistics ``encode`` needs, called first (:func:`calibrate_model`, on ``calibrate_images`` images)."""
    import numpy as np
    import torch

    from .._progress import progress
    from ..data.base import check_item_format, format_images
    from ..nn import load_pretrained
    from .runinfo import dataset_from_settings, resolve_data_settings

    for name, v in (("--num-train", num_train), ("--num-test", num_test), ("--batch-size", batch_size),
                    ("--pool", 1 if pool is None else pool)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:  # None, "5", 2.5 compared or sliced
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if device not in ("auto", "cpu", "cuda"):  # anything else read as the CPU
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    from ..nn.pretrained import WEIGHTS_CHOICES
    if not isinstance(weights, str) or weights not in WEIGHTS_CHOICES:
        raise ValueError(f"--weights must be one of {list(WEIGHTS_CHOICES)}, got {weights!r}")
    if not isinstance(model_dir, (str, os.PathLike)) or not model_dir:
        raise TypeError(f"model_dir must be a folder path (a run, checkpoint or model folder), got {model_dir!r}")
    if not os.path.isdir(model_dir):  # the wording of the verbs' own check (cli._common.resolve_model_dir)
        what = "is not a folder" if os.path.exists(model_dir) else "does not exist"
        raise FileNotFoundError(f"{model_dir} {what} (expected a model folder, a checkpoint folder or a run folder)")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:  # numpy named no flag
        raise ValueError(f"--seed must be an int in [0, 2^32), got {seed!r}")
    check_item_format(item_format)
    if not isinstance(calibrate, str):
        raise TypeError(f"--calibrate must be a model method's name (a str), got {type(calibrate).__name__}")
    if calibrate and (isinstance(calibrate_images, bool) or not isinstance(calibrate_images, numbers.Integral)
                      or calibrate_images < 1):
        raise ValueError(f"--calibrate-images must be an int >= 1, got {calibrate_images!r}")
    settings = resolve_data_settings(model_dir, dataset, pool=pool, root=root, options=options)  # run.json of the folder given
    if locate is not None:
        model_dir, weights = locate(model_dir, weights)
    extra = {"source": source} if settings["dataset"] != "toy_shapes" else {}
    settings["source_flag"] = "--source"  # the loader's hints name the verbs' flag (as --root), not source=
    ds = dataset_from_settings(settings, **extra)
    if not hasattr(ds, "factor_sizes") or not hasattr(ds, "sample_observations_from_factors"):
        given = f"--dataset {settings['dataset']}" if dataset else f"the run's dataset {settings['dataset']}"
        raise ValueError(f"{given}: has no ground-truth factors; pass --dataset NAME of one that has (dsprites, "
                         "shapes3d, mpi3d_toy, cars3d, ...)")
    dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    model = load_pretrained(model_dir, weights=weights, map_location=dev).eval()
    if not callable(getattr(model, "encode", None)):
        raise TypeError(f"{type(model).__name__} has no encode() method")
    check_image_size(model, ds, settings)
    if calibrate:
        calibrate_model(model, ds, calibrate, calibrate_images, seed, item_format, dev)
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
                z = model.encode(x.to(dev)).reshape(len(x), -1)
                # the model's precision (float32 or wider), as disentanglement_lib's representation functions
                # return it: MIG and modularity bin the codes in their own dtype (docs/metrics.md)
                codes.append(z.to(torch.promote_types(z.dtype, torch.float32)).cpu().numpy())
        out["codes" + key], out["factors" + key] = np.concatenate(codes), np.asarray(factors)
    if all(s == 2 for s in ds.factor_sizes):
        out["attributes"] = np.concatenate([out["factors"], out["factors_test"]])
        out["attribute_codes"] = np.concatenate([out["codes"], out["codes_test"]])
    out["_settings"] = settings
    out["_weights"] = weights
    out["_model_dir"] = str(model_dir)
    return out


def calibrate_model(model, ds, name: str, n: int, seed: int, item_format: str, device="cpu") -> None:
    """``model.<name>(images)`` on ``n`` images of the ground-truth dataset ``ds``: the statistics a
    representation needs before ``encode`` means anything (DisDiff's per-unit PCA, ``fit_code_pca``;
    docs/study.md, "Calibration"). The factor rows come from ``RandomState(seed + 1)``, a stream apart from
    the metric rows (``RandomState(seed)``); the images are in ``item_format``. ``diffrep study`` (``eval.calibrate``)
    and ``diffrep eval|encode --calibrate`` both call this, so their codes agree."""
    import numpy as np
    import torch

    from ..data.base import format_images

    from .._checks import positive_int

    positive_int(n, "calibrate_images")
    if not callable(getattr(ds, "sample_observations_from_factors", None)):  # else an AttributeError mid-call
        raise ValueError(f"calibrate_model: ds must be a ground-truth dataset (factor rows to draw), got "
                         f"{type(ds).__name__}")
    fit = getattr(model, name, None)
    if not isinstance(name, str) or not name or name.startswith("_") or not callable(fit):
        raise ValueError(f"calibrate {name!r}: {type(model).__name__} has no such method (DisDiff's calibration is fit_code_pca)")
    rng = np.random.RandomState(seed + 1)
    obs = ds.sample_observations_from_factors(ds.sample_factors(n, rng), rng)
    x = format_images(np.asarray(obs), item_format).to(device)
    with torch.no_grad():
        fit(x)


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
