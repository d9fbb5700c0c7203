// CPU-only item bodies of the K-wide BFN ops, written so that GCC vectorises them (one
// `omp simd` loop per pass over the K classes, reductions declared, error conditions combined
// with bitwise | rather than || / && so no branch enters a loop), and K = 2 bodies as
// straight-line code for loops over items. Same maths as the element bodies of bfn_math.h (which
// the CUDA kernels keep); where a fast form can lose range (probability-space products that
// underflow), the item falls back to the log-space body of bfn_math.h. See
// docs/kernels/bfn.md#performance.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "bfn/bfn_cpu_v4.h"
#include "bfn/bfn_math.h"

namespace diffrep {
namespace cpu {
namespace items {

using namespace bfn;

template <typename T>
inline int32_t finite_bit(T v) {  // 1 for inf and NaN, vectorisable
  return !(fabs(v) <= std::numeric_limits<T>::max());
}

// Below this sum the probability-space update may have lost classes to underflow: redo the item
// in log space (bfn_math.h disc_update_elem).
template <typename T>
constexpr T kMinProductSum = T(9.094947017729282e-13);  // 2^-40

// ln u = hi + lo for a normal positive finite u (a usable sum; callers exclude the rest), as
// common/fast_math.h's fast_log computes it: u = m 2^e with m in [sqrt(1/2), sqrt(2)), hi = e ln2_hi
// (exact: ln2_hi has 15 (float) / 32 (double) significant bits, e at most 8 / 11), lo = e ln2_lo +
// ln m (|lo| < 0.35). A log-probability a - ln u is formed as (a - hi) - lo: a - hi is exact near
// the largest class, where a - fl(ln u) rounded it to the ulp of ln u (7.6e-6 in float at logits
// ~100; the twin's log_softmax subtracts the max first). v4::log16_parts_normal is the AVX-512 copy.
template <typename T>
inline T log_parts_normal(T u, T& hi) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  constexpr int mant = sizeof(T) == 4 ? 23 : 52;
  constexpr U bias = sizeof(T) == 4 ? 127 : 1023;
  constexpr U mant_mask = (U(1) << mant) - 1;
  constexpr U sqrt2_mant = sizeof(T) == 4 ? U(0x3504F3u) : U(0x6A09E667F3BCCull);
  constexpr T ln2_hi = sizeof(T) == 4 ? T(0.693145751953125) : T(6.93147180369123816490e-01);
  constexpr T ln2_lo = sizeof(T) == 4 ? T(1.42860682030941723212e-6) : T(1.90821492927058770002e-10);
  const U bits = real_to_bits(u);
  const U big = (bits & mant_mask) > sqrt2_mant ? U(1) : U(0);  // m > sqrt(2): halve it
  const T e = T(static_cast<int>(bits >> mant) - static_cast<int>(bias) + static_cast<int>(big));
  const T m = bits_to_real(static_cast<U>((bits & mant_mask) | ((bias - big) << mant)));
  const T s = (m - T(1)) / (m + T(1));
  const T poly = Horner<T, 0, FastMathTerms<T>::log_terms, AtanhCoef>::eval(s * s);
  hi = e * ln2_hi;
  return e * ln2_lo + T(2) * s * poly;
}

// theta' proportional to theta e^(sign y) over K classes (BFN Eq. 168), one item. Probability
// space: e_k = theta_k exp(sign y_k - max_j sign y_j), one exp per class and no log (the log-space
// body costs a log and two exps); log space (log_io): l_k = theta_k + sign y_k - logsumexp, as
// (l_k - max) - log(sum), the twin's log_softmax order (disc_update_elem's).
template <typename T>
inline void disc_update_item(const T* theta, const T* y, int64_t K, T sign, bool log_io, T* out, int32_t& flags) {
  int32_t bad = 0;
  T mx = -INFINITY;
  if (log_io) {
#pragma omp simd reduction(max : mx) reduction(| : bad)
    for (int64_t k = 0; k < K; ++k) {
      const T th = theta[k], yk = y[k];
      bad |= int32_t(!(th <= T(0))) | int32_t(!(yk - yk == T(0)));
      const T l = th + sign * yk;
      mx = l > mx ? l : mx;
    }
    if (!(mx > -INFINITY)) {  // every class at -inf (or NaN): the log-space body flags it
      disc_update_elem(theta, [y](int64_t k) { return y[k]; }, K, sign, log_io, out, flags);
      return;
    }
    T sum = T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < K; ++k) sum += fast_exp(theta[k] + sign * y[k] - mx);
    const T ls = fast_log(sum);
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) out[k] = (theta[k] + sign * y[k] - mx) - ls;
    if (bad) flags |= kNonFiniteInput;
    return;
  }
#pragma omp simd reduction(max : mx) reduction(| : bad)
  for (int64_t k = 0; k < K; ++k) {
    const T th = theta[k], v = sign * y[k];
    bad |= int32_t(th < T(0)) | int32_t(th > T(1)) | int32_t(th != th) | int32_t(!(v - v == T(0)));
    mx = v > mx ? v : mx;
  }
  T sum = T(0);
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < K; ++k) {
    const T e = theta[k] * fast_exp(sign * y[k] - mx);
    out[k] = e;
    sum += e;
  }
  if (bad || !(sum >= kMinProductSum<T>)) {  // invalid input, or possible underflow: log space
    disc_update_elem(theta, [y](int64_t k) { return y[k]; }, K, sign, log_io, out, flags);
    return;
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t k = 0; k < K; ++k) out[k] *= inv;
}

