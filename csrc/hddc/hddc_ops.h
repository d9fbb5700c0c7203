// The declaration table of the batched HDDC-EM primitives (common/ops_table.h). Launchers:
// diffrep::cpu (hddc_cpu.cpp) and diffrep::cuda (hddc_cuda.cu); checks and bindings:
// hddc_bindings.h. Layout and maths: hddc_math.h.
//
// hddc_estep: x (U,n,d), unit_of (B,) int64, w (B,n), mu (B,K,d), qt (B,K,D,d), ia (B,K,D),
//   dk (B,K) int32, tri (B,K) int32 (non-zero: row j of qt_k is zero beyond column j, and the
//   kernel skips those columns), ib (B,K), cst (B,K), act (B,K) int32, thr (B,) -> resp (B,n,K)
//   (0 for inactive components, and for w = 0 points when skip_zero), llp (B,n) float64 = w
//   logsumexp, L (B,) float64 (llp summed in a fixed order: blocks of kBlock points on the CPU, a
//   strided tree on CUDA), cnt (B,K) int64 = #{w > 0, t > thr_b}.
// hddc_stats: both passes of the M-step statistics (mode 0) or of cluster_density (mode 1).
//   Pass 1 with weight pass_weight(mode, w, t, phi): mass (B,K) and mean (B,K,d), float64.
//   Pass 2, mode 0: second = W (B,K,d,d) float64 = sum weight (x - mean)(x - mean)^T / mass;
//   mode 1: second = density (B,K) float64, the mean distance of the members to the centroid (NaN
//   for an empty cluster). part: scratch of B * nblk * K * max(d * d, d + 1) (mode 0) or
//   B * nblk * K * (d + 1) (mode 1) T.
#pragma once
#include "common/ops_table.h"
#include "hddc/hddc_math.h"

#define DIFFREP_HDDC_OPS(X, X64) X(hddc_estep, x) X(hddc_stats, x)

// s: the sizes of the batch (hddc_estep_dims / hddc_dims, hddc_bindings.h).
#define DIFFREP_ARGS_hddc_estep(ARG, T)                                                                 \
  ARG(DIM, hddc::Dims, s, hddc_estep_dims(x, unit_of, act, qt, dk, host)) ARG(IN, T, x, kAny)           \
  ARG(IN, int64_t, unit_of, s.B) ARG(IN, T, w, s.B * s.n) ARG(IN, T, mu, s.B * s.K * s.d)               \
  ARG(IN, T, qt, s.B * s.K * s.D * s.d) ARG(IN, T, ia, s.B * s.K * s.D) ARG(IN, int32_t, dk, s.B * s.K) \
  ARG(IN, int32_t, tri, s.B * s.K) ARG(IN, T, ib, s.B * s.K) ARG(IN, T, cst, s.B * s.K)                \
  ARG(IN, int32_t, act, s.B * s.K) ARG(IN, T, thr, s.B) ARG(VAL, bool, skip_zero)                       \
  ARG(OUT, T, resp, s.B * s.n * s.K) ARG(OUT, double, llp, s.B * s.n) ARG(OUT, double, L, s.B)          \
  ARG(OUT, int64_t, cnt, s.B * s.K)

#define DIFFREP_ARGS_hddc_stats(ARG, T)                                                                 \
  ARG(DIM, hddc::Dims, s, hddc_dims(x, unit_of, act, host))                                             \
  ARG(CHECK, expect(mode == hddc::kSoft || mode == hddc::kMember, "hddc_stats: mode must be 0 or 1"))   \
  ARG(IN, T, x, kAny) ARG(IN, int64_t, unit_of, s.B) ARG(IN, T, w, s.B * s.n)                           \
  ARG(IN, T, resp, s.B * s.n * s.K) ARG(IN, int32_t, act, s.B * s.K) ARG(VAL, int32_t, mode)            \
  ARG(VAL, T, phi) ARG(OUT, T, part, s.B * hddc::num_blocks(s.n) * hddc::stats_width(s, mode))         \
  ARG(OUT, double, mass, s.B * s.K) ARG(OUT, double, mean, s.B * s.K * s.d)                             \
  ARG(OUT, double, second, mode == hddc::kSoft ? s.B * s.K * s.d * s.d : s.B * s.K)

DIFFREP_DECLARE_OPS(DIFFREP_HDDC_OPS)
