// Launchers of the fused MMD family, declared once for both backends: diffrep::cpu (mmd_cpu.cpp,
// OpenMP) and diffrep::cuda (mmd_cuda.cu). Same signatures, so one binding template serves both.
//
// mmd2: x (n, d), y (m, d) row-major; rows (n + m, 2) float64 scratch (per-row same-set and
// cross kernel sums, x rows first); loss (1,); when want_grad, gx (n, d) and gy (m, d) receive
// dMMD^2/dx and dMMD^2/dy. Non-finite inputs set mmd::kNonFiniteInput in l.flags.
#pragma once
#include <cstdint>

#include "common/launch.h"
#include "mmd/mmd_math.h"

#define DIFFREP_MMD_LAUNCHERS                                                                                   \
  template <typename T>                                                                                         \
  void mmd2(const Launch& l, const T* x, int64_t n, const T* y, int64_t m, int64_t d,                          \
            const mmd::KernelSpec<T>& ks, bool unbiased, bool want_grad, double* rows, T* loss, T* gx, T* gy);

namespace diffrep {
namespace cpu {
DIFFREP_MMD_LAUNCHERS
}  // namespace cpu
namespace cuda {
DIFFREP_MMD_LAUNCHERS
}  // namespace cuda
}  // namespace diffrep
