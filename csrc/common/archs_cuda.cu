// The virtual architectures nvcc compiled this module for, from its own __CUDA_ARCH_LIST__ (nvcc >= 11.5
// defines it in every pass, host included, as the sorted __CUDA_ARCH__ values: "800,900"). CMake's
// CUDA_ARCHITECTURES (DIFFREP_CUDA_ARCHS in cuda_module.cpp) says which became cubins and which PTX;
// this list resolves CMake's "all", "all-major" and "native", which name no architecture
// (python/diffrep/_cuda_archs.py, docs/build.md#cuda-architectures).
#include "common/launch.h"

#ifndef __CUDA_ARCH_LIST__
#error "nvcc >= 11.5 is needed: it defines __CUDA_ARCH_LIST__"
#endif

#define DIFFREP_STRINGIFY_(...) #__VA_ARGS__
#define DIFFREP_STRINGIFY(...) DIFFREP_STRINGIFY_(__VA_ARGS__)

namespace diffrep {
namespace cuda {

const char* virtual_architectures() { return DIFFREP_STRINGIFY(__CUDA_ARCH_LIST__); }

}  // namespace cuda
}  // namespace diffrep
