// Host build of the CUDA launchers of the HDDC family (csrc/hddc/hddc_cuda.cu, every launch concurrent
// through tests/ops/native/cuda_host/cuda_runtime.h: the E-step's shared-memory counts, the passes'
// tiles and tree reductions), against the CPU kernels of csrc/hddc/hddc_cpu.cpp compiled into the same
// program, for tests/ops/test_cuda_launchers_host_hddc_mmd.py. Built with -DDIFFREP_HDDC_MAX_GRID_YZ=2, so
// a batch of B = 5 problems runs in three slices: the stand-in's grid.z limit is lowered to 2 with it
// (the passes' problems), and the launches are counted (the E-step's problems go in grid.y, which the
// passes give K).
//
// What must agree, and why (docs/kernels/hddc.md; both sides built with -ffp-contract=off, so each
// operation rounds on its own and the same element maths gives the same bits):
//   E-step: resp and llp bit for bit (estep_cost, fast_exp and the normalisation in the same order on
//     both), cnt exactly, flags exactly; L (a CPU block sum against a strided tree) within
//     2 (n + 16) u Sum |llp|, u = 2^-53: twice the worst case of recursive summation over either order.
//   Passes on dyadic inputs (x on a 1/4 grid, w t on a 1/16 grid, every partial sum exact in T):
//     mass, mean and W bit for bit (the sums are exact whatever their order, and the scatter adds
//     (t e_lo) e_hi in point order on both); the density within the bound below.
//   Passes on generic inputs (the moments' lanes sum in another order than the CPU's points), in T's
//     unit roundoff u, nb the points of a block, c = 2 (nb + 8) u:
//     mass within c Sum t; mean_j within c (Sum t |x_j| + |mean_j| Sum t) / mass (= tol_j);
//     W_ij within 2 [(nb + 4) u Sum t |e_i e_j| / mass + 2 delta_i delta_j + c |W_ij|], delta_j =
//     tol_j + 2 u |mean_j| (W about a mean off by delta is W + delta delta^T, exactly);
//     density within 2 [|delta|_2 + 2 (d + 2) u density + 2 (nb + 16) u density].
//   Every CUDA launch twice: outputs byte for byte the same (no floating-point atomics).
// Zero-weight points carry NaN x and NaN t in the "poison" cases: both backends skip them.
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

#include <cuda_runtime.h>  // the host stand-in (tests/ops/native/cuda_host): diffrep_host::launches

#include "hddc/hddc_ops.h"

using namespace diffrep;
using hddc::Dims;

static std::mt19937_64 rng(23);

static void line(const std::string& name, int64_t bad) { std::printf("%s %lld\n", name.c_str(), (long long)bad); }

template <typename T>
static constexpr double unit_roundoff() {
  return std::numeric_limits<T>::epsilon() / 2;
}

template <typename T>
static bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 || (a != a && b != b);
}

template <typename T>
static bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

static double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
static double normal() { return std::normal_distribution<double>()(rng); }

// ------------------------------------------------------------------------------------ E-step
template <typename T>
struct EInputs {
  Dims s;
  bool skip_zero;
  std::vector<T> x, w, mu, qt, ia, ib, cst, thr;
  std::vector<int64_t> unit_of;
  std::vector<int32_t> dk, tri, act;
};

template <typename T>
struct EOutputs {
  std::vector<T> resp;
  std::vector<double> llp, L;
  std::vector<int64_t> cnt;
  int32_t flags = 0;
};

template <typename T>
static EOutputs<T> estep(bool on_cuda, const EInputs<T>& e) {
  const Dims& s = e.s;
  EOutputs<T> o;
  o.resp.assign(s.B * s.n * s.K, T(-7));
  o.llp.assign(s.B * s.n, -7.0);
  o.L.assign(s.B, -7.0);
  o.cnt.assign(s.B * s.K, -7);
  const auto op = on_cuda ? &cuda::hddc_estep<T> : &cpu::hddc_estep<T>;
  op(Launch{on_cuda ? 0 : -1, 0, &o.flags}, s, e.x.data(), e.unit_of.data(), e.w.data(), e.mu.data(), e.qt.data(),
     e.ia.data(), e.dk.data(), e.tri.data(), e.ib.data(), e.cst.data(), e.act.data(), e.thr.data(), e.skip_zero,
     o.resp.data(), o.llp.data(), o.L.data(), o.cnt.data());
  return o;
}