// Items [i0, i1) of K >= 16 classes in groups of 16 through v4::update_group16 (one pass over the
// values, 16 sums reduced at once); returns the first item it did not do (the rest of the tile
// goes through the flat passes). Items of a group with invalid input are redone one by one (which
// flags them), items with unusable sums by disc_update_item. docs/kernels/bfn.md#performance.
template <bool log_io, typename T>
inline int64_t disc_update_groups16(const T* theta, const T* y, int64_t K, int64_t i0, int64_t i1, T sign, T* out,
                                    int32_t& flags) {
#ifdef DIFFREP_HAVE_BFN_V4
  if constexpr (std::is_same<T, float>::value) {
    if (K < 16 || !v4::available()) return i0;
    for (; i0 + 16 <= i1; i0 += 16) {
      const float *th = theta + i0 * K, *yy = y + i0 * K;
      float* o = out + i0 * K;
      const auto group = [&](auto negate) {  // the instantiation for K (16, 256, a multiple of 16, other)
        constexpr bool neg = decltype(negate)::value;
        if (K == 16) return v4::update_group16<log_io, true, neg, 16>(th, yy, K, o);
        if (K == 256) return v4::update_group16<log_io, true, neg, 256>(th, yy, K, o);
        return K % 16 == 0 ? v4::update_group16<log_io, true, neg>(th, yy, K, o)
                           : v4::update_group16<log_io, false, neg>(th, yy, K, o);
      };
      const int32_t r = sign > 0 ? group(std::false_type{}) : group(std::true_type{});
      if (r == 0) continue;
      for (int64_t i = 0; i < 16; ++i)
        if (r == -1 || (r >> i) & 1)
          disc_update_item(theta + (i0 + i) * K, y + (i0 + i) * K, K, sign, log_io, out + (i0 + i) * K, flags);
    }
  }
#endif
  return i0;
}

// The probability-space update of items [i0, i1) of K classes (K >= 3) in two flat passes:
// e_j = theta_j exp(sign y_j) over all (i1 - i0) K values of the tile in one vectorised loop (no
// per-item loop set-up, no max: exp only overflows where y > 88 in float), then per item one sum
// and a scale. An item whose sum is not in [2^-40, max] (an exp overflowed, or classes may have
// underflowed) is redone by disc_update_item, which shifts by the max and falls back to log space;
// a tile with invalid input is redone item by item (which flags it). Same result as
// disc_update_item up to rounding (docs/kernels/bfn.md#performance).
template <typename T>
inline int32_t disc_update_tile(const T* __restrict theta, const T* __restrict y, int64_t K, int64_t i0, int64_t i1,
                                T sign, T* __restrict out) {
  int32_t flags = 0;
  i0 = disc_update_groups16<false>(theta, y, K, i0, i1, sign, out, flags);
  if (i0 == i1) return flags;
  int32_t bad = 0;
  const int64_t b = i0 * K, e = i1 * K;
#ifdef DIFFREP_HAVE_BFN_V4
  if (std::is_same<T, float>::value && v4::available()) {
    bad = v4::update_flat(reinterpret_cast<const float*>(theta), reinterpret_cast<const float*>(y), float(sign), b, e,
                          reinterpret_cast<float*>(out));
  } else
#endif
  {
#pragma omp simd reduction(| : bad)
    for (int64_t j = b; j < e; ++j) {
      const T th = theta[j], v = sign * y[j];
      bad |= int32_t(th < T(0)) | int32_t(th > T(1)) | int32_t(th != th) | int32_t(!(v - v == T(0)));
      out[j] = th * fast_exp(v);
    }
  }
  if (bad) {
    for (int64_t i = i0; i < i1; ++i) disc_update_item(theta + i * K, y + i * K, K, sign, false, out + i * K, flags);
    return flags;
  }
  for (int64_t i = i0; i < i1; ++i) {
    T* __restrict o = out + i * K;
    T sum = T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < K; ++k) sum += o[k];
    if (!(sum >= kMinProductSum<T>) || !(sum <= std::numeric_limits<T>::max())) {
      disc_update_item(theta + i * K, y + i * K, K, sign, false, o, flags);
      continue;
    }
    const T inv = T(1) / sum;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) o[k] *= inv;
  }
  return flags;
}

