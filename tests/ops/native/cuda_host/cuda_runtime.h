// The CUDA runtime and kernel built-ins on the host, so that the .cu launchers and kernels run on a
// machine without a GPU (tests/ops/test_cuda_launchers_host.py, test_cuda_launchers_host_hddc_mmd.py).
// The test rewrites each launch `kernel<<<grid, block, smem, stream>>>(args)` into
// diffrep_host::launch(grid, block, [&] { kernel(args); }, concurrent): every block in turn (z, then y,
// then x), and its threads either one after another (the grid-stride element kernels, which never
// synchronise) or as fibers that meet at a barrier for __syncthreads (the block reductions, the HDDC and
// MMD tiles) and at one per warp for __shfl_down_sync (the metric kernels' warp reductions): BlockFibers.
// grid.x is capped at kMaxBlocks (2), so the grid-stride loops must cover what the launch's grid does not
// (a kernel that takes blockIdx.x as its block of work, as HDDC's row sums and passes do, is launched
// uncapped); grid.y and grid.z are not capped (the HDDC kernels index components and problems with them)
// but must stay within DIFFREP_HOST_MAX_GRID_Y and _Z (CUDA's 65535 unless the build lowers them). What
// this cannot show: device arithmetic (FMA contraction, libdevice), races between blocks, the real limits
// of a launch, streams. `__shared__` arrays are statics here (one copy: blocks run one at a time); the test
// adds diffrep_host::shared_entry(array, sizeof array) after each declaration (host_shared), which fills
// the array with 0xFF bytes (a NaN in every float and double, all ones in every integer) when the first
// thread of a block reaches it, so a kernel that reads shared memory before writing it reads the pattern
// from its first block on, not only what a previous block left there.
#pragma once
#include <math.h>  // isfinite, INFINITY in the kernels' own code (knn_cuda.cu)

#include <sys/mman.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <vector>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/common_interface_defs.h>  // the fiber switches, so that AddressSanitizer follows the stacks
#endif

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
inline cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t) {
  std::memset(p, v, bytes);
  return cudaSuccess;
}

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace diffrep_host {
// Where a thread of a concurrently launched block stands: running, waiting at __syncthreads, waiting at
// its warp's shuffle, or returned from the kernel.
enum class State { kRunning, kBlock, kWarp, kDone };
inline void wait_at(State s);  // the calling thread yields to its block's scheduler (BlockFibers, below)
inline bool in_block = false;  // a concurrently launched block is running
}  // namespace diffrep_host

inline void __syncthreads() {
  if (!diffrep_host::in_block) throw std::logic_error("__syncthreads in a kernel launched as element-wise");
  diffrep_host::wait_at(diffrep_host::State::kBlock);
}
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
// The round-to-nearest intrinsics a kernel uses to keep nvcc from contracting a * b + c into an FMA
// (host code is built with -ffp-contract=off: each operation already rounds on its own).
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }

// Warp shuffles (the metric kernels' warp reductions): the 32 lanes of a warp meet at their warp's
// barrier, publish their values, read lane + off's (their own past the warp's end, as CUDA's width 32
// does), and meet again before a slot is reused. Only in a kernel launched concurrently; every lane of
// the warp must call it, as the full mask promises.
inline unsigned long long host_shfl_slots[1024];
template <typename V>
inline V __shfl_down_sync(unsigned, V v, int off) {
  static_assert(sizeof(V) <= sizeof(unsigned long long), "a shuffle moves at most 8 bytes");
  if (!diffrep_host::in_block) throw std::logic_error("__shfl_down_sync in a kernel launched as element-wise");
  const unsigned t = threadIdx.x, lane = t % 32;
  std::memcpy(&host_shfl_slots[t], &v, sizeof(V));
  diffrep_host::wait_at(diffrep_host::State::kWarp);
  V r = v;
  if (off >= 0 && lane + unsigned(off) < 32 && t + unsigned(off) < blockDim.x)
    std::memcpy(&r, &host_shfl_slots[t + off], sizeof(V));
  diffrep_host::wait_at(diffrep_host::State::kWarp);
  return r;
}

