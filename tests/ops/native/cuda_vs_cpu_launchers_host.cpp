// Host build of the CUDA launchers of the BFN, random, guidance and kNN families (csrc/*/..._cuda.cu, every
// launch concurrent through tests/ops/native/cuda_host/cuda_runtime.h) against the CPU launchers of the same
// families compiled into the same program (csrc/*/..._cpu.cpp: their item loops, K = 2 straight-line bodies,
// flat passes, groups of 16 items and AVX-512 copies, chosen at run time as in the package; the program runs
// once per DIFFREP_CPU_ISA level the test asks for), for tests/ops/test_cuda_vs_cpu_launchers_host.py.
// Built twice: -DDIFFREP_VS_BFN (BFN + random) and -DDIFFREP_VS_ROWS (guidance + kNN), the CPU files of
// the two groups declaring the same internal names.
//
// Both sides round each operation on its own (-ffp-contract=off, no -fopenmp: the CPU's `omp simd`
// reductions run in order), so where the CPU runs the maths of the CUDA element body in the same order
// the outputs must agree bit for bit: flags always, the Philox normals (normal_fill, and the draws inside
// the flows and sender updates: docs/kernels/random.md promises the same stream on every device),
// cts_flow, cts_update(_inverse), cts_sender_update, the discrete sender's y, disc_probs_backward (both in
// double), the guidance op's element outputs, the kNN scan's k-th distances and counts, the double
// discretised loss and its K = 2 copy (as numbers there: +0 = -0), the double K >= 3 discrete loss. Values of
// an item whose input is invalid (NaN, sigma <= 0: the op raises) are not specified and not compared; its
// flags are. Elsewhere the CPU
// computes the same quantity by another formula (docs/kernels/bfn.md#performance), and the bound, in T's
// unit roundoff u (2^-24 float, 2^-53 double), is twice one side's error bound (the two errors may add):
//   - softmaxes (disc_flow, disc_update, disc_sender_update's update): each side's argument of exp
//     (a logit less the max, or less the true class's logit) is a sum of terms of size at most M, so it
//     carries an absolute error <= 6 u M, the exp 2 ulp (fast_exp, exp16), the sum of K terms K u, the
//     division and scaling 2 u: p has relative error <= u (6 M + K + 8), so
//     |cuda - cpu| <= 2 u (6 M + K + 8) max(|cuda|, |cpu|) + 4 min_normal (one side may flush a class
//     below e^-87.3 (float) or e^-708 (double) to 0 where the other keeps a subnormal; the CPU's
//     probability-space update 2^40 times that: kUpdateFloor). Log space: the
//     same bound on the log-probabilities, absolute. M: disc_flow beta K + 2 sd max|eps|; updates
//     max_k |l_k| + |y_k| over the item (l = log theta);
//   - disc_probs: a bin p = (v_hi - v_lo + s_hi - s_lo) scale from the split CDFs v (bfn_math.h), each v
//     (the erf tail at the boundary's z) to e(v) = (96 + 4 z^2) u |v| as in the discretised loss below, so
//     |dp| <= 2 [(e(v_lo) + e(v_hi)) scale + p ((e(V_lo) + e(V_hi)) / R + 3 u)] + 4 min_normal (V the CDFs
//     at -1 and 1 behind R, clip=False; scale = 1/R there, 1 with clip);
//   - the discretised loss (float, K >= 3: the AVX-512 boundary sums, explicit FMAs in the erf): each
//     boundary term t_j (Phi, phi, z phi at z_j) has relative error <= (96 + 4 z_j^2) u on either side
//     (the erf tail's degree-8 Horner polynomial in 1/|x|: 18 u times its condition number, <= 4.4 on
//     [1/4, 1], plus the exp's 2 ulp; x = z / sqrt 2 carries three roundings, so e^(-x^2) is off by
//     3 u z^2, and the exp's reduction u x^2 more), the sum of K - 1 terms K u more:
//     |dS| <= 2 u sum_j (K + 96 + 4 z_j^2) |t_j|; x_hat = a - 2/(K R') S_cdf (R' = R, or 1 with clip)
//     and the derivatives follow linearly, with each side's own rounding of the expressions after the
//     sums (8 u of their terms' magnitudes: d_mu = (dN_mu - x_hat dR_mu) / R cancels) and a floor of
//     4 min_normal for subnormal results (written out in disc_cts_loss_case);
//   - the discrete loss (K = 2 and float K >= 3): p as above with M = max_k |l_k - max l|, the loss
//     c (r_x^2 + q) to 2 (2 e_p + 2 K u + 3 u) relative, e_p = u (6 M + K + 8); the gradient
//     f p_k (r_k - s) to 2 |f| p_k (p_k + p_x r_x + q) (3 e_p + 2 K u + 4 u);
//   - the guidance row sums (a float64 tree of 256 lanes on CUDA, 8 interleaved lanes on the CPU):
//     |cuda - cpu| <= 2 D 2^-53 sum_j |v_j| + ulp_T(|sum|) (each side rounds once to T).
// What this cannot show: device arithmetic (nvcc contracts a * b + c into FMAs, the package's CPU build
// does in its AVX2/AVX-512 copies), races between blocks, the real launch limits.
//
// Prints one line per check: its name and the count of mismatching elements; worst.* lines give the
// largest |cuda - cpu| / bound seen per op (informative).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <cuda_runtime.h>  // the host stand-in (tests/ops/native/cuda_host): diffrep_host::launches

using namespace diffrep;

// DIFFREP_VS_SEED: another draw of the inputs (the test uses the default; other seeds check the bounds' slack)
static std::mt19937_64 rng(std::getenv("DIFFREP_VS_SEED") ? std::strtoull(std::getenv("DIFFREP_VS_SEED"), nullptr, 10) : 11);
static std::map<std::string, double> worst;  // op -> the largest |cuda - cpu| / bound

