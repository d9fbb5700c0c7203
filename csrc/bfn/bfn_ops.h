// The declaration table of the BFN family (common/ops_table.h): each op's arguments, written
// once. Launchers: diffrep::cpu (bfn_cpu.cpp, OpenMP) and diffrep::cuda (bfn_cuda.cu); checks and
// bindings: bfn_bindings.h. Python calls them with these names as keywords (diffrep/ops/bfn.py).
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

#define DIFFREP_ARGS_cts_flow(ARG, T)                                                                    \
  ARG(IN, T, x) ARG(IN, T, t) ARG(VAL, bool, t_per_row) ARG(VAL, int64_t, row_len) ARG(VAL, T, log_s1sq)         \
  ARG(OPT, T, noise) ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset) ARG(OUT, T, out) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_disc_flow(ARG, T)                                                                   \
  ARG(IN, int64_t, x) ARG(IN, T, t) ARG(VAL, bool, t_per_row) ARG(VAL, int64_t, row_len) ARG(VAL, int64_t, K)    \
  ARG(VAL, T, sqrt_beta1) ARG(OPT, T, noise) ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset) ARG(OUT, T, out) \
  ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_cts_update(ARG, T)                                                                  \
  ARG(IN, T, mu) ARG(IN, T, rho) ARG(VAL, bool, rho_per_row) ARG(IN, T, alpha) ARG(VAL, bool, alpha_per_row)     \
  ARG(VAL, int64_t, row_len) ARG(IN, T, y) ARG(VAL, bool, inverse) ARG(OUT, T, out) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_cts_sender_update(ARG, T)                                                           \
  ARG(IN, T, mu) ARG(IN, T, rho) ARG(VAL, bool, rho_per_row) ARG(IN, T, alpha) ARG(VAL, bool, alpha_per_row)     \
  ARG(VAL, int64_t, row_len) ARG(IN, T, x) ARG(OPT, T, noise) ARG(VAL, uint64_t, seed) ARG(VAL, uint64_t, offset) \
  ARG(OUT, T, out) ARG(OUT, T, out_y) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_disc_update(ARG, T)                                                                 \
  ARG(IN, T, theta) ARG(IN, T, y) ARG(VAL, int64_t, K) ARG(VAL, bool, inverse) ARG(VAL, bool, log_io)           \
  ARG(OUT, T, out) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_disc_sender_update(ARG, T)                                                          \
  ARG(IN, T, theta) ARG(IN, int64_t, x) ARG(IN, T, alpha) ARG(VAL, bool, alpha_per_row) ARG(VAL, int64_t, row_len) \
  ARG(VAL, int64_t, K) ARG(VAL, bool, log_io) ARG(OPT, T, noise) ARG(VAL, uint64_t, seed)                      \
  ARG(VAL, uint64_t, offset) ARG(OUT, T, out) ARG(OUT, T, out_y) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_disc_probs(ARG, T) \
  ARG(IN, T, mu_x) ARG(IN, T, sigma_x) ARG(VAL, int64_t, K) ARG(VAL, bool, clip) ARG(OUT, T, out) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_disc_probs_backward(ARG, T)                                                         \
  ARG(IN, T, mu_x) ARG(IN, T, sigma_x) ARG(IN, T, grad) ARG(VAL, int64_t, K) ARG(VAL, bool, clip)               \
  ARG(OUT, T, d_mu) ARG(OUT, T, d_sigma) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_disc_cts_loss(ARG, T)                                                               \
  ARG(IN, T, out_mean) ARG(IN, T, out_log_sigma) ARG(IN, T, mu) ARG(IN, T, t) ARG(VAL, bool, t_per_row)          \
  ARG(VAL, int64_t, row_len) ARG(IN, T, x) ARG(VAL, T, log_s1sq) ARG(VAL, int64_t, K) ARG(VAL, bool, clip)        \
  ARG(VAL, bool, noise_pred) ARG(VAL, T, min_loss_var) ARG(VAL, bool, want_grad) ARG(OUT, T, loss)             \
  ARG(OUT, T, d_mean) ARG(OUT, T, d_log_sigma) ARG(DIM, int64_t, n)

#define DIFFREP_ARGS_discrete_cts_loss(ARG, T)                                                           \
  ARG(IN, T, logits) ARG(IN, int64_t, x) ARG(IN, T, t) ARG(VAL, bool, t_per_row) ARG(VAL, int64_t, row_len)      \
  ARG(VAL, int64_t, K) ARG(VAL, T, beta1) ARG(VAL, bool, want_grad) ARG(OUT, T, loss) ARG(OUT, T, d_logits)     \
  ARG(DIM, int64_t, n)

DIFFREP_DECLARE_OPS(DIFFREP_BFN_OPS)
