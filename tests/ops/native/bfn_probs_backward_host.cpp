// Host build of the discretised-probabilities backward that the CUDA kernel runs
// (csrc/bfn/bfn_math.h, disc_probs_backward_f64: float inputs, double body), for
// tests/ops/test_bfn_probs_backward_host.py. Reference: the gradient of sum_k g_k p_k differentiated
// bin by bin in long double (BFN Eq. 103-104: p_k = (Phi(b_k) - Phi(b_{k-1})) / R, R = 1 with clip,
// the CDFs from the tail on each boundary's side of the mean), no Abel summation.
// Prints one line: the worst error of the float entry and of the float body (disc_probs_backward_elem
// in float, what the kernel ran before), each |got - exact| / (|exact| + 1e-6), over cases with R >= 1e-5
// (below, the kernels define a zero gradient, uniform bins).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bfn/bfn_math.h"

using namespace diffrep::bfn;
using LD = long double;

static LD cdf_upper(LD b, LD mu, LD sg) { return 0.5L * std::erfc((b - mu) / sg / std::sqrt(2.0L)); }
static LD cdf_lower(LD b, LD mu, LD sg) { return 0.5L * std::erfc(-(b - mu) / sg / std::sqrt(2.0L)); }

// Phi(b_hi) - Phi(b_lo) without cancellation (b = +-inf allowed)
static LD cdf_diff_exact(LD b_lo, LD b_hi, LD mu, LD sg) {
  if (b_lo >= mu) return cdf_upper(b_lo, mu, sg) - cdf_upper(b_hi, mu, sg);
  if (b_hi <= mu) return cdf_lower(b_hi, mu, sg) - cdf_lower(b_lo, mu, sg);
  return 1.0L - cdf_lower(b_lo, mu, sg) - cdf_upper(b_hi, mu, sg);
}

// dPhi((b - mu)/sg)/dmu and /dsg (0 at an infinite boundary)
static void dcdf(LD b, LD mu, LD sg, LD& dm, LD& ds) {
  if (std::isinf(b)) {
    dm = ds = 0;
    return;
  }
  const LD z = (b - mu) / sg, phi = std::exp(-0.5L * z * z) / std::sqrt(2.0L * 3.14159265358979323846264338L);
  dm = -phi / sg;
  ds = -z * phi / sg;
}

// d/dmu and d/dsg of sum_k g_k p_k; returns false where R < 1e-5 (uniform bins)
static bool exact_backward(LD mu, LD sg, const std::vector<float>& g, int K, bool clip, LD& d_mu, LD& d_sg) {
  const auto b = [&](int j) -> LD {
    if (clip && j == 0) return -INFINITY;
    if (clip && j == K) return INFINITY;
    return 2.0L * j / K - 1;
  };
  const LD R = clip ? 1.0L : cdf_diff_exact(-1, 1, mu, sg);
  if (R < 1e-5L) return false;
  LD dRm = 0, dRs = 0;
  if (!clip) {
    LD hm, hs, lm, ls;
    dcdf(1, mu, sg, hm, hs);
    dcdf(-1, mu, sg, lm, ls);
    dRm = hm - lm;
    dRs = hs - ls;
  }
  d_mu = d_sg = 0;
  for (int k = 0; k < K; ++k) {
    const LD q = cdf_diff_exact(b(k), b(k + 1), mu, sg);
    LD hm, hs, lm, ls;
    dcdf(b(k + 1), mu, sg, hm, hs);
    dcdf(b(k), mu, sg, lm, ls);
    d_mu += g[k] * ((hm - lm) * R - q * dRm) / (R * R);
    d_sg += g[k] * ((hs - ls) * R - q * dRs) / (R * R);
  }
  return true;
}

static double rel(double got, LD exact) { return double(std::fabs(got - exact) / (std::fabs(exact) + 1e-6L)); }

int main() {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> U(0, 1);
  double err_entry = 0, err_body = 0;
  for (int K : {2, 3, 7, 16, 17, 256})
    for (int clip = 0; clip < 2; ++clip)
      for (int it = 0; it < 400; ++it) {
        const float mu = float(U(rng) * 4.4 - 2.2), sg = float(U(rng) * 0.5 + 0.02);
        std::vector<float> g(K);
        for (int k = 0; k < K; ++k) g[k] = float(U(rng) * 2 - 1);
        LD em, es;
        if (!exact_backward(mu, sg, g, K, clip, em, es)) continue;
        float dm, ds;
        disc_probs_backward_f64<float>(mu, sg, g.data(), K, clip, dm, ds);
        err_entry = std::max(err_entry, std::max(rel(dm, em), rel(ds, es)));
        disc_probs_backward_elem<float>(mu, sg, g.data(), K, clip, dm, ds);
        err_body = std::max(err_body, std::max(rel(dm, em), rel(ds, es)));
      }
  std::printf("%.6g %.6g\n", err_entry, err_body);
  return 0;
}