template <typename T>
static std::vector<T> uniform(int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> U(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = T(U(rng));
  return v;
}

template <typename T>
static bool same(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 || (a != a && b != b);
}

template <typename T>
static void exact(const std::string& name, const std::vector<T>& cuda, const std::vector<T>& cpu) {
  int64_t bad = cuda.size() != cpu.size();
  for (size_t i = 0; i < cuda.size() && i < cpu.size(); ++i)
    if (!same(cuda[i], cpu[i]) && ++bad <= 3)
      std::fprintf(stderr, "%s[%zu]: cuda %.17g cpu %.17g\n", name.c_str(), i, double(cuda[i]), double(cpu[i]));
  std::printf("%s %lld\n", name.c_str(), static_cast<long long>(bad));
}

// equal as numbers (+0 == -0), or both NaN
template <typename T>
static void equal(const std::string& name, const std::vector<T>& cuda, const std::vector<T>& cpu) {
  int64_t bad = cuda.size() != cpu.size();
  for (size_t i = 0; i < cuda.size() && i < cpu.size(); ++i)
    if (!(cuda[i] == cpu[i] || (cuda[i] != cuda[i] && cpu[i] != cpu[i])) && ++bad <= 3)
      std::fprintf(stderr, "%s[%zu]: cuda %.17g cpu %.17g\n", name.c_str(), i, double(cuda[i]), double(cpu[i]));
  std::printf("%s %lld\n", name.c_str(), static_cast<long long>(bad));
}

// |cuda - cpu| <= tol[i], or both the same bits / both NaN (infinities must match exactly)
template <typename T>
static void close(const std::string& op, const std::string& name, const std::vector<T>& cuda,
                  const std::vector<T>& cpu, const std::vector<double>& tol) {
  int64_t bad = cuda.size() != cpu.size() || tol.size() != cuda.size();
  double& w = worst[op];
  for (size_t i = 0; i < cuda.size() && i < cpu.size() && i < tol.size(); ++i) {
    if (same(cuda[i], cpu[i])) continue;
    const double d = std::fabs(double(cuda[i]) - double(cpu[i]));
    if (!(d <= tol[i])) {
      ++bad;
      if (bad <= 3)
        std::fprintf(stderr, "%s[%zu]: cuda %.9g cpu %.9g tol %.3g\n", name.c_str(), i, double(cuda[i]),
                     double(cpu[i]), tol[i]);
    }
    if (tol[i] > 0) w = std::max(w, d / tol[i]);
  }
  std::printf("%s %lld\n", name.c_str(), static_cast<long long>(bad));
}

// An item whose input is invalid (a NaN or a sigma <= 0: the op raises from its flag) has no specified
// value; the two sides' differ (the CPU's AVX-512 copies select where the element body propagates NaN):
// its `w` values of cpu are set to cuda's.
template <typename T>
static void unspecified(std::vector<T>& cpu, const std::vector<T>& cuda, int64_t item, int64_t w) {
  for (int64_t k = item * w; k < (item + 1) * w; ++k) cpu[k] = cuda[k];
}

static void flags(const std::string& name, int32_t cuda, int32_t cpu, int32_t want = -1) {
  if (cuda != cpu || (want >= 0 && cuda != want))
    std::fprintf(stderr, "%s.flags: cuda %d cpu %d want %d\n", name.c_str(), cuda, cpu, want);
  std::printf("%s.flags %d\n", name.c_str(), (cuda == cpu && (want < 0 || cuda == want)) ? 0 : 1);
}

template <typename T>
constexpr double unit() {
  return std::numeric_limits<T>::epsilon() / 2;
}
template <typename T>
constexpr double tiny() {
  return 4 * double(std::numeric_limits<T>::min());
}

#ifdef DIFFREP_VS_BFN
#include "bfn/bfn_math.h"
#include "bfn/bfn_ops.h"
#include "common/philox.h"
#include "random/random_ops.h"

using namespace diffrep::bfn;

static std::vector<int64_t> classes(int64_t n, int64_t K) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int64_t(rng() % uint64_t(K));
  return v;
}

static int64_t at(int64_t i, int64_t row_len, bool per_row) { return per_row ? i / row_len : i; }

// The normal of stream index e (for the tolerances only: magnitudes of the noise each item reads)
template <typename T>
static double eps_at(const T* noise, PhiloxKey key, uint64_t e) {
  if (noise) return double(noise[e]);
  T v[4];
  philox_normal4<T>(key, e >> 2, v);
  return double(v[e & 3]);
}

// the softmax bound of the header, per value of item i (K values at out[i K])
template <typename T>
static void softmax_tol(std::vector<double>& tol, int64_t i, int64_t K, double M, const T* a, const T* b, bool log_io,
                        double floor = tiny<T>()) {
  const double u = unit<T>(), e = 2 * u * (6 * M + double(K) + 8);
  for (int64_t k = 0; k < K; ++k) {
    const double m = std::max(std::fabs(double(a[i * K + k])), std::fabs(double(b[i * K + k])));
    tol[i * K + k] = log_io ? e + 4 * u * (m == INFINITY ? 0 : m) : e * m + floor;
  }
}

// The probability-space update's floor: the CPU's flat passes and max-shifted items keep a sum down to
// 2^-40 (bfn_cpu_items.h, kMinProductSum), so a class whose e^(l - max) fell below fast_exp's range
// (e^-87.3 float, e^-708.3 double: about 4 min_normal) is 0 there and up to 2^40 times that on CUDA
// (docs/kernels/bfn.md#performance: "terms that underflowed are then below 1e-26 of it").
template <typename T>
const double kUpdateFloor = tiny<T>() * 1099511627776.0;

