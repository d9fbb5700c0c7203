// Launchers of the metric kernels (shared/reference/kernels.md section 6), declared once for both
// backends: diffrep::cpu (metrics_cpu.cpp, OpenMP) and diffrep::cuda (metrics_cuda.cu). Same
// signatures, so one binding template (metrics_bindings.h) serves both modules.
//
// Layouts are C-contiguous row-major; every index array is int64. Sorting is torch's (the wrapper
// passes a stable argsort); the kernels do everything after it. Scratch buffers are allocated by
// the wrapper (sizes below) so CUDA work stays in torch's caching allocator.
#pragma once
#include <cstdint>

#include "common/launch.h"

namespace diffrep {
namespace metrics {
// int64 scratch of mi_matrix: J*F*B*V joint counts + J*B label counts + F*V factor counts (zeroed).
inline int64_t mi_scratch_size(int64_t J, int64_t F, int64_t B, int64_t V) { return J * F * B * V + J * B + F * V; }
// knn_mi_cd scratch: 4*J*n doubles; 2*F*V + J*(n+1) + J*V int64.
inline int64_t knn_dscratch_size(int64_t J, int64_t n) { return 4 * J * n; }
inline int64_t knn_iscratch_size(int64_t J, int64_t F, int64_t n, int64_t V) { return 2 * F * V + J * (n + 1) + J * V; }
}  // namespace metrics
}  // namespace diffrep

#define DIFFREP_METRICS_LAUNCHERS \
  /* scores (U, n), order (U, n) = argsort of each row (CPU: nullptr sorts natively), labels (n, A) \
     npos (A,): r2 (U, n) doubled mid-ranks (scratch; n < 2^30), auc (A, U) */                  \
  template <typename T> \
  void auroc_matrix(const Launch& l, const T* scores, const int64_t* order, const uint8_t* labels, \
                    const int64_t* npos, int64_t U, int64_t A, int64_t n, int32_t* r2, double* auc); \
  /* codes (n, J) -> labels (n, J) in 1..B; lohi (2, J) scratch */                               \
  template <typename T> \
  void hist_discretize(const Launch& l, const T* codes, int64_t n, int64_t J, int64_t B, T* lohi, int64_t* labels); \
  /* labels (n, J) in [0, B), factors (n, F) in [0, V): mi (J, F), h (F,) */                    \
  void mi_matrix(const Launch& l, const int64_t* labels, const int64_t* factors, int64_t n, int64_t J, int64_t F, \
                 int64_t B, int64_t V, int64_t* scratch, double* mi, double* h); \
  /* sx (J, n) sorted values, vorder (J, n) their argsort, labels (F, n) in [0, V): mi (J, F) */ \
  void knn_mi_cd(const Launch& l, const double* sx, const int64_t* vorder, const int64_t* labels, int64_t J, \
                 int64_t F, int64_t n, int64_t V, int64_t k, double* dscratch, int64_t* iscratch, double* mi); \
  /* batches (T, B, d), factor_index (T,) in [0, F), global_var (d,), active (na,) code ids:      \
     votes (F, d) += 1 per batch (zeroed by the caller), arg (T,) */                             \
  template <typename T> \
  void factor_vae_votes(const Launch& l, const T* batches, const int64_t* factor_index, const double* global_var, \
                        const int64_t* active, int64_t na, int64_t nt, int64_t B, int64_t d, int64_t F, \
                        bool compressed, int64_t* votes, int64_t* arg);

// Explicit instantiations, expanded inside each backend's namespace.
#define DIFFREP_METRICS_INSTANTIATE(T)                                                                                          \
  template void auroc_matrix<T>(const Launch&, const T*, const int64_t*, const uint8_t*, const int64_t*,        \
                                int64_t, int64_t, int64_t, int32_t*, double*);                                  \
  template void hist_discretize<T>(const Launch&, const T*, int64_t, int64_t, int64_t, T*, int64_t*);           \
  template void factor_vae_votes<T>(const Launch&, const T*, const int64_t*, const double*, const int64_t*,     \
                                    int64_t, int64_t, int64_t, int64_t, int64_t, bool, int64_t*, int64_t*);

namespace diffrep {
namespace cpu {
DIFFREP_METRICS_LAUNCHERS
}  // namespace cpu
namespace cuda {
DIFFREP_METRICS_LAUNCHERS
}  // namespace cuda
}  // namespace diffrep