// CUDA's limits on gridDim.y and gridDim.z; a build may lower one to check that a launcher slices its work
#ifndef DIFFREP_HOST_MAX_GRID_Y
#define DIFFREP_HOST_MAX_GRID_Y 65535
#endif
#ifndef DIFFREP_HOST_MAX_GRID_Z
#define DIFFREP_HOST_MAX_GRID_Z 65535
#endif

namespace diffrep_host {

constexpr unsigned kMaxBlocks = 2;

inline uint64_t block_serial = 0;  // counts the blocks launch() runs

// A __shared__ array met by a thread of the running block: 0xFF bytes if it is the block's first thread
// to meet it (later threads keep what the earlier ones wrote).
inline void shared_entry(void* p, size_t bytes) {
  static std::map<void*, uint64_t> poisoned;  // the array -> the block that last poisoned it
  auto [it, fresh] = poisoned.try_emplace(p, block_serial);
  if (!fresh && it->second == block_serial) return;
  it->second = block_serial;
  std::memset(p, 0xFF, bytes);
}
inline int64_t launches = 0;  // counted, so the driver can tell a skipped launch

// The threads of a block as fibers of the calling thread (ucontext), each on its own stack, kept between
// launches. A scheduler sweeps over the threads, resuming each that can run until it waits or returns;
// a barrier opens once every thread of the block (of the warp, for a shuffle) waits at it. Between two
// barriers each thread thus runs to its next one before the next thread starts: a legal CUDA schedule in
// which a missing __syncthreads shows (a thread reads what its neighbours have not written yet, or has
// overwritten what they still read). The sweeps alternate between thread order and its reverse, counted
// over the whole program, so that a reader before or after its writer both show, and a rerun of the
// same launch may take the other order (as a race's result changes from run to run on a GPU). A barrier
// that some thread never reaches (it returned, or waits at another) aborts the program instead of
// hanging. (One OS thread per emulated thread spent more CPU time in futex waits than in the kernels.)
class BlockFibers {
 public:
  explicit BlockFibers(unsigned n) : n_(n), fibers_(n) {
    for (Fiber& f : fibers_) {
      void* p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw std::runtime_error("host emulation: no memory for a thread's stack");
      f.stack = static_cast<char*>(p);
    }
  }
  ~BlockFibers() {
    for (Fiber& f : fibers_) munmap(f.stack, kStack);
  }
  BlockFibers(const BlockFibers&) = delete;
  BlockFibers& operator=(const BlockFibers&) = delete;

  // body(t) for every thread t of the block, dims set for each as it resumes.
  void run(const std::function<void(unsigned)>& body, dim3 block_idx, dim3 block_dim, dim3 grid_dim) {
    body_ = &body;
    for (unsigned t = 0; t < n_; ++t) {
      Fiber& f = fibers_[t];
      f.state = State::kRunning;
      f.fake_stack = nullptr;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack;
      f.ctx.uc_stack.ss_size = kStack;
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, reinterpret_cast<void (*)()>(&BlockFibers::entry), 1, int(t));
    }
    in_block = true;
    current_ = this;
    for (;;) {
      bool all_done = true, all_block = true;
      for (const Fiber& f : fibers_) {
        all_done = all_done && f.state == State::kDone;
        all_block = all_block && f.state == State::kBlock;
      }
      if (all_done) break;
      if (all_block)
        for (Fiber& f : fibers_) f.state = State::kRunning;
      for (unsigned w = 0; w < n_; w += 32) {
        const unsigned e = w + 32 < n_ ? w + 32 : n_;
        bool all_warp = true;
        for (unsigned t = w; t < e; ++t) all_warp = all_warp && fibers_[t].state == State::kWarp;
        if (all_warp)
          for (unsigned t = w; t < e; ++t) fibers_[t].state = State::kRunning;
      }
      bool ran = false;
      const bool reverse = sweeps_++ % 2;
      for (unsigned i = 0; i < n_; ++i) {
        const unsigned t = reverse ? n_ - 1 - i : i;
        if (fibers_[t].state != State::kRunning) continue;
        threadIdx = {t, 0, 0};
        blockIdx = block_idx;
        blockDim = block_dim;
        gridDim = grid_dim;
        resume(t);
        ran = true;
      }
      if (!ran) {
        std::fprintf(stderr, "host emulation: a barrier that not every thread of the block reaches (block %u %u %u)\n",
                     block_idx.x, block_idx.y, block_idx.z);
        std::abort();
      }
    }
    current_ = nullptr;
    in_block = false;
  }

