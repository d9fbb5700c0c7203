// Per-element maths of the SAMI guidance score, shared by guidance_cpu.cpp and guidance_cuda.cu.
// Specification: python/diffrep/ops/reference/guidance.py and docs/methods/sami.md#eq-9-and-11-guidance-score and docs/kernels/guidance.md#second-derivatives.
//
// With s = log sigma^2 (the log-variance head), e = exp(-s), r_q = z_q - mu for the S samples
// q = 1..S, m1 = mean_q r_q, m2 = mean_q r_q^2, one element j of one row contributes
//   ell_j = -1/2 (m2 e + s + c)                (c = log 2 pi, or 0)
// to the row's mean log-density. Its first derivatives (docs/kernels/guidance.md#eq-9-the-guidance-as-one-vjp, log-variance form) are
//   d mu = m1 e,  d s = (m2 e - 1)/2,  d z_q = -r_q e / S,
// and the second derivatives (docs/kernels/guidance.md#second-derivatives: the Hessian in (mu, s) and the z-row) give the backward of
// the backward, for upstream cotangents (Gz_q, Gmu, Gs) of (d z_q, d mu, d s) and g of the row:
//   g-bar  += Gmu m1 e + Gs (m2 e - 1)/2 - e mean_q(Gz_q r_q)
//   mu-bar  = g e (-Gmu - Gs m1 + mean_q Gz_q)
//   s-bar   = g e (-Gmu m1 - Gs m2 / 2 + mean_q(Gz_q r_q))
//   z-bar_q = g e (Gmu + Gs r_q - Gz_q) / S
#pragma once
#include <cmath>
#include <cstdint>

#include "common/fast_math.h"
#include "common/errors.h"
#include "common/hd.h"

namespace diffrep {
namespace guidance {

using std::isfinite;

// e^-s through diffrep::fast_exp (~2 ulp, branch-free): libm's exp blocks vectorisation of the
// CPU row loops.
template <typename T>
DIFFREP_HD T exp_neg(T s) {
  return fast_exp(-s);
}

constexpr double kLog2Pi = 1.83787706640934548356;

// z holds S samples of the B x D matrix: sample q of element i is z[q * stride + i].
template <typename T>
struct Moments {
  T m1, m2;
};

template <typename T>
DIFFREP_HD Moments<T> moments(const T* z, int64_t S, int64_t stride, int64_t i, T mu) {
  T a = T(0), b = T(0);
  for (int64_t q = 0; q < S; ++q) {
    const T r = z[q * stride + i] - mu;
    a += r;
    b += r * r;
  }
  const T inv = T(1) / T(S);
  return {a * inv, b * inv};
}

// ell_j; sets bad when an input is not finite.
template <typename T>
DIFFREP_HD T forward_elem(const T* z, int64_t S, int64_t stride, int64_t i, T mu, T s, T c, int32_t& bad) {
  const Moments<T> m = moments(z, S, stride, i, mu);
  const T v = T(-0.5) * (m.m2 * exp_neg(s) + s + c);
  if (!isfinite(v)) bad |= kNonFiniteInput;
  return v;
}

template <typename T>
DIFFREP_HD void backward_elem(T g, const T* z, int64_t S, int64_t stride, int64_t i, T mu, T s, T* d_z, T* d_mu,
                              T* d_s) {
  const Moments<T> m = moments(z, S, stride, i, mu);
  const T e = exp_neg(s);
  d_mu[i] = g * m.m1 * e;
  d_s[i] = g * T(0.5) * (m.m2 * e - T(1));
  const T f = -g * e / T(S);
  for (int64_t q = 0; q < S; ++q) d_z[q * stride + i] = f * (z[q * stride + i] - mu);
}

// Upstream cotangents of the first backward's outputs; a null pointer means zero.
template <typename T>
struct Upstream {
  const T* gz;
  const T* gmu;
  const T* gs;
};

// Writes mu-bar, s-bar and z-bar of element i; returns its contribution to g-bar of the row.
template <typename T>
DIFFREP_HD T backward2_elem(T g, const T* z, int64_t S, int64_t stride, int64_t i, T mu, T s, Upstream<T> up,
                            T* z_bar, T* mu_bar, T* s_bar) {
  const Moments<T> m = moments(z, S, stride, i, mu);
  const T e = exp_neg(s);
  const T gmu = up.gmu ? up.gmu[i] : T(0), gs = up.gs ? up.gs[i] : T(0);
  T gz_mean = T(0), gzr_mean = T(0);
  if (up.gz) {
    for (int64_t q = 0; q < S; ++q) {
      const T gzq = up.gz[q * stride + i];
      gz_mean += gzq;
      gzr_mean += gzq * (z[q * stride + i] - mu);
    }
    gz_mean /= T(S);
    gzr_mean /= T(S);
  }
  const T ge = g * e;
  mu_bar[i] = ge * (-gmu - gs * m.m1 + gz_mean);
  s_bar[i] = ge * (-gmu * m.m1 - T(0.5) * gs * m.m2 + gzr_mean);
  const T f = ge / T(S);
  for (int64_t q = 0; q < S; ++q) {
    const T gzq = up.gz ? up.gz[q * stride + i] : T(0);
    z_bar[q * stride + i] = f * (gmu + gs * (z[q * stride + i] - mu) - gzq);
  }
  return gmu * m.m1 * e + gs * T(0.5) * (m.m2 * e - T(1)) - e * gzr_mean;
}

}  // namespace guidance
}  // namespace diffrep
