// Per-element maths of the BFN kernel family, shared by bfn_cpu.cpp and bfn_cuda.cu.
// The specification is python/diffrep/ops/reference/bfn.py (nnaisense/bayesian-flow-networks
// semantics, with the log-space and expm1 changes of docs/methods/paramrel.md).
#pragma once
#include <cmath>
#include <cstdint>

#include "common/errors.h"
#include "common/fast_math.h"
#include "common/hd.h"

namespace diffrep {
namespace bfn {

using std::erf;
using std::exp;
using std::expm1;
using std::fabs;
using std::isfinite;
using std::log;
using std::sqrt;

constexpr double kMinT = 1e-6;           // noise-prediction guard
constexpr double kMinProb = 1e-5;        // DiscretizedCtsDistribution.min_prob
constexpr double kMinStd = 1e-3, kMaxStd = 10.0;
constexpr double kSafeExp = 10.0;
constexpr double kDiscreteEps = 1e-6;    // discrete flow: t <= 1 - 1e-6
constexpr double kMinSqrtBeta = 1e-10;
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;


// t / alpha / rho may be given per example (index i / row_len) or per element (index i).
DIFFREP_HD int64_t bidx(int64_t i, int64_t row_len, bool per_row) { return per_row ? i / row_len : i; }

template <typename T>
DIFFREP_HD T gamma_of_t(T t, T log_s1sq) {
  return -expm1(t * log_s1sq);  // 1 - sigma1^(2t) without cancellation near t = 0
}

template <typename T>
DIFFREP_HD T normal_cdf(T v, T mu, T inv_sigma) {
  // torch.distributions.Normal.cdf's order of operations, with float's lower tail from erfc (fast_math.h)
  return fast_half_one_plus_erf((v - mu) * inv_sigma * T(kInvSqrt2));
}

template <typename T>
DIFFREP_HD T normal_pdf_std(T z) {
  return T(kInvSqrt2Pi) * fast_exp(T(-0.5) * z * z);
}

// Boundary CDFs of the discretised distribution split at the mean: Phi(b) = v + s. float: v = Phi(z)
// and s = 0 for a boundary below mu, v = Phi(z) - 1 = -Phi(-z) and s = 1 from mu up, v from the lower
// tail of fast_half_one_plus_erf on both sides. A bin on one side of the mean is then a difference of
// two small v (Phi near 1 keeps only float's absolute resolution: a bin of 1e-6 above the mean had
// relative errors up to 0.1); the bin that holds the mean adds the step back. double has no split
// (v = Phi(z), s = 0): the twin's order of operations, exactly (docs/kernels/bfn.md, Numerical
// safeguards).
template <typename T>
struct SplitCdf {
  T v, s;
};

// s of a boundary b: 1 from the mean up (float), always 0 for double
template <typename T>
DIFFREP_HD T mean_step(T b, T mu) {
  return sizeof(T) == 4 && b >= mu ? T(1) : T(0);
}

template <typename T>
DIFFREP_HD SplitCdf<T> split_cdf(T b, T mu, T inv_sigma) {
  if constexpr (sizeof(T) == 4) {
    const T s = mean_step(b, mu);
    const T tail = fast_half_erfc_nonneg(fabs((b - mu) * inv_sigma * T(kInvSqrt2)));  // Phi(-|z|)
    return SplitCdf<T>{s > T(0) ? -tail : tail, s};
  } else {
    return SplitCdf<T>{normal_cdf(b, mu, inv_sigma), T(0)};
  }
}

// Phi(-inf) and Phi(+inf): the outer boundaries with clip
template <typename T>
DIFFREP_HD SplitCdf<T> split_cdf_lowest() {
  return SplitCdf<T>{T(0), T(0)};
}
template <typename T>
DIFFREP_HD SplitCdf<T> split_cdf_highest() {
  return sizeof(T) == 4 ? SplitCdf<T>{T(0), T(1)} : SplitCdf<T>{T(1), T(0)};
}

// Phi(b_hi) - Phi(b_lo) from split CDFs (for double (c_hi - c_lo) + 0, the twin's value)
template <typename T>
DIFFREP_HD T cdf_diff(SplitCdf<T> hi, SplitCdf<T> lo) {
  return (hi.v - lo.v) + (hi.s - lo.s);
}

// Boundary j (0..K) of K bins on [-1, 1].
// (int32 conversions: int64 -> float has no SIMD instruction before AVX-512 and would keep the
// bin loops scalar; K is far below 2^31.)
template <typename T>
DIFFREP_HD T boundary(int64_t j, int64_t K) {
  return T(2) * T(static_cast<int32_t>(j)) / T(static_cast<int32_t>(K)) - T(1);
}

// ---------------------------------------------------------------- output parameters
// Everything the discretised loss needs from t alone: computed once per example on the CPU.
template <typename T>
struct TimeConsts {
  bool masked;  // noise_pred and t < 1e-6 (on the raw t): x_hat = 0, sigma_x = 1
  T gamma;      // gamma(max(t, 1e-6))
  T scale;      // sqrt((1 - gamma) / gamma)
  T weight;     // -ln(sigma1) / max(sigma1^(2t), min_loss_variance)
};

template <typename T>
DIFFREP_HD TimeConsts<T> time_consts(T t, T log_s1sq, bool noise_pred, T min_loss_var) {
  TimeConsts<T> c;
  c.masked = noise_pred && t < T(kMinT);
  const T tc = t < T(kMinT) ? T(kMinT) : t;
  const T v = exp(tc * log_s1sq);
  c.gamma = gamma_of_t(tc, log_s1sq);
  c.scale = sqrt(v / c.gamma);
  T post_var = exp(t * log_s1sq);
  if (min_loss_var > T(0) && post_var < min_loss_var) post_var = min_loss_var;
  c.weight = T(-0.5) * log_s1sq / post_var;
  return c;
}

// (mu_x, sigma_x) from the network's two outputs, and the derivatives the losses need.
template <typename T>
struct NormalParams {
  T mu_x, sigma_x;
  T dmu_dout;      // d mu_x / d out_mean
  T dsig_dlogsig;  // d sigma_x / d out_log_sigma (0 where a clamp is active)
};

template <typename T>
DIFFREP_HD NormalParams<T> output_normal_params(T out_mean, T out_log_sigma, T mu, const TimeConsts<T>& tc,
                                                bool noise_pred) {
  NormalParams<T> p;
  const bool ls_in = out_log_sigma >= T(-kSafeExp) && out_log_sigma <= T(kSafeExp);
  const T ls = out_log_sigma < T(-kSafeExp) ? T(-kSafeExp)
               : (out_log_sigma > T(kSafeExp) ? T(kSafeExp) : out_log_sigma);
  T sigma;
  if (noise_pred) {
    if (tc.masked) {  // no gradient either
      p.mu_x = T(0);
      p.sigma_x = T(1);
      p.dmu_dout = T(0);
      p.dsig_dlogsig = T(0);
      return p;
    }
    p.mu_x = mu / tc.gamma - tc.scale * out_mean;
    p.dmu_dout = -tc.scale;
    sigma = tc.scale * fast_exp(ls);
  } else {
    p.mu_x = out_mean;
    p.dmu_dout = T(1);
    sigma = fast_exp(ls);
  }
  const bool s_in = sigma >= T(kMinStd) && sigma <= T(kMaxStd);
  p.sigma_x = sigma < T(kMinStd) ? T(kMinStd) : (sigma > T(kMaxStd) ? T(kMaxStd) : sigma);
  p.dsig_dlogsig = (ls_in && s_in) ? sigma : T(0);
  return p;
}

// ---------------------------------------------------------------- discretised mean (Abel sum)
// x_hat = sum_k p_k c_k without the K-bin tensor, and its derivatives w.r.t. mu_x and sigma_x.
template <typename T>
struct DiscMean {
  T x_hat, d_mu, d_sigma;
};

// Sums over the K - 1 interior boundaries b_j of Phi(z_j) and, with want_grad, of phi(z_j) and
// z_j phi(z_j), z_j = (b_j - mu_x) / sigma_x: all that x_hat and its derivatives need from them.
template <typename T>
struct BoundarySums {
  T cdf, pdf, zpdf;
};

// The sums as one loop (what the CUDA kernels run; the CPU's AVX-512 copy sums 16 boundaries per
// step: bfn_cpu_items.h, CpuBoundarySums).
struct LoopBoundarySums {
  template <typename T>
  DIFFREP_HD static BoundarySums<T> eval(T mu_x, T inv_s, int64_t K, bool want_grad) {
    T sum_cdf = T(0), sum_pdf = T(0), sum_zpdf = T(0);
    if (want_grad) {
      DIFFREP_SIMD_SUM(sum_cdf, sum_pdf, sum_zpdf)
      for (int64_t j = 1; j < K; ++j) {
        const T z = (boundary<T>(j, K) - mu_x) * inv_s;
        const T phi = normal_pdf_std(z);
        sum_cdf += fast_half_one_plus_erf(z * T(kInvSqrt2));
        sum_pdf += phi;
        sum_zpdf += z * phi;
      }
    } else {
      DIFFREP_SIMD_SUM(sum_cdf)
      for (int64_t j = 1; j < K; ++j) sum_cdf += normal_cdf(boundary<T>(j, K), mu_x, inv_s);
    }
    return BoundarySums<T>{sum_cdf, sum_pdf, sum_zpdf};
  }
};

template <typename Sums, typename T>
DIFFREP_HD DiscMean<T> discretised_mean_nonneg(T mu_x, T sigma_x, int64_t K, bool clip, bool want_grad);

// The bins are symmetric about 0, so x_hat(mu, sigma) = -x_hat(-mu, sigma). Evaluating at |mu|
// keeps the boundary CDFs of a distribution that sits beyond -1 in the accurate lower tail
// instead of near 1, where clip=False's normaliser R = Phi(1) - Phi(-1) cancels (float32).
template <typename Sums = LoopBoundarySums, typename T>
DIFFREP_HD DiscMean<T> discretised_mean(T mu_x, T sigma_x, int64_t K, bool clip, bool want_grad) {
  if (!(mu_x < T(0))) return discretised_mean_nonneg<Sums>(mu_x, sigma_x, K, clip, want_grad);
  DiscMean<T> m = discretised_mean_nonneg<Sums>(-mu_x, sigma_x, K, clip, want_grad);
  m.x_hat = -m.x_hat;
  m.d_sigma = -m.d_sigma;  // d/dmu: the two sign flips cancel
  return m;
}

template <typename Sums, typename T>
DIFFREP_HD DiscMean<T> discretised_mean_nonneg(T mu_x, T sigma_x, int64_t K, bool clip, bool want_grad) {
  const T inv_s = T(1) / sigma_x;
  const BoundarySums<T> sums = Sums::eval(mu_x, inv_s, K, want_grad);
  const T sum_cdf = sums.cdf, sum_pdf = sums.pdf, sum_zpdf = sums.zpdf;
  const T half = T(1) - T(1) / T(K);  // c_K = -c_1
  DiscMean<T> m;
  if (clip) {
    m.x_hat = half - T(2) / T(K) * sum_cdf;
    // dPhi(z_j)/dmu = -phi/sigma, dPhi(z_j)/dsigma = -z phi/sigma
    m.d_mu = T(2) / T(K) * sum_pdf * inv_s;
    m.d_sigma = T(2) / T(K) * sum_zpdf * inv_s;
    return m;
  }
  const T lo = normal_cdf(T(-1), mu_x, inv_s), hi = normal_cdf(T(1), mu_x, inv_s);
  const T R = hi - lo;
  if (R < T(kMinProb)) {  // uniform bins: mean 0, no gradient
    m.x_hat = T(0);
    m.d_mu = T(0);
    m.d_sigma = T(0);
    return m;
  }
  const T N = half * (hi + lo) - T(2) / T(K) * sum_cdf;
  m.x_hat = N / R;
  if (want_grad) {
    const T z_lo = (T(-1) - mu_x) * inv_s, z_hi = (T(1) - mu_x) * inv_s;
    const T f_lo = normal_pdf_std(z_lo), f_hi = normal_pdf_std(z_hi);
    // d/dmu of Phi(z) = -phi(z)/sigma; d/dsigma = -z phi(z)/sigma
    const T dN_mu = (-half * (f_hi + f_lo) + T(2) / T(K) * sum_pdf) * inv_s;
    const T dN_s = (-half * (z_hi * f_hi + z_lo * f_lo) + T(2) / T(K) * sum_zpdf) * inv_s;
    const T dR_mu = (-f_hi + f_lo) * inv_s;
    const T dR_s = (-z_hi * f_hi + z_lo * f_lo) * inv_s;
    m.d_mu = (dN_mu - m.x_hat * dR_mu) / R;
    m.d_sigma = (dN_s - m.x_hat * dR_s) / R;
  }
  return m;
}


// ---------------------------------------------------------------- noise sources
template <typename T>
struct InjectedNoise {
  const T* p;
  DIFFREP_HD T operator()(uint64_t e) const { return p[e]; }
};

// ---------------------------------------------------------------- element bodies
// t outside [0, 1] (NaN included) as kNonFiniteInput, per element: the CUDA kernels' form of the CPU
// launchers' one-pass time_bad (Python runs its own check for the message when the bit is set, so a
// call with a good t reads nothing back for it: docs/kernels/bfn.md#host-reads-on-cuda).
template <typename T>
DIFFREP_HD int32_t time_bit(T t) {
  return (t >= T(0) && t <= T(1)) ? 0 : int32_t(kNonFiniteInput);
}

// Continuous flow (BFN Eq. 77): mu = gamma x + sqrt(gamma (1 - gamma)) eps.
template <typename T>
struct FlowCoeffs {
  T gamma, sd;
};

template <typename T>
DIFFREP_HD FlowCoeffs<T> flow_coeffs(T t, T log_s1sq) {
  const T g = gamma_of_t(t, log_s1sq);
  return FlowCoeffs<T>{g, sqrt(g * (T(1) - g))};
}

template <typename T>
DIFFREP_HD T cts_flow_elem(T x, FlowCoeffs<T> c, T eps, int32_t& flags) {
  if (!isfinite(x)) flags |= kNonFiniteInput;
  return c.gamma * x + c.sd * eps;
}

// The cases of the discrete flow (BFN Eq. 185) that need no noise, shared by both backends' per-item
// code: a class outside [0, K) (flagged; zeros) and a beta too small to move theta off the uniform
// prior. Returns false when o[0..K) is written; else true, with beta(t) in `beta`.
template <typename T>
DIFFREP_HD bool disc_flow_beta(int64_t xi, T t, int64_t K, T sqrt_beta1, T* o, int32_t& flags, T& beta) {
  if (xi < 0 || xi >= K) {
    flags |= kClassOutOfRange;
    for (int64_t k = 0; k < K; ++k) o[k] = T(0);
    return false;
  }
  const T tc = t < T(1) - T(kDiscreteEps) ? t : T(1) - T(kDiscreteEps);
  const T sqrt_beta = tc * sqrt_beta1;
  if (sqrt_beta < T(kMinSqrtBeta)) {
    for (int64_t k = 0; k < K; ++k) o[k] = T(1) / T(K);
    return false;
  }
  beta = sqrt_beta * sqrt_beta;
  return true;
}

// Discrete flow (BFN Eq. 185) for element i: out[i*K .. i*K+K) = softmax(beta (K e_x - 1) + sqrt(beta K) eps).
template <typename T, typename Noise>
DIFFREP_HD void disc_flow_elem(int64_t i, int64_t xi, T t, int64_t K, T sqrt_beta1, Noise& noise, T* out,
                               int32_t& flags) {
  T* o = out + i * K;
  T beta;
  if (!disc_flow_beta(xi, t, K, sqrt_beta1, o, flags, beta)) return;
  const T sd = sqrt(beta * T(K));
  T mx = -INFINITY;
  for (int64_t k = 0; k < K; ++k) {
    const T l = beta * (k == xi ? T(K - 1) : T(-1)) + sd * noise(static_cast<uint64_t>(i * K + k));
    o[k] = l;
    mx = l > mx ? l : mx;
  }
  T sum = T(0);
  for (int64_t k = 0; k < K; ++k) {
    o[k] = fast_exp(o[k] - mx);
    sum += o[k];
  }
  const T inv = T(1) / sum;
  for (int64_t k = 0; k < K; ++k) o[k] *= inv;
}

// Continuous update h (BFN Eq. 49-50) and its inverse (docs/kernels/bfn.md#inverse-update).
template <typename T>
DIFFREP_HD T cts_update_elem(T mu, T rho, T y, T alpha, bool inverse, int32_t& flags) {
  if (!isfinite(mu) || !isfinite(y)) flags |= kNonFiniteInput;
  if (inverse) return (rho * mu - alpha * y) / (rho - alpha);
  return (rho * mu + alpha * y) / (rho + alpha);
}

// Precision checks of the continuous updates: rho > 0, alpha >= 0 (> 0 for the sender update, whose
// y has variance 1/alpha), the new precision rho +- alpha > 0, all finite; kNonPositive if one fails.
// The kernels run them (the CPU per row where it can, CUDA per element) instead of tensor ops in
// Python, which re-checks for the message only when the flag is set (docs/kernels/bfn.md#performance):
// a backend that skipped them would let a bad precision through silently.
template <typename T>
DIFFREP_HD int32_t precision_bad(T rho, T alpha, T rho_new, bool strict_alpha) {
  const bool bad = !isfinite(rho) || !isfinite(alpha) || !(rho > T(0)) ||
                   (strict_alpha ? !(alpha > T(0)) : !(alpha >= T(0))) || !(rho_new > T(0));
  return bad ? int32_t(kNonPositive) : int32_t(0);
}

// The accuracy of the discrete sender update (BFN Eq. 162: y ~ N(alpha (K e_x - 1), alpha K I)) finite
// and > 0; kNonPositive if not. Checked by the kernels (per item) so that Python reads nothing for it
// on CUDA and re-checks alpha for the message only when the flag is set (docs/kernels/bfn.md#host-reads-on-cuda).
template <typename T>
DIFFREP_HD int32_t sender_alpha_bit(T alpha) {
  return (alpha > T(0) && isfinite(alpha)) ? 0 : int32_t(kNonPositive);
}

// One element of the continuous update (or its inverse) with its precision checks.
template <typename T>
DIFFREP_HD T cts_update_checked(T mu, T rho, T y, T alpha, bool inverse, int32_t& flags) {
  flags |= precision_bad(rho, alpha, inverse ? rho - alpha : rho + alpha, false);
  return cts_update_elem(mu, rho, y, alpha, inverse, flags);
}

// One element of the continuous sender update: y = x + eps / sqrt(alpha) ~ N(x, 1/alpha) (BFN Eq. 86)
// into y, then the update h with it (returned); x and the precisions are checked.
template <typename T>
DIFFREP_HD T cts_sender_update_elem(T mu, T rho, T x, T alpha, T eps, T& y, int32_t& flags) {
  if (!isfinite(x)) flags |= kNonFiniteInput;
  flags |= precision_bad(rho, alpha, rho + alpha, true);
  y = x + eps / sqrt(alpha);
  return cts_update_elem(mu, rho, y, alpha, false, flags);
}

// Discrete update in log space (docs/kernels/bfn.md#numerical-safeguards, #inverse-update): l' = l + sign*y - logsumexp(l + sign*y).
// log_io: theta and the result are log-probabilities; otherwise probabilities.
template <typename T, typename YFn>
DIFFREP_HD void disc_update_elem(const T* theta, YFn y_of, int64_t K, T sign, bool log_io, T* out, int32_t& flags) {
  T mx = -INFINITY;
  int32_t bad = 0;
#if !defined(__CUDACC__)
#pragma omp simd reduction(max : mx) reduction(| : bad)
#endif
  for (int64_t k = 0; k < K; ++k) {
    const T th = theta[k], yk = y_of(k);
    // log-probabilities may be -inf but not NaN or +inf; probabilities must lie in [0, 1];
    // y must be finite (y - y is NaN for inf and NaN)
    bad |= (log_io ? !(th <= T(0)) : !(th >= T(0) && th <= T(1))) | !(yk - yk == T(0));
    const T l = (log_io ? th : fast_log(th)) + sign * yk;
    out[k] = l;
    mx = l > mx ? l : mx;
  }
  if (bad) flags |= kNonFiniteInput;
  if (!(mx > -INFINITY)) {  // every class has probability 0: not a distribution
    flags |= kNonFiniteInput;
    for (int64_t k = 0; k < K; ++k) out[k] = log_io ? T(-INFINITY) : T(0);
    return;
  }
  T sum = T(0);
  DIFFREP_SIMD_SUM(sum)
  for (int64_t k = 0; k < K; ++k) sum += fast_exp(out[k] - mx);
  // l - logsumexp as (l - mx) - log(sum), the twin's log_softmax order: l - mx is exact for the
  // classes near the max, so their log-probabilities near 0 keep their digits. l - (mx + log sum)
  // rounded them to the ulp of mx (1e-5 in float at mx ~ 100, logits a sender sample reaches).
  const T ls = fast_log(sum);
  DIFFREP_SIMD
  for (int64_t k = 0; k < K; ++k) out[k] = log_io ? (out[k] - mx) - ls : fast_exp((out[k] - mx) - ls);
}

// Discretised bin probabilities (BFN Eq. 103-104, `DiscretizedCtsDistribution.probs`).
// The interior boundaries' split CDFs (v) are written first (a loop without carried dependence),
// then turned into differences from the top down, the steps s recomputed from the boundaries.
template <typename T>
DIFFREP_HD void disc_probs_elem(T mu_x, T sigma_x, int64_t K, bool clip, T* out, int32_t& flags) {
  if (!isfinite(mu_x) || !isfinite(sigma_x)) flags |= kNonFiniteInput;
  if (!(sigma_x > T(0))) flags |= kNonPositive;
  const T inv_s = T(1) / sigma_x;
  const SplitCdf<T> lo = clip ? split_cdf_lowest<T>() : split_cdf(T(-1), mu_x, inv_s);
  const SplitCdf<T> hi = clip ? split_cdf_highest<T>() : split_cdf(T(1), mu_x, inv_s);
  DIFFREP_SIMD
  for (int64_t k = 0; k < K - 1; ++k) out[k] = split_cdf(boundary<T>(k + 1, K), mu_x, inv_s).v;  // b_{k+1}
  SplitCdf<T> upper = hi;
  for (int64_t k = K - 1; k >= 0; --k) {
    const SplitCdf<T> lower = k >= 1 ? SplitCdf<T>{out[k - 1], mean_step(boundary<T>(k, K), mu_x)} : lo;
    out[k] = cdf_diff(upper, lower);
    upper = lower;
  }
  if (!clip) {
    const T R = cdf_diff(hi, lo);
    if (R < T(kMinProb)) {
      for (int64_t k = 0; k < K; ++k) out[k] = T(1) / T(K);
    } else {
      for (int64_t k = 0; k < K; ++k) out[k] /= R;
    }
  }
}

// Backward of disc_probs_elem: sum_k g_k dp_k/d(mu, sigma), by Abel summation over boundaries, in T
// (the gradient g may be of another float type: it is read as T).
template <typename T, typename G>
DIFFREP_HD void disc_probs_backward_elem(T mu_x, T sigma_x, const G* g, int64_t K, bool clip, T& d_mu, T& d_sigma) {
  const T inv_s = T(1) / sigma_x;
  // dPhi(b)/dmu = -phi(z)/sigma, dPhi(b)/dsigma = -z phi(z)/sigma
  // sum_k g_k (Phi_k - Phi_{k-1}) = sum_{j=0..K} Phi_j (g_j - g_{j+1}) with g_0 = g_{K+1} = 0.
  T a_mu = T(0), a_s = T(0);
  const int64_t j_lo = clip ? 1 : 0, j_hi = clip ? K - 1 : K;
  DIFFREP_SIMD_SUM(a_mu, a_s)
  for (int64_t j = j_lo; j <= j_hi; ++j) {
    const T z = (boundary<T>(j, K) - mu_x) * inv_s;
    const T phi = normal_pdf_std(z);
    const T w = (j >= 1 ? T(g[j - 1]) : T(0)) - (j < K ? T(g[j]) : T(0));
    a_mu += w * phi;
    a_s += w * z * phi;
  }
  a_mu *= -inv_s;
  a_s *= -inv_s;
  if (clip) {
    d_mu = a_mu;
    d_sigma = a_s;
    return;
  }
  const SplitCdf<T> lo = split_cdf(T(-1), mu_x, inv_s), hi = split_cdf(T(1), mu_x, inv_s);
  const T R = cdf_diff(hi, lo);
  if (R < T(kMinProb)) {
    d_mu = T(0);
    d_sigma = T(0);
    return;
  }
  // p_k = q_k / R: d p_k = d q_k / R - p_k dR / R, and sum_k g_k p_k = sum_k g_k q_k / R.
  // sum_k g_k q_k = sum_{j=0..K} Phi_j (g_j - g_{j+1}) (1-based g, zero outside), vectorisable. With
  // Phi_j = v_j + s_j (split_cdf) the steps' part telescopes to g at the bin holding the mean, added
  // where s first becomes 1: sum_j (s_j - s_{j-1}) g_j.
  T gp = T(0), g_step = T(0);
  DIFFREP_SIMD_SUM(gp, g_step)
  for (int64_t j = 0; j <= K; ++j) {
    const SplitCdf<T> c = j == 0 ? lo : (j == K ? hi : split_cdf(boundary<T>(j, K), mu_x, inv_s));
    const T g_left = j >= 1 ? T(g[j - 1]) : T(0);
    gp += c.v * (g_left - (j < K ? T(g[j]) : T(0)));
    g_step += (c.s - (j >= 1 ? mean_step(boundary<T>(j - 1, K), mu_x) : T(0))) * g_left;
  }
  gp = (gp + g_step) / R;
  const T z_lo = (T(-1) - mu_x) * inv_s, z_hi = (T(1) - mu_x) * inv_s;
  const T f_lo = normal_pdf_std(z_lo), f_hi = normal_pdf_std(z_hi);
  const T dR_mu = (-f_hi + f_lo) * inv_s;
  const T dR_s = (-z_hi * f_hi + z_lo * f_lo) * inv_s;
  d_mu = (a_mu - gp * dR_mu) / R;
  d_sigma = (a_s - gp * dR_s) / R;
}

// The backward in double whatever T is (what the CUDA kernel runs; the CPU's
// items::disc_probs_backward_item computes the same in double): with clip=False, d_mu = (a_mu - gp
// dR_mu) / R subtracts two terms that nearly cancel when the mass sits beyond an edge, and the float
// body gave 7e-6 for a true -3e-8 at mu = -1.4, sigma = 0.21.
template <typename T>
DIFFREP_HD void disc_probs_backward_f64(T mu_x, T sigma_x, const T* g, int64_t K, bool clip, T& d_mu, T& d_sigma) {
  double dm, ds;
  disc_probs_backward_elem<double>(double(mu_x), double(sigma_x), g, K, clip, dm, ds);
  d_mu = static_cast<T>(dm);
  d_sigma = static_cast<T>(ds);
}

// Continuous-time loss for discretised data (BFN Eq. 122), fused with the output conversion:
// C (x_hat - x)^2 / sigma1^(2t), C = -ln sigma1, optionally the gradients w.r.t. the two outputs.
template <typename Sums = LoopBoundarySums, typename T>
DIFFREP_HD T disc_cts_loss_elem(T out_mean, T out_log_sigma, T mu, const TimeConsts<T>& tc, T x, int64_t K, bool clip,
                                bool noise_pred, bool want_grad, T* d_mean, T* d_log_sigma, int32_t& flags) {
  if (!isfinite(out_mean) || !isfinite(out_log_sigma) || !isfinite(mu) || !isfinite(x)) flags |= kNonFiniteInput;
  if (!(x >= T(-1) && x <= T(1))) flags |= kOutsideDataRange;
  const NormalParams<T> p = output_normal_params(out_mean, out_log_sigma, mu, tc, noise_pred);
  const DiscMean<T> m = discretised_mean<Sums>(p.mu_x, p.sigma_x, K, clip, want_grad);
  const T diff = m.x_hat - x;
  if (want_grad) {
    const T dl = T(2) * tc.weight * diff;
    *d_mean = dl * m.d_mu * p.dmu_dout;
    *d_log_sigma = dl * m.d_sigma * p.dsig_dlogsig;
  }
  return tc.weight * diff * diff;
}

// A class outside [0, K) in a loss: flagged, and a zero gradient; the caller's term is 0.
template <typename T>
DIFFREP_HD bool class_out_of_range(int64_t xi, int64_t K, bool want_grad, T* d_logits, int32_t& flags) {
  if (xi >= 0 && xi < K) return false;
  flags |= kClassOutOfRange;
  if (want_grad)
    for (int64_t k = 0; k < K; ++k) d_logits[k] = T(0);
  return true;
}

// Continuous-time loss for discrete data (BFN Eq. 205): K beta1 t ||e_x - softmax(l)||^2,
// optionally with its gradient w.r.t. the logits written to d_logits (scaled by g).
template <typename T>
DIFFREP_HD T discrete_cts_loss_elem(const T* logits, int64_t xi, T t, int64_t K, T beta1, bool want_grad, T g,
                                    T* d_logits, int32_t& flags) {
  if (class_out_of_range(xi, K, want_grad, d_logits, flags)) return T(0);
  T mx = -INFINITY;
  for (int64_t k = 0; k < K; ++k) {
    if (!isfinite(logits[k])) flags |= kNonFiniteInput;
    mx = logits[k] > mx ? logits[k] : mx;
  }
  T sum = T(0);
  DIFFREP_SIMD_SUM(sum)
  for (int64_t k = 0; k < K; ++k) sum += fast_exp(logits[k] - mx);
  const T inv = T(1) / sum;
  const T c = T(K) * beta1 * t;
  // r = e_x - p with r_x = 1 - p_x summed as sum_{k != x} p_k: 1 - p_x after rounding p_x loses
  // all precision for a confident prediction (p_x -> 1)
  T q = T(0), rx = T(0);  // sum_{k != x} p_k^2, sum_{k != x} p_k
  for (int64_t k = 0; k < K; ++k) {
    const T p = k == xi ? T(0) : fast_exp(logits[k] - mx) * inv;
    q += p * p;
    rx += p;
  }
  const T px = fast_exp(logits[xi] - mx) * inv;
  const T s = px * rx - q;  // sum_k p_k r_k, for the softmax Jacobian
  if (want_grad) {
    // dL/dp_k = -2 c r_k; dL/dl_j = p_j (dL/dp_j - sum_k p_k dL/dp_k) = -2 c p_j (r_j - s); for
    // j = x, r_x - s = (1 - p_x) r_x + q = r_x^2 + q, formed so (r_x - p_x r_x would cancel)
    for (int64_t k = 0; k < K; ++k) {
      const T p = fast_exp(logits[k] - mx) * inv;
      d_logits[k] = g * T(-2) * c * p * (k == xi ? rx * rx + q : -p - s);
    }
  }
  return c * (rx * rx + q);
}

}  // namespace bfn
}  // namespace diffrep
