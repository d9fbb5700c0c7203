// The CUDA helpers every .cu file shares: device guard, error checks, grid sizing, grid-stride
// loops, the launch macro and the error-flag report.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/errors.h"
#include "common/launch.h"

namespace diffrep {
namespace cuda {

constexpr int kThreads = 256;  // threads per block of the element-wise kernels

// Sets the launch device for the scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(prev_); }
  static void check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
  }

 private:
  int prev_ = 0;
};

inline cudaStream_t as_stream(const Launch& l) { return reinterpret_cast<cudaStream_t>(l.stream); }

inline void check_launch(const char* op) { DeviceGuard::check(cudaGetLastError(), op); }

inline unsigned grid_for(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  const int64_t cap = 65535LL * 16;  // grid-stride loops cover the rest
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

__device__ __forceinline__ void report(int32_t* flags, int32_t local) {
  if (local) atomicOr(flags, local);
}

}  // namespace cuda
}  // namespace diffrep

// for (i = global thread index; i < n; i += grid size)
#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Launch `kernel` with enough kThreads-blocks for `work` items on the stream of Launch `l`
// (the caller holds the DeviceGuard), then check the launch.
#define DIFFREP_LAUNCH(kernel, work, name, ...)                                            \
  do {                                                                                     \
    kernel<<<grid_for((work), kThreads), kThreads, 0, as_stream(l)>>>(__VA_ARGS__);        \
    check_launch(name);                                                                    \
  } while (0)

// A launcher that runs one kernel: nothing to do for no work, else guard the device and launch.
#define DIFFREP_LAUNCH_ONE(kernel, work, name, ...)          \
  do {                                                      \
    if ((work) == 0) return;                                \
    DeviceGuard guard(l.device);                            \
    DIFFREP_LAUNCH(kernel, (work), name, __VA_ARGS__);      \
  } while (0)
