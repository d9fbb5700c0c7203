// CUDA kernels of the SAMI guidance score. The row reductions (forward and backward2) use one
// block per row (grid-stride over rows) and a fixed-order shared-memory tree in float64, so
// reruns are bitwise identical; the elementwise backward is a grid-stride loop.
#include "common/cuda_helpers.cuh"
#include "guidance/guidance_ops.h"
#include "guidance/guidance_math.h"

namespace diffrep {
namespace cuda {
namespace {

using namespace guidance;

// Sum of v over the block in a fixed order; the result is valid in thread 0.
__device__ double block_sum(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int h = kThreads / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

template <typename T>
__global__ void fwd_kernel(const T* z, const T* mu, const T* s, int64_t S, int64_t B, int64_t D, T c, T* out,
                           int32_t* flags) {
  __shared__ double sh[kThreads];
  int32_t bad = 0;
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < D; j += kThreads) {
      const int64_t i = b * D + j;
      acc += forward_elem(z, S, B * D, i, mu[i], s[i], c, bad);
    }
    const double tot = block_sum(acc, sh);
    if (threadIdx.x == 0) out[b] = T(tot);
  }
  report(flags, bad);
}

template <typename T>
__global__ void bwd_kernel(const T* g, const T* z, const T* mu, const T* s, int64_t S, int64_t B, int64_t D, T* d_z,
                           T* d_mu, T* d_s) {
  const int64_t n = B * D;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    backward_elem(g[i / D], z, S, n, i, mu[i], s[i], d_z, d_mu, d_s);
}

template <typename T>
__global__ void bwd2_kernel(const T* g, const T* z, const T* mu, const T* s, int64_t S, int64_t B, int64_t D,
                            Upstream<T> up, T* g_bar, T* z_bar, T* mu_bar, T* s_bar) {
  __shared__ double sh[kThreads];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    double acc = 0;
    for (int64_t j = threadIdx.x; j < D; j += kThreads) {
      const int64_t i = b * D + j;
      acc += backward2_elem(g[b], z, S, B * D, i, mu[i], s[i], up, z_bar, mu_bar, s_bar);
    }
    const double tot = block_sum(acc, sh);
    if (threadIdx.x == 0) g_bar[b] = T(tot);
  }
}

unsigned row_grid(int64_t B) { return static_cast<unsigned>(B < 65535 ? (B < 1 ? 1 : B) : 65535); }

}  // namespace

DIFFREP_LAUNCHER(log_posterior_fwd) {
  const T *s = logvar, c = constant;
  const int64_t S = samples;
  DeviceGuard guard(l.device);
  fwd_kernel<T><<<row_grid(B), kThreads, 0, as_stream(l)>>>(z, mu, s, S, B, D, c, out, l.flags);
  check_launch("log_posterior forward");
}

DIFFREP_LAUNCHER(log_posterior_bwd) {
  const T *g = grad, *s = logvar;
  T* d_s = d_logvar;
  const int64_t S = samples;
  DeviceGuard guard(l.device);
  bwd_kernel<T><<<grid_for(B * D, kThreads), kThreads, 0, as_stream(l)>>>(g, z, mu, s, S, B, D, d_z, d_mu, d_s);
  check_launch("log_posterior backward");
}

DIFFREP_LAUNCHER(log_posterior_bwd2) {
  const T *g = grad, *s = logvar, *gz = grad_d_z, *gmu = grad_d_mu, *gs = grad_d_logvar;
  T* s_bar = logvar_bar;
  const int64_t S = samples;
  DeviceGuard guard(l.device);
  bwd2_kernel<T><<<row_grid(B), kThreads, 0, as_stream(l)>>>(g, z, mu, s, S, B, D, Upstream<T>{gz, gmu, gs}, g_bar,
                                                              z_bar, mu_bar, s_bar);
  check_launch("log_posterior double backward");
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_GUIDANCE_OPS)

}  // namespace cuda
}  // namespace diffrep
