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

__all__ = ["ARRAY_METRICS", "DEFAULT", "compute"]

ARRAY_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "infomec", "tad", "latent_auroc", "downstream")
DEFAULT = ("mig", "dci", "sap", "modularity_explicitness", "infomec")


def _split(z, name_train, name_test, frac):
    import numpy as np

    if name_test in z.files:
        return z[name_train], z[name_test]
    a = z[name_train]
    k = int(math.ceil(len(a) * (1 - frac)))
    return np.asarray(a[:k]), np.asarray(a[k:])



class _Arrays(dict):
    """The arrays of a --codes file or of encode_dataset, with the ``files`` listing of np.load."""

    @property
    def files(self):
        return list(self)


def compute(path, metrics, mode="robust", estimator="fast", tad_variant="infodiffusion", test_fraction=1 / 3):
    """Metrics of the arrays in ``path`` (an .npz file, or a dict from :func:`encode_dataset`)."""
    import numpy as np

    from .auroc import latent_auroc
    from .dci import dci
    from .downstream import downstream_efficiency
    from .infomec import infomec
    from .mig import mig
    from .modularity import modularity_explicitness
    from .results import merge
    from .sap import sap
    from .tad import tad

    unknown = [m for m in metrics if m not in ARRAY_METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {list(ARRAY_METRICS)}")
    z = _Arrays(path) if isinstance(path, dict) else np.load(path)
    source = "model" if isinstance(path, dict) else path
    for key in ("codes", "factors"):
        if key not in z.files and not (key == "factors" and set(metrics) <= {"tad", "latent_auroc"}):
            raise ValueError(f"--codes: {source} has no array {key!r} (found {z.files})")
    res = []
    if any(m not in ("tad", "latent_auroc") for m in metrics):
        ctr, cte = _split(z, "codes", "codes_test", test_fraction)
        ftr, fte = _split(z, "factors", "factors_test", test_fraction)
    for m in metrics:
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
    return merge(res, source=source)
