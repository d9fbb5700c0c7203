// Host build of the CUDA launcher of the fused MMD (csrc/mmd/mmd_cuda.cu, every launch concurrent through
// tests/ops/native/cuda_host/cuda_runtime.h: the rows kernel's shared-memory column tiles, the combine's
// tree), against the CPU kernel of csrc/mmd/mmd_cpu.cpp compiled into the same program, for
// tests/ops/test_cuda_launchers_host_hddc_mmd.py.
//
// Each pair's kernel value is the same on both (kernel_pair's maths, r^2 over the dimensions in order,
// -ffp-contract=off), but the sums are grouped differently: per row, CUDA adds a tile of kTJ = 64 columns
// in T before float64, the CPU a block of 16; the gradient is sum_j c kappa_j (x - v_j) in T on CUDA and
// -4 w (p A - B) + 4 a_xy (p A' - B') from T block sums of kappa and kappa v on the CPU. The bounds, in
// T's unit roundoff u, N = n + m (twice the worst case of recursive summation of either side):
//   rows (positive sums S): (2 (64 + 1) u + 2 N 2^-53) S;
//   gradient entry k of row p: 2 (N + 25) u sum_j |c_j| kappa_j (|p_k| + |v_jk|);
//   loss: (130 u + 4 N 2^-53) (a_xx S_xx + a_yy S_yy + 2 a_xy S_xy) + 2 u |loss| (the last cast to T).
// Exact: flags (a NaN or an infinity anywhere in x or y), the biased MMD of identical sets (0 on both:
// each same-set sum equals its cross sum bit for bit), and every CUDA launch run twice (byte for byte).
//
// Prints one line per check: its name and the count of mismatches.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "mmd/mmd_math.h"
#include "mmd/mmd_ops.h"

using namespace diffrep;

static std::mt19937_64 rng(29);

static void line(const std::string& name, int64_t bad) { std::printf("%s %lld\n", name.c_str(), (long long)bad); }

template <typename T>
static bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

struct Case {
  const char* name;
  int64_t n, m, d;
  int32_t kind;
  std::vector<double> scales, weights;
  bool unbiased, want_grad, identical;
  int bad;  // 0: none; 1: NaN in the last row of x; 2: -inf in the last row of y
};

template <typename T>
struct Outputs {
  std::vector<double> rows;
  std::vector<T> loss, gx, gy;
  int32_t flags = 0;
};

template <typename T>
static Outputs<T> run(bool on_cuda, const Case& c, const std::vector<T>& x, const std::vector<T>& y) {
  Outputs<T> o;
  o.rows.assign(2 * (c.n + c.m), -7.0);
  o.loss.assign(1, T(-7));
  if (c.want_grad) {
    o.gx.assign(c.n * c.d, T(-7));
    o.gy.assign(c.m * c.d, T(-7));
  }
  const auto op = on_cuda ? &cuda::mmd2<T> : &cpu::mmd2<T>;
  op(Launch{on_cuda ? 0 : -1, 0, &o.flags}, c.n, c.m, x.data(), y.data(), c.d, c.kind, c.scales, c.weights,
     c.unbiased, c.want_grad, o.rows.data(), o.loss.data(), c.want_grad ? o.gx.data() : nullptr,
     c.want_grad ? o.gy.data() : nullptr);
  return o;
}

