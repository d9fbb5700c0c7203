// Host build of the CUDA launchers of the metric family (csrc/metrics/metrics_cuda.cu, run through
// tests/ops/native/cuda_host/cuda_runtime.h with every launch concurrent: the AUROC product kernel's
// warp shuffles and the kNN reduction's barriers), against the CPU kernels of csrc/metrics/metrics_cpu.cpp
// compiled into the same program, for tests/ops/test_cuda_launchers_host.py. Both backends call the same
// metrics_math.h element maths, so outputs agree bit for bit; what this checks is the CUDA plumbing:
// indexing, grid-stride coverage (the emulated grid is capped at 2 blocks), scratch layouts, the flags
// word and, built with AddressSanitizer, that no kernel reads or writes outside its arrays on bad indices.
//
// knn_mi_cd's launcher reads nothing on the host (docs/kernels/metrics.md#host-reads-on-cuda): its
// kernels guard their own indices. With a label outside [0, V), a vorder entry outside [0, n) or an
// argsort that is not a permutation, both backends must set kIndexOutOfRange, and every (latent, factor)
// pair whose latent row is a permutation and whose factor's labels are all in range must keep its
// exact value (a flagged pair's value is unspecified on CUDA: the wrapper raises).
//
// Prints one line per check: its name and the count of mismatches.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "metrics/metrics_ops.h"

using namespace diffrep;

static std::mt19937_64 rng(11);

template <typename T>
static int64_t mismatches(const std::vector<T>& a, const std::vector<T>& b) {
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += !(a[i] == b[i] || (a[i] != a[i] && b[i] != b[i]));
  return bad;
}

static void line(const std::string& name, int64_t bad) { std::printf("%s %lld\n", name.c_str(), (long long)bad); }

// ---------------------------------------------------------------- 1-D kNN MI
struct KnnCase {
  const char* name;
  int64_t J, F, n, V, k;
  std::vector<std::pair<int64_t, int64_t>> bad_labels;  // (factor, position) -> value below
  int64_t label_value;
  std::vector<std::pair<int64_t, int64_t>> bad_vorder;  // (row, position) -> value below
  int64_t vorder_value;
};

static void knn_case(const KnnCase& c) {
  const int64_t J = c.J, F = c.F, n = c.n, V = c.V;
  std::normal_distribution<double> N01;
  std::vector<double> x(J * n);
  for (auto& v : x) v = std::round(N01(rng) * 8) / 4;  // ties
  std::vector<int64_t> labels(F * n);
  for (int64_t f = 0; f < F; ++f)
    for (int64_t i = 0; i < n; ++i) labels[f * n + i] = i < V ? i : int64_t(rng() % uint64_t(V));
  std::vector<double> sx(J * n);
  std::vector<int64_t> vorder(J * n);
  for (int64_t j = 0; j < J; ++j) {
    int64_t* o = vorder.data() + j * n;
    std::iota(o, o + n, 0);
    std::stable_sort(o, o + n, [&](int64_t a, int64_t b) { return x[j * n + a] < x[j * n + b]; });
    for (int64_t q = 0; q < n; ++q) sx[j * n + q] = x[j * n + o[q]];
  }
  std::vector<bool> bad_factor(F, false), bad_row(J, false);
  for (auto [f, i] : c.bad_labels) {
    labels[f * n + i] = c.label_value;
    bad_factor[f] = bad_factor[f] || c.label_value < 0 || c.label_value >= V;
  }
  for (auto [j, q] : c.bad_vorder) {
    vorder[j * n + q] = c.vorder_value;
    std::vector<int64_t> seen(n, 0);  // still a permutation of [0, n)?
    bool perm = true;
    for (int64_t p = 0; p < n; ++p) {
      const int64_t v = vorder[j * n + p];
      perm = perm && v >= 0 && v < n && seen[v]++ == 0;
    }
    bad_row[j] = !perm;
  }
  bool any_bad = false;
  for (bool b : bad_factor) any_bad = any_bad || b;
  for (bool b : bad_row) any_bad = any_bad || b;
  const double poison = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> mi_cuda(J * F, -7.0), mi_cpu(J * F, -7.0);
  int32_t fg = 0, fc = 0;
  {  // separate exact-size scratch per backend (AddressSanitizer sees any access past them)
    std::vector<double> ds(metrics::knn_dscratch_size(J, n), poison);
    std::vector<int64_t> is(metrics::knn_iscratch_size(J, F, n, V), -5);
    cuda::knn_mi_cd<double>(Launch{0, 0, &fg}, J, F, n, V, c.k, sx.data(), vorder.data(), labels.data(), ds.data(),
                            is.data(), mi_cuda.data());
  }
  {
    std::vector<double> ds(metrics::knn_dscratch_size(J, n), poison);
    std::vector<int64_t> is(metrics::knn_iscratch_size(J, F, n, V), -5);
    cpu::knn_mi_cd<double>(Launch{-1, 0, &fc}, J, F, n, V, c.k, sx.data(), vorder.data(), labels.data(), ds.data(),
                           is.data(), mi_cpu.data());
  }
  int64_t wrong = 0, written = 0;
  for (int64_t j = 0; j < J; ++j)
    for (int64_t f = 0; f < F; ++f) {
      written += mi_cuda[j * F + f] == -7.0;  // every pair is written, flagged or not
      if (!bad_row[j] && !bad_factor[f]) wrong += !(mi_cuda[j * F + f] == mi_cpu[j * F + f]);
    }
  const int32_t want = any_bad ? kIndexOutOfRange : 0;
  const std::string tag = std::string("knn_mi_cd.") + c.name;
  line(tag + ".values", wrong);
  line(tag + ".unwritten", written);
  line(tag + ".flags_cuda", fg != want);
  line(tag + ".flags_cpu", fc != want);
}