// the largest |l_k| + |sign y_k| of an update item (l = log theta; -inf classes count 0)
template <typename T>
static double update_magnitude(const T* theta, const T* y, int64_t K, bool log_io) {
  double M = std::log(double(K));
  for (int64_t k = 0; k < K; ++k) {
    const double l = log_io ? double(theta[k]) : std::log(double(theta[k]));
    M = std::max(M, (std::isfinite(l) ? std::fabs(l) : 0.0) + (std::isfinite(double(y[k])) ? std::fabs(double(y[k])) : 0.0));
  }
  return M;
}

template <typename T>
static std::vector<T> distributions(int64_t n, int64_t K, bool log_io, bool zeros) {
  std::vector<T> theta(n * K);
  for (int64_t i = 0; i < n; ++i) {
    auto l = uniform<double>(K, -4, 4);
    if (zeros && i % 3 == 1) l[(i / 3) % K] = -INFINITY;  // a class of probability 0
    double s = 0;
    for (double v : l) s += std::exp(v);
    for (int64_t k = 0; k < K; ++k) theta[i * K + k] = T(log_io ? std::min(l[k] - std::log(s), 0.0) : std::exp(l[k]) / s);
  }
  return theta;
}

// The discretised L^inf (BFN Eq. 122): bit for bit where the CPU runs the element body's loop (double) or
// its K = 2 straight-line copy (same order of operations); float K >= 3 within the bounds of the header:
// the boundary sums' errors carried through x_hat and the derivatives (evaluated in double).
template <typename T>
static void disc_cts_loss_case(const std::string& tg, int64_t n, bool per_row, int64_t row_len,
                               const std::vector<T>& t_in, int64_t K, int clip, int noise_pred, int want_grad,
                               bool inject) {
  const std::string name = "disc_cts_loss." + tg + (noise_pred ? ".eps" : ".x") + (want_grad ? ".grad" : "");
  const auto om = uniform<T>(n, -2, 2), ols = uniform<T>(n, -4, 1), mu = uniform<T>(n, -1, 1);
  auto t = t_in;
  t[0] = T(1e-7);  // noise_pred masks it
  std::vector<T> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = T((std::floor((double(mu[i]) / 2 + 0.5) * K) + 0.5) / K * 2 - 1);
  if (inject) x[2] = T(1.5);  // outside [-1, 1]
  const T log_s1sq = T(-13.8), mlv = noise_pred ? T(1e-4) : T(-1);
  const int64_t ng = want_grad ? n : 1;
  std::vector<T> la(n, T(-7)), lb(n, T(-9)), ma(ng, T(-7)), mb(ng, T(-9)), sa(ng, T(-7)), sb(ng, T(-9));
  int32_t fa = 0, fb = 0;
  cuda::disc_cts_loss<T>(Launch{0, 0, &fa}, n, om.data(), ols.data(), mu.data(), t.data(), per_row, row_len, x.data(),
                         log_s1sq, K, bool(clip), bool(noise_pred), mlv, bool(want_grad), la.data(), ma.data(), sa.data());
  cpu::disc_cts_loss<T>(Launch{-1, 0, &fb}, n, om.data(), ols.data(), mu.data(), t.data(), per_row, row_len, x.data(),
                        log_s1sq, K, bool(clip), bool(noise_pred), mlv, bool(want_grad), lb.data(), mb.data(), sb.data());
  int32_t want = inject ? int32_t(kOutsideDataRange | kNonFiniteInput) : 0;  // t has a 1.5 when inject
  flags(name, fa, fb, want);
  if (sizeof(T) == 8 || K == 2) {  // K = 2's straight-line copy drops the loop's 0 + z phi: -0 for +0
    (K == 2 ? equal<T> : exact<T>)(name, la, lb);
    if (want_grad) {
      (K == 2 ? equal<T> : exact<T>)(name + ".d_mean", ma, mb);
      (K == 2 ? equal<T> : exact<T>)(name + ".d_log_sigma", sa, sb);
    }
    return;
  }
  const double u = unit<T>(), eS = 2 * u;
  std::vector<double> tl(n), tm(ng), ts(ng);
  for (int64_t i = 0; i < n; ++i) {
    const TimeConsts<T> tc = time_consts(t[at(i, row_len, per_row)], log_s1sq, bool(noise_pred), mlv);
    const NormalParams<T> p = output_normal_params(om[i], ols[i], mu[i], tc, bool(noise_pred));
    const double m = std::fabs(double(p.mu_x)), s = double(p.sigma_x), inv_s = 1 / s;
    double A_cdf = 0, A_pdf = 0, A_zpdf = 0, P_cdf = 0, P_pdf = 0, P_zpdf = 0;  // weighted and plain sums
    for (int64_t j = 1; j < K; ++j) {
      const double z = (2.0 * double(j) / double(K) - 1 - m) * inv_s, phi = kInvSqrt2Pi * std::exp(-0.5 * z * z);
      const double wz = double(K) + 96 + 4 * z * z;  // the sum's K u, the erf's 96 ulp, its exp's argument
      const double cdf = 0.5 * std::erfc(-z * kInvSqrt2);
      A_cdf += wz * cdf, A_pdf += wz * phi, A_zpdf += wz * std::fabs(z) * phi;
      P_cdf += cdf, P_pdf += phi, P_zpdf += std::fabs(z) * phi;
    }
    const DiscMean<double> dm = discretised_mean<LoopBoundarySums>(double(p.mu_x), s, K, bool(clip), true);
    const double zl = (-1 - m) * inv_s, zh = (1 - m) * inv_s, half = 1 - 1.0 / double(K), xh = std::fabs(dm.x_hat);
    const double fl = kInvSqrt2Pi * std::exp(-0.5 * zl * zl), fh = kInvSqrt2Pi * std::exp(-0.5 * zh * zh);
    const double cl = 0.5 * std::erfc(-zl * kInvSqrt2), ch = 0.5 * std::erfc(-zh * kInvSqrt2);
    const double R = clip ? 1.0 : ch - cl;
    const double dR_mu = clip ? 0 : (fl + fh) * inv_s, dR_s = clip ? 0 : (std::fabs(zh * fh) + std::fabs(zl * fl)) * inv_s;
    // the sums' differences carried through, plus each side's own rounding of the expressions after the sums
    // (4 u of their terms' magnitudes: they cancel, e.g. d_mu = (dN_mu - x_hat dR_mu) / R)
    const double N_mag = (clip ? half : half * (ch + cl)) + 2 / double(K) * P_cdf;
    const double Dmu_mag = ((clip ? 0 : half * (fh + fl)) + 2 / double(K) * P_pdf) * inv_s + xh * dR_mu;
    const double Ds_mag = ((clip ? 0 : half * (std::fabs(zh * fh) + std::fabs(zl * fl))) + 2 / double(K) * P_zpdf) * inv_s +
                          xh * dR_s;
    const double dx = eS * 2 / double(K) * A_cdf / R + 8 * u * N_mag / R + 2 * u * (xh + std::fabs(double(x[i])));
    const double dmu = eS * 2 / double(K) * A_pdf * inv_s / R + dx * dR_mu / R + 8 * u * Dmu_mag / R;
    const double ds = eS * 2 / double(K) * A_zpdf * inv_s / R + dx * dR_s / R + 8 * u * Ds_mag / R;
    const double w = double(tc.weight), diff = std::fabs(dm.x_hat - double(x[i]));
    // below min_normal a value keeps only an absolute resolution (subnormal products)
    const double floor = tiny<T>() * (1 + 2 * w * (std::fabs(double(p.dmu_dout)) + std::fabs(double(p.dsig_dlogsig))));
    tl[i] = 2 * w * diff * dx + w * dx * dx + 4 * u * std::fabs(double(lb[i])) + floor;
    if (want_grad) {
      tm[i] = std::fabs(double(p.dmu_dout)) * 2 * w * (dx * std::fabs(dm.d_mu) + diff * dmu + dx * dmu) +
              4 * u * std::fabs(double(mb[i])) + floor;
      ts[i] = std::fabs(double(p.dsig_dlogsig)) * 2 * w * (dx * std::fabs(dm.d_sigma) + diff * ds + dx * ds) +
              4 * u * std::fabs(double(sb[i])) + floor;
    }
  }
  close("disc_cts_loss", name, la, lb, tl);
  if (want_grad) {
    close("disc_cts_loss.grad", name + ".d_mean", ma, mb, tm);
    close("disc_cts_loss.grad", name + ".d_log_sigma", sa, sb, ts);
  }
}

