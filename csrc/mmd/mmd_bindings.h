// nanobind binding of the fused MMD launcher, one template for both modules (Arr = CpuArr or
// CudaArr; kCuda picks diffrep::cpu or diffrep::cuda). Arrays are .noconvert(); every size the
// kernels index is checked here, so a wrong size raises ValueError instead of reading out of bounds.
#pragma once
#include <nanobind/stl/vector.h>

#include <vector>

#include "common/bindings.h"
#include "mmd/mmd_kernels.h"

namespace diffrep {

template <typename T>
mmd::KernelSpec<T> mmd_kernel_spec(int32_t kind, const std::vector<double>& scales,
                                   const std::vector<double>& weights) {
  if (kind != mmd::kRbf && kind != mmd::kImq) throw nb::value_error("mmd2: kind must be 0 (rbf) or 1 (imq)");
  if (scales.empty() || scales.size() > size_t(mmd::kMaxScales) || weights.size() != scales.size())
    throw nb::value_error("mmd2: need 1..16 scales and one weight per scale");
  mmd::KernelSpec<T> ks{};
  ks.kind = kind;
  ks.n_scales = int32_t(scales.size());
  for (size_t i = 0; i < scales.size(); ++i) {
    if (!(scales[i] > 0)) throw nb::value_error("mmd2: every scale must be > 0");
    ks.s[i] = T(kind == mmd::kRbf ? 1.0 / scales[i] : scales[i]);
    ks.w[i] = T(weights[i]);
    ks.wk[i] = T(weights[i] / scales[i]);
  }
  return ks;
}

template <typename Arr, bool kCuda>
void bind_mmd(nb::module_& m) {
  using nb::arg;
  m.def(
      "mmd2",
      [](Arr x, Arr y, int64_t d, int32_t kind, std::vector<double> scales, std::vector<double> weights,
         bool unbiased, bool want_grad, Arr rows, Arr loss, Arr gx, Arr gy, Arr flags, int device,
         uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        if (d < 1 || d > 64) throw nb::value_error("mmd2: d must be in [1, 64]");
        if (x.size() % d || y.size() % d) throw nb::value_error("mmd2: x and y must hold rows of d values");
        const int64_t n = x.size() / d, mm = y.size() / d;
        if (n < 1 || mm < 1) throw nb::value_error("mmd2: x and y need at least one row");
        if (unbiased && (n < 2 || mm < 2)) throw nb::value_error("mmd2: the unbiased estimator needs >= 2 rows");
        expect_size(rows, 2 * (n + mm), "rows");
        typed<double>(rows, "rows");
        expect_size(loss, 1, "loss");
        if (want_grad) {
          expect_size(gx, n * d, "gx");
          expect_size(gy, mm * d, "gy");
        }
        float_dispatch(x, [&](auto z) {
          using T = decltype(z);
          const mmd::KernelSpec<T> ks = mmd_kernel_spec<T>(kind, scales, weights);
          T* gxp = want_grad ? typed<T>(gx, "gx") : nullptr;
          T* gyp = want_grad ? typed<T>(gy, "gy") : nullptr;
          nb::gil_scoped_release release;
          DIFFREP_CALL(mmd2, l, typed<T>(x, "x"), n, typed<T>(y, "y"), mm, d, ks, unbiased, want_grad,
                       typed<double>(rows, "rows"), typed<T>(loss, "loss"), gxp, gyp);
        });
      },
      arg("x").noconvert(), arg("y").noconvert(), arg("d"), arg("kind"), arg("scales"), arg("weights"),
      arg("unbiased"), arg("want_grad"), arg("rows").noconvert(), arg("loss").noconvert(), arg("gx").noconvert(),
      arg("gy").noconvert(), DIFFREP_LAUNCH_ARGS);
}

}  // namespace diffrep
