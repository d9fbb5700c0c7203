// diffrep._cuda: the CUDA kernels of every family. Compiled by the host compiler: the kernels
// live in the .cu files behind plain C++ launchers, so nanobind never meets nvcc.
#include <nanobind/stl/string.h>

#include "common/bindings.h"
#include "metrics/metrics_bindings.h"
#include "guidance/guidance_bindings.h"
#include "mmd/mmd_bindings.h"
#include "hddc/hddc_bindings.h"

#ifndef DIFFREP_CUDA_ARCHS
#define DIFFREP_CUDA_ARCHS "unknown"
#endif

NB_MODULE(_cuda, m) {
  m.doc() = "diffrep native CUDA kernels. Call them through diffrep.ops, which validates inputs.";
  m.def("device_count", &diffrep::cuda::device_count);
  m.def("runtime_version", &diffrep::cuda::runtime_version);
  m.def("architectures", [] { return std::string(DIFFREP_CUDA_ARCHS); });
  diffrep::bind_bfn<diffrep::CudaArr, true>(m);
  diffrep::bind_random<diffrep::CudaArr, true>(m);
  diffrep::bind_metrics<diffrep::CudaArr, true>(m);
  diffrep::bind_mmd<diffrep::CudaArr, true>(m);
  diffrep::bind_guidance<diffrep::CudaArr, true>(m);
  diffrep::bind_hddc<diffrep::CudaArr, true>(m);
}