// The log-space update (log_io) of items [i0, i1) of K classes (K >= 3): l'_k = l_k + sign y_k -
// log sum_j e^(l_j + sign y_j). One flat vectorised pass writes a = l + sign y and e^a (scratch);
// per item one sum and min((a - hi) - lo, 0) with log(sum) = hi + lo (log_parts_normal: no max
// needed to keep the digits of log-probabilities near 0). No max shift: the sum of e^a is used
// where it lies in [2^-40, max] (terms that underflowed are then below 1e-26 of it);
// log-probabilities of tiny classes stay exact, as they are a - lse, not logs of products. Other items are redone by
// disc_update_item (max-shifted), a tile with invalid input item by item (which flags it).
// (Before: three per-item passes with a horizontal max, 0.17-0.74x the eager twin.)
template <typename T>
inline int32_t disc_update_tile_log(const T* __restrict theta, const T* __restrict y, int64_t K, int64_t i0,
                                    int64_t i1, T sign, T* __restrict out) {
  int32_t flags = 0;
  i0 = disc_update_groups16<true>(theta, y, K, i0, i1, sign, out, flags);
  if (i0 == i1) return flags;
  thread_local std::vector<T> scratch;
  scratch.resize(static_cast<size_t>((i1 - i0) * K));
  T* __restrict ex = scratch.data() - i0 * K;
  int32_t bad = 0;
  const int64_t b = i0 * K, e = i1 * K;
#ifdef DIFFREP_HAVE_BFN_V4
  if (std::is_same<T, float>::value && v4::available()) {
    bad = v4::update_flat_log(reinterpret_cast<const float*>(theta), reinterpret_cast<const float*>(y), float(sign), b,
                              e, reinterpret_cast<float*>(out), reinterpret_cast<float*>(ex));
  } else
#endif
  {
#pragma omp simd reduction(| : bad)
    for (int64_t j = b; j < e; ++j) {
      const T th = theta[j], v = sign * y[j];
      bad |= int32_t(!(th <= T(0))) | int32_t(!(v - v == T(0)));  // log-probabilities: <= 0, -inf allowed
      const T a = th + v;
      out[j] = a;
      ex[j] = fast_exp(a);
    }
  }
  if (bad) {
    for (int64_t i = i0; i < i1; ++i) disc_update_item(theta + i * K, y + i * K, K, sign, true, out + i * K, flags);
    return flags;
  }
  // per block of items: the sums, their logs in one vectorised loop (a scalar fast_log per item
  // cost more than the item's sum), the subtractions; odd sums are redone afterwards
  constexpr int64_t kBlock = 256;
  T lse[kBlock], lse_hi[kBlock];  // log(sum) = lse_hi + lse (the sum first)
  for (int64_t c0 = i0; c0 < i1; c0 += kBlock) {
    const int64_t m = i1 - c0 < kBlock ? i1 - c0 : kBlock;
    for (int64_t i = 0; i < m; ++i) {
      const T* __restrict ei = ex + (c0 + i) * K;
      T sum = T(0);
#pragma omp simd reduction(+ : sum)
      for (int64_t k = 0; k < K; ++k) sum += ei[k];
      lse[i] = sum;
    }
    int32_t odd = 0;
#pragma omp simd reduction(| : odd)
    for (int64_t i = 0; i < m; ++i) {
      const T sum = lse[i];
      const int32_t o = int32_t(!(sum >= kMinProductSum<T>)) | int32_t(!(sum <= std::numeric_limits<T>::max()));
      odd |= o;
      const T lo = log_parts_normal(sum, lse_hi[i]);
      lse[i] = o ? T(NAN) : lo;  // NaN marks the items to redo
    }
    for (int64_t i = 0; i < m; ++i) {
      T* __restrict o = out + (c0 + i) * K;
      const T hi = lse_hi[i], lo = lse[i];
#pragma omp simd
      for (int64_t k = 0; k < K; ++k) {  // at most 0, which the unshifted sum does not guarantee
        const T v = (o[k] - hi) - lo;
        o[k] = v < T(0) ? v : T(0);
      }
    }
    if (odd)
      for (int64_t i = 0; i < m; ++i)
        if (lse[i] != lse[i]) disc_update_item(theta + (c0 + i) * K, y + (c0 + i) * K, K, sign, true, out + (c0 + i) * K, flags);
  }
  return flags;
}

// The K = 2 update as straight-line code (a loop over items vectorises). Returns 0, or -1 when
// the item must be redone by disc_update_item (invalid input or underflow in probability space).
template <bool log_io, typename T>
inline int32_t disc_update2(const T* theta, T y0, T y1, T sign, T* out) {
  const T t0 = theta[0], t1 = theta[1];
  const T d = sign * (y1 - y0);  // class 1's log-odds gain
  const T w = fast_exp(-fabs(d));
  const int32_t ybad = int32_t(!(y0 - y0 == T(0))) | int32_t(!(y1 - y1 == T(0)));
  if constexpr (log_io) {
    // logsumexp(a, b) = max + log(1 + e^-|a - b|), subtracted as (a - max) - log(1 + e^-|a - b|),
    // the twin's order: a - max is exact, so the larger class keeps the digits of its log-probability
    const T a = t0 + sign * y0, b = t1 + sign * y1;
    const T mx = a > b ? a : b;
    const T ls = fast_log(T(1) + fast_exp(-(a > b ? a - b : b - a)));
    out[0] = (a - mx) - ls;
    out[1] = (b - mx) - ls;
    return -(int32_t(!(t0 <= T(0))) | int32_t(!(t1 <= T(0))) | ybad | int32_t(!(mx > -INFINITY)));
  } else {
  const bool up = d > T(0);
  const T a0 = up ? t0 * w : t0, a1 = up ? t1 : t1 * w;
  const T s = a0 + a1, inv = T(1) / s;
  out[0] = a0 * inv;
  out[1] = a1 * inv;
  return -(int32_t(t0 < T(0)) | int32_t(t0 > T(1)) | int32_t(t0 != t0) | int32_t(t1 < T(0)) | int32_t(t1 > T(1)) |
           int32_t(t1 != t1) | ybad | int32_t(!(s >= kMinProductSum<T>)));
  }
}