// The discrete L^inf (BFN Eq. 205): bit for bit for double K >= 3 (the CPU's item loop runs the element
// body's sums in its order), else within the header's softmax-based bounds.
template <typename T>
static void discrete_cts_loss_case(const std::string& tg, int64_t n, bool per_row, int64_t row_len,
                                   const std::vector<T>& t, int64_t K, int want_grad, bool inject) {
  const std::string name = "discrete_cts_loss." + tg + (want_grad ? ".grad" : "");
  auto logits = uniform<T>(n * K, -5, 5);
  auto xi = classes(n, K);
  for (int64_t k = 0; k < K; ++k) logits[4 * K + k] = T(k == xi[4] ? 30 : -30);  // confident: p_x -> 1
  if (inject) {
    xi[3] = K + 1;
    logits[5 * K + 1] = T(NAN);
  }
  const T beta1 = T(9.0);
  std::vector<T> la(n, T(-7)), lb(n, T(-9)), da(want_grad ? n * K : n, T(-7)), db(want_grad ? n * K : n, T(-9));
  int32_t fa = 0, fb = 0;
  cuda::discrete_cts_loss<T>(Launch{0, 0, &fa}, n, logits.data(), xi.data(), t.data(), per_row, row_len, K, beta1,
                             bool(want_grad), la.data(), da.data());
  cpu::discrete_cts_loss<T>(Launch{-1, 0, &fb}, n, logits.data(), xi.data(), t.data(), per_row, row_len, K, beta1,
                            bool(want_grad), lb.data(), db.data());
  flags(name, fa, fb, inject ? int32_t(kClassOutOfRange | kNonFiniteInput) : 0);
  if (inject) unspecified(lb, la, 5, 1), unspecified(db, da, 5, want_grad ? K : 1);
  if (sizeof(T) == 8 && K > 2) {
    exact(name, la, lb);
    if (want_grad) exact(name + ".d_logits", da, db);
    return;
  }
  const double u = unit<T>();
  std::vector<double> tl(n), td(want_grad ? n * K : 0);
  for (int64_t i = 0; i < n; ++i) {
    const T* l = logits.data() + i * K;
    double mx = -INFINITY, mn = INFINITY, sum = 0;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, double(l[k])), mn = std::min(mn, double(l[k]));
    for (int64_t k = 0; k < K; ++k) sum += std::exp(double(l[k]) - mx);
    const double ep = u * (6 * (mx - mn) + double(K) + 8), Ku = double(K) * u;
    tl[i] = 2 * (2 * ep + 2 * Ku + 3 * u) * std::fabs(double(lb[i]));
    if (!want_grad || xi[i] < 0 || xi[i] >= K) continue;
    const double c = double(K) * double(beta1) * double(t[at(i, row_len, per_row)]), f = 2 * std::fabs(c);
    const double px = std::exp(double(l[xi[i]]) - mx) / sum;
    double rx = 0, q = 0;
    for (int64_t k = 0; k < K; ++k)
      if (k != xi[i]) {
        const double p = std::exp(double(l[k]) - mx) / sum;
        rx += p;
        q += p * p;
      }
    for (int64_t k = 0; k < K; ++k) {
      const double p = std::exp(double(l[k]) - mx) / sum;
      td[i * K + k] = 2 * f * p * (k == xi[i] ? rx * rx + q : p + px * rx + q) * (3 * ep + 2 * Ku + 4 * u) + tiny<T>();
    }
  }
  close("discrete_cts_loss", name, la, lb, tl);
  if (want_grad) close("discrete_cts_loss.grad", name + ".d_logits", da, db, td);
}