struct ECase {
  const char* name;
  int64_t U, n, d, B, K, D;
  bool tri, skip_zero;
  int bad;  // 0: none; 1: NaN x at a read point; 2: +inf x at a read point; 3: NaN x at points every problem skips
};

template <typename T>
static EInputs<T> estep_inputs(const ECase& c) {
  EInputs<T> e;
  Dims& s = e.s;
  s = Dims{c.U, c.n, c.d, c.B, c.K, c.D};
  const int64_t U = c.U, n = c.n, d = c.d, B = c.B, K = c.K, D = c.D;
  e.skip_zero = c.skip_zero;
  e.x.resize(U * n * d);
  for (auto& v : e.x) v = T(0.5 * normal());
  e.unit_of.resize(B);
  for (int64_t b = 0; b < B; ++b) e.unit_of[b] = (b * 7 + 3) % U;
  e.w.resize(B * n);
  for (auto& v : e.w) v = rng() % 4 == 0 ? T(0) : T(uniform(0.25, 2));
  e.mu.resize(B * K * d);
  e.qt.assign(B * K * D * d, T(0));
  e.ia.resize(B * K * D);
  e.ib.resize(B * K);
  e.cst.resize(B * K);
  e.dk.resize(B * K);
  e.tri.resize(B * K);
  e.act.resize(B * K);
  e.thr.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    e.thr[b] = T(uniform(0.05, 0.4));
    for (int64_t k = 0; k < K; ++k) {
      const int64_t bk = b * K + k, i = int64_t(rng() % uint64_t(n));
      for (int64_t j = 0; j < d; ++j) e.mu[bk * d + j] = T(double(e.x[(e.unit_of[b] * n + i) * d + j]) + 0.2 * normal());
      // the triangular form (a Cholesky-like factor of the precision): row j zero beyond column j
      e.tri[bk] = c.tri && k % 2 == 0;
      for (int64_t r = 0; r < D; ++r)
        for (int64_t j = 0; j < (e.tri[bk] ? r + 1 : d); ++j) e.qt[(bk * D + r) * d + j] = T(normal() / std::sqrt(double(d)));
      for (int64_t r = 0; r < D; ++r) e.ia[bk * D + r] = T(uniform(0.5, 3));
      e.ib[bk] = T(uniform(0.2, 1));
      e.cst[bk] = T(uniform(0, 3));
      e.dk[bk] = e.tri[bk] ? int32_t(D) : int32_t(rng() % uint64_t(D + 1));
      e.act[bk] = k == 0 || rng() % 7 != 0;
    }
  }
  if (c.bad) {
    // the last point of unit 0 (past the capped grid's first pass when n > 256), dimension d - 1
    const int64_t i = n - 1;
    e.x[(0 * n + i) * d + d - 1] = c.bad == 2 ? T(INFINITY) : T(NAN);
    for (int64_t b = 0; b < B; ++b)
      if (e.unit_of[b] == 0) e.w[b * n + i] = c.bad == 3 ? T(0) : T(1);
  }
  return e;
}

template <typename T>
static void estep_case(const char* tn, const ECase& c) {
  const EInputs<T> e = estep_inputs<T>(c);
  const Dims& s = e.s;
  const int64_t n = s.n, d = s.d, K = s.K;
  // which (problem, point) rows the kernels read with a non-finite x: the expected flag, and where
  // values are left unspecified (a flagged call raises)
  std::vector<bool> bad_row(s.B * n, false), bad_problem(s.B, false);
  bool flagged = false;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = e.x.data() + (e.unit_of[b] * n + i) * d;
      bool finite = true;
      for (int64_t j = 0; j < d; ++j) finite = finite && std::isfinite(xi[j]);
      const bool read = !(e.skip_zero && e.w[b * n + i] == T(0));
      bad_row[b * n + i] = read && !finite;
      bad_problem[b] = bad_problem[b] || bad_row[b * n + i];
      flagged = flagged || bad_row[b * n + i];
    }
  const int64_t before = diffrep_host::launches;
  const EOutputs<T> g = estep<T>(true, e), g2 = estep<T>(true, e), cp = estep<T>(false, e);
  const std::string tag = std::string("estep.") + tn + "." + c.name;
  line(tag + ".launched", diffrep_host::launches - before != 2 * ((s.B + 1) / 2 + 1));  // a slice per 2 problems
  int64_t resp = 0, llp = 0, cnt = 0, L = 0;
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t i = 0; i < n; ++i) {
      if (bad_row[b * n + i]) continue;
      for (int64_t k = 0; k < K; ++k) resp += !same_bits(g.resp[(b * n + i) * K + k], cp.resp[(b * n + i) * K + k]);
      llp += !same_bits(g.llp[b * n + i], cp.llp[b * n + i]);
    }
    if (bad_problem[b]) continue;
    for (int64_t k = 0; k < K; ++k) cnt += g.cnt[b * K + k] != cp.cnt[b * K + k];
    double abs_sum = 0;
    for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(cp.llp[b * n + i]);
    L += !(std::fabs(g.L[b] - cp.L[b]) <= 2 * double(n + 16) * unit_roundoff<double>() * abs_sum);
  }
  line(tag + ".resp", resp);
  line(tag + ".llp", llp);
  line(tag + ".cnt", cnt);
  line(tag + ".L", L);
  const int32_t want = flagged ? kNonFiniteInput : 0;
  line(tag + ".flags_cuda", g.flags != want);
  line(tag + ".flags_cpu", cp.flags != want);
  line(tag + ".rerun", !(same_bytes(g.resp, g2.resp) && same_bytes(g.llp, g2.llp) && same_bytes(g.L, g2.L) &&
                         same_bytes(g.cnt, g2.cnt) && g.flags == g2.flags));
}