// Bin probabilities of K bins (BFN Eq. 103-104) for one item: the boundaries' split CDFs (bfn_math.h,
// split_cdf) of a block of bins into small buffers, then differences (both loops vectorise). b_next
// (float on AVX-512 only: the K boundaries b_1 .. b_K, disc_probs_many_bins) takes v4::probs_item
// instead.
template <typename T>
inline void disc_probs_item(T mu_x, T sigma_x, int64_t K, bool clip, T* out, int32_t& flags,
                            const float* b_next = nullptr) {
  flags |= (finite_bit(mu_x) | finite_bit(sigma_x)) ? int32_t(kNonFiniteInput) : 0;
  flags |= !(sigma_x > T(0)) ? int32_t(kNonPositive) : 0;
  const T inv_s = T(1) / sigma_x;
  const SplitCdf<T> lo = clip ? split_cdf_lowest<T>() : split_cdf(T(-1), mu_x, inv_s);
  const SplitCdf<T> hi = clip ? split_cdf_highest<T>() : split_cdf(T(1), mu_x, inv_s);
  const T R = cdf_diff(hi, lo);
  const bool uniform = !clip && R < T(kMinProb);
  const T scale = clip ? T(1) : T(1) / R;
#ifdef DIFFREP_HAVE_BFN_V4
  if (std::is_same<T, float>::value && b_next) {
    if (uniform) {
      for (int64_t k = 0; k < K; ++k) out[k] = T(1) / T(K);
    } else {
      v4::probs_item(float(mu_x), float(inv_s), K, float(lo.v), float(lo.s), float(hi.v), float(hi.s), float(scale),
                     b_next, reinterpret_cast<float*>(out));
    }
    return;
  }
#endif
  constexpr int64_t kBlock = 256;
  T v[kBlock + 1], st[kBlock + 1];
  SplitCdf<T> prev = lo;  // b_0
  for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
    const int64_t k1 = k0 + kBlock < K ? k0 + kBlock : K;
    v[0] = prev.v;
    st[0] = prev.s;
    // b_{k+1}, computed for every k (a select around the call would become a branch and stop
    // vectorisation); the last boundary b_K = 1 is then set to hi
#pragma omp simd
    for (int64_t k = k0; k < k1; ++k) {
      const SplitCdf<T> c = split_cdf(boundary<T>(k + 1, K), mu_x, inv_s);
      v[k - k0 + 1] = c.v;
      st[k - k0 + 1] = c.s;
    }
    if (k1 == K) {
      v[k1 - k0] = hi.v;
      st[k1 - k0] = hi.s;
    }
#pragma omp simd
    for (int64_t k = k0; k < k1; ++k)
      out[k] = cdf_diff(SplitCdf<T>{v[k - k0 + 1], st[k - k0 + 1]}, SplitCdf<T>{v[k - k0], st[k - k0]}) * scale;
    prev = SplitCdf<T>{v[k1 - k0], st[k1 - k0]};
  }
  if (uniform)
    for (int64_t k = 0; k < K; ++k) out[k] = T(1) / T(K);
}

// The discretised mean's boundary sums (bfn_math.h, LoopBoundarySums) on the CPU: float with
// K >= 3 on AVX-512 through v4::boundary_sums16, otherwise the loop.
struct CpuBoundarySums {
  template <typename T>
  static BoundarySums<T> eval(T mu_x, T inv_s, int64_t K, bool want_grad) {
#ifdef DIFFREP_HAVE_BFN_V4
    if (std::is_same<T, float>::value && K >= 3 && v4::available()) {
      float c, p, zp;
      if (want_grad) v4::boundary_sums16<true>(float(mu_x), float(inv_s), K, c, p, zp);
      else v4::boundary_sums16<false>(float(mu_x), float(inv_s), K, c, p, zp);
      return BoundarySums<T>{T(c), T(p), T(zp)};
    }
#endif
    return LoopBoundarySums::eval(mu_x, inv_s, K, want_grad);
  }
};

