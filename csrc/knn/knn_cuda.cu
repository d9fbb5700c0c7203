// CUDA kernel of the tiled kNN scan (knn_ops.h, docs/kernels/knn.md). One block of 256 threads
// owns kBM = 64 query rows and walks the points in tiles of kBN = 64 columns: the rows and the
// columns are staged through shared memory kBK dimensions at a time, each thread accumulates a
// 4 x 4 block of squared distances (from differences) in registers, the 64 x 64 tile is written
// to shared memory (aliasing the staging buffers), and the first 64 threads, one per query row,
// fold it into their row's running top-kk list and ball count in column order. Nothing of size
// m x n exists, and each row is reduced in a fixed order: reruns are bitwise identical.
#include <cuda_runtime.h>

#include <cstdint>

#include "common/cuda_helpers.cuh"
#include "knn/knn_math.h"
#include "knn/knn_ops.h"

namespace diffrep {
namespace cuda {
namespace {

using namespace knn;
constexpr int kBM = 64, kBN = 64, kBK = 32, kBlockThreads = 256, kPad = 65;
constexpr int kStage = 2 * kBK * kPad;  // two staging tiles [kBK][kPad]
constexpr int kTile = kBM * kPad;       // the distance tile [kBM][kPad]
constexpr int kShared = kStage > kTile ? kStage : kTile;

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
    knn_scan_kernel(const T* __restrict__ q, int64_t m, const T* __restrict__ c, int64_t n, int64_t d, int kk,
                    bool strict, const T* __restrict__ r2, T* kth, int64_t* count, int32_t* flags) {
  __shared__ T smem[kShared];
  __shared__ T rs[kBN];
  T* qs = smem;              // qs[k * kPad + row]
  T* cs = smem + kBK * kPad;  // cs[k * kPad + col]
  T* dist = smem;            // dist[row * kPad + col], after the staging tiles are consumed
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t row0 = int64_t(blockIdx.x) * kBM;
  const bool owner = threadIdx.x < kBM && row0 + threadIdx.x < m;
  const T inf = T(INFINITY);
  T best[kMaxK];
  for (int i = 0; i < kMaxK; ++i) best[i] = inf;
  int64_t cnt = 0;
  int32_t local = 0;
  for (int64_t col0 = 0; col0 < n; col0 += kBN) {
    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
    for (int64_t k0 = 0; k0 < d; k0 += kBK) {
      __syncthreads();
      for (int e = threadIdx.x; e < kBM * kBK; e += kBlockThreads) {
        const int r = e / kBK, kc = e % kBK;
        const int64_t gk = k0 + kc;
        qs[kc * kPad + r] = (row0 + r < m && gk < d) ? q[(row0 + r) * d + gk] : T(0);
        cs[kc * kPad + r] = (col0 + r < n && gk < d) ? c[(col0 + r) * d + gk] : T(0);
      }
      __syncthreads();
#pragma unroll 8
      for (int k = 0; k < kBK; ++k) {
        T a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = qs[k * kPad + ty + 16 * i];
#pragma unroll
        for (int j = 0; j < 4; ++j) b[j] = cs[k * kPad + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const T t = a[i] - b[j];
            acc[i][j] += t * t;
          }
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) dist[(ty + 16 * i) * kPad + tx + 16 * j] = acc[i][j];
    if (threadIdx.x < kBN) {
      const bool has = r2 && col0 + threadIdx.x < n;
      const T v = has ? r2[col0 + threadIdx.x] : T(0);
      if (has && blockIdx.x == 0 && !isfinite(v)) local |= kNonFiniteInput;  // r2 checked once, by the first block
      rs[threadIdx.x] = v;
    }
    __syncthreads();
    if (owner) {
      const int jn = n - col0 < kBN ? int(n - col0) : kBN;
      const T* row = dist + threadIdx.x * kPad;
      for (int j = 0; j < jn; ++j) {
        const T v = row[j];
        if (!isfinite(v)) local |= kNonFiniteInput;
        if (kk > 0) topk_insert(best, kk, v);
        if (r2 && in_ball(v, rs[j], strict)) ++cnt;
      }
    }
  }
  if (owner) {
    if (kth) kth[row0 + threadIdx.x] = best[kk > 0 ? kk - 1 : 0];
    if (count) count[row0 + threadIdx.x] = cnt;
  }
  report(flags, local);
}

}  // namespace

DIFFREP_LAUNCHER(knn_scan) {
  DeviceGuard guard(l.device);
  const int64_t blocks = (m + kBM - 1) / kBM;
  knn_scan_kernel<T><<<unsigned(blocks), kBlockThreads, 0, as_stream(l)>>>(q, m, c, n, d, kk, strict, r2, kth, count,
                                                                      l.flags);
  check_launch("knn_scan");
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_KNN_OPS)

}  // namespace cuda
}  // namespace diffrep
