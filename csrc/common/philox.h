// Counter-based normals: Philox4x32-10 (Salmon et al., SC'11) + Box-Muller.
//
// Stream index e of a call keyed by (seed, offset) reads the Philox block with counter
// (e >> 2, offset); its four words make two Box-Muller pairs and lane e & 3 takes
// cos/sin of the first or second pair. The pure-PyTorch twin is
// python/diffrep/ops/reference/philox.py; the two agree bit for bit on the uniforms.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/fast_math.h"
#include "common/hd.h"
#include "common/isa.h"

namespace diffrep {

using std::cos;
using std::log;
using std::sin;
using std::sqrt;

struct PhiloxKey {
  uint64_t seed;
  uint64_t offset;
};

struct PhiloxBlock {
  uint32_t c0, c1, c2, c3;
};

DIFFREP_HD PhiloxBlock philox_round(PhiloxBlock x, uint32_t k0, uint32_t k1) {
  const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * x.c0;
  const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * x.c2;
  return PhiloxBlock{static_cast<uint32_t>(p1 >> 32) ^ x.c1 ^ k0, static_cast<uint32_t>(p1),
                     static_cast<uint32_t>(p0 >> 32) ^ x.c3 ^ k1, static_cast<uint32_t>(p0)};
}

// Ten rounds written out, on scalars: a loop or an array here stops the CPU compiler from
// vectorising the callers.
DIFFREP_HD PhiloxBlock philox4x32_10(PhiloxBlock x, uint32_t k0, uint32_t k1) {
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  x = philox_round(x, k0, k1);
  x = philox_round(x, k0 + 1 * W0, k1 + 1 * W1);
  x = philox_round(x, k0 + 2 * W0, k1 + 2 * W1);
  x = philox_round(x, k0 + 3 * W0, k1 + 3 * W1);
  x = philox_round(x, k0 + 4 * W0, k1 + 4 * W1);
  x = philox_round(x, k0 + 5 * W0, k1 + 5 * W1);
  x = philox_round(x, k0 + 6 * W0, k1 + 6 * W1);
  x = philox_round(x, k0 + 7 * W0, k1 + 7 * W1);
  x = philox_round(x, k0 + 8 * W0, k1 + 8 * W1);
  return philox_round(x, k0 + 9 * W0, k1 + 9 * W1);
}

// ((r >> 9) + 0.5) * 2^-23: exact in float and double, strictly inside (0, 1).
template <typename T>
DIFFREP_HD T philox_uniform(uint32_t r) {
  return (static_cast<T>(r >> 9) + T(0.5)) * T(1.0 / 8388608.0);
}

template <typename T>
DIFFREP_HD T two_pi() {
  return T(6.283185307179586476925286766559);
}

template <typename T>
struct Normal4 {
  T n0, n1, n2, n3;
};

// The four normals of block g.
template <typename T>
DIFFREP_HD Normal4<T> philox_normal4(PhiloxKey key, uint64_t g) {
  const PhiloxBlock c = philox4x32_10(
      PhiloxBlock{static_cast<uint32_t>(g), static_cast<uint32_t>(g >> 32), static_cast<uint32_t>(key.offset),
                  static_cast<uint32_t>(key.offset >> 32)},
      static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32));
  const T r0 = sqrt(T(-2) * fast_log(philox_uniform<T>(c.c0)));
  const T r1 = sqrt(T(-2) * fast_log(philox_uniform<T>(c.c2)));
  T s0, c0, s1, c1;
  fast_sincos_2pi(philox_uniform<T>(c.c1), s0, c0);
  fast_sincos_2pi(philox_uniform<T>(c.c3), s1, c1);
  return Normal4<T>{r0 * c0, r0 * s0, r1 * c1, r1 * s1};
}

template <typename T>
DIFFREP_HD void philox_normal4(PhiloxKey key, uint64_t g, T out[4]) {
  const Normal4<T> v = philox_normal4<T>(key, g);
  out[0] = v.n0;
  out[1] = v.n1;
  out[2] = v.n2;
  out[3] = v.n3;
}

