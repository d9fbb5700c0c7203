// The launch context every kernel launcher takes. Plain C++ (no nanobind, no CUDA headers), so
// the bindings, the CPU kernels and the .cu files all include it.
#pragma once
#include <cstdint>

namespace diffrep {

struct Launch {
  int device;        // CUDA device index of the tensors (-1 on the CPU)
  uintptr_t stream;  // torch.cuda.current_stream(device).cuda_stream (0 on the CPU)
  int32_t* flags;    // word the kernels OR their error flags into (device memory for CUDA)
};

namespace cuda {
int device_count();
int runtime_version();
// nvcc's __CUDA_ARCH_LIST__ as text ("800,900"): the virtual architectures compiled (archs_cuda.cu)
const char* virtual_architectures();
}  // namespace cuda

}  // namespace diffrep
