// Philox normals on the GPU, identical to random_cpu.cpp for the same (seed, offset).
#include "common/cuda_helpers.cuh"
#include "common/philox.h"
#include "random/random_ops.h"

namespace diffrep {
namespace cuda {
namespace {

template <typename T>
__global__ void normal_fill_kernel(T* out, int64_t n, PhiloxKey key) {
  GRID_STRIDE(g, (n + 3) / 4) {
    T v[4];
    philox_normal4<T>(key, static_cast<uint64_t>(g), v);
    const int64_t lim = n - 4 * g < 4 ? n - 4 * g : 4;
    for (int64_t l = 0; l < lim; ++l) out[4 * g + l] = v[l];
  }
}

}  // namespace

DIFFREP_LAUNCHER(normal_fill) {
  DIFFREP_LAUNCH_ONE(normal_fill_kernel<T>, (n + 3) / 4, "normal_fill", out, n, PhiloxKey{seed, offset});
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_RANDOM_OPS)

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error from a missing driver
    return 0;
  }
  return n;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

}  // namespace cuda
}  // namespace diffrep
