// Launchers of the random family for both backends (random_cpu.cpp, random_cuda.cu).
#pragma once
#include <cstdint>

#include "common/launch.h"

namespace diffrep {
namespace cpu {
template <typename T>
void normal_fill(const Launch& l, T* out, int64_t n, uint64_t seed, uint64_t offset);
}
namespace cuda {
template <typename T>
void normal_fill(const Launch& l, T* out, int64_t n, uint64_t seed, uint64_t offset);
}
}  // namespace diffrep
