"""A suite of array metrics in one call: the metric names ``diffrep eval --metrics`` and ``diffrep
study`` accept, computed on codes aligned to factors (docs/metrics.md, "Result files").

:func:`compute` reads an ``.npz`` file (or a dict of the same arrays) holding ``codes`` (N, d) and
``factors`` (N, F), optionally ``codes_test``/``factors_test`` (otherwise the last ``test_fraction``
of the rows is the test split, disentanglement_lib ``split_train_test`` style: the first
ceil(N (1 - p)) rows train) and binary ``attributes`` (for ``tad`` and ``latent_auroc``), and returns
the merged :class:`~diffrep.metrics.results.Result`.
"""

from __future__ import annotations

import math
import os

from .._checks import probability

__all__ = ["ARRAY_METRICS", "DEFAULT", "MIN_ROWS", "align_to_dataset", "compute", "load_codes", "sample_warnings"]

ARRAY_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "infomec", "tad", "latent_auroc", "downstream")
DEFAULT = ("mig", "dci", "sap", "modularity_explicitness", "infomec")
# The rows a metric needs before its estimate means much (K = values of the factor with the most values):
# the MI metrics fill a 20-bin x K table (MIG's histogram; 5 rows per cell on average); the classifier
# metrics need every class in the train and the test split (10 rows per class each); the attribute
# metrics need 100 rows. Fewer rows: computed, with a warning.
MIN_ROWS = {"mig": lambda k: 100 * k, "infomec": lambda k: 100 * k, "dci": lambda k: 10 * k, "sap": lambda k: 10 * k,
            "modularity_explicitness": lambda k: 10 * k, "downstream": lambda k: 10 * k,
            "tad": lambda k: 100, "latent_auroc": lambda k: 100}



def _split(z, name_train, name_test, frac):
    import numpy as np

    if name_test in z.files:
        return z[name_train], z[name_test]
    a = z[name_train]
    # ceil(N (1 - p)); rounded to 9 decimals first, or the 1-ulp error of 1 - 1/3 makes
    # 15000 rows a 10001/4999 split instead of 10000/5000
    k = int(math.ceil(round(len(a) * (1 - frac), 9)))
    return np.asarray(a[:k]), np.asarray(a[k:])



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

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"--codes: path must be an .npz file path, got {type(path).__name__}")
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



def _dataset_rows(z, codes_key: str, index_key: str, dataset, name: str, required: bool):
    """(dataset indices, targets (n, T)) of the rows of ``z[codes_key]``."""
    import numpy as np

    n_rows, n_items = len(z[codes_key]), len(dataset)
    if index_key in z.files:
        idx = np.asarray(z[index_key])
        if idx.ndim != 1 or len(idx) != n_rows:
            raise ValueError(f"--codes: {index_key!r} must hold one dataset index per row of {codes_key!r} "
                             f"({n_rows}), got shape {idx.shape}")
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n_items):
            raise ValueError(f"--codes: {index_key!r} must be integer dataset indices in [0, {n_items}) "
                             f"for {name}, got dtype {idx.dtype}, range [{idx.min()}, {idx.max()}]")
    elif required:
        raise ValueError(f"--codes: {codes_key!r} needs an {index_key!r} array (the dataset index of each row)")
    elif n_rows != n_items:
        raise ValueError(f"--codes: {codes_key!r} has {n_rows} rows but {name} has {n_items} items: give one row "
                         f"per item (row i = item i), or an {index_key!r} array with the item of each row")
    else:
        idx = np.arange(n_items)
    t = np.asarray(dataset.targets(idx))
    return idx, t.reshape(len(idx), -1)


def align_to_dataset(arrays, dataset, name: str = "the dataset") -> "_Arrays":
    """The arrays of a codes file whose rows are aligned to dataset indices, with ``factors`` read
    from ``dataset`` (``len(dataset)`` and ``dataset.targets(indices)``, as
    :func:`diffrep.data.load` gives): what ``diffrep eval --codes F.npz --dataset NAME`` scores.

    Row r of ``codes`` is the code of item ``indices[r]`` (the file's ``indices`` array) or, without
    one, of item r (``codes`` then holds one row per item). ``codes_test`` takes ``indices_test``.
    The items' targets (factor classes, labels or attributes) become ``factors``/``factors_test``;
    binary targets also become ``attributes`` (of ``codes`` then ``codes_test``) for ``tad`` and
    ``latent_auroc``. A file with its own ``factors`` is refused: its rows need not be the dataset's.
    """
    import numpy as np

    if not (hasattr(arrays, "files") or isinstance(arrays, dict)):
        raise TypeError(f"--codes: arrays must be the arrays of a codes file (load_codes, or a dict of name -> "
                        f"array), got {type(arrays).__name__}")
    if not (hasattr(dataset, "__len__") and callable(getattr(dataset, "targets", None))):
        raise TypeError(f"--dataset: dataset must be a dataset with targets (diffrep.data.load), got "
                        f"{type(dataset).__name__}")
    z = arrays if hasattr(arrays, "files") else _Arrays(arrays)
    if "codes" not in z.files:
        raise ValueError(f"--codes: no array 'codes' (found {z.files})")
    own = [k for k in ("factors", "factors_test", "attributes") if k in z.files]
    if own:
        raise ValueError(f"--codes: the file has its own {own}; --dataset reads the targets of codes aligned to "
                         "dataset indices (drop --dataset to score the file's own arrays)")
    out = _Arrays({k: z[k] for k in z.files})
    _, out["factors"] = _dataset_rows(z, "codes", "indices", dataset, name, required=False)
    if out["factors"].shape[1] == 0:
        raise ValueError(f"--dataset: {name} has no targets (factors, labels or attributes) to score codes against")
    if "codes_test" in z.files:
        _, out["factors_test"] = _dataset_rows(z, "codes_test", "indices_test", dataset, name, required=True)
    if np.isin(out["factors"], (0, 1)).all() and ("factors_test" not in out or np.isin(out["factors_test"], (0, 1)).all()):
        if "factors_test" in out:
            out["attributes"] = np.concatenate([out["factors"], out["factors_test"]])
            out["attribute_codes"] = np.concatenate([np.asarray(z["codes"]), np.asarray(z["codes_test"])])
        else:
            out["attributes"] = out["factors"]
    return out



