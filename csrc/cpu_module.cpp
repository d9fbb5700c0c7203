// diffrep._cpu: the OpenMP kernels of every family.
#include "common/bindings.h"
#include "metrics/metrics_bindings.h"
#include "guidance/guidance_bindings.h"
#include "mmd/mmd_bindings.h"
#include "hddc/hddc_bindings.h"

NB_MODULE(_cpu, m) {
  m.doc() = "diffrep native CPU kernels (OpenMP). Call them through diffrep.ops, which validates inputs.";
  diffrep::bind_bfn<diffrep::CpuArr, false>(m);
  diffrep::bind_random<diffrep::CpuArr, false>(m);
  diffrep::bind_metrics<diffrep::CpuArr, false>(m);
  diffrep::bind_mmd<diffrep::CpuArr, false>(m);
  diffrep::bind_guidance<diffrep::CpuArr, false>(m);
  diffrep::bind_hddc<diffrep::CpuArr, false>(m);
}