  static void wait(State s) {
    BlockFibers& b = *current_;
    Fiber& f = b.fibers_[b.running_];
    f.state = s;
    b.switch_to_scheduler(f, false);
  }

 private:
  static constexpr size_t kStack = 64 << 10;  // touched lazily
  struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    State state = State::kDone;
    void* fake_stack = nullptr;  // AddressSanitizer's record of the fiber's stack while it is switched out
  };

  static void entry(int t) {
    BlockFibers& b = *current_;
    b.arrived();
    (*b.body_)(unsigned(t));
    b.fibers_[t].state = State::kDone;
    b.switch_to_scheduler(b.fibers_[t], true);
  }

  void resume(unsigned t) {
    running_ = t;
    Fiber& f = fibers_[t];
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_start_switch_fiber(&sched_fake_stack_, f.stack, kStack);
#endif
    swapcontext(&sched_ctx_, &f.ctx);
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(sched_fake_stack_, nullptr, nullptr);
#endif
  }

  void switch_to_scheduler(Fiber& f, [[maybe_unused]] bool finished) {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_start_switch_fiber(finished ? nullptr : &f.fake_stack, sched_bottom_, sched_size_);
#endif
    swapcontext(&f.ctx, &sched_ctx_);
    arrived();  // resumed by the scheduler
  }

  void arrived() {
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_finish_switch_fiber(fibers_[running_].fake_stack, &sched_bottom_, &sched_size_);
#endif
  }

  unsigned n_, running_ = 0;
  std::vector<Fiber> fibers_;
  const std::function<void(unsigned)>* body_ = nullptr;
  ucontext_t sched_ctx_{};
  void* sched_fake_stack_ = nullptr;
  const void* sched_bottom_ = nullptr;
  size_t sched_size_ = 0;
  static inline BlockFibers* current_ = nullptr;
  static inline uint64_t sweeps_ = 0;  // over all blocks and launches: odd sweeps run the threads in reverse
};

inline void wait_at(State s) { BlockFibers::wait(s); }

// `capped`: grid.x at most kMaxBlocks (a grid-stride kernel); false for a kernel that takes blockIdx.x as
// its block of work (HDDC's row sums and passes), which runs its whole grid.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel, bool concurrent, bool capped = true) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.x > 1024)
    throw std::runtime_error("invalid launch configuration");
  if (grid.y > DIFFREP_HOST_MAX_GRID_Y || grid.z > DIFFREP_HOST_MAX_GRID_Z)
    throw std::runtime_error("invalid launch configuration: grid.y or grid.z over the limit");
  if (block.y != 1 || block.z != 1) throw std::runtime_error("host emulation: blocks are one-dimensional");
  ++launches;
  const dim3 g(capped && grid.x > kMaxBlocks ? kMaxBlocks : grid.x, grid.y, grid.z);
  // one pool per block size, kept (the HDDC and MMD launchers alternate 128- and 256-thread blocks)
  static std::map<unsigned, std::unique_ptr<BlockFibers>> pools;
  BlockFibers* fibers = nullptr;
  if (concurrent) {
    std::unique_ptr<BlockFibers>& p = pools[block.x];
    if (!p) p = std::make_unique<BlockFibers>(block.x);
    fibers = p.get();
  }
  for (unsigned z = 0; z < g.z; ++z)
    for (unsigned y = 0; y < g.y; ++y)
      for (unsigned b = 0; b < g.x; ++b) {
        ++block_serial;
        if (concurrent) {
          fibers->run([&](unsigned) { kernel(); }, dim3(b, y, z), dim3(block.x), g);
          continue;
        }
        for (unsigned t = 0; t < block.x; ++t) {
          threadIdx = {t, 0, 0};
          blockIdx = {b, y, z};
          blockDim = {block.x, 1, 1};
          gridDim = g;
          kernel();
        }
      }
}

}  // namespace diffrep_host
