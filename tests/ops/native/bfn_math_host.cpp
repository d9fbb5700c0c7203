// Host build of csrc/bfn/bfn_math.h's per-element discretised distribution (the body the CUDA
// kernels run; the CPU module runs its own item loops), for tests/ops/test_bfn_math_host.py.
// Prints one line: the double probabilities' max abs error against BFN Eq. 103-104 in long double
// (erfc on the side of each boundary away from the mean); the float probabilities' max abs error
// against the double ones, and their max relative error on bins above 1e-6 whose boundaries lie
// within |z| < 5.5 (the float tail's range); the float backward's max error against the double one
// (which the CPU module runs and its tests check), relative to max(1, |gradient|) (clip; no clip
// with R >= 1e-2).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bfn/bfn_math.h"

using namespace diffrep::bfn;

// Phi(b_hi) - Phi(b_lo) in long double, each CDF from the tail on its side of mu (no cancellation);
// b = +-inf for the outer edges with clip
static long double cdf_diff_exact(long double b_lo, long double b_hi, long double mu, long double sg) {
  const auto upper = [&](long double b) { return 0.5L * std::erfc((b - mu) / sg / std::sqrt(2.0L)); };
  const auto lower = [&](long double b) { return 0.5L * std::erfc(-(b - mu) / sg / std::sqrt(2.0L)); };
  if (b_lo >= mu) return upper(b_lo) - upper(b_hi);
  if (b_hi <= mu) return lower(b_hi) - lower(b_lo);
  return 1.0L - lower(b_lo) - upper(b_hi);
}

int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> U(0, 1);
  double exact_abs = 0, probs_abs = 0, probs_rel = 0, bwd_rel = 0;
  for (int K : {2, 3, 7, 16, 17, 40, 256})
    for (int clip = 0; clip < 2; ++clip)
      for (int it = 0; it < 1000; ++it) {
        const float mu = float(U(rng) * 4.4 - 2.2), sg = float(U(rng) * 0.5 + 0.02);
        std::vector<float> pf(K), gf(K);
        std::vector<double> pd(K), gd(K);
        int32_t flags = 0;
        disc_probs_elem<float>(mu, sg, K, clip, pf.data(), flags);
        disc_probs_elem<double>(mu, sg, K, clip, pd.data(), flags);
        const long double R = cdf_diff_exact(-1, 1, mu, sg);  // the mass in [-1, 1]
        for (int k = 0; k < K; ++k) {
          const long double lo = clip && k == 0 ? -INFINITY : 2.0L * k / K - 1;
          const long double hi = clip && k == K - 1 ? INFINITY : 2.0L * (k + 1) / K - 1;
          const long double exact = clip ? cdf_diff_exact(lo, hi, mu, sg) : (R < 1e-5L ? 1.0L / K : cdf_diff_exact(lo, hi, mu, sg) / R);
          exact_abs = std::max(exact_abs, double(std::fabs(pd[k] - exact)));
        }
        for (int k = 0; k < K; ++k) {
          const double err = std::fabs(pf[k] - pd[k]);
          const double z_lo = (2.0 * k / K - 1 - mu) / sg, z_hi = (2.0 * (k + 1) / K - 1 - mu) / sg;
          probs_abs = std::max(probs_abs, err);
          if (pd[k] > 1e-6 && std::fabs(z_lo) < 5.5 && std::fabs(z_hi) < 5.5) probs_rel = std::max(probs_rel, err / pd[k]);
        }
        for (int k = 0; k < K; ++k) gf[k] = float(gd[k] = U(rng) * 2 - 1);
        float dmf, dsf;
        double dmd, dsd;
        disc_probs_backward_elem<float>(mu, sg, gf.data(), K, clip, dmf, dsf);
        disc_probs_backward_elem<double>(mu, sg, gd.data(), K, clip, dmd, dsd);
        if (!clip && R < 1e-2L) continue;
        const double scale = std::max(1.0, std::max(std::fabs(dmd), std::fabs(dsd)));
        bwd_rel = std::max(bwd_rel, std::max(std::fabs(dmf - dmd), std::fabs(dsf - dsd)) / scale);
      }
  std::printf("%.6g %.6g %.6g %.6g\n", exact_abs, probs_abs, probs_rel, bwd_rel);
  return 0;
}
