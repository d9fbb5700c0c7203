// The bindings of the HDDC ops, generated from their table (hddc_ops.h), and the checks that
// derive the batch sizes.
#pragma once
#include "common/bind_ops.h"
#include "hddc/hddc_ops.h"

namespace diffrep {

// Problem sizes from x (U, n, d), unit_of (B,) and act (B, K); on the host, unit_of against U
// (device memory cannot be read here: hddc.Engine, python/diffrep/ops/hddc.py, checks unit_of
// before every call).
template <typename A>
hddc::Dims hddc_dims(A& x, A& unit_of, A& act, bool host) {
  expect(x.ndim() == 3, "hddc: x must have shape (U, n, d)");
  hddc::Dims s{int64_t(x.shape(0)), int64_t(x.shape(1)), int64_t(x.shape(2)), int64_t(unit_of.size()), 0, 0};
  expect(s.U >= 1 && s.n >= 1 && s.d >= 1 && s.B >= 1, "hddc: empty problem");
  expect(s.d <= hddc::kMaxDim, "hddc: d must be <= 64");
  expect(int64_t(act.size()) % s.B == 0, "hddc: act must have shape (B, K)");
  s.K = int64_t(act.size()) / s.B;
  expect(s.K >= 1 && s.K <= hddc::kMaxK, "hddc: K must be in [1, 64]");
  typed<int32_t>(act, "act");
  const int64_t* u = typed<int64_t>(unit_of, "unit_of");
  if (host)
    for (int64_t b = 0; b < s.B; ++b) expect(u[b] >= 0 && u[b] < s.U, "hddc: unit_of out of range");
  return s;
}

// As hddc_dims, with D = the rows of qt (B, K, D, d) per component; on the host, dk in [0, D].
template <typename A>
hddc::Dims hddc_estep_dims(A& x, A& unit_of, A& act, A& qt, A& dk, bool host) {
  hddc::Dims s = hddc_dims(x, unit_of, act, host);
  const int64_t BK = s.B * s.K;
  expect(int64_t(qt.size()) % (BK * s.d) == 0, "hddc_estep: qt must have shape (B, K, D, d)");
  s.D = int64_t(qt.size()) / (BK * s.d);
  expect(s.D <= s.d, "hddc_estep: qt has more than d rows per component");
  expect_size(dk, BK, "dk");
  const int32_t* dkp = typed<int32_t>(dk, "dk");
  if (host)
    for (int64_t i = 0; i < BK; ++i) expect(dkp[i] >= 0 && dkp[i] <= s.D, "hddc_estep: dk must be in [0, D]");
  return s;
}

DIFFREP_DEFINE_BINDINGS(bind_hddc, DIFFREP_HDDC_OPS)

}  // namespace diffrep
