// The declaration table of the tiled k-nearest-neighbour family (common/ops_table.h), used by the
// precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020) metrics.
// Launchers: diffrep::cpu (knn_cpu.cpp, OpenMP) and diffrep::cuda (knn_cuda.cu); checks and
// bindings: knn_bindings.h. Semantics: docs/kernels/knn.md.
//
// knn_scan: queries q (m, d) against points c (n, d), row-major. Squared distances are taken from
// differences, sum_k (q_k - c_k)^2 (no |q|^2 - 2 q.c + |c|^2 cancellation: a duplicate point is at
// exactly 0), in tiles: no m x n matrix exists.
//   kth (m,) or None: the kk-th smallest squared distance from each query to the points of c
//     (1-based, ties counted with multiplicity; kk = k + 1 over a set against itself gives the
//     k-NN radius "including self", np.partition index k);
//   count (m,) or None (given iff r2 is): how many points j have d2(q_i, c_j) <= r2_j
//     (strict: < r2_j), i.e. how many balls of radius^2 r2 around the points hold the query.
// A NaN or infinite distance or r2 entry sets kNonFiniteInput in l.flags.
#pragma once

#include "common/ops_table.h"

#define DIFFREP_KNN_OPS(X, X64) X(knn_scan, q)

#define DIFFREP_ARGS_knn_scan(ARG, T)                                                                        \
  ARG(VAL, int64_t, d) ARG(DIM, int64_t, m, knn_rows(q, d, "q")) ARG(DIM, int64_t, n, knn_rows(c, d, "c"))   \
  ARG(IN, T, q, m * d) ARG(IN, T, c, n * d) ARG(VAL, int32_t, kk) ARG(VAL, bool, strict)                     \
  ARG(CHECK, knn_check(kk, n, kth.is_valid(), r2.is_valid(), count.is_valid())) ARG(OPT, T, r2, n)           \
  ARG(OPT_OUT, T, kth, kk > 0 ? m : kAny) ARG(OPT_OUT, int64_t, count, m)

DIFFREP_DECLARE_OPS(DIFFREP_KNN_OPS)

namespace diffrep {
namespace knn {
constexpr int kMaxK = 32;  // the largest kk (the Python wrapper says so before calling)
}  // namespace knn
}  // namespace diffrep
