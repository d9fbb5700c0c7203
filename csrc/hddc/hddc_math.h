// Shared maths and layout of the batched HDDC-EM kernels (csrc/hddc/hddc_cpu.cpp, hddc_cuda.cu).
// Specification: docs/kernels/hddc.md; twin:
// python/diffrep/ops/reference/hddc.py (e_step, mstep_stats, cluster_density).
//
// A batch holds B problems over one data buffer X (U, n, d): problem b reads unit unit_of[b] of
// X, its own point weights w (B, n) and responsibilities (B, n, K). Main EM runs B = U problems;
// a split refit runs one K = 2 problem per candidate with w' = w * member (nothing is gathered).
//
// E-step, cost form with rows q_kj (j < dk_k) of Qt (B, K, D, d):
//   -2 log(pi_k N_k(x)) = sum_j u_j^2 (ia_kj - ib_k) + |e|^2 ib_k + cst_k,   e = x - mu_k,
//   u_j = q_kj . e, ia = 1/a, ib = 1/max(b, 1e-6), cst = sum log a + (d - dk) log b + d log 2pi
//   - 2 log pi (the full-covariance compat form is the same with Qt = L^-1, ia = 1, ib = 0). When
//   d_k is large the driver passes AkjBkQkDk components in that form too (Qt = a lower-triangular
//   M with M^T M = Sigma_k^-1): the E-step then costs d (d + 1) / 2 FMAs instead of d d_k.
// M-step: pass 1 n_k = sum w t, s_k = sum w t x; pass 2 W_k = sum w t (x - mu)(x - mu)^T / n_k
// (centred, never S2 - n mu mu^T). Per block of kBlock points the partial sums are taken in T
// in point order, then blocks are combined in float64 in block order: bitwise reproducible.
#pragma once
#include <cstdint>

#include "common/errors.h"
#include "common/hd.h"

namespace diffrep {
namespace hddc {

constexpr int64_t kBlock = 4096;  // points per partial-sum block
constexpr int kMaxDim = 64;       // d and K limits (the wrapper rejects larger)
constexpr int kMaxK = 64;

// Which weight a point carries in the first pass: the M-step's w t, or cluster_density's
// membership indicator [w > 0 and t > phi].
enum WeightMode : int32_t { kSoft = 0, kMember = 1 };

template <typename T>
DIFFREP_HD T pass_weight(int32_t mode, T w, T t, T phi) {
  return mode == kSoft ? w * t : ((w > T(0) && t > phi) ? T(1) : T(0));
}

inline int64_t num_blocks(int64_t n) { return (n + kBlock - 1) / kBlock; }

// Sizes of one batch.
struct Dims {
  int64_t U, n, d, B, K, D;  // D: rows of Qt per component (max dk)
};

// Values per (problem, block) of the scratch of hddc_stats: K * max(d * d, d + 1) for the M-step
// (the scatter reuses the moments' scratch), K * (d + 1) for cluster_density.
inline int64_t stats_width(const Dims& s, int32_t mode) {
  return s.K * (mode == kSoft ? (s.d * s.d > s.d + 1 ? s.d * s.d : s.d + 1) : s.d + 1);
}

// Adds c_r (q_r . e_p)^2 to acc[p] for R consecutive rows q_r of Qt (row stride d) and P points,
// over the columns i < cols; e(i, p) is point p's deviation x - mu in dimension i. The R * P
// independent accumulators keep both FMA pipes busy on the CPU; on CUDA (R = P = 1) the column
// loop, bounded by the padded dimension DMAX, unrolls so the deviations stay in registers.
template <typename T, int P, int R, int DMAX, typename E>
DIFFREP_HD void add_cost_rows(const T* q, int64_t d, int64_t cols, const T* c, E& e, T* acc) {
  T u[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) u[r][p] = T(0);
  DIFFREP_DEVICE_UNROLL
  for (int i = 0; i < DMAX; ++i) {
    if (i >= cols) break;
    for (int r = 0; r < R; ++r) {
      const T qi = q[r * d + i];
      DIFFREP_SIMD
      for (int p = 0; p < P; ++p) u[r][p] += qi * e(i, p);
    }
  }
  for (int r = 0; r < R; ++r) {
    DIFFREP_SIMD
    for (int p = 0; p < P; ++p) acc[p] += c[r] * u[r][p] * u[r][p];
  }
}

// The E-step cost -2 log(pi_k N_k(x)) of P points for one component k, in the cost form above:
// cost[p] = ee[p] ib + cst + sum_{j < dk} (ia_j - ib) u_j^2 with u_j = q_j . e_p, ee[p] = |e_p|^2,
// q: the component's rows of Qt, ia: its ia. With `lower` (tri), the rows of a block of R skip the
// columns beyond the block's last row (zero). Both backends call it: the CPU for a tile of P
// points (R rows at a time), CUDA for one point per thread (P = R = 1).
template <typename T, int P, int R, int DMAX, typename E>
DIFFREP_HD void estep_cost(const T* q, const T* ia, int64_t d, int64_t dk, bool lower, T ib, T cst, const T* ee,
                           E&& e, T* cost) {
  DIFFREP_SIMD
  for (int p = 0; p < P; ++p) cost[p] = ee[p] * ib + cst;
  int64_t j = 0;
  for (; j + R <= dk; j += R) {
    T c[R];
    for (int r = 0; r < R; ++r) c[r] = ia[j + r] - ib;
    add_cost_rows<T, P, R, DMAX>(q + j * d, d, lower && j + R < d ? j + R : d, c, e, cost);
  }
  for (; j < dk; ++j) {
    const T c = ia[j] - ib;
    add_cost_rows<T, P, 1, DMAX>(q + j * d, d, lower && j + 1 < d ? j + 1 : d, &c, e, cost);
  }
}

}  // namespace hddc
}  // namespace diffrep
