// Launchers of the SAMI guidance-score family, declared once for both backends: diffrep::cpu
// (guidance_cpu.cpp, OpenMP) and diffrep::cuda (guidance_cuda.cu).
//
// Shapes: z (S, B, D) C-contiguous; mu, s = log sigma^2 (B, D); g, out, g_bar (B,).
// forward: out_b = sum_j ell_bj (guidance_math.h), the mean over samples of log q(z | x_t).
// backward: d_z, d_mu, d_s = g_b times the first derivatives.
// backward2: the backward of backward for upstream (gz, gmu, gs), any of which may be null (zero).
#pragma once
#include <cstdint>

#include "common/launch.h"

#define DIFFREP_GUIDANCE_LAUNCHERS                                                                              \
  template <typename T>                                                                                         \
  void log_posterior_fwd(const Launch& l, const T* z, const T* mu, const T* s, int64_t S, int64_t B, int64_t D, \
                         T c, T* out);                                                                          \
  template <typename T>                                                                                         \
  void log_posterior_bwd(const Launch& l, const T* g, const T* z, const T* mu, const T* s, int64_t S, int64_t B, \
                         int64_t D, T* d_z, T* d_mu, T* d_s);                                                   \
  template <typename T>                                                                                         \
  void log_posterior_bwd2(const Launch& l, const T* g, const T* z, const T* mu, const T* s, int64_t S,          \
                          int64_t B, int64_t D, const T* gz, const T* gmu, const T* gs, T* g_bar, T* z_bar,     \
                          T* mu_bar, T* s_bar);

// Explicit instantiations, expanded once per dtype by each backend's .cpp/.cu file.
#define DIFFREP_GUIDANCE_INSTANTIATE(T)                                                                          \
  template void log_posterior_fwd<T>(const Launch&, const T*, const T*, const T*, int64_t, int64_t, int64_t, T, \
                                     T*);                                                                        \
  template void log_posterior_bwd<T>(const Launch&, const T*, const T*, const T*, const T*, int64_t, int64_t,   \
                                     int64_t, T*, T*, T*);                                                       \
  template void log_posterior_bwd2<T>(const Launch&, const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                      int64_t, const T*, const T*, const T*, T*, T*, T*, T*);

namespace diffrep {
namespace cpu {
DIFFREP_GUIDANCE_LAUNCHERS
}  // namespace cpu
namespace cuda {
DIFFREP_GUIDANCE_LAUNCHERS
}  // namespace cuda
}  // namespace diffrep
