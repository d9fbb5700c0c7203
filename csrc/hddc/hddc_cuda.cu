// CUDA kernels of the batched HDDC-EM primitives (layout and maths: hddc_math.h).
// E-step: one thread per (problem, point), the point in registers (d padded to DP), the K log
// densities in a local array; member counts through shared-memory integer atomics (integer
// atomics only). Passes 1-2 and the distance pass: one block per (block of kBlock points,
// component, problem) writing its partial sums in a fixed order; combine kernels add the blocks
// in float64 in block order. No floating-point atomics: reruns are bitwise identical. The problems
// go in grid.y (E-step) or grid.z (passes), at most kMaxGridYZ per launch: larger batches are
// launched in slices whose kernels add the slice's first problem b0.
#include <cmath>

#include "common/cuda_helpers.cuh"
#include "common/fast_math.h"
#include "hddc/hddc_ops.h"
#include "hddc/hddc_math.h"

namespace diffrep {
namespace cuda {
namespace {

using namespace hddc;
constexpr int kEThreads = 128;
constexpr int kSThreads = 256;  // per-block threads of the pass kernels
constexpr int kLanes = kSThreads / kMaxDim;
constexpr int kTileP = 32;      // points per scatter tile in shared memory
constexpr int kMaxEntries = kMaxDim * kMaxDim / kSThreads;
// CUDA's limit on gridDim.y and gridDim.z. Overridable only so that the host emulation of these
// kernels (tests/ops/test_cuda_launchers_host_hddc_mmd.py) can split a batch of a few problems into slices.
#ifndef DIFFREP_HDDC_MAX_GRID_YZ
#define DIFFREP_HDDC_MAX_GRID_YZ 65535
#endif
constexpr int64_t kMaxGridYZ = DIFFREP_HDDC_MAX_GRID_YZ;

template <typename T, int DP>
__global__ void __launch_bounds__(kEThreads)
    estep_kernel(Dims s, int64_t b0, const T* x, const int64_t* unit_of, const T* w, const T* mu, const T* qt,
                 const T* ia, const int32_t* dk, const int32_t* tri, const T* ib, const T* cst, const int32_t* act,
                 const T* thr, bool skip_zero, T* resp, double* llp, unsigned long long* cnt, int32_t* flags) {
  __shared__ unsigned int scnt[kMaxK];
  const int64_t b = b0 + blockIdx.y, n = s.n, d = s.d, K = s.K, D = s.D;
  for (int k = threadIdx.x; k < K; k += blockDim.x) scnt[k] = 0;
  __syncthreads();
  const T* xu = x + unit_of[b] * n * d;
  const T th = thr[b];
  int32_t local = 0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T wi = w[b * n + i];
    T* r = resp + (b * n + i) * K;
    if (skip_zero && wi == T(0)) {
      for (int64_t k = 0; k < K; ++k) r[k] = T(0);
      llp[b * n + i] = 0.0;
      continue;
    }
    T xr[DP], lp[kMaxK];
#pragma unroll
    for (int j = 0; j < DP; ++j) {
      xr[j] = j < d ? xu[i * d + j] : T(0);
      if (!isfinite(xr[j])) local |= kNonFiniteInput;
    }
    T mx = -INFINITY;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t bk = b * K + k;
      if (!act[bk]) continue;
      const T* m = mu + bk * d;
      T e[DP], ee = T(0);
#pragma unroll
      for (int j = 0; j < DP; ++j) {
        e[j] = j < d ? xr[j] - m[j] : T(0);
        ee += e[j] * e[j];
      }
      T cost;
      estep_cost<T, 1, 1, DP>(qt + bk * D * d, ia + bk * D, d, dk[bk] < D ? dk[bk] : D, tri[bk] != 0, ib[bk], cst[bk],
                              &ee, [&e](int j, int) { return e[j]; }, &cost);
      lp[k] = T(-0.5) * cost;
      mx = lp[k] > mx ? lp[k] : mx;
    }
    // as the CPU kernel: fast_exp (exactly 0 below its range, so far components get t = 0) and a
    // multiplication by 1 / sum
    T sm = T(0);
    for (int64_t k = 0; k < K; ++k)
      if (act[b * K + k]) {
        lp[k] = fast_exp(lp[k] - mx);
        sm += lp[k];
      }
    const T inv = T(1) / sm;
    for (int64_t k = 0; k < K; ++k) {
      const T t = act[b * K + k] ? lp[k] * inv : T(0);
      r[k] = t;
      if (wi > T(0) && t > th) atomicAdd(&scnt[k], 1u);
    }
    llp[b * n + i] = double(wi) * (double(mx) + log(double(sm)));
  }
  __syncthreads();
  for (int k = threadIdx.x; k < K; k += blockDim.x)
    if (scnt[k]) atomicAdd(&cnt[b * K + k], static_cast<unsigned long long>(scnt[k]));
  report(flags, local);
}

// L[b] = sum_i llp[b, i]: thread t sums i = t, t + 256, ... in order, then a shared-memory tree.
__global__ void __launch_bounds__(kSThreads) sum_rows_kernel(const double* v, int64_t n, double* out) {
  __shared__ double sh[kSThreads];
  const int64_t b = blockIdx.x;
  double a = 0;
  for (int64_t i = threadIdx.x; i < n; i += kSThreads) a += v[b * n + i];
  sh[threadIdx.x] = a;
  __syncthreads();
  for (int h = kSThreads / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[b] = sh[0];
}

// Pass 1 of block (blk, k, b): part[.., 0..d) = sum t x, part[.., d] = sum t. Thread (lane, j)
// takes dimension j of points i0 + lane, i0 + lane + kLanes, ...; lanes are added in order.
template <typename T>
__global__ void __launch_bounds__(kSThreads)
    moments_kernel(Dims s, int64_t b0, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                   const int32_t* act, int32_t mode, T phi, T* part) {
  __shared__ T sh[kLanes][kMaxDim + 1];
  const int64_t blk = blockIdx.x, k = blockIdx.y, b = b0 + blockIdx.z, n = s.n, d = s.d, K = s.K;
  const int64_t nblk = gridDim.x, i0 = blk * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n;
  const int j = threadIdx.x % kMaxDim, lane = threadIdx.x / kMaxDim;
  const T* xu = x + unit_of[b] * n * d;
  T acc = T(0), accm = T(0);
  if (act[b * K + k])
    for (int64_t i = i0 + lane; i < i1; i += kLanes) {
      const T wi = w[b * n + i];
      if (wi == T(0)) continue;  // as the CPU kernel: a zero weight skips the point, even a NaN t
      const T t = pass_weight(mode, wi, resp[(b * n + i) * K + k], phi);
      if (t == T(0)) continue;
      if (j < d) acc += t * xu[i * d + j];
      accm += t;
    }
  sh[lane][j] = acc;
  if (j == 0) sh[lane][kMaxDim] = accm;
  __syncthreads();
  // lane 0 writes the d sums of t x, thread (lane 1, j 0) the mass: j only reaches kMaxDim - 1,
  // so "lane 0, j == d" would leave the mass unwritten at d = kMaxDim
  T* o = part + ((b * nblk + blk) * K + k) * (d + 1);
  if (lane == 0 && j < d) {
    T v = T(0);
    for (int q = 0; q < kLanes; ++q) v += sh[q][j];
    o[j] = v;
  } else if (lane == 1 && j == 0) {
    T v = T(0);
    for (int q = 0; q < kLanes; ++q) v += sh[q][kMaxDim];
    o[d] = v;
  }
}

template <typename T>
__global__ void moments_combine_kernel(Dims s, int64_t nblk, const T* part, double* mass, double* mean) {
  const int64_t d = s.d, K = s.K, total = s.B * K * d;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t bk = e / d, j = e % d, b = bk / K, k = bk % K;
    double sv = 0, sm = 0;
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const T* p = part + ((b * nblk + blk) * K + k) * (d + 1);
      sv += double(p[j]);
      sm += double(p[d]);
    }
    mean[e] = sm > 0 ? sv / sm : 0.0;
    if (j == 0) mass[bk] = sm;
  }
}

