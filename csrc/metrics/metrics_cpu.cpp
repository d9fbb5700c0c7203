// OpenMP CPU kernels of the metric family. Per-element maths lives in metrics_math.h (shared with
// CUDA); this file only loops. Bindings: metrics_bindings.h.
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "metrics/metrics_ops.h"
#include "metrics/metrics_math.h"

namespace diffrep {
namespace cpu {

using namespace metrics;

namespace {
inline bool in_range(int64_t v, int64_t hi) { return v >= 0 && v < hi; }

// LSD radix argsort of one row of floats (8-bit digits; a pass whose digit is the same for every
// key is skipped). Keys are the IEEE bits made order-preserving: -0.0 and +0.0 land next to each
// other, which is all the tie runs need. No NaN reaches here (the wrapper rejects them).
template <typename T>
struct RadixSorter {
  using K = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  std::vector<K> keys, keys2;
  std::vector<int64_t> idx, idx2;

  const int64_t* argsort(const T* v, int64_t n) {
    keys.resize(n), keys2.resize(n), idx.resize(n), idx2.resize(n);
    constexpr K sign = K(1) << (8 * sizeof(K) - 1);
    for (int64_t i = 0; i < n; ++i) {
      K b;
      std::memcpy(&b, v + i, sizeof(K));
      keys[i] = (b & sign) ? ~b : (b | sign);
      idx[i] = i;
    }
    for (int shift = 0; shift < int(8 * sizeof(K)); shift += 8) {
      int64_t count[256] = {0};
      for (int64_t i = 0; i < n; ++i) ++count[(keys[i] >> shift) & 255];
      if (count[(keys[0] >> shift) & 255] == n) continue;
      int64_t off = 0;
      for (int d = 0; d < 256; ++d) {
        const int64_t c = count[d];
        count[d] = off;
        off += c;
      }
      for (int64_t i = 0; i < n; ++i) {
        const int64_t pos = count[(keys[i] >> shift) & 255]++;
        keys2[pos] = keys[i];
        idx2[pos] = idx[i];
      }
      keys.swap(keys2);
      idx.swap(idx2);
    }
    return idx.data();
  }
};
}  // namespace

// ---------------------------------------------------------------- AUROC
DIFFREP_LAUNCHER(auroc_matrix) {
  int32_t flags = 0;
  // Rows of int32 partial sums that cannot overflow: chunk * max(r2) < 2^31.
  const int64_t chunk = int64_t(0x7fffffff) / (2 * n + 1);
#pragma omp parallel reduction(| : flags)
  {
    std::vector<int64_t> acc(A);
    std::vector<int32_t> part(A);
    RadixSorter<T> sorter;
#pragma omp for schedule(static)
    for (int64_t u = 0; u < U; ++u) {
      const T* s_row = scores + u * n;
      int32_t* r = r2 + u * n;
      const int64_t* o = order ? order + u * n : sorter.argsort(s_row, n);
      if (order) {
        bool ok = true;
        for (int64_t p = 0; p < n; ++p) ok &= in_range(o[p], n);
        if (!ok) {
          flags |= kIndexOutOfRange;
          for (int64_t a = 0; a < A; ++a) auc[a * U + u] = 0;
          continue;
        }
      }
      // Doubled mid-ranks: a tie run at sorted positions [s, e) gets s + e + 1.
      doubled_midranks(s_row, o, n, r);
      // 2 R+ = labels . r2 for every attribute at once: masked int32 adds across the A labels of
      // one sample (vectorised over a), flushed to int64 every `chunk` samples. Exact.
      for (int64_t a = 0; a < A; ++a) acc[a] = 0;
      for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        const int64_t i1 = i0 + chunk < n ? i0 + chunk : n;
        for (int64_t a = 0; a < A; ++a) part[a] = 0;
        for (int64_t i = i0; i < i1; ++i) {
          const int32_t ri = r[i];
          const uint8_t* y = labels + i * A;
          int32_t* pp = part.data();
#pragma omp simd
          for (int64_t a = 0; a < A; ++a) pp[a] += ri & -int32_t(y[a]);
        }
        for (int64_t a = 0; a < A; ++a) acc[a] += part[a];
      }
      for (int64_t a = 0; a < A; ++a) auc[a * U + u] = auc_from_rank_sum(acc[a], npos[a], n);
    }
  }
  *l.flags |= flags;
}

// ---------------------------------------------------------------- histogram discretisation
DIFFREP_LAUNCHER(hist_discretize) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < J; ++j) {
    T lo = codes[j], hi = codes[j];
    for (int64_t i = 1; i < n; ++i) {
      const T v = codes[i * J + j];
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    lohi[j] = lo;
    lohi[J + j] = hi;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < J; ++j)
      labels[i * J + j] = hist_label(codes[i * J + j], hist_range(lohi[j], lohi[J + j], B), B);
}

