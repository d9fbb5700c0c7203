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

// The sums over samples run q = 0, 1, ..., S-1 and are then scaled by 1/S; the CPU kernels
// accumulate the same sums sample-major over a run of contiguous elements (guidance_cpu.cpp), in
// the same order (CPU and GPU can still differ by where the compilers contract into FMAs).
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

// ell_j from the second moment.
template <typename T>
DIFFREP_HD T log_density(T m2, T s, T c) {
  return T(-0.5) * (m2 * exp_neg(s) + s + c);
}

// ell_j; sets bad when an input is not finite.
template <typename T>
DIFFREP_HD T forward_elem(const T* z, int64_t S, int64_t stride, int64_t i, T mu, T s, T c, int32_t& bad) {
  const T v = log_density(moments(z, S, stride, i, mu).m2, s, c);
  if (!isfinite(v)) bad |= kNonFiniteInput;
  return v;
}

// g times the first derivatives in mu and s, and the factor f of d z_q = f r_q.
template <typename T>
struct FirstDerivatives {
  T d_mu, d_s, f;
};

template <typename T>
DIFFREP_HD FirstDerivatives<T> first_derivatives(T g, Moments<T> m, T s, int64_t S) {
  const T e = exp_neg(s);
  return {g * m.m1 * e, g * T(0.5) * (m.m2 * e - T(1)), -g * e / T(S)};
}

template <typename T>
DIFFREP_HD void backward_elem(T g, const T* z, int64_t S, int64_t stride, int64_t i, T mu, T s, T* d_z, T* d_mu,
                              T* d_s) {
  const FirstDerivatives<T> d = first_derivatives(g, moments(z, S, stride, i, mu), s, S);
  d_mu[i] = d.d_mu;
  d_s[i] = d.d_s;
  for (int64_t q = 0; q < S; ++q) d_z[q * stride + i] = d.f * (z[q * stride + i] - mu);
}

// Upstream cotangents of the first backward's outputs; a null pointer means zero.
template <typename T>
struct Upstream {
  const T* gz;
  const T* gmu;
  const T* gs;
};

// The backward of the backward at one element, given the moments and the sample means of the
// upstream Gz_q and Gz_q r_q: mu-bar, s-bar, the factor f of z-bar_q = f (Gmu + Gs r_q - Gz_q),
// and the element's contribution to g-bar of its row.
template <typename T>
struct SecondDerivatives {
  T mu_bar, s_bar, f, g_bar;
};

template <typename T>
DIFFREP_HD SecondDerivatives<T> second_derivatives(T g, Moments<T> m, T s, int64_t S, T gmu, T gs, T gz_mean,
                                                   T gzr_mean) {
  const T e = exp_neg(s);
  const T ge = g * e;
  return {ge * (-gmu - gs * m.m1 + gz_mean), ge * (-gmu * m.m1 - T(0.5) * gs * m.m2 + gzr_mean), ge / T(S),
          gmu * m.m1 * e + gs * T(0.5) * (m.m2 * e - T(1)) - e * gzr_mean};
}

// Writes mu-bar, s-bar and z-bar of element i; returns its contribution to g-bar of the row.
template <typename T>
DIFFREP_HD T backward2_elem(T g, const T* z, int64_t S, int64_t stride, int64_t i, T mu, T s, Upstream<T> up,
                            T* z_bar, T* mu_bar, T* s_bar) {
  const Moments<T> m = moments(z, S, stride, i, mu);
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
  const SecondDerivatives<T> d = second_derivatives(g, m, s, S, gmu, gs, gz_mean, gzr_mean);
  mu_bar[i] = d.mu_bar;
  s_bar[i] = d.s_bar;
  for (int64_t q = 0; q < S; ++q) {
    const T gzq = up.gz ? up.gz[q * stride + i] : T(0);
    z_bar[q * stride + i] = d.f * (gmu + gs * (z[q * stride + i] - mu) - gzq);
  }
  return d.g_bar;
}

}  // namespace guidance
}  // namespace diffrep
