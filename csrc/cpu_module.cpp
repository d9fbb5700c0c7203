// diffrep._cpu: the OpenMP kernels of every family.
#include "common/bind_all.h"
#include "common/isa.h"

NB_MODULE(_cpu, m) {
  m.doc() = "diffrep native CPU kernels (OpenMP). Call them through diffrep.ops, which validates inputs.";
  diffrep::bind_all<diffrep::CpuArr, false>(m);
  diffrep::bind_bfn_addr(m);  // the BFN ops' address bindings (common/bind_ptr.h)
  m.def("cpu_isa_level", &diffrep::cpu_isa_level,
        "The x86-64 level the CPU kernels dispatch to (4 AVX-512, 3 AVX2, 1 baseline), DIFFREP_CPU_ISA applied.");
}
