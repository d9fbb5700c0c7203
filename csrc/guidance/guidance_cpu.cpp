// OpenMP CPU kernels of the SAMI guidance score: one row (example) per iteration, its D elements
// in runs of kRun contiguous elements. Each run first accumulates the sample moments
// sample-major (sample q's run is contiguous in z, so the loops vectorise; an element-major loop
// over the S strided samples did not, and ran ~30 cycles per element), then applies the element
// maths of guidance_math.h in vectorised loops. The row sums are in float64 over kLanes
// interleaved partial sums (RowSum): a fixed order, the same for every thread count and vector
// width, so the AVX-512 copy (call_widest_isa, common/isa.h) gives the AVX2 copy's values.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/isa.h"
#include "guidance/guidance_ops.h"
#include "guidance/guidance_math.h"

namespace diffrep {
namespace cpu {

using namespace guidance;
namespace {
constexpr int64_t kParallelMin = 1 << 14;  // elements below which one thread is faster
constexpr int64_t kRun = 256;              // elements per run: its scratch stays in L1

// A run of a null (zero) upstream cotangent.
template <typename T>
constexpr T kZeros[kRun] = {};

// m1[j], m2[j] = moments(z, S, stride, i0 + j, mu[i0 + j]) for j < n: the same sums in the same
// order (0 + r_0 + r_1 + ...), then the same scaling by 1/S.
template <typename T>
inline void run_moments(const T* z, int64_t S, int64_t stride, int64_t i0, int64_t n, const T* mu, T* m1, T* m2) {
  const T* m = mu + i0;
  const T* z0 = z + i0;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const T r = z0[j] - m[j];
    m1[j] = T(0) + r;
    m2[j] = T(0) + r * r;
  }
  for (int64_t q = 1; q < S; ++q) {
    const T* zq = z + q * stride + i0;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const T r = zq[j] - m[j];
      m1[j] += r;
      m2[j] += r * r;
    }
  }
  const T inv = T(1) / T(S);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    m1[j] *= inv;
    m2[j] *= inv;
  }
}

// sum_j v_j of one row in float64: element j of the row goes to partial sum j mod kLanes, the
// partial sums are added in lane order at the end. Independent lanes vectorise without
// reassociation (an `omp simd reduction` did not vectorise inside call_best_isa's copy for
// x86-64-v3: GCC sizes its per-lane arrays for the baseline target).
constexpr int kLanes = 8;
static_assert(kRun % kLanes == 0, "runs must start on a lane boundary");

struct RowSum {
  double lane[kLanes] = {};

  // One run: n values in v, whose capacity is rounded up to kLanes; the pad is zeroed here
  // (adding +0 leaves a lane unchanged), so every block is whole.
  template <typename T>
  void add(T* v, int64_t n) {
    const int64_t whole = (n + kLanes - 1) / kLanes * kLanes;
    for (int64_t j = n; j < whole; ++j) v[j] = T(0);
    for (int64_t j = 0; j < whole; j += kLanes)
      for (int k = 0; k < kLanes; ++k) lane[k] += double(v[j + k]);
  }