// ------------------------------------------------------------------------------------ passes
template <typename T>
struct SInputs {
  Dims s;
  int32_t mode;
  T phi;
  std::vector<T> x, w, resp;
  std::vector<int64_t> unit_of;
  std::vector<int32_t> act;
};

struct SOutputs {
  std::vector<double> mass, mean, second;
};

template <typename T>
static SOutputs stats(bool on_cuda, const SInputs<T>& in) {
  const Dims& s = in.s;
  // exactly the documented scratch (AddressSanitizer sees any access past it), poisoned
  std::vector<T> part(s.B * hddc::num_blocks(s.n) * hddc::stats_width(s, in.mode), T(NAN));
  SOutputs o;
  o.mass.assign(s.B * s.K, -7.0);
  o.mean.assign(s.B * s.K * s.d, -7.0);
  o.second.assign(in.mode == hddc::kSoft ? s.B * s.K * s.d * s.d : s.B * s.K, -7.0);
  int32_t flags = 0;
  const auto op = on_cuda ? &cuda::hddc_stats<T> : &cpu::hddc_stats<T>;
  op(Launch{on_cuda ? 0 : -1, 0, &flags}, s, in.x.data(), in.unit_of.data(), in.w.data(), in.resp.data(),
     in.act.data(), in.mode, in.phi, part.data(), o.mass.data(), o.mean.data(), o.second.data());
  return o;
}

struct SCase {
  const char* name;
  int64_t U, n, d, B, K;
  bool dyadic, poison, f32;  // f32: float too (the slowest cases run in double only)
};

template <typename T>
static SInputs<T> stats_inputs(const SCase& c, int32_t mode) {
  SInputs<T> in;
  in.s = Dims{c.U, c.n, c.d, c.B, c.K, 0};
  in.mode = mode;
  in.phi = T(0.3);
  const int64_t U = c.U, n = c.n, d = c.d, B = c.B, K = c.K;
  in.x.resize(U * n * d);
  for (auto& v : in.x) v = c.dyadic ? T(double(int64_t(rng() % 65) - 32) / 4) : T(1.5 * normal() + 0.7);
  in.unit_of.resize(B);
  for (int64_t b = 0; b < B; ++b) in.unit_of[b] = (b * 5 + 1) % U;
  in.w.resize(B * n);
  for (auto& v : in.w) v = c.dyadic ? T(double(rng() % 5) / 2) : (rng() % 4 == 0 ? T(0) : T(uniform(0.1, 2)));
  in.resp.resize(B * n * K);
  for (int64_t p = 0; p < B * n; ++p) {
    T* r = in.resp.data() + p * K;
    if (c.dyadic) {  // eighths summing to 1
      std::fill(r, r + K, T(0));
      for (int q = 0; q < 8; ++q) r[rng() % uint64_t(K)] += T(0.125);
    } else {
      double z = 0;
      for (int64_t k = 0; k < K; ++k) z += double(r[k] = T(std::exp(2 * normal())));
      for (int64_t k = 0; k < K; ++k) r[k] = T(double(r[k]) / z);
    }
  }
  // component K - 1 of problem 0 has no mass (mean 0, W 0, density NaN)
  for (int64_t i = 0; i < n; ++i) in.resp[i * K + K - 1] = T(0);
  in.act.resize(B * K);
  for (int64_t bk = 0; bk < B * K; ++bk) in.act[bk] = bk % K == 0 || rng() % 6 != 0;
  if (c.poison)  // zero-weight points with NaN x and NaN t: skipped by both, so no NaN reaches a sum
    for (int64_t i = n / 3; i < n; i += n / 3 + 1) {
      for (int64_t b = 0; b < B; ++b) {
        in.w[b * n + i] = T(0);
        for (int64_t k = 0; k < K; ++k) in.resp[(b * n + i) * K + k] = T(NAN);
      }
      for (int64_t u = 0; u < U; ++u) in.x[(u * n + i) * d] = T(NAN);
    }
  return in;
}

