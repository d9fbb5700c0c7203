// Per-pair maths of the fused MMD kernels, shared by mmd_cpu.cpp and mmd_cuda.cu.
// The specification is python/diffrep/ops/reference/mmd.py (docs/kernels/mmd.md):
// a kernel of r^2 = |x - y|^2, RBF exp(-r^2/h) or IMQ C/(C + r^2), summed over scales with
// weights, and kappa = -dk/d(r^2) for the gradients.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common/errors.h"
#include "common/fast_math.h"
#include "common/hd.h"

namespace diffrep {
namespace mmd {

constexpr int kMaxScales = 16;
enum Kind : int32_t { kRbf = 0, kImq = 1 };

// The multi-scale kernel: s = 1/h (RBF) or C (IMQ); w = weight; wk = w/h (RBF) or w/C (IMQ),
// so that kappa = sum_l wk_l e_l (RBF) or sum_l wk_l q_l^2 (IMQ, q = C/(C + r^2)).
template <typename T>
struct KernelSpec {
  int32_t kind;
  int32_t n_scales;
  T s[kMaxScales];
  T w[kMaxScales];
  T wk[kMaxScales];
};

// The spec of `kind` with bandwidths `scales` and their `weights` (checked by the binding: a
// valid kind, 1..kMaxScales positive scales, one weight per scale).
template <typename T>
KernelSpec<T> kernel_spec(int32_t kind, const std::vector<double>& scales, const std::vector<double>& weights) {
  KernelSpec<T> ks{};
  ks.kind = kind;
  ks.n_scales = int32_t(scales.size());
  for (size_t i = 0; i < scales.size(); ++i) {
    ks.s[i] = T(kind == kRbf ? 1.0 / scales[i] : scales[i]);
    ks.w[i] = T(weights[i]);
    ks.wk[i] = T(weights[i] / scales[i]);
  }
  return ks;
}

struct ExpCoef {  // 1/k!
  template <typename T, int K>
  DIFFREP_HD static constexpr T at() { return T(inv_factorial(K)); }
};
template <typename T>
struct ExpTerms;
template <>
struct ExpTerms<float> {
  static constexpr int n = 8;  // |r| <= ln2/2: truncation 0.347^8/8! = 6e-9
};
template <>
struct ExpTerms<double> {
  static constexpr int n = 14;  // 0.347^14/14! = 4e-18
};

// exp(x) for x <= 0, branch-free so the host compiler vectorises it (a libm call blocks
// vectorisation): x = n ln2 + r with |r| <= ln2/2, exp(r) by Taylor, 2^n built in the exponent
// bits. x is clamped at -80 (float) / -700 (double), far below anything that changes a sum.
template <typename T>
DIFFREP_HD T exp_nonpos(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  using I = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;
  constexpr int mant = sizeof(T) == 4 ? 23 : 52;
  constexpr I bias = sizeof(T) == 4 ? 127 : 1023;
  constexpr T lo = sizeof(T) == 4 ? T(-80) : T(-700);
  constexpr T magic = sizeof(T) == 4 ? T(12582912.0) : T(6755399441055744.0);  // 1.5 * 2^mant
  x = x < lo ? lo : x;
  const T nf = (x * T(1.44269504088896340736) + magic) - magic;  // round to nearest
  T r = x - nf * T(0.693145751953125);                            // ln2 split (Cody-Waite)
  r = r - nf * T(1.42860682030941723212e-6);
  const T p = Horner<T, 0, ExpTerms<T>::n, ExpCoef>::eval(r);
  const T scale = bits_to_real(static_cast<U>(static_cast<I>(nf) + bias) << mant);
  return p * scale;
#endif
}

// k and kappa of one pair, all scales (device code and scalar host paths).
template <typename T>
DIFFREP_HD void kernel_pair(const KernelSpec<T>& ks, T r2, T& k, T& kappa) {
  k = T(0);
  kappa = T(0);
  for (int l = 0; l < ks.n_scales; ++l) {
    if (ks.kind == kRbf) {
      const T e = exp_nonpos(-r2 * ks.s[l]);
      k += ks.w[l] * e;
      kappa += ks.wk[l] * e;
    } else {
      const T q = ks.s[l] / (ks.s[l] + r2);
      k += ks.w[l] * q;
      kappa += ks.wk[l] * q * q;
    }
  }
}

// Estimator weights of the three Gram sums: MMD^2 = a_xx Sxx + a_yy Syy - 2 a_xy Sxy.
struct EstimatorWeights {
  double axx, ayy, axy;
};
inline EstimatorWeights estimator_weights(int64_t n, int64_t m, bool unbiased) {
  const double dn = double(n), dm = double(m);
  return unbiased ? EstimatorWeights{1.0 / (dn * (dn - 1)), 1.0 / (dm * (dm - 1)), 1.0 / (dn * dm)}
                  : EstimatorWeights{1.0 / (dn * dn), 1.0 / (dm * dm), 1.0 / (dn * dm)};
}

// The per-row gradient coefficient of the same-set and cross sums:
// dMMD^2/dp = -4 w_same (p A_same - B_same) + 4 a_xy (p A_oth - B_oth), A = sum kappa, B = sum kappa v.
DIFFREP_HD double grad_row(double p, double a_same, double b_same, double a_oth, double b_oth, double w_same,
                           double axy) {
  return -4.0 * w_same * (p * a_same - b_same) + 4.0 * axy * (p * a_oth - b_oth);
}

}  // namespace mmd
}  // namespace diffrep