  double total() const {
    double t = 0;
    for (int k = 0; k < kLanes; ++k) t += lane[k];
    return t;
  }
};

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
    call_widest_isa([&] {
      RowSum sum;
      int32_t any_bad = 0;
      T m1[kRun], m2[kRun], v[kRun];
      for (int64_t j0 = 0; j0 < D; j0 += kRun) {
        const int64_t n = std::min(kRun, D - j0), i0 = b * D + j0;
        run_moments(z, S, stride, i0, n, mu, m1, m2);
        for (int64_t j = 0; j < n; ++j) {
          v[j] = log_density(m2[j], s[i0 + j], c);
          any_bad |= std::isfinite(v[j]) ? 0 : int32_t(kNonFiniteInput);
        }
        sum.add(v, n);
      }
      acc = sum.total();
      bad = any_bad;
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
    call_widest_isa([&] {
      T m1[kRun], m2[kRun], f[kRun];
      for (int64_t j0 = 0; j0 < D; j0 += kRun) {
        const int64_t n = std::min(kRun, D - j0), i0 = b * D + j0;
        run_moments(z, S, stride, i0, n, mu, m1, m2);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const FirstDerivatives<T> d = first_derivatives(gb, Moments<T>{m1[j], m2[j]}, s[i0 + j], S);
          d_mu[i0 + j] = d.d_mu;
          d_s[i0 + j] = d.d_s;
          f[j] = d.f;
        }
        for (int64_t q = 0; q < S; ++q) {
          const T* zq = z + q * stride + i0;
          T* dq = d_z + q * stride + i0;
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) dq[j] = f[j] * (zq[j] - mu[i0 + j]);
        }
      }
    });
  }
}

DIFFREP_LAUNCHER(log_posterior_bwd2) {
  const T *g = grad, *s = logvar, *gz = grad_d_z;
  T* s_bar = logvar_bar;
  const int64_t S = samples;
  const int64_t stride = B * D;
#pragma omp parallel for schedule(static) if (S * B * D >= kParallelMin)
  for (int64_t b = 0; b < B; ++b) {
    const T gb = g[b];
    double acc = 0;
    call_widest_isa([&] {
      RowSum sum;
      T m1[kRun], m2[kRun], gz_mean[kRun], gzr_mean[kRun], f[kRun], part[kRun];
      for (int64_t j0 = 0; j0 < D; j0 += kRun) {
        const int64_t n = std::min(kRun, D - j0), i0 = b * D + j0;
        run_moments(z, S, stride, i0, n, mu, m1, m2);
        const T* gmu = grad_d_mu ? grad_d_mu + i0 : kZeros<T>;
        const T* gs = grad_d_logvar ? grad_d_logvar + i0 : kZeros<T>;
        const T *gzm = kZeros<T>, *gzrm = kZeros<T>;
        if (gz) {  // the sample means of Gz_q and Gz_q r_q, summed in backward2_elem's order
          for (int64_t q = 0; q < S; ++q) {
            const T *zq = z + q * stride + i0, *gq = gz + q * stride + i0;
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
              const T prev_m = q ? gz_mean[j] : T(0), prev_r = q ? gzr_mean[j] : T(0);
              gz_mean[j] = prev_m + gq[j];
              gzr_mean[j] = prev_r + gq[j] * (zq[j] - mu[i0 + j]);
            }
          }
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) {
            gz_mean[j] /= T(S);
            gzr_mean[j] /= T(S);
          }
          gzm = gz_mean;
          gzrm = gzr_mean;
        }
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          const SecondDerivatives<T> d = second_derivatives(gb, Moments<T>{m1[j], m2[j]}, s[i0 + j], S, gmu[j],
                                                            gs[j], gzm[j], gzrm[j]);
          mu_bar[i0 + j] = d.mu_bar;
          s_bar[i0 + j] = d.s_bar;
          f[j] = d.f;
          part[j] = d.g_bar;
        }
        sum.add(part, n);
        for (int64_t q = 0; q < S; ++q) {
          const T* zq = z + q * stride + i0;
          T* zb = z_bar + q * stride + i0;
          if (gz) {
            const T* gq = gz + q * stride + i0;
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) zb[j] = f[j] * (gmu[j] + gs[j] * (zq[j] - mu[i0 + j]) - gq[j]);
          } else {
#pragma omp simd
            for (int64_t j = 0; j < n; ++j) zb[j] = f[j] * (gmu[j] + gs[j] * (zq[j] - mu[i0 + j]));
          }
        }
      }
      acc = sum.total();
    });
    g_bar[b] = static_cast<T>(acc);
  }
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_GUIDANCE_OPS)

}  // namespace cpu
}  // namespace diffrep
