// Every family's bindings, for both modules: Arr is CpuArr or CudaArr.
#pragma once
#include "bfn/bfn_bindings.h"
#include "guidance/guidance_bindings.h"
#include "hddc/hddc_bindings.h"
#include "knn/knn_bindings.h"
#include "metrics/metrics_bindings.h"
#include "mmd/mmd_bindings.h"
#include "random/random_bindings.h"

namespace diffrep {

template <typename Arr, bool kCuda>
void bind_all(nb::module_& m) {
  bind_bfn<Arr, kCuda>(m);
  bind_random<Arr, kCuda>(m);
  bind_metrics<Arr, kCuda>(m);
  bind_mmd<Arr, kCuda>(m);
  bind_guidance<Arr, kCuda>(m);
  bind_hddc<Arr, kCuda>(m);
  bind_knn<Arr, kCuda>(m);
}

}  // namespace diffrep
