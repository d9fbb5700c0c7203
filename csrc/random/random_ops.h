// The declaration table of the random family (common/ops_table.h): Philox normals written to a
// buffer, the noise stream every random op of diffrep uses. Launchers: random_cpu.cpp and
// random_cuda.cu; bindings: random_bindings.h.
#pragma once
#include "common/ops_table.h"

#define DIFFREP_RANDOM_OPS(X, X64) X(normal_fill, out)

#define DIFFREP_ARGS_normal_fill(ARG, T) \
  ARG(DIM, int64_t, n, out.size()) ARG(OUT, T, out, n) ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset)

DIFFREP_DECLARE_OPS(DIFFREP_RANDOM_OPS)
