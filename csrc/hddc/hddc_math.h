// Shared maths and layout of the batched HDDC-EM kernels (csrc/hddc/hddc_cpu.cpp, hddc_cuda.cu).
// Specification: shared/reference/kernels.md §4, dyga-encdiff.md §2; twin:
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

}  // namespace hddc
}  // namespace diffrep
