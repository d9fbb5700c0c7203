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
#define DIFFREP_HAVE_BFN_V4 1

namespace diffrep {
namespace cpu {
namespace v4 {

#define DIFFREP_TARGET_V4 __attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))

// DIFFREP_CPU_ISA=v3 (or lower) turns these off, as it does the v4 copy of the loops.
inline bool available() {
  static const bool ok = [] {
    const char* v = std::getenv("DIFFREP_CPU_ISA");
    const bool capped = v && v[0] == 'v' && v[1] >= '1' && v[1] <= '3';
    return !capped && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return ok;
}

// 0 below -87.3 as fast_exp (no subnormal results: arithmetic on them costs ~100 cycles per
// operation without FTZ/DAZ, which made a flow with large beta K 2x slower), inf above 88.7.
DIFFREP_TARGET_V4 inline __m512 exp16(__m512 x) {
  const __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GE_OQ);  // false for NaN too
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(89.0f));
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
// <= 0 (NaN, > 0) or some y is not finite.
DIFFREP_TARGET_V4 inline int32_t update_flat_log(const float* theta, const float* y, float sign, int64_t b,
                                                 int64_t e, float* out, float* ex) {
  __mmask16 bad = 0;
  const __m512 s = _mm512_set1_ps(sign), zero = _mm512_setzero_ps();
  for (int64_t j = b; j < e; j += 16) {
    const __mmask16 m = tail_mask(e - j);
    const __m512 th = _mm512_maskz_loadu_ps(m, theta + j);
    const __m512 v = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, y + j));
    bad |= _mm512_mask_cmp_ps_mask(m, th, zero, _CMP_NLE_UQ);                   // not <= 0
    bad |= _mm512_mask_cmp_ps_mask(m, _mm512_sub_ps(v, v), zero, _CMP_NEQ_UQ);  // inf, NaN
    const __m512 a = _mm512_add_ps(th, v);
    _mm512_mask_storeu_ps(out + j, m, a);
    _mm512_mask_storeu_ps(ex + j, m, exp16(a));
  }
  return bad ? 1 : 0;
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