// disc_probs_item for items [i0, i1) with many bins (K >= 16): float on AVX-512 through
// v4::probs_item, 16 boundaries per step from a table of the K boundaries b_1 .. b_K built once (the
// same values as boundary()); otherwise item by item. Same maths and flags as disc_probs_item.
template <typename T>
inline int32_t disc_probs_many_bins(const T* mu_x, const T* sigma_x, int64_t K, bool clip, int64_t i0, int64_t i1,
                                    T* out) {
  int32_t flags = 0;
  std::vector<float> b_next;
#ifdef DIFFREP_HAVE_BFN_V4
  if (std::is_same<T, float>::value && v4::available()) {
    b_next.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) b_next[k] = boundary<float>(k + 1, K);
  }
#endif
  const float* table = b_next.empty() ? nullptr : b_next.data();
  for (int64_t i = i0; i < i1; ++i) disc_probs_item(mu_x[i], sigma_x[i], K, clip, out + i * K, flags, table);
  return flags;
}

// disc_probs_item for items [i0, i1) with few bins (3 <= K < 16), vectorised over items: per
// item and bin the loop over K bins is too short to vectorise (K = 3 at 1e5 items: 8.7 ms, a
// quarter of the eager twin's speed). For up to kMaxItems items at a time, each boundary is one
// vectorised loop over the items: its split CDF, and the bin below it as the difference with the
// previous boundary's, into a bins-major buffer, which is then written item by item. Same maths
// and flags as disc_probs_item.
template <bool clip, typename T>
inline int32_t disc_probs_few_bins(const T* __restrict mu_x, const T* __restrict sigma_x, int64_t K, int64_t i0,
                                   int64_t i1, T* __restrict out) {
  constexpr int64_t kMaxItems = 256;
  T p[15 * kMaxItems];  // K x m bin probabilities, K < 16
  T v[kMaxItems], st[kMaxItems], hi_v[kMaxItems], hi_s[kMaxItems];  // split CDF at the boundary below; at b_K
  T scale[kMaxItems], inv_sigma[kMaxItems];
  int32_t flags = 0;
  for (int64_t c0 = i0; c0 < i1; c0 += kMaxItems) {
    const int64_t m = i1 - c0 < kMaxItems ? i1 - c0 : kMaxItems;
    const T* __restrict mu = mu_x + c0;
    const T* __restrict sg = sigma_x + c0;
    int32_t f = 0;
#pragma omp simd reduction(| : f)
    for (int64_t i = 0; i < m; ++i) {
      const T inv_s = T(1) / sg[i];
      inv_sigma[i] = inv_s;
      f |= ((finite_bit(mu[i]) | finite_bit(sg[i])) ? int32_t(kNonFiniteInput) : 0) |
           (!(sg[i] > T(0)) ? int32_t(kNonPositive) : 0);
      const SplitCdf<T> lo = clip ? split_cdf_lowest<T>() : split_cdf(T(-1), mu[i], inv_s);
      const SplitCdf<T> hi = clip ? split_cdf_highest<T>() : split_cdf(T(1), mu[i], inv_s);
      v[i] = lo.v;
      st[i] = lo.s;
      hi_v[i] = hi.v;
      hi_s[i] = hi.s;
      const T R = cdf_diff(hi, lo);  // clip = False: uniform 1/K where R < kMinProb (scale 0 marks it)
      scale[i] = clip ? T(1) : (R < T(kMinProb) ? T(0) : T(1) / R);
    }
    flags |= f;
    // bin j - 1 = [b_{j-1}, b_j); b_K is hi (a select of it inside the loop would become a branch
    // around split_cdf and stop vectorisation)
    const auto bin = [&](int64_t i, SplitCdf<T> c) {
      const T q = scale[i] == T(0) ? T(1) / T(K) : cdf_diff(c, SplitCdf<T>{v[i], st[i]}) * scale[i];
      v[i] = c.v;
      st[i] = c.s;
      return q;
    };
    for (int64_t j = 1; j < K; ++j) {
      const T b = boundary<T>(j, K);
      T* __restrict pj = p + (j - 1) * m;
#pragma omp simd
      for (int64_t i = 0; i < m; ++i) pj[i] = bin(i, split_cdf(b, mu[i], inv_sigma[i]));
    }
    T* __restrict p_last = p + (K - 1) * m;
#pragma omp simd
    for (int64_t i = 0; i < m; ++i) p_last[i] = bin(i, SplitCdf<T>{hi_v[i], hi_s[i]});
    for (int64_t i = 0; i < m; ++i) {
      T* __restrict o = out + (c0 + i) * K;
      for (int64_t k = 0; k < K; ++k) o[k] = p[k * m + i];
    }
  }
  return flags;
}