def sample_warnings(metrics, n_train: int, n_test: int, factor_sizes, n_attr: int | None = None,
                    n_codes: int | None = None) -> list[str]:
    """One message per metric given fewer rows than :data:`MIN_ROWS` asks for. ``n_codes``: the rows of
    the ``codes`` array, which MIG and InfoMEC read (default ``n_train + n_test``: the split was cut from
    it; with a separate ``codes_test`` they read the train rows only)."""
    import numpy as np

    from .._checks import non_negative_int, positive_int

    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)) or any(m not in MIN_ROWS for m in metrics):
        raise ValueError(f"metrics must be a sequence of names from {list(MIN_ROWS)}, got {metrics!r}")
    for name, v in (("n_train", n_train), ("n_test", n_test), ("n_attr", n_attr), ("n_codes", n_codes)):
        if v is not None or name in ("n_train", "n_test"):
            non_negative_int(v, name)  # True was 1 row, 1.5 compared as 1.5 rows
    if isinstance(factor_sizes, (str, bytes)) or not isinstance(factor_sizes, (list, tuple)):
        raise ValueError(f"factor_sizes must be a sequence of positive ints, got {factor_sizes!r}")
    for i, s in enumerate(factor_sizes):
        positive_int(int(s) if isinstance(s, np.integer) else s, f"factor_sizes[{i}]")
    k = max([int(s) for s in factor_sizes] or [2])
    out = []
    for m in metrics:
        need = MIN_ROWS[m](k)
        if m in ("tad", "latent_auroc"):
            have, what = (n_attr or 0), "rows"
        elif m in ("mig", "infomec"):  # computed on the codes array, without codes_test
            have, what = n_train + n_test if n_codes is None else n_codes, "rows"
        else:
            have, what = min(n_train, n_test), f"rows in the smaller split ({n_train} train, {n_test} test)"
        if have < need:
            out.append(f"{m}: {have} {what}, fewer than the {need} it needs for a stable estimate "
                       f"(largest factor has {k} values; see diffrep.metrics.suite.MIN_ROWS)")
    return out



