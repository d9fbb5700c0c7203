// Philox normals on the GPU, identical to random_cpu.cpp for the same (seed, offset).
#include "common/cuda_check.cuh"
#include "common/philox.h"
#include "random/random_kernels.h"

namespace diffrep {
namespace cuda {
namespace {

template <typename T>
__global__ void normal_fill_kernel(T* out, int64_t n, PhiloxKey key) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < blocks; g += int64_t(gridDim.x) * blockDim.x) {
    T v[4];
    philox_normal4<T>(key, static_cast<uint64_t>(g), v);
    const int64_t lim = n - 4 * g < 4 ? n - 4 * g : 4;
    for (int64_t l = 0; l < lim; ++l) out[4 * g + l] = v[l];
  }
}

}  // namespace

template <typename T>
void normal_fill(const Launch& l, T* out, int64_t n, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  DeviceGuard guard(l.device);
  normal_fill_kernel<T><<<grid_for((n + 3) / 4, 256), 256, 0, as_stream(l)>>>(out, n, PhiloxKey{seed, offset});
  check_launch("normal_fill");
}

template void normal_fill<float>(const Launch&, float*, int64_t, uint64_t, uint64_t);
template void normal_fill<double>(const Launch&, double*, int64_t, uint64_t, uint64_t);

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
