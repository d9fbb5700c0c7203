// diffrep._cpu: the OpenMP kernels of every family.
#include "common/bind_all.h"

NB_MODULE(_cpu, m) {
  m.doc() = "diffrep native CPU kernels (OpenMP). Call them through diffrep.ops, which validates inputs.";
  diffrep::bind_all<diffrep::CpuArr, false>(m);
  diffrep::bind_bfn_addr(m);  // the BFN ops' address bindings (common/bind_ptr.h)
}
