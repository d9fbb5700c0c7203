// The declaration table of the metric kernels (common/ops_table.h; the maths: docs of the metric
// suite and python/diffrep/ops/reference/metrics.py). Launchers: diffrep::cpu (metrics_cpu.cpp,
// OpenMP) and diffrep::cuda (metrics_cuda.cu); checks and bindings: metrics_bindings.h.
//
// Layouts are C-contiguous row-major; every index array is int64. Sorting is torch's (the wrapper
// passes a stable argsort); the kernels do everything after it. Scratch buffers are allocated by
// the wrapper (sizes below) so CUDA work stays in torch's caching allocator.
//
// auroc_matrix: scores (U, n), order (U, n) = argsort of each row (CPU: None sorts natively),
//   labels (n, A) uint8, npos (A,): r2 (U, n) doubled mid-ranks (scratch; n < 2^30), auc (A, U).
// hist_discretize: codes (n, J) -> labels (n, J) in 1..B; lohi (2, J) scratch.
// mi_matrix: labels (n, J) in [0, B), factors (n, F) in [0, V): mi (J, F), h (F,).
// knn_mi_cd: sx (J, n) sorted values, vorder (J, n) their argsort, labels (F, n) in [0, V):
//   mi (J, F).
// factor_vae_votes: batches (nt, B, d), factor_index (nt,) in [0, F), global_var (d,), active
//   (na,) code ids: votes (F, d) += 1 per batch (zeroed by the caller), arg (nt,).
#pragma once
#include "common/ops_table.h"

namespace diffrep {
namespace metrics {
// int64 scratch of mi_matrix: J*F*B*V joint counts + J*B label counts + F*V factor counts (zeroed).
inline int64_t mi_scratch_size(int64_t J, int64_t F, int64_t B, int64_t V) { return J * F * B * V + J * B + F * V; }
// knn_mi_cd scratch: 4*J*n doubles; 2*F*V + J*(n+1) + J*V int64.
inline int64_t knn_dscratch_size(int64_t J, int64_t n) { return 4 * J * n; }
inline int64_t knn_iscratch_size(int64_t J, int64_t F, int64_t n, int64_t V) { return 2 * F * V + J * (n + 1) + J * V; }
}  // namespace metrics
}  // namespace diffrep

#define DIFFREP_METRICS_OPS(X, X64) \
  X(auroc_matrix, scores) X(hist_discretize, codes) X64(mi_matrix) X64(knn_mi_cd) X(factor_vae_votes, batches)

#define DIFFREP_ARGS_auroc_matrix(ARG, T)                                                                  \
  ARG(IN, T, scores) ARG(OPT, int64_t, order) ARG(IN, uint8_t, labels) ARG(IN, int64_t, npos) ARG(VAL, int64_t, U) \
  ARG(VAL, int64_t, A) ARG(VAL, int64_t, n) ARG(OUT, int32_t, r2) ARG(OUT, double, auc)

#define DIFFREP_ARGS_hist_discretize(ARG, T) \
  ARG(IN, T, codes) ARG(VAL, int64_t, n) ARG(VAL, int64_t, J) ARG(VAL, int64_t, B) ARG(OUT, T, lohi) ARG(OUT, int64_t, labels)

#define DIFFREP_ARGS_mi_matrix(ARG, T)                                                                     \
  ARG(IN, int64_t, labels) ARG(IN, int64_t, factors) ARG(VAL, int64_t, n) ARG(VAL, int64_t, J) ARG(VAL, int64_t, F) \
  ARG(VAL, int64_t, B) ARG(VAL, int64_t, V) ARG(OUT, int64_t, scratch) ARG(OUT, double, mi) ARG(OUT, double, h)

#define DIFFREP_ARGS_knn_mi_cd(ARG, T)                                                                     \
  ARG(IN, double, sx) ARG(IN, int64_t, vorder) ARG(IN, int64_t, labels) ARG(VAL, int64_t, J) ARG(VAL, int64_t, F)  \
  ARG(VAL, int64_t, n) ARG(VAL, int64_t, V) ARG(VAL, int64_t, k) ARG(OUT, double, dscratch)                      \
  ARG(OUT, int64_t, iscratch) ARG(OUT, double, mi)

#define DIFFREP_ARGS_factor_vae_votes(ARG, T)                                                              \
  ARG(IN, T, batches) ARG(IN, int64_t, factor_index) ARG(IN, double, global_var) ARG(IN, int64_t, active)        \
  ARG(VAL, int64_t, nt) ARG(VAL, int64_t, B) ARG(VAL, int64_t, d) ARG(VAL, int64_t, F) ARG(VAL, bool, compressed) \
  ARG(OUT, int64_t, votes) ARG(OUT, int64_t, arg) ARG(DIM, int64_t, na)

DIFFREP_DECLARE_OPS(DIFFREP_METRICS_OPS)
