// The declaration table of the fused MMD family (common/ops_table.h). Launchers: diffrep::cpu
// (mmd_cpu.cpp, OpenMP) and diffrep::cuda (mmd_cuda.cu); checks and bindings: mmd_bindings.h.
//
// mmd2: x (n, d), y (m, d) row-major; kind 0 (RBF) or 1 (IMQ) with bandwidths `scales` and their
// `weights` (mmd::kernel_spec); rows (n + m, 2) float64 scratch (per-row same-set and cross kernel
// sums, x rows first); loss (1,); when want_grad, gx (n, d) and gy (m, d) receive dMMD^2/dx and
// dMMD^2/dy (else None). Non-finite inputs set kNonFiniteInput in l.flags.
#pragma once
#include <vector>

#include "common/ops_table.h"

#define DIFFREP_MMD_OPS(X, X64) X(mmd2, x)

#define DIFFREP_ARGS_mmd2(ARG, T)                                                                    \
  ARG(CHECK, mmd_check_kernel(kind, scales, weights)) ARG(DIM, int64_t, n, mmd_rows(x, d, unbiased))   \
  ARG(DIM, int64_t, m, mmd_rows(y, d, unbiased)) ARG(IN, T, x, n * d) ARG(IN, T, y, m * d)            \
  ARG(VAL, int64_t, d) ARG(VAL, int32_t, kind) ARG(VAL, std::vector<double>, scales)                   \
  ARG(VAL, std::vector<double>, weights) ARG(VAL, bool, unbiased) ARG(VAL, bool, want_grad)            \
  ARG(OUT, double, rows, 2 * (n + m)) ARG(OUT, T, loss, 1) ARG(CHECK, expect_given(gx, want_grad, "gx")) \
  ARG(CHECK, expect_given(gy, want_grad, "gy")) ARG(OPT_OUT, T, gx, want_grad ? n * d : kAny)          \
  ARG(OPT_OUT, T, gy, want_grad ? m * d : kAny)

DIFFREP_DECLARE_OPS(DIFFREP_MMD_OPS)
