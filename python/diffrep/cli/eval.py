"""``diffrep eval``: compute chosen metrics for codes aligned to a dataset, write JSON, print a table.

Input: ``--codes F.npz`` holding ``codes`` (N, d) and ``factors`` (N, F) (optionally
``codes_test``/``factors_test``; otherwise the last ``--test-fraction`` of the rows is the test
split, disentanglement_lib ``split_train_test`` style: the first ceil(N p) rows train). Binary
``attributes`` (N, A) enable ``tad`` and ``latent_auroc``. Evaluating a saved model needs the
dataset package and is not wired here yet.
"""

from __future__ import annotations

import json
import math

ARRAY_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "infomec", "tad", "latent_auroc", "downstream")
DEFAULT = ("mig", "dci", "sap", "modularity_explicitness", "infomec")


def register(sub) -> None:
    p = sub.add_parser("eval", help="compute disentanglement/representation metrics from saved codes")
    p.add_argument("--codes", required=True, help=".npz with arrays 'codes' (N, d) and 'factors' (N, F)")
    p.add_argument("--metrics", default=",".join(DEFAULT),
                   help=f"comma-separated subset of {','.join(ARRAY_METRICS)} (default: %(default)s)")
    p.add_argument("--mode", default="robust", choices=("robust", "parity"))
    p.add_argument("--estimator", default="fast", choices=("fast", "sklearn"), help="DCI/downstream GBT")
    p.add_argument("--tad-variant", default="infodiffusion", choices=("infodiffusion", "disdiff", "nashae", "exact"))
    p.add_argument("--test-fraction", type=float, default=1 / 3)
    p.add_argument("--out", help="write the result JSON here")
    p.set_defaults(func=run)


def _split(z, name_train, name_test, frac):
    import numpy as np

    if name_test in z.files:
        return z[name_train], z[name_test]
    a = z[name_train]
    k = int(math.ceil(len(a) * (1 - frac)))
    return np.asarray(a[:k]), np.asarray(a[k:])


def compute(path: str, metrics, mode="robust", estimator="fast", tad_variant="infodiffusion", test_fraction=1 / 3):
    import numpy as np

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
    z = np.load(path)
    for key in ("codes", "factors"):
        if key not in z.files and not (key == "factors" and set(metrics) <= {"tad", "latent_auroc"}):
            raise ValueError(f"--codes: {path} has no array {key!r} (found {z.files})")
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
                raise ValueError(f"--metrics {m}: {path} has no binary 'attributes' array")
            res.append(tad(z["codes"], z["attributes"], variant=tad_variant, mode=mode) if m == "tad"
                       else latent_auroc(z["codes"], z["attributes"], mode=mode))
    return merge(res, source=path)


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
    result = compute(args.codes, metrics, args.mode, args.estimator, args.tad_variant, args.test_fraction)
    print(format_table(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result.to_json(), fh, indent=2)
    return 0
