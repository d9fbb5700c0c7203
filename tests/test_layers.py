"""The house rules, enforced: the import-linter contracts in pyproject.toml (layers, lowest last, and
a generic ``train``) hold, and no two modules of python/diffrep import each other, directly or
around a longer loop (function-level imports count: a lazy import hides a cycle, it does not
remove it)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import diffrep

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_PARENT = Path(diffrep.__file__).resolve().parents[1]  # python/

pytest.importorskip("importlinter", reason="the layer checks need import-linter (pip install 'diffrep[test]')")


def test_import_linter_contracts_hold():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH"))
                                                       if p)}
    cmd = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                                 "sys.exit(c(args=['--no-cache'], standalone_mode=True))"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (
        "lint-imports found imports against the layers in pyproject.toml [tool.importlinter] (a module may import "
        "only from its own layer or below; train never imports methods, analysis or recipes). Move the code to the "
        f"right layer or the import into a higher one:\n{r.stdout}\n{r.stderr}")


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (or a self-import), iteratively (Tarjan)."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], 0
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            for j in range(i, len(adj[v])):
                w = adj[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1 or v in adj[v]:
                        out.append(sorted(comp))
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
    return out


def test_no_import_cycles_between_modules():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("diffrep", cache_dir=None)
    cycles = _cycles(graph)
    lines = []
    for comp in cycles:
        lines.append(" <-> ".join(comp))
        for a in comp:
            for b in sorted(graph.find_modules_directly_imported_by(a)):
                if b in comp:
                    where = ", ".join(f"l.{d['line_number']}" for d in graph.get_import_details(importer=a, imported=b))
                    lines.append(f"    {a} imports {b} ({where})")
    assert not cycles, "import cycles in python/diffrep (break each by moving the shared piece down):\n" + "\n".join(lines)


def test_cycle_finder_finds_loops():
    class Graph:
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
        modules = set(edges)

        def find_modules_directly_imported_by(self, m):
            return self.edges[m]

    assert sorted(_cycles(Graph())) == [["a", "b", "c"], ["d"]]
