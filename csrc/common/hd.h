// Host/device qualifiers so the same maths compiles in the CPU (g++) and CUDA (nvcc) kernels.
#pragma once
#if defined(__CUDACC__)
#define DIFFREP_HD __host__ __device__ __forceinline__
#else
#define DIFFREP_HD inline
#endif