// ---------------------------------------------------------------- MI matrix
DIFFREP_LAUNCHER(mi_matrix) {
  int64_t* joint = scratch;                   // (J, F, B, V)
  int64_t* lab_count = scratch + J * F * B * V;  // (J, B)
  int64_t* fac_count = lab_count + J * B;        // (F, V)
  int32_t flags = 0;
  // Range check once, so the scatter below never writes out of bounds.
#pragma omp parallel for schedule(static) reduction(| : flags)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < J; ++j)
      if (!in_range(labels[i * J + j], B)) flags |= kIndexOutOfRange;
    for (int64_t f = 0; f < F; ++f)
      if (!in_range(factors[i * F + f], V)) flags |= kIndexOutOfRange;
  }
  if (flags) {
    *l.flags |= flags;
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < J; ++j) ++lab_count[j * B + labels[i * J + j]];
    for (int64_t f = 0; f < F; ++f) ++fac_count[f * V + factors[i * F + f]];
  }
#pragma omp parallel for schedule(dynamic)
  for (int64_t jf = 0; jf < J * F; ++jf) {
    const int64_t j = jf / F, f = jf % F;
    int64_t* tab = joint + jf * B * V;
    for (int64_t i = 0; i < n; ++i) ++tab[labels[i * J + j] * V + factors[i * F + f]];
    const int64_t* rows = lab_count + j * B;
    const int64_t* cols = fac_count + f * V;
    mi[jf] = mi_table([&](int64_t b, int64_t v) { return tab[b * V + v]; }, [&](int64_t b) { return rows[b]; },
                      [&](int64_t v) { return cols[v]; }, B, V, n);
  }
  for (int64_t f = 0; f < F; ++f) {
    const int64_t* cnt = fac_count + f * V;
    h[f] = mi_table([&](int64_t b, int64_t v) { return b == v ? cnt[b] : int64_t(0); },
                    [&](int64_t b) { return cnt[b]; }, [&](int64_t v) { return cnt[v]; }, V, V, n);
  }
}

// ---------------------------------------------------------------- 1-D kNN MI
// The flag logic of the CUDA launcher, which does not wait for a range check before indexing: the
// label counts skip and flag a label outside [0, V), and group_row drops and flags a vorder entry
// outside [0, n) or a bad label, so every (latent, factor) pair holding one is flagged (mi = 0
// there; the wrapper raises) and the other pairs get their usual value.
DIFFREP_LAUNCHER(knn_mi_cd) {
  int32_t flags = 0;
  std::vector<int64_t> counts(F * V, 0), starts(F * V, 0), n_kept(F, 0);
  for (int64_t f = 0; f < F; ++f) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t L = labels[f * n + i];
      if (in_range(L, V))
        ++counts[f * V + L];
      else
        flags |= kIndexOutOfRange;
    }
    for (int64_t L = 1; L < V; ++L) starts[f * V + L] = starts[f * V + L - 1] + counts[f * V + L - 1];
    for (int64_t L = 0; L < V; ++L) n_kept[f] += counts[f * V + L] > 1 ? counts[f * V + L] : 0;
  }
#pragma omp parallel
  {
    std::vector<double> grouped(n);
    std::vector<int64_t> kp(n + 1), fill(V);
#pragma omp for schedule(dynamic) reduction(| : flags)
    for (int64_t jf = 0; jf < J * F; ++jf) {
      const int64_t j = jf / F, f = jf % F;
      const int64_t* cnt = counts.data() + f * V;
      const int64_t* st = starts.data() + f * V;
      // Stable counting sort of the value-sorted row by label; kp counts kept points in value order.
      if (!group_row(sx + j * n, vorder + j * n, labels + f * n, cnt, st, n, V, grouped.data(), kp.data(),
                     fill.data())) {
        flags |= kIndexOutOfRange;  // vorder is not a permutation of the row, or an index is out of range
        mi[j * F + f] = 0.0;
        continue;
      }
      double s_k = 0, s_nl = 0, s_m = 0;
      for (int64_t L = 0; L < V; ++L) {
        if (cnt[L] < 2) continue;
        for (int64_t q = st[L]; q < st[L] + cnt[L]; ++q) {
          const KnnTerms t = knn_point(grouped.data(), sx + j * n, kp.data(), n, q, st[L], cnt[L], k);
          s_k += t.psi_k;
          s_nl += t.psi_nl;
          s_m += t.psi_m;
        }
      }
      mi[j * F + f] = knn_mi_combine(s_k, s_nl, s_m, n_kept[f]);
    }
  }
  *l.flags |= flags;
}

// ---------------------------------------------------------------- FactorVAE votes
DIFFREP_LAUNCHER(factor_vae_votes) {
  int32_t flags = 0;
  for (int64_t a = 0; a < na; ++a)
    if (!in_range(active[a], d)) flags |= kIndexOutOfRange;
  for (int64_t t = 0; t < nt; ++t)
    if (!in_range(factor_index[t], F)) flags |= kIndexOutOfRange;
  if (flags || na == 0) {
    *l.flags |= flags | (na == 0 ? kIndexOutOfRange : 0);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < nt; ++t) {
    const int64_t a = vote_argmin(batches + t * B * d, B, d, global_var, active, na);
    arg[t] = compressed ? a : active[a];
  }
  for (int64_t t = 0; t < nt; ++t) ++votes[factor_index[t] * d + arg[t]];
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_METRICS_OPS)

}  // namespace cpu
}  // namespace diffrep
