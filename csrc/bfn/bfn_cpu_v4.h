// AVX-512 (x86-64-v4) flat passes of the BFN CPU discrete updates, float only: e^x with
// vrndscaleps / vscalefps (the range reduction and the 2^n scaling in one instruction each, and
// overflow to inf for free) instead of common/fast_math.h's fast_exp, whose
// clamps, conversions and selects cost twice the instructions. Same Taylor polynomial of degree
// 7 on |r| <= ln2/2 (truncation below 6e-9 relative), so results agree with fast_exp to an ulp.
// Used by disc_update_tile / disc_update_tile_log (bfn_cpu_items.h) where available() is true;
// every other case runs the generic loops. docs/kernels/bfn.md#performance.
#pragma once
#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#include <immintrin.h>

#include "common/fast_math.h"
#include "common/isa.h"
#define DIFFREP_HAVE_BFN_V4 1

namespace diffrep {
namespace cpu {
namespace v4 {

#define DIFFREP_TARGET_V4 __attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))

// DIFFREP_CPU_ISA=v3 (or lower) turns these off, as it does the v4 copy of the loops.
inline bool available() {
  static const bool ok = [] {
    return cpu_isa_cap() >= 4 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return ok;
}

// 0 below -87.3 as fast_exp (no subnormal results: arithmetic on them costs ~100 cycles per
// operation without FTZ/DAZ, which made a flow with large beta K 2x slower), inf above 88.7.
DIFFREP_TARGET_V4 inline __m512 exp16(__m512 x) {
  // below -87.3 (and NaN) the lanes are zeroed at the end, whatever the steps compute there
  const __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);  // false for NaN too
  x = _mm512_min_ps(x, _mm512_set1_ps(89.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896340736f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(normal, _mm512_scalef_ps(p, n));
}

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1); }

// Probability space: out[j] = theta[j] e^(sign y[j]) for j in [b, e); returns nonzero where some
// theta is outside [0, 1] (or NaN; -0.0 too, which the per-item body then accepts) or some y is
// not finite.
DIFFREP_TARGET_V4 inline int32_t update_flat(const float* theta, const float* y, float sign, int64_t b, int64_t e,
                                             float* out) {
  __mmask16 bad = 0;
  const __m512 s = _mm512_set1_ps(sign), zero = _mm512_setzero_ps();
  const __m512i one_bits = _mm512_set1_epi32(0x3F800000);
  for (int64_t j = b; j < e; j += 16) {
    const __mmask16 m = tail_mask(e - j);
    const __m512 th = _mm512_maskz_loadu_ps(m, theta + j);
    const __m512 v = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, y + j));
    bad |= _mm512_mask_cmp_epu32_mask(m, _mm512_castps_si512(th), one_bits, _MM_CMPINT_GT);  // bits > 1.0f
    bad |= _mm512_mask_cmp_ps_mask(m, _mm512_sub_ps(v, v), zero, _CMP_NEQ_UQ);               // inf, NaN
    _mm512_mask_storeu_ps(out + j, m, _mm512_mul_ps(th, exp16(v)));
  }
  return bad ? 1 : 0;
}

// Log space: out[j] = theta[j] + sign y[j], ex[j] = e^out[j]; nonzero where some theta is not
// <= 0 (NaN, > 0) or some y is not finite. One check per vector: theta + 0 y is theta where y is
// finite and NaN where it is not, and must be <= 0 (ordered); the lanes past e load 0 and pass.
DIFFREP_TARGET_V4 inline int32_t update_flat_log(const float* theta, const float* y, float sign, int64_t b,
                                                 int64_t e, float* out, float* ex) {
  __mmask16 good = 0xFFFF;
  const __m512 s = _mm512_set1_ps(sign), zero = _mm512_setzero_ps();
  for (int64_t j = b; j < e; j += 16) {
    const __mmask16 m = tail_mask(e - j);
    const __m512 th = _mm512_maskz_loadu_ps(m, theta + j);
    const __m512 v = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, y + j));
    good = _mm512_mask_cmp_ps_mask(good, _mm512_fmadd_ps(v, zero, th), zero, _CMP_LE_OQ);
    const __m512 a = _mm512_add_ps(th, v);
    _mm512_mask_storeu_ps(out + j, m, a);
    _mm512_mask_storeu_ps(ex + j, m, exp16(a));
  }
  return good != 0xFFFF ? 1 : 0;
}