// K = 2 as straight-line code (the single interior boundary is 0). Returns the error flags.
// (clip is a template argument: `clip ? 0 : split_cdf(...)` inside the item loop would become a
// branch and stop vectorisation.)
template <bool clip, typename T>
inline int32_t disc_probs2(T mu_x, T sigma_x, T* out) {
  const int32_t flags = ((finite_bit(mu_x) | finite_bit(sigma_x)) ? int32_t(kNonFiniteInput) : 0) |
                        (!(sigma_x > T(0)) ? int32_t(kNonPositive) : 0);
  const T inv_s = T(1) / sigma_x;
  const SplitCdf<T> mid = split_cdf(T(0), mu_x, inv_s);
  if constexpr (clip) {
    out[0] = cdf_diff(mid, split_cdf_lowest<T>());
    out[1] = cdf_diff(split_cdf_highest<T>(), mid);
  } else {
    const SplitCdf<T> lo = split_cdf(T(-1), mu_x, inv_s), hi = split_cdf(T(1), mu_x, inv_s);
    const T R = cdf_diff(hi, lo);
    const bool uniform = R < T(kMinProb);
    const T inv = uniform ? T(1) : T(1) / R;
    out[0] = uniform ? T(0.5) : cdf_diff(mid, lo) * inv;
    out[1] = uniform ? T(0.5) : cdf_diff(hi, mid) * inv;
  }
  return flags;
}

// disc_cts_loss_elem (bfn_math.h) for K = 2 as straight-line code, so a loop over the elements of a
// row (one t, so one TimeConsts) vectorises: output_normal_params and discretised_mean with the one
// interior boundary b_1 = 0 (2 / K = 1, c_K = 1/2), early returns turned into selects. Same maths,
// order of operations and flags. (clip, noise_pred, want_grad are template arguments: a branch on
// them inside the loop would stop vectorisation, and so does reading tc.masked, a bool: rows with
// noise_pred and t < kMinT, whose x_hat comes from N(0, 1), stay with disc_cts_loss_elem.)
template <bool clip, bool noise_pred, bool want_grad, typename T>
inline int32_t disc_cts_loss2(T out_mean, T out_log_sigma, T mu, const TimeConsts<T>& tc, T x, T* loss, T* d_mean,
                              T* d_log_sigma) {
  const int32_t flags =
      ((finite_bit(out_mean) | finite_bit(out_log_sigma) | finite_bit(mu) | finite_bit(x)) ? int32_t(kNonFiniteInput) : 0) |
      (!(x >= T(-1) && x <= T(1)) ? int32_t(kOutsideDataRange) : 0);
  // output_normal_params
  const bool ls_in = out_log_sigma >= T(-kSafeExp) && out_log_sigma <= T(kSafeExp);
  const T ls = out_log_sigma < T(-kSafeExp) ? T(-kSafeExp) : (out_log_sigma > T(kSafeExp) ? T(kSafeExp) : out_log_sigma);
  const T mu_x = noise_pred ? mu / tc.gamma - tc.scale * out_mean : out_mean;
  const T dmu_dout = noise_pred ? -tc.scale : T(1);
  const T sigma = noise_pred ? tc.scale * fast_exp(ls) : fast_exp(ls);
  const bool s_in = sigma >= T(kMinStd) && sigma <= T(kMaxStd);
  const T sigma_x = sigma < T(kMinStd) ? T(kMinStd) : (sigma > T(kMaxStd) ? T(kMaxStd) : sigma);
  const T dsig_dlogsig = (ls_in && s_in) ? sigma : T(0);
  // discretised_mean at |mu_x|, the sign restored at the end
  const bool neg = mu_x < T(0);
  const T m = neg ? -mu_x : mu_x;
  const T inv_s = T(1) / sigma_x;
  const T z = (T(0) - m) * inv_s;
  const T phi = normal_pdf_std(z);
  const T sum_cdf = fast_half_one_plus_erf(z * T(kInvSqrt2));
  T x_hat, dm, ds;
  if constexpr (clip) {
    x_hat = T(0.5) - T(1) * sum_cdf;
    dm = T(1) * phi * inv_s;
    ds = T(1) * (z * phi) * inv_s;
  } else {
    const T lo = normal_cdf(T(-1), m, inv_s), hi = normal_cdf(T(1), m, inv_s);
    const T R = hi - lo;
    const bool uniform = R < T(kMinProb);  // mean 0, no gradient
    const T N = T(0.5) * (hi + lo) - T(1) * sum_cdf;
    const T xh = N / R;
    const T z_lo = (T(-1) - m) * inv_s, z_hi = (T(1) - m) * inv_s;
    const T f_lo = normal_pdf_std(z_lo), f_hi = normal_pdf_std(z_hi);
    const T dN_mu = (-T(0.5) * (f_hi + f_lo) + T(1) * phi) * inv_s;
    const T dN_s = (-T(0.5) * (z_hi * f_hi + z_lo * f_lo) + T(1) * (z * phi)) * inv_s;
    const T dR_mu = (-f_hi + f_lo) * inv_s;
    const T dR_s = (-z_hi * f_hi + z_lo * f_lo) * inv_s;
    x_hat = uniform ? T(0) : xh;
    dm = uniform ? T(0) : (dN_mu - xh * dR_mu) / R;
    ds = uniform ? T(0) : (dN_s - xh * dR_s) / R;
  }
  x_hat = neg ? -x_hat : x_hat;
  ds = neg ? -ds : ds;  // d/dmu: the two sign flips cancel
  const T diff = x_hat - x;
  if constexpr (want_grad) {
    const T dl = T(2) * tc.weight * diff;
    *d_mean = dl * dm * dmu_dout;
    *d_log_sigma = dl * ds * dsig_dlogsig;
  }
  *loss = tc.weight * diff * diff;
  return flags;
}

