// OpenMP CPU kernels of the BFN family. Element maths lives in bfn_math.h (shared with CUDA);
// this file only loops. Bindings: bfn_bindings.h.
#include <omp.h>

#include <cstdint>

#include "bfn/bfn_kernels.h"
#include "bfn/bfn_math.h"
#include "common/philox.h"

namespace diffrep {
namespace cpu {

using namespace bfn;
namespace {
constexpr int64_t kParallelMin = 1 << 14;  // below this, a parallel region costs more than it saves
}

template <typename T>
void cts_flow(const Launch& l, const T* x, const T* t, bool t_per_row, int64_t row_len, T log_s1sq, const T* noise,
              uint64_t seed, uint64_t offset, T* out, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel reduction(| : flags) if (n >= kParallelMin)
  {
    NormalStream<T> stream{PhiloxKey{seed, offset}};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T eps = noise ? noise[i] : stream(static_cast<uint64_t>(i));
      out[i] = cts_flow_elem(x[i], t[bidx(i, row_len, t_per_row)], log_s1sq, eps, flags);
    }
  }
  *l.flags |= flags;
}

template <typename T>
void disc_flow(const Launch& l, const int64_t* x, const T* t, bool t_per_row, int64_t row_len, int64_t K,
               T sqrt_beta1, const T* noise, uint64_t seed, uint64_t offset, T* out, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel reduction(| : flags) if (n * K >= kParallelMin)
  {
    NormalStream<T> stream{PhiloxKey{seed, offset}};
    InjectedNoise<T> injected{noise};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T ti = t[bidx(i, row_len, t_per_row)];
      if (noise)
        disc_flow_elem(i, x[i], ti, K, sqrt_beta1, injected, out, flags);
      else
        disc_flow_elem(i, x[i], ti, K, sqrt_beta1, stream, out, flags);
    }
  }
  *l.flags |= flags;
}

template <typename T>
void cts_update(const Launch& l, const T* mu, const T* rho, bool rho_per_row, const T* alpha, bool alpha_per_row,
                int64_t row_len, const T* y, bool inverse, T* out, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    out[i] = cts_update_elem(mu[i], rho[bidx(i, row_len, rho_per_row)], y[i], alpha[bidx(i, row_len, alpha_per_row)],
                             inverse, flags);
  *l.flags |= flags;
}

template <typename T>
void cts_sender_update(const Launch& l, const T* mu, const T* rho, bool rho_per_row, const T* alpha,
                       bool alpha_per_row, int64_t row_len, const T* x, const T* noise, uint64_t seed,
                       uint64_t offset, T* out, T* out_y, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel reduction(| : flags) if (n >= kParallelMin)
  {
    NormalStream<T> stream{PhiloxKey{seed, offset}};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const T a = alpha[bidx(i, row_len, alpha_per_row)];
      const T eps = noise ? noise[i] : stream(static_cast<uint64_t>(i));
      if (!isfinite(x[i])) flags |= kNonFiniteInput;
      const T y = x[i] + eps / sqrt(a);  // y ~ N(x, 1/alpha)
      out_y[i] = y;
      out[i] = cts_update_elem(mu[i], rho[bidx(i, row_len, rho_per_row)], y, a, false, flags);
    }
  }
  *l.flags |= flags;
}

template <typename T>
void disc_update(const Launch& l, const T* theta, const T* y, int64_t K, bool inverse, bool log_io, T* out,
                 int64_t n) {
  int32_t flags = 0;
  const T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for schedule(static) reduction(| : flags) if (n * K >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T* yi = y + i * K;
    disc_update_elem(theta + i * K, [yi](int64_t k) { return yi[k]; }, K, sign, log_io, out + i * K, flags);
  }
  *l.flags |= flags;
}

template <typename T>
void disc_sender_update(const Launch& l, const T* theta, const int64_t* x, const T* alpha, bool alpha_per_row,
                        int64_t row_len, int64_t K, bool log_io, const T* noise, uint64_t seed, uint64_t offset,
                        T* out, T* out_y, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel reduction(| : flags) if (n * K >= kParallelMin)
  {
    NormalStream<T> stream{PhiloxKey{seed, offset}};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t xi = x[i];
      if (xi < 0 || xi >= K) flags |= kClassOutOfRange;
      const T a = alpha[bidx(i, row_len, alpha_per_row)];
      const T sd = sqrt(a * T(K));
      T* yi = out_y + i * K;
      for (int64_t k = 0; k < K; ++k) {  // y ~ N(alpha (K e_x - 1), alpha K I)
        const uint64_t e = static_cast<uint64_t>(i * K + k);
        yi[k] = a * (k == xi ? T(K - 1) : T(-1)) + sd * (noise ? noise[e] : stream(e));
      }
      disc_update_elem(theta + i * K, [yi](int64_t k) { return yi[k]; }, K, T(1), log_io, out + i * K, flags);
    }
  }
  *l.flags |= flags;
}

