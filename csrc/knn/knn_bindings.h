// The binding of the tiled kNN op, generated from its table (knn_ops.h), and its checks.
#pragma once
#include <string>

#include "common/bind_ops.h"
#include "knn/knn_ops.h"

namespace diffrep {

// The rows of d values in a (>= 1).
template <typename A>
int64_t knn_rows(const A& a, int64_t d, const char* name) {
  expect(d >= 1, "knn_scan: d must be >= 1");
  expect(int64_t(a.size()) % d == 0, (std::string("knn_scan: ") + name + " must hold rows of d values").c_str());
  const int64_t rows = int64_t(a.size()) / d;
  expect(rows >= 1, (std::string("knn_scan: ") + name + " needs at least one row").c_str());
  return rows;
}

inline void knn_check(int32_t kk, int64_t n, bool has_kth, bool has_r2, bool has_count) {
  expect(kk >= 0 && kk <= knn::kMaxK, "knn_scan: kk must be in [0, 32]");
  expect(kk <= n, "knn_scan: kk exceeds the number of points");
  expect(has_kth == (kk > 0), "knn_scan: kth must be given exactly when kk > 0");
  expect(has_r2 == has_count, "knn_scan: r2 and count go together");
  expect(has_kth || has_count, "knn_scan: nothing to compute");
}

DIFFREP_DEFINE_BINDINGS(bind_knn, DIFFREP_KNN_OPS)

}  // namespace diffrep
