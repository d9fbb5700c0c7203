// Per-element maths of the metric kernels (docs/kernels/metrics.md), shared by
// metrics_cpu.cpp and metrics_cuda.cu. The specification is the PyTorch twin in
// python/diffrep/ops/reference/metrics.py; every function below reproduces the twin's operation
// order. Products and sums whose rounding decides a result (histogram edges, the brute-force
// neighbour distance) go through mul_rn/add_rn so nvcc cannot fuse them into an FMA.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "common/errors.h"
#include "common/hd.h"

namespace diffrep {
namespace metrics {

// Plain constants: std::numeric_limits is host-only under nvcc.
constexpr double kInf = HUGE_VAL;
constexpr double kEps = DBL_EPSILON;


// a * b and a + b rounded to nearest: nvcc may not contract them into an FMA.
#if defined(__CUDA_ARCH__)
DIFFREP_HD float mul_rn(float a, float b) { return __fmul_rn(a, b); }
DIFFREP_HD double mul_rn(double a, double b) { return __dmul_rn(a, b); }
DIFFREP_HD float add_rn(float a, float b) { return __fadd_rn(a, b); }
DIFFREP_HD double add_rn(double a, double b) { return __dadd_rn(a, b); }
#else
template <typename T>
DIFFREP_HD T mul_rn(T a, T b) {
  return a * b;
}
template <typename T>
DIFFREP_HD T add_rn(T a, T b) {
  return a + b;
}
#endif

// digamma for x > 0 in the Cephes form torch uses (aten/src/ATen/native/Math.h calc_digamma):
// recurrence up to 10, psi(10) exactly, else the asymptotic series in 1/x^2.
DIFFREP_HD double digamma_pos(double x) {
  double result = 0;
  while (x < 10) {
    result -= 1 / x;
    x += 1;
  }
  if (x == 10) return result + 2.25175258906672110764;
  double y = 0;
  if (x < 1.0e17) {
    const double z = 1.0 / mul_rn(x, x);
    double p = 8.33333333333333333333E-2;
    p = add_rn(mul_rn(p, z), -2.10927960927960927961E-2);
    p = add_rn(mul_rn(p, z), 7.57575757575757575758E-3);
    p = add_rn(mul_rn(p, z), -4.16666666666666666667E-3);
    p = add_rn(mul_rn(p, z), 3.96825396825396825397E-3);
    p = add_rn(mul_rn(p, z), -8.33333333333333333333E-3);
    p = add_rn(mul_rn(p, z), 8.33333333333333333333E-2);
    y = mul_rn(z, p);
  }
  return result + log(x) - (0.5 / x) - y;
}

// ---------------------------------------------------------------- AUROC (docs/kernels/metrics.md#auroc-matrix)
// Doubled mid-ranks of one row from its argsort o: a tie run at sorted positions [s, e) gets the
// integer s + e + 1 (twice the 1-based mid-rank).
template <typename T>
DIFFREP_HD void doubled_midranks(const T* s_row, const int64_t* o, int64_t n, int32_t* r) {
  for (int64_t s = 0; s < n;) {
    const T v = s_row[o[s]];
    int64_t e = s + 1;
    while (e < n && s_row[o[e]] == v) ++e;
    for (int64_t q = s; q < e; ++q) r[o[q]] = int32_t(s + e + 1);
    s = e;
  }
}

// AUC from the doubled positive rank sum: (2R+ - n+(n+ + 1)) / (2 n+ n-), one rounding; NaN when
// the label row holds one class.
DIFFREP_HD double auc_from_rank_sum(int64_t two_rpos, int64_t npos, int64_t n) {
  const int64_t nneg = n - npos;
  if (npos == 0 || nneg == 0) return __builtin_nan("");
  const double p = double(npos);
  // p (p + 1) unfused: past n+ = 2^26 it rounds, and an FMA would round differently from the CPU
  return (double(two_rpos) - mul_rn(p, p + 1)) / (2 * p * double(nneg));
}

// ---------------------------------------------------------------- histogram (docs/kernels/metrics.md#histogram-discretisation-and-mi-matrix)
// NumPy's histogram range: (min, max), widened to (c - 0.5, c + 0.5) for a constant column;
// step = (hi - lo) / B in the input dtype.
template <typename T>
struct HistRange {
  T lo, step;
};

template <typename T>
DIFFREP_HD HistRange<T> hist_range(T lo, T hi, int64_t B) {
  if (lo == hi) {
    lo = lo - T(0.5);
    hi = hi + T(0.5);
  }
  return HistRange<T>{lo, (hi - lo) / T(B)};
}

// np.digitize(x, edges[:-1]) with edge k = k * step + lo (NumPy's linspace, in T): the number of
// edges <= x, by binary search over k in [0, B).
template <typename T>
DIFFREP_HD int64_t hist_label(T x, HistRange<T> r, int64_t B) {
  int64_t lo = 0, hi = B;  // invariant: edges [0, lo) are <= x, edges [hi, B) are > x
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (add_rn(mul_rn(T(mid), r.step), r.lo) <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// sklearn mutual_info_score of one contingency table given by cell(b, v) with row sums rows(b)
// and column sums cols(v) over N samples (the twin's mi_from_counts, term for term).
template <typename Cell, typename Rows, typename Cols>
DIFFREP_HD double mi_table(Cell cell, Rows rows, Cols cols, int64_t B, int64_t V, int64_t N) {
  int64_t nz_rows = 0, nz_cols = 0;
  for (int64_t b = 0; b < B; ++b) nz_rows += rows(b) > 0;
  for (int64_t v = 0; v < V; ++v) nz_cols += cols(v) > 0;
  if (nz_rows <= 1 || nz_cols <= 1) return 0.0;
  const double total = double(N), log_total = log(total);
    double mi = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t a = rows(b);
    if (a == 0) continue;
    for (int64_t v = 0; v < V; ++v) {
      const int64_t c = cell(b, v);
      if (c == 0) continue;
      const double cd = double(c), p = cd / total;
      const double log_outer = -log(double(a * cols(v))) + log_total + log_total;
      const double term = mul_rn(p, log(cd) - log_total) + mul_rn(p, log_outer);
      if (fabs(term) >= kEps) mi += term;
    }
  }
  return mi > 0 ? mi : 0.0;
}

// ---------------------------------------------------------------- 1-D kNN MI (docs/kernels/metrics.md#1-d-knn-mutual-information)
// Distance from c = grp[p] to its kk-th same-label neighbour in the sorted group grp[0..nl), as
// sklearn's NearestNeighbors measures it, then nudged down one ulp:
// - kk >= nl / 2: NearestNeighbors picks brute force, which ranks every member by the expansion
//   c^2 + (-2 c y) + y^2 clamped at 0; its rounding can reorder near-equal neighbours, so the kk-th
//   smallest expansion over the whole group (nl <= 2 kk + 1 members) is taken;
// - otherwise a KD tree ranks by (c - y)^2: the kk nearest lie in the best window [s, s + kk]
//   around p, and the distance is sqrt((c - y)^2) (sqrt is correctly rounded, as NumPy's).
DIFFREP_HD double knn_radius(const double* grp, int64_t nl, int64_t p, int64_t kk) {
  const double c = grp[p];
  double sq;
  if (kk >= nl / 2) {
    sq = kInf;
    for (int64_t a = 0; a < nl; ++a) {  // the kk-th smallest by counting, O(nl^2) with nl <= 2k + 1
      if (a == p) continue;
      const double ya = grp[a];
      double ea = add_rn(add_rn(mul_rn(c, c), -2.0 * mul_rn(c, ya)), mul_rn(ya, ya));
      ea = ea > 0 ? ea : 0.0;
      int64_t less = 0, less_eq = 0;
      for (int64_t b = 0; b < nl; ++b) {
        if (b == p) continue;
        const double yb = grp[b];
        double eb = add_rn(add_rn(mul_rn(c, c), -2.0 * mul_rn(c, yb)), mul_rn(yb, yb));
        eb = eb > 0 ? eb : 0.0;
        less += eb < ea;
        less_eq += eb <= ea;
      }
      if (less < kk && kk <= less_eq) {
        sq = ea;
        break;
      }
    }
  } else {
    double r = kInf;
    for (int64_t t = 0; t <= kk; ++t) {
      const int64_t s = p - t;
      if (s < 0 || s + kk > nl - 1) continue;
      const double d_lo = c - grp[s], d_hi = grp[s + kk] - c;
      const double cand = d_lo > d_hi ? d_lo : d_hi;
      r = cand < r ? cand : r;
    }
    sq = mul_rn(r, r);
  }
  return nextafter(sqrt(sq), 0.0);
}

// Number of kept points within r of c: two binary searches on the row's sorted values sx[0..n)
// with the exact predicate (c - v)^2 <= r^2, then the kept counts from the prefix kp.
DIFFREP_HD int64_t knn_ball_count(const double* sx, const int64_t* kp, int64_t n, double c, double r) {
  const double r2 = mul_rn(r, r);
  int64_t lo = 0, hi = n;  // first index whose value is inside the ball or above c
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    const double v = sx[mid], d = c - v;
    if (v >= c || mul_rn(d, d) <= r2)
      hi = mid;
    else
      lo = mid + 1;
  }
  const int64_t left = lo;
  lo = left;
  hi = n;  // first index past the ball on the right
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    const double v = sx[mid], d = v - c;
    if (v > c && !(mul_rn(d, d) <= r2))
      hi = mid;
    else
      lo = mid + 1;
  }
  return kp[lo] - kp[left];
}

// Stable counting sort of one value-sorted row sx[0..n) by the labels of its points (point vorder[q]
// has label lab[vorder[q]]) into `grouped` (label L's group at st[L], cnt[L] places), and the
// prefix kp[0..n] of kept points (label count > 1) in value order; fill[0..V) is scratch. Both
// kernels run it, so a write can never leave its group: when vorder is not a permutation a label may
// meet more points than its count, and those are dropped and reported (false). Before this guard
// the CPU kernel wrote past its n-element buffer on such an argsort (e.g. vorder = [1, 1]).
// It also guards its own indices (a vorder entry outside [0, n), a label outside [0, V): the point
// is dropped, not kept, and reported), so the CUDA launcher needs no host-side wait for a range
// check before launching it (docs/kernels/metrics.md#host-reads-on-cuda).
DIFFREP_HD bool group_row(const double* sx, const int64_t* vorder, const int64_t* lab, const int64_t* cnt,
                          const int64_t* st, int64_t n, int64_t V, double* grouped, int64_t* kp, int64_t* fill) {
  bool ok = true;
  for (int64_t L = 0; L < V; ++L) fill[L] = st[L];
  kp[0] = 0;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t p = vorder[q];
    const int64_t L = p >= 0 && p < n ? lab[p] : -1;
    if (L < 0 || L >= V) {
      ok = false;
      kp[q + 1] = kp[q];
      continue;
    }
    const int64_t at = fill[L]++;
    if (at < st[L] + cnt[L])
      grouped[at] = sx[q];
    else
      ok = false;
    kp[q + 1] = kp[q] + (cnt[L] > 1);
  }
  return ok;
}