// (1 + erf(x)) / 2 of 16 lanes: common/fast_math.h's fast_half_one_plus_erf (the same polynomials,
// the same branches as selects), with exp16 for e^{-x^2}. The compiler's vectorisation of the
// scalar form ran 2-3x slower than this per bin of disc_probs_item (alignment peeling and scalar
// epilogues of an expensive body on 16- and 256-bin rows).
// gauss: e^{-x^2} of each lane, which the lower tail computes anyway (the standard normal pdf at
// sqrt(2) x is that times 1/sqrt(2 pi)).
DIFFREP_TARGET_V4 inline __m512 half_one_plus_erf16(__m512 x, __m512& gauss) {
  const __m512 one = _mm512_set1_ps(1.f), half = _mm512_set1_ps(0.5f);
  const __m512 a = _mm512_abs_ps(x), a2 = _mm512_mul_ps(a, a);
  __m512 p = _mm512_set1_ps(7.933493887e-05f);
  p = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(-8.034846650e-04f));
  p = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(5.191218377e-03f));
  p = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(-2.685539945e-02f));
  p = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(1.128362573e-01f));
  p = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(-3.761262988e-01f));
  p = _mm512_fmadd_ps(a2, p, _mm512_set1_ps(1.128379167e+00f));
  const __m512 small = _mm512_mul_ps(a, p);  // erf(a), a <= 1
  const __m512 u = _mm512_div_ps(one, _mm512_max_ps(a, one));
  __m512 q = _mm512_set1_ps(-8.870569875e-03f);
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(2.566276961e-02f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(2.990831176e-02f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(-2.492048154e-01f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(5.021969965e-01f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(-4.739520355e-01f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(4.260821009e-02f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(5.589597449e-01f));
  q = _mm512_fmadd_ps(u, q, _mm512_set1_ps(2.749467808e-04f));
  gauss = exp16(_mm512_sub_ps(_mm512_setzero_ps(), a2));
  const __m512 tail = _mm512_mul_ps(gauss, q);  // erfc(a), 1 < a <= 4
  // body = erf(a): small up to 1, 1 - tail up to 4, 1 beyond (and for NaN, as the scalar form)
  __m512 body = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(4.f), _CMP_LE_OQ), one,
                                     _mm512_sub_ps(one, tail));
  body = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, one, _CMP_LE_OQ), body, small);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 signed_body = _mm512_mask_sub_ps(body, neg, _mm512_setzero_ps(), body);
  const __m512 mid = _mm512_mul_ps(half, _mm512_add_ps(one, signed_body));
  // below x = -1 the lower tail erfc(|x|) / 2 directly (1 + erf(x) would cancel); 0 below -4
  const __m512 lower = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-4.f), _CMP_NLT_UQ), half, tail);
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(-1.f), _CMP_LT_OQ), mid, lower);
}

DIFFREP_TARGET_V4 inline __m512 half_one_plus_erf16(__m512 x) {
  __m512 gauss;
  return half_one_plus_erf16(x, gauss);
}