// Discrete flow (BFN Eq. 185) for one item: softmax(beta (K e_x - 1) + sqrt(beta K) eps).
template <typename T>
inline void disc_flow_item(int64_t xi, T t, int64_t K, T sqrt_beta1, const T* eps, T* o, int32_t& flags) {
  T beta;
  if (!disc_flow_beta(xi, t, K, sqrt_beta1, o, flags, beta)) return;
  const T sd = sqrt(beta * T(K));
  const T hit = beta * T(K - 1), miss = -beta;
  T mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t k = 0; k < K; ++k) {
    const T l = (k == xi ? hit : miss) + sd * eps[k];
    o[k] = l;
    mx = l > mx ? l : mx;
  }
  T sum = T(0);
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < K; ++k) {
    const T e = fast_exp(o[k] - mx);
    o[k] = e;
    sum += e;
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t k = 0; k < K; ++k) o[k] *= inv;
}

// disc_flow_item without the max pass: shifted by the logit of the true class x, l_k - l_x =
// sd (eps_k - eps_x) - beta K for k != x and 0 for k = x, so the sum is >= 1 (no underflow) and
// with Philox normals (|eps| <= 5.8, 24-bit uniforms) l_k - l_x <= max_s (11.6 s - s^2) = 33.3
// (no overflow). Injected noise can overflow: such an item is redone by disc_flow_item. One exp
// pass with the sum, one scale pass, no horizontal max (docs/kernels/bfn.md#performance).
template <typename T>
inline void disc_flow_item_shifted(int64_t xi, T t, int64_t K, T sqrt_beta1, const T* __restrict eps, T* __restrict o,
                                   int32_t& flags) {
  T beta;
  if (!disc_flow_beta(xi, t, K, sqrt_beta1, o, flags, beta)) return;
  const T sd = sqrt(beta * T(K)), bk = beta * T(K), ex = eps[xi];
#ifdef DIFFREP_HAVE_BFN_V4
  if (std::is_same<T, float>::value && v4::available()) {
    const float sum = v4::flow_item_shifted(xi, float(sd), float(bk), reinterpret_cast<const float*>(eps), K,
                                            reinterpret_cast<float*>(o));
    if (!(sum <= std::numeric_limits<float>::max())) disc_flow_item(xi, t, K, sqrt_beta1, eps, o, flags);
    return;
  }
#endif
  T sum = T(0);
#pragma omp simd reduction(+ : sum)
  for (int64_t k = 0; k < K; ++k) {
    const T v = fast_exp(sd * (eps[k] - ex) - (k == xi ? T(0) : bk));
    o[k] = v;
    sum += v;
  }
  if (!(sum <= std::numeric_limits<T>::max())) {
    disc_flow_item(xi, t, K, sqrt_beta1, eps, o, flags);
    return;
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t k = 0; k < K; ++k) o[k] *= inv;
}

// K = 2 discrete flow as straight-line code: p_1 = sigmoid(l_1 - l_0). Returns the error flags.
template <typename T>
inline int32_t disc_flow2(int64_t xi, T t, T sqrt_beta1, T e0, T e1, T* o) {
  const T tc = t < T(1) - T(kDiscreteEps) ? t : T(1) - T(kDiscreteEps);
  const T sqrt_beta = tc * sqrt_beta1;
  const T beta = sqrt_beta * sqrt_beta;
  const T sd = sqrt(beta * T(2));
  const T l0 = (xi == 0 ? beta : -beta) + sd * e0, l1 = (xi == 1 ? beta : -beta) + sd * e1;
  const T d = l1 - l0;
  const T w = fast_exp(-fabs(d)), inv = T(1) / (T(1) + w);
  const bool up = d > T(0);
  const bool bad = (xi < 0) | (xi >= 2), flat = sqrt_beta < T(kMinSqrtBeta);
  o[0] = bad ? T(0) : (flat ? T(0.5) : (up ? w : T(1)) * inv);
  o[1] = bad ? T(0) : (flat ? T(0.5) : (up ? T(1) : w) * inv);
  return bad ? int32_t(kClassOutOfRange) : 0;
}

