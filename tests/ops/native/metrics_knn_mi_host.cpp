// Host build of the 1-D kNN MI as the CUDA kernels run it (csrc/metrics/metrics_cuda.cu: one thread
// per grouped position finds its label with metrics_math.h's group_label, a dropped point writes
// zero terms, and the three sums run position by position), against the CPU kernel's walk over the
// kept groups (csrc/metrics/metrics_cpu.cpp), for tests/ops/test_metrics_knn_mi_host.py. Label
// layouts have empty labels at the start, in the middle and at the end, singletons and tied values.
// Prints: positions whose group_label differs from a linear scan of the groups; (latent, factor)
// cases whose sums differ from the CPU kernel's in any bit; cases run; cases with an empty label
// between two non-empty ones; rows whose argsort (a permutation) group_row refused.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "metrics/metrics_math.h"

using namespace diffrep::metrics;

int main() {
  std::mt19937 rng(7);
  long wrong_label = 0, wrong_sum = 0, cases = 0, inner_empty = 0, refused = 0;
  for (int it = 0; it < 400; ++it) {
    const int64_t n = 2 + int64_t(rng() % 300), V = 1 + int64_t(rng() % 12);
    const int64_t k = std::vector<int64_t>{1, 3, 10}[rng() % 3];
    std::vector<int64_t> used(V);  // the labels drawn from: a random non-empty subset of [0, V)
    for (int64_t L = 0; L < V; ++L) used[L] = L;
    std::shuffle(used.begin(), used.end(), rng);
    used.resize(1 + rng() % V);
    std::vector<int64_t> lab(n);
    for (auto& L : lab) L = used[rng() % used.size()];
    std::vector<double> x(n);
    const double scale = std::vector<double>{1, 10, 100, 1e6}[rng() % 4];  // 1 and 10: many ties
    std::normal_distribution<double> N01;
    for (auto& v : x) v = std::round(N01(rng) * scale) / 10;
    std::vector<int64_t> vorder(n), cnt(V, 0), st(V, 0);
    std::iota(vorder.begin(), vorder.end(), 0);
    std::stable_sort(vorder.begin(), vorder.end(), [&](int64_t a, int64_t b) { return x[a] < x[b]; });
    std::vector<double> sx(n);
    for (int64_t q = 0; q < n; ++q) sx[q] = x[vorder[q]];
    for (int64_t L : lab) ++cnt[L];
    for (int64_t L = 1; L < V; ++L) st[L] = st[L - 1] + cnt[L - 1];
    for (int64_t L = 1; L + 1 < V; ++L) inner_empty += cnt[L] == 0 && st[L] > 0 && st[L] < n;
    // both kernels' stable counting sort of the value-sorted row by label, kept points' prefix kp
    std::vector<double> grouped(n);
    std::vector<int64_t> kp(n + 1, 0), fill(V);
    refused += !group_row(sx.data(), vorder.data(), lab.data(), cnt.data(), st.data(), n, V, grouped.data(), kp.data(),
                          fill.data());
    int64_t n_kept = 0;
    for (int64_t L = 0; L < V; ++L) n_kept += cnt[L] > 1 ? cnt[L] : 0;
    // the CPU kernel: kept groups in label order
    double c[3] = {0, 0, 0};
    for (int64_t L = 0; L < V; ++L) {
      if (cnt[L] < 2) continue;
      for (int64_t q = st[L]; q < st[L] + cnt[L]; ++q) {
        const KnnTerms t = knn_point(grouped.data(), sx.data(), kp.data(), n, q, st[L], cnt[L], k);
        c[0] += t.psi_k, c[1] += t.psi_nl, c[2] += t.psi_m;
      }
    }
    // the CUDA kernels: knn_point_kernel per position, knn_reduce_kernel's sums in position order
    double g[3] = {0, 0, 0};
    for (int64_t q = 0; q < n; ++q) {
      const int64_t L = group_label(st.data(), V, q);
      int64_t scan = 0;
      while (!(st[scan] <= q && q < st[scan] + cnt[scan])) ++scan;
      wrong_label += L != scan;
      KnnTerms t{0, 0, 0};
      if (cnt[L] >= 2) t = knn_point(grouped.data(), sx.data(), kp.data(), n, q, st[L], cnt[L], k);
      g[0] += t.psi_k, g[1] += t.psi_nl, g[2] += t.psi_m;
    }
    const double mc = knn_mi_combine(c[0], c[1], c[2], n_kept), mg = knn_mi_combine(g[0], g[1], g[2], n_kept);
    wrong_sum += !(c[0] == g[0] && c[1] == g[1] && c[2] == g[2] && mc == mg);
    ++cases;
  }
  std::printf("%ld %ld %ld %ld %ld\n", wrong_label, wrong_sum, cases, inner_empty, refused);
}
