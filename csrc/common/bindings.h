// nanobind bindings of the BFN launchers, one template for both modules: Arr is CpuArr or
// CudaArr and kCuda picks diffrep::cpu or diffrep::cuda. Every array is .noconvert(): a wrong
// dtype, device or layout raises TypeError instead of being silently copied.
#pragma once
#include "bfn/bfn_kernels.h"
#include "common/nb_arrays.h"
#include "random/random_kernels.h"

namespace diffrep {

#define DIFFREP_CALL(fn, ...)           \
  do {                                  \
    if constexpr (kCuda)                \
      cuda::fn<T>(__VA_ARGS__);         \
    else                                \
      cpu::fn<T>(__VA_ARGS__);          \
  } while (0)

template <typename Arr, bool kCuda>
void bind_bfn(nb::module_& m) {
  using nb::arg;
  auto gil = nb::call_guard<nb::gil_scoped_release>();

  m.def(
      "cts_flow",
      [](Arr x, Arr t, bool t_per_row, int64_t row_len, double log_s1sq, Arr noise, bool has_noise, uint64_t seed,
         uint64_t offset, Arr out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const int64_t n = x.size();
        expect_rows(t, t_per_row, row_len, n, "t");
        expect_size(out, n, "out");
        if (has_noise) expect_size(noise, n, "noise");
        float_dispatch(x, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(cts_flow, l, typed<T>(x, "x"), typed<T>(t, "t"), t_per_row, row_len, T(log_s1sq),
                       has_noise ? typed<T>(noise, "noise") : nullptr, seed, offset, typed<T>(out, "out"),
                       int64_t(x.size()));
        });
      },
      arg("x").noconvert(), arg("t").noconvert(), arg("t_per_row"), arg("row_len"), arg("log_s1sq"),
      arg("noise").noconvert(), arg("has_noise"), arg("seed"), arg("offset"), arg("out").noconvert(),
      DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "disc_flow",
      [](Arr x, Arr t, bool t_per_row, int64_t row_len, int64_t K, double sqrt_beta1, Arr noise, bool has_noise,
         uint64_t seed, uint64_t offset, Arr out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const int64_t n = x.size();
        expect_classes(K);
        expect_rows(t, t_per_row, row_len, n, "t");
        if (has_noise) expect_size(noise, n * K, "noise");
        if (int64_t(out.size()) != int64_t(x.size()) * K) throw nb::value_error("disc_flow: out must hold x.size * K");
        float_dispatch(out, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(disc_flow, l, typed<int64_t>(x, "x"), typed<T>(t, "t"), t_per_row, row_len, K, T(sqrt_beta1),
                       has_noise ? typed<T>(noise, "noise") : nullptr, seed, offset, typed<T>(out, "out"),
                       int64_t(x.size()));
        });
      },
      arg("x").noconvert(), arg("t").noconvert(), arg("t_per_row"), arg("row_len"), arg("num_classes"),
      arg("sqrt_beta1"), arg("noise").noconvert(), arg("has_noise"), arg("seed"), arg("offset"),
      arg("out").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "cts_update",
      [](Arr mu, Arr rho, bool rho_per_row, Arr alpha, bool alpha_per_row, int64_t row_len, Arr y, bool inverse,
         Arr out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const int64_t n = mu.size();
        expect_rows(rho, rho_per_row, row_len, n, "rho");
        expect_rows(alpha, alpha_per_row, row_len, n, "alpha");
        expect_size(y, n, "y");
        expect_size(out, n, "out");
        float_dispatch(mu, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(cts_update, l, typed<T>(mu, "mu"), typed<T>(rho, "rho"), rho_per_row, typed<T>(alpha, "alpha"),
                       alpha_per_row, row_len, typed<T>(y, "y"), inverse, typed<T>(out, "out"), int64_t(mu.size()));
        });
      },
      arg("mu").noconvert(), arg("rho").noconvert(), arg("rho_per_row"), arg("alpha").noconvert(),
      arg("alpha_per_row"), arg("row_len"), arg("y").noconvert(), arg("inverse"), arg("out").noconvert(),
      DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "cts_sender_update",
      [](Arr mu, Arr rho, bool rho_per_row, Arr alpha, bool alpha_per_row, int64_t row_len, Arr x, Arr noise,
         bool has_noise, uint64_t seed, uint64_t offset, Arr out, Arr out_y, Arr flags, int device,
         uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        const int64_t n = mu.size();
        expect_rows(rho, rho_per_row, row_len, n, "rho");
        expect_rows(alpha, alpha_per_row, row_len, n, "alpha");
        expect_size(x, n, "x");
        expect_size(out, n, "out");
        expect_size(out_y, n, "out_y");
        if (has_noise) expect_size(noise, n, "noise");
        float_dispatch(mu, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(cts_sender_update, l, typed<T>(mu, "mu"), typed<T>(rho, "rho"), rho_per_row,
                       typed<T>(alpha, "alpha"), alpha_per_row, row_len, typed<T>(x, "x"),
                       has_noise ? typed<T>(noise, "noise") : nullptr, seed, offset, typed<T>(out, "out"),
                       typed<T>(out_y, "out_y"), int64_t(mu.size()));
        });
      },
      arg("mu").noconvert(), arg("rho").noconvert(), arg("rho_per_row"), arg("alpha").noconvert(),
      arg("alpha_per_row"), arg("row_len"), arg("x").noconvert(), arg("noise").noconvert(), arg("has_noise"),
      arg("seed"), arg("offset"), arg("out").noconvert(), arg("out_y").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "disc_update",
      [](Arr theta, Arr y, int64_t K, bool inverse, bool log_io, Arr out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_classes(K);
        expect_size(y, theta.size(), "y");
        expect_size(out, theta.size(), "out");
        if (K < 2 || int64_t(theta.size()) % K) throw nb::value_error("disc_update: theta.size must be a multiple of K");
        float_dispatch(theta, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(disc_update, l, typed<T>(theta, "theta"), typed<T>(y, "y"), K, inverse, log_io,
                       typed<T>(out, "out"), int64_t(theta.size()) / K);
        });
      },
      arg("theta").noconvert(), arg("y").noconvert(), arg("num_classes"), arg("inverse"), arg("log_io"),
      arg("out").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "disc_sender_update",
      [](Arr theta, Arr x, Arr alpha, bool alpha_per_row, int64_t row_len, int64_t K, bool log_io, Arr noise,
         bool has_noise, uint64_t seed, uint64_t offset, Arr out, Arr out_y, Arr flags, int device,
         uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_classes(K);
        const int64_t n = x.size();
        expect_rows(alpha, alpha_per_row, row_len, n, "alpha");
        expect_size(out, n * K, "out");
        expect_size(out_y, n * K, "out_y");
        if (has_noise) expect_size(noise, n * K, "noise");
        if (int64_t(theta.size()) != int64_t(x.size()) * K)
          throw nb::value_error("disc_sender_update: theta must hold x.size * K");
        float_dispatch(theta, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(disc_sender_update, l, typed<T>(theta, "theta"), typed<int64_t>(x, "x"),
                       typed<T>(alpha, "alpha"), alpha_per_row, row_len, K, log_io,
                       has_noise ? typed<T>(noise, "noise") : nullptr, seed, offset, typed<T>(out, "out"),
                       typed<T>(out_y, "out_y"), int64_t(x.size()));
        });
      },
      arg("theta").noconvert(), arg("x").noconvert(), arg("alpha").noconvert(), arg("alpha_per_row"),
      arg("row_len"), arg("num_classes"), arg("log_io"), arg("noise").noconvert(), arg("has_noise"), arg("seed"),
      arg("offset"), arg("out").noconvert(), arg("out_y").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "disc_probs",
      [](Arr mu_x, Arr sigma_x, int64_t K, bool clip, Arr out, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_classes(K);
        expect_size(sigma_x, mu_x.size(), "sigma_x");
        if (int64_t(out.size()) != int64_t(mu_x.size()) * K) throw nb::value_error("disc_probs: out must hold size * K");
        float_dispatch(mu_x, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(disc_probs, l, typed<T>(mu_x, "mu_x"), typed<T>(sigma_x, "sigma_x"), K, clip,
                       typed<T>(out, "out"), int64_t(mu_x.size()));
        });
      },
      arg("mu_x").noconvert(), arg("sigma_x").noconvert(), arg("num_bins"), arg("clip"), arg("out").noconvert(),
      DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "disc_probs_backward",
      [](Arr mu_x, Arr sigma_x, Arr grad, int64_t K, bool clip, Arr d_mu, Arr d_sigma, Arr flags, int device,
         uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_classes(K);
        expect_size(sigma_x, mu_x.size(), "sigma_x");
        expect_size(d_mu, mu_x.size(), "d_mu");
        expect_size(d_sigma, mu_x.size(), "d_sigma");
        if (int64_t(grad.size()) != int64_t(mu_x.size()) * K)
          throw nb::value_error("disc_probs_backward: grad must hold size * K");
        float_dispatch(mu_x, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(disc_probs_backward, l, typed<T>(mu_x, "mu_x"), typed<T>(sigma_x, "sigma_x"),
                       typed<T>(grad, "grad"), K, clip, typed<T>(d_mu, "d_mu"), typed<T>(d_sigma, "d_sigma"),
                       int64_t(mu_x.size()));
        });
      },
      arg("mu_x").noconvert(), arg("sigma_x").noconvert(), arg("grad").noconvert(), arg("num_bins"), arg("clip"),
      arg("d_mu").noconvert(), arg("d_sigma").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "disc_cts_loss",
      [](Arr out_mean, Arr out_log_sigma, Arr mu, Arr t, bool t_per_row, int64_t row_len, Arr x, double log_s1sq,
         int64_t K, bool clip, bool noise_pred, double min_loss_var, bool want_grad, Arr loss, Arr d_mean,
         Arr d_log_sigma, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_classes(K);
        const int64_t n = out_mean.size();
        expect_rows(t, t_per_row, row_len, n, "t");
        expect_size(out_log_sigma, n, "out_log_sigma");
        expect_size(mu, n, "mu");
        expect_size(x, n, "x");
        expect_size(loss, n, "loss");
        if (want_grad) {
          expect_size(d_mean, n, "d_mean");
          expect_size(d_log_sigma, n, "d_log_sigma");
        }
        float_dispatch(out_mean, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(disc_cts_loss, l, typed<T>(out_mean, "out_mean"), typed<T>(out_log_sigma, "out_log_sigma"),
                       typed<T>(mu, "mu"), typed<T>(t, "t"), t_per_row, row_len, typed<T>(x, "x"), T(log_s1sq), K,
                       clip, noise_pred, T(min_loss_var), want_grad, typed<T>(loss, "loss"),
                       typed<T>(d_mean, "d_mean"), typed<T>(d_log_sigma, "d_log_sigma"), int64_t(out_mean.size()));
        });
      },
      arg("out_mean").noconvert(), arg("out_log_sigma").noconvert(), arg("mu").noconvert(), arg("t").noconvert(),
      arg("t_per_row"), arg("row_len"), arg("x").noconvert(), arg("log_s1sq"), arg("num_bins"), arg("clip"),
      arg("noise_pred"), arg("min_loss_variance"), arg("want_grad"), arg("loss").noconvert(),
      arg("d_mean").noconvert(), arg("d_log_sigma").noconvert(), DIFFREP_LAUNCH_ARGS, gil);

  m.def(
      "discrete_cts_loss",
      [](Arr logits, Arr x, Arr t, bool t_per_row, int64_t row_len, int64_t K, double beta1, bool want_grad, Arr loss,
         Arr d_logits, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        expect_classes(K);
        const int64_t n = x.size();
        expect_rows(t, t_per_row, row_len, n, "t");
        expect_size(loss, n, "loss");
        if (want_grad) expect_size(d_logits, n * K, "d_logits");
        if (int64_t(logits.size()) != int64_t(x.size()) * K)
          throw nb::value_error("discrete_cts_loss: logits must hold x.size * K");
        float_dispatch(logits, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(discrete_cts_loss, l, typed<T>(logits, "logits"), typed<int64_t>(x, "x"), typed<T>(t, "t"),
                       t_per_row, row_len, K, T(beta1), want_grad, typed<T>(loss, "loss"),
                       typed<T>(d_logits, "d_logits"), int64_t(x.size()));
        });
      },
      arg("logits").noconvert(), arg("x").noconvert(), arg("t").noconvert(), arg("t_per_row"), arg("row_len"),
      arg("num_classes"), arg("beta1"), arg("want_grad"), arg("loss").noconvert(), arg("d_logits").noconvert(),
      DIFFREP_LAUNCH_ARGS, gil);
}

template <typename Arr, bool kCuda>
void bind_random(nb::module_& m) {
  m.def(
      "normal_fill",
      [](Arr out, uint64_t seed, uint64_t offset, Arr flags, int device, uintptr_t stream) {
        const Launch l = make_launch(flags, device, stream);
        float_dispatch(out, [&](auto z) {
          using T = decltype(z);
          DIFFREP_CALL(normal_fill, l, typed<T>(out, "out"), int64_t(out.size()), seed, offset);
        });
      },
      nb::arg("out").noconvert(), nb::arg("seed"), nb::arg("offset"), DIFFREP_LAUNCH_ARGS,
      nb::call_guard<nb::gil_scoped_release>());
}

}  // namespace diffrep
