// CUDA kernels of the BFN family: grid-stride loops over the element bodies of bfn_math.h,
// launched on torch's current stream. Error flags are OR-ed into l.flags (one atomic per
// thread that saw an error). The t-taking kernels check t in [0, 1] per element (time_bit), as
// the CPU launchers do in one pass, so Python reads nothing back for t on CUDA either.
#include "bfn/bfn_ops.h"
#include "bfn/bfn_math.h"
#include "common/cuda_helpers.cuh"
#include "common/philox.h"

namespace diffrep {
namespace cuda {
namespace {

using namespace bfn;

// f(i, eps_i) for every element i < n with its normal eps_i (noise[i], or the Philox stream): one
// thread per Philox block of 4 consecutive elements, so each block is generated once.
template <typename T, typename F>
__device__ __forceinline__ void for_each_normal4(const T* noise, PhiloxKey key, int64_t n, F&& f) {
  GRID_STRIDE(g, (n + 3) / 4) {
    T eps[4];
    if (!noise) philox_normal4<T>(key, static_cast<uint64_t>(g), eps);
    for (int j = 0; j < 4; ++j) {
      const int64_t i = 4 * g + j;
      if (i >= n) break;
      f(i, noise ? noise[i] : eps[j]);
    }
  }
}

template <typename T>
__global__ void cts_flow_kernel(const T* x, const T* t, bool t_per_row, int64_t row_len, T log_s1sq, const T* noise,
                                PhiloxKey key, T* out, int64_t n, int32_t* flags) {
  int32_t local = 0;
  for_each_normal4(noise, key, n, [&](int64_t i, T eps) {
    const T ti = t[bidx(i, row_len, t_per_row)];
    local |= time_bit(ti);
    out[i] = cts_flow_elem(x[i], flow_coeffs(ti, log_s1sq), eps, local);
  });
  report(flags, local);
}

template <typename T>
__global__ void disc_flow_kernel(const int64_t* x, const T* t, bool t_per_row, int64_t row_len, int64_t K,
                                 T sqrt_beta1, const T* noise, PhiloxKey key, T* out, int64_t n, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) {
    const T ti = t[bidx(i, row_len, t_per_row)];
    local |= time_bit(ti);
    if (noise) {
      InjectedNoise<T> src{noise};
      disc_flow_elem(i, x[i], ti, K, sqrt_beta1, src, out, local);
    } else {
      NormalStream<T> src{key};
      disc_flow_elem(i, x[i], ti, K, sqrt_beta1, src, out, local);
    }
  }
  report(flags, local);
}

template <typename T>
__global__ void cts_update_kernel(const T* mu, const T* rho, bool rho_per_row, const T* alpha, bool alpha_per_row,
                                  int64_t row_len, const T* y, bool inverse, T* out, int64_t n, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) {
    out[i] = cts_update_checked(mu[i], rho[bidx(i, row_len, rho_per_row)], y[i],
                                alpha[bidx(i, row_len, alpha_per_row)], inverse, local);
  }
  report(flags, local);
}

template <typename T>
__global__ void cts_sender_update_kernel(const T* mu, const T* rho, bool rho_per_row, const T* alpha,
                                         bool alpha_per_row, int64_t row_len, const T* x, const T* noise,
                                         PhiloxKey key, T* out, T* out_y, int64_t n, int32_t* flags) {
  int32_t local = 0;
  for_each_normal4(noise, key, n, [&](int64_t i, T eps) {
    out[i] = cts_sender_update_elem(mu[i], rho[bidx(i, row_len, rho_per_row)], x[i],
                                    alpha[bidx(i, row_len, alpha_per_row)], eps, out_y[i], local);
  });
  report(flags, local);
}

template <typename T>
struct ArrayY {
  const T* y;
  __device__ T operator()(int64_t k) const { return y[k]; }
};

template <typename T>
__global__ void disc_update_kernel(const T* theta, const T* y, int64_t K, T sign, bool log_io, T* out, int64_t n,
                                   int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) { disc_update_elem(theta + i * K, ArrayY<T>{y + i * K}, K, sign, log_io, out + i * K, local); }
  report(flags, local);
}

template <typename T>
__global__ void disc_sender_update_kernel(const T* theta, const int64_t* x, const T* alpha, bool alpha_per_row,
                                          int64_t row_len, int64_t K, bool log_io, const T* noise, PhiloxKey key,
                                          T* out, T* out_y, int64_t n, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) {
    const int64_t xi = x[i];
    if (xi < 0 || xi >= K) local |= kClassOutOfRange;
    const T a = alpha[bidx(i, row_len, alpha_per_row)];
    local |= sender_alpha_bit(a);
    const T sd = sqrt(a * T(K));
    T* yi = out_y + i * K;
    NormalStream<T> stream{key};
    for (int64_t k = 0; k < K; ++k) {
      const uint64_t e = static_cast<uint64_t>(i * K + k);
      yi[k] = a * (k == xi ? T(K - 1) : T(-1)) + sd * (noise ? noise[e] : stream(e));
    }
    disc_update_elem(theta + i * K, ArrayY<T>{yi}, K, T(1), log_io, out + i * K, local);
  }
  report(flags, local);
}

