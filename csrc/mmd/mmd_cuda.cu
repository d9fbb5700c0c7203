// CUDA kernels of the fused MMD: one thread per row (rows of x, then rows of y), the columns of
// each set streamed through shared memory in tiles of kTJ, the row held in registers (dimension
// padded to DP = 16, 32 or 64). Per row only the same-set and cross kernel sums and the gradient
// row survive (no n x m matrix). A single-block kernel then combines the per-row sums in a fixed
// order (no floating-point atomics), so reruns are bitwise identical.
#include "common/cuda_helpers.cuh"
#include "mmd/mmd_ops.h"
#include "mmd/mmd_math.h"

namespace diffrep {
namespace cuda {
namespace {

using namespace mmd;
constexpr int kRowThreads = 128;
constexpr int kTJ = 64;
constexpr int kSumThreads = 256;

template <typename T, int DP>
__global__ void __launch_bounds__(kRowThreads)
    mmd_rows_kernel(const T* x, int64_t n, const T* y, int64_t m, int64_t d, KernelSpec<T> ks, bool unbiased,
                    bool want_grad, EstimatorWeights ew, double* rows, T* gx, T* gy, int32_t* flags) {
  __shared__ T tile[kTJ * DP];
  const int64_t total = n + m;
  int32_t local = 0;
  for (int64_t base = int64_t(blockIdx.x) * kRowThreads; base < total; base += int64_t(gridDim.x) * kRowThreads) {
    const int64_t i = base + threadIdx.x;
    const bool valid = i < total, in_x = i < n;
    const int64_t own = in_x ? i : i - n;  // index within its own set
    const T* src = in_x ? x + own * d : y + own * d;
    T xi[DP], g[DP];
#pragma unroll
    for (int k = 0; k < DP; ++k) {
      xi[k] = (valid && k < d) ? src[k] : T(0);
      g[k] = T(0);
      if (!isfinite(xi[k])) local |= kNonFiniteInput;
    }
    double s_same = 0, s_oth = 0;
    for (int pass = 0; pass < 2; ++pass) {
      const T* v = pass ? y : x;
      const int64_t nc = pass ? m : n;
      const bool same = in_x == (pass == 0);
      const T coef = same ? T(-4.0 * (in_x ? ew.axx : ew.ayy)) : T(4.0 * ew.axy);
      for (int64_t c0 = 0; c0 < nc; c0 += kTJ) {
        __syncthreads();
        for (int e = threadIdx.x; e < kTJ * DP; e += kRowThreads) {
          const int64_t jj = e / DP, k = e % DP;
          tile[e] = (c0 + jj < nc && k < d) ? v[(c0 + jj) * d + k] : T(0);
        }
        __syncthreads();
        if (!valid) continue;
        const int64_t jn = nc - c0 < kTJ ? nc - c0 : kTJ;
        T s_t = T(0);
        for (int64_t jj = 0; jj < jn; ++jj) {
          const T* vj = tile + jj * DP;
          T r2 = T(0);
#pragma unroll
          for (int k = 0; k < DP; ++k) {
            const T t = xi[k] - vj[k];
            r2 += t * t;
          }
          T kv, kp;
          kernel_pair(ks, r2, kv, kp);
          const bool diag = same && c0 + jj == own;
          if (!(diag && unbiased)) s_t += kv;
          if (want_grad && !diag) {
            const T c = coef * kp;
#pragma unroll
            for (int k = 0; k < DP; ++k) g[k] += c * (xi[k] - vj[k]);
          }
        }
        (same ? s_same : s_oth) += double(s_t);
      }
    }
    if (valid) {
      rows[2 * i] = s_same;
      rows[2 * i + 1] = s_oth;
      if (want_grad) {
        T* out = (in_x ? gx : gy) + own * d;
        // over DP with a guard, not `k < d`: a run-time index into g would move it to local memory
#pragma unroll
        for (int k = 0; k < DP; ++k)
          if (k < d) out[k] = g[k];
      }
    }
  }
  report(flags, local);
}

// loss = a_xx sum_x S_same + a_yy sum_y S_same - 2 a_xy sum_x S_cross, in float64, fixed order:
// thread t sums rows t, t + 256, ... of each set, then a shared-memory tree.
template <typename T>
__global__ void mmd_combine_kernel(const double* rows, int64_t n, int64_t m, EstimatorWeights ew, T* loss) {
  __shared__ double sxx[kSumThreads], syy[kSumThreads], sxy[kSumThreads];
  const int t = threadIdx.x;
  double a = 0, b = 0, c = 0;
  for (int64_t i = t; i < n; i += kSumThreads) {
    a += rows[2 * i];
    c += rows[2 * i + 1];
  }
  for (int64_t j = t; j < m; j += kSumThreads) b += rows[2 * (n + j)];
  sxx[t] = a;
  syy[t] = b;
  sxy[t] = c;
  __syncthreads();
  for (int h = kSumThreads / 2; h > 0; h /= 2) {
    if (t < h) {
      sxx[t] += sxx[t + h];
      syy[t] += syy[t + h];
      sxy[t] += sxy[t + h];
    }
    __syncthreads();
  }
  // the CPU's order of operations, each product and sum rounded on its own: nvcc contracts a * b + c
  // into an FMA, which turned the exact zero of identical sets (the two same-set terms and the cross
  // term are equal there) into 2 (round(a_xx S) - a_xx S) ~ 1e-17
  if (t == 0) {
    const double xx = __dmul_rn(ew.axx, sxx[0]), yy = __dmul_rn(ew.ayy, syy[0]);
    const double xy = __dmul_rn(2.0 * ew.axy, sxy[0]);
    *loss = T(__dsub_rn(__dadd_rn(xx, yy), xy));
  }
}

template <typename T, int DP>
void launch_rows(const Launch& l, const T* x, int64_t n, const T* y, int64_t m, int64_t d, const KernelSpec<T>& ks,
                 bool unbiased, bool want_grad, const EstimatorWeights& ew, double* rows, T* gx, T* gy) {
  mmd_rows_kernel<T, DP><<<grid_for(n + m, kRowThreads), kRowThreads, 0, as_stream(l)>>>(
      x, n, y, m, d, ks, unbiased, want_grad, ew, rows, gx, gy, l.flags);
}

}  // namespace

DIFFREP_LAUNCHER(mmd2) {
  const KernelSpec<T> ks = kernel_spec<T>(kind, scales, weights);
  DeviceGuard guard(l.device);
  const EstimatorWeights ew = estimator_weights(n, m, unbiased);
  if (d <= 16)
    launch_rows<T, 16>(l, x, n, y, m, d, ks, unbiased, want_grad, ew, rows, gx, gy);
  else if (d <= 32)
    launch_rows<T, 32>(l, x, n, y, m, d, ks, unbiased, want_grad, ew, rows, gx, gy);
  else
    launch_rows<T, 64>(l, x, n, y, m, d, ks, unbiased, want_grad, ew, rows, gx, gy);
  check_launch("mmd2 rows");
  mmd_combine_kernel<T><<<1, kSumThreads, 0, as_stream(l)>>>(rows, n, m, ew, loss);
  check_launch("mmd2 combine");
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_MMD_OPS)

}  // namespace cuda
}  // namespace diffrep
