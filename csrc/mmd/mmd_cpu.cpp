// OpenMP CPU kernel of the fused MMD: tiles of kR rows (of x, then of y) against blocks of kCB
// columns of each sample set. Squared distances come from differences (no |a|^2 - 2ab + |b|^2
// cancellation), the kernel is evaluated on the tile in registers, and per row only the sums
// S = sum k, A = sum kappa and B = sum kappa v (a d-vector) survive, so memory is O((n + m) d):
// no n x m matrix exists. Each row's sums are taken in one fixed order whatever the thread, so
// results are bitwise reproducible; identical x and y give identical same-set and cross sums,
// hence a biased MMD^2 of exactly 0.
//
// The tile body is compiled twice, for x86-64-v3 (AVX2 + FMA, chosen at run time) and for the
// baseline ISA of the build.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mmd/mmd_ops.h"
#include "mmd/mmd_math.h"

namespace diffrep {
namespace cpu {

using namespace mmd;
namespace {

constexpr int kR = 4;        // rows per tile
constexpr int kCB = 16;      // columns per block
constexpr int kMaxDim = 64;  // the Python wrapper rejects d > 64

// One sample set as columns: row-major v (n x d) and its transpose vt (d x np), zero-padded to
// np = a multiple of kCB columns.
template <typename T>
struct Cols {
  const T* v;
  const T* vt;
  int64_t n, np;
};

// Per-row accumulators of one tile against one column set.
struct Acc {
  double S[kR], A[kR], B[kR * kMaxDim];
};

// Rows xr[0..kR) against every column of c. diag0 >= 0 when the rows belong to c (row r is
// column diag0 + r): its own pair then contributes no kappa, and no k when mask_k_diag.
template <typename T, int kKind, bool kGrad>
__attribute__((always_inline)) inline void tile_body(const T* const* xr, int64_t diag0, const Cols<T>& c, int64_t d,
                                                     const KernelSpec<T>& ks, bool mask_k_diag, Acc& acc) {
  for (int r = 0; r < kR; ++r) acc.S[r] = acc.A[r] = 0.0;
  if (kGrad) std::fill(acc.B, acc.B + kR * d, 0.0);
  alignas(64) T sb[kR * kMaxDim];
  for (int64_t j0 = 0; j0 < c.np; j0 += kCB) {
    alignas(64) T r2[kR][kCB] = {};
    for (int64_t k = 0; k < d; ++k) {
      const T* col = c.vt + k * c.np + j0;
      for (int r = 0; r < kR; ++r) {
        const T xk = xr[r][k];
#pragma omp simd
        for (int j = 0; j < kCB; ++j) {
          const T t = xk - col[j];
          r2[r][j] += t * t;
        }
      }
    }
    alignas(64) T kv[kR][kCB] = {}, kp[kR][kCB] = {};
    for (int l = 0; l < ks.n_scales; ++l) {
      const T s = ks.s[l], w = ks.w[l], wk = ks.wk[l];
      for (int r = 0; r < kR; ++r) {
#pragma omp simd
        for (int j = 0; j < kCB; ++j) {
          if (kKind == kRbf) {
            const T e = exp_nonpos(-r2[r][j] * s);
            kv[r][j] += w * e;
            kp[r][j] += wk * e;
          } else {
            const T q = s / (s + r2[r][j]);
            kv[r][j] += w * q;
            kp[r][j] += wk * q * q;
          }
        }
      }
    }
    const int64_t jn = std::min<int64_t>(kCB, c.n - j0);
    for (int r = 0; r < kR; ++r) {
      // row r's own pair, if it lies in this block: no kappa, and no k when mask_k_diag (scalar
      // stores before the vector sums; a combined mask inside them was miscompiled by gcc 12
      // under -fno-trapping-math)
      const int64_t dj = diag0 >= 0 ? diag0 + r - j0 : -1;
      if (dj >= 0 && dj < jn) {
        kp[r][dj] = T(0);
        if (mask_k_diag) kv[r][dj] = T(0);
      }
      T s = 0, a = 0;
#pragma omp simd reduction(+ : s, a)
      for (int j = 0; j < kCB; ++j) {
        s += j < jn ? kv[r][j] : T(0);
        a += j < jn ? kp[r][j] : T(0);
      }
      acc.S[r] += s;
      acc.A[r] += a;
    }
    if (kGrad) {
      std::fill(sb, sb + kR * d, T(0));
      for (int64_t j = 0; j < jn; ++j) {
        const T* vj = c.v + (j0 + j) * d;
        for (int r = 0; r < kR; ++r) {
          const T kk = kp[r][j];
          T* b = sb + r * d;
#pragma omp simd
          for (int64_t k = 0; k < d; ++k) b[k] += kk * vj[k];
        }
      }
      for (int64_t i = 0; i < kR * d; ++i) acc.B[i] += sb[i];
    }
  }
}

template <typename T, int kKind, bool kGrad>
using TileFn = void (*)(const T* const*, int64_t, const Cols<T>&, int64_t, const KernelSpec<T>&, bool, Acc&);

template <typename T, int kKind, bool kGrad>
__attribute__((target("arch=x86-64-v3"))) void tile_v3(const T* const* xr, int64_t diag0, const Cols<T>& c, int64_t d,
                                                       const KernelSpec<T>& ks, bool mask_k_diag, Acc& acc) {
  tile_body<T, kKind, kGrad>(xr, diag0, c, d, ks, mask_k_diag, acc);
}

template <typename T, int kKind, bool kGrad>
void tile_base(const T* const* xr, int64_t diag0, const Cols<T>& c, int64_t d, const KernelSpec<T>& ks,
               bool mask_k_diag, Acc& acc) {
  tile_body<T, kKind, kGrad>(xr, diag0, c, d, ks, mask_k_diag, acc);
}

template <typename T, int kKind, bool kGrad>
TileFn<T, kKind, kGrad> pick_tile() {
  static const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return v3 ? &tile_v3<T, kKind, kGrad> : &tile_base<T, kKind, kGrad>;
}

// vt (d x np) <- transpose of v (n x d), zero-padded; returns whether every value is finite.
template <typename T>
bool transpose_padded(const T* v, int64_t n, int64_t d, int64_t np, std::vector<T>& vt) {
  vt.assign(static_cast<size_t>(d * np), T(0));
  bool finite = true;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) {
      const T val = v[i * d + k];
      finite &= std::isfinite(val);
      vt[k * np + i] = val;
    }
  return finite;
}

template <typename T, int kKind, bool kGrad>
void mmd_rows(const T* x, int64_t n, const T* y, int64_t m, int64_t d, const KernelSpec<T>& ks, bool unbiased,
              const Cols<T>& cx, const Cols<T>& cy, double* rows, T* gx, T* gy) {
  const TileFn<T, kKind, kGrad> tile = pick_tile<T, kKind, kGrad>();
  const EstimatorWeights ew = estimator_weights(n, m, unbiased);
  const int64_t tx = (n + kR - 1) / kR, ty = (m + kR - 1) / kR;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t t = 0; t < tx + ty; ++t) {
    const bool in_x = t < tx;
    const T* data = in_x ? x : y;
    const int64_t nrows = in_x ? n : m, r0 = (in_x ? t : t - tx) * kR;
    const Cols<T>& same = in_x ? cx : cy;
    const Cols<T>& other = in_x ? cy : cx;
    const T* xr[kR];
    for (int r = 0; r < kR; ++r) xr[r] = data + std::min<int64_t>(r0 + r, nrows - 1) * d;
    Acc as, ao;
    tile(xr, r0, same, d, ks, unbiased, as);
    tile(xr, -1, other, d, ks, unbiased, ao);
    const double w_same = in_x ? ew.axx : ew.ayy;
    T* g = in_x ? gx : gy;
    for (int r = 0; r < kR && r0 + r < nrows; ++r) {
      const int64_t i = (in_x ? 0 : n) + r0 + r;
      rows[2 * i] = as.S[r];
      rows[2 * i + 1] = ao.S[r];
      if (kGrad)
        for (int64_t k = 0; k < d; ++k)
          g[(r0 + r) * d + k] = static_cast<T>(grad_row(double(xr[r][k]), as.A[r], as.B[r * d + k], ao.A[r],
                                                        ao.B[r * d + k], w_same, ew.axy));
    }
  }
}

}  // namespace