template <typename T>
__global__ void disc_probs_kernel(const T* mu_x, const T* sigma_x, int64_t K, bool clip, T* out, int64_t n,
                                  int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) { disc_probs_elem(mu_x[i], sigma_x[i], K, clip, out + i * K, local); }
  report(flags, local);
}

template <typename T>
__global__ void disc_probs_backward_kernel(const T* mu_x, const T* sigma_x, const T* g, int64_t K, bool clip, T* d_mu,
                                           T* d_sigma, int64_t n) {
  GRID_STRIDE(i, n) { disc_probs_backward_f64(mu_x[i], sigma_x[i], g + i * K, K, clip, d_mu[i], d_sigma[i]); }
}

template <typename T>
__global__ void disc_cts_loss_kernel(const T* out_mean, const T* out_log_sigma, const T* mu, const T* t,
                                     bool t_per_row, int64_t row_len, const T* x, T log_s1sq, int64_t K, bool clip,
                                     bool noise_pred, T min_loss_var, bool want_grad, T* loss, T* d_mean,
                                     T* d_log_sigma, int64_t n, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) {
    const T ti = t[bidx(i, row_len, t_per_row)];
    local |= time_bit(ti);
    const TimeConsts<T> tc = time_consts(ti, log_s1sq, noise_pred, min_loss_var);
    loss[i] = disc_cts_loss_elem(out_mean[i], out_log_sigma[i], mu[i], tc, x[i], K, clip, noise_pred, want_grad,
                                 d_mean + (want_grad ? i : 0), d_log_sigma + (want_grad ? i : 0), local);
  }
  report(flags, local);
}

template <typename T>
__global__ void discrete_cts_loss_kernel(const T* logits, const int64_t* x, const T* t, bool t_per_row,
                                         int64_t row_len, int64_t K, T beta1, bool want_grad, T* loss, T* d_logits,
                                         int64_t n, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(i, n) {
    const T ti = t[bidx(i, row_len, t_per_row)];
    local |= time_bit(ti);
    loss[i] = discrete_cts_loss_elem(logits + i * K, x[i], ti, K, beta1, want_grad, T(1),
                                     want_grad ? d_logits + i * K : nullptr, local);
  }
  report(flags, local);
}

}  // namespace


DIFFREP_LAUNCHER(cts_flow) {
  DIFFREP_LAUNCH_ONE(cts_flow_kernel<T>, (n + 3) / 4, "cts_flow", x, t, t_per_row, row_len, log_s1sq, noise,
                     PhiloxKey{seed, offset}, out, n, l.flags);
}

DIFFREP_LAUNCHER(disc_flow) {
  DIFFREP_LAUNCH_ONE(disc_flow_kernel<T>, n, "disc_flow", x, t, t_per_row, row_len, K, sqrt_beta1, noise,
                     PhiloxKey{seed, offset}, out, n, l.flags);
}

DIFFREP_LAUNCHER(cts_update) {
  DIFFREP_LAUNCH_ONE(cts_update_kernel<T>, n, "cts_update", mu, rho, rho_per_row, alpha, alpha_per_row, row_len, y,
                     inverse, out, n, l.flags);
}

DIFFREP_LAUNCHER(cts_sender_update) {
  DIFFREP_LAUNCH_ONE(cts_sender_update_kernel<T>, (n + 3) / 4, "cts_sender_update", mu, rho, rho_per_row, alpha,
                     alpha_per_row, row_len, x, noise, PhiloxKey{seed, offset}, out, out_y, n, l.flags);
}

DIFFREP_LAUNCHER(disc_update) {
  DIFFREP_LAUNCH_ONE(disc_update_kernel<T>, n, "disc_update", theta, y, K, inverse ? T(-1) : T(1), log_io, out, n,
                     l.flags);
}

DIFFREP_LAUNCHER(disc_sender_update) {
  DIFFREP_LAUNCH_ONE(disc_sender_update_kernel<T>, n, "disc_sender_update", theta, x, alpha, alpha_per_row, row_len,
                     K, log_io, noise, PhiloxKey{seed, offset}, out, out_y, n, l.flags);
}

DIFFREP_LAUNCHER(disc_probs) {
  DIFFREP_LAUNCH_ONE(disc_probs_kernel<T>, n, "disc_probs", mu_x, sigma_x, K, clip, out, n, l.flags);
}

DIFFREP_LAUNCHER(disc_probs_backward) {
  DIFFREP_LAUNCH_ONE(disc_probs_backward_kernel<T>, n, "disc_probs_backward", mu_x, sigma_x, grad, K, clip, d_mu,
                     d_sigma, n);
}

DIFFREP_LAUNCHER(disc_cts_loss) {
  DIFFREP_LAUNCH_ONE(disc_cts_loss_kernel<T>, n, "disc_cts_loss", out_mean, out_log_sigma, mu, t, t_per_row, row_len,
                     x, log_s1sq, K, clip, noise_pred, min_loss_var, want_grad, loss, d_mean, d_log_sigma, n,
                     l.flags);
}

DIFFREP_LAUNCHER(discrete_cts_loss) {
  DIFFREP_LAUNCH_ONE(discrete_cts_loss_kernel<T>, n, "discrete_cts_loss", logits, x, t, t_per_row, row_len, K, beta1,
                     want_grad, loss, d_logits, n, l.flags);
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_BFN_OPS)

}  // namespace cuda
}  // namespace diffrep