struct BfnCase {
  int64_t rows, row_len;
  bool per_row, alpha_row, inject;
};

template <typename T>
static void bfn_case(const char* tn, const BfnCase& c, const std::vector<int64_t>& Ks) {
  const int64_t rows = c.rows, row_len = c.row_len, n = rows * row_len;
  const bool per_row = c.per_row, inject = c.inject;
  const std::string tag = std::string(tn) + ".n" + std::to_string(n) + (per_row ? ".row" : ".elem") +
                          (c.alpha_row ? ".arow" : ".aelem") + (inject ? ".bad" : ".clean");
  const PhiloxKey key{rng(), rng() % 3 == 0 ? (uint64_t(1) << 32) + 5 : rng() % 7};
  const int64_t Kmax = *std::max_element(Ks.begin(), Ks.end());
  const auto noise_buf = uniform<T>(n * Kmax, -3, 3);
  const T* noise = inject ? noise_buf.data() : nullptr;
  const T log_s1sq = T(-13.8);
  auto t = uniform<T>(per_row ? rows : n, 0, 1);
  t[0] = T(0);  // the ends of [0, 1] and a flat discrete flow (sqrt beta < 1e-10)
  t.back() = T(1);
  if (inject) t[t.size() / 2] = T(1.5);  // outside [0, 1]: kNonFiniteInput
  const int64_t trows = per_row ? rows : n;

  {  // continuous flow: the same expression on both sides
    auto x = uniform<T>(n, -1, 1);
    if (inject) x[n / 2] = T(NAN);
    std::vector<T> a(n, T(-7)), b(n, T(-9));
    int32_t fa = 0, fb = 0;
    cuda::cts_flow<T>(Launch{0, 0, &fa}, n, x.data(), t.data(), per_row, row_len, log_s1sq, noise, key.seed,
                      key.offset, a.data());
    cpu::cts_flow<T>(Launch{-1, 0, &fb}, n, x.data(), t.data(), per_row, row_len, log_s1sq, noise, key.seed,
                     key.offset, b.data());
    exact("cts_flow." + tag, a, b);
    flags("cts_flow." + tag, fa, fb, inject ? int32_t(kNonFiniteInput) : 0);
  }
  for (int64_t K : Ks) {  // discrete flow
    const std::string name = "disc_flow.K" + std::to_string(K) + "." + tag;
    auto xi = classes(n, K);
    xi[1] = K;  // out of range: zeros and a flag
    if (inject) xi[n - 1] = -1;
    std::vector<T> a(n * K, T(-7)), b(n * K, T(-9));
    int32_t fa = 0, fb = 0;
    const T sqrt_beta1 = T(3.0);
    cuda::disc_flow<T>(Launch{0, 0, &fa}, n, xi.data(), t.data(), per_row, row_len, K, sqrt_beta1, noise, key.seed,
                       key.offset, a.data());
    cpu::disc_flow<T>(Launch{-1, 0, &fb}, n, xi.data(), t.data(), per_row, row_len, K, sqrt_beta1, noise, key.seed,
                      key.offset, b.data());
    std::vector<double> tol(n * K);
    for (int64_t i = 0; i < n; ++i) {
      const double tt = std::min(double(t[at(i, row_len, per_row)]), 1 - 1e-6), beta = tt * tt * 9.0;
      double emax = 0;
      for (int64_t k = 0; k < K; ++k) emax = std::max(emax, std::fabs(eps_at(noise, key, uint64_t(i * K + k))));
      softmax_tol(tol, i, K, beta * double(K) + 2 * std::sqrt(beta * double(K)) * emax, a.data(), b.data(), false);
    }
    close("disc_flow", name, a, b, tol);
    flags(name, fa, fb, int32_t(kClassOutOfRange) | (inject ? int32_t(kNonFiniteInput) : 0));
  }
  {  // continuous updates and the sender update: the same expressions
    auto mu = uniform<T>(n, -1, 1), y = uniform<T>(n, -3, 3), x = uniform<T>(n, -1, 1);
    auto rho = uniform<T>(per_row ? rows : n, 2.5, 4);
    auto alpha = uniform<T>(c.alpha_row ? rows : n, 0.1, 2);
    if (inject) {
      alpha.back() = T(-1);  // kNonPositive
      y[2] = T(INFINITY);    // kNonFiniteInput
      x[3] = T(NAN);
    }
    for (int inverse = 0; inverse < 2; ++inverse) {
      const std::string name = std::string(inverse ? "cts_update_inverse." : "cts_update.") + tag;
      std::vector<T> a(n, T(-7)), b(n, T(-9));
      int32_t fa = 0, fb = 0;
      cuda::cts_update<T>(Launch{0, 0, &fa}, n, mu.data(), rho.data(), per_row, alpha.data(), c.alpha_row, row_len,
                          y.data(), inverse, a.data());
      cpu::cts_update<T>(Launch{-1, 0, &fb}, n, mu.data(), rho.data(), per_row, alpha.data(), c.alpha_row, row_len,
                         y.data(), inverse, b.data());
      exact(name, a, b);
      flags(name, fa, fb, inject ? int32_t(kNonPositive | kNonFiniteInput) : 0);
    }
    std::vector<T> a(n, T(-7)), b(n, T(-9)), ay(n, T(-7)), by(n, T(-9));
    int32_t fa = 0, fb = 0;
    cuda::cts_sender_update<T>(Launch{0, 0, &fa}, n, mu.data(), rho.data(), per_row, alpha.data(), c.alpha_row,
                               row_len, x.data(), noise, key.seed, key.offset, a.data(), ay.data());
    cpu::cts_sender_update<T>(Launch{-1, 0, &fb}, n, mu.data(), rho.data(), per_row, alpha.data(), c.alpha_row,
                              row_len, x.data(), noise, key.seed, key.offset, b.data(), by.data());
    exact("cts_sender_update." + tag, a, b);
    exact("cts_sender_update.y." + tag, ay, by);
    flags("cts_sender_update." + tag, fa, fb, inject ? int32_t(kNonPositive | kNonFiniteInput) : 0);
  }
  for (int64_t K : Ks) {  // discrete updates, both spaces and directions, and the sender update
    for (int log_io = 0; log_io < 2; ++log_io) {
      const std::string tg = "K" + std::to_string(K) + (log_io ? ".log." : ".prob.") + tag;
      auto theta = distributions<T>(n, K, log_io, true);
      auto y = uniform<T>(n * K, -20, 20);
      if (inject) {
        theta[K] = T(log_io ? 0.5 : 2);  // not a distribution's entry: a flag, the item redone
        y[3 * K + 1] = T(NAN);
        if (n > 40) theta[40 * K + 2] = T(NAN);
      }
      for (int inverse = 0; inverse < 2; ++inverse) {
        const std::string name = std::string(inverse ? "disc_update_inverse." : "disc_update.") + tg;
        std::vector<T> a(n * K, T(-7)), b(n * K, T(-9));
        int32_t fa = 0, fb = 0;
        cuda::disc_update<T>(Launch{0, 0, &fa}, n, theta.data(), y.data(), K, inverse, log_io, a.data());
        cpu::disc_update<T>(Launch{-1, 0, &fb}, n, theta.data(), y.data(), K, inverse, log_io, b.data());
        std::vector<double> tol(n * K);
        for (int64_t i = 0; i < n; ++i)
          softmax_tol(tol, i, K, update_magnitude(theta.data() + i * K, y.data() + i * K, K, log_io), a.data(),
                      b.data(), log_io, kUpdateFloor<T>);
        close(log_io ? "disc_update.log" : "disc_update.prob", name, a, b, tol);
        flags(name, fa, fb, inject ? int32_t(kNonFiniteInput) : 0);
      }
      auto xi = classes(n, K);
      xi.back() = -1;
      auto alpha = uniform<T>(c.alpha_row ? rows : n, 0.1, 3);
      alpha.back() = T(0);  // not > 0: kNonPositive (its items past the capped grid's first pass)
      if (inject) alpha[0] = T(INFINITY);
      std::vector<T> a(n * K, T(-7)), b(n * K, T(-9)), ay(n * K, T(-7)), by(n * K, T(-9));
      int32_t fa = 0, fb = 0;
      cuda::disc_sender_update<T>(Launch{0, 0, &fa}, n, theta.data(), xi.data(), alpha.data(), c.alpha_row, row_len,
                                  K, log_io, noise, key.seed, key.offset, a.data(), ay.data());
      cpu::disc_sender_update<T>(Launch{-1, 0, &fb}, n, theta.data(), xi.data(), alpha.data(), c.alpha_row, row_len,
                                 K, log_io, noise, key.seed, key.offset, b.data(), by.data());
      exact("disc_sender_update.y." + tg, ay, by);
      std::vector<double> tol(n * K);
      for (int64_t i = 0; i < n; ++i)
        softmax_tol(tol, i, K, update_magnitude(theta.data() + i * K, by.data() + i * K, K, log_io), a.data(),
                    b.data(), log_io, kUpdateFloor<T>);
      close(log_io ? "disc_update.log" : "disc_update.prob", "disc_sender_update." + tg, a, b, tol);
      flags("disc_sender_update." + tg, fa, fb,
            int32_t(kClassOutOfRange | kNonPositive) | (inject ? int32_t(kNonFiniteInput) : 0));
    }
  }
  for (int64_t K : Ks) {  // the discretised output distribution, its backward and the two L^inf losses
    for (int clip = 0; clip < 2; ++clip) {
      const std::string tg = "K" + std::to_string(K) + (clip ? ".clip." : ".noclip.") + tag;
      auto mu_x = uniform<T>(n, -1.8, 1.8), sigma_x = uniform<T>(n, 1e-3, 1.5);
      mu_x[0] = T(-3.5);  // mass beyond an edge: R small (clip=False divides by it)
      sigma_x[0] = T(0.4);
      if (inject) {
        sigma_x[1] = T(0);
        mu_x[2] = T(NAN);
      }
      std::vector<T> a(n * K, T(-7)), b(n * K, T(-9));
      int32_t fa = 0, fb = 0;
      cuda::disc_probs<T>(Launch{0, 0, &fa}, n, mu_x.data(), sigma_x.data(), K, bool(clip), a.data());
      cpu::disc_probs<T>(Launch{-1, 0, &fb}, n, mu_x.data(), sigma_x.data(), K, bool(clip), b.data());
      if (inject) unspecified(b, a, 1, K), unspecified(b, a, 2, K);
      std::vector<double> tol(n * K);
      const double u = unit<T>();
      for (int64_t i = 0; i < n; ++i) {
        const T inv_s = T(1) / sigma_x[i];
        const SplitCdf<T> L = split_cdf(T(-1), mu_x[i], inv_s), H = split_cdf(T(1), mu_x[i], inv_s);
        const double R = double(cdf_diff(H, L));
        // a boundary's split CDF v to (96 + 4 z^2) u relative (the erf bound of the discretised loss, below)
        const auto err = [&](double bnd, double v) {
          const double z = (bnd - double(mu_x[i])) * double(inv_s);
          return (96 + 4 * z * z) * u * std::fabs(v);
        };
        const double vR = err(-1, double(L.v)) + err(1, double(H.v));
        const double scale = clip ? 1.0 : 1.0 / R;
        for (int64_t k = 0; k < K; ++k) {
          const double blo = double(boundary<T>(k, K)), bhi = double(boundary<T>(k + 1, K));
          const double vlo = k == 0 ? (clip ? 0 : double(L.v)) : double(split_cdf(boundary<T>(k, K), mu_x[i], inv_s).v);
          const double vhi = k == K - 1 ? (clip ? 0 : double(H.v)) : double(split_cdf(boundary<T>(k + 1, K), mu_x[i], inv_s).v);
          const double p = std::max(std::fabs(double(a[i * K + k])), std::fabs(double(b[i * K + k])));
          tol[i * K + k] = 2 * ((err(blo, vlo) + err(bhi, vhi)) * scale + p * ((clip ? 0 : vR / R) + 3 * u)) + tiny<T>();
        }
      }
      close("disc_probs", "disc_probs." + tg, a, b, tol);
      flags("disc_probs." + tg, fa, fb, inject ? int32_t(kNonFiniteInput | kNonPositive) : 0);
      const auto g = uniform<T>(n * K, -1, 1);
      std::vector<T> am(n, T(-7)), as(n, T(-7)), bm(n, T(-9)), bs(n, T(-9));
      cuda::disc_probs_backward<T>(Launch{0, 0, &fa}, n, mu_x.data(), sigma_x.data(), g.data(), K, bool(clip),
                                   am.data(), as.data());
      cpu::disc_probs_backward<T>(Launch{-1, 0, &fb}, n, mu_x.data(), sigma_x.data(), g.data(), K, bool(clip),
                                  bm.data(), bs.data());
      exact("disc_probs_backward.d_mu." + tg, am, bm);
      exact("disc_probs_backward.d_sigma." + tg, as, bs);
      for (int noise_pred = 0; noise_pred < 2; ++noise_pred)
        for (int want_grad = 0; want_grad < 2; ++want_grad) disc_cts_loss_case<T>(tg, n, per_row, row_len, t, K, clip, noise_pred, want_grad, inject);
      for (int want_grad = 0; want_grad < 2; ++want_grad) discrete_cts_loss_case<T>(tg, n, per_row, row_len, t, K, want_grad, inject);
    }
  }
  (void)trows;
}

