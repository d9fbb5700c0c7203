// Host build of csrc/bfn/bfn_math.h's per-element discretised distribution (the body the CUDA
// kernels run; the CPU module runs its own item loops), float against double, for
// tests/ops/test_bfn_math_host.py. Prints one line: max abs error of the float probabilities, their
// max relative error on bins above 1e-6 whose boundaries lie within |z| < 5.5 (the float tail's
// range), and the backward's max error relative to max(1, |gradient|) (clip; no clip with R >= 1e-2).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bfn/bfn_math.h"

using namespace diffrep::bfn;

int main() {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> U(0, 1);
  double probs_abs = 0, probs_rel = 0, bwd_rel = 0;
  for (int K : {2, 3, 7, 16, 17, 40, 256})
    for (int clip = 0; clip < 2; ++clip)
      for (int it = 0; it < 1000; ++it) {
        const float mu = float(U(rng) * 4.4 - 2.2), sg = float(U(rng) * 0.5 + 0.02);
        std::vector<float> pf(K), gf(K);
        std::vector<double> pd(K), gd(K);
        int32_t flags = 0;
        disc_probs_elem<float>(mu, sg, K, clip, pf.data(), flags);
        disc_probs_elem<double>(mu, sg, K, clip, pd.data(), flags);
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
        const double R = 0.5 * (std::erf((1 - mu) / sg / std::sqrt(2.0)) - std::erf((-1 - mu) / sg / std::sqrt(2.0)));
        if (!clip && R < 1e-2) continue;
        const double scale = std::max(1.0, std::max(std::fabs(dmd), std::fabs(dsd)));
        bwd_rel = std::max(bwd_rel, std::max(std::fabs(dmf - dmd), std::fabs(dsf - dsd)) / scale);
      }
  std::printf("%.6g %.6g %.6g\n", probs_abs, probs_rel, bwd_rel);
  return 0;
}
