// The check of the fused MMD op (every size the kernels index; ValueError on a mismatch) and its
// binding, generated from mmd_ops.h.
#pragma once
#include <nanobind/stl/vector.h>

#include "common/bind_ops.h"
#include "mmd/mmd_math.h"
#include "mmd/mmd_ops.h"

namespace diffrep {

DIFFREP_DEFINE_ARGS(DIFFREP_MMD_OPS)

template <class A>
mmd2_dims check_mmd2(const A& a, bool) {
  if (a.kind != mmd::kRbf && a.kind != mmd::kImq) throw nb::value_error("mmd2: kind must be 0 (rbf) or 1 (imq)");
  if (a.scales.empty() || a.scales.size() > size_t(mmd::kMaxScales) || a.weights.size() != a.scales.size())
    throw nb::value_error("mmd2: need 1..16 scales and one weight per scale");
  for (double s : a.scales)
    if (!(s > 0)) throw nb::value_error("mmd2: every scale must be > 0");
  const int64_t d = a.d;
  if (d < 1 || d > 64) throw nb::value_error("mmd2: d must be in [1, 64]");
  if (a.x.size() % d || a.y.size() % d) throw nb::value_error("mmd2: x and y must hold rows of d values");
  const int64_t n = a.x.size() / d, m = a.y.size() / d;
  if (n < 1 || m < 1) throw nb::value_error("mmd2: x and y need at least one row");
  if (a.unbiased && (n < 2 || m < 2)) throw nb::value_error("mmd2: the unbiased estimator needs >= 2 rows");
  expect_size(a.rows, 2 * (n + m), "rows");
  expect_size(a.loss, 1, "loss");
  if (a.want_grad) {
    if (!a.gx.is_valid() || !a.gy.is_valid()) throw nb::value_error("mmd2: want_grad needs gx and gy");
    expect_size(a.gx, n * d, "gx");
    expect_size(a.gy, m * d, "gy");
  }
  return {n, m};
}

template <typename Arr, bool kCuda>
void bind_mmd(nb::module_& m) {
  DIFFREP_BIND_OPS(DIFFREP_MMD_OPS)
}

}  // namespace diffrep
