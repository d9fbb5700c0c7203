// The declaration table of the SAMI guidance-score family (common/ops_table.h). Launchers:
// diffrep::cpu (guidance_cpu.cpp, OpenMP) and diffrep::cuda (guidance_cuda.cu); checks and
// bindings: guidance_bindings.h.
//
// Shapes: z (samples, B, D) C-contiguous; mu, logvar = log sigma^2 (B, D); grad, out, g_bar (B,).
// forward: out_b = sum_j ell_bj (guidance_math.h), the mean over samples of log q(z | x_t).
// backward: d_z, d_mu, d_logvar = grad_b times the first derivatives.
// backward2: the backward of backward for the upstream gradients grad_d_z, grad_d_mu and
// grad_d_logvar, any of which may be None (zero).
#pragma once
#include "common/ops_table.h"

#define DIFFREP_GUIDANCE_OPS(X, X64) X(log_posterior_fwd, mu) X(log_posterior_bwd, mu) X(log_posterior_bwd2, mu)

// B rows (the per-row array's count), D = mu.size / B (guidance_columns, guidance_bindings.h).
#define DIFFREP_ARGS_log_posterior_fwd(ARG, T)                                                      \
  ARG(DIM, int64_t, B, out.size()) ARG(DIM, int64_t, D, guidance_columns(mu, B, samples))           \
  ARG(IN, T, z, samples * B * D) ARG(IN, T, mu, B * D) ARG(IN, T, logvar, B * D)                    \
  ARG(VAL, int64_t, samples) ARG(VAL, T, constant) ARG(OUT, T, out, B)

#define DIFFREP_ARGS_log_posterior_bwd(ARG, T)                                                      \
  ARG(DIM, int64_t, B, grad.size()) ARG(DIM, int64_t, D, guidance_columns(mu, B, samples))          \
  ARG(IN, T, grad, B) ARG(IN, T, z, samples * B * D) ARG(IN, T, mu, B * D) ARG(IN, T, logvar, B * D) \
  ARG(VAL, int64_t, samples) ARG(OUT, T, d_z, samples * B * D) ARG(OUT, T, d_mu, B * D)            \
  ARG(OUT, T, d_logvar, B * D)

#define DIFFREP_ARGS_log_posterior_bwd2(ARG, T)                                                     \
  ARG(DIM, int64_t, B, grad.size()) ARG(DIM, int64_t, D, guidance_columns(mu, B, samples))          \
  ARG(IN, T, grad, B) ARG(IN, T, z, samples * B * D) ARG(IN, T, mu, B * D) ARG(IN, T, logvar, B * D) \
  ARG(VAL, int64_t, samples) ARG(OPT, T, grad_d_z, samples * B * D) ARG(OPT, T, grad_d_mu, B * D)  \
  ARG(OPT, T, grad_d_logvar, B * D) ARG(OUT, T, g_bar, B) ARG(OUT, T, z_bar, samples * B * D)       \
  ARG(OUT, T, mu_bar, B * D) ARG(OUT, T, logvar_bar, B * D)

DIFFREP_DECLARE_OPS(DIFFREP_GUIDANCE_OPS)
