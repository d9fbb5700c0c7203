// nanobind bindings of the SAMI guidance-score launchers, one template for both modules (Arr =
// CpuArr or CudaArr; kCuda picks diffrep::cpu or diffrep::cuda). Arrays are .noconvert(); every
// size the kernels index is checked here, so a wrong size raises ValueError.
#pragma once
#include "common/bindings.h"
#include "guidance/guidance_kernels.h"

namespace diffrep {

// Shapes of one call: B rows (from the per-row array), D = mu.size / B, S = z.size / mu.size.
struct GuidanceDims {
  int64_t S, B, D;
};

template <typename Arr>
GuidanceDims guidance_dims(const Arr& rowwise, const Arr& z, const Arr& mu, const Arr& s, int64_t S) {
  const int64_t B = rowwise.size();
  if (B < 1 || S < 1) throw nb::value_error("log_posterior: need B >= 1 rows and S >= 1 samples");
  if (int64_t(mu.size()) % B || mu.size() == 0) throw nb::value_error("log_posterior: mu must hold B x D values");
  const int64_t D = mu.size() / B;
  expect_size(s, B * D, "logvar");
  expect_size(z, S * B * D, "z");
  return {S, B, D};
}

template <typename Arr, bool kCuda>
void bind_guidance(nb::module_& m) {
  using nb::arg;
  auto gil = nb::call_guard<nb::gil_scoped_release>();
  m.def(
      "log_posterior_fwd",
      [](Arr z, Arr mu, Arr s, int64_t S, double c, Arr out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const GuidanceDims g = guidance_dims(out, z, mu, s, S);
        float_dispatch(mu, [&](auto zero) {
          using T = decltype(zero);
          DIFFREP_CALL(log_posterior_fwd, l, typed<T>(z, "z"), typed<T>(mu, "mu"), typed<T>(s, "logvar"), g.S, g.B,
                       g.D, T(c), typed<T>(out, "out"));
        });
      },
      arg("z").noconvert(), arg("mu").noconvert(), arg("logvar").noconvert(), arg("samples"), arg("constant"),
      arg("out").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "log_posterior_bwd",
      [](Arr grad, Arr z, Arr mu, Arr s, int64_t S, Arr d_z, Arr d_mu, Arr d_s, Arr flags, int device,
         uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const GuidanceDims g = guidance_dims(grad, z, mu, s, S);
        expect_size(d_z, g.S * g.B * g.D, "d_z");
        expect_size(d_mu, g.B * g.D, "d_mu");
        expect_size(d_s, g.B * g.D, "d_logvar");
        float_dispatch(mu, [&](auto zero) {
          using T = decltype(zero);
          DIFFREP_CALL(log_posterior_bwd, l, typed<T>(grad, "grad"), typed<T>(z, "z"), typed<T>(mu, "mu"),
                       typed<T>(s, "logvar"), g.S, g.B, g.D, typed<T>(d_z, "d_z"), typed<T>(d_mu, "d_mu"),
                       typed<T>(d_s, "d_logvar"));
        });
      },
      arg("grad").noconvert(), arg("z").noconvert(), arg("mu").noconvert(), arg("logvar").noconvert(),
      arg("samples"), arg("d_z").noconvert(), arg("d_mu").noconvert(), arg("d_logvar").noconvert(),
      DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "log_posterior_bwd2",
      [](Arr grad, Arr z, Arr mu, Arr s, int64_t S, Arr gz, bool has_gz, Arr gmu, bool has_gmu, Arr gs, bool has_gs,
         Arr g_bar, Arr z_bar, Arr mu_bar, Arr s_bar, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const GuidanceDims g = guidance_dims(grad, z, mu, s, S);
        if (has_gz) expect_size(gz, g.S * g.B * g.D, "grad_d_z");
        if (has_gmu) expect_size(gmu, g.B * g.D, "grad_d_mu");
        if (has_gs) expect_size(gs, g.B * g.D, "grad_d_logvar");
        expect_size(g_bar, g.B, "g_bar");
        expect_size(z_bar, g.S * g.B * g.D, "z_bar");
        expect_size(mu_bar, g.B * g.D, "mu_bar");
        expect_size(s_bar, g.B * g.D, "logvar_bar");
        float_dispatch(mu, [&](auto zero) {
          using T = decltype(zero);
          DIFFREP_CALL(log_posterior_bwd2, l, typed<T>(grad, "grad"), typed<T>(z, "z"), typed<T>(mu, "mu"),
                       typed<T>(s, "logvar"), g.S, g.B, g.D, has_gz ? typed<T>(gz, "grad_d_z") : nullptr,
                       has_gmu ? typed<T>(gmu, "grad_d_mu") : nullptr, has_gs ? typed<T>(gs, "grad_d_logvar") : nullptr,
                       typed<T>(g_bar, "g_bar"), typed<T>(z_bar, "z_bar"), typed<T>(mu_bar, "mu_bar"),
                       typed<T>(s_bar, "logvar_bar"));
        });
      },
      arg("grad").noconvert(), arg("z").noconvert(), arg("mu").noconvert(), arg("logvar").noconvert(),
      arg("samples"), arg("grad_d_z").noconvert(), arg("has_grad_d_z"), arg("grad_d_mu").noconvert(),
      arg("has_grad_d_mu"), arg("grad_d_logvar").noconvert(), arg("has_grad_d_logvar"), arg("g_bar").noconvert(),
      arg("z_bar").noconvert(), arg("mu_bar").noconvert(), arg("logvar_bar").noconvert(), DIFFREP_LAUNCH_ARGS, gil);
}

}  // namespace diffrep
