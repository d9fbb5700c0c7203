// The binding of the fused MMD op, generated from its table (mmd_ops.h), and its checks.
#pragma once
#include <nanobind/stl/vector.h>

#include "common/bind_ops.h"
#include "mmd/mmd_math.h"
#include "mmd/mmd_ops.h"

namespace diffrep {

inline void mmd_check_kernel(int32_t kind, const std::vector<double>& scales, const std::vector<double>& weights) {
  expect(kind == mmd::kRbf || kind == mmd::kImq, "mmd2: kind must be 0 (rbf) or 1 (imq)");
  expect(!scales.empty() && scales.size() <= size_t(mmd::kMaxScales) && weights.size() == scales.size(),
         "mmd2: need 1..16 scales and one weight per scale");
  for (double s : scales) expect(s > 0, "mmd2: every scale must be > 0");
}

// The rows of d values in a (>= 1; >= 2 for the unbiased estimator).
template <typename A>
int64_t mmd_rows(const A& a, int64_t d, bool unbiased) {
  expect(d >= 1 && d <= 64, "mmd2: d must be in [1, 64]");
  expect(int64_t(a.size()) % d == 0, "mmd2: x and y must hold rows of d values");
  const int64_t rows = int64_t(a.size()) / d;
  expect(rows >= 1, "mmd2: x and y need at least one row");
  expect(!unbiased || rows >= 2, "mmd2: the unbiased estimator needs >= 2 rows");
  return rows;
}

DIFFREP_DEFINE_BINDINGS(bind_mmd, DIFFREP_MMD_OPS)

}  // namespace diffrep