// L^inf of discrete data (BFN Eq. 205) for one item, and d loss / d logits (times g) into
// d_logits when want_grad. With p = softmax(l): ||e_x - p||^2 = (1 - p_x)^2 + sum_{k != x} p_k^2,
// and sum_k p_k r_k = p_x (1 - p_x) - sum_{k != x} p_k^2 (r = e_x - p), with 1 - p_x summed as
// sum_{k != x} p_k (no cancellation when p_x -> 1).
template <typename T>
inline T discrete_cts_loss_item(const T* logits, int64_t xi, T t, int64_t K, T beta1, bool want_grad, T g,
                                T* d_logits, int32_t& flags) {
  if (class_out_of_range(xi, K, want_grad, d_logits, flags)) return T(0);
#ifdef DIFFREP_HAVE_BFN_V4
  if (std::is_same<T, float>::value && v4::available()) {
    bool nonfinite = false;
    const float loss = v4::discrete_loss_item(reinterpret_cast<const float*>(logits), xi, float(t), K, float(beta1),
                                              want_grad, float(g), reinterpret_cast<float*>(d_logits), nonfinite);
    if (nonfinite) flags |= kNonFiniteInput;
    return T(loss);
  }
#endif
  T mx = -INFINITY;
  int32_t bad = 0;
#pragma omp simd reduction(max : mx) reduction(| : bad)
  for (int64_t k = 0; k < K; ++k) {
    const T l = logits[k];
    bad |= finite_bit(l);
    mx = l > mx ? l : mx;
  }
  if (bad) flags |= kNonFiniteInput;
  T sum = T(0);
  if (want_grad) {
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < K; ++k) {
      const T e = fast_exp(logits[k] - mx);
      d_logits[k] = e;
      sum += e;
    }
  } else {
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < K; ++k) sum += fast_exp(logits[k] - mx);
  }
  const T inv = T(1) / sum;
  const T px = fast_exp(logits[xi] - mx) * inv;
  // r_x = 1 - p_x is summed as sum_{k != x} p_k: 1 - p_x after rounding p_x loses all precision
  // for a confident prediction (p_x -> 1)
  T q = T(0), rx = T(0);  // sum_{k != x} p_k^2, sum_{k != x} p_k
  if (want_grad) {
#pragma omp simd reduction(+ : q, rx)
    for (int64_t k = 0; k < K; ++k) {
      const T p = d_logits[k] * inv;
      d_logits[k] = p;
      const T po = k == xi ? T(0) : p;
      q += po * po;
      rx += po;
    }
  } else {
#pragma omp simd reduction(+ : q, rx)
    for (int64_t k = 0; k < K; ++k) {
      const T po = k == xi ? T(0) : fast_exp(logits[k] - mx) * inv;
      q += po * po;
      rx += po;
    }
  }
  const T c = T(K) * beta1 * t;
  if (want_grad) {
    // dL/dl_j = -2 c p_j (r_j - s), s = sum_k p_k r_k; for j = x, r_x - s = (1 - p_x) r_x + q =
    // r_x^2 + q, formed so (r_x - p_x r_x would cancel)
    const T s = px * rx - q, f = g * T(-2) * c, dx = rx * rx + q;
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) {
      const T p = d_logits[k];
      d_logits[k] = f * p * (k == xi ? dx : -p - s);
    }
  }
  return c * (rx * rx + q);
}

// Backward of the bin probabilities for one item, computed in double whatever T is: with
// clip=False, d_mu = (a_mu - gp dR_mu) / R subtracts two terms that nearly cancel when the mass
// sits beyond an edge (float32 gave 7e-6 for a true -3e-8 at mu = -1.4, sigma = 0.21); the
// element body of bfn_math.h in double, fed the gradient converted block by block.
template <typename T>
inline void disc_probs_backward_item(T mu_x, T sigma_x, const T* g, int64_t K, bool clip, T& d_mu, T& d_sigma) {
  double dm, ds;
  if constexpr (sizeof(T) == sizeof(double)) {
    disc_probs_backward_elem<double>(mu_x, sigma_x, g, K, clip, dm, ds);
  } else {
    thread_local std::vector<double> gd;
    gd.resize(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) gd[k] = g[k];
    disc_probs_backward_elem<double>(mu_x, sigma_x, gd.data(), K, clip, dm, ds);
  }
  d_mu = static_cast<T>(dm);
  d_sigma = static_cast<T>(ds);
}

// K = 2 L^inf of discrete data as straight-line code (a loop over items vectorises): with p_o the
// other class's probability, the loss is 2 c p_o^2 and d loss / d l_x = -4 c p_x p_o^2 =
// -d loss / d l_o. Writes loss and (want_grad) d_logits[0..1]; returns the error flags.
template <bool want_grad, typename T>
inline int32_t discrete_cts_loss2(T l0, T l1, int64_t xi, T t, T beta1, T* loss, T* d_logits) {
  const bool bad_x = (xi < 0) | (xi >= 2);
  const T lx = xi == 1 ? l1 : l0, lo = xi == 1 ? l0 : l1;
  const T d = lo - lx, w = fast_exp(-fabs(d)), inv = T(1) / (T(1) + w);
  const bool o_up = d > T(0);
  const T po = (o_up ? T(1) : w) * inv, px = (o_up ? w : T(1)) * inv;
  const T c = T(2) * beta1 * t;
  *loss = bad_x ? T(0) : T(2) * c * po * po;
  if constexpr (want_grad) {
    const T gx = T(bad_x ? 0 : (xi == 1 ? 4 : -4)) * c * px * po * po;  // d loss / d l_0
    d_logits[0] = gx;
    d_logits[1] = -gx;
  }
  return (bad_x ? int32_t(kClassOutOfRange) : 0) | ((finite_bit(l0) | finite_bit(l1)) ? int32_t(kNonFiniteInput) : 0);
}

}  // namespace items
}  // namespace cpu
}  // namespace diffrep