// bfn_math.h's LoopBoundarySums for float: the sums over the interior boundaries b_1 .. b_{K-1} of
// Phi(z_j) and (want_grad) phi(z_j), z_j phi(z_j), z_j = (b_j - mu_x) inv_s, 16 boundaries per
// masked step (a K - 1 < 16 loop vectorised by the compiler ran as its scalar epilogue). phi reuses
// the CDF's e^{-z^2/2}. The lane order of the additions differs from the loop's by rounding only.
template <bool want_grad>
DIFFREP_TARGET_V4 inline void boundary_sums16(float mu_x, float inv_s, int64_t K, float& sum_cdf, float& sum_pdf,
                                              float& sum_zpdf) {
  const __m512 vmu = _mm512_set1_ps(mu_x), vinv = _mm512_set1_ps(inv_s);
  const __m512 vK = _mm512_set1_ps(float(static_cast<int32_t>(K))), two = _mm512_set1_ps(2.f), one = _mm512_set1_ps(1.f);
  const __m512 r2 = _mm512_set1_ps(0.70710678118654752440f), inv_sqrt_2pi = _mm512_set1_ps(0.39894228040143267794f);
  const __m512i iota1 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
  __m512 acc_cdf = _mm512_setzero_ps(), acc_pdf = _mm512_setzero_ps(), acc_zpdf = _mm512_setzero_ps();
  for (int64_t j0 = 1; j0 < K; j0 += 16) {
    const __mmask16 m = tail_mask(K - j0);
    const __m512i j = _mm512_add_epi32(iota1, _mm512_set1_epi32(static_cast<int32_t>(j0 - 1)));
    const __m512 b = _mm512_sub_ps(_mm512_div_ps(_mm512_mul_ps(two, _mm512_cvtepi32_ps(j)), vK), one);  // boundary()
    const __m512 z = _mm512_mul_ps(_mm512_sub_ps(b, vmu), vinv);
    __m512 gauss;
    const __m512 c = half_one_plus_erf16(_mm512_mul_ps(z, r2), gauss);
    acc_cdf = _mm512_mask_add_ps(acc_cdf, m, acc_cdf, c);
    if (want_grad) {
      const __m512 phi = _mm512_mul_ps(inv_sqrt_2pi, gauss);
      acc_pdf = _mm512_mask_add_ps(acc_pdf, m, acc_pdf, phi);
      acc_zpdf = _mm512_mask3_fmadd_ps(z, phi, acc_zpdf, m);  // masked-off lanes keep acc_zpdf
    }
  }
  sum_cdf = _mm512_reduce_add_ps(acc_cdf);
  sum_pdf = want_grad ? _mm512_reduce_add_ps(acc_pdf) : 0.f;
  sum_zpdf = want_grad ? _mm512_reduce_add_ps(acc_zpdf) : 0.f;
}

// Bin probabilities of K >= 16 bins for one item (disc_probs_item, BFN Eq. 103-104): the split
// CDFs (bfn_math.h, split_cdf) of 16 boundaries b_{k+1} per step (b_next: the K boundaries b_1 ..
// b_K), each bin the difference with its left neighbour (the previous vector's last lane shifted
// in), the boundary b_K set to hi. lo, hi (split), scale (1/R, or 1 with clip) as disc_probs_item.
DIFFREP_TARGET_V4 inline void probs_item(float mu_x, float inv_s, int64_t K, float lo_v, float lo_s, float hi_v,
                                         float hi_s, float scale, const float* b_next, float* out) {
  const __m512 vmu = _mm512_set1_ps(mu_x), vinv = _mm512_set1_ps(inv_s), vscale = _mm512_set1_ps(scale);
  const __m512 r2 = _mm512_set1_ps(0.70710678118654752440f), one = _mm512_set1_ps(1.f), sign = _mm512_set1_ps(-0.f);
  __m512 prev_v = _mm512_set1_ps(lo_v), prev_s = _mm512_set1_ps(lo_s);  // lane 15: b_k0
  for (int64_t k0 = 0; k0 < K; k0 += 16) {
    const __mmask16 m = tail_mask(K - k0);
    const __m512 b = _mm512_maskz_loadu_ps(m, b_next + k0);  // b_{k+1}, k = k0 .. k0 + 15
    // from the mean up: v = -Phi(-z), s = 1 (mean_step's b >= mu); below: v = Phi(z), s = 0
    const __mmask16 above = _mm512_cmp_ps_mask(b, vmu, _CMP_GE_OQ);
    const __m512 x = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(b, vmu), vinv), r2);
    const __m512 tail = half_one_plus_erf16(_mm512_mask_xor_ps(x, above, x, sign));  // -|x|
    __m512 v = _mm512_mask_xor_ps(tail, above, tail, sign);
    __m512 s = _mm512_maskz_mov_ps(above, one);
    if (K - k0 <= 16) {  // b_K
      const __mmask16 last = __mmask16(1u << (K - k0 - 1));
      v = _mm512_mask_mov_ps(v, last, _mm512_set1_ps(hi_v));
      s = _mm512_mask_mov_ps(s, last, _mm512_set1_ps(hi_s));
    }
    const __m512 left_v = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v), _mm512_castps_si512(prev_v), 15));
    const __m512 left_s = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(s), _mm512_castps_si512(prev_s), 15));
    const __m512 p = _mm512_add_ps(_mm512_sub_ps(v, left_v), _mm512_sub_ps(s, left_s));  // cdf_diff
    _mm512_mask_storeu_ps(out + k0, m, _mm512_mul_ps(p, vscale));
    prev_v = v;
    prev_s = s;
  }
}