template <typename T>
static void mmd_case(const char* tn, const Case& c) {
  const int64_t n = c.n, m = c.m, d = c.d, N = n + m;
  std::normal_distribution<double> N01;
  std::vector<T> x(n * d), y(m * d);
  for (auto& v : x) v = T(N01(rng));
  for (auto& v : y) v = T(1.2 * N01(rng) + 0.3);
  if (c.identical) y = x;
  if (c.bad == 1) x[(n - 1) * d + d / 2] = T(NAN);
  if (c.bad == 2) y[(m - 1) * d] = -T(INFINITY);
  const Outputs<T> g = run<T>(true, c, x, y), g2 = run<T>(true, c, x, y), cp = run<T>(false, c, x, y);
  const std::string tag = std::string("mmd2.") + tn + "." + c.name;
  const int32_t want = c.bad ? kNonFiniteInput : 0;
  line(tag + ".flags_cuda", g.flags != want);
  line(tag + ".flags_cpu", cp.flags != want);
  line(tag + ".rerun", !(same_bytes(g.rows, g2.rows) && same_bytes(g.loss, g2.loss) && same_bytes(g.gx, g2.gx) &&
                         same_bytes(g.gy, g2.gy) && g.flags == g2.flags));
  if (c.bad) return;  // the CPU kernel returns at the flag; the wrapper raises
  const double u = std::numeric_limits<T>::epsilon() / 2, ud = std::numeric_limits<double>::epsilon() / 2;
  const mmd::KernelSpec<T> ks = mmd::kernel_spec<T>(c.kind, c.scales, c.weights);
  const mmd::EstimatorWeights ew = mmd::estimator_weights(n, m, c.unbiased);
  int64_t rows = 0, grad = 0;
  double sxx = 0, syy = 0, sxy = 0;
  for (int64_t i = 0; i < N; ++i) {
    const bool in_x = i < n;
    const int64_t own = in_x ? i : i - n;
    const T* p = (in_x ? x.data() : y.data()) + own * d;
    for (int s = 0; s < 2; ++s) {  // s = 0: the row's own set
      const double S = cp.rows[2 * i + s];
      rows += !(std::fabs(g.rows[2 * i + s] - S) <= (2 * (64 + 1) * u + 2 * double(N) * ud) * S);
      if (s == 0)
        (in_x ? sxx : syy) += S;
      else if (in_x)
        sxy += S;  // (the y rows' cross sums add up to the same S_xy)
    }
    if (!c.want_grad) continue;
    // the gradient's scale: sum over the row's pairs of |c| kappa (|p_k| + |v_k|)
    std::vector<double> scale(d, 0.0);
    for (int s = 0; s < 2; ++s) {
      const bool other_x = (s == 0) == in_x;
      const T* v = other_x ? x.data() : y.data();
      const int64_t nc = other_x ? n : m;
      const double coef = s == 0 ? 4 * (in_x ? ew.axx : ew.ayy) : 4 * ew.axy;
      for (int64_t j = 0; j < nc; ++j) {
        if (s == 0 && j == own) continue;  // a row's own pair has no gradient
        T r2 = T(0);
        for (int64_t k = 0; k < d; ++k) r2 += (p[k] - v[j * d + k]) * (p[k] - v[j * d + k]);
        T kv, kp;
        mmd::kernel_pair(ks, r2, kv, kp);
        for (int64_t k = 0; k < d; ++k)
          scale[k] += coef * double(kp) * (std::fabs(double(p[k])) + std::fabs(double(v[j * d + k])));
      }
    }
    const T* gg = (in_x ? g.gx.data() : g.gy.data()) + own * d;
    const T* gc = (in_x ? cp.gx.data() : cp.gy.data()) + own * d;
    for (int64_t k = 0; k < d; ++k)
      grad += !(std::fabs(double(gg[k]) - double(gc[k])) <= 2 * (double(N) + 25) * u * scale[k]);
  }
  line(tag + ".rows", rows);
  if (c.want_grad) line(tag + ".grad", grad);
  const double M = ew.axx * sxx + ew.ayy * syy + 2 * ew.axy * sxy, lc = double(cp.loss[0]);
  line(tag + ".loss", !(std::fabs(double(g.loss[0]) - lc) <= (130 * u + 4 * double(N) * ud) * M + 2 * u * std::fabs(lc)));
  if (c.identical && !c.unbiased) line(tag + ".zero", !(g.loss[0] == T(0) && cp.loss[0] == T(0)));
}

int main() {
  const std::vector<double> one{1.0};
  // d at each padded width (DP = 16, 32, 64: edges and the next size up), n + m over the capped grid
  // (2 blocks of 128 rows: a grid-stride wrap) with a partial last pass, n and m off the 64-column
  // tiles, n over the combine's 256 threads, both kernels with several scales, both estimators,
  // with and without gradients, identical sets, a non-finite value in either set
  const Case cases[] = {
      {"d1", 5, 3, 1, mmd::kRbf, one, one, false, true, false, 0},
      {"d3_rbf", 150, 130, 3, mmd::kRbf, {0.5, 2.0, 8.0}, {0.2, 0.5, 0.3}, true, true, false, 0},
      {"d3_imq", 300, 270, 3, mmd::kImq, {1.0, 4.0}, {0.7, 0.3}, false, true, false, 0},
      {"d16", 65, 129, 16, mmd::kRbf, {16.0, 32.0}, {0.5, 0.5}, false, true, false, 0},
      {"d17", 64, 70, 17, mmd::kImq, {17.0}, one, true, true, false, 0},
      {"d32_nograd", 100, 90, 32, mmd::kRbf, {32.0}, one, true, false, false, 0},
      {"d33", 40, 63, 33, mmd::kRbf, {30.0, 60.0}, {0.4, 0.6}, false, true, false, 0},
      {"d64", 70, 50, 64, mmd::kImq, {64.0}, one, false, true, false, 0},
      {"identical", 130, 130, 7, mmd::kRbf, {3.0, 12.0}, {0.5, 0.5}, false, true, true, 0},
      {"identical_unbiased", 130, 130, 5, mmd::kImq, {5.0}, one, true, false, true, 0},
      {"nan_x", 300, 10, 4, mmd::kRbf, one, one, false, true, false, 1},
      {"inf_y", 20, 280, 18, mmd::kImq, one, one, true, false, false, 2},
  };
  for (const Case& c : cases) {
    mmd_case<float>("f32", c);
    mmd_case<double>("f64", c);
  }
  return 0;
}
