// Philox normals written to a buffer: the noise stream every random op of diffrep uses.
#include <omp.h>

#include "common/philox.h"
#include "random/random_ops.h"

namespace diffrep {
namespace cpu {

DIFFREP_LAUNCHER(normal_fill) {
  const PhiloxKey key{seed, offset};
  constexpr int64_t kChunk = 1 << 14;  // a multiple of 4: every chunk starts on a Philox block
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= kChunk)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t e0 = c * kChunk, len = e0 + kChunk < n ? kChunk : n - e0;
    philox_normals<T>(key, static_cast<uint64_t>(e0), len, out + e0);
  }
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_RANDOM_OPS)

}  // namespace cpu
}  // namespace diffrep