template <typename T>
void disc_probs(const Launch& l, const T* mu_x, const T* sigma_x, int64_t K, bool clip, T* out, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (n * K >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) disc_probs_elem(mu_x[i], sigma_x[i], K, clip, out + i * K, flags);
  *l.flags |= flags;
}

template <typename T>
void disc_probs_backward(const Launch&, const T* mu_x, const T* sigma_x, const T* g, int64_t K, bool clip, T* d_mu,
                         T* d_sigma, int64_t n) {
#pragma omp parallel for schedule(static) if (n * K >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) disc_probs_backward_elem(mu_x[i], sigma_x[i], g + i * K, K, clip, d_mu[i], d_sigma[i]);
}

template <typename T>
void disc_cts_loss(const Launch& l, const T* out_mean, const T* out_log_sigma, const T* mu, const T* t,
                   bool t_per_row, int64_t row_len, const T* x, T log_s1sq, int64_t K, bool clip, bool noise_pred,
                   T min_loss_var, bool want_grad, T* loss, T* d_mean, T* d_log_sigma, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (n * K >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    loss[i] = disc_cts_loss_elem(out_mean[i], out_log_sigma[i], mu[i], t[bidx(i, row_len, t_per_row)], x[i], log_s1sq,
                                 K, clip, noise_pred, min_loss_var, want_grad, d_mean + (want_grad ? i : 0),
                                 d_log_sigma + (want_grad ? i : 0), flags);
  *l.flags |= flags;
}

template <typename T>
void discrete_cts_loss(const Launch& l, const T* logits, const int64_t* x, const T* t, bool t_per_row,
                       int64_t row_len, int64_t K, T beta1, bool want_grad, T* loss, T* d_logits, int64_t n) {
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (n * K >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    loss[i] = discrete_cts_loss_elem(logits + i * K, x[i], t[bidx(i, row_len, t_per_row)], K, beta1, want_grad, T(1),
                                     want_grad ? d_logits + i * K : nullptr, flags);
  *l.flags |= flags;
}

#define INSTANTIATE(T)                                                                                               \
  template void cts_flow<T>(const Launch&, const T*, const T*, bool, int64_t, T, const T*, uint64_t, uint64_t, T*,   \
                            int64_t);                                                                                \
  template void disc_flow<T>(const Launch&, const int64_t*, const T*, bool, int64_t, int64_t, T, const T*, uint64_t, \
                             uint64_t, T*, int64_t);                                                                 \
  template void cts_update<T>(const Launch&, const T*, const T*, bool, const T*, bool, int64_t, const T*, bool, T*,  \
                              int64_t);                                                                              \
  template void cts_sender_update<T>(const Launch&, const T*, const T*, bool, const T*, bool, int64_t, const T*,     \
                                     const T*, uint64_t, uint64_t, T*, T*, int64_t);                                 \
  template void disc_update<T>(const Launch&, const T*, const T*, int64_t, bool, bool, T*, int64_t);                 \
  template void disc_sender_update<T>(const Launch&, const T*, const int64_t*, const T*, bool, int64_t, int64_t,     \
                                      bool, const T*, uint64_t, uint64_t, T*, T*, int64_t);                          \
  template void disc_probs<T>(const Launch&, const T*, const T*, int64_t, bool, T*, int64_t);                        \
  template void disc_probs_backward<T>(const Launch&, const T*, const T*, const T*, int64_t, bool, T*, T*, int64_t); \
  template void disc_cts_loss<T>(const Launch&, const T*, const T*, const T*, const T*, bool, int64_t, const T*, T,  \
                                 int64_t, bool, bool, T, bool, T*, T*, T*, int64_t);                                 \
  template void discrete_cts_loss<T>(const Launch&, const T*, const int64_t*, const T*, bool, int64_t, int64_t, T,   \
                                     bool, T*, T*, int64_t);

INSTANTIATE(float)
INSTANTIATE(double)

}  // namespace cpu
}  // namespace diffrep
