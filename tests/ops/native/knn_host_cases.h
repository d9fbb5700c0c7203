// The kNN scan's host cases, shared by cuda_launchers_host.cpp (the CUDA scan against a brute force) and
// cuda_vs_cpu_launchers_host.cpp (against the CPU scan). Both builds run the scan's whole grid (its kernel has
// no grid-stride loop: one block per 64 query rows). Coordinates on a grid of 1/4 give exact distances, so ties,
// duplicates at 0 and queries exactly on a ball's boundary occur. bad_r2: one r2 entry +inf and one NaN in the
// last column tile (a query lies in the +inf ball, never in the NaN one).
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

struct KnnCase {
  int64_t m, n, d;
  int kk;
  bool grid, with_r2, strict, nan, bad_r2;
};

inline constexpr KnnCase kKnnCases[] = {
    {1, 1, 1, 1, true, true, false, false, false},       {63, 65, 31, 4, true, true, true, false, false},
    {130, 130, 70, 32, false, true, false, false, false}, {65, 64, 32, 0, true, true, false, false, false},
    {2, 200, 33, 5, true, false, false, false, false},    {64, 129, 3, 3, true, true, true, true, false},
    {200, 64, 64, 1, false, true, false, true, false},    {129, 130, 5, 2, true, true, false, false, true},
    {40, 129, 4, 0, true, true, true, false, true},       {17, 17, 17, 17, false, false, false, false, false}};

template <typename T>
struct KnnInputs {
  std::string tag;
  std::vector<T> q, c, r2;  // queries (m, d), points (n, d), squared radii (n)
};

// ``uniform(count, lo, hi)``: the driver's own seeded draws.
template <typename T, typename Uniform>
KnnInputs<T> knn_inputs(const char* tn, const KnnCase& cs, Uniform uniform) {
  const auto [m, n, d, kk, grid, with_r2, strict, nan, bad_r2] = cs;
  KnnInputs<T> in;
  in.tag = std::string(tn) + ".m" + std::to_string(m) + ".n" + std::to_string(n) + ".d" + std::to_string(d) +
           ".kk" + std::to_string(kk) + (with_r2 ? (strict ? ".lt" : ".le") : "") + (nan ? ".nan" : "") +
           (bad_r2 ? ".bad_r2" : "");
  in.q = uniform(m * d, -1, 1);
  in.c = uniform(n * d, -1, 1);
  if (grid) {
    for (auto& v : in.q) v = T(std::round(double(v) * 4) / 4);
    for (auto& v : in.c) v = T(std::round(double(v) * 4) / 4);
  }
  for (int64_t k = 0; k < d; ++k) in.c[(n - 1) * d + k] = in.q[k];  // a duplicate of query 0: d2 exactly 0
  if (nan) {
    in.q[(m - 1) * d] = T(NAN);               // the last row: every d2 NaN
    in.c[(n / 2) * d + d - 1] = T(INFINITY);  // one point at infinity: d2 inf for every row
  }
  in.r2.resize(n);
  for (int64_t j = 0; j < n; ++j) {  // some query on each ball's boundary (the sum in k order, as the kernels)
    T acc = T(0);
    for (int64_t k = 0; k < d; ++k) {
      const T t = in.q[(j % m) * d + k] - in.c[j * d + k];
      acc += t * t;
    }
    in.r2[j] = acc;
  }
  if (n > 2) in.r2[1] = T(0);
  if (bad_r2) {
    in.r2[n - 1] = T(INFINITY);
    in.r2[n - 2] = T(NAN);
  }
  return in;
}
