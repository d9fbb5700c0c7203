// Device guard and error checking shared by the .cu files.
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/launch.h"

namespace diffrep {
namespace cuda {

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
