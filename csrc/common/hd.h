// Host/device qualifiers so the same maths compiles in the CPU (g++) and CUDA (nvcc) kernels.
#pragma once
#if defined(__CUDACC__)
#define DIFFREP_HD __host__ __device__ __forceinline__
#else
#define DIFFREP_HD inline
#endif

// A loop the host compiler may vectorise (DIFFREP_SIMD_SUM: a reduction, reassociating the sums);
// device code keeps the sequential order.
#if defined(__CUDACC__)
#define DIFFREP_SIMD
#define DIFFREP_SIMD_SUM(...)
#else
#define DIFFREP_STR(x) #x
#define DIFFREP_SIMD _Pragma("omp simd")
#define DIFFREP_SIMD_SUM(...) _Pragma(DIFFREP_STR(omp simd reduction(+ : __VA_ARGS__)))
#endif

// Unrolled on the device only (a loop over a compile-time bound whose array stays in registers).
// __CUDA_ARCH__, not __CUDACC__: nvcc hands a __host__ __device__ body to the host compiler too, and
// g++ warns on the unknown pragma there (-Wunknown-pragmas under -Wall).
#if defined(__CUDA_ARCH__)
#define DIFFREP_DEVICE_UNROLL _Pragma("unroll")
#else
#define DIFFREP_DEVICE_UNROLL
#endif
