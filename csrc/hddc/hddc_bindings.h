// nanobind bindings of the HDDC launchers, one template for both modules (Arr = CpuArr or
// CudaArr; kCuda picks diffrep::cpu or diffrep::cuda). Every array is .noconvert(); the sizes
// the kernels index are checked here, so a wrong size raises ValueError, not a bad read.
#pragma once
#include <string>

#include "common/bindings.h"
#include "hddc/hddc_kernels.h"

namespace diffrep {

// Problem sizes from x (U, n, d), unit_of (B,) and act (B, K); checks unit_of against U.
template <typename Arr>
hddc::Dims hddc_dims(const Arr& x, const Arr& unit_of, const Arr& act, bool check_units) {
  if (x.ndim() != 3) throw nb::value_error("hddc: x must have shape (U, n, d)");
  hddc::Dims s{int64_t(x.shape(0)), int64_t(x.shape(1)), int64_t(x.shape(2)), int64_t(unit_of.size()), 0, 0};
  if (s.U < 1 || s.n < 1 || s.d < 1 || s.B < 1) throw nb::value_error("hddc: empty problem");
  if (s.d > hddc::kMaxDim) throw nb::value_error("hddc: d must be <= 64");
  if (act.size() % s.B) throw nb::value_error("hddc: act must have shape (B, K)");
  s.K = int64_t(act.size()) / s.B;
  if (s.K < 1 || s.K > hddc::kMaxK) throw nb::value_error("hddc: K must be in [1, 64]");
  typed<int32_t>(act, "act");
  const int64_t* u = typed<int64_t>(unit_of, "unit_of");
  if (check_units)  // host memory only; the CUDA wrapper validates unit_of before the call
    for (int64_t b = 0; b < s.B; ++b)
      if (u[b] < 0 || u[b] >= s.U) throw nb::value_error("hddc: unit_of out of range");
  return s;
}

template <typename Arr, bool kCuda>
void bind_hddc(nb::module_& m) {
  using nb::arg;
  m.def(
      "hddc_estep",
      [](Arr x, Arr unit_of, Arr w, Arr mu, Arr qt, Arr ia, Arr dk, Arr tri, Arr ib, Arr cst, Arr act, Arr thr,
         bool skip_zero, Arr resp, Arr llp, Arr L, Arr cnt, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        hddc::Dims s = hddc_dims(x, unit_of, act, !kCuda);
        const int64_t BK = s.B * s.K;
        if (qt.size() % (BK * s.d)) throw nb::value_error("hddc_estep: qt must have shape (B, K, D, d)");
        s.D = int64_t(qt.size()) / (BK * s.d);
        if (s.D > s.d) throw nb::value_error("hddc_estep: qt has more than d rows per component");
        expect_size(w, s.B * s.n, "w");
        expect_size(mu, BK * s.d, "mu");
        expect_size(ia, BK * s.D, "ia");
        expect_size(dk, BK, "dk");
        expect_size(tri, BK, "tri");
        expect_size(ib, BK, "ib");
        expect_size(cst, BK, "cst");
        expect_size(thr, s.B, "thr");
        expect_size(resp, s.B * s.n * s.K, "resp");
        expect_size(llp, s.B * s.n, "llp");
        expect_size(L, s.B, "L");
        expect_size(cnt, BK, "cnt");
        const int32_t* dkp = typed<int32_t>(dk, "dk");
        if (!kCuda)
          for (int64_t i = 0; i < BK; ++i)
            if (dkp[i] < 0 || dkp[i] > s.D) throw nb::value_error("hddc_estep: dk must be in [0, D]");
        float_dispatch(x, [&](auto z) {
          using T = decltype(z);
          nb::gil_scoped_release release;
          DIFFREP_CALL(hddc_estep, l, s, typed<T>(x, "x"), typed<int64_t>(unit_of, "unit_of"), typed<T>(w, "w"),
                       typed<T>(mu, "mu"), typed<T>(qt, "qt"), typed<T>(ia, "ia"), dkp, typed<int32_t>(tri, "tri"),
                       typed<T>(ib, "ib"), typed<T>(cst, "cst"), typed<int32_t>(act, "act"), typed<T>(thr, "thr"),
                       skip_zero, typed<T>(resp, "resp"), typed<double>(llp, "llp"), typed<double>(L, "L"),
                       typed<int64_t>(cnt, "cnt"));
        });
      },
      arg("x").noconvert(), arg("unit_of").noconvert(), arg("w").noconvert(), arg("mu").noconvert(),
      arg("qt").noconvert(), arg("ia").noconvert(), arg("dk").noconvert(), arg("tri").noconvert(),
      arg("ib").noconvert(), arg("cst").noconvert(), arg("act").noconvert(), arg("thr").noconvert(), arg("skip_zero"),
      arg("resp").noconvert(), arg("llp").noconvert(), arg("L").noconvert(), arg("cnt").noconvert(),
      DIFFREP_LAUNCH_ARGS);

  // Both passes of hddc_mstep (mode 0) or of cluster_density (mode 1), and the second pass:
  // W (scatter) or density (distance), as one call.
  m.def(
      "hddc_stats",
      [](Arr x, Arr unit_of, Arr w, Arr resp, Arr act, int32_t mode, double phi, Arr part, Arr mass, Arr mean,
         Arr second, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const hddc::Dims s = hddc_dims(x, unit_of, act, !kCuda);
        if (mode != hddc::kSoft && mode != hddc::kMember) throw nb::value_error("hddc_stats: mode must be 0 or 1");
        const int64_t BK = s.B * s.K, nblk = hddc::num_blocks(s.n);
        expect_size(w, s.B * s.n, "w");
        expect_size(resp, s.B * s.n * s.K, "resp");
        const int64_t width = s.K * (mode == hddc::kSoft ? std::max<int64_t>(s.d * s.d, s.d + 1) : s.d + 1);
        expect_size(part, s.B * nblk * width, "part");
        expect_size(mass, BK, "mass");
        expect_size(mean, BK * s.d, "mean");
        expect_size(second, mode == hddc::kSoft ? BK * s.d * s.d : BK, mode == hddc::kSoft ? "W" : "density");
        float_dispatch(x, [&](auto z) {
          using T = decltype(z);
          const T* xp = typed<T>(x, "x");
          const int64_t* up = typed<int64_t>(unit_of, "unit_of");
          const T *wp = typed<T>(w, "w"), *rp = typed<T>(resp, "resp");
          const int32_t* ap = typed<int32_t>(act, "act");
          T* pp = typed<T>(part, "part");
          double *ms = typed<double>(mass, "mass"), *mn = typed<double>(mean, "mean");
          double* sp = typed<double>(second, "second");
          nb::gil_scoped_release release;
          DIFFREP_CALL(hddc_moments, l, s, xp, up, wp, rp, ap, mode, T(phi), pp, ms, mn);
          if (mode == hddc::kSoft)
            DIFFREP_CALL(hddc_scatter, l, s, xp, up, wp, rp, ap, ms, mn, pp, sp);
          else
            DIFFREP_CALL(hddc_distance, l, s, xp, up, wp, rp, ap, T(phi), ms, mn, pp, sp);
        });
      },
      arg("x").noconvert(), arg("unit_of").noconvert(), arg("w").noconvert(), arg("resp").noconvert(),
      arg("act").noconvert(), arg("mode"), arg("phi"), arg("part").noconvert(), arg("mass").noconvert(),
      arg("mean").noconvert(), arg("second").noconvert(), DIFFREP_LAUNCH_ARGS);
}

}  // namespace diffrep