// discrete_cts_loss_item (bfn_cpu_items.h) for float: the same four passes over the K logits (max
// and finite check; e^(l - max) and its sum; p = e / sum with sum_{k != x} p_k and p_k^2; the
// gradient) in masked 16-lane steps. The compiler's vectorisation left K mod 16 logits of every
// pass to a scalar epilogue: K = 27 ran slower than the eager twin. Returns the loss; bad is set
// where a logit is not finite. d_logits (K values) holds p between the passes when want_grad.
DIFFREP_TARGET_V4 inline float discrete_loss_item(const float* logits, int64_t xi, float t, int64_t K, float beta1,
                                                  bool want_grad, float g, float* d_logits, bool& bad) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY), fmax = _mm512_set1_ps(3.402823466e+38f);
  __m512 vmx = ninf;
  __mmask16 nonfinite = 0;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    const __m512 l = _mm512_mask_loadu_ps(ninf, m, logits + k);
    nonfinite |= _mm512_mask_cmp_ps_mask(m, _mm512_abs_ps(l), fmax, _CMP_NLE_UQ);  // inf, NaN
    vmx = _mm512_max_ps(vmx, l);
  }
  bad = nonfinite != 0;
  const float mx = _mm512_reduce_max_ps(vmx);
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, logits + k), vm)));
    if (want_grad) _mm512_mask_storeu_ps(d_logits + k, m, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  const float inv = 1.f / _mm512_reduce_add_ps(vsum);
  const float px = fast_exp(logits[xi] - mx) * inv;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vxi = _mm512_set1_epi32(static_cast<int32_t>(xi));
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 vq = _mm512_setzero_ps(), vrx = _mm512_setzero_ps();  // sum_{k != x} p_k^2, sum_{k != x} p_k
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    const __m512 e = want_grad ? _mm512_maskz_loadu_ps(m, d_logits + k)
                               : exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, logits + k), vm));
    const __m512 p = _mm512_mul_ps(e, vinv);
    if (want_grad) _mm512_mask_storeu_ps(d_logits + k, m, p);
    const __mmask16 other =
        m & _mm512_cmp_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(k))), vxi, _MM_CMPINT_NE);
    const __m512 po = _mm512_maskz_mov_ps(other, p);
    vq = _mm512_fmadd_ps(po, po, vq);
    vrx = _mm512_add_ps(vrx, po);
  }
  const float q = _mm512_reduce_add_ps(vq), rx = _mm512_reduce_add_ps(vrx);
  const float c = float(K) * beta1 * t;
  if (want_grad) {
    // as discrete_cts_loss_item: -2 c p_j (r_j - s), the true class's factor r_x^2 + q
    const float s = px * rx - q, f = g * -2.f * c, dx = rx * rx + q;
    const __m512 vf = _mm512_set1_ps(f), vs = _mm512_set1_ps(s), vdx = _mm512_set1_ps(dx);
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = tail_mask(K - k);
      const __m512 p = _mm512_maskz_loadu_ps(m, d_logits + k);
      const __mmask16 is_x = _mm512_cmp_epi32_mask(_mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(k))),
                                                   vxi, _MM_CMPINT_EQ);
      const __m512 factor = _mm512_mask_blend_ps(is_x, _mm512_sub_ps(_mm512_sub_ps(_mm512_setzero_ps(), p), vs), vdx);
      _mm512_mask_storeu_ps(d_logits + k, m, _mm512_mul_ps(_mm512_mul_ps(vf, p), factor));
    }
  }
  return c * (rx * rx + q);
}