// Pass 2 of block (blk, k, b): the centred, weighted scatter; thread owns entries tid + 256 q.
template <typename T, int DP>
__global__ void __launch_bounds__(kSThreads)
    scatter_kernel(Dims s, int64_t b0, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                   const int32_t* act, const double* mass, const double* mean, T* part) {
  __shared__ T ev[kTileP][DP];
  __shared__ T tw[kTileP];
  const int64_t blk = blockIdx.x, k = blockIdx.y, b = b0 + blockIdx.z, n = s.n, d = s.d, K = s.K, bk = b * K + k;
  const int64_t nblk = gridDim.x, i0 = blk * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n, dd = d * d;
  const T* xu = x + unit_of[b] * n * d;
  const bool live = act[bk] && mass[bk] > 0;
  T acc[kMaxEntries];
#pragma unroll
  for (int q = 0; q < kMaxEntries; ++q) acc[q] = T(0);
  for (int64_t t0 = i0; live && t0 < i1; t0 += kTileP) {
    __syncthreads();
    for (int e = threadIdx.x; e < kTileP * DP; e += kSThreads) {
      const int p = e / DP, j = e % DP;
      const int64_t i = t0 + p;
      // as the CPU kernel, a point with w = 0 or w t = 0 adds nothing (its deviation is 0, so a
      // non-finite x or t there cannot turn the sum into NaN)
      const T wi = i < i1 ? w[b * n + i] : T(0);
      const T t = wi != T(0) ? wi * resp[(b * n + i) * K + k] : T(0);
      if (j == 0) tw[p] = t;
      ev[p][j] = (t != T(0) && j < d) ? xu[i * d + j] - T(mean[bk * d + j]) : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < kMaxEntries; ++q) {
      const int64_t e = threadIdx.x + int64_t(kSThreads) * q;
      if (e >= dd) break;
      // entry (r, c) and its mirror (c, r) as the CPU kernel takes the upper triangle, (t e_lo) e_hi
      // with lo <= hi, so that W is exactly symmetric (each triangle on its own differed in the last
      // bit) and a block's sums equal the CPU's where both fuse the multiply-add
      const int64_t r = e / d, c = e % d, lo = r < c ? r : c, hi = r < c ? c : r;
      T a = acc[q];
      for (int p = 0; p < kTileP; ++p) a += tw[p] * ev[p][lo] * ev[p][hi];
      acc[q] = a;
    }
  }
#pragma unroll
  for (int q = 0; q < kMaxEntries; ++q) {
    const int64_t e = threadIdx.x + int64_t(kSThreads) * q;
    if (e < dd) part[((b * nblk + blk) * K + k) * dd + e] = acc[q];
  }
}

