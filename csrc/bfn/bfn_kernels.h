// Launchers of the BFN family, declared once for both backends: diffrep::cpu (bfn_cpu.cpp,
// OpenMP) and diffrep::cuda (bfn_cuda.cu). Same signatures, so one binding template serves both.
#pragma once
#include <cstdint>

#include "common/launch.h"

#define DIFFREP_BFN_LAUNCHERS \
  template <typename T> \
  void cts_flow(const Launch& l, const T* x, const T* t, bool t_per_row, int64_t row_len, T log_s1sq, const T* noise, \
                uint64_t seed, uint64_t offset, T* out, int64_t n); \
  template <typename T> \
  void disc_flow(const Launch& l, const int64_t* x, const T* t, bool t_per_row, int64_t row_len, int64_t K, \
                 T sqrt_beta1, const T* noise, uint64_t seed, uint64_t offset, T* out, int64_t n); \
  template <typename T> \
  void cts_update(const Launch& l, const T* mu, const T* rho, bool rho_per_row, const T* alpha, bool alpha_per_row, \
                  int64_t row_len, const T* y, bool inverse, T* out, int64_t n); \
  template <typename T> \
  void cts_sender_update(const Launch& l, const T* mu, const T* rho, bool rho_per_row, const T* alpha, \
                         bool alpha_per_row, int64_t row_len, const T* x, const T* noise, uint64_t seed, \
                         uint64_t offset, T* out, T* out_y, int64_t n); \
  template <typename T> \
  void disc_update(const Launch& l, const T* theta, const T* y, int64_t K, bool inverse, bool log_io, T* out, \
                   int64_t n); \
  template <typename T> \
  void disc_sender_update(const Launch& l, const T* theta, const int64_t* x, const T* alpha, bool alpha_per_row, \
                          int64_t row_len, int64_t K, bool log_io, const T* noise, uint64_t seed, uint64_t offset, \
                          T* out, T* out_y, int64_t n); \
  template <typename T> \
  void disc_probs(const Launch& l, const T* mu_x, const T* sigma_x, int64_t K, bool clip, T* out, int64_t n); \
  template <typename T> \
  void disc_probs_backward(const Launch& l, const T* mu_x, const T* sigma_x, const T* g, int64_t K, bool clip, T* d_mu, \
                           T* d_sigma, int64_t n); \
  template <typename T> \
  void disc_cts_loss(const Launch& l, const T* out_mean, const T* out_log_sigma, const T* mu, const T* t, \
                     bool t_per_row, int64_t row_len, const T* x, T log_s1sq, int64_t K, bool clip, bool noise_pred, \
                     T min_loss_var, bool want_grad, T* loss, T* d_mean, T* d_log_sigma, int64_t n); \
  template <typename T> \
  void discrete_cts_loss(const Launch& l, const T* logits, const int64_t* x, const T* t, bool t_per_row, \
                         int64_t row_len, int64_t K, T beta1, bool want_grad, T* loss, T* d_logits, int64_t n);

// Explicit instantiations, used by both backends' launcher files.
#define DIFFREP_BFN_INSTANTIATE(T)                                                                                               \
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

namespace diffrep {
namespace cpu {
DIFFREP_BFN_LAUNCHERS
}  // namespace cpu
namespace cuda {
DIFFREP_BFN_LAUNCHERS
}  // namespace cuda
}  // namespace diffrep