def _check_arrays(z, source: str, attributes: bool) -> None:
    """The arrays' kinds and shapes, named as the file names them: ``codes``/``codes_test`` 2-D real numbers,
    ``factors``/``factors_test`` 2-D integer classes (integral floats accepted, as the metrics accept them),
    a test split given whole (``codes_test`` with ``factors_test``), and with ``attributes`` (tad or
    latent_auroc asked for) an ``attributes`` array 2-D, 0/1, one row per row of the codes. A
    ``codes_test`` without ``factors_test`` was split against the factors' own train part ("90 vs 60
    samples"), and a string array failed in a float conversion that named no array."""
    import numpy as np

    tests = [k for k in ("codes_test", "factors_test") if k in z.files]
    if len(tests) == 1 and "factors" in z.files:
        other = "factors_test" if tests[0] == "codes_test" else "codes_test"
        raise ValueError(f"--codes: {source} has {tests[0]!r} but no {other!r}; give the test split as both arrays "
                         "(or neither: the last --test-fraction of the rows is then the test split)")
    for key in ("codes", "codes_test", "factors", "factors_test"):
        if key not in z.files:
            continue
        a = np.asarray(z[key])
        if a.dtype.kind not in ("iuf" if key.startswith("codes") else "biuf"):
            raise TypeError(f"--codes: {source}: {key!r} must hold numbers, got dtype {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"--codes: {source}: {key!r} must be 2-D ({'rows x codes' if key.startswith('codes') else 'rows x factors'}"
                             f"{', one column per factor: reshape(-1, 1) for one' if key.startswith('factors') else ''}), "
                             f"got shape {a.shape}")
        if key.startswith("factors") and a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise TypeError(f"--codes: {source}: {key!r} must hold integer class labels, got non-integer values "
                            f"({a.dtype})")
    if attributes and "attributes" in z.files:  # what tad and latent_auroc score: one 0/1 row per row of the codes they read
        a = np.asarray(z["attributes"])
        rows = len(z["attribute_codes"] if "attribute_codes" in z.files else z["codes"])
        if a.dtype.kind not in "biuf" or a.ndim != 2:
            raise ValueError(f"--codes: {source}: 'attributes' must be 2-D binary labels (rows x attributes), got "
                             f"dtype {a.dtype}, shape {a.shape}")
        values = np.unique(a)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(f"--codes: {source}: 'attributes' must hold binary 0/1 labels, got values "
                             f"{values[:6].tolist()}{' ...' if len(values) > 6 else ''}")
        if len(a) != rows:
            raise ValueError(f"--codes: {source}: 'attributes' has {len(a)} rows but 'codes' has {rows}; row i of "
                             "each is one example")
    for a, b in (("codes", "codes_test"), ("factors", "factors_test")):
        if a in z.files and b in z.files and np.shape(z[a])[1] != np.shape(z[b])[1]:
            what = "codes" if a == "codes" else "factors"
            raise ValueError(f"--codes: {source}: {a!r} has {np.shape(z[a])[1]} {what} per row but {b!r} has "
                             f"{np.shape(z[b])[1]}; both splits hold the same {what}")


def compute(path, metrics, mode="robust", estimator="fast", tad_variant="infodiffusion", test_fraction=1 / 3,
            warn=None, source=None):
    """Metrics of the arrays in ``path`` (an .npz file, or a dict from ``encode_dataset`` or
    :func:`align_to_dataset`); ``warn(note)`` is called with each too-few-samples note
    (:data:`MIN_ROWS`), which the result's flags also keep. ``source`` names the arrays in messages
    and the result (default: the file, or "model" for a dict)."""
    import numpy as np

    from .._progress import progress
    from .auroc import latent_auroc
    from .dci import dci
    from .downstream import downstream_efficiency
    from .infomec import infomec
    from .mig import mig
    from .modularity import modularity_explicitness
    from .results import merge
    from .sap import sap
    from .tad import tad

    from .dci import ESTIMATORS
    from .tad import VARIANTS

    if not isinstance(path, (str, os.PathLike, dict)):
        raise TypeError(f"--codes: path must be an .npz file or a dict of arrays, got {type(path).__name__}")
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"--metrics: metrics must be a sequence of names, got {metrics!r}")
    unknown = [m for m in metrics if m not in ARRAY_METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {list(ARRAY_METRICS)}")
    # checked whichever metrics are asked for: an unused bad value was accepted without a word
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if tad_variant not in VARIANTS:
        raise ValueError(f"tad_variant must be one of {VARIANTS}, got {tad_variant!r}")
    # 1.5 split the rows 100/100 (a negative slice end) and nan failed inside int(): a fraction in (0, 1)
    probability(test_fraction, "--test-fraction", open_low=True, open_high=True)
    z = _Arrays(path) if isinstance(path, dict) else load_codes(path)
    source = source if source is not None else "model" if isinstance(path, dict) else str(path)
    for key in ("codes", "factors"):
        if key not in z.files and not (key == "factors" and set(metrics) <= {"tad", "latent_auroc"}):
            raise ValueError(f"--codes: {source} has no array {key!r} (found {z.files})")
    # before the too-few-samples warnings: those were printed first, about rows the error then disowned
    _check_arrays(z, source, attributes=any(m in ("tad", "latent_auroc") for m in metrics))
    for a, b in (("codes", "factors"), ("codes_test", "factors_test")):
        if a in z.files and b in z.files and len(z[a]) != len(z[b]):
            raise ValueError(f"--codes: {source}: '{a}' has {len(z[a])} rows but '{b}' has {len(z[b])}; row i of "
                             f"each is one example")
    for a in ("codes", "codes_test"):
        if a in z.files and not np.isfinite(np.asarray(z[a], dtype=np.float64)).all():
            bad = int((~np.isfinite(np.asarray(z[a], dtype=np.float64))).any(axis=tuple(range(1, np.ndim(z[a])))).sum())
            raise ValueError(f"--codes: {source}: '{a}' holds NaN or inf in {bad} of its {len(z[a])} rows")
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
        notes = sample_warnings([m for m in metrics if m not in ("tad", "latent_auroc")], len(ctr), len(cte), sizes,
                                n_codes=len(z["codes"]))
    if any(m in ("tad", "latent_auroc") for m in metrics) and "attributes" in z.files:
        notes += sample_warnings([m for m in metrics if m in ("tad", "latent_auroc")], 0, 0, [2],
                                 n_attr=len(z["attributes"]))
    for note in notes if warn is not None else ():
        warn(note)
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