// The lane sums of 16 vectors at once: lane i of the result is the sum of v[i]'s 16 lanes. A
// per-vector horizontal sum is a chain of 4 shuffle + add steps (~4 ops of latency 3-4 each); 16
// of them at once take 15 adds and 30 lane shuffles, each step halving the number of vectors
// (pairs of 256-bit halves, then 128-bit quarters, then pairs and single lanes within quarters),
// and one permutation into item order. The order of the additions differs from a sequential sum
// by rounding only.
DIFFREP_TARGET_V4 inline __m512 lane_sums16(const __m512* v) {
  __m512 t[8], u[4];
  for (int j = 0; j < 8; ++j)  // t[j]: v[2j]'s 8 partial sums in quarters 0-1, v[2j+1]'s in 2-3
    t[j] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * j], v[2 * j + 1], 0xEE));
  for (int m = 0; m < 4; ++m)  // u[m]: quarter q holds v[4m + q]'s 4 partial sums
    u[m] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0x88),
                         _mm512_shuffle_f32x4(t[2 * m], t[2 * m + 1], 0xDD));
  // w0 (w1): quarter q holds v[q]'s (v[8 + q]'s) 2 partial sums, then v[4 + q]'s (v[12 + q]'s)
  const __m512 w0 = _mm512_add_ps(_mm512_shuffle_ps(u[0], u[1], 0x44), _mm512_shuffle_ps(u[0], u[1], 0xEE));
  const __m512 w1 = _mm512_add_ps(_mm512_shuffle_ps(u[2], u[3], 0x44), _mm512_shuffle_ps(u[2], u[3], 0xEE));
  // lane 4q + r holds the sum of v[4r + q]
  const __m512 s = _mm512_add_ps(_mm512_shuffle_ps(w0, w1, 0x88), _mm512_shuffle_ps(w0, w1, 0xDD));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), s);
}

// ln x for normal positive x (common/fast_math.h's fast_log without its subnormal, zero, negative
// and infinite cases, which callers exclude) in two parts, ln x = hi + lo: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), hi = e ln2_hi (exact: ln2_hi has 15 significant bits, e at most 8) and
// lo = e ln2_lo + ln m, ln m = 2 atanh(s), s = (m - 1)/(m + 1), 5 terms of the series (|s| <=
// 0.1716), so |lo| < 0.35. A log-probability a - ln x is then formed as (a - hi) - lo: a - hi is
// exact near the largest class (Sterbenz), where a - fl(ln x) rounded to the ulp of ln x
// (docs/kernels/bfn.md#numerical-safeguards).
DIFFREP_TARGET_V4 inline __m512 log16_parts_normal(__m512 x, __m512& hi) {
  const __m512i bits = _mm512_castps_si512(x), mant = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFF));
  const __mmask16 big = _mm512_cmpgt_epi32_mask(mant, _mm512_set1_epi32(0x3504F3));  // m > sqrt(2): halve it
  const __m512i bigi = _mm512_maskz_mov_epi32(big, _mm512_set1_epi32(1));
  const __m512i e = _mm512_add_epi32(_mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127)), bigi);
  const __m512 m = _mm512_castsi512_ps(
      _mm512_or_si512(mant, _mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(127), bigi), 23)));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 s = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one)), s2 = _mm512_mul_ps(s, s);
  __m512 p = _mm512_set1_ps(1.0f / 9);
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 7));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 5));
  p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(1.0f / 3));
  p = _mm512_fmadd_ps(p, s2, one);
  const __m512 ef = _mm512_cvtepi32_ps(e);
  hi = _mm512_mul_ps(ef, _mm512_set1_ps(0.693145751953125f));
  return _mm512_fmadd_ps(ef, _mm512_set1_ps(1.42860682030941723212e-6f), _mm512_mul_ps(_mm512_add_ps(s, s), p));
}