template <typename T>
static void stats_case(const char* tn, const SCase& c, int32_t mode) {
  const SInputs<T> in = stats_inputs<T>(c, mode);
  const Dims& s = in.s;
  const int64_t n = s.n, d = s.d, K = s.K;
  const int64_t before = diffrep_host::launches;
  const SOutputs g = stats<T>(true, in), g2 = stats<T>(true, in), cp = stats<T>(false, in);
  const std::string tag = std::string(mode == hddc::kSoft ? "mstep." : "density.") + tn + "." + c.name;
  // per run: the moments and the second pass, a slice per 2 problems each, and their two combines
  line(tag + ".launched", diffrep_host::launches - before != 2 * (2 * ((s.B + 1) / 2) + 2));
  const double u = unit_roundoff<T>(), nb = double(std::min<int64_t>(n, hddc::kBlock)), cm = 2 * (nb + 8) * u;
  int64_t mass = 0, mean = 0, second = 0;
  for (int64_t b = 0; b < s.B; ++b) {
    const T* xu = in.x.data() + in.unit_of[b] * n * d;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t bk = b * K + k;
      // the sums the bounds scale with, in float64 from the inputs (the CPU's mean for the deviations)
      double st = 0;
      std::vector<double> stx(d, 0.0), ste(d * d, 0.0), tol(d), delta(d);
      for (int64_t i = 0; i < n; ++i) {
        const double wi = double(in.w[b * n + i]);
        if (wi == 0 || !in.act[bk]) continue;
        const double t = double(hddc::pass_weight(mode, in.w[b * n + i], in.resp[(b * n + i) * K + k], in.phi));
        st += t;
        for (int64_t j = 0; j < d; ++j) stx[j] += t * std::fabs(double(xu[i * d + j]));
        if (mode == hddc::kSoft)
          for (int64_t p = 0; p < d; ++p)
            for (int64_t q = 0; q < d; ++q)
              ste[p * d + q] += t * std::fabs((double(xu[i * d + p]) - cp.mean[bk * d + p]) *
                                              (double(xu[i * d + q]) - cp.mean[bk * d + q]));
      }
      const double M = cp.mass[bk];
      double delta2 = 0;
      for (int64_t j = 0; j < d; ++j) {
        tol[j] = M > 0 ? cm * (stx[j] + std::fabs(cp.mean[bk * d + j]) * st) / M : 0.0;
        delta[j] = tol[j] + 2 * u * std::fabs(cp.mean[bk * d + j]);
        delta2 += delta[j] * delta[j];
      }
      if (c.dyadic) {  // every sum exact: bit for bit
        mass += !same_bits(g.mass[bk], cp.mass[bk]);
        for (int64_t j = 0; j < d; ++j) mean += !same_bits(g.mean[bk * d + j], cp.mean[bk * d + j]);
      } else {
        mass += !(std::fabs(g.mass[bk] - cp.mass[bk]) <= cm * st);
        for (int64_t j = 0; j < d; ++j) mean += !(std::fabs(g.mean[bk * d + j] - cp.mean[bk * d + j]) <= tol[j]);
      }
      if (mode == hddc::kSoft) {
        for (int64_t p = 0; p < d; ++p)
          for (int64_t q = 0; q < d; ++q) {
            const int64_t e = bk * d * d + p * d + q;
            const double bound = M > 0 ? 2 * ((nb + 4) * u * ste[p * d + q] / M + 2 * delta[p] * delta[q] +
                                              cm * std::fabs(cp.second[e]))
                                       : 0.0;
            second += c.dyadic ? !same_bits(g.second[e], cp.second[e])
                               : !(std::fabs(g.second[e] - cp.second[e]) <= bound || same_bits(g.second[e], cp.second[e]));
          }
      } else {
        const double dens = cp.second[bk];
        const double bound = 2 * (std::sqrt(delta2) + 2 * double(d + 2) * u * dens + 2 * (nb + 16) * u * dens);
        second += !(std::fabs(g.second[bk] - dens) <= bound || same_bits(g.second[bk], dens));
      }
    }
  }
  line(tag + ".mass", mass);
  line(tag + ".mean", mean);
  line(tag + ".second", second);
  int64_t unwritten = 0;  // -7 is no value either backend can produce here
  for (const auto* v : {&g.mass, &g.mean, &g.second})
    for (double a : *v) unwritten += a == -7.0;
  line(tag + ".unwritten", unwritten);
  int64_t nan_mass = 0;  // the poisoned points never reach a sum
  for (double a : g.mass) nan_mass += std::isnan(a);
  line(tag + ".nan_mass", nan_mass);
  line(tag + ".rerun", !(same_bytes(g.mass, g2.mass) && same_bytes(g.mean, g2.mean) && same_bytes(g.second, g2.second)));
}

