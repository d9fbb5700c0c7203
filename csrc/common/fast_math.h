// Branch-free log and sin/cos for the Box-Muller transform, written so that the compiler
// vectorises them (libm calls block vectorisation) and identical on CPU and GPU.
//
// Inputs are the Philox uniforms of philox.h: exact multiples of 2^-24 strictly inside (0, 1).
// Accuracy: float ~1e-7 relative, double ~1e-15 relative (the twin uses torch.log/cos/sin).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/hd.h"

namespace diffrep {

template <typename T>
struct FastMathTerms;
template <>
struct FastMathTerms<float> {
  static constexpr int log_terms = 5, sin_terms = 6, cos_terms = 7;
};
template <>
struct FastMathTerms<double> {
  static constexpr int log_terms = 11, sin_terms = 9, cos_terms = 10;
};

// The bits of a float as an unsigned integer of its size and back (std::bit_cast, also on the
// device, where memcpy of a register compiles to a move).
template <typename To, typename From>
DIFFREP_HD To bit_cast(From f) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
#if defined(__CUDA_ARCH__)
  To t;
  memcpy(&t, &f, sizeof(To));
  return t;
#else
  return __builtin_bit_cast(To, f);
#endif
}
DIFFREP_HD float bits_to_real(uint32_t b) { return bit_cast<float>(b); }
DIFFREP_HD double bits_to_real(uint64_t b) { return bit_cast<double>(b); }
DIFFREP_HD uint32_t real_to_bits(float f) { return bit_cast<uint32_t>(f); }
DIFFREP_HD uint64_t real_to_bits(double f) { return bit_cast<uint64_t>(f); }

// sum_{k<N} coef(k) x^k by Horner, unrolled at compile time (a loop would block vectorisation).
template <typename T, int K, int N, typename Coef>
struct Horner {
  DIFFREP_HD static T eval(T x) {
    if constexpr (K + 1 == N)
      return Coef::template at<T, K>();
    else
      return Coef::template at<T, K>() + x * Horner<T, K + 1, N, Coef>::eval(x);
  }
};

struct AtanhCoef {  // 1/(2k+1)
  template <typename T, int K>
  DIFFREP_HD static constexpr T at() { return T(1.0 / (2 * K + 1)); }
};

// ln(u): u = m 2^e with m in [sqrt(1/2), sqrt(2)), then ln m = 2 atanh(s) = 2 s (1 + s^2/3 + ...),
// s = (m - 1)/(m + 1), |s| <= 0.1716. Subnormals are scaled into the normal range first; 0 gives
// -inf, negative or NaN gives NaN, +inf gives +inf, as std::log does. All selects are between
// constants or finished values, so the caller's loop still vectorises.
template <typename T>
DIFFREP_HD T fast_log(T u) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  constexpr int mant = sizeof(T) == 4 ? 23 : 52;
  constexpr int bias = sizeof(T) == 4 ? 127 : 1023;
  constexpr T min_normal = sizeof(T) == 4 ? T(1.17549435e-38f) : T(2.2250738585072014e-308);
  const bool sub = u < min_normal;
  const T scaled = u * (sub ? T(18446744073709551616.0) : T(1));  // 2^64, exact
  const U bits = real_to_bits(scaled);
  constexpr U mant_mask = (U(1) << mant) - 1;
  // mantissa bits of sqrt(2): m = 1.mantissa > sqrt(2) is halved into [sqrt(1/2), 1), all in
  // integer arithmetic (a floating-point select here becomes a branch and stops vectorisation)
  constexpr U sqrt2_mant = sizeof(T) == 4 ? U(0x3504F3u) : U(0x6A09E667F3BCCull);
  const U big = (bits & mant_mask) > sqrt2_mant ? U(1) : U(0);
  const int e = static_cast<int>((bits >> mant) & ((U(1) << (sizeof(T) == 4 ? 8 : 11)) - 1)) - bias +
                static_cast<int>(big) - (sub ? 64 : 0);
  const T m = bits_to_real(static_cast<U>((bits & mant_mask) | ((static_cast<U>(bias) - big) << mant)));
  const T s = (m - T(1)) / (m + T(1));
  const T poly = Horner<T, 0, FastMathTerms<T>::log_terms, AtanhCoef>::eval(s * s);
  const T y = T(e) * T(0.693147180559945309417232121458) + T(2) * s * poly;
  return u == T(0) ? T(-INFINITY) : (!(u > T(0)) ? T(NAN) : (u == T(INFINITY) ? u : y));
}

