// The checks of the BFN ops (every size the launchers index; ValueError on a mismatch) and their
// bindings, generated from bfn_ops.h. Both modules: Arr is CpuArr or CudaArr.
#pragma once
#include "bfn/bfn_ops.h"
#include "common/bind_ops.h"

namespace diffrep {

DIFFREP_DEFINE_ARGS(DIFFREP_BFN_OPS)

template <class A>
cts_flow_dims check_cts_flow(const A& a, bool) {
  const int64_t n = a.x.size();
  expect_rows(a.t, a.t_per_row, a.row_len, n, "t");
  expect_size(a.out, n, "out");
  expect_size_if_given(a.noise, n, "noise");
  return {n};
}

template <class A>
disc_flow_dims check_disc_flow(const A& a, bool) {
  const int64_t n = a.x.size();
  expect_classes(a.K);
  expect_rows(a.t, a.t_per_row, a.row_len, n, "t");
  expect_size_if_given(a.noise, n * a.K, "noise");
  expect_size(a.out, n * a.K, "out");
  return {n};
}

template <class A>
void expect_update_sizes(const A& a, int64_t n) {
  expect_rows(a.rho, a.rho_per_row, a.row_len, n, "rho");
  expect_rows(a.alpha, a.alpha_per_row, a.row_len, n, "alpha");
  expect_size(a.out, n, "out");
}

template <class A>
cts_update_dims check_cts_update(const A& a, bool) {
  const int64_t n = a.mu.size();
  expect_update_sizes(a, n);
  expect_size(a.y, n, "y");
  return {n};
}

template <class A>
cts_sender_update_dims check_cts_sender_update(const A& a, bool) {
  const int64_t n = a.mu.size();
  expect_update_sizes(a, n);
  expect_size(a.x, n, "x");
  expect_size(a.out_y, n, "out_y");
  expect_size_if_given(a.noise, n, "noise");
  return {n};
}

template <class A>
disc_update_dims check_disc_update(const A& a, bool) {
  expect_classes(a.K);
  if (int64_t(a.theta.size()) % a.K) throw nb::value_error("disc_update: theta.size must be a multiple of K");
  expect_size(a.y, a.theta.size(), "y");
  expect_size(a.out, a.theta.size(), "out");
  return {int64_t(a.theta.size()) / a.K};
}

template <class A>
disc_sender_update_dims check_disc_sender_update(const A& a, bool) {
  expect_classes(a.K);
  const int64_t n = a.x.size();
  expect_rows(a.alpha, a.alpha_per_row, a.row_len, n, "alpha");
  expect_size(a.theta, n * a.K, "theta");
  expect_size(a.out, n * a.K, "out");
  expect_size(a.out_y, n * a.K, "out_y");
  expect_size_if_given(a.noise, n * a.K, "noise");
  return {n};
}

template <class A>
disc_probs_dims check_disc_probs(const A& a, bool) {
  const int64_t n = a.mu_x.size();
  expect_classes(a.K);
  expect_size(a.sigma_x, n, "sigma_x");
  expect_size(a.out, n * a.K, "out");
  return {n};
}

template <class A>
disc_probs_backward_dims check_disc_probs_backward(const A& a, bool) {
  const int64_t n = a.mu_x.size();
  expect_classes(a.K);
  expect_size(a.sigma_x, n, "sigma_x");
  expect_size(a.grad, n * a.K, "grad");
  expect_size(a.d_mu, n, "d_mu");
  expect_size(a.d_sigma, n, "d_sigma");
  return {n};
}

template <class A>
disc_cts_loss_dims check_disc_cts_loss(const A& a, bool) {
  const int64_t n = a.out_mean.size();
  expect_classes(a.K);
  expect_rows(a.t, a.t_per_row, a.row_len, n, "t");
  expect_size(a.out_log_sigma, n, "out_log_sigma");
  expect_size(a.mu, n, "mu");
  expect_size(a.x, n, "x");
  expect_size(a.loss, n, "loss");
  if (a.want_grad) {
    expect_size(a.d_mean, n, "d_mean");
    expect_size(a.d_log_sigma, n, "d_log_sigma");
  }
  return {n};
}

template <class A>
discrete_cts_loss_dims check_discrete_cts_loss(const A& a, bool) {
  expect_classes(a.K);
  const int64_t n = a.x.size();
  expect_rows(a.t, a.t_per_row, a.row_len, n, "t");
  expect_size(a.logits, n * a.K, "logits");
  expect_size(a.loss, n, "loss");
  if (a.want_grad) expect_size(a.d_logits, n * a.K, "d_logits");
  return {n};
}

template <typename Arr, bool kCuda>
void bind_bfn(nb::module_& m) {
  DIFFREP_BIND_OPS(DIFFREP_BFN_OPS)
}

}  // namespace diffrep
