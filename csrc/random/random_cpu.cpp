// Philox normals written to a buffer: the noise stream every random op of diffrep uses.
#include <omp.h>

#include "common/philox.h"
#include "random/random_kernels.h"

namespace diffrep {
namespace cpu {

template <typename T>
void normal_fill(const Launch&, T* out, int64_t n, uint64_t seed, uint64_t offset) {
  const PhiloxKey key{seed, offset};
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n >= (1 << 14))
  for (int64_t g = 0; g < blocks; ++g) {
    T v[4];
    philox_normal4<T>(key, static_cast<uint64_t>(g), v);
    const int64_t lim = n - 4 * g < 4 ? n - 4 * g : 4;
    for (int64_t l = 0; l < lim; ++l) out[4 * g + l] = v[l];
  }
}

template void normal_fill<float>(const Launch&, float*, int64_t, uint64_t, uint64_t);
template void normal_fill<double>(const Launch&, double*, int64_t, uint64_t, uint64_t);

}  // namespace cpu
}  // namespace diffrep