// 1/n!, folded at compile time once the Horner loops below are unrolled.
DIFFREP_HD constexpr double inv_factorial(int n) {
  double f = 1;
  for (int i = 2; i <= n; ++i) f *= i;
  return 1.0 / f;
}

struct SinCoef {  // (-1)^k / (2k+1)!
  template <typename T, int K>
  DIFFREP_HD static constexpr T at() { return T((K & 1 ? -1.0 : 1.0) * inv_factorial(2 * K + 1)); }
};
struct CosCoef {  // (-1)^k / (2k)!
  template <typename T, int K>
  DIFFREP_HD static constexpr T at() { return T((K & 1 ? -1.0 : 1.0) * inv_factorial(2 * K)); }
};

// sin and cos of 2 pi u for u in [0, 1]: quadrant q = round(4u) (exact), theta = (4u - q) pi/2
// in [-pi/4, pi/4], Taylor polynomials, then the quadrant rotation.
template <typename T>
DIFFREP_HD void fast_sincos_2pi(T u, T& s, T& c) {
  const T v = T(4) * u;
  const T qf = static_cast<T>(static_cast<int>(v + T(0.5)));
  const int q = static_cast<int>(qf) & 3;
  const T th = (v - qf) * T(1.57079632679489661923132169164);
  const T t2 = th * th;
  // sin th = th sum_k (-1)^k th^2k / (2k+1)!, cos th = sum_k (-1)^k th^2k / (2k)!
  const T ps = Horner<T, 0, FastMathTerms<T>::sin_terms, SinCoef>::eval(t2);
  const T pc = Horner<T, 0, FastMathTerms<T>::cos_terms, CosCoef>::eval(t2);
  const T sn = th * ps, cn = pc;
  // q=0: (sin, cos); q=1: (cos, -sin); q=2: (-sin, -cos); q=3: (-cos, sin). Arithmetic signs
  // rather than branches keep the loop vectorisable.
  const T w = T(q & 1);  // exact blend: one of the two products is 0 * x
  const T a = w * cn + (T(1) - w) * sn, b = w * sn + (T(1) - w) * cn;
  s = a * T(1 - (q & 2));
  c = b * T(1 - ((q + 1) & 2));
}

// e^x by Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a Taylor polynomial for e^r and 2^n
// through the exponent bits. float ~2 ulp, double ~2 ulp; 0 below the normal range, inf above.
struct ExpCoef {  // 1/k!
  template <typename T, int K>
  DIFFREP_HD static constexpr T at() { return T(inv_factorial(K)); }
};

template <typename T>
DIFFREP_HD T fast_exp(T x) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  constexpr int mant = sizeof(T) == 4 ? 23 : 52;
  constexpr int bias = sizeof(T) == 4 ? 127 : 1023;
  constexpr int terms = sizeof(T) == 4 ? 8 : 14;
  constexpr T lo = sizeof(T) == 4 ? T(-87.3) : T(-708.3), hi = sizeof(T) == 4 ? T(88.7) : T(709.7);
  constexpr T ln2_hi = T(0.693145751953125), ln2_lo = T(1.42860682030941723212e-6);
  const T xc = x < lo ? lo : (x > hi ? hi : x);  // selects of x itself: no trapping arithmetic
  const T n = static_cast<T>(static_cast<int>(xc * T(1.44269504088896340736) + (xc < T(0) ? T(-0.5) : T(0.5))));
  const T r = (xc - n * ln2_hi) - n * ln2_lo;
  const T p = Horner<T, 0, terms, ExpCoef>::eval(r);
  const T scale = bits_to_real(static_cast<U>(static_cast<U>(static_cast<int>(n) + bias) << mant));
  const T y = p * scale;
  // Outside the clamped range: exactly 0 below and +inf above (NaN propagates through xc; y is
  // finite and > 0 otherwise, so y * 1 + 0 is y exactly). Arithmetic with selects between
  // constants, not `x < lo ? 0 : y`: GCC sinks y's computation into that select's branch and the
  // caller's loop stops vectorising ("control flow in loop"; 4x slower on AVX2).
  return y * (x < lo ? T(0) : T(1)) + (x > hi ? T(INFINITY) : T(0));
}