#if !defined(__CUDACC__)
// The partial Philox block at the start of [e0, e0 + len): the normals up to the first block
// boundary (or to len) into out; returns how many were written.
template <typename T>
inline int64_t philox_normals_head(PhiloxKey key, uint64_t e0, int64_t len, T* out) {
  int64_t i = 0;
  if (e0 & 3) {
    T v[4];
    philox_normal4<T>(key, e0 >> 2, v);
    for (; i < len && ((e0 + i) & 3); ++i) out[i] = v[(e0 + i) & 3];
  }
  return i;
}

// The partial Philox block at the end: stream indices [e0 + i, e0 + len), i on a block boundary.
template <typename T>
inline void philox_normals_tail(PhiloxKey key, uint64_t e0, int64_t i, int64_t len, T* out) {
  if (i < len) {
    T v[4];
    philox_normal4<T>(key, (e0 + i) >> 2, v);
    for (int64_t l = 0; i < len; ++i, ++l) out[i] = v[l];
  }
}

// The interleaving pass after a tile of m blocks was computed as structure of arrays (contiguous
// stores vectorise): o[4j + c] = n_c[j].
template <typename T>
inline void philox_interleave4(const T* n0, const T* n1, const T* n2, const T* n3, int m, T* o) {
  for (int j = 0; j < m; ++j) {
    o[4 * j] = n0[j];
    o[4 * j + 1] = n1[j];
    o[4 * j + 2] = n2[j];
    o[4 * j + 3] = n3[j];
  }
}

// Normals of stream indices [e0, e0 + len) into out[0 .. len): whole Philox blocks in a loop the
// compiler vectorises, partial blocks at either end through philox_normal4.
template <typename T>
inline void philox_normals_body(PhiloxKey key, uint64_t e0, int64_t len, T* out) {
  int64_t i = philox_normals_head(key, e0, len, out);
  const uint64_t g0 = (e0 + i) >> 2;
  const int64_t full = (len - i) / 4;
  T* body = out + i;
  constexpr int kTile = 256;
  alignas(64) T n0[kTile], n1[kTile], n2[kTile], n3[kTile];
  for (int64_t j0 = 0; j0 < full; j0 += kTile) {
    const int m = static_cast<int>(full - j0 < kTile ? full - j0 : kTile);
    const uint64_t gb = g0 + static_cast<uint64_t>(j0);
#pragma omp simd
    for (int j = 0; j < m; ++j) {
      const Normal4<T> v = philox_normal4<T>(key, gb + static_cast<uint32_t>(j));
      n0[j] = v.n0;
      n1[j] = v.n1;
      n2[j] = v.n2;
      n3[j] = v.n3;
    }
    philox_interleave4(n0, n1, n2, n3, m, body + 4 * j0);
  }
  philox_normals_tail(key, e0, i + 4 * full, len, out);
}

template <typename T>
inline void philox_normals(PhiloxKey key, uint64_t e0, int64_t len, T* out) {
  call_best_isa([&] { philox_normals_body<T>(key, e0, len, out); });
}
#endif

// Sequential reader of the normal stream that recomputes a block only when it moves past it.
template <typename T>
struct NormalStream {
  PhiloxKey key;
  uint64_t block = ~uint64_t(0);
  T cache[4];
  DIFFREP_HD T operator()(uint64_t e) {
    const uint64_t g = e >> 2;
    if (g != block) {
      philox_normal4<T>(key, g, cache);
      block = g;
    }
    // a select, not cache[e & 3]: a run-time index would keep the cache in local memory on the GPU
    const uint64_t lane = e & 3;
    return lane == 0 ? cache[0] : (lane == 1 ? cache[1] : (lane == 2 ? cache[2] : cache[3]));
  }
};

}  // namespace diffrep
