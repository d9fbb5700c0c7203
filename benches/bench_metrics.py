"""Metric suite timings on Shapes3D-sized inputs, measured side by side in one run.

Inputs: 10k train / 5k test codes (d = 20: the six Shapes3D factors plus noise, with 14 noise
codes), factors with the Shapes3D sizes (10, 10, 10, 8, 4, 15). Pipelines:
  * fast      -- diffrep robust defaults (fast GBT for DCI, ranks/histogram/kNN kernels);
  * parity    -- diffrep parity modes (sklearn GBT for DCI, factors fitted in parallel);
  * reference -- a sklearn/NumPy loop pipeline written like the references (per-pair
                 mutual_info_score / mutual_info_classif / roc_auc_score, GBT per factor, serial).
TAD: 40 attributes x 256 latents x 5 folds (InfoDiffusion protocol), kernel vs sklearn loop.

  OMP_NUM_THREADS=2 taskset -c 0,1 python benches/bench_metrics.py [--skip reference,parity] [--out F]
The reference pipeline takes many minutes (DCI alone ~3 min); ``--skip`` leaves pipelines out.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

SIZES = (10, 10, 10, 8, 4, 15)


def data(seed=0, n_train=10000, n_test=5000, d=20):
    rng = np.random.RandomState(seed)

    def one(n):
        f = np.stack([rng.randint(0, s, n) for s in SIZES], 1)
        z = np.hstack([f / np.array(SIZES) + 0.05 * rng.randn(n, 6), rng.randn(n, d - 6)])
        return z, f

    return one(n_train) + one(n_test)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def suite(ctr, ftr, cte, fte, mode, estimator):
    from diffrep.metrics.dci import dci
    from diffrep.metrics.infomec import infomec
    from diffrep.metrics.mig import mig
    from diffrep.metrics.modularity import modularity_explicitness
    from diffrep.metrics.sap import sap

    times = {}
    times["mig"], _ = timed(lambda: mig(ctr, ftr, mode=mode))
    times["dci"], r = timed(lambda: dci(ctr, ftr, cte, fte, estimator=estimator, mode=mode))
    times["sap"], _ = timed(lambda: sap(ctr, ftr, cte, fte, mode=mode))
    times["modularity_explicitness"], _ = timed(lambda: modularity_explicitness(ctr, ftr, cte, fte, mode=mode))
    times["infomec"], _ = timed(lambda: infomec(ctr, ftr, mode=mode))
    return times, r


def reference_suite(ctr, ftr, cte, fte):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.feature_selection import mutual_info_classif
    from sklearn.metrics import mutual_info_score
    from sklearn.preprocessing import StandardScaler

    times = {}

    def mig_ref():
        disc = [np.digitize(c, np.histogram(c, 20)[1][:-1]) for c in ctr.T]
        return np.array([[mutual_info_score(f, c) for f in ftr.T] for c in disc])

    times["mig"], _ = timed(mig_ref)

    def dci_ref():
        for j in range(ftr.shape[1]):
            m = GradientBoostingClassifier().fit(ctr, ftr[:, j])
            m.predict(ctr), m.predict(cte)

    times["dci"], _ = timed(dci_ref)

    def knn_ref():
        zs = StandardScaler().fit_transform(ctr)
        return [[mutual_info_classif(zs[:, [j]], ftr[:, i], n_neighbors=10)[0] for j in range(zs.shape[1])]
                for i in range(ftr.shape[1])]

    times["infomec_nmi"], _ = timed(knn_ref)
    return times


def tad_bench(reference: bool):
    from sklearn.metrics import roc_auc_score

    from diffrep.metrics.tad import tad

    rng = np.random.RandomState(1)
    y = (rng.rand(10000, 40) < 0.3).astype(int)
    z = np.hstack([y + rng.randn(10000, 40), rng.randn(10000, 216)])
    out = {}
    out["tad_infodiffusion_fast"], r = timed(lambda: tad(z, y, variant="infodiffusion"))
    if reference:
        # one fold of 40 x 256 x 2 roc_auc_score calls on 8000 points, times 5 folds
        zt = z[:8000].astype(np.float32)
        t, _ = timed(lambda: [[max(roc_auc_score(y[:8000, i], zt[:, j]), roc_auc_score(y[:8000, i], -zt[:, j]))
                               for j in range(0, 256, 16)] for i in range(40)])
        out["tad_sklearn_loop_extrapolated"] = t * 16 * 5
    return out, r


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--skip", default="", help="comma list of: fast,parity,reference,tad")
    p.add_argument("--out")
    a = p.parse_args(argv)
    skip = set(a.skip.split(",")) - {""}
    ctr, ftr, cte, fte = data()
    lines = [f"# bench_metrics  {time.strftime('%Y-%m-%d')}",
             f"# machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
             f"torch_threads={torch.get_num_threads()} gpu={'yes' if torch.cuda.is_available() else 'none'}",
             f"# python {platform.python_version()} torch {torch.__version__}",
             "# inputs: 10000 train / 5000 test, d = 20, Shapes3D factor sizes (10,10,10,8,4,15)"]
    rows = {}
    if "fast" not in skip:
        rows["fast"], r = suite(ctr, ftr, cte, fte, "robust", "fast")
        lines.append(f"# fast DCI: D={r['dci_disentanglement']:.4f} C={r['dci_completeness']:.4f} "
                     f"I_test={r['dci_informativeness_test']:.4f}")
    if "parity" not in skip:
        rows["parity"], r = suite(ctr, ftr, cte, fte, "parity", "sklearn")
        lines.append(f"# parity DCI: D={r['dci_disentanglement']:.4f} C={r['dci_completeness']:.4f} "
                     f"I_test={r['dci_informativeness_test']:.4f}")
    if "reference" not in skip:
        rows["reference"] = reference_suite(ctr, ftr, cte, fte)
    for name, t in rows.items():
        lines.append(f"{name:10s} total {sum(t.values()):8.2f} s  " + "  ".join(f"{k}={v:.2f}" for k, v in t.items()))
    if "tad" not in skip:
        t, r = tad_bench("reference" not in skip)
        lines.append("tad (40 attrs x 256 latents x 5 folds): " + "  ".join(f"{k}={v:.2f}s" for k, v in t.items()))
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