// erf for float: x P(x^2) on |x| <= 1, 1 - e^{-x^2} Q(1/x) on 1 < |x| <= 4, +-1 beyond (erfc(4) is
// below float's resolution at 1). Coefficients fitted for diffrep (Chebyshev-node least squares
// in 50-digit arithmetic): |error| < 1.5e-7, and e^{-x^2} Q(1/x) is erfc(x) to ~1e-7 relative.
// Double keeps libm's erf: its tail needs more than a well-conditioned polynomial in 1/x gives.
struct ErfParts {
  float body;  // erf(|x|) (1 for |x| > 4)
  float tail;  // erfc(|x|) = e^{-x^2} Q(1/|x|), used where 1 < |x| <= 4
};

DIFFREP_HD ErfParts fast_erf_parts(float a) {
  const float a2 = a * a;
  const float small = a * (1.128379167e+00f + a2 * (-3.761262988e-01f + a2 * (1.128362573e-01f + a2 * (
      -2.685539945e-02f + a2 * (5.191218377e-03f + a2 * (-8.034846650e-04f + a2 * 7.933493887e-05f))))));
  const float u = 1.f / (a > 1.f ? a : 1.f);
  const float q = 2.749467808e-04f + u * (5.589597449e-01f + u * (4.260821009e-02f + u * (-4.739520355e-01f + u * (
      5.021969965e-01f + u * (-2.492048154e-01f + u * (2.990831176e-02f + u * (2.566276961e-02f + u *
      -8.870569875e-03f)))))));
  const float tail = fast_exp(-a2) * q;
  return ErfParts{a <= 1.f ? small : (a <= 4.f ? 1.f - tail : 1.f), tail};
}

DIFFREP_HD float fast_erf(float x) {
  const float v = fast_erf_parts(x < 0.f ? -x : x).body;
  return x < 0.f ? -v : v;
}

// (1 + erf(x)) / 2, the standard normal CDF at sqrt(2) x. Below x = -1 it is erfc(|x|) / 2 taken
// from the tail directly: 1 + erf(x) would cancel there and keep only float's absolute resolution
// (a CDF of 1e-5 then carries ~1% error, which the discretised output distribution divides by).
DIFFREP_HD float fast_half_one_plus_erf(float x) {
  const ErfParts e = fast_erf_parts(x < 0.f ? -x : x);
  const float lower = x < -4.f ? 0.f : 0.5f * e.tail;
  return x < -1.f ? lower : 0.5f * (1.f + (x < 0.f ? -e.body : e.body));
}

// (1 - erf(a)) / 2 for a >= 0 (NaN propagates): fast_half_one_plus_erf(-a), bit for bit, without its
// selects on the sign (the split CDFs of the discretised distribution take every boundary's tail).
DIFFREP_HD float fast_half_erfc_nonneg(float a) {
  const ErfParts e = fast_erf_parts(a);
  return a > 1.f ? (a > 4.f ? 0.f : 0.5f * e.tail) : 0.5f * (1.f - e.body);
}

DIFFREP_HD double fast_erf(double x) {
#if defined(__CUDA_ARCH__)
  return ::erf(x);
#else
  return std::erf(x);
#endif
}

// Double: the same order of operations as torch.distributions.Normal.cdf (the twin), exact to its ulp.
DIFFREP_HD double fast_half_one_plus_erf(double x) { return 0.5 * (1.0 + fast_erf(x)); }

}  // namespace diffrep
