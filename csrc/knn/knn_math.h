// Element maths of the tiled kNN op shared by the CPU and CUDA kernels (docs/kernels/knn.md).
#pragma once
#include "common/hd.h"

namespace diffrep {
namespace knn {

// best[0..kk) holds the kk smallest values seen so far in ascending order (+inf when fewer were
// seen); insert v (ties kept with multiplicity, so the kk-th smallest is best[kk - 1]). A NaN is
// never inserted (the caller flags it).
template <typename T>
DIFFREP_HD void topk_insert(T* best, int kk, T v) {
  if (!(v < best[kk - 1])) return;
  int i = kk - 1;
  while (i > 0 && best[i - 1] > v) {
    best[i] = best[i - 1];
    --i;
  }
  best[i] = v;
}

// Whether a query at squared distance d2 lies in the ball of squared radius r2: d2 <= r2
// (Kynkaanniemi et al. 2019), or d2 < r2 when strict (the clovaai prdc package).
template <typename T>
DIFFREP_HD bool in_ball(T d2, T r2, bool strict) {
  return strict ? d2 < r2 : d2 <= r2;
}

}  // namespace knn
}  // namespace diffrep