// Which lanes of a vector of per-item sums can be used: sum in [2^-40, max] (disc_update_tile's
// rule: below, classes may have underflowed; above or NaN, an exp overflowed).
DIFFREP_TARGET_V4 inline __mmask16 usable_sums(__m512 sum) {
  return _mm512_cmp_ps_mask(sum, _mm512_set1_ps(9.094947017729282e-13f), _CMP_GE_OQ) &
         _mm512_cmp_ps_mask(sum, _mm512_set1_ps(3.402823466e38f), _CMP_LE_OQ);
}

// The discrete update of 16 consecutive items of K >= 16 classes in one pass over their values:
// per item the flat pass's values (update_flat / update_flat_log: theta e^(sign y), or a = theta +
// sign y with e^a) are written to out and summed in registers, the 16 sums are reduced at once
// (lane_sums16), then each item is scaled by 1/sum (probability space) or has log(sum) subtracted
// in two parts (log space: min((a - hi) - lo, 0), log16_parts_normal). The input checks
// accumulate in registers (probability space: the largest bit pattern of theta, y * 0, which is
// NaN for inf and NaN; log space: a mask of the lanes where theta + 0 y <= 0, one compare per
// vector) and are tested once. `full`: K is a multiple of 16 (no lane masks); `negate`: the
// inverse update (sign = -1); `fixed_k`: K known at compile time: 16 (each item one vector, kept
// in a register until its single store) or 256 (item by item in registers, no group reduction).
// Returns -1 when some input is invalid (the caller redoes the 16 items one by one, which flags
// them), else the mask of items whose sum is not usable (the caller redoes those). Same values as
// the flat pass + per-item sums of disc_update_tile(_log) up to the order of the additions.
template <bool log_io, bool full, bool negate, int64_t fixed_k = 0>
DIFFREP_TARGET_V4 inline int32_t update_group16(const float* theta, const float* y, int64_t K_, float* out) {
  const int64_t K = fixed_k ? fixed_k : K_;
  const __m512 zero = _mm512_setzero_ps();
  __m512 ychk = zero;                      // y * 0: NaN in a lane that saw inf or NaN
  __m512i thbits = _mm512_setzero_si512();  // probability space: largest bits of theta (> 1.0f: invalid)
  __mmask16 good = 0xFFFF;                 // log space: lanes where every theta + 0 y was <= 0
  struct Chunk {
    __m512 val, e;  // what is stored before the normalisation (theta e^v, or a = theta + v), and the exps
  };
  // classes [k, k + 16) of item r
  const auto chunk = [&](int r, int64_t k) DIFFREP_TARGET_V4 {
    const __mmask16 m = full ? __mmask16(0xFFFF) : tail_mask(K - k);
    const float *th_p = theta + r * K + k, *y_p = y + r * K + k;
    const __m512 th = full ? _mm512_loadu_ps(th_p) : _mm512_maskz_loadu_ps(m, th_p);
    const __m512 yv = full ? _mm512_loadu_ps(y_p) : _mm512_maskz_loadu_ps(m, y_p);
    const __m512 v = negate ? _mm512_xor_ps(yv, _mm512_set1_ps(-0.0f)) : yv;  // -y, bit-exact
    if constexpr (log_io) {
      // theta + 0 y: theta where y is finite, NaN where not; one compare checks both (0 in masked lanes)
      good = _mm512_mask_cmp_ps_mask(good, _mm512_fmadd_ps(v, zero, th), zero, _CMP_LE_OQ);
      const __m512 l = _mm512_add_ps(th, v);
      return Chunk{l, full ? exp16(l) : _mm512_maskz_mov_ps(m, exp16(l))};
    } else {
      ychk = _mm512_fmadd_ps(v, zero, ychk);
      thbits = _mm512_max_epu32(thbits, _mm512_castps_si512(th));
      const __m512 e = _mm512_mul_ps(th, exp16(v));  // 0 in masked lanes
      return Chunk{e, e};
    }
  };
  // f: 1/sum, or the high part of log(sum) with g its low part. Log space: at most 0, which the
  // unshifted sum does not guarantee (its exps and log round either way: a dominant class came out
  // at +1e-8, an invalid log-probability for the next update)
  const auto finish = [zero](__m512 val, __m512 f, __m512 g) DIFFREP_TARGET_V4 {
    return log_io ? _mm512_min_ps(_mm512_sub_ps(_mm512_sub_ps(val, f), g), zero) : _mm512_mul_ps(val, f);
  };
  const auto input_bad = [&]() DIFFREP_TARGET_V4 {
    return (_mm512_cmp_ps_mask(ychk, ychk, _CMP_UNORD_Q) | static_cast<__mmask16>(~good) |
            _mm512_cmp_epu32_mask(thbits, _mm512_set1_epi32(0x3F800000), _MM_CMPINT_GT)) != 0;
  };
  if constexpr (fixed_k == 256) {
    // item by item, its 16 vectors in registers: one pass over memory (no stored intermediate),
    // two partial sums and one horizontal sum per item
    int32_t odd = 0;
    for (int r = 0; r < 16; ++r) {
      __m512 val[16], s0 = zero, s1 = zero;
      for (int q = 0; q < 16; q += 2) {
        const Chunk c0 = chunk(r, 16 * q), c1 = chunk(r, 16 * q + 16);
        val[q] = c0.val;
        val[q + 1] = c1.val;
        s0 = _mm512_add_ps(s0, c0.e);
        s1 = _mm512_add_ps(s1, c1.e);
      }
      const float sum = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
      if (!(sum >= 9.094947017729282e-13f && sum <= 3.402823466e38f)) {  // usable_sums' rule
        odd |= 1 << r;
        continue;
      }
      __m512 f, g = zero;
      if constexpr (log_io) g = log16_parts_normal(_mm512_set1_ps(sum), f); else f = _mm512_set1_ps(1.0f / sum);
      float* o_r = out + r * K;
      for (int q = 0; q < 16; ++q) _mm512_storeu_ps(o_r + 16 * q, finish(val[q], f, g));
    }
    return input_bad() ? -1 : odd;
  } else {
    __m512 acc[16];
    __m512 val16[fixed_k == 16 ? 16 : 1];  // K = 16: each item's one vector stays until its store
    for (int r = 0; r < 16; ++r) {
      float* o_r = out + r * K;
      if constexpr (fixed_k == 16) {
        const Chunk c = chunk(r, 0);
        val16[r] = c.val;
        acc[r] = c.e;
        continue;
      }
      __m512 a = zero;
      for (int64_t k = 0; k < K; k += 16) {
        const Chunk c = chunk(r, k);
        if constexpr (full) _mm512_storeu_ps(o_r + k, c.val); else _mm512_mask_storeu_ps(o_r + k, tail_mask(K - k), c.val);
        a = _mm512_add_ps(a, c.e);
      }
      acc[r] = a;
    }
    if (input_bad()) return -1;
    const __m512 sum = lane_sums16(acc);
    const __mmask16 odd = static_cast<__mmask16>(~usable_sums(sum));
    // each item's factor broadcast from memory: a load-port operation, where a lane permutation
    // would queue behind lane_sums16's shuffles on the one shuffle port
    alignas(64) float f[16], g[16];
    if constexpr (log_io) {
      __m512 hi;
      _mm512_store_ps(g, log16_parts_normal(sum, hi));
      _mm512_store_ps(f, hi);
    } else {
      _mm512_store_ps(f, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
    }
    for (int r = 0; r < 16; ++r) {
      const __m512 fr = _mm512_set1_ps(f[r]), gr = log_io ? _mm512_set1_ps(g[r]) : zero;
      float* o_r = out + r * K;
      if constexpr (fixed_k == 16) {
        _mm512_storeu_ps(o_r, finish(val16[r], fr, gr));
        continue;
      }
      for (int64_t k = 0; k < K; k += 16) {
        if constexpr (full) {
          _mm512_storeu_ps(o_r + k, finish(_mm512_loadu_ps(o_r + k), fr, gr));
        } else {
          const __mmask16 m = tail_mask(K - k);
          _mm512_mask_storeu_ps(o_r + k, m, finish(_mm512_maskz_loadu_ps(m, o_r + k), fr, gr));
        }
      }
    }
    return static_cast<int32_t>(odd);
  }
}

// The discrete flow's shifted softmax of one item (disc_flow_item_shifted): o_k = e^(sd (eps_k -
// eps_x) - bk [k != x]) for k < K in masked 16-lane steps (no scalar tail for K = 3, 27, ...),
// then o /= sum. K <= 64 stays in registers and is stored once (a masked store read back at once
// stalls store forwarding). Returns the sum (not finite: the caller redoes the item).
DIFFREP_TARGET_V4 inline __m512 flow_logit_exp(int64_t k, int64_t xi, __mmask16 m, __m512 vsd, __m512 vbk, __m512 vex,
                                               const float* eps) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(k))),
                                                _mm512_set1_epi32(static_cast<int>(xi)));
  const __m512 d = _mm512_mul_ps(vsd, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, eps + k), vex));
  return _mm512_maskz_mov_ps(m, exp16(_mm512_mask_sub_ps(d, static_cast<__mmask16>(~hit), d, vbk)));
}

