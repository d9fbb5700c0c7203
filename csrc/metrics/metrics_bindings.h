// The checks of the metric ops and their bindings, generated from metrics_ops.h. Every size a
// kernel indexes with is checked here (ValueError), and index values are range-checked by the
// kernels (error flag), so no input can make them read or write out of bounds.
#pragma once
#include "common/bind_ops.h"
#include "metrics/metrics_ops.h"

namespace diffrep {

DIFFREP_DEFINE_ARGS(DIFFREP_METRICS_OPS)

template <class A>
auroc_matrix_dims check_auroc_matrix(const A& a, bool host) {
  expect_positive(a.U, "U");
  expect_positive(a.A, "A");
  expect_positive(a.n, "n");
  if (a.n >= (int64_t(1) << 30)) throw nb::value_error("auroc_matrix: n must be < 2^30 (int32 doubled ranks)");
  expect_size(a.scores, a.U * a.n, "scores");
  // The CPU kernel sorts each row itself when order is None; CUDA needs torch's argsort.
  if (!host && !a.order.is_valid()) throw nb::value_error("auroc_matrix: order is required on CUDA");
  expect_size_if_given(a.order, a.U * a.n, "order");
  expect_size(a.labels, a.A * a.n, "labels");
  expect_size(a.npos, a.A, "npos");
  expect_size(a.r2, a.U * a.n, "r2");
  expect_size(a.auc, a.A * a.U, "auc");
  return {};
}

template <class A>
hist_discretize_dims check_hist_discretize(const A& a, bool) {
  expect_positive(a.n, "n");
  expect_positive(a.J, "J");
  expect_positive(a.B, "num_bins");
  expect_size(a.codes, a.n * a.J, "codes");
  expect_size(a.lohi, 2 * a.J, "lohi");
  expect_size(a.labels, a.n * a.J, "labels");
  if (a.lohi.dtype() != a.codes.dtype()) throw nb::type_error("lohi: must have the dtype of codes");
  return {};
}

template <class A>
mi_matrix_dims check_mi_matrix(const A& a, bool) {
  expect_positive(a.n, "n");
  expect_positive(a.J, "J");
  expect_positive(a.F, "F");
  expect_positive(a.B, "B");
  expect_positive(a.V, "V");
  expect_size(a.labels, a.n * a.J, "labels");
  expect_size(a.factors, a.n * a.F, "factors");
  expect_size(a.scratch, metrics::mi_scratch_size(a.J, a.F, a.B, a.V), "scratch");
  expect_size(a.mi, a.J * a.F, "mi");
  expect_size(a.h, a.F, "h");
  return {};
}

template <class A>
knn_mi_cd_dims check_knn_mi_cd(const A& a, bool) {
  expect_positive(a.J, "J");
  expect_positive(a.F, "F");
  expect_positive(a.n, "n");
  expect_positive(a.V, "V");
  expect_positive(a.k, "k");
  expect_size(a.sx, a.J * a.n, "sx");
  expect_size(a.vorder, a.J * a.n, "vorder");
  expect_size(a.labels, a.F * a.n, "labels");
  expect_size(a.dscratch, metrics::knn_dscratch_size(a.J, a.n), "dscratch");
  expect_size(a.iscratch, metrics::knn_iscratch_size(a.J, a.F, a.n, a.V), "iscratch");
  expect_size(a.mi, a.J * a.F, "mi");
  return {};
}

template <class A>
factor_vae_votes_dims check_factor_vae_votes(const A& a, bool) {
  expect_positive(a.nt, "nt");
  expect_positive(a.d, "d");
  expect_positive(a.F, "F");
  if (a.B < 2) throw nb::value_error("B must be >= 2 (ddof=1 variances)");
  const int64_t na = a.active.size();
  expect_positive(na, "active.size");
  expect_size(a.batches, a.nt * a.B * a.d, "batches");
  expect_size(a.factor_index, a.nt, "factor_index");
  expect_size(a.global_var, a.d, "global_var");
  expect_size(a.votes, a.F * a.d, "votes");
  expect_size(a.arg, a.nt, "arg");
  return {na};
}

template <typename Arr, bool kCuda>
void bind_metrics(nb::module_& m) {
  DIFFREP_BIND_OPS(DIFFREP_METRICS_OPS)
}

}  // namespace diffrep