DIFFREP_LAUNCHER(mmd2) {
  const KernelSpec<T> ks = kernel_spec<T>(kind, scales, weights);
  std::vector<T> xt, yt;
  const Cols<T> cx{x, nullptr, n, (n + kCB - 1) / kCB * kCB}, cy{y, nullptr, m, (m + kCB - 1) / kCB * kCB};
  bool finite = transpose_padded(x, n, d, cx.np, xt);
  finite &= transpose_padded(y, m, d, cy.np, yt);
  if (!finite) {
    *l.flags |= kNonFiniteInput;
    return;
  }
  const Cols<T> ccx{x, xt.data(), n, cx.np}, ccy{y, yt.data(), m, cy.np};
  if (ks.kind == kRbf) {
    if (want_grad)
      mmd_rows<T, kRbf, true>(x, n, y, m, d, ks, unbiased, ccx, ccy, rows, gx, gy);
    else
      mmd_rows<T, kRbf, false>(x, n, y, m, d, ks, unbiased, ccx, ccy, rows, gx, gy);
  } else {
    if (want_grad)
      mmd_rows<T, kImq, true>(x, n, y, m, d, ks, unbiased, ccx, ccy, rows, gx, gy);
    else
      mmd_rows<T, kImq, false>(x, n, y, m, d, ks, unbiased, ccx, ccy, rows, gx, gy);
  }
  // Fixed-order float64 combination of the per-row sums.
  const EstimatorWeights ew = estimator_weights(n, m, unbiased);
  double sxx = 0, sxy = 0, syy = 0;
  for (int64_t i = 0; i < n; ++i) {
    sxx += rows[2 * i];
    sxy += rows[2 * i + 1];
  }
  for (int64_t i = n; i < n + m; ++i) syy += rows[2 * i];
  *loss = static_cast<T>(ew.axx * sxx + ew.ayy * syy - 2.0 * ew.axy * sxy);
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_MMD_OPS)

}  // namespace cpu
}  // namespace diffrep
