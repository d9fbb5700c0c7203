// Host build of the discrete update's element body (csrc/bfn/bfn_math.h, disc_update_elem: what the
// CUDA kernels run and the CPU falls back to) at the logits a sender sample reaches (alpha K ~ 100),
// for tests/ops/test_bfn_update_lse_host.py. Reference: logsumexp in long double of the same float
// logits theta + y (as the twin's log_softmax gets them). Prints the float body's worst error on the
// log-probabilities (log_io), relative to max(1, |value|).
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bfn/bfn_math.h"

using namespace diffrep::bfn;

int main() {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> U(0, 1);
  double worst = 0;
  for (int K : {2, 5, 16, 64}) {
    for (int it = 0; it < 2000; ++it) {
      const double shift = U(rng) * 120;
      std::vector<float> log_theta(K), y(K), out(K);
      for (int k = 0; k < K; ++k) {
        log_theta[k] = float(-U(rng) * 8);
        y[k] = float(shift + U(rng) * 12);
      }
      int32_t flags = 0;
      disc_update_elem(log_theta.data(), [&](int64_t k) { return y[k]; }, K, 1.0f, true, out.data(), flags);
      std::vector<long double> l(K);
      long double mx = -INFINITY, s = 0;
      for (int k = 0; k < K; ++k) mx = std::fmax(mx, l[k] = (long double)(log_theta[k] + y[k]));
      for (int k = 0; k < K; ++k) s += std::exp(l[k] - mx);
      for (int k = 0; k < K; ++k) {
        const long double exact = l[k] - mx - std::log(s);
        worst = std::fmax(worst, double(std::fabs(out[k] - exact) / std::fmax(1.0L, std::fabs(exact))));
      }
    }
  }
  printf("%g\n", worst);
}