// ---------------------------------------------------------------- the other metric launchers
template <typename T>
static void auroc(const char* tn, int64_t U, int64_t A, int64_t n, bool bad_order) {
  std::vector<T> scores(U * n);
  for (auto& v : scores) v = T(int64_t(rng() % 7));  // ties
  std::vector<int64_t> order(U * n);
  for (int64_t u = 0; u < U; ++u) {
    int64_t* o = order.data() + u * n;
    std::iota(o, o + n, 0);
    std::stable_sort(o, o + n, [&](int64_t a, int64_t b) { return scores[u * n + a] < scores[u * n + b]; });
  }
  if (bad_order) order[(U - 1) * n + n / 2] = n;  // the last row: past the capped grid's first pass when U > 512
  std::vector<uint8_t> labels(n * A);
  std::vector<int64_t> npos(A, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < A; ++a) npos[a] += labels[i * A + a] = uint8_t(rng() % 2);
  std::vector<int32_t> r2g(U * n, -1), r2c(U * n, -1);
  std::vector<double> ag(A * U, -1), ac(A * U, -1);
  int32_t fg = 0, fc = 0;
  cuda::auroc_matrix<T>(Launch{0, 0, &fg}, U, A, n, scores.data(), order.data(), labels.data(), npos.data(), r2g.data(),
                        ag.data());
  cpu::auroc_matrix<T>(Launch{-1, 0, &fc}, U, A, n, scores.data(), order.data(), labels.data(), npos.data(), r2c.data(),
                       ac.data());
  const std::string tag = std::string("auroc_matrix.") + tn + ".U" + std::to_string(U) + ".A" + std::to_string(A) +
                          ".n" + std::to_string(n) + (bad_order ? ".bad" : "");
  if (!bad_order) line(tag + ".auc", mismatches(ag, ac));
  line(tag + ".flags_cuda", fg != (bad_order ? kIndexOutOfRange : 0));
  line(tag + ".flags_cpu", fc != (bad_order ? kIndexOutOfRange : 0));
}

template <typename T>
static void hist(const char* tn, int64_t n, int64_t J, int64_t B) {
  std::normal_distribution<double> N01;
  std::vector<T> codes(n * J);
  for (auto& v : codes) v = T(N01(rng));
  for (int64_t i = 0; i < n; ++i) codes[i * J] = T(1.5);  // a constant column
  std::vector<T> lg(2 * J), lc(2 * J);
  std::vector<int64_t> bg(n * J, -1), bc(n * J, -1);
  int32_t fg = 0, fc = 0;
  cuda::hist_discretize<T>(Launch{0, 0, &fg}, n, J, B, codes.data(), lg.data(), bg.data());
  cpu::hist_discretize<T>(Launch{-1, 0, &fc}, n, J, B, codes.data(), lc.data(), bc.data());
  const std::string tag = std::string("hist_discretize.") + tn + ".n" + std::to_string(n) + ".J" + std::to_string(J);
  line(tag + ".labels", mismatches(bg, bc));
  line(tag + ".flags", fg != 0 || fc != 0);
}

static void mi(int64_t n, int64_t J, int64_t F, int64_t B, int64_t V, int64_t bad) {
  std::vector<int64_t> labels(n * J), factors(n * F);
  for (auto& v : labels) v = int64_t(rng() % uint64_t(B));
  for (auto& v : factors) v = int64_t(rng() % uint64_t(V));
  if (bad) factors[(n - 1) * F + F - 1] = bad;  // the last entry: past the capped grid's first pass
  const int64_t s = metrics::mi_scratch_size(J, F, B, V);
  std::vector<int64_t> sg(s, 0), sc(s, 0);
  std::vector<double> mg(J * F, -1), mc(J * F, -1), hg(F, -1), hc(F, -1);
  int32_t fg = 0, fc = 0;
  cuda::mi_matrix<double>(Launch{0, 0, &fg}, n, J, F, B, V, labels.data(), factors.data(), sg.data(), mg.data(), hg.data());
  cpu::mi_matrix<double>(Launch{-1, 0, &fc}, n, J, F, B, V, labels.data(), factors.data(), sc.data(), mc.data(), hc.data());
  const std::string tag = "mi_matrix.n" + std::to_string(n) + ".J" + std::to_string(J) + (bad ? ".bad" + std::to_string(bad) : "");
  if (!bad) {
    line(tag + ".mi", mismatches(mg, mc));
    line(tag + ".h", mismatches(hg, hc));
  }
  line(tag + ".flags_cuda", fg != (bad ? kIndexOutOfRange : 0));
  line(tag + ".flags_cpu", fc != (bad ? kIndexOutOfRange : 0));
}

