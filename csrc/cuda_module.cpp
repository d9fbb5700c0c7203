// diffrep._cuda: the CUDA kernels of every family. Compiled by the host compiler: the kernels
// live in the .cu files behind plain C++ launchers, so nanobind never meets nvcc.
#include <nanobind/stl/string.h>

#include "common/bind_all.h"

#ifndef DIFFREP_CUDA_ARCHS
#define DIFFREP_CUDA_ARCHS "unknown"
#endif

NB_MODULE(_cuda, m) {
  m.doc() = "diffrep native CUDA kernels. Call them through diffrep.ops, which validates inputs.";
  m.def("device_count", &diffrep::cuda::device_count);
  m.def("runtime_version", &diffrep::cuda::runtime_version);
  // CMake's CUDA_ARCHITECTURES of this target ("80,90", "90-virtual", "all"): cubins vs PTX
  m.def("architectures", [] { return std::string(DIFFREP_CUDA_ARCHS); });
  m.def("virtual_architectures", [] { return std::string(diffrep::cuda::virtual_architectures()); });
  diffrep::bind_all<diffrep::CudaArr, true>(m);
}
