#!/usr/bin/env python3
"""Mutation testing of chosen diffrep modules with mutmut 3, in a scratch copy (the worktree is never touched).

Slow; not part of the default test run. mutmut mutates each function of the chosen modules, runs only the
selected tests that reach it, and reports the mutants no test killed. The package is copied to
<workdir>/src/diffrep (mutmut 3 looks for sources under src/), together with tests/.

    python3 scripts/mutation_check.py \\
        --modules python/diffrep/bfn/loss_terms.py python/diffrep/bfn/losses.py \\
        --tests tests/bfn/test_loss_values.py tests/bfn/test_losses_sampler.py \\
        --out /tmp/mutation.json [--workdir /tmp/mm] [--max-children 1] [--show] \\
        [--only 'diffrep.bfn.losses.x_loss*' ...]

Prints killed / survived / other counts per module and, with --show, the diff of every survivor;
--out writes the same as JSON. Re-running with the same --workdir resumes mutmut's cache;
--rerun-survivors there re-checks only the surviving mutants against the worktree's current tests.
--only restricts the run to the mutants whose names match the fnmatch patterns (mutmut 3 mutates whole
files; a pattern such as 'diffrep.cluster.hddc.x__result*' or 'diffrep.cluster.hddc.xǁHDDCResultǁpadded*'
keeps one function, and must end in '*' so that mutmut also finds the function's tests); the counts
then cover those mutants only.
Recorded runs: benches/results/mutation_*.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _prepare(work: Path, modules: list[str], tests: list[str]) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    if not (work / "src" / "diffrep").exists():
        shutil.copytree(ROOT / "python" / "diffrep", work / "src" / "diffrep", ignore=ignore)
        shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
        shutil.copytree(ROOT / "scripts", work / "scripts", ignore=ignore)  # tests that run a script
        shutil.copytree(ROOT / "docs", work / "docs", ignore=ignore)  # tests that read the docs
    mods = []
    for m in modules:
        p = Path(m)
        rel = p.relative_to("python") if p.parts[0] == "python" else p
        if rel.parts[0] != "diffrep" or not (ROOT / "python" / rel).is_file():
            raise SystemExit(f"--modules: {m} is not a file under python/diffrep")
        mods.append(str(Path("src") / rel))
    (work / "pyproject.toml").write_text(
        "[tool.mutmut]\nsource_paths = [\"src/diffrep\"]\nalso_copy = [\"scripts\", \"docs\"]\n"
        f"only_mutate = {json.dumps(mods)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\"]\n\n"
        # the default test run's selection: slow tests stay out, as in pyproject.toml
        "[tool.pytest.ini_options]\nmarkers = [\"slow: slow\", \"cuda: cuda\"]\naddopts = \"-m 'not slow'\"\n")


def _mutmut(work: Path, *args: str, log=None) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    r = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=work, env=env, text=True,
                       stdout=log or subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode not in (0, 1):
        raise SystemExit(f"mutmut {' '.join(args)} failed (exit {r.returncode}); see {work}")
    return r.stdout or ""


def _status(work: Path) -> dict[str, str]:
    status = {}
    for line in _mutmut(work, "results", "--all", "true").splitlines():
        name, sep, st = line.strip().rpartition(": ")
        if sep and name.startswith("diffrep."):
            status[name] = st
    return status


def _chosen(name: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatch(name, p) for p in patterns)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n")[0])
    ap.add_argument("--modules", nargs="+", required=True, help="files under python/diffrep to mutate")
    ap.add_argument("--tests", nargs="+", required=True, help="pytest selection (paths or node ids)")
    ap.add_argument("--workdir", help="scratch directory (default: a new temporary one, kept)")
    ap.add_argument("--max-children", type=int, default=1)
    ap.add_argument("--show", action="store_true", help="print the diff of every surviving mutant")
    ap.add_argument("--out", help="write the summary as JSON")
    ap.add_argument("--rerun-survivors", action="store_true",
                    help="in an existing --workdir: refresh tests/ from the worktree and re-run only the survivors")
    ap.add_argument("--only", nargs="+", default=[],
                    help="fnmatch patterns of mutant names to run (one function: 'diffrep.mod.x_name*')")
    a = ap.parse_args(argv)
    if shutil.which("mutmut") is None and subprocess.run([sys.executable, "-c", "import mutmut"]).returncode:
        raise SystemExit("mutmut is not installed (pip install 'mutmut>=3.8')")
    work = Path(a.workdir or tempfile.mkdtemp(prefix="diffrep-mutation-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    _prepare(work, a.modules, a.tests)
    names: list[str] = []
    if a.rerun_survivors:
        names = [n for n, st in _status(work).items() if st == "survived" and _chosen(n, a.only)]
        for dest in (work / "tests", work / "mutants" / "tests"):
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ROOT / "tests", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        print(f"re-running {len(names)} survivors with the current tests")
    if names or not a.rerun_survivors:
        with open(work / ("mutmut_rerun.log" if names else "mutmut_run.log"), "w") as log:
            _mutmut(work, "run", "--max-children", str(a.max_children), *(names or a.only), log=log)
    status = {n: st for n, st in _status(work).items() if _chosen(n, a.only)}
    per_module: dict[str, Counter] = {}
    for name, st in status.items():
        module = name.split(".x_")[0] if ".x_" in name else name.rsplit(".", 1)[0]
        per_module.setdefault(module, Counter())[st] += 1
    survivors = {n: _mutmut(work, "show", n) if a.show or a.out else "" for n, st in status.items()
                 if st == "survived"}
    for module, c in sorted(per_module.items()):
        print(f"{module}: {sum(c.values())} mutants, " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    if a.show:
        for n, diff in survivors.items():
            print(f"--- {n}\n" + "\n".join(ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")))
    if a.out:
        Path(a.out).write_text(json.dumps({"workdir": str(work), "modules": a.modules, "tests": a.tests,
                                           "counts": {m: dict(c) for m, c in per_module.items()},
                                           "survivors": survivors}, indent=1))
    print(f"workdir: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
