// The CUDA runtime and kernel built-ins on the host, so that the .cu launchers and kernels run on a
// machine without a GPU (tests/ops/test_cuda_launchers_host.py). The test rewrites each launch
// `kernel<<<grid, block, smem, stream>>>(args)` into diffrep_host::launch(grid, block, [&] { kernel(args); },
// concurrent): every block in turn, and its threads either one after another (the grid-stride
// element kernels, which never synchronise) or concurrently with a barrier for __syncthreads (the
// block reductions) and one per warp for __shfl_down_sync (the metric kernels' warp reductions). The grid is capped at kMaxBlocks (2), so the grid-stride loops must cover what
// the launch's grid does not. What this cannot show: device arithmetic (FMA contraction, libdevice),
// races between blocks, the real limits of a launch, streams.
#pragma once
#include <math.h>  // isfinite, INFINITY in the kernels' own code (knn_cuda.cu)

#include <barrier>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static  // blocks run one at a time: one copy is the block's
#define __launch_bounds__(...)

typedef int cudaError_t;
typedef void* cudaStream_t;
constexpr cudaError_t cudaSuccess = 0;
inline const char* cudaGetErrorString(cudaError_t) { return "host emulation: no such device"; }
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : 1; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}

struct HostDim3 {
  unsigned x = 1, y = 1, z = 1;
};
inline thread_local HostDim3 threadIdx, blockIdx, blockDim, gridDim;
inline std::barrier<>* host_block_barrier = nullptr;
inline void __syncthreads() {
  if (!host_block_barrier) throw std::logic_error("__syncthreads in a kernel launched as element-wise");
  host_block_barrier->arrive_and_wait();
}
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

// Warp shuffles (the metric kernels' warp reductions): the 32 lanes of a warp meet at their warp's
// barrier, publish their values, read lane + off's (their own past the warp's end, as CUDA's width 32
// does), and meet again before a slot is reused. Only in a kernel launched concurrently; every lane of
// the warp must call it, as the full mask promises.
inline std::unique_ptr<std::barrier<>>* host_warp_barriers = nullptr;
inline unsigned long long host_shfl_slots[1024];
template <typename V>
inline V __shfl_down_sync(unsigned, V v, int off) {
  static_assert(sizeof(V) <= sizeof(unsigned long long), "a shuffle moves at most 8 bytes");
  if (!host_warp_barriers) throw std::logic_error("__shfl_down_sync in a kernel launched as element-wise");
  const unsigned t = threadIdx.x, lane = t % 32;
  std::barrier<>& warp = *host_warp_barriers[t / 32];
  std::memcpy(&host_shfl_slots[t], &v, sizeof(V));
  warp.arrive_and_wait();
  V r = v;
  if (off >= 0 && lane + unsigned(off) < 32 && t + unsigned(off) < blockDim.x)
    std::memcpy(&r, &host_shfl_slots[t + off], sizeof(V));
  warp.arrive_and_wait();
  return r;
}

namespace diffrep_host {

constexpr unsigned kMaxBlocks = 2;
inline int64_t launches = 0;  // counted, so the driver can tell a skipped launch

// One thread per thread of a block, kept between launches (starting 256 threads per block cost more
// than the kernels): released by `start`, waited for at `done`.
class BlockThreads {
 public:
  explicit BlockThreads(unsigned n) : n_(n), start_(n + 1), done_(n + 1), sync_(n), warps_((n + 31) / 32) {
    for (unsigned w = 0; w < warps_.size(); ++w)
      warps_[w] = std::make_unique<std::barrier<>>(n - 32 * w < 32 ? n - 32 * w : 32);
    for (unsigned t = 0; t < n; ++t)
      threads_.emplace_back([this, t] {
        for (;;) {
          start_.arrive_and_wait();
          (*body_)(t);
          done_.arrive_and_wait();
        }
      });
  }
  unsigned size() const { return n_; }
  void run(const std::function<void(unsigned)>& body) {
    body_ = &body;
    host_block_barrier = &sync_;
    host_warp_barriers = warps_.data();
    start_.arrive_and_wait();
    done_.arrive_and_wait();
    host_block_barrier = nullptr;
    host_warp_barriers = nullptr;
  }

 private:
  unsigned n_;
  std::barrier<> start_, done_, sync_;
  std::vector<std::unique_ptr<std::barrier<>>> warps_;  // one per 32 threads: __shfl_down_sync
  const std::function<void(unsigned)>* body_ = nullptr;
  std::vector<std::thread> threads_;  // never joined: the object lives until the process exits
};

inline void launch(unsigned grid, unsigned block, const std::function<void()>& kernel, bool concurrent) {
  if (grid == 0 || block == 0 || block > 1024) throw std::runtime_error("invalid launch configuration");
  ++launches;
  grid = grid < kMaxBlocks ? grid : kMaxBlocks;
  static BlockThreads* threads = nullptr;
  if (concurrent && (!threads || threads->size() != block)) threads = new BlockThreads(block);  // (one size here)
  for (unsigned b = 0; b < grid; ++b) {
    const std::function<void(unsigned)> run = [&, b](unsigned t) {
      threadIdx = {t, 0, 0};
      blockIdx = {b, 0, 0};
      blockDim = {block, 1, 1};
      gridDim = {grid, 1, 1};
      kernel();
    };
    if (concurrent) {
      threads->run(run);
    } else {
      for (unsigned t = 0; t < block; ++t) run(t);
    }
  }
}

}  // namespace diffrep_host
