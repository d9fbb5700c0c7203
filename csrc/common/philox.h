// Counter-based normals: Philox4x32-10 (Salmon et al., SC'11) + Box-Muller.
//
// Stream index e of a call keyed by (seed, offset) reads the Philox block with counter
// (e >> 2, offset); its four words make two Box-Muller pairs and lane e & 3 takes
// cos/sin of the first or second pair. The pure-PyTorch twin is
// python/diffrep/ops/reference/philox.py; the two agree bit for bit on the uniforms.
#pragma once
#include <cmath>
#include <cstdint>

#include "hd.h"

namespace diffrep {

using std::cos;
using std::log;
using std::sin;
using std::sqrt;

struct PhiloxKey {
  uint64_t seed;
  uint64_t offset;
};

DIFFREP_HD void philox4x32_10(uint32_t c[4], uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += W0;
      k1 += W1;
    }
    const uint64_t p0 = static_cast<uint64_t>(M0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(M1) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
  }
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

// The four normals of block g.
template <typename T>
DIFFREP_HD void philox_normal4(PhiloxKey key, uint64_t g, T out[4]) {
  uint32_t c[4] = {static_cast<uint32_t>(g), static_cast<uint32_t>(g >> 32),
                   static_cast<uint32_t>(key.offset), static_cast<uint32_t>(key.offset >> 32)};
  philox4x32_10(c, static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32));
#pragma unroll
  for (int p = 0; p < 2; ++p) {
    const T radius = sqrt(T(-2) * log(philox_uniform<T>(c[2 * p])));
    const T angle = two_pi<T>() * philox_uniform<T>(c[2 * p + 1]);
    out[2 * p] = radius * cos(angle);
    out[2 * p + 1] = radius * sin(angle);
  }
}

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
    return cache[e & 3];
  }
};

}  // namespace diffrep
