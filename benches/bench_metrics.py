"""Metric suite timings on Shapes3D-sized inputs, measured side by side in one run.

Inputs: 10k train / 5k test codes (d = 20: the six Shapes3D factors plus noise, with 14 noise
codes), factors with the Shapes3D sizes (10, 10, 10, 8, 4, 15). Pipelines:
  * fast      -- diffrep robust defaults: native metric kernels (csrc/metrics), the fast GBT for
                 DCI and the fast batched L-BFGS logistic regression for explicitness / InfoE;
  * parity    -- diffrep parity modes (sklearn GBT for DCI, sklearn LogisticRegression);
  * reference -- a sklearn/NumPy loop pipeline written like the references (per-pair
                 mutual_info_score / mutual_info_classif / LinearSVC / roc_auc_score, GBT and LR
                 per factor, serial). Its DCI runs on a 2000-point train subsample and is
                 extrapolated linearly to 10000 (the full fit takes ~3 min here; docs/metrics.md: 177 s).
TAD: 40 attributes x 256 latents x 5 folds (InfoDiffusion protocol), kernel vs sklearn loop.
Kernels: native vs PyTorch twin on the suite's shapes (medians of 3 interleaved rounds after one warm-up each:
harness.interleaved_times, so both see the same machine load). The pipelines take seconds to minutes
each: one run of each, in sequence.

  OMP_NUM_THREADS=2 taskset -c 0,1 python benches/bench_metrics.py [--skip reference,parity] [--out F]
The reference pipeline takes many minutes (DCI alone ~3 min); ``--skip`` leaves pipelines out.

On a GPU (``--device cuda``) the kernel section times each metric kernel on CUDA tensors beside the
CPU kernel on CPU tensors and the PyTorch twin on CUDA, in the same run (issue 24's target: metric
kernels faster than on the CPU); ``--scale`` shrinks the kernel shapes (``--scale 0.02`` for a dry run):

  python benches/bench_metrics.py --device cuda --skip fast,parity,reference,tad
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

# harness.py lies beside this file; a test loads this file by its path, without benches/ on sys.path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (choice_list, interleaved_times, parse_device, positive_float, shown,  # noqa: E402
                     target_line, writable_out)

SIZES = (10, 10, 10, 8, 4, 15)
SECTIONS = ("fast", "parity", "reference", "tad", "kernels")


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
    times["modularity_explicitness"], me = timed(lambda: modularity_explicitness(ctr, ftr, cte, fte, mode=mode))
    times["infomec"], im = timed(lambda: infomec(ctr, ftr, mode=mode))
    r = dict(r)
    r.update({k: me[k] for k in ("explicitness_train", "explicitness_test")}, infoe=im["infoe"],
             lr_estimator=me.meta["estimator"])
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

    def dci_ref(n=2000):
        for j in range(ftr.shape[1]):
            m = GradientBoostingClassifier().fit(ctr[:n], ftr[:n, j])
            m.predict(ctr[:n]), m.predict(cte)

    t, _ = timed(dci_ref)
    times["dci_extrapolated"] = t * 5

    def sap_ref():
        from sklearn.svm import LinearSVC

        return [[np.mean(LinearSVC(C=0.01, class_weight="balanced").fit(ctr[:, [i]], ftr[:, j]).predict(cte[:, [i]])
                         == fte[:, j]) for j in range(ftr.shape[1])] for i in range(ctr.shape[1])]

    times["sap"], _ = timed(sap_ref)

    def explicitness_ref():
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.preprocessing import MultiLabelBinarizer

        mean, std = ctr.mean(0), ctr.std(0)
        xtr, xte = (ctr - mean) / std, (cte - mean) / std
        for j in range(ftr.shape[1]):
            m = LogisticRegression().fit(xtr, ftr[:, j])
            mlb = MultiLabelBinarizer()
            roc_auc_score(mlb.fit_transform(ftr[:, [j]]), m.predict_proba(xtr))
            roc_auc_score(mlb.fit_transform(fte[:, [j]]), m.predict_proba(xte))

    times["explicitness"], _ = timed(explicitness_ref)

    def knn_ref():
        zs = StandardScaler().fit_transform(ctr)
        return [[mutual_info_classif(zs[:, [j]], ftr[:, i], n_neighbors=10)[0] for j in range(zs.shape[1])]
                for i in range(ftr.shape[1])]

    times["infomec_nmi"], _ = timed(knn_ref)

    def infoe_ref():
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        zs = StandardScaler().fit_transform(ctr)
        for i in range(ftr.shape[1]):
            m = LogisticRegression(C=np.inf, class_weight="balanced", max_iter=100).fit(zs, ftr[:, i])
            log_loss(ftr[:, i], m.predict_proba(zs))

    times["infomec_infoe"], _ = timed(infoe_ref)
    return times


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def kernel_bench(device=torch.device("cpu"), scale=1.0):
    """Native kernel vs PyTorch twin on the suite's shapes (``scale`` shrinks the sample counts), medians of
    3 interleaved rounds after one warm-up each, yielded kernel by kernel as each is measured (a run cut off at a time limit keeps
    the rows it measured): (name, (native s, twin s)) on the CPU; on CUDA (name, (CPU kernel s on CPU
    tensors, CUDA kernel s, twin s on CUDA))."""
    from diffrep.ops import metrics as ops
    from diffrep.ops import use_backend

    def n(v):
        return max(50, int(v * scale))

    rng = np.random.RandomState(0)
    z = torch.from_numpy(rng.randn(256, n(8000)).astype(np.float32))
    y = torch.from_numpy(rng.rand(40, n(8000)) < 0.3)
    c = torch.from_numpy(rng.randn(n(10000), 20))
    f = torch.from_numpy(np.stack([rng.randint(0, s, n(10000)) for s in SIZES], 1))
    lab = ops.hist_discretize(c, 20)
    bt = torch.from_numpy(rng.randn(n(15000), 64, 20))
    fi = torch.from_numpy(rng.randint(0, 6, n(15000)))
    ones, act = torch.ones(20), torch.ones(20, dtype=torch.bool)

    def cases(dev):
        zd, yd, cd, fd, ld, bd, fid = (t.to(dev) for t in (z, y, c, f, lab, bt, fi))
        od, ad = ones.to(dev), act.to(dev)
        cT, fT = cd.T.contiguous(), fd.T.contiguous()
        return {f"auroc_matrix 40x256x{z.shape[1]}": lambda: ops.auroc_matrix(zd, yd),
                f"hist_discretize {c.shape[0]}x20": lambda: ops.hist_discretize(cd, 20),
                f"mi_matrix 20x6 n={c.shape[0]}": lambda: ops.mi_matrix(ld, fd),
                f"knn_mi_cd 20x6 n={c.shape[0]} k=10": lambda: ops.knn_mi_cd(cT, fT, 10),
                f"factor_vae_votes {bt.shape[0]}x64x20": lambda: ops.factor_vae_votes(bd, fid, od, ad, 6)}

    def under(backend, fn, dev):
        def run():
            with use_backend(backend, strict=backend != "reference"):
                fn()
                _sync(dev)
        return run

    cpu = torch.device("cpu")
    runs = [("cpu", cpu)] if device.type == "cpu" else [("cpu", cpu), ("cuda", device)]
    runs.append(("reference", device))
    per_run = [(backend, dev, cases(dev)) for backend, dev in runs]
    for name in per_run[0][2]:
        runs = interleaved_times([under(backend, fns[name], dev) for backend, dev, fns in per_run], device, 3, budget=0)
        yield name, tuple(float(np.median(r)) for r in runs)


def kernel_line(name: str, times: tuple) -> str:
    """One row of the kernel table: (native s, twin s) on the CPU, (CPU kernel s, CUDA kernel s, twin s)
    on CUDA (the row scripts/gpu_check.py's ``targets`` reads)."""
    if len(times) == 3:
        tc, tg, tr = times
        return (f"kernel {name:32s} cpu {tc * 1e3:8.2f} ms  cuda {tg * 1e3:8.2f} ms  "
                f"vs cpu x{tc / tg:7.1f}  twin(cuda) {tr * 1e3:8.2f} ms  x{tr / tg:6.1f}")
    tn, tr = times
    return f"kernel {name:32s} native {tn * 1e3:8.1f} ms  twin {tr * 1e3:8.1f} ms  x{tr / tn:6.1f}"


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
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip", default="", help="comma list of: " + ",".join(SECTIONS))
    p.add_argument("--out", help="also write the table here (refused when the file exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--device", default="cpu", help="cuda: the kernels on the GPU beside the CPU kernels")
    p.add_argument("--scale", type=positive_float, default=1.0, help="shrink the kernel section's sample counts")
    a = p.parse_args(argv)
    device = parse_device(p, a.device)
    skip = choice_list(p, "--skip", a.skip, SECTIONS)
    writable_out(p, "--out", a.out, overwrite=a.overwrite)
    try:
        out = open(a.out, "w") if a.out else None
    except OSError as exc:  # before any measurement, not after all of them
        p.error(f"--out {a.out}: {exc.strerror or exc}")

    def emit(line: str) -> None:
        # each line as soon as it is known: a run killed at a time limit (scripts/gpu_check.py) keeps
        # the rows measured so far, on stdout and in --out
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()

    try:
        _run(a, device, skip, emit)
    finally:
        if out is not None:
            out.close()


def _run(a, device, skip, emit):
    ctr, ftr, cte, fte = data()
    emit(f"# bench_metrics  {time.strftime('%Y-%m-%d')}")
    emit(f"# machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
         f"torch_threads={torch.get_num_threads()} gpu={'yes' if torch.cuda.is_available() else 'none'}")
    emit(f"# python {platform.python_version()} torch {torch.__version__}")
    emit("# inputs: 10000 train / 5000 test, d = 20, Shapes3D factor sizes (10,10,10,8,4,15)")
    import scipy
    import sklearn

    emit(f"# numpy {np.__version__} scipy {scipy.__version__} scikit-learn {sklearn.__version__}")

    def row(name, t):
        emit(f"{name:10s} total {sum(t.values()):8.2f} s  " + "  ".join(f"{k}={v:.2f}" for k, v in t.items()))

    scores = {}
    for name, mode, est in (("fast", "robust", "fast"), ("parity", "parity", "sklearn")):
        if name in skip:
            continue
        t, r = suite(ctr, ftr, cte, fte, mode, est)
        scores[name] = r
        emit(f"# {name} scores (LR estimator {r['lr_estimator']}): DCI D={r['dci_disentanglement']:.4f} "
             f"C={r['dci_completeness']:.4f} I_test={r['dci_informativeness_test']:.4f}  "
             f"explicitness train/test={r['explicitness_train']:.6f}/{r['explicitness_test']:.6f}  "
             f"InfoE={r['infoe']:.6f}")
        row(name, t)
    if len(scores) == 2:
        sf, sp = scores["fast"], scores["parity"]
        emit("# fast LR vs sklearn LR: |d explicitness_train|={:.2e} |d explicitness_test|={:.2e} "
             "|d InfoE|={:.2e}".format(abs(sf["explicitness_train"] - sp["explicitness_train"]),
                                       abs(sf["explicitness_test"] - sp["explicitness_test"]),
                                       abs(sf["infoe"] - sp["infoe"])))
    if "reference" not in skip:
        row("reference", reference_suite(ctr, ftr, cte, fte))
    if "tad" not in skip:
        t, r = tad_bench("reference" not in skip)
        emit("tad (40 attrs x 256 latents x 5 folds): " + "  ".join(f"{k}={v:.2f}s" for k, v in t.items()))
    if "kernels" not in skip:
        if device.type == "cuda":
            emit(f"# kernels on GPU {torch.cuda.get_device_name(device)} vs the CPU kernels "
                 f"({torch.get_num_threads()} CPU threads), medians of 3 interleaved rounds after a warm-up")
        ratios = []
        for name, times in kernel_bench(device, a.scale):
            emit(kernel_line(name, times))
            ratios.append((times[0] / times[1] if len(times) == 3 else times[1] / times[0], name))
        low, where = min(ratios)
        if device.type == "cuda":
            emit(target_line("(GPU) metric kernels faster than on the CPU", f"lowest x{shown(low, lambda x: x > 1)} ({where})", low > 1))
        else:
            emit(target_line("(CPU) no native metric kernel slower than its PyTorch twin", f"lowest x{shown(low, lambda x: x >= 1)} ({where})",
                             low >= 1))


if __name__ == "__main__":
    sys.exit(main())
