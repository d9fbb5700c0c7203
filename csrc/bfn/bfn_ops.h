// The declaration table of the BFN family (common/ops_table.h): each op's arguments and the
// element count of each array, written once. Launchers: diffrep::cpu (bfn_cpu.cpp, OpenMP) and
// diffrep::cuda (bfn_cuda.cu); bindings: bfn_bindings.h. Python (diffrep/ops/bfn.py) passes these
// names as keywords.
//
// n counts the items (elements of x, or of mu, ...); t, rho and alpha are per row (`*_per_row`,
// one value per row of row_len items) or per item. Optional noise (None) means: draw Philox
// normals from (seed, offset). K is the number of classes (bins for disc_probs / disc_cts_loss).
#pragma once
#include "common/ops_table.h"

#define DIFFREP_BFN_OPS(X, X64)                                                                        \
  X(cts_flow, x) X(disc_flow, out) X(cts_update, mu) X(cts_sender_update, mu) X(disc_update, theta)  \
  X(disc_sender_update, theta) X(disc_probs, mu_x) X(disc_probs_backward, mu_x)                       \
  X(disc_cts_loss, out_mean) X(discrete_cts_loss, logits)

#define DIFFREP_ARGS_cts_flow(ARG, T)                                                                  \
  ARG(DIM, int64_t, n, x.size()) ARG(IN, T, x, n) ARG(IN, T, t, rows(t_per_row, row_len, n))          \
  ARG(VAL, bool, t_per_row) ARG(VAL, int64_t, row_len) ARG(VAL, T, log_s1sq) ARG(OPT, T, noise, n)    \
  ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset) ARG(OUT, T, out, n)

#define DIFFREP_ARGS_disc_flow(ARG, T)                                                                 \
  ARG(CHECK, expect_classes(K)) ARG(DIM, int64_t, n, x.size()) ARG(IN, int64_t, x, n)                  \
  ARG(IN, T, t, rows(t_per_row, row_len, n)) ARG(VAL, bool, t_per_row) ARG(VAL, int64_t, row_len)      \
  ARG(VAL, int64_t, K) ARG(VAL, T, sqrt_beta1) ARG(OPT, T, noise, n * K) ARG(VAL, uint64_t, seed)      \
  ARG(VAL, uint64_t, offset) ARG(OUT, T, out, n * K)

#define DIFFREP_ARGS_cts_update(ARG, T)                                                                \
  ARG(DIM, int64_t, n, mu.size()) ARG(IN, T, mu, n) ARG(IN, T, rho, rows(rho_per_row, row_len, n))    \
  ARG(VAL, bool, rho_per_row) ARG(IN, T, alpha, rows(alpha_per_row, row_len, n))                       \
  ARG(VAL, bool, alpha_per_row) ARG(VAL, int64_t, row_len) ARG(IN, T, y, n) ARG(VAL, bool, inverse)    \
  ARG(OUT, T, out, n)

#define DIFFREP_ARGS_cts_sender_update(ARG, T)                                                         \
  ARG(DIM, int64_t, n, mu.size()) ARG(IN, T, mu, n) ARG(IN, T, rho, rows(rho_per_row, row_len, n))    \
  ARG(VAL, bool, rho_per_row) ARG(IN, T, alpha, rows(alpha_per_row, row_len, n))                       \
  ARG(VAL, bool, alpha_per_row) ARG(VAL, int64_t, row_len) ARG(IN, T, x, n) ARG(OPT, T, noise, n)      \
  ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset) ARG(OUT, T, out, n) ARG(OUT, T, out_y, n)

#define DIFFREP_ARGS_disc_update(ARG, T)                                                               \
  ARG(CHECK, expect_classes(K))                                                                        \
  ARG(DIM, int64_t, n, items_of(theta.size(), K, "disc_update: theta.size must be a multiple of K"))   \
  ARG(IN, T, theta, n * K) ARG(IN, T, y, n * K) ARG(VAL, int64_t, K) ARG(VAL, bool, inverse)          \
  ARG(VAL, bool, log_io) ARG(OUT, T, out, n * K)

#define DIFFREP_ARGS_disc_sender_update(ARG, T)                                                        \
  ARG(CHECK, expect_classes(K)) ARG(DIM, int64_t, n, x.size()) ARG(IN, T, theta, n * K)                \
  ARG(IN, int64_t, x, n) ARG(IN, T, alpha, rows(alpha_per_row, row_len, n)) ARG(VAL, bool, alpha_per_row) \
  ARG(VAL, int64_t, row_len) ARG(VAL, int64_t, K) ARG(VAL, bool, log_io) ARG(OPT, T, noise, n * K)     \
  ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset) ARG(OUT, T, out, n * K) ARG(OUT, T, out_y, n * K)

#define DIFFREP_ARGS_disc_probs(ARG, T)                                                                \
  ARG(CHECK, expect_classes(K)) ARG(DIM, int64_t, n, mu_x.size()) ARG(IN, T, mu_x, n)                  \
  ARG(IN, T, sigma_x, n) ARG(VAL, int64_t, K) ARG(VAL, bool, clip) ARG(OUT, T, out, n * K)

#define DIFFREP_ARGS_disc_probs_backward(ARG, T)                                                       \
  ARG(CHECK, expect_classes(K)) ARG(DIM, int64_t, n, mu_x.size()) ARG(IN, T, mu_x, n)                  \
  ARG(IN, T, sigma_x, n) ARG(IN, T, grad, n * K) ARG(VAL, int64_t, K) ARG(VAL, bool, clip)            \
  ARG(OUT, T, d_mu, n) ARG(OUT, T, d_sigma, n)

#define DIFFREP_ARGS_disc_cts_loss(ARG, T)                                                             \
  ARG(CHECK, expect_classes(K)) ARG(DIM, int64_t, n, out_mean.size()) ARG(IN, T, out_mean, n)          \
  ARG(IN, T, out_log_sigma, n) ARG(IN, T, mu, n) ARG(IN, T, t, rows(t_per_row, row_len, n))            \
  ARG(VAL, bool, t_per_row) ARG(VAL, int64_t, row_len) ARG(IN, T, x, n) ARG(VAL, T, log_s1sq)          \
  ARG(VAL, int64_t, K) ARG(VAL, bool, clip) ARG(VAL, bool, noise_pred) ARG(VAL, T, min_loss_var)       \
  ARG(VAL, bool, want_grad) ARG(OUT, T, loss, n) ARG(OUT, T, d_mean, want_grad ? n : kAny)            \
  ARG(OUT, T, d_log_sigma, want_grad ? n : kAny)

#define DIFFREP_ARGS_discrete_cts_loss(ARG, T)                                                         \
  ARG(CHECK, expect_classes(K)) ARG(DIM, int64_t, n, x.size()) ARG(IN, T, logits, n * K)               \
  ARG(IN, int64_t, x, n) ARG(IN, T, t, rows(t_per_row, row_len, n)) ARG(VAL, bool, t_per_row)          \
  ARG(VAL, int64_t, row_len) ARG(VAL, int64_t, K) ARG(VAL, T, beta1) ARG(VAL, bool, want_grad)         \
  ARG(OUT, T, loss, n) ARG(OUT, T, d_logits, want_grad ? n * K : kAny)

DIFFREP_DECLARE_OPS(DIFFREP_BFN_OPS)
