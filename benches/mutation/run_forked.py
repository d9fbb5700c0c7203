"""Run the mutants of a cosmic-ray session with forked pytest workers (slow check; not a test).

cosmic-ray's own ``exec`` starts one Python per mutant and re-imports torch each time (~10 s per
mutant on a loaded 2-core machine). This runner takes the mutants cosmic-ray generated
(``cosmic-ray init``), imports torch, NumPy, scikit-learn and diffrep once, and for each mutant forks
a child that writes the mutated module, runs the targeted tests with ``pytest.main`` and exits; the
parent restores the original source after every mutant. Use it on a COPY of the worktree:

    cosmic-ray init benches/mutation/metric_protocols.toml /tmp/s.sqlite      # in the copy
    python3 benches/mutation/run_forked.py /tmp/s.sqlite python/diffrep/metrics/protocols.py \\
        --out /tmp/results.json -- tests/metrics/test_protocol_values.py tests/metrics/test_protocols.py \\
        --deselect tests/metrics/test_protocols.py::test_downstream_efficiency

Results: one JSON record per mutant (operator, occurrence, line, function, outcome, diff).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("session")
    ap.add_argument("module")
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--part", default="0/1", help="i/n: run only the mutants with index = i mod n (parallel runs)")
    ap.add_argument("--rerun-survivors", action="store_true", help="run again the mutants that survived in --out")
    ap.add_argument("--select", default=None, help="JSON file: function name -> pytest -k expression (the tests "
                    "that cover it; functions not listed run every test)")
    ap.add_argument("pytest_args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    pytest_args = [x for x in a.pytest_args if x != "--"]
    sys.dont_write_bytecode = True  # a stale .pyc of the original must never stand in for a mutant
    for pyc in Path(a.module).parent.glob(f"__pycache__/{Path(a.module).stem}.*.pyc"):
        pyc.unlink()
    sys.path.insert(0, str(Path("python").resolve()))
    sys.path.insert(0, str(Path("tests").resolve()))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np  # imported once, inherited by the children
    import pytest
    import sklearn.linear_model  # noqa: F401
    import torch

    torch.set_num_threads(1)
    import diffrep.metrics.dci  # noqa: F401
    import diffrep.ops  # noqa: F401
    # warm up what the children would otherwise each initialise (kernel dispatch, sklearn, the GBT)
    from diffrep.metrics import protocols as _p

    class _Tiny:
        num_factors, factor_sizes = 2, [3, 2]

        def sample_factors(self, n, rs):
            return np.stack([rs.randint(s, size=n) for s in self.factor_sizes], 1)

        def sample_observations_from_factors(self, f, rs):
            return np.asarray(f, float)

    _p.factor_vae_score(_Tiny(), lambda x: x, batch_size=4, num_train=5, num_eval=5, num_variance_estimate=20)
    _p.beta_vae_score(_Tiny(), lambda x: x, batch_size=4, num_train=20, num_eval=5)
    _p.evaluate(_Tiny(), lambda x: x, metrics=("mig", "dci", "sap"), num_train=40, num_test=20)
    from cosmic_ray.mutating import MutationVisitor
    from cosmic_ray.plugins import get_operator

    select = json.loads(Path(a.select).read_text()) if a.select else {}
    module = Path(a.module)
    original = module.read_text()
    rows = sqlite3.connect(a.session).execute(
        "select operator_name, operator_args, occurrence, start_pos_row, definition_name, job_id from mutation_specs "
        "order by start_pos_row, operator_name, occurrence").fetchall()
    done = {}
    if Path(a.out).is_file():
        done = {r["job_id"]: r for r in json.loads(Path(a.out).read_text())
                if not (a.rerun_survivors and r["outcome"] == "survived")}
    results = list(done.values())
    t_start = time.time()
    part, nparts = map(int, a.part.split("/"))
    for i, (op_name, op_args, occ, row, fn, job) in enumerate(rows):
        if job in done or i % nparts != part:
            continue
        kwargs = json.loads(op_args)
        kwargs = json.loads(kwargs) if isinstance(kwargs, str) else kwargs
        operator = get_operator(op_name)(**kwargs)
        mutated = MutationVisitor.mutate_code(original, operator, occ)
        if mutated is None:
            continue
        diff = "".join(difflib.unified_diff(original.splitlines(True), mutated.splitlines(True), n=0))
        pid = os.fork()
        if pid == 0:  # child: the mutated module, then the tests
            try:
                module.write_text(mutated)
                for name in [m for m in sys.modules if m == "diffrep.metrics.protocols" or m == "diffrep.metrics"]:
                    del sys.modules[name]
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                k = ["-k", select[fn]] if fn in select else []
                code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *k, *pytest_args])
            except BaseException:
                code = 99
            os._exit(int(code))
        t0 = time.time()
        status = None
        while time.time() - t0 < a.timeout:
            wpid, st = os.waitpid(pid, os.WNOHANG)
            if wpid:
                status = st
                break
            time.sleep(0.05)
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            outcome = "killed (timeout)"
        else:
            code = os.waitstatus_to_exitcode(status)
            outcome = "survived" if code == 0 else ("killed" if code == 1 else f"killed (exit {code})")
        module.write_text(original)
        results.append({"job_id": job, "operator": op_name, "occurrence": occ, "line": row + 1, "function": fn,
                        "tests": select.get(fn, "all"),
                        "outcome": outcome, "seconds": round(time.time() - t0, 2), "diff": diff})
        Path(a.out).write_text(json.dumps(results, indent=1))
        n_done = len(results)
        print(f"[{n_done}/{len(rows)}] line {row + 1} {op_name}#{occ}: {outcome} ({time.time() - t0:.1f}s; "
              f"{time.time() - t_start:.0f}s total)", flush=True)
    module.write_text(original)
    surv = [r for r in results if r["outcome"] == "survived"]
    print(f"{len(results)} mutants: {len(results) - len(surv)} killed, {len(surv)} survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
