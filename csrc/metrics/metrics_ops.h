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
// knn_mi_cd: sx (J, n) sorted values, vorder (J, n) their argsort (entries outside [0, n), or a
//   label met more often than it occurs, are flagged), labels (F, n) in [0, V): mi (J, F).
// factor_vae_votes: batches (nt, B, d), factor_index (nt,) in [0, F), global_var (d,), active
//   (na <= d,) code ids: votes (F, d) += 1 per batch (zeroed by the caller), arg (nt,). With
//   `compressed` a vote lands in column a, the index into active, so na <= d keeps it inside votes.
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

#define DIFFREP_ARGS_auroc_matrix(ARG, T)                                                               \
  ARG(POS, int64_t, U) ARG(POS, int64_t, A) ARG(POS, int64_t, n)                                          \
  ARG(CHECK, expect(n < (int64_t(1) << 30), "auroc_matrix: n must be < 2^30 (int32 doubled ranks)"))      \
  ARG(CHECK, expect(host || order.is_valid(), "auroc_matrix: order is required on CUDA"))                 \
  ARG(IN, T, scores, U * n) ARG(OPT, int64_t, order, U * n) ARG(IN, uint8_t, labels, A * n)              \
  ARG(IN, int64_t, npos, A) ARG(OUT, int32_t, r2, U * n) ARG(OUT, double, auc, A * U)

#define DIFFREP_ARGS_hist_discretize(ARG, T)                                                            \
  ARG(POS, int64_t, n) ARG(POS, int64_t, J) ARG(VAL, int64_t, B) ARG(CHECK, expect_positive(B, "num_bins")) \
  ARG(IN, T, codes, n * J) ARG(OUT, T, lohi, 2 * J) ARG(OUT, int64_t, labels, n * J)

#define DIFFREP_ARGS_mi_matrix(ARG, T)                                                                  \
  ARG(POS, int64_t, n) ARG(POS, int64_t, J) ARG(POS, int64_t, F) ARG(POS, int64_t, B) ARG(POS, int64_t, V) \
  ARG(IN, int64_t, labels, n * J) ARG(IN, int64_t, factors, n * F)                                       \
  ARG(OUT, int64_t, scratch, metrics::mi_scratch_size(J, F, B, V)) ARG(OUT, double, mi, J * F)          \
  ARG(OUT, double, h, F)

#define DIFFREP_ARGS_knn_mi_cd(ARG, T)                                                                  \
  ARG(POS, int64_t, J) ARG(POS, int64_t, F) ARG(POS, int64_t, n) ARG(POS, int64_t, V) ARG(POS, int64_t, k) \
  ARG(IN, double, sx, J * n) ARG(IN, int64_t, vorder, J * n) ARG(IN, int64_t, labels, F * n)             \
  ARG(OUT, double, dscratch, metrics::knn_dscratch_size(J, n))                                          \
  ARG(OUT, int64_t, iscratch, metrics::knn_iscratch_size(J, F, n, V)) ARG(OUT, double, mi, J * F)

#define DIFFREP_ARGS_factor_vae_votes(ARG, T)                                                           \
  ARG(POS, int64_t, nt) ARG(VAL, int64_t, B) ARG(POS, int64_t, d) ARG(POS, int64_t, F)                  \
  ARG(CHECK, expect(B >= 2, "B must be >= 2 (ddof=1 variances)")) ARG(DIM, int64_t, na, active.size())  \
  ARG(CHECK, expect_positive(na, "active.size"))                                                        \
  ARG(CHECK, expect(na <= d, "factor_vae_votes: active holds more code ids than d (a repeated id?)"))    \
  ARG(IN, T, batches, nt * B * d)                                                                       \
  ARG(IN, int64_t, factor_index, nt) ARG(IN, double, global_var, d) ARG(IN, int64_t, active, na)        \
  ARG(VAL, bool, compressed) ARG(OUT, int64_t, votes, F * d) ARG(OUT, int64_t, arg, nt)

DIFFREP_DECLARE_OPS(DIFFREP_METRICS_OPS)
