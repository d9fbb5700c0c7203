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
  m.def("architectures", [] { return std::string(DIFFREP_CUDA_ARCHS); });
  diffrep::bind_all<diffrep::CudaArr, true>(m);
}
