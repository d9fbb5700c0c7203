// OpenMP CPU kernels of the SAMI guidance score: one row (example) per iteration, its D
// elements in a vectorised loop, the row sums in float64 in a fixed order. Element maths:
// guidance_math.h.
#include <omp.h>

#include <cstdint>

#include "common/isa.h"
#include "guidance/guidance_ops.h"
#include "guidance/guidance_math.h"

namespace diffrep {
namespace cpu {

using namespace guidance;
namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements below which one thread is faster

}  // namespace

DIFFREP_LAUNCHER(log_posterior_fwd) {
  const T *s = logvar, c = constant;
  const int64_t S = samples;
  const int64_t stride = B * D;
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (S * B * D >= kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    double acc = 0;
    int32_t bad = 0;
    call_best_isa([&] {
#pragma omp simd reduction(+ : acc) reduction(| : bad)
      for (int64_t j = 0; j < D; ++j) {
        const int64_t i = b * D + j;
        acc += forward_elem(z, S, stride, i, mu[i], s[i], c, bad);
      }
    });
    out[b] = static_cast<T>(acc);
    flags |= bad;
  }
  *l.flags |= flags;
}

DIFFREP_LAUNCHER(log_posterior_bwd) {
  const T *g = grad, *s = logvar;
  T* d_s = d_logvar;
  const int64_t S = samples;
  const int64_t stride = B * D;
#pragma omp parallel for schedule(static) if (S * B * D >= kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    const T gb = g[b];
    call_best_isa([&] {
#pragma omp simd
      for (int64_t j = 0; j < D; ++j)
        backward_elem(gb, z, S, stride, b * D + j, mu[b * D + j], s[b * D + j], d_z, d_mu, d_s);
    });
  }
}

DIFFREP_LAUNCHER(log_posterior_bwd2) {
  const T *g = grad, *s = logvar, *gz = grad_d_z, *gmu = grad_d_mu, *gs = grad_d_logvar;
  T* s_bar = logvar_bar;
  const int64_t S = samples;
  const int64_t stride = B * D;
  const Upstream<T> up{gz, gmu, gs};
#pragma omp parallel for schedule(static) if (S * B * D >= kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    const T gb = g[b];
    double acc = 0;
    call_best_isa([&] {
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < D; ++j) {
        const int64_t i = b * D + j;
        acc += backward2_elem(gb, z, S, stride, i, mu[i], s[i], up, z_bar, mu_bar, s_bar);
      }
    });
    g_bar[b] = static_cast<T>(acc);
  }
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_GUIDANCE_OPS)

}  // namespace cpu
}  // namespace diffrep