DIFFREP_TARGET_V4 inline float flow_item_shifted(int64_t xi, float sd, float bk, const float* eps, int64_t K,
                                                 float* o) {
  const __m512 vsd = _mm512_set1_ps(sd), vbk = _mm512_set1_ps(bk), vex = _mm512_set1_ps(eps[xi]);
  if (K <= 64) {
    __m512 v[4];
    __m512 acc = _mm512_setzero_ps();
    const int64_t nv = (K + 15) / 16;
    for (int64_t q = 0; q < nv; ++q) {
      v[q] = flow_logit_exp(16 * q, xi, tail_mask(K - 16 * q), vsd, vbk, vex, eps);
      acc = _mm512_add_ps(acc, v[q]);
    }
    const float sum = _mm512_reduce_add_ps(acc);
    if (!(sum <= 3.402823466e38f)) return sum;
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int64_t q = 0; q < nv; ++q) _mm512_mask_storeu_ps(o + 16 * q, tail_mask(K - 16 * q), _mm512_mul_ps(v[q], inv));
    return sum;
  }
  __m512 acc = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    const __m512 v = flow_logit_exp(k, xi, m, vsd, vbk, vex, eps);
    _mm512_mask_storeu_ps(o + k, m, v);
    acc = _mm512_add_ps(acc, v);
  }
  const float sum = _mm512_reduce_add_ps(acc);
  if (!(sum <= 3.402823466e38f)) return sum;
  const __m512 inv = _mm512_set1_ps(1.0f / sum);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = tail_mask(K - k);
    _mm512_mask_storeu_ps(o + k, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, o + k), inv));
  }
  return sum;
}

#undef DIFFREP_TARGET_V4

}  // namespace v4
}  // namespace cpu
}  // namespace diffrep
#endif
