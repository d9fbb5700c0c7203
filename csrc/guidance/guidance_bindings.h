// The checks of the SAMI guidance-score ops (every size the kernels index; ValueError on a
// mismatch) and their bindings, generated from guidance_ops.h.
#pragma once
#include "common/bind_ops.h"
#include "guidance/guidance_ops.h"

namespace diffrep {

DIFFREP_DEFINE_ARGS(DIFFREP_GUIDANCE_OPS)

// B rows (from the per-row array), D = mu.size / B; z holds samples x B x D values.
template <class A, class Dims>
Dims guidance_dims(const A& a, const typename A::array& rowwise) {
  const int64_t B = rowwise.size(), S = a.samples;
  if (B < 1 || S < 1) throw nb::value_error("log_posterior: need B >= 1 rows and S >= 1 samples");
  if (int64_t(a.mu.size()) % B || a.mu.size() == 0) throw nb::value_error("log_posterior: mu must hold B x D values");
  const int64_t D = a.mu.size() / B;
  expect_size(a.logvar, B * D, "logvar");
  expect_size(a.z, S * B * D, "z");
  return {B, D};
}

template <class A>
log_posterior_fwd_dims check_log_posterior_fwd(const A& a, bool) {
  return guidance_dims<A, log_posterior_fwd_dims>(a, a.out);
}

template <class A>
log_posterior_bwd_dims check_log_posterior_bwd(const A& a, bool) {
  const auto d = guidance_dims<A, log_posterior_bwd_dims>(a, a.grad);
  expect_size(a.d_z, a.samples * d.B * d.D, "d_z");
  expect_size(a.d_mu, d.B * d.D, "d_mu");
  expect_size(a.d_logvar, d.B * d.D, "d_logvar");
  return d;
}

template <class A>
log_posterior_bwd2_dims check_log_posterior_bwd2(const A& a, bool) {
  const auto d = guidance_dims<A, log_posterior_bwd2_dims>(a, a.grad);
  const int64_t BD = d.B * d.D;
  expect_size_if_given(a.grad_d_z, a.samples * BD, "grad_d_z");
  expect_size_if_given(a.grad_d_mu, BD, "grad_d_mu");
  expect_size_if_given(a.grad_d_logvar, BD, "grad_d_logvar");
  expect_size(a.g_bar, d.B, "g_bar");
  expect_size(a.z_bar, a.samples * BD, "z_bar");
  expect_size(a.mu_bar, BD, "mu_bar");
  expect_size(a.logvar_bar, BD, "logvar_bar");
  return d;
}

template <typename Arr, bool kCuda>
void bind_guidance(nb::module_& m) {
  DIFFREP_BIND_OPS(DIFFREP_GUIDANCE_OPS)
}

}  // namespace diffrep
