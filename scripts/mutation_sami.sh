#!/usr/bin/env bash
# Mutation testing of SAMI's method and analysis modules (issue 17; results in
# benches/results/mutation_sami_2026-12-06.md). Slow (tens of minutes on 2 cores); never part of the
# default test run. The worktree is never modified: the package and the targeted tests are copied to
# a scratch folder (default /tmp/mutation_sami) and mutmut 3 runs there.
#
#   scripts/mutation_sami.sh [SCRATCH_DIR]      # then: cd SCRATCH_DIR && mutmut results / mutmut show NAME
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-/tmp/mutation_sami}"
rm -rf "$W" && mkdir -p "$W/src" "$W/tests/methods" "$W/tests/analysis"
cp -r "$ROOT/python/diffrep" "$W/src/"      # with the prebuilt diffrep/_cpu*.so
find "$W/src" -name __pycache__ -prune -exec rm -rf {} +
cp "$ROOT/tests/conftest.py" "$ROOT/tests/helpers.py" "$W/tests/"
cp "$ROOT"/tests/methods/test_sami*.py "$W/tests/methods/"
cp "$ROOT"/tests/analysis/test_sami*.py "$W/tests/analysis/"
mkdir -p "$W/scripts" && cp "$ROOT/scripts/validate_sami.py" "$W/scripts/"
cat > "$W/pyproject.toml" <<'TOML'
[tool.pytest.ini_options]
testpaths = ["tests"]
markers = ["slow: slow", "cuda: needs a CUDA device"]
addopts = "-m 'not slow' -p no:cacheprovider -x -q"

[tool.mutmut]
source_paths = ["src/diffrep"]
only_mutate = [
  "src/diffrep/methods/sami.py",
  "src/diffrep/methods/sami_guidance.py",
  "src/diffrep/analysis/guidance.py",
  "src/diffrep/analysis/variability.py",
  "src/diffrep/analysis/sami_validation.py",
  "src/diffrep/analysis/posterior_geometry.py",
]
pytest_add_cli_args_test_selection = ["tests/methods", "tests/analysis"]
also_copy = ["scripts"]
TOML
cd "$W"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 mutmut run --max-children "${MUTMUT_CHILDREN:-2}"
mutmut results > results.txt || true
echo "survivors listed in $W/results.txt"