template <typename T>
static void random_family(const char* tn) {
  for (int64_t n : {1, 3, 4, 6, 17, 1023, 4099, 16389}) {
    const PhiloxKey key{rng(), n % 2 ? (uint64_t(1) << 32) + 3 : rng() % 100};
    std::vector<T> a(n, T(-7)), b(n, T(-9));
    int32_t fa = 0, fb = 0;
    cuda::normal_fill<T>(Launch{0, 0, &fa}, n, a.data(), key.seed, key.offset);
    cpu::normal_fill<T>(Launch{-1, 0, &fb}, n, b.data(), key.seed, key.offset);
    exact(std::string("normal_fill.") + tn + ".n" + std::to_string(n), a, b);
    flags(std::string("normal_fill.") + tn + ".n" + std::to_string(n), fa, fb, 0);
  }
}

int main() {
  // every K with everything per row (the samplers' case), the odd and K = 2 bodies with everything per item
  const std::vector<int64_t> all{2, 3, 5, 16, 27, 256}, per_item{2, 3, 27}, few{2, 5, 16};
  for (bool per_row : {true, false})
    for (bool alpha_row : {true, false}) {
      const auto& Ks = per_row != alpha_row ? few : (per_row ? all : per_item);
      bfn_case<float>("f32", BfnCase{3, 37, per_row, alpha_row, false}, Ks);
      bfn_case<double>("f64", BfnCase{3, 37, per_row, alpha_row, false}, Ks);
      bfn_case<float>("f32", BfnCase{4, 29, per_row, alpha_row, true}, few);
      bfn_case<double>("f64", BfnCase{4, 29, per_row, alpha_row, true}, few);
    }
  // past the capped grid's first pass, over several CPU tiles (1024 / K items each)
  bfn_case<float>("f32", BfnCase{9, 233, true, true, false}, {2, 3});
  bfn_case<double>("f64", BfnCase{7, 300, false, false, true}, {2});
  random_family<float>("f32");
  random_family<double>("f64");
  for (const auto& [op, w] : worst) std::printf("worst.%s %.3g\n", op.c_str(), w);
  return 0;
}
#endif