// Distance pass of block (blk, k, b): sum over members of |x - centroid|, tree-reduced in order.
template <typename T>
__global__ void __launch_bounds__(kSThreads)
    distance_kernel(Dims s, int64_t b0, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                    const int32_t* act, T phi, const double* count, const double* centroid, T* part) {
  __shared__ T sh[kSThreads];
  __shared__ T c[kMaxDim];
  const int64_t blk = blockIdx.x, k = blockIdx.y, b = b0 + blockIdx.z, n = s.n, d = s.d, K = s.K, bk = b * K + k;
  const int64_t nblk = gridDim.x, i0 = blk * kBlock, i1 = i0 + kBlock < n ? i0 + kBlock : n;
  for (int j = threadIdx.x; j < d; j += kSThreads) c[j] = T(centroid[bk * d + j]);
  __syncthreads();
  const T* xu = x + unit_of[b] * n * d;
  T acc = T(0);
  if (act[bk] && count[bk] > 0)
    for (int64_t i = i0 + threadIdx.x; i < i1; i += kSThreads) {
      if (pass_weight(int32_t(kMember), w[b * n + i], resp[(b * n + i) * K + k], phi) == T(0)) continue;
      T r2 = T(0);
      for (int64_t j = 0; j < d; ++j) {
        const T v = xu[i * d + j] - c[j];
        r2 += v * v;
      }
      acc += sqrt(r2);
    }
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (int h = kSThreads / 2; h > 0; h /= 2) {
    if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[(b * nblk + blk) * K + k] = sh[0];
}

// out[b, j] = sum_blk part[b, blk, j] / div[b * K + j / group] in float64, blocks in order; a
// zero divisor gives `empty`. `reciprocal`: times 1 / div, as the CPU kernel scales W (the
// distances it divides).
template <typename T>
__global__ void combine_kernel(const T* part, int64_t B, int64_t nblk, int64_t width, int64_t K, int64_t group,
                               const double* div, double empty, bool reciprocal, double* out) {
  const int64_t total = B * width;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = e / width, j = e % width;
    double v = 0;
    for (int64_t blk = 0; blk < nblk; ++blk) v += double(part[(b * nblk + blk) * width + j]);
    const double q = div[b * K + j / group];
    out[e] = q > 0 ? (reciprocal ? v * (1.0 / q) : v / q) : empty;
  }
}

// grid (blocks of kBlock points, components, problems b0 .. b0 + nb) of the pass kernels
inline dim3 block_grid(const Dims& s, int64_t nb) {
  return dim3(unsigned(num_blocks(s.n)), unsigned(s.K), unsigned(nb));
}

// body(b0, nb) for the slices of at most kMaxGridYZ problems.
template <typename Body>
void for_problem_slices(const Dims& s, Body&& body) {
  for (int64_t b0 = 0; b0 < s.B; b0 += kMaxGridYZ) body(b0, s.B - b0 < kMaxGridYZ ? s.B - b0 : kMaxGridYZ);
}