int main() {
  // E-step: d at each padded width (DP = 8, 16, 32, 64: their edges and the next size up), K up to kMaxK,
  // n over the CPU's kBlock and the capped grid (2 blocks of 128 threads: a grid-stride wrap), the
  // triangular form, skip_zero, B = 5 problems in three slices, non-finite x read or skipped
  const ECase ecases[] = {
      {"d5", 2, 300, 5, 3, 4, 3, false, true, 0},
      {"d8_tri", 1, 70, 8, 2, 3, 8, true, false, 0},
      {"d9", 2, 40, 9, 2, 3, 9, false, true, 0},
      {"d16_tri", 1, 257, 16, 2, 3, 16, true, false, 0},
      {"d17", 2, 130, 17, 2, 5, 4, false, true, 0},
      {"d32", 1, 60, 32, 1, 2, 32, false, false, 0},
      {"d33_tri", 1, 50, 33, 1, 2, 33, true, true, 0},
      {"d64", 1, 90, 64, 2, 3, 8, false, true, 0},
      {"k64", 1, 200, 3, 1, 64, 2, false, true, 0},
      {"n4100", 1, 4100, 6, 2, 3, 2, false, true, 0},
      {"slices", 2, 70, 4, 5, 3, 4, true, true, 0},
      {"nan_read", 1, 300, 5, 2, 3, 2, false, true, 1},
      {"inf_read", 2, 300, 7, 3, 3, 7, true, false, 2},
      {"nan_skipped", 1, 300, 5, 2, 3, 2, false, true, 3},
  };
  for (const ECase& c : ecases) {
    estep_case<float>("f32", c);
    estep_case<double>("f64", c);
  }
  // Passes: the scatter's DP = 16, 32, 64 (edges, d * d not a multiple of its 256 threads), n over
  // kBlock (a second block of 4 points) and over a scatter tile (32 points + 1), K up to kMaxK (grid.y),
  // B = 5 problems in three slices (grid.z), zero-weight points with NaN x and t
  const SCase scases[] = {
      {"d5", 2, 100, 5, 3, 4, false, true, true},
      {"d16", 1, 33, 16, 2, 3, false, false, true},
      {"d17", 1, 100, 17, 1, 3, false, true, true},
      {"d32", 1, 65, 32, 1, 2, false, false, true},
      {"d33", 1, 40, 33, 1, 2, false, false, true},
      {"d64", 1, 70, 64, 1, 2, false, true, true},
      {"k64", 1, 40, 3, 1, 64, false, false, true},
      {"slices", 3, 60, 4, 5, 3, false, true, true},
      {"n4100", 1, 4100, 3, 1, 2, false, true, false},
      {"d5.dyadic", 2, 100, 5, 3, 4, true, true, true},
      {"d17.dyadic", 1, 90, 17, 2, 3, true, false, true},
      {"d63.dyadic", 1, 40, 63, 1, 2, true, true, true},
      {"n4100.dyadic", 1, 4100, 3, 1, 2, true, false, true},
      {"slices.dyadic", 2, 50, 6, 5, 2, true, true, true},
  };
  for (const SCase& c : scases)
    for (int32_t mode : {hddc::kSoft, hddc::kMember}) {
      if (c.f32) stats_case<float>("f32", c, mode);
      stats_case<double>("f64", c, mode);
    }
  return 0;
}
