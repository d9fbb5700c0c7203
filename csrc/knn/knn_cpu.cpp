// OpenMP CPU kernel of the tiled kNN scan (knn_ops.h, docs/kernels/knn.md). The points c are
// packed once into panels of kCB columns stored dimension-major ([d][kCB], zero-padded), so a tile
// of kR query rows against one panel reads both operands contiguously; the squared distances of
// the tile live in registers and are folded at once into each row's running top-kk list and ball
// count. A block of kQB query rows (an OpenMP work item) walks the panels, every tile of the block
// meeting a panel while it is in cache (a panel is 128 KB at d = 2048 in float32). Nothing of size m x n exists: memory is O((m + n) d). Each query row is reduced in one
// fixed column order whatever the thread count, so results are bitwise reproducible.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "knn/knn_math.h"
#include "knn/knn_ops.h"

namespace diffrep {
namespace cpu {

using namespace knn;
namespace {

constexpr int kR = 4;    // query rows per tile
constexpr int kCB = 16;  // columns per panel
constexpr int kQB = 64;  // query rows per block (one OpenMP work item)

// panels[p * d * kCB + k * kCB + j] = c[(p * kCB + j) * d + k] (0 past n).
template <typename T>
void pack_panels(const T* c, int64_t n, int64_t d, std::vector<T>& panels) {
  const int64_t np = (n + kCB - 1) / kCB;
  panels.assign(static_cast<size_t>(np * d * kCB), T(0));
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < np; ++p)
    for (int j = 0; j < kCB && p * kCB + j < n; ++j) {
      const T* src = c + (p * kCB + j) * d;
      T* dst = panels.data() + p * d * kCB + j;
      for (int64_t k = 0; k < d; ++k) dst[k * kCB] = src[k];
    }
}

// The squared distances of rows qr[0..kR) to the kCB columns of one panel.
template <typename T>
__attribute__((always_inline)) inline void tile_body(const T* const* qr, const T* panel, int64_t d, T (&r2)[kR][kCB]) {
  for (int r = 0; r < kR; ++r)
    for (int j = 0; j < kCB; ++j) r2[r][j] = T(0);
  for (int64_t k = 0; k < d; ++k) {
    const T* col = panel + k * kCB;
    for (int r = 0; r < kR; ++r) {
      const T qk = qr[r][k];
#pragma omp simd
      for (int j = 0; j < kCB; ++j) {
        const T t = qk - col[j];
        r2[r][j] += t * t;
      }
    }
  }
}

// The tile compiled for x86-64-v3 (AVX2 + FMA, chosen at run time) and for the baseline ISA.
template <typename T>
__attribute__((target("arch=x86-64-v3"))) void tile_v3(const T* const* qr, const T* panel, int64_t d,
                                                       T (&r2)[kR][kCB]) {
  tile_body<T>(qr, panel, d, r2);
}

template <typename T>
void tile_base(const T* const* qr, const T* panel, int64_t d, T (&r2)[kR][kCB]) {
  tile_body<T>(qr, panel, d, r2);
}

template <typename T>
using TileFn = void (*)(const T* const*, const T*, int64_t, T (&)[kR][kCB]);

template <typename T>
TileFn<T> pick_tile() {
  static const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return v3 ? &tile_v3<T> : &tile_base<T>;
}

template <typename T>
int32_t scan_all(const T* q, int64_t m, const T* panels, int64_t n, int64_t d, int32_t kk, bool strict, const T* r2b,
                 T* kth, int64_t* count) {
  const int64_t blocks = (m + kQB - 1) / kQB, np = (n + kCB - 1) / kCB;
  const T inf = std::numeric_limits<T>::infinity();
  const TileFn<T> tile_d2 = pick_tile<T>();
  int32_t flags = 0;
  // a non-finite r2 is flagged as a non-finite distance is: the wrapper reads one word per call
  // (python/diffrep/ops/knn.py) and re-checks r2 for the message only when it is set
  if (r2b)
    for (int64_t j = 0; j < n; ++j)
      if (!std::isfinite(r2b[j])) flags |= kNonFiniteInput;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : flags)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t b0 = b * kQB;
    const int nb = static_cast<int>(std::min<int64_t>(kQB, m - b0));
    T best[kQB][kMaxK];
    int64_t cnt[kQB] = {};
    for (int r = 0; r < kQB; ++r)
      for (int i = 0; i < kMaxK; ++i) best[r][i] = inf;
    // every tile of the block meets one panel while it is in cache, so each panel is read from
    // memory once per block of kQB rows, not once per tile of kR rows
    for (int64_t p = 0; p < np; ++p) {
      const T* panel = panels + p * d * kCB;
      const int jn = static_cast<int>(std::min<int64_t>(kCB, n - p * kCB));
      for (int t0 = 0; t0 < nb; t0 += kR) {
        const T* qr[kR];
        for (int r = 0; r < kR; ++r) qr[r] = q + (b0 + std::min(t0 + r, nb - 1)) * d;
        alignas(64) T r2[kR][kCB];
        tile_d2(qr, panel, d, r2);
        for (int r = 0; r < kR && t0 + r < nb; ++r)
          for (int j = 0; j < jn; ++j) {
            const T v = r2[r][j];
            if (!std::isfinite(v)) flags |= kNonFiniteInput;
            if (kk > 0) topk_insert(best[t0 + r], kk, v);
            if (r2b && in_ball(v, r2b[p * kCB + j], strict)) ++cnt[t0 + r];
          }
      }
    }
    for (int r = 0; r < nb; ++r) {
      if (kth) kth[b0 + r] = best[r][kk - 1];
      if (count) count[b0 + r] = cnt[r];
    }
  }
  return flags;
}

}  // namespace

DIFFREP_LAUNCHER(knn_scan) {
  std::vector<T> panels;
  pack_panels(c, n, d, panels);
  *l.flags |= scan_all<T>(q, m, panels.data(), n, d, kk, strict, r2, kth, count);
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_KNN_OPS)

}  // namespace cpu
}  // namespace diffrep