#ifdef DIFFREP_VS_ROWS
#include "guidance/guidance_math.h"
#include "guidance/guidance_ops.h"
#include "knn/knn_ops.h"
#include "knn_host_cases.h"

// the guidance row-sum bound of the header: sum_abs = sum_j |v_j| of the row
template <typename T>
static double row_sum_tol(int64_t D, double sum_abs, double value) {
  const double ulp = std::nextafter(T(std::fabs(value)), T(INFINITY)) - T(std::fabs(value));
  return 2 * double(D) * 0x1p-53 * sum_abs + ulp;
}

template <typename T>
static void guidance_family(const char* tn) {
  using namespace diffrep::guidance;
  // (S, B, D): D = 1, D under and over one block of 256 (and one CPU run of 256), S = 1 and more
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {{1, 3, 1}, {3, 5, 3}, {2, 5, 300}, {1, 2, 257}, {4, 3, 17}};
  for (const auto& [S, B, D] : shapes) {
    for (int bad = 0; bad < 2; ++bad) {
      const std::string tag = std::string(tn) + ".S" + std::to_string(S) + ".B" + std::to_string(B) + ".D" +
                              std::to_string(D) + (bad ? ".bad" : "");
      const int64_t stride = B * D;
      auto z = uniform<T>(S * stride, -2, 2);
      const auto mu = uniform<T>(stride, -1, 1), g = uniform<T>(B, -1, 1);
      auto s = uniform<T>(stride, -1, 1);
      if (bad) z[z.size() - 1] = T(INFINITY), s[0] = T(NAN);  // the last row's last sample, the first row
      const T c = T(kLog2Pi);
      std::vector<T> a(B, T(-7)), b(B, T(-9));
      int32_t fa = 0, fb = 0;
      cuda::log_posterior_fwd<T>(Launch{0, 0, &fa}, B, D, z.data(), mu.data(), s.data(), S, c, a.data());
      cpu::log_posterior_fwd<T>(Launch{-1, 0, &fb}, B, D, z.data(), mu.data(), s.data(), S, c, b.data());
      std::vector<double> tol(B);
      int32_t unused = 0;
      for (int64_t r = 0; r < B; ++r) {
        double sa = 0;
        for (int64_t j = 0; j < D; ++j) sa += std::fabs(double(forward_elem(z.data(), S, stride, r * D + j, mu[r * D + j], s[r * D + j], c, unused)));
        tol[r] = row_sum_tol<T>(D, sa, double(b[r]));
      }
      close("log_posterior_fwd", "log_posterior_fwd." + tag, a, b, tol);
      flags("log_posterior_fwd." + tag, fa, fb, bad ? int32_t(kNonFiniteInput) : 0);
      std::vector<T> az(S * stride, T(-7)), amu(stride, T(-7)), as(stride, T(-7));
      std::vector<T> bz(S * stride, T(-9)), bmu(stride, T(-9)), bs(stride, T(-9));
      cuda::log_posterior_bwd<T>(Launch{0, 0, &fa}, B, D, g.data(), z.data(), mu.data(), s.data(), S, az.data(),
                                 amu.data(), as.data());
      cpu::log_posterior_bwd<T>(Launch{-1, 0, &fb}, B, D, g.data(), z.data(), mu.data(), s.data(), S, bz.data(),
                                bmu.data(), bs.data());
      exact("log_posterior_bwd.d_z." + tag, az, bz);
      exact("log_posterior_bwd.d_mu." + tag, amu, bmu);
      exact("log_posterior_bwd.d_logvar." + tag, as, bs);
      const auto gz = uniform<T>(S * stride, -1, 1), gmu = uniform<T>(stride, -1, 1), gs = uniform<T>(stride, -1, 1);
      for (int mask : {0, 1, 6, 7}) {  // which upstream cotangents are given (nullptr: zero)
        const Upstream<T> up{mask & 1 ? gz.data() : nullptr, mask & 2 ? gmu.data() : nullptr,
                             mask & 4 ? gs.data() : nullptr};
        std::vector<T> ga(B, T(-7)), gb(B, T(-9));
        cuda::log_posterior_bwd2<T>(Launch{0, 0, &fa}, B, D, g.data(), z.data(), mu.data(), s.data(), S, up.gz, up.gmu,
                                    up.gs, ga.data(), az.data(), amu.data(), as.data());
        cpu::log_posterior_bwd2<T>(Launch{-1, 0, &fb}, B, D, g.data(), z.data(), mu.data(), s.data(), S, up.gz, up.gmu,
                                   up.gs, gb.data(), bz.data(), bmu.data(), bs.data());
        std::vector<T> sz(S * stride), smu(stride), ss(stride);
        for (int64_t r = 0; r < B; ++r) {
          double sa = 0;
          for (int64_t j = 0; j < D; ++j)
            sa += std::fabs(double(backward2_elem(g[r], z.data(), S, stride, r * D + j, mu[r * D + j], s[r * D + j], up,
                                                  sz.data(), smu.data(), ss.data())));
          tol[r] = row_sum_tol<T>(D, sa, double(gb[r]));
        }
        const std::string tm = tag + ".up" + std::to_string(mask);
        close("log_posterior_bwd2.g_bar", "log_posterior_bwd2.g_bar." + tm, ga, gb, tol);
        exact("log_posterior_bwd2.z_bar." + tm, az, bz);
        exact("log_posterior_bwd2.mu_bar." + tm, amu, bmu);
        exact("log_posterior_bwd2.logvar_bar." + tm, as, bs);
      }
    }
  }
}