template <typename T>
static void votes(const char* tn, int64_t nt, int64_t B, int64_t d, int64_t F, bool compressed, int64_t bad_factor) {
  std::normal_distribution<double> N01;
  std::vector<T> batches(nt * B * d);
  for (auto& v : batches) v = T(N01(rng));
  std::vector<int64_t> fi(nt);
  for (auto& v : fi) v = int64_t(rng() % uint64_t(F));
  if (bad_factor) fi[nt - 1] = bad_factor;
  std::vector<double> g(d);
  for (auto& v : g) v = 0.5 + double(rng() % 100) / 50;
  std::vector<int64_t> active;
  for (int64_t c = 0; c < d; c += 2) active.push_back(c);  // every other code
  const int64_t na = int64_t(active.size());
  std::vector<int64_t> vg(F * d, 0), vc(F * d, 0), ag(nt, -1), ac(nt, -1);
  int32_t fg = 0, fc = 0;
  cuda::factor_vae_votes<T>(Launch{0, 0, &fg}, nt, B, d, F, na, batches.data(), fi.data(), g.data(), active.data(),
                            compressed, vg.data(), ag.data());
  cpu::factor_vae_votes<T>(Launch{-1, 0, &fc}, nt, B, d, F, na, batches.data(), fi.data(), g.data(), active.data(),
                           compressed, vc.data(), ac.data());
  const std::string tag = std::string("factor_vae_votes.") + tn + ".nt" + std::to_string(nt) +
                          (compressed ? ".compressed" : ".codes") + (bad_factor ? ".bad" : "");
  if (!bad_factor) {
    line(tag + ".votes", mismatches(vg, vc));
    line(tag + ".arg", mismatches(ag, ac));
  }
  line(tag + ".flags_cuda", fg != (bad_factor ? kIndexOutOfRange : 0));
  line(tag + ".flags_cpu", fc != (bad_factor ? kIndexOutOfRange : 0));
}

int main() {
  const int64_t big = int64_t(1) << 40, low = std::numeric_limits<int64_t>::min();
  const KnnCase knn_cases[] = {
      // J n > 2 blocks of 256 (the point kernel's grid-stride wrap), n > 256 (several reduction chunks, a
      // partial last one), J > 2 (the reduction's block loop over latents), k above some groups' sizes
      {"clean", 5, 3, 300, 4, 3, {}, 0, {}, 0},
      {"clean_k20_v7", 3, 2, 90, 7, 20, {}, 0, {}, 0},
      {"one_point", 1, 1, 1, 1, 3, {}, 0, {}, 0},
      {"v1", 2, 1, 40, 1, 3, {}, 0, {}, 0},
      {"label_minus1", 4, 3, 120, 3, 3, {{1, 17}}, -1, {}, 0},
      {"label_v", 4, 3, 120, 3, 3, {{0, 0}, {2, 119}}, 3, {}, 0},
      {"label_huge", 3, 2, 300, 4, 3, {{1, 299}}, big, {}, 0},
      {"label_int64_min", 3, 2, 300, 4, 3, {{0, 150}}, low, {}, 0},
      {"vorder_minus1", 4, 2, 120, 3, 3, {}, 0, {{3, 5}}, -1},
      {"vorder_n", 4, 2, 120, 3, 3, {}, 0, {{0, 119}}, 120},
      {"vorder_huge", 4, 2, 300, 3, 3, {}, 0, {{2, 0}}, big},
      {"vorder_int64_min", 4, 2, 300, 3, 3, {}, 0, {{1, 77}}, low},
      {"vorder_repeat", 4, 2, 120, 3, 3, {}, 0, {{2, 10}, {2, 11}}, 7},  // in range, not a permutation
      {"both", 5, 3, 300, 4, 3, {{2, 3}}, -2, {{4, 299}}, 300},
  };
  for (const KnnCase& c : knn_cases) knn_case(c);
  for (bool bad : {false, true}) {
    auroc<float>("f32", 3, 2, 50, bad);
    auroc<double>("f64", 3, 2, 50, bad);
  }
  auroc<double>("f64", 5, 3, 700, false);  // A U warps: one warp per (attribute, row), lanes stride n
  auroc<double>("f64", 600, 1, 9, true);   // U > 512 rows: the rank kernel's grid-stride wrap
  hist<float>("f32", 300, 3, 10);
  hist<double>("f64", 7, 5, 4);  // J > 2 columns: the min/max kernel's block loop
  mi(300, 3, 2, 5, 4, 0);
  mi(300, 3, 2, 5, 4, 4);
  mi(300, 3, 2, 5, 4, -1);
  votes<float>("f32", 9, 5, 6, 3, true, 0);
  votes<double>("f64", 600, 4, 5, 2, false, 0);  // nt > 512 batches: the grid-stride wrap
  votes<double>("f64", 600, 4, 5, 2, true, 2);
  return 0;
}
