// Launchers of the batched HDDC-EM primitives, declared once for diffrep::cpu (hddc_cpu.cpp) and
// diffrep::cuda (hddc_cuda.cu). Layout and maths: hddc_math.h.
//
// estep: X (U,n,d), unit_of (B,) int64, w (B,n), mu (B,K,d), Qt (B,K,D,d), ia (B,K,D), dk (B,K)
//   int32, tri (B,K) int32 (non-zero: row j of Qt_k is zero beyond column j, and the kernel skips
//   those columns), ib (B,K), cst (B,K), act (B,K) int32, thr (B,) -> resp (B,n,K) (0 for inactive
//   components, and for w = 0 points when skip_zero), llp (B,n) float64 = w logsumexp, L (B,)
//   float64 (llp summed in block order), cnt (B,K) int64 = #{w > 0, t > thr_b}.
// moments: pass 1 with weight pass_weight(mode, w, t, phi): mass (B,K) and mean (B,K,d), float64;
//   part: scratch of B * nblk * K * (d + 1) T.
// scatter: pass 2, W (B,K,d,d) float64 = sum weight (x - mean)(x - mean)^T / mass;
//   part: scratch of B * nblk * K * d * d T.
// distance: sum over members of |x - centroid|, divided by the count: density (B,K) float64
//   (NaN for an empty cluster); part: scratch of B * nblk * K T.
#pragma once
#include <cstdint>

#include "common/launch.h"
#include "hddc/hddc_math.h"

#define DIFFREP_HDDC_LAUNCHERS                                                                                  \
  template <typename T>                                                                                         \
  void hddc_estep(const Launch& l, const hddc::Dims& s, const T* x, const int64_t* unit_of, const T* w,          \
                  const T* mu, const T* qt, const T* ia, const int32_t* dk, const int32_t* tri, const T* ib,    \
                  const T* cst, const int32_t* act, const T* thr, bool skip_zero, T* resp, double* llp, double* L,            \
                  int64_t* cnt);                                                                                \
  template <typename T>                                                                                         \
  void hddc_moments(const Launch& l, const hddc::Dims& s, const T* x, const int64_t* unit_of, const T* w,        \
                    const T* resp, const int32_t* act, int32_t mode, T phi, T* part, double* mass,             \
                    double* mean);                                                                              \
  template <typename T>                                                                                         \
  void hddc_scatter(const Launch& l, const hddc::Dims& s, const T* x, const int64_t* unit_of, const T* w,        \
                    const T* resp, const int32_t* act, const double* mass, const double* mean, T* part,        \
                    double* W);                                                                                 \
  template <typename T>                                                                                         \
  void hddc_distance(const Launch& l, const hddc::Dims& s, const T* x, const int64_t* unit_of, const T* w,       \
                     const T* resp, const int32_t* act, T phi, const double* count, const double* centroid,    \
                     T* part, double* density);

// Explicit instantiations, expanded inside diffrep::cpu and diffrep::cuda.
#define DIFFREP_HDDC_INSTANTIATE(T)                                                                            \
  template void hddc_estep<T>(const Launch&, const Dims&, const T*, const int64_t*, const T*, const T*,          \
                              const T*, const T*, const int32_t*, const int32_t*, const T*, const T*,           \
                              const int32_t*, const T*, bool, T*, double*, double*, int64_t*);                                           \
  template void hddc_moments<T>(const Launch&, const Dims&, const T*, const int64_t*, const T*, const T*,        \
                                const int32_t*, int32_t, T, T*, double*, double*);                             \
  template void hddc_scatter<T>(const Launch&, const Dims&, const T*, const int64_t*, const T*, const T*,        \
                                const int32_t*, const double*, const double*, T*, double*);                    \
  template void hddc_distance<T>(const Launch&, const Dims&, const T*, const int64_t*, const T*, const T*,       \
                                 const int32_t*, T, const double*, const double*, T*, double*);

namespace diffrep {
namespace cpu {
DIFFREP_HDDC_LAUNCHERS
}  // namespace cpu
namespace cuda {
DIFFREP_HDDC_LAUNCHERS
}  // namespace cuda
}  // namespace diffrep