// The tiled kNN scan (cases: knn_host_cases.h): 64 query rows per CUDA block, 64-column tiles staged 32
// dimensions at a time; the CPU's panels of 16 columns and tiles of 4 rows. Both sum (q_k - c_k)^2 in k order
// (CUDA's zero-padded dimensions add exact zeros), so the k-th distances and the counts agree bit for bit.
template <typename T>
static void knn_family(const char* tn) {
  for (const KnnCase& cs : kKnnCases) {
    const auto [m, n, d, kk, grid, with_r2, strict, nan, bad_r2] = cs;
    const auto in = knn_inputs<T>(tn, cs, uniform<T>);
    const std::string& tag = in.tag;
    const auto &q = in.q, &c = in.c, &r2 = in.r2;
    std::vector<T> ka(m, T(-7)), kb(m, T(-9));
    std::vector<int64_t> ca(m, -7), cb(m, -9);
    int32_t fa = 0, fb = 0;
    cuda::knn_scan<T>(Launch{0, 0, &fa}, d, m, n, q.data(), c.data(), kk, strict, with_r2 ? r2.data() : nullptr,
                      kk > 0 ? ka.data() : nullptr, with_r2 ? ca.data() : nullptr);
    cpu::knn_scan<T>(Launch{-1, 0, &fb}, d, m, n, q.data(), c.data(), kk, strict, with_r2 ? r2.data() : nullptr,
                     kk > 0 ? kb.data() : nullptr, with_r2 ? cb.data() : nullptr);
    if (kk > 0) exact("knn_scan.kth." + tag, ka, kb);
    else exact("knn_scan.kth_untouched." + tag, ka, std::vector<T>(m, T(-7)));
    if (with_r2) exact("knn_scan.count." + tag, ca, cb);
    else exact("knn_scan.count_untouched." + tag, ca, std::vector<int64_t>(m, -7));
    flags("knn_scan." + tag, fa, fb, (nan || bad_r2) ? int32_t(kNonFiniteInput) : 0);
  }
}

int main() {
  guidance_family<float>("f32");
  guidance_family<double>("f64");
  knn_family<float>("f32");
  knn_family<double>("f64");
  for (const auto& [op, w] : worst) std::printf("worst.%s %.3g\n", op.c_str(), w);
  return 0;
}
#endif