// The label whose group holds position q of a label-grouped row, given the group starts st[0..V)
// (st[0] = 0, nondecreasing, an empty group starting where the next one does): the last label whose
// group starts at or before q, which passes over empty groups. The CUDA kernel's lookup, one thread
// per position; the CPU kernel walks the groups instead.
DIFFREP_HD int64_t group_label(const int64_t* st, int64_t V, int64_t q) {
  int64_t lo = 0, hi = V;  // invariant: st[0..lo) <= q, st[hi..V) > q
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (st[mid] <= q)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - 1;
}

// The three digamma terms of one kept point at position q of the label-grouped row `grouped`
// (its label's group starts at g0 and holds nl >= 2 points).
struct KnnTerms {
  double psi_k, psi_nl, psi_m;
};

DIFFREP_HD KnnTerms knn_point(const double* grouped, const double* sx, const int64_t* kp, int64_t n, int64_t q,
                              int64_t g0, int64_t nl, int64_t k) {
  const int64_t kk = nl - 1 < k ? nl - 1 : k;
  const double r = knn_radius(grouped + g0, nl, q - g0, kk);
  const int64_t m = knn_ball_count(sx, kp, n, grouped[q], r);
  return KnnTerms{digamma_pos(double(kk > 1 ? kk : 1)), digamma_pos(double(nl)), digamma_pos(double(m > 1 ? m : 1))};
}

