// Host/device qualifiers so the same maths compiles in the CPU (g++) and CUDA (nvcc) kernels.
#pragma once
#if defined(__CUDACC__)
#define DIFFREP_HD __host__ __device__ __forceinline__
#else
#define DIFFREP_HD inline
#endif

// Full unrolling of short fixed-count loops (Philox rounds, polynomial Horner steps).
#if defined(__CUDACC__)
#define DIFFREP_UNROLL _Pragma("unroll")
#elif defined(__clang__)
#define DIFFREP_UNROLL _Pragma("clang loop unroll(full)")
#elif defined(__GNUC__)
#define DIFFREP_UNROLL _Pragma("GCC unroll 32")
#else
#define DIFFREP_UNROLL
#endif
