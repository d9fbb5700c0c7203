// The checks of the HDDC ops (every size the kernels index; ValueError on a mismatch) and their
// bindings, generated from hddc_ops.h.
#pragma once
#include <algorithm>

#include "common/bind_ops.h"
#include "hddc/hddc_ops.h"

namespace diffrep {

DIFFREP_DEFINE_ARGS(DIFFREP_HDDC_OPS)

// Problem sizes from x (U, n, d), unit_of (B,) and act (B, K); on the host, unit_of against U
// (the CUDA wrapper validates unit_of before the call).
template <class A>
hddc::Dims hddc_dims(const A& a, bool host) {
  if (a.x.ndim() != 3) throw nb::value_error("hddc: x must have shape (U, n, d)");
  hddc::Dims s{int64_t(a.x.shape(0)), int64_t(a.x.shape(1)), int64_t(a.x.shape(2)), int64_t(a.unit_of.size()), 0, 0};
  if (s.U < 1 || s.n < 1 || s.d < 1 || s.B < 1) throw nb::value_error("hddc: empty problem");
  if (s.d > hddc::kMaxDim) throw nb::value_error("hddc: d must be <= 64");
  if (int64_t(a.act.size()) % s.B) throw nb::value_error("hddc: act must have shape (B, K)");
  s.K = int64_t(a.act.size()) / s.B;
  if (s.K < 1 || s.K > hddc::kMaxK) throw nb::value_error("hddc: K must be in [1, 64]");
  typed<int32_t>(a.act, "act");
  const int64_t* u = typed<int64_t>(a.unit_of, "unit_of");
  if (host)
    for (int64_t b = 0; b < s.B; ++b)
      if (u[b] < 0 || u[b] >= s.U) throw nb::value_error("hddc: unit_of out of range");
  return s;
}

template <class A>
hddc_estep_dims check_hddc_estep(const A& a, bool host) {
  hddc::Dims s = hddc_dims(a, host);
  const int64_t BK = s.B * s.K;
  if (a.qt.size() % (BK * s.d)) throw nb::value_error("hddc_estep: qt must have shape (B, K, D, d)");
  s.D = int64_t(a.qt.size()) / (BK * s.d);
  if (s.D > s.d) throw nb::value_error("hddc_estep: qt has more than d rows per component");
  expect_size(a.w, s.B * s.n, "w");
  expect_size(a.mu, BK * s.d, "mu");
  expect_size(a.ia, BK * s.D, "ia");
  expect_size(a.dk, BK, "dk");
  expect_size(a.tri, BK, "tri");
  expect_size(a.ib, BK, "ib");
  expect_size(a.cst, BK, "cst");
  expect_size(a.thr, s.B, "thr");
  expect_size(a.resp, s.B * s.n * s.K, "resp");
  expect_size(a.llp, s.B * s.n, "llp");
  expect_size(a.L, s.B, "L");
  expect_size(a.cnt, BK, "cnt");
  const int32_t* dk = typed<int32_t>(a.dk, "dk");
  if (host)
    for (int64_t i = 0; i < BK; ++i)
      if (dk[i] < 0 || dk[i] > s.D) throw nb::value_error("hddc_estep: dk must be in [0, D]");
  return {s};
}

template <class A>
hddc_stats_dims check_hddc_stats(const A& a, bool host) {
  const hddc::Dims s = hddc_dims(a, host);
  if (a.mode != hddc::kSoft && a.mode != hddc::kMember) throw nb::value_error("hddc_stats: mode must be 0 or 1");
  const bool soft = a.mode == hddc::kSoft;
  const int64_t BK = s.B * s.K, nblk = hddc::num_blocks(s.n);
  expect_size(a.w, s.B * s.n, "w");
  expect_size(a.resp, s.B * s.n * s.K, "resp");
  const int64_t width = s.K * (soft ? std::max<int64_t>(s.d * s.d, s.d + 1) : s.d + 1);
  expect_size(a.part, s.B * nblk * width, "part");
  expect_size(a.mass, BK, "mass");
  expect_size(a.mean, BK * s.d, "mean");
  expect_size(a.second, soft ? BK * s.d * s.d : BK, soft ? "W" : "density");
  return {s};
}

template <typename Arr, bool kCuda>
void bind_hddc(nb::module_& m) {
  DIFFREP_BIND_OPS(DIFFREP_HDDC_OPS)
}

}  // namespace diffrep
