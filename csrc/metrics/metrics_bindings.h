// nanobind bindings of the metric launchers, one template for both modules (modelled on
// common/bindings.h): Arr is CpuArr or CudaArr and kCuda picks diffrep::cpu or diffrep::cuda.
// Every array is .noconvert(); every size a kernel indexes with is checked here (ValueError), and
// index values are range-checked by the kernels (error flag), so no input can make them read or
// write out of bounds.
#pragma once
#include <string>

#include "common/nb_arrays.h"
#include "metrics/metrics_kernels.h"

namespace diffrep {

#define DIFFREP_METRICS_CALL(fn, ...) \
  do {                                \
    if constexpr (kCuda)              \
      cuda::fn(__VA_ARGS__);          \
    else                              \
      cpu::fn(__VA_ARGS__);           \
  } while (0)

namespace metrics_binding {
inline void expect_positive(int64_t v, const char* name) {
  if (v < 1) throw nb::value_error((std::string(name) + " must be >= 1").c_str());
}
}  // namespace metrics_binding

template <typename Arr, bool kCuda>
void bind_metrics(nb::module_& m) {
  using nb::arg;
  using metrics_binding::expect_positive;
  auto gil = nb::call_guard<nb::gil_scoped_release>();

  m.def(
      "auroc_matrix",
      [](Arr scores, Arr order, Arr labels, Arr npos, int64_t U, int64_t A, int64_t n, Arr r2, Arr auc, Arr flags,
         int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_positive(U, "U");
        expect_positive(A, "A");
        expect_positive(n, "n");
        if (n >= (int64_t(1) << 30)) throw nb::value_error("auroc_matrix: n must be < 2^30 (int32 doubled ranks)");
        expect_size(scores, U * n, "scores");
        // The CPU kernel sorts each row itself when order is empty; CUDA needs torch's argsort.
        const bool has_order = kCuda || order.size() != 0;
        if (has_order) expect_size(order, U * n, "order");
        expect_size(labels, A * n, "labels");
        expect_size(npos, A, "npos");
        expect_size(r2, U * n, "r2");
        expect_size(auc, A * U, "auc");
        float_dispatch(scores, [&](auto z) {
          using T = decltype(z);
          DIFFREP_METRICS_CALL(auroc_matrix<T>, l, typed<T>(scores, "scores"),
                               has_order ? typed<int64_t>(order, "order") : nullptr,
                               typed<uint8_t>(labels, "labels"), typed<int64_t>(npos, "npos"), U, A, n,
                               typed<int32_t>(r2, "r2"), typed<double>(auc, "auc"));
        });
      },
      arg("scores").noconvert(), arg("order").noconvert(), arg("labels").noconvert(), arg("npos").noconvert(),
      arg("U"), arg("A"), arg("n"), arg("r2").noconvert(), arg("auc").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "hist_discretize",
      [](Arr codes, int64_t n, int64_t J, int64_t B, Arr lohi, Arr labels, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_positive(n, "n");
        expect_positive(J, "J");
        expect_positive(B, "num_bins");
        expect_size(codes, n * J, "codes");
        expect_size(lohi, 2 * J, "lohi");
        expect_size(labels, n * J, "labels");
        if (lohi.dtype() != codes.dtype()) throw nb::type_error("lohi: must have the dtype of codes");
        float_dispatch(codes, [&](auto z) {
          using T = decltype(z);
          DIFFREP_METRICS_CALL(hist_discretize<T>, l, typed<T>(codes, "codes"), n, J, B, typed<T>(lohi, "lohi"),
                               typed<int64_t>(labels, "labels"));
        });
      },
      arg("codes").noconvert(), arg("n"), arg("J"), arg("num_bins"), arg("lohi").noconvert(),
      arg("labels").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "mi_matrix",
      [](Arr labels, Arr factors, int64_t n, int64_t J, int64_t F, int64_t B, int64_t V, Arr scratch, Arr mi, Arr h,
         Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_positive(n, "n");
        expect_positive(J, "J");
        expect_positive(F, "F");
        expect_positive(B, "B");
        expect_positive(V, "V");
        expect_size(labels, n * J, "labels");
        expect_size(factors, n * F, "factors");
        expect_size(scratch, metrics::mi_scratch_size(J, F, B, V), "scratch");
        expect_size(mi, J * F, "mi");
        expect_size(h, F, "h");
        DIFFREP_METRICS_CALL(mi_matrix, l, typed<int64_t>(labels, "labels"), typed<int64_t>(factors, "factors"), n, J,
                             F, B, V, typed<int64_t>(scratch, "scratch"), typed<double>(mi, "mi"),
                             typed<double>(h, "h"));
      },
      arg("labels").noconvert(), arg("factors").noconvert(), arg("n"), arg("J"), arg("F"), arg("B"), arg("V"),
      arg("scratch").noconvert(), arg("mi").noconvert(), arg("h").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "knn_mi_cd",
      [](Arr sx, Arr vorder, Arr labels, int64_t J, int64_t F, int64_t n, int64_t V, int64_t k, Arr dscratch,
         Arr iscratch, Arr mi, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_positive(J, "J");
        expect_positive(F, "F");
        expect_positive(n, "n");
        expect_positive(V, "V");
        expect_positive(k, "k");
        expect_size(sx, J * n, "sx");
        expect_size(vorder, J * n, "vorder");
        expect_size(labels, F * n, "labels");
        expect_size(dscratch, metrics::knn_dscratch_size(J, n), "dscratch");
        expect_size(iscratch, metrics::knn_iscratch_size(J, F, n, V), "iscratch");
        expect_size(mi, J * F, "mi");
        DIFFREP_METRICS_CALL(knn_mi_cd, l, typed<double>(sx, "sx"), typed<int64_t>(vorder, "vorder"),
                             typed<int64_t>(labels, "labels"), J, F, n, V, k, typed<double>(dscratch, "dscratch"),
                             typed<int64_t>(iscratch, "iscratch"), typed<double>(mi, "mi"));
      },
      arg("sx").noconvert(), arg("vorder").noconvert(), arg("labels").noconvert(), arg("J"), arg("F"), arg("n"),
      arg("V"), arg("k"), arg("dscratch").noconvert(), arg("iscratch").noconvert(), arg("mi").noconvert(),
      DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "factor_vae_votes",
      [](Arr batches, Arr factor_index, Arr global_var, Arr active, int64_t nt, int64_t B, int64_t d, int64_t F,
         bool compressed, Arr votes, Arr arg_out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_positive(nt, "T");
        expect_positive(d, "d");
        expect_positive(F, "num_factors");
        if (B < 2) throw nb::value_error("B must be >= 2 (ddof=1 variances)");
        expect_positive(int64_t(active.size()), "active.size");
        expect_size(batches, nt * B * d, "batches");
        expect_size(factor_index, nt, "factor_index");
        expect_size(global_var, d, "global_var");
        expect_size(votes, F * d, "votes");
        expect_size(arg_out, nt, "arg");
        float_dispatch(batches, [&](auto z) {
          using T = decltype(z);
          DIFFREP_METRICS_CALL(factor_vae_votes<T>, l, typed<T>(batches, "batches"),
                               typed<int64_t>(factor_index, "factor_index"), typed<double>(global_var, "global_var"),
                               typed<int64_t>(active, "active"), int64_t(active.size()), nt, B, d, F, compressed,
                               typed<int64_t>(votes, "votes"), typed<int64_t>(arg_out, "arg"));
        });
      },
      arg("batches").noconvert(), arg("factor_index").noconvert(), arg("global_var").noconvert(),
      arg("active").noconvert(), arg("T"), arg("B"), arg("d"), arg("num_factors"), arg("compressed"),
      arg("votes").noconvert(), arg("arg").noconvert(), DIFFREP_LAUNCH_ARGS, gil);
}

#undef DIFFREP_METRICS_CALL

}  // namespace diffrep