template <typename T>
void combine(const Launch& l, const T* part, const Dims& s, int64_t width, int64_t group, const double* div,
             double empty, bool reciprocal, double* out, const char* what) {
  combine_kernel<T><<<grid_for(s.B * width, kSThreads), kSThreads, 0, as_stream(l)>>>(
      part, s.B, num_blocks(s.n), width, s.K, group, div, empty, reciprocal, out);
  check_launch(what);
}

template <typename T>
void moments_passes(const Launch& l, const Dims& s, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                    const int32_t* act, int32_t mode, T phi, T* part, double* mass, double* mean) {
  for_problem_slices(s, [&](int64_t b0, int64_t nb) {
    moments_kernel<T><<<block_grid(s, nb), kSThreads, 0, as_stream(l)>>>(s, b0, x, unit_of, w, resp, act, mode, phi,
                                                                         part);
    check_launch("hddc moments");
  });
  moments_combine_kernel<T><<<grid_for(s.B * s.K * s.d, kSThreads), kSThreads, 0, as_stream(l)>>>(
      s, num_blocks(s.n), part, mass, mean);
  check_launch("hddc moments combine");
}

}  // namespace

DIFFREP_LAUNCHER(hddc_estep) {
  DeviceGuard guard(l.device);
  DeviceGuard::check(cudaMemsetAsync(cnt, 0, sizeof(int64_t) * s.B * s.K, as_stream(l)), "hddc_estep memset");
  int64_t gx = (s.n + kEThreads - 1) / kEThreads;
  gx = gx > 4096 ? 4096 : gx;
  auto* c = reinterpret_cast<unsigned long long*>(cnt);
  for_problem_slices(s, [&](int64_t b0, int64_t nb) {
    const dim3 grid{unsigned(gx), unsigned(nb)};
#define DIFFREP_HDDC_ESTEP(DP)                                                                                    \
  estep_kernel<T, DP><<<grid, kEThreads, 0, as_stream(l)>>>(s, b0, x, unit_of, w, mu, qt, ia, dk, tri, ib, cst, \
                                                             act, thr, skip_zero, resp, llp, c, l.flags)
    if (s.d <= 8)
      DIFFREP_HDDC_ESTEP(8);
    else if (s.d <= 16)
      DIFFREP_HDDC_ESTEP(16);
    else if (s.d <= 32)
      DIFFREP_HDDC_ESTEP(32);
    else
      DIFFREP_HDDC_ESTEP(64);
#undef DIFFREP_HDDC_ESTEP
    check_launch("hddc_estep");
  });
  sum_rows_kernel<<<unsigned(s.B), kSThreads, 0, as_stream(l)>>>(llp, s.n, L);
  check_launch("hddc_estep loglik");
}

// Pass 2 of mode kSoft: W = the weighted scatter about the means, divided by the mass.
template <typename T>
void scatter_passes(const Launch& l, const Dims& s, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                    const int32_t* act, const double* mass, const double* mean, T* part, double* W) {
  for_problem_slices(s, [&](int64_t b0, int64_t nb) {
    const dim3 grid = block_grid(s, nb);
    if (s.d <= 16)
      scatter_kernel<T, 16><<<grid, kSThreads, 0, as_stream(l)>>>(s, b0, x, unit_of, w, resp, act, mass, mean, part);
    else if (s.d <= 32)
      scatter_kernel<T, 32><<<grid, kSThreads, 0, as_stream(l)>>>(s, b0, x, unit_of, w, resp, act, mass, mean, part);
    else
      scatter_kernel<T, 64><<<grid, kSThreads, 0, as_stream(l)>>>(s, b0, x, unit_of, w, resp, act, mass, mean, part);
    check_launch("hddc scatter");
  });
  combine(l, part, s, s.K * s.d * s.d, s.d * s.d, mass, 0.0, true, W, "hddc scatter combine");
}

DIFFREP_LAUNCHER(hddc_stats) {
  DeviceGuard guard(l.device);
  moments_passes(l, s, x, unit_of, w, resp, act, mode, phi, part, mass, mean);
  if (mode == kSoft) {
    scatter_passes(l, s, x, unit_of, w, resp, act, mass, mean, part, second);
    return;
  }
  // mode kMember: the mean distance of the members to their centroid (NaN for an empty cluster)
  for_problem_slices(s, [&](int64_t b0, int64_t nb) {
    distance_kernel<T><<<block_grid(s, nb), kSThreads, 0, as_stream(l)>>>(s, b0, x, unit_of, w, resp, act, phi, mass,
                                                                            mean, part);
    check_launch("hddc distance");
  });
  combine(l, part, s, s.K, 1, mass, NAN, false, second, "hddc distance combine");
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_HDDC_OPS)

}  // namespace cuda
}  // namespace diffrep
