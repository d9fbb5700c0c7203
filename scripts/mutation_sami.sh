#!/usr/bin/env bash
# Mutation testing of SAMI's method and analysis modules (issue 17; results in
# benches/results/mutation_sami_2026-12-06.md) through the shared harness scripts/mutation_check.py
# (mutmut 3 on a scratch copy; the worktree is never modified). Slow: tens of minutes on 2 cores.
#
#   scripts/mutation_sami.sh [SCRATCH_DIR] [extra mutation_check.py flags, e.g. --show --out F.json]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
W="${1:-/tmp/mutation_sami}"
shift || true
cd "$ROOT"
exec python3 scripts/mutation_check.py --workdir "$W" --max-children "${MUTMUT_CHILDREN:-2}" \
  --modules python/diffrep/methods/sami.py python/diffrep/methods/sami_guidance.py \
            python/diffrep/analysis/guidance.py python/diffrep/analysis/variability.py \
            python/diffrep/analysis/sami_validation.py python/diffrep/analysis/posterior_geometry.py \
  --tests tests/methods/test_sami*.py tests/analysis/test_sami*.py "$@"
