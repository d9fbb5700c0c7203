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

#define DIFFREP_ARGS_log_posterior_fwd(ARG, T)                                                   \
  ARG(IN, T, z) ARG(IN, T, mu) ARG(IN, T, logvar) ARG(VAL, int64_t, samples) ARG(VAL, T, constant)       \
  ARG(OUT, T, out) ARG(DIM, int64_t, B) ARG(DIM, int64_t, D)

#define DIFFREP_ARGS_log_posterior_bwd(ARG, T)                                                   \
  ARG(IN, T, grad) ARG(IN, T, z) ARG(IN, T, mu) ARG(IN, T, logvar) ARG(VAL, int64_t, samples)            \
  ARG(OUT, T, d_z) ARG(OUT, T, d_mu) ARG(OUT, T, d_logvar) ARG(DIM, int64_t, B) ARG(DIM, int64_t, D)

#define DIFFREP_ARGS_log_posterior_bwd2(ARG, T)                                                  \
  ARG(IN, T, grad) ARG(IN, T, z) ARG(IN, T, mu) ARG(IN, T, logvar) ARG(VAL, int64_t, samples)            \
  ARG(OPT, T, grad_d_z) ARG(OPT, T, grad_d_mu) ARG(OPT, T, grad_d_logvar) ARG(OUT, T, g_bar)           \
  ARG(OUT, T, z_bar) ARG(OUT, T, mu_bar) ARG(OUT, T, logvar_bar) ARG(DIM, int64_t, B) ARG(DIM, int64_t, D)

DIFFREP_DECLARE_OPS(DIFFREP_GUIDANCE_OPS)
