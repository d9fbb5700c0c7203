// The Philox normals of the BFN CPU kernels on AVX-512 (x86-64-v4): the Philox4x32-10 words of
// 16 blocks at a time with explicit 512-bit integer code, then the Box-Muller maths of
// common/philox.h, which GCC vectorises well. GCC vectorised the scalar rounds of philox.h with
// 64-bit lane multiplies (vpmullq, mixed 256/512-bit); the 32 x 32 -> 64 products here are two
// vpmuludq per 16 lanes. The words, uniforms and normals are bit for bit those of
// philox_normals_body (the twin: python/diffrep/ops/reference/philox.py); only the speed differs
// (1e5 float normals: ~170 -> ~90 us on one core; docs/kernels/bfn.md#performance).
#pragma once
#include <cstdint>

#include "common/philox.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#include <immintrin.h>
#define DIFFREP_HAVE_PHILOX_V4 1

namespace diffrep {
namespace cpu {
namespace v4 {

#define DIFFREP_TARGET_V4 __attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))

// hi and lo 32 bits of a * m per 32-bit lane (m: the multiplier in every 64-bit lane).
DIFFREP_TARGET_V4 inline void mulhilo(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, m);                         // lanes 0, 2, ...: 64-bit products
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // lanes 1, 3, ...
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

DIFFREP_TARGET_V4 inline __m512i splat(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }

// Words of the blocks g0 .. g0 + m - 1 into w0..w3 (m rounded up to a multiple of 16: the
// arrays must hold it). Block g has counter (g lo, g hi, offset lo, offset hi), key = seed.
DIFFREP_TARGET_V4 inline void philox_words(PhiloxKey key, uint64_t g0, int m, uint32_t* w0, uint32_t* w1, uint32_t* w2,
                                           uint32_t* w3) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i M0 = _mm512_set1_epi64(0xD2511F53u), M1 = _mm512_set1_epi64(0xCD9E8D57u);
  const uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
  const __m512i off_lo = splat(static_cast<uint32_t>(key.offset)), off_hi = splat(static_cast<uint32_t>(key.offset >> 32));
  for (int j = 0; j < m; j += 16) {
    const uint64_t g = g0 + static_cast<uint64_t>(j);
    const __m512i base = splat(static_cast<uint32_t>(g)), ghi = splat(static_cast<uint32_t>(g >> 32));
    __m512i c0 = _mm512_add_epi32(base, lane);
    __m512i c1 = _mm512_mask_add_epi32(ghi, _mm512_cmplt_epu32_mask(c0, base), ghi, splat(1));  // carry
    __m512i c2 = off_lo, c3 = off_hi;
    uint32_t ka = k0, kb = k1;
#pragma GCC unroll 10
    for (int r = 0; r < 10; ++r) {
      __m512i h0, l0, h1, l1;
      mulhilo(c0, M0, h0, l0);
      mulhilo(c2, M1, h1, l1);
      c0 = _mm512_xor_si512(_mm512_xor_si512(h1, c1), splat(ka));
      c1 = l1;
      c2 = _mm512_xor_si512(_mm512_xor_si512(h0, c3), splat(kb));
      c3 = l0;
      ka += 0x9E3779B9u;
      kb += 0xBB67AE85u;
    }
    _mm512_storeu_si512(w0 + j, c0);
    _mm512_storeu_si512(w1 + j, c1);
    _mm512_storeu_si512(w2 + j, c2);
    _mm512_storeu_si512(w3 + j, c3);
  }
}

// philox_normals_body (common/philox.h) with the words from philox_words: the normals of stream
// indices [e0, e0 + len) into out[0 .. len).
template <typename T>
DIFFREP_TARGET_V4 inline void philox_normals(PhiloxKey key, uint64_t e0, int64_t len, T* out) {
  const int64_t i = philox_normals_head(key, e0, len, out);
  const uint64_t g0 = (e0 + i) >> 2;
  const int64_t full = (len - i) / 4;
  T* body = out + i;
  constexpr int kTile = 256;
  alignas(64) uint32_t w0[kTile], w1[kTile], w2[kTile], w3[kTile];
  alignas(64) T n0[kTile], n1[kTile], n2[kTile], n3[kTile];
  for (int64_t j0 = 0; j0 < full; j0 += kTile) {
    const int m = static_cast<int>(full - j0 < kTile ? full - j0 : kTile);
    philox_words(key, g0 + static_cast<uint64_t>(j0), (m + 15) & ~15, w0, w1, w2, w3);
#pragma omp simd
    for (int j = 0; j < m; ++j) {  // philox_normal4's maths on the words
      const T r0 = sqrt(T(-2) * fast_log(philox_uniform<T>(w0[j])));
      const T r1 = sqrt(T(-2) * fast_log(philox_uniform<T>(w2[j])));
      T s0, c0, s1, c1;
      fast_sincos_2pi(philox_uniform<T>(w1[j]), s0, c0);
      fast_sincos_2pi(philox_uniform<T>(w3[j]), s1, c1);
      n0[j] = r0 * c0;
      n1[j] = r0 * s0;
      n2[j] = r1 * c1;
      n3[j] = r1 * s1;
    }
    philox_interleave4(n0, n1, n2, n3, m, body + 4 * j0);
  }
  philox_normals_tail(key, e0, i + 4 * full, len, out);
}

#undef DIFFREP_TARGET_V4

}  // namespace v4
}  // namespace cpu
}  // namespace diffrep
#endif