// MI = psi(n) + mean psi(k) - mean psi(N_l) - mean psi(m), clipped at 0 (0 with no kept point).
DIFFREP_HD double knn_mi_combine(double s_k, double s_nl, double s_m, int64_t n_kept) {
  if (n_kept == 0) return 0.0;
  const double nk = double(n_kept);
  const double mi = digamma_pos(nk) + s_k / nk - s_nl / nk - s_m / nk;
  return mi > 0 ? mi : 0.0;
}

// ---------------------------------------------------------------- FactorVAE votes (docs/metrics.md#factorvae-score)
// argmin over the active codes of var_ddof1(batch[:, c]) / g[c], the first NaN winning (np.argmin)
// and the first index winning ties; batch is (B, d) row-major. Returns the index into `active`.
template <typename T>
DIFFREP_HD int64_t vote_argmin(const T* batch, int64_t B, int64_t d, const double* g, const int64_t* active,
                               int64_t na) {
  int64_t best = 0;
  double best_ratio = kInf;
  bool have = false;
  for (int64_t a = 0; a < na; ++a) {
    const int64_t c = active[a];
    double mean = 0;
    for (int64_t b = 0; b < B; ++b) mean += double(batch[b * d + c]);
    mean /= double(B);
    double ss = 0;
    for (int64_t b = 0; b < B; ++b) {
      const double dv = double(batch[b * d + c]) - mean;
      ss += mul_rn(dv, dv);  // unfused: the argmin must not depend on the backend's FMA contraction
    }
    const double ratio = (ss / double(B - 1)) / g[c];
    if (ratio != ratio) return a;  // NaN: np.argmin returns the first one
    if (!have || ratio < best_ratio) {
      best = a;
      best_ratio = ratio;
      have = true;
    }
  }
  return best;
}

}  // namespace metrics
}  // namespace diffrep
